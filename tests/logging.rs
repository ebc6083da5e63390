//! `--log-format json`: every line a master, a chunkserver and a mount log is one JSON object
//! with a level, a target and the event's fields, so a log collector can take them as they are.

use std::fs;

use dfs_tests::{Cluster, ClusterOptions};

#[test]
fn every_daemon_logs_json_lines_when_asked() {
    let json = vec!["--log-format".to_string(), "json".to_string()];
    let cluster = Cluster::start(ClusterOptions {
        master_args: json.clone(),
        chunkserver_args: json,
        ..Default::default()
    });
    {
        let mount = cluster.mount_with(&["--log-format", "json"]);
        fs::write(mount.join("f"), b"logged").unwrap();
        assert_eq!(fs::read(mount.join("f")).unwrap(), b"logged");
    }
    let mut daemons = 0;
    for entry in fs::read_dir(cluster.dir()).unwrap().flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "log") {
            continue;
        }
        daemons += 1;
        let text = fs::read_to_string(&path).unwrap();
        let mut messages = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let event: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|err| panic!("{}: not JSON ({err}): {line}", path.display()));
            for key in ["timestamp", "level", "target"] {
                assert!(
                    event[key].is_string(),
                    "{}: no {key} in {line}",
                    path.display()
                );
            }
            messages.push(
                event["fields"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            );
        }
        // Each daemon said something at start-up: a mount that it mounted, a server that it
        // serves or registered.
        assert!(!messages.is_empty(), "{} is empty", path.display());
    }
    // The master, three chunkservers and the mount.
    assert_eq!(daemons, 5, "log files in {}", cluster.dir().display());
}
