//! What one soak run does, read from the environment so the same test serves a 3-minute CI run
//! and an hour by hand (see `tests/chaos/README.md`).

use std::path::PathBuf;
use std::time::Duration;

/// The knobs of a run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Seed of every random decision (`CHAOS_SEED`; printed so a run can be replayed).
    pub seed: u64,
    /// How long the chaos lasts before the final drain and checks (`CHAOS_SECONDS`).
    pub duration: Duration,
    /// Docker json-file containers (`CHAOS_DOCKER_CONTAINERS`).
    pub docker_containers: usize,
    /// CRI containers under the kubelet's pod-log root (`CHAOS_CRI_CONTAINERS`).
    pub cri_containers: usize,
    /// Multiplies every writer's rate (`CHAOS_RATE_SCALE`; 1.0 is about 100 lines/s in all).
    pub rate_scale: f64,
    /// Size of the tmpfs under the data dir (`CHAOS_TMPFS_MIB`).
    pub tmpfs_bytes: u64,
    /// The agent's `index.max_disk_bytes` (`CHAOS_INDEX_MIB`).
    pub index_bytes: u64,
    /// The memory bound RSS is held to: the DaemonSet's limit (`CHAOS_RSS_BOUND_MIB`).
    pub rss_bound: u64,
    /// Whether the kernel's inotify queue is shrunk around some agent starts
    /// (`CHAOS_INOTIFY_SYSCTL=0` turns it off; bursts of files still run).
    pub shrink_inotify_queue: bool,
    /// The `runnel` binary under test.
    pub runnel: PathBuf,
    /// Where the work directory goes (`CHAOS_WORK_DIR`, default the system temp dir); it is
    /// kept when the run fails.
    pub work_parent: PathBuf,
}

fn env_num<T: std::str::FromStr>(name: &str, default: T) -> Result<T, String> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map_err(|_| format!("{name}={v:?} is not a number")),
        _ => Ok(default),
    }
}

impl Settings {
    /// The settings of this run; an unreadable variable or a missing binary is an error that
    /// says what to do.
    pub fn from_env() -> Result<Settings, String> {
        let seed = match std::env::var("CHAOS_SEED") {
            Ok(s) if !s.trim().is_empty() => {
                let s = s.trim();
                let parsed = match s.strip_prefix("0x") {
                    Some(hex) => u64::from_str_radix(hex, 16),
                    None => s.parse(),
                };
                parsed.map_err(|_| format!("CHAOS_SEED={s:?} is not a number"))?
            }
            _ => crate::rng::fresh_seed(),
        };
        let mib = 1u64 << 20;
        let settings = Settings {
            seed,
            duration: Duration::from_secs(env_num("CHAOS_SECONDS", 150u64)?),
            docker_containers: env_num("CHAOS_DOCKER_CONTAINERS", 6usize)?,
            cri_containers: env_num("CHAOS_CRI_CONTAINERS", 6usize)?,
            rate_scale: env_num("CHAOS_RATE_SCALE", 1.0f64)?,
            tmpfs_bytes: env_num("CHAOS_TMPFS_MIB", 64u64)? * mib,
            index_bytes: env_num("CHAOS_INDEX_MIB", 40u64)? * mib,
            rss_bound: env_num("CHAOS_RSS_BOUND_MIB", 128u64)? * mib,
            shrink_inotify_queue: std::env::var("CHAOS_INOTIFY_SYSCTL").as_deref() != Ok("0"),
            runnel: crate::binary::runnel_binary()?,
            work_parent: std::env::var_os("CHAOS_WORK_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(std::env::temp_dir),
        };
        if settings.docker_containers + settings.cri_containers == 0 {
            return Err(
                "no containers: set CHAOS_DOCKER_CONTAINERS or CHAOS_CRI_CONTAINERS".into(),
            );
        }
        if settings.index_bytes >= settings.tmpfs_bytes {
            return Err(format!(
                "CHAOS_INDEX_MIB ({}) must be below CHAOS_TMPFS_MIB ({}): the disk must fill before the index budget does",
                settings.index_bytes / mib,
                settings.tmpfs_bytes / mib
            ));
        }
        Ok(settings)
    }
}
