//! A group of three masters as users meet it: real master processes, chunkservers and FUSE
//! mounts, and leaders killed, frozen and restarted under them. Applications see no error from
//! a failover, nothing acknowledged is lost, a frozen leader is deposed for good, a member that
//! fell behind catches up, and a master cut off from the others refuses writes.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use dfs_proto::pb;
use dfs_tests::{
    Acknowledged, Cluster, ClusterOptions, assert_success, check_acknowledged, pseudo_random_bytes,
    read_fresh, sh, wait_until,
};

/// Three masters and three chunkservers. Mounts and chunkservers wait out an election: their
/// RPC timeout is well above the few seconds a failover takes.
fn three_masters(master_args: &[&str]) -> Cluster {
    Cluster::start(ClusterOptions {
        masters: 3,
        rpc_timeout_ms: 20_000,
        master_args: master_args.iter().map(|a| a.to_string()).collect(),
        ..Default::default()
    })
}

/// A tree of a few thousand small files and directories to unpack: the system's C headers.
fn source_tarball(dir: &Path) -> (PathBuf, PathBuf) {
    let tarball = dir.join("include.tar");
    let reference = dir.join("reference");
    fs::create_dir_all(&reference).unwrap();
    let out = Command::new("tar")
        .args(["-cf"])
        .arg(&tarball)
        .args([
            "-C",
            "/usr",
            "include/linux",
            "include/asm-generic",
            "include/x86_64-linux-gnu",
        ])
        .output()
        .unwrap();
    assert_success("tar -c", &out);
    let out = Command::new("tar")
        .arg("-xf")
        .arg(&tarball)
        .arg("-C")
        .arg(&reference)
        .output()
        .unwrap();
    assert_success("tar -x (reference)", &out);
    (tarball, reference)
}

/// Creates, fsyncs, renames and unlinks files in `dir` until `stop`, recording every operation
/// that returned success. An operation that failed is not recorded (and fails the test: no
/// application may see an error from a failover).
fn churn(dir: &Path, stop: &AtomicBool) -> Acknowledged {
    let mut acknowledged = Acknowledged::new();
    let mut i = 0u64;
    while !stop.load(Ordering::Acquire) || i < 20 {
        let bytes = pseudo_random_bytes(i, 3000 + (i as usize % 7) * 1000);
        let tmp = dir.join(format!("tmp{i}"));
        let mut file = fs::File::create(&tmp).unwrap_or_else(|e| panic!("create tmp{i}: {e}"));
        file.write_all(&bytes)
            .unwrap_or_else(|e| panic!("write tmp{i}: {e}"));
        file.sync_all()
            .unwrap_or_else(|e| panic!("fsync tmp{i}: {e}"));
        drop(file);
        acknowledged.insert(format!("tmp{i}"), Some(bytes.clone()));
        fs::rename(&tmp, dir.join(format!("f{i}"))).unwrap_or_else(|e| panic!("rename f{i}: {e}"));
        acknowledged.insert(format!("tmp{i}"), None);
        acknowledged.insert(format!("f{i}"), Some(bytes));
        if i % 3 == 0 {
            fs::remove_file(dir.join(format!("f{i}")))
                .unwrap_or_else(|e| panic!("unlink f{i}: {e}"));
            acknowledged.insert(format!("f{i}"), None);
        }
        i += 1;
    }
    acknowledged
}

