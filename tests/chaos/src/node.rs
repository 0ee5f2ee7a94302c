//! The emulated node: a work directory holding the Docker root, the kubelet's pod-log root, the
//! mount point of the data disk and the agent's config and log.

use std::path::{Path, PathBuf};

/// A node's directories.
pub struct Node {
    dir: tempfile::TempDir,
}

impl Node {
    /// A fresh node under `parent`.
    pub fn create(parent: &Path, seed: u64) -> Result<Node, String> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("runnel-chaos-{seed:016x}-"))
            .tempdir_in(parent)
            .map_err(|e| format!("work dir in {}: {e}", parent.display()))?;
        let node = Node { dir };
        for d in [node.docker_root(), node.cri_root(), node.disk()] {
            std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        Ok(node)
    }

    /// The work directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Keep the work directory after the run (to look at a failure).
    pub fn keep(self) -> PathBuf {
        self.dir.keep()
    }

    /// Docker's containers directory.
    pub fn docker_root(&self) -> PathBuf {
        self.path().join("docker")
    }

    /// The kubelet's `/var/log/pods`.
    pub fn cri_root(&self) -> PathBuf {
        self.path().join("pods")
    }

    /// Mount point of the small data disk.
    pub fn disk(&self) -> PathBuf {
        self.path().join("disk")
    }

    /// The agent's data dir (on the small disk).
    pub fn data_dir(&self) -> PathBuf {
        self.disk().join("data")
    }

    /// The index inside the data dir.
    pub fn index_dir(&self) -> PathBuf {
        self.data_dir().join("index")
    }

    /// The sink's dead-letter file (its default place).
    pub fn dead_letter(&self) -> PathBuf {
        self.data_dir()
            .join("sinks/elasticsearch/dead_letter.ndjson")
    }

    /// The ballast that fills the disk.
    pub fn ballast(&self) -> PathBuf {
        self.disk().join("ballast")
    }

    /// The agent's stderr and stdout, all lives.
    pub fn agent_log(&self) -> PathBuf {
        self.path().join("agent.log")
    }

    /// Write the agent's config: both file inputs, the sink to `endpoint`, an index budget of
    /// `index_bytes`, small queues so the memory bound means something.
    pub fn write_config(&self, endpoint: &str, index_bytes: u64) -> Result<PathBuf, String> {
        let path = self.path().join("runnel.yaml");
        let text = format!(
            "data_dir: {data}\n\
             node_name: chaos-node\n\
             inputs:\n\
             \x20 docker: {{ enabled: true, root: {docker} }}\n\
             \x20 cri: {{ enabled: true, root: {cri} }}\n\
             \x20 rescan_interval: 2s\n\
             \x20 queue_max_bytes: 4MiB\n\
             \x20 max_pending_bytes: 4MiB\n\
             index: {{ max_disk_bytes: {index_bytes}, max_age: 36500d, segment_max_bytes: 1MiB, segment_max_age: 30s }}\n\
             http: {{ listen: \"127.0.0.1:0\" }}\n\
             metrics: {{ enabled: false }}\n\
             log: {{ level: info, format: text }}\n\
             sinks:\n\
             \x20 elasticsearch:\n\
             \x20   enabled: true\n\
             \x20   endpoints: [\"{endpoint}\"]\n\
             \x20   index: \"{index}\"\n\
             \x20   batch: {{ max_docs: 500, timeout: 200ms }}\n\
             \x20   retry: {{ initial: 50ms, max: 1s }}\n\
             \x20   request_timeout: 2s\n\
             \x20   max_in_flight_bytes: 8MiB\n",
            data = self.data_dir().display(),
            docker = self.docker_root().display(),
            cri = self.cri_root().display(),
            index = crate::server::INDEX,
        );
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(path)
    }
}
