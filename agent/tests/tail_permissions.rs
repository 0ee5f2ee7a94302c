//! A log file the agent may not read (EACCES): the agent runs as `nobody` (util-linux
//! `setpriv`; the tests run as root, which reads anything) beside a root-owned 0600 log. The
//! readable container is stored, the unreadable one is counted in
//! `runnel_input_read_errors_total` at every poll and logged once, and once its mode allows it,
//! every line is stored once. A directory it may not list (a root-owned 0700 pod or container
//! directory) is counted at every rescan, shown in `runnel_input_unlisted_directories` and logged
//! once; once its mode allows, its logs are read once.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::{container_id, docker_line, eventually, stdout_lines, time_at, Agent, Node};

const NOBODY: &str = "65534";

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn chown_nobody(p: &Path) {
    let out = Command::new("chown")
        .args(["-R", &format!("{NOBODY}:{NOBODY}")])
        .arg(p)
        .output()
        .unwrap_or_else(|e| panic!("chown: {e}"));
    assert!(out.status.success(), "chown -R {}: {out:?}", p.display());
}

fn preflight() {
    let setpriv = Command::new("setpriv").arg("--version").output();
    assert!(
        setpriv.is_ok_and(|o| o.status.success()),
        "this test needs util-linux's setpriv (apt-get install -y util-linux) to run the agent as nobody"
    );
    assert!(
        unsafe { libc::geteuid() } == 0,
        "this test needs root: it makes root-owned files and runs the agent as nobody"
    );
}

/// Start `runnel agent` as nobody and wait until it is ready.
fn start_as_nobody(cfg: &Path, stderr_path: &Path) -> Agent {
    let mut child = Command::new("setpriv")
        .args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
            support::runnel_bin(),
            "agent",
            "--config",
        ])
        .arg(cfg)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(stderr_path).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("starting setpriv … runnel agent: {e}"));
    let out = stdout_lines(&mut child);
    let Some(addr) = support::listening_address(&out) else {
        let _ = child.kill();
        panic!(
            "the agent run as nobody printed no listening line; stderr:\n{}",
            std::fs::read_to_string(stderr_path).unwrap_or_default()
        );
    };
    let agent = Agent { child, addr };
    assert!(
        eventually(Duration::from_secs(30), || agent
            .try_get("/readyz")
            .is_ok_and(|(s, _)| s == 200)),
        "the agent became ready"
    );
    agent
}

#[test]
fn an_unreadable_log_is_counted_and_logged_once_and_read_once_its_mode_allows() {
    preflight();
    let node = Node::new();
    let (open, closed) = (container_id(1), container_id(2));
    let open_log = node.docker_container(&open, "open", &[]);
    let closed_log = node.docker_container(&closed, "closed", &[]);
    let lines = |tag: &str| -> String {
        (0..20)
            .map(|i| docker_line(&format!("{tag} {i}\n"), "stdout", &time_at(i)))
            .collect()
    };
    std::fs::write(&open_log, lines("open")).unwrap();
    std::fs::write(&closed_log, lines("closed")).unwrap();
    chmod(&closed_log, 0o600);
    let cfg = node.config("");
    std::fs::create_dir_all(node.data_dir()).unwrap();
    chown_nobody(&node.data_dir());
    // nobody must reach the files: the tempdir is 0700.
    chmod(node.dir.path(), 0o755);
    for d in [node.docker_root(), node.cri_root()] {
        chmod(&d, 0o755);
    }
    for id in [&open, &closed] {
        let dir = node.docker_root().join(id);
        chmod(&dir, 0o755);
        chmod(&dir.join("config.v2.json"), 0o644);
    }
    chmod(&open_log, 0o644);
    chmod(&cfg, 0o644);

    let stderr_path = node.dir.path().join("agent.stderr");
    let agent = start_as_nobody(&cfg, &stderr_path);
    let (open_key, closed_key) = (format!("docker:{open}"), format!("docker:{closed}"));
    assert!(
        eventually(Duration::from_secs(30), || agent.records(&open_key) == 20),
        "the readable log is stored beside the unreadable one ({} of 20)",
        agent.records(&open_key)
    );
    let errors = "runnel_input_read_errors_total{input=\"docker\"}";
    assert!(
        eventually(Duration::from_secs(30), || agent
            .metric(errors)
            .unwrap_or(0.0)
            >= 3.0),
        "each poll's failed open of the 0600 file is counted: {}",
        agent.metric(errors).unwrap_or(0.0)
    );
    assert_eq!(
        agent.records(&closed_key),
        0,
        "nothing of the unreadable log"
    );
    let warned = |text: &str| {
        text.lines()
            .filter(|l| l.contains("cannot open the log file") && l.contains(&closed))
            .count()
    };
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert_eq!(
        warned(&stderr),
        1,
        "said once, with the path and the reason:\n{stderr}"
    );
    assert!(stderr.contains("Permission denied"), "{stderr}");

    chmod(&closed_log, 0o644);
    assert!(
        eventually(Duration::from_secs(30), || agent.records(&closed_key) == 20),
        "once readable, every line is stored ({} of 20)",
        agent.records(&closed_key)
    );
    assert_eq!(agent.records(&open_key), 20, "nothing read twice");
    assert_eq!(agent.records(&closed_key), 20, "nothing read twice");
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert_eq!(
        warned(&stderr),
        1,
        "not said again at later polls:\n{stderr}"
    );
    agent.stop();
}