#[test]
fn killing_the_leader_during_tar_costs_applications_nothing() {
    let mut cluster = three_masters(&[]);
    let (tarball, reference) = source_tarball(cluster.dir());
    let writer = cluster.mount();
    let reader = cluster.mount();
    fs::create_dir(writer.join("tree")).unwrap();
    fs::create_dir(writer.join("churn")).unwrap();
    let steady = pseudo_random_bytes(5, 3 << 20);
    fs::write(writer.join("steady"), &steady).unwrap();

    let tar = Command::new("tar")
        .arg("-xf")
        .arg(&tarball)
        .arg("-C")
        .arg(writer.join("tree"))
        .spawn()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let churner = {
        let (dir, stop) = (writer.join("churn"), Arc::clone(&stop));
        thread::spawn(move || churn(&dir, &stop))
    };
    let reads = {
        let (path, stop) = (reader.join("steady"), Arc::clone(&stop));
        thread::spawn(move || {
            let mut reads = 0;
            while !stop.load(Ordering::Acquire) {
                assert!(
                    read_fresh(&path) == steady,
                    "the other mount read wrong bytes"
                );
                reads += 1;
            }
            reads
        })
    };

    thread::sleep(Duration::from_millis(1500));
    let leader = cluster.leader();
    cluster.stop_master_at(leader, libc::SIGKILL);
    let out = tar.wait_with_output().unwrap();
    stop.store(true, Ordering::Release);
    assert_success("tar -x across the failover", &out);
    let acknowledged = churner.join().unwrap();
    assert!(reads.join().unwrap() > 0);

    let new_leader = cluster.leader();
    assert_ne!(new_leader, leader, "a new leader was elected");
    let diff = Command::new("diff")
        .arg("-r")
        .arg(&reference)
        .arg(reader.join("tree"))
        .output()
        .unwrap();
    assert_success("diff -r against the reference", &diff);
    check_acknowledged(&reader.join("churn"), &acknowledged);

    // The killed master comes back as a follower and catches up.
    cluster.restart_master_at(leader);
    wait_until(
        Duration::from_secs(30),
        "the restarted master catches up",
        || cluster.caught_up(leader),
    );
    drop(reader);
    drop(writer);
}

#[test]
fn a_frozen_leader_is_deposed_and_steps_down_when_it_wakes() {
    let cluster = three_masters(&[]);
    let mount = cluster.mount();
    fs::write(mount.join("before"), b"before").unwrap();
    let old = cluster.leader();
    let old_term = cluster.masters_status(old).unwrap().term;

    cluster.pause_master(old);
    // Writes go on through the new leader while the old one is frozen.
    fs::write(mount.join("during"), b"during").unwrap();
    let new = cluster.leader();
    assert_ne!(new, old);
    let new_term = cluster.masters_status(new).unwrap().term;
    assert!(new_term > old_term, "the new leader has a higher term");

    cluster.resume_master(old);
    wait_until(
        Duration::from_secs(10),
        "the woken leader steps down",
        || {
            cluster.masters_status(old).is_some_and(|s| {
                s.term >= new_term
                    && s.leader_id == new as u64 + 1
                    && s.members.iter().any(|m| {
                        m.id == old as u64 + 1 && m.role == pb::MasterRole::Follower as i32
                    })
            })
        },
    );
    // Nothing the old leader accepted while frozen or after can have been committed: the
    // group's state is the new leader's, and writes go on.
    fs::write(mount.join("after"), b"after").unwrap();
    for (name, bytes) in [
        ("before", "before"),
        ("during", "during"),
        ("after", "after"),
    ] {
        assert_eq!(read_fresh(&mount.join(name)), bytes.as_bytes(), "{name}");
    }
    // A call sent to the old leader directly is refused and names the new one.
    let refusal = make_node_at(&cluster, old, "refused");
    assert_eq!(refusal.code(), tonic::Code::Unavailable, "{refusal:?}");
    assert_eq!(
        dfs_proto::masters::leader_hint(&refusal).as_deref(),
        Some(cluster.master_addr_at(new).as_str())
    );
    wait_until(Duration::from_secs(10), "the old leader catches up", || {
        cluster.caught_up(old)
    });
}

/// Sends a `MakeNode` for `/name` straight to master `i`; answers the refusal.
fn make_node_at(cluster: &Cluster, i: usize, name: &str) -> tonic::Status {
    let uri = format!("http://{}", cluster.master_addr_at(i));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let mut client = pb::namespace_client::NamespaceClient::connect(uri)
            .await
            .unwrap();
        let request = pb::MakeNodeRequest {
            parent: dfs_proto::ROOT_INO,
            name: name.as_bytes().to_vec(),
            kind: pb::FileKind::Regular as i32,
            perm: 0o644,
            ..Default::default()
        };
        client
            .make_node(request)
            .await
            .expect_err("the master refuses the mutation")
    })
}

