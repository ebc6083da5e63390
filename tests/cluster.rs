//! Cluster management on four chunkservers with short timeouts: a dead server's chunks return
//! to replication 3, a returning server's stale replicas are deleted, deleted and truncated
//! files free disk space, orphaned replica files go after the grace period, the scrubber
//! finds and repairs a corrupt replica, a decommissioned server drains, racks are spread, and
//! an empty server that joins is filled by balancing.
//! Everything is observed through the `dfs` admin CLI and the chunkservers' disks.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dfs_tests::{
    Cluster, ClusterOptions, pseudo_random_bytes, report_value, status_healthy, wait_until,
};

/// Chunk size of these tests: small, so a few MiB make many chunks.
const CHUNK: u64 = 1 << 20;
/// Hang detector for anything the cluster does by itself.
const LIMIT: Duration = Duration::from_secs(90);

/// Four chunkservers, replication 3, and every cluster-management timer short.
fn options() -> ClusterOptions {
    let args = |list: &[&str]| list.iter().map(|s| s.to_string()).collect();
    ClusterOptions {
        chunkservers: 4,
        chunk_size: CHUNK,
        master_args: args(&[
            "--heartbeat-timeout-secs",
            "1",
            "--dead-timeout-secs",
            "3",
            "--orphan-grace-secs",
            "4",
            "--replication-interval-ms",
            "300",
        ]),
        chunkserver_args: args(&[
            "--full-report-every",
            "2",
            "--scrub-bytes-per-sec",
            "67108864",
        ]),
        ..Default::default()
    }
}

/// Whether `dfs status` and `dfs fsck` agree that every chunk has its full replication.
fn fully_replicated(cluster: &Cluster) -> bool {
    let status = cluster.dfs(&["status"]);
    let fsck = cluster.dfs(&["fsck"]);
    status_healthy(&status) && fsck.contains("status: HEALTHY")
}

/// The `dfs status` line of chunkserver `i`.
fn status_line(cluster: &Cluster, i: usize) -> String {
    let addr = cluster.chunkserver_addr(i);
    let status = cluster.dfs(&["status"]);
    status
        .lines()
        .find(|l| l.contains(&format!(" {addr} ")))
        .unwrap_or_else(|| panic!("server {addr} not in:\n{status}"))
        .to_string()
}

/// The replica count `dfs status` shows for chunkserver `i`.
fn replicas_of(cluster: &Cluster, i: usize) -> u64 {
    let line = status_line(cluster, i);
    let fields: Vec<&str> = line.split_whitespace().collect();
    // ID STATE RACK ADDRESS CAPACITY(2) FREE(2) REPLICAS LOAD HEARTBEAT
    fields[fields.len() - 3].parse().expect("replica count")
}

/// One replica line of `dfs info`: the server's rack and state.
struct ReplicaLine {
    rack: String,
    state: String,
}

/// For each chunk line of `dfs info`, the replicas listed under it.
fn info_chunks(info: &str) -> Vec<(String, Vec<ReplicaLine>)> {
    let mut chunks: Vec<(String, Vec<ReplicaLine>)> = Vec::new();
    for line in info.lines() {
        if line.starts_with("chunk ") {
            chunks.push((line.to_string(), Vec::new()));
        } else if let Some(rest) = line.strip_prefix("  server ") {
            let f: Vec<&str> = rest.split_whitespace().collect();
            // id addr rack R state
            let replica = ReplicaLine {
                rack: f[3].to_string(),
                state: f[4].to_string(),
            };
            chunks
                .last_mut()
                .expect("a chunk line first")
                .1
                .push(replica);
        }
    }
    chunks
}

fn write_files(m: &Path, seed: u64, files: &[(&str, usize)]) -> Vec<(PathBuf, Vec<u8>)> {
    files
        .iter()
        .enumerate()
        .map(|(i, (name, len))| {
            let data = pseudo_random_bytes(seed + i as u64, *len);
            fs::write(m.join(name), &data).unwrap();
            (m.join(name), data)
        })
        .collect()
}