/// Open a node readable by nobody except where the test closes it.
fn open_up(node: &Node, cfg: &Path) {
    std::fs::create_dir_all(node.data_dir()).unwrap();
    chown_nobody(&node.data_dir());
    chmod(node.dir.path(), 0o755);
    chmod(cfg, 0o644);
    for entry in walk(&node.docker_root())
        .into_iter()
        .chain(walk(&node.cri_root()))
    {
        chmod(&entry, if entry.is_dir() { 0o755 } else { 0o644 });
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

#[test]
fn a_directory_the_agent_may_not_list_is_counted_and_logged_once_and_read_once_it_may() {
    preflight();
    let node = Node::new();
    let lines = |tag: &str| -> Vec<String> { (0..20).map(|i| format!("{tag} {i}")).collect() };
    let (open, closed) = (container_id(1), container_id(2));
    for (id, name) in [(&open, "open"), (&closed, "closed")] {
        let log = node.docker_container(id, name, &[]);
        let text: String = lines(name)
            .iter()
            .enumerate()
            .map(|(i, l)| docker_line(&format!("{l}\n"), "stdout", &time_at(i as u64)))
            .collect();
        std::fs::write(log, text).unwrap();
    }
    for pod in ["web-0", "db-0"] {
        let log = node.cri_log("shop", pod, "app", 0);
        let text: String = lines(pod)
            .iter()
            .enumerate()
            .map(|(i, l)| support::cri_line(&time_at(i as u64), "stdout", "F", l))
            .collect();
        std::fs::write(log, text).unwrap();
    }
    let cfg = node.config("");
    open_up(&node, &cfg);
    let closed_docker = node.docker_root().join(&closed);
    let closed_pod = node.cri_root().join("shop_db-0_uid-db-0");
    chmod(&closed_docker, 0o700);
    chmod(&closed_pod, 0o700);

    let stderr_path = node.dir.path().join("agent.stderr");
    let agent = start_as_nobody(&cfg, &stderr_path);
    let keys = [
        format!("docker:{open}"),
        format!("docker:{closed}"),
        "cri:shop_web-0_uid-web-0/app/0".to_string(),
        "cri:shop_db-0_uid-db-0/app/0".to_string(),
    ];
    for key in [&keys[0], &keys[2]] {
        assert!(
            eventually(Duration::from_secs(30), || agent.records(key) == 20),
            "{key}: the listable directory is read beside the closed one ({} of 20)",
            agent.records(key)
        );
    }
    let gauge = "runnel_input_unlisted_directories";
    assert!(
        eventually(Duration::from_secs(30), || agent.metric(gauge) == Some(2.0)),
        "both closed directories are shown: {:?}",
        agent.metric(gauge)
    );
    for input in ["docker", "cri"] {
        let errors = format!("runnel_input_read_errors_total{{input=\"{input}\"}}");
        assert!(
            eventually(Duration::from_secs(30), || agent
                .metric(&errors)
                .unwrap_or(0.0)
                >= 3.0),
            "{input}: every rescan's failed listing is counted: {:?}",
            agent.metric(&errors)
        );
    }
    assert_eq!(agent.records(&keys[1]), 0);
    assert_eq!(agent.records(&keys[3]), 0);
    let said = |dir: &Path, what: &str| {
        std::fs::read_to_string(&stderr_path)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(what) && l.contains(&*dir.to_string_lossy()))
            .count()
    };
    for dir in [&closed_docker, &closed_pod] {
        let n = said(dir, "cannot list a directory under a log root");
        assert_eq!(
            n,
            1,
            "{}: said once over several rescans, with the reason:\n{}",
            dir.display(),
            std::fs::read_to_string(&stderr_path).unwrap_or_default()
        );
    }
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(stderr.contains("Permission denied"), "{stderr}");
    // inotify cannot watch a directory it may not read: the rest of each root stays watched,
    // and the closed one is said once (not at every loop, as a failed whole-root watch was).
    for dir in [&closed_docker, &closed_pod] {
        assert_eq!(
            said(dir, "cannot watch a directory under a log root"),
            1,
            "{}:\n{stderr}",
            dir.display()
        );
    }
    for root in [node.docker_root(), node.cri_root()] {
        assert_eq!(
            said(&root, "watching the directories in it one by one"),
            1,
            "{}:\n{stderr}",
            root.display()
        );
    }

    chmod(&closed_docker, 0o755);
    chmod(&closed_pod, 0o755);
    for key in &keys {
        assert!(
            eventually(Duration::from_secs(30), || agent.records(key) == 20),
            "{key}: once listable, every line is stored ({} of 20)",
            agent.records(key)
        );
    }
    assert!(
        eventually(Duration::from_secs(30), || agent.metric(gauge) == Some(0.0)),
        "nothing is left unlisted: {:?}",
        agent.metric(gauge)
    );
    for dir in [&closed_docker, &closed_pod] {
        assert!(
            eventually(Duration::from_secs(10), || said(dir, "can be listed again")
                == 1),
            "{}: its recovery is said",
            dir.display()
        );
        assert!(
            eventually(Duration::from_secs(10), || said(
                dir,
                "watching a directory under a log root again"
            ) == 1),
            "{}: watched once it may be read",
            dir.display()
        );
        assert_eq!(said(dir, "cannot list a directory under a log root"), 1);
    }
    for key in &keys {
        assert_eq!(agent.records(key), 20, "{key}: nothing read twice");
    }
    agent.stop();
}
