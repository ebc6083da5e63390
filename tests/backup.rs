//! `dfs backup` writes a consistent copy of the metadata while the cluster serves, and a
//! master started with `--restore` from it brings the filesystem back as it was at the backup.

use std::fs;

use dfs_tests::{Cluster, pseudo_random_bytes};

#[test]
fn a_master_restored_from_a_backup_serves_the_files_of_the_backup() {
    let mut cluster = Cluster::start_default();
    let before = pseudo_random_bytes(21, 3 << 20);
    let backup = cluster.dir().join("backup");
    {
        let mount = cluster.mount();
        fs::create_dir(mount.join("d")).unwrap();
        fs::write(mount.join("d/before"), &before).unwrap();
        let out = cluster.dfs(&["backup", backup.to_str().unwrap()]);
        assert!(out.starts_with("metadata backup: "), "{out}");
        // Taken while the cluster serves: written after the backup, so not in it.
        fs::write(mount.join("d/after"), b"too late").unwrap();
    }

    // A second backup to the same place is refused; the first is untouched.
    let refused = std::process::Command::new(dfs_tests::binary("dfs"))
        .args([
            "--insecure",
            "--master",
            &cluster.master_addr(),
            "backup",
            backup.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("exists already"));

    // The master's disk is lost; a new one starts from the backup.
    cluster.stop_master(libc::SIGKILL);
    fs::remove_dir_all(cluster.dir().join("master")).unwrap();
    cluster
        .options
        .master_args
        .extend(["--restore".to_string(), backup.display().to_string()]);
    cluster.restart_master();

    let mount = cluster.mount();
    let names: Vec<String> = fs::read_dir(mount.join("d"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["before"]);
    assert!(fs::read(mount.join("d/before")).unwrap() == before);
}