#[test]
fn a_follower_that_missed_compacted_entries_catches_up_by_snapshot() {
    // Snapshots every 64 entries, so the follower's gap is compacted away.
    let mut cluster = three_masters(&["--snapshot-entries", "64"]);
    let mount = cluster.mount();
    let leader = cluster.leader();
    let follower = (leader + 1) % 3;
    cluster.stop_master_at(follower, libc::SIGKILL);
    let files: Vec<(String, Vec<u8>)> = (0..150)
        .map(|i| (format!("f{i}"), pseudo_random_bytes(i, 100 + i as usize)))
        .collect();
    for (name, bytes) in &files {
        fs::write(mount.join(name), bytes).unwrap();
    }
    cluster.restart_master_at(follower);
    wait_until(Duration::from_secs(30), "the follower catches up", || {
        cluster.caught_up(follower)
    });
    let log = cluster.logs();
    assert!(
        log.contains("installed a metadata snapshot"),
        "the follower got a snapshot:\n{log}"
    );

    // It holds the metadata: once it leads, every file reads back.
    transfer_leader(&cluster, leader, follower);
    assert_eq!(cluster.leader(), follower);
    for (name, bytes) in &files {
        assert!(
            read_fresh(&mount.join(name)) == *bytes,
            "{name} after the transfer"
        );
    }
}