fn assert_contents(files: &[(PathBuf, Vec<u8>)]) {
    for (path, data) in files {
        assert!(
            fs::read(path).unwrap() == *data,
            "{} differs",
            path.display()
        );
    }
}

#[test]
fn a_dead_server_is_re_replicated_and_its_stale_replicas_deleted_when_it_returns() {
    let mut cluster = Cluster::start(options());
    let mount = cluster.mount();
    let files = write_files(
        mount.path(),
        1,
        &[("big", 8 * CHUNK as usize + 77), ("small", 5000)],
    );
    wait_until(LIMIT, "the new files are fully replicated", || {
        fully_replicated(&cluster)
    });
    let victim = 0;
    let held = replicas_of(&cluster, victim);
    assert!(held > 0, "chunkserver {victim} holds no replica");
    let addr = cluster.chunkserver_addr(victim);

    let killed = Instant::now();
    cluster.stop_chunkserver(victim, libc::SIGKILL);
    wait_until(
        LIMIT,
        "the dead server's chunks are copied elsewhere",
        || {
            let line = status_line(&cluster, victim);
            let info = cluster.dfs(&["info", "big"]);
            line.contains(" dead ")
                && fully_replicated(&cluster)
                && !info.contains(&addr)
                && info.matches(" 3/3 ok").count() == 9
        },
    );
    println!(
        "{held} replicas of a dead chunkserver re-replicated {:?} after it was killed \
         (dead timeout 3 s)",
        killed.elapsed()
    );
    println!("{}", cluster.dfs(&["status"]));
    assert_eq!(replicas_of(&cluster, victim), 0);
    assert_contents(&files);

    // It comes back with the replicas it had: stale now, and deleted.
    assert_eq!(cluster.replica_files(victim).len() as u64, held);
    cluster.restart_chunkserver(victim);
    wait_until(
        LIMIT,
        "the returning server deletes its stale replicas",
        || cluster.replica_files(victim).is_empty(),
    );
    assert!(status_line(&cluster, victim).contains(" active "));
    assert!(fully_replicated(&cluster));
    assert_contents(&files);
}

#[test]
fn deleting_and_truncating_files_frees_chunkserver_space() {
    let cluster = Cluster::start(options());
    let mount = cluster.mount();
    let m = mount.path();
    let used = |cluster: &Cluster| (0..4).map(|i| cluster.replica_bytes(i)).sum::<u64>();
    write_files(
        m,
        7,
        &[("large", 12 * CHUNK as usize), ("cut", 6 * CHUNK as usize)],
    );
    let before = used(&cluster);
    assert!(before >= 3 * 18 * CHUNK, "only {before} bytes of replicas");

    fs::remove_file(m.join("large")).unwrap();
    wait_until(LIMIT, "the deleted file's replicas are gone", || {
        used(&cluster) == 3 * 6 * CHUNK
    });
    fs::OpenOptions::new()
        .write(true)
        .open(m.join("cut"))
        .unwrap()
        .set_len(CHUNK + 10)
        .unwrap();
    wait_until(LIMIT, "the truncated chunks' replicas are gone", || {
        used(&cluster) <= 3 * 2 * CHUNK
    });
    let status = cluster.dfs(&["status"]);
    assert_eq!(report_value(&status, "chunks"), 2, "{status}");
}