/// Asks leader `from` to hand the leadership to `to`, retrying while the race is lost.
fn transfer_leader(cluster: &Cluster, from: usize, to: usize) {
    for _ in 0..5 {
        let leader = cluster.leader();
        if leader == to {
            return;
        }
        let out = Command::new(dfs_tests::binary("dfs"))
            .args(["--insecure", "--master", &cluster.master_addr_at(leader)])
            .args(["masters", "transfer-leader", &(to + 1).to_string()])
            .output()
            .unwrap();
        let _ = (from, out);
        thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(cluster.leader(), to, "leadership moved to master {to}");
}

#[test]
fn nothing_acknowledged_is_lost_when_every_process_is_killed() {
    let mut cluster = three_masters(&[]);
    let files: Vec<(String, Vec<u8>)> = (0..40)
        .map(|i| {
            (
                format!("d{}/f{i}", i % 4),
                pseudo_random_bytes(i, 5000 + i as usize * 37),
            )
        })
        .collect();
    {
        let mount = cluster.mount();
        sh(mount.path(), "mkdir d0 d1 d2 d3");
        for (name, bytes) in &files {
            let mut file = fs::File::create(mount.join(name)).unwrap();
            file.write_all(bytes).unwrap();
            file.sync_all().unwrap();
        }
        fs::rename(mount.join("d0/f0"), mount.join("d1/moved")).unwrap();
        fs::remove_file(mount.join("d2/f2")).unwrap();
        fs::File::open(mount.join("d1"))
            .unwrap()
            .sync_all()
            .unwrap();
        fs::File::open(mount.join("d2"))
            .unwrap()
            .sync_all()
            .unwrap();
        cluster.crash_and_restart_all();
    }
    let mount = cluster.mount();
    for (name, bytes) in &files[1..] {
        if name == "d2/f2" {
            continue;
        }
        assert!(
            read_fresh(&mount.join(name)) == *bytes,
            "{name} after the crash"
        );
    }
    assert!(read_fresh(&mount.join("d1/moved")) == files[0].1);
    assert!(!mount.join("d0/f0").exists() && !mount.join("d2/f2").exists());
}

#[test]
fn a_master_left_alone_refuses_writes_with_a_clear_error() {
    let mut cluster = three_masters(&[]);
    let leader = cluster.leader();
    let others: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    for &i in &others {
        cluster.stop_master_at(i, libc::SIGKILL);
    }
    let refusal = make_node_at(&cluster, leader, "alone");
    assert_eq!(refusal.code(), tonic::Code::Unavailable, "{refusal:?}");
    assert!(
        refusal.message().contains("no majority") || refusal.message().contains("not the leader"),
        "{refusal:?}"
    );

    // Once a majority is back, the group serves again. (Whether the refused write takes
    // effect is the group's to decide once it is whole: its outcome was reported unknown.)
    cluster.restart_master_at(others[0]);
    let mount = cluster.mount();
    fs::write(mount.join("back"), b"back").unwrap();
    assert_eq!(read_fresh(&mount.join("back")), b"back");
}

/// Sends `request` with request id `id` (as a client's retry would carry it) to master `i`.
fn with_id<T>(id: &str, request: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(request);
    request
        .metadata_mut()
        .insert(dfs_proto::masters::REQUEST_ID, id.parse().unwrap());
    request
}

#[test]
fn a_mutation_retried_across_a_leader_change_is_applied_once() {
    let mut cluster = three_masters(&[]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let namespace = |addr: String| {
        let uri = format!("http://{addr}");
        runtime
            .block_on(pb::namespace_client::NamespaceClient::connect(uri))
            .unwrap()
    };
    let create = pb::MakeNodeRequest {
        parent: dfs_proto::ROOT_INO,
        name: b"made-once".to_vec(),
        kind: pb::FileKind::Directory as i32,
        perm: 0o755,
        exclusive: true,
        ..Default::default()
    };
    let rename = pb::RenameRequest {
        parent: dfs_proto::ROOT_INO,
        name: b"made-once".to_vec(),
        new_parent: dfs_proto::ROOT_INO,
        new_name: b"renamed-once".to_vec(),
        ..Default::default()
    };

    // Both calls are applied by the first leader, whose replies are then lost with it.
    let first = cluster.leader();
    let mut leader = namespace(cluster.master_addr_at(first));
    let made = runtime
        .block_on(leader.make_node(with_id("cafe-1", create.clone())))
        .unwrap()
        .into_inner();
    runtime
        .block_on(leader.rename(with_id("cafe-2", rename.clone())))
        .unwrap();
    cluster.stop_master_at(first, libc::SIGKILL);

    // The retries reach the new leader: answered as applied, not applied again.
    let second = cluster.leader();
    let mut leader = namespace(cluster.master_addr_at(second));
    let again = runtime
        .block_on(leader.make_node(with_id("cafe-1", create.clone())))
        .expect("a retried create is not refused with EEXIST")
        .into_inner();
    assert_eq!(
        again.attr.unwrap().ino,
        made.attr.unwrap().ino,
        "the same directory"
    );
    runtime
        .block_on(leader.rename(with_id("cafe-2", rename.clone())))
        .expect("a retried rename is not refused with ENOENT");
    // The state is that of one create and one rename.
    let lookup = |name: &[u8]| pb::LookupRequest {
        parent: dfs_proto::ROOT_INO,
        name: name.to_vec(),
        ..Default::default()
    };
    let moved = runtime
        .block_on(leader.lookup(lookup(b"renamed-once")))
        .unwrap();
    assert!(moved.into_inner().attr.is_some());
    let gone = runtime
        .block_on(leader.lookup(lookup(b"made-once")))
        .unwrap_err();
    assert_eq!(
        dfs_proto::FsError::from_status(&gone),
        dfs_proto::FsError::NotFound
    );
    // A new call (another id) for the same create is a new create, and the name is taken.
    let renamed = pb::MakeNodeRequest {
        name: b"renamed-once".to_vec(),
        ..create
    };
    let taken = runtime
        .block_on(leader.make_node(with_id("cafe-3", renamed)))
        .unwrap_err();
    assert_eq!(
        dfs_proto::FsError::from_status(&taken),
        dfs_proto::FsError::Exists
    );
}