#[test]
fn an_unreferenced_replica_file_disappears_after_the_grace_period() {
    let mut cluster = Cluster::start(options());
    let mount = cluster.mount();
    let files = write_files(mount.path(), 3, &[("f", 3000)]);
    wait_until(LIMIT, "the file is replicated", || {
        fully_replicated(&cluster)
    });
    let holder = (0..4)
        .find(|&i| !cluster.replica_files(i).is_empty())
        .expect("some server holds the replica");

    // Plant a copy of the replica under a chunk id no file uses, while the server is down.
    cluster.stop_chunkserver(holder, libc::SIGTERM);
    let data = cluster.replica_files(holder)[0].clone();
    let orphan_id: u64 = 0x00de_ad00_0000_00aa;
    let dir = cluster
        .chunkserver_data_dir(holder)
        .join("chunks")
        .join(format!("{:02x}", orphan_id & 0xff));
    fs::create_dir_all(&dir).unwrap();
    let orphan = dir.join(format!("{orphan_id:016x}.data"));
    fs::copy(&data, &orphan).unwrap();
    fs::copy(data.with_extension("meta"), orphan.with_extension("meta")).unwrap();
    cluster.restart_chunkserver(holder);
    // Reported in the first heartbeat, but kept for the grace period (4 s) at least.
    assert!(orphan.exists(), "the orphan went at once");
    wait_until(LIMIT, "the orphan is deleted", || !orphan.exists());
    assert!(!orphan.with_extension("meta").exists());
    // The referenced replica stays.
    assert!(data.exists());
    assert_contents(&files);
}

#[test]
fn the_scrubber_finds_a_corrupt_replica_and_it_is_replaced() {
    let cluster = Cluster::start(options());
    let mount = cluster.mount();
    let files = write_files(mount.path(), 5, &[("data", 2 * CHUNK as usize)]);
    wait_until(LIMIT, "the file is replicated", || {
        fully_replicated(&cluster)
    });
    let expected = &files[0].1;

    // Flip bytes in the second chunk's replica on one server.
    let victim = (0..4)
        .find(|&i| cluster.replica_files(i).len() == 2)
        .or_else(|| (0..4).find(|&i| !cluster.replica_files(i).is_empty()))
        .unwrap();
    let corrupt = cluster.replica_files(victim).pop().unwrap();
    let name = corrupt.file_name().unwrap().to_owned();
    let original = fs::read(&corrupt).unwrap();
    let index = expected
        .chunks(CHUNK as usize)
        .position(|c| c == original.as_slice())
        .expect("replica holds one chunk of the file");
    let file = fs::OpenOptions::new().write(true).open(&corrupt).unwrap();
    file.write_all_at(b"bit rot!", 1000).unwrap();
    drop(file);

    // Repaired: three replicas of that chunk again, each with the right bytes.
    let good = &expected[index * CHUNK as usize..(index + 1) * CHUNK as usize];
    wait_until(LIMIT, "the corrupt replica is replaced", || {
        let copies: Vec<Vec<u8>> = (0..4)
            .flat_map(|i| cluster.replica_files(i))
            .filter(|p| p.file_name() == Some(name.as_os_str()))
            .filter_map(|p| fs::read(p).ok())
            .collect();
        copies.len() == 3 && copies.iter().all(|c| c == good) && fully_replicated(&cluster)
    });
    assert_contents(&files);
}

#[test]
fn a_decommissioned_server_drains_and_can_then_stop() {
    let mut cluster = Cluster::start(options());
    let mount = cluster.mount();
    let files = write_files(mount.path(), 9, &[("a", 5 * CHUNK as usize), ("b", 100)]);
    wait_until(LIMIT, "the files are replicated", || {
        fully_replicated(&cluster)
    });
    let drained = (0..4).max_by_key(|&i| replicas_of(&cluster, i)).unwrap();
    assert!(replicas_of(&cluster, drained) > 0);

    let addr = cluster.chunkserver_addr(drained);
    let out = cluster.dfs(&["decommission", &addr]);
    assert!(out.contains("draining"), "{out}");
    wait_until(LIMIT, "the server drains", || {
        replicas_of(&cluster, drained) == 0
            && fully_replicated(&cluster)
            && cluster.replica_files(drained).is_empty()
    });
    assert!(status_line(&cluster, drained).contains(" draining "));

    cluster.stop_chunkserver(drained, libc::SIGTERM);
    let fsck = cluster.dfs(&["fsck"]);
    assert!(fsck.contains("status: HEALTHY"), "{fsck}");
    assert_contents(&files);
}

#[test]
fn replicas_of_a_chunk_are_on_distinct_racks_also_after_a_failure() {
    let mut cluster = Cluster::start(ClusterOptions {
        racks: ["r1", "r1", "r2", "r3"].map(String::from).to_vec(),
        ..options()
    });
    let mount = cluster.mount();
    let files = write_files(mount.path(), 11, &[("x", 6 * CHUNK as usize)]);
    let racks_distinct = |cluster: &Cluster| {
        let info = cluster.dfs(&["info", "/x"]);
        let chunks = info_chunks(&info);
        chunks.len() == 6
            && chunks.iter().all(|(_, replicas)| {
                let live: Vec<_> = replicas.iter().filter(|r| r.state != "dead").collect();
                let racks: HashSet<&str> = live.iter().map(|r| r.rack.as_str()).collect();
                live.len() == 3 && racks.len() == 3
            })
    };
    wait_until(LIMIT, "the file is replicated", || {
        fully_replicated(&cluster)
    });
    assert!(racks_distinct(&cluster), "{}", cluster.dfs(&["info", "/x"]));

    // Losing a server of rack r1: the copies go to the other r1 server.
    cluster.stop_chunkserver(0, libc::SIGKILL);
    // Dead first: health observed before the death would be the old one.
    wait_until(LIMIT, "re-replicated across racks", || {
        status_line(&cluster, 0).contains(" dead ") && fully_replicated(&cluster)
    });
    assert!(racks_distinct(&cluster), "{}", cluster.dfs(&["info", "/x"]));
    assert_contents(&files);
}

#[test]
fn an_empty_server_that_joins_gets_replicas_until_usage_is_even() {
    let mut cluster = Cluster::start(ClusterOptions {
        chunkservers: 3,
        // 40 MiB per server, so usage is a fraction the test controls.
        capacity_bytes: Some(40 * CHUNK),
        ..options()
    });
    let mount = cluster.mount();
    let files = write_files(mount.path(), 13, &[("half", 20 * CHUNK as usize)]);
    wait_until(LIMIT, "the file is replicated", || {
        fully_replicated(&cluster)
    });

    let joined = cluster.add_chunkserver();
    let started = Instant::now();
    let spread = |cluster: &Cluster| {
        let used: Vec<u64> = (0..=joined).map(|i| cluster.replica_bytes(i)).collect();
        used.iter().max().unwrap() - used.iter().min().unwrap()
    };
    // The balancing spread is 10 % of 40 MiB; allow one more round of slack.
    wait_until(LIMIT, "usage is balanced", || {
        spread(&cluster) <= 6 * CHUNK && fully_replicated(&cluster)
    });
    println!(
        "balanced onto the new server in {:?}: {:?} bytes per server",
        started.elapsed(),
        (0..=joined)
            .map(|i| cluster.replica_bytes(i))
            .collect::<Vec<_>>()
    );
    assert!(cluster.replica_bytes(joined) >= 8 * CHUNK);
    assert_contents(&files);
}

#[test]
fn put_and_get_copy_files_without_a_mount() {
    let cluster = Cluster::start(options());
    let mount = cluster.mount();
    fs::create_dir(mount.join("in")).unwrap();
    let data = pseudo_random_bytes(17, 3 * CHUNK as usize + 4321);
    let local = cluster.dir().join("local.bin");
    fs::write(&local, &data).unwrap();

    let out = cluster.dfs(&["put", local.to_str().unwrap(), "/in/copied"]);
    assert!(out.contains(&format!("{} bytes", data.len())), "{out}");
    // Visible through a mount, and replicated like any file.
    assert!(fs::read(mount.join("in/copied")).unwrap() == data);
    let info = cluster.dfs(&["info", "in/copied"]);
    assert_eq!(report_value(&info, "chunks"), 4, "{info}");
    assert_eq!(info.matches(" 3/3 ok").count(), 4, "{info}");

    // Replacing it, and copying it out again.
    let shorter = &data[..1000];
    fs::write(&local, shorter).unwrap();
    // Right after the first put's process exited: it gave the file's lease up on its way out.
    let out = cluster.dfs(&["put", local.to_str().unwrap(), "in/copied"]);
    assert!(out.contains("1000 bytes"), "{out}");
    let back = cluster.dir().join("back.bin");
    cluster.dfs(&["get", "/in/copied", back.to_str().unwrap()]);
    assert_eq!(fs::read(&back).unwrap(), shorter);
}

#[test]
fn replicas_lost_from_a_disk_are_noticed_in_its_block_report_and_copied_again() {
    let mut cluster = Cluster::start(options());
    let mount = cluster.mount();
    let files = write_files(mount.path(), 19, &[("f", 3 * CHUNK as usize)]);
    wait_until(LIMIT, "the file is replicated", || {
        fully_replicated(&cluster)
    });
    let victim = (0..4)
        .max_by_key(|&i| cluster.replica_files(i).len())
        .unwrap();
    let lost = cluster.replica_files(victim);
    assert!(!lost.is_empty());

    // The server restarts without its replica files, as after losing them on disk.
    cluster.stop_chunkserver(victim, libc::SIGTERM);
    for data in &lost {
        fs::remove_file(data).unwrap();
        fs::remove_file(data.with_extension("meta")).unwrap();
    }
    cluster.restart_chunkserver(victim);
    wait_until(LIMIT, "the lost replicas are copied again", || {
        let copies: usize = (0..4).map(|i| cluster.replica_files(i).len()).sum();
        copies == 3 * 3 && fully_replicated(&cluster)
    });
    assert_contents(&files);
}

#[test]
fn fsck_walks_a_nested_tree_and_names_damaged_files() {
    let mut cluster = Cluster::start(options());
    let mount = cluster.mount();
    fs::create_dir_all(mount.join("a/b/c")).unwrap();
    fs::create_dir_all(mount.join("d")).unwrap();
    for (i, file) in ["top", "a/one", "a/b/two", "a/b/c/three", "d/four"]
        .iter()
        .enumerate()
    {
        fs::write(
            mount.join(file),
            pseudo_random_bytes(i as u64, CHUNK as usize + 10),
        )
        .unwrap();
    }
    std::os::unix::fs::symlink("top", mount.join("a/link")).unwrap();
    drop(mount);

    let fsck = cluster.dfs(&["fsck"]);
    assert_eq!(report_value(&fsck, "directories"), 5, "{fsck}");
    assert_eq!(report_value(&fsck, "files"), 5, "{fsck}");
    assert_eq!(report_value(&fsck, "chunks"), 10, "{fsck}");
    assert!(fsck.contains("status: HEALTHY"), "{fsck}");
    let sub = cluster.dfs(&["fsck", "a/b"]);
    assert_eq!(report_value(&sub, "directories"), 2, "{sub}");
    assert_eq!(report_value(&sub, "files"), 2, "{sub}");

    // Two of four servers gone for good: every chunk loses at least one of its three replicas
    // and two servers cannot restore them, so fsck reports damage, naming only real files.
    cluster.stop_chunkserver(0, libc::SIGKILL);
    cluster.stop_chunkserver(1, libc::SIGKILL);
    wait_until(LIMIT, "fsck sees the dead servers", || {
        cluster.dfs(&["fsck"]).contains("status: DAMAGED")
    });
    let damaged = cluster.dfs(&["fsck"]);
    let named: Vec<&str> = damaged
        .lines()
        .filter_map(|l| l.strip_prefix("damaged: "))
        .collect();
    assert!(!named.is_empty(), "{damaged}");
    for name in named {
        assert!(
            ["/top", "/a/one", "/a/b/two", "/a/b/c/three", "/d/four"].contains(&name),
            "{damaged}"
        );
    }
}
