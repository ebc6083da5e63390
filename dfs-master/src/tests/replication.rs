//! Re-replication planning against a real RocksDB, with the clock passed in: dead servers'
//! chunks get copies planned and handed out through heartbeats, finished copies join the
//! record, surplus and corrupt replicas are dropped, draining servers empty.

use std::time::{Duration, Instant};

use dfs_proto::ROOT_INO;
use dfs_proto::pb;

use super::{CHUNK, Fixture};
use crate::chunks::Chunk;
use crate::cluster::registry::ServerState;

/// Past the default dead timeout (120 s) of the fixture's master.
const LATER: Duration = Duration::from_secs(300);

impl Fixture {
    /// A heartbeat of `server_id` reporting finished `copies` and `corrupt` replicas.
    fn beat(
        &self,
        server_id: u64,
        copies: Vec<pb::ChunkReplicaReport>,
        corrupt: Vec<u64>,
        now: Instant,
    ) -> pb::HeartbeatReply {
        let req = pb::HeartbeatRequest {
            server_id,
            capacity_bytes: 100 * CHUNK,
            free_bytes: 50 * CHUNK,
            replicated: copies,
            corrupt_chunks: corrupt,
            ..Default::default()
        };
        self.master.heartbeat(&req, now).unwrap()
    }

    /// A file `name` in the root whose chunk 0, on `servers`, holds 10 committed bytes.
    fn written_file(&self, name: &str, servers: &[u64]) -> (u64, Chunk) {
        let ino = self.file(ROOT_INO, name);
        let map = self.master.chunk_map();
        let chunk = map.allocate_chunk(ino, 0, servers.to_vec()).unwrap();
        let commit = pb::ChunkCommit {
            index: 0,
            chunk_id: chunk.chunk_id,
            version: chunk.version,
            length: 10,
            placed_servers: Vec::new(),
        };
        map.commit_write(ino, &[commit], 10, None, None, super::ts(20))
            .unwrap();
        (ino, chunk)
    }

    fn replicas(&self, ino: u64) -> Vec<u64> {
        let chunk = self.master.chunk_map().chunk(ino, 0).unwrap().unwrap();
        chunk.replicas
    }

    fn queued_deletions(&self, server_id: u64) -> Vec<u64> {
        self.master
            .namespace()
            .writer
            .store()
            .deletions(server_id)
            .unwrap()
    }
}

fn copy_of(command: &pb::ReplicateCommand) -> pb::ChunkReplicaReport {
    pb::ChunkReplicaReport {
        chunk_id: command.chunk_id,
        version: command.version,
        length: 0,
    }
}

#[test]
fn a_dead_servers_chunk_is_copied_to_a_live_server_and_the_dead_replica_dropped() {
    let fx = Fixture::new();
    let start = Instant::now();
    let ids = fx.register_all(&["a", "b", "c", "d"], start);
    let ino = fx.file(ROOT_INO, "f");
    let chunk = fx
        .master
        .chunk_map()
        .allocate_chunk(ino, 0, ids[..3].to_vec())
        .unwrap();

    // Everyone but `a` keeps heartbeating; once `a` is dead, a copy goes to `d`.
    let later = start + LATER;
    for &id in &ids[1..] {
        fx.beat(id, vec![], vec![], later);
    }
    let states = fx.master.registry().snapshot(later);
    assert_eq!(states[0].state, ServerState::Dead);
    fx.master.check_replication(later, 7).unwrap();
    assert_eq!(
        fx.master.replication().counts().0.unwrap().under_replicated,
        1
    );
    let reply = fx.beat(ids[3], vec![], vec![], later);
    let [command] = reply.replicate.as_slice() else {
        panic!("one copy for d, got {:?}", reply.replicate);
    };
    assert_eq!((command.chunk_id, command.version), (chunk.chunk_id, 1));
    assert!(command.source.ends_with(".test:7000") && !command.source.starts_with("a."));
    // Handed out once; a second check does not plan the same copy again.
    fx.master.check_replication(later, 8).unwrap();
    assert!(fx.beat(ids[3], vec![], vec![], later).replicate.is_empty());

    // The finished copy joins the record; the next check drops the dead replica.
    fx.beat(ids[3], vec![copy_of(command)], vec![], later);
    assert_eq!(fx.replicas(ino), [ids[0], ids[1], ids[2], ids[3]]);
    fx.master.check_replication(later, 9).unwrap();
    assert_eq!(fx.replicas(ino), [ids[1], ids[2], ids[3]]);
    assert_eq!(fx.queued_deletions(ids[0]), [chunk.chunk_id]);
    assert_eq!(
        fx.master.replication().counts(),
        (
            Some(crate::cluster::replication::HealthCounts {
                chunks: 1,
                ..Default::default()
            }),
            0
        )
    );
}

#[test]
fn surplus_and_corrupt_replicas_are_dropped_and_draining_servers_emptied() {
    let fx = Fixture::new();
    let now = Instant::now();
    let ids = fx.register_all(&["a", "b", "c", "d"], now);
    let ino = fx.file(ROOT_INO, "f");
    let chunk = fx
        .master
        .chunk_map()
        .allocate_chunk(ino, 0, ids.clone())
        .unwrap();

    // Four replicas for a replication of 3: one is trimmed.
    fx.master.check_replication(now, 1).unwrap();
    assert_eq!(fx.replicas(ino).len(), 3);
    let trimmed = *ids
        .iter()
        .find(|id| !fx.replicas(ino).contains(id))
        .unwrap();
    assert_eq!(fx.queued_deletions(trimmed), [chunk.chunk_id]);

    // A corrupt replica leaves the record and is queued for deletion.
    let holders = fx.replicas(ino);
    fx.beat(holders[0], vec![], vec![chunk.chunk_id], now);
    assert_eq!(fx.replicas(ino), holders[1..]);
    assert_eq!(fx.queued_deletions(holders[0]), [chunk.chunk_id]);

    // Decommissioning a holder: a copy is planned elsewhere, then the drained one dropped.
    let drained = holders[1];
    fx.master
        .registry()
        .decommission(&drained.to_string())
        .unwrap();
    fx.master.check_replication(now, 2).unwrap();
    let mut commands = Vec::new();
    for &id in &ids {
        let reply = fx.beat(id, vec![], vec![], now);
        for command in reply.replicate {
            commands.push((id, command));
        }
    }
    assert_eq!(commands.len(), 1, "{commands:?}");
    let (target, command) = &commands[0];
    assert_ne!(*target, drained);
    fx.beat(*target, vec![copy_of(command)], vec![], now);
    // Still short: a second copy, then the draining replica goes (and is deleted).
    let mut deleted_on_drained = false;
    for round in 3..6 {
        fx.master.check_replication(now, round).unwrap();
        for &id in &ids {
            let reply = fx.beat(id, vec![], vec![], now);
            let copies: Vec<_> = reply.replicate.iter().map(copy_of).collect();
            let later_reply = fx.beat(id, copies, vec![], now);
            if id == drained {
                deleted_on_drained |= reply.delete_chunks.contains(&chunk.chunk_id)
                    || later_reply.delete_chunks.contains(&chunk.chunk_id);
            }
        }
    }
    let replicas = fx.replicas(ino);
    assert_eq!(replicas.len(), 3, "{replicas:?}");
    assert!(!replicas.contains(&drained));
    assert!(deleted_on_drained, "the drained replica was not deleted");
    let states = fx.master.registry().snapshot(now);
    let state = states
        .iter()
        .find(|s| s.server_id == drained)
        .unwrap()
        .state;
    assert_eq!(state, ServerState::Draining);
}

#[test]
fn draining_survives_a_master_restart_and_a_server_restart() {
    let fx = Fixture::new();
    let now = Instant::now();
    let id = fx.register("a", 10 * CHUNK, now);
    fx.master.registry().decommission("a.test:7000").unwrap();
    let fx = fx.reopen();
    // The flag is persisted: draining before the server reports again, and after it
    // registers again under the same id.
    let state = |fx: &Fixture, now| fx.master.registry().snapshot(now)[0].state;
    assert_eq!(state(&fx, Instant::now()), ServerState::Draining);
    let now = Instant::now();
    assert_eq!(fx.register("a", 10 * CHUNK, now), id);
    assert_eq!(state(&fx, now), ServerState::Draining);
    assert!(fx.master.registry().candidates(now).is_empty());
    assert!(fx.master.registry().decommission("nobody").is_err());
}

#[test]
fn a_restarted_master_reports_no_health_until_it_has_heard_every_server() {
    let fx = Fixture::new();
    let now = Instant::now();
    let ids = fx.register_all(&["a", "b", "c"], now);
    fx.written_file("f", &ids[..2]);
    let fx = fx.reopen();

    // `c` has not reported since the restart: it counts as healthy for now, so a cycle
    // would report the two-replica chunk as fine or not, depending on a guess. No counts.
    let now = Instant::now();
    fx.beat(ids[0], vec![], vec![], now);
    fx.beat(ids[1], vec![], vec![], now);
    fx.master.check_replication(now, 1).unwrap();
    assert_eq!(fx.master.replication().counts().0, None);

    // Once every server has reported, the next cycle counts.
    fx.beat(ids[2], vec![], vec![], now);
    fx.master.check_replication(now, 2).unwrap();
    let counts = fx
        .master
        .replication()
        .counts()
        .0
        .expect("counts after a full cycle");
    assert_eq!((counts.chunks, counts.under_replicated), (1, 1));
}

#[test]
fn a_replica_missing_from_a_full_report_is_copied_again_and_failed_copies_are_replanned() {
    let fx = Fixture::new();
    let now = Instant::now();
    let ids = fx.register_all(&["a", "b", "c", "d"], now);
    let (ino, chunk) = fx.written_file("f", &ids[..3]);
    let empty = fx.file(ROOT_INO, "empty");
    let map = fx.master.chunk_map();
    map.allocate_chunk(empty, 0, ids[..3].to_vec()).unwrap();

    // `a` reports nothing: the written chunk no longer counts it; the unwritten one does.
    let report = pb::HeartbeatRequest {
        server_id: ids[0],
        full_report: true,
        ..Default::default()
    };
    fx.master.heartbeat(&report, now).unwrap();
    assert_eq!(fx.replicas(ino), ids[1..3]);
    assert_eq!(fx.replicas(empty), ids[..3]);

    // The copy goes to `a` or `d`; when it fails, the next check plans it again.
    fx.master.check_replication(now, 3).unwrap();
    let commands = |fx: &Fixture| -> Vec<(u64, pb::ReplicateCommand)> {
        [ids[0], ids[3]]
            .iter()
            .flat_map(|&id| {
                let reply = fx.beat(id, vec![], vec![], now);
                reply.replicate.into_iter().map(move |c| (id, c))
            })
            .collect()
    };
    let first = commands(&fx);
    assert_eq!(first.len(), 1, "{first:?}");
    fx.master.check_replication(now, 4).unwrap();
    assert!(commands(&fx).is_empty(), "planned twice while in flight");
    let req = pb::HeartbeatRequest {
        server_id: first[0].0,
        failed_copies: vec![chunk.chunk_id],
        ..Default::default()
    };
    fx.master.heartbeat(&req, now).unwrap();
    fx.master.check_replication(now, 5).unwrap();
    assert_eq!(commands(&fx).len(), 1);
}

#[test]
fn a_full_report_listed_before_a_commit_does_not_lose_the_new_replica() {
    let fx = Fixture::new();
    let now = Instant::now();
    let ids = fx.register_all(&["a", "b", "c"], now);
    let ino = fx.file(ROOT_INO, "f");
    let chunk = fx
        .master
        .chunk_map()
        .allocate_chunk(ino, 0, ids.clone())
        .unwrap();
    let commit = pb::CommitWriteRequest {
        ino,
        chunks: vec![pb::ChunkCommit {
            index: 0,
            chunk_id: chunk.chunk_id,
            version: chunk.version,
            length: 10,
            placed_servers: Vec::new(),
        }],
        size: 10,
        ..Default::default()
    };
    fx.master.commit_write(&commit, super::ts(20), now).unwrap();

    // `a` listed its replicas just before the chain write created this one, and the report
    // arrives just after the commit: the replica is on its disk, only not in the list.
    let report = pb::HeartbeatRequest {
        server_id: ids[0],
        full_report: true,
        ..Default::default()
    };
    fx.master
        .heartbeat(&report, now + Duration::from_secs(1))
        .unwrap();
    assert_eq!(fx.replicas(ino), ids);

    // A report that still lacks it once the grace (the heartbeat timeout) has passed means
    // the replica is gone.
    let later = now + Duration::from_secs(fx.config.heartbeat_timeout_secs + 1);
    fx.master.heartbeat(&report, later).unwrap();
    assert_eq!(fx.replicas(ino), ids[1..]);
}

#[test]
fn a_chunk_map_larger_than_one_check_is_walked_over_several() {
    let fx = Fixture::with(|config| {
        config.replication_scan_chunks = 2;
        config.max_copies_per_server = 16;
    });
    let start = Instant::now();
    let ids = fx.register_all(&["a", "b", "c", "d"], start);
    let map = fx.master.chunk_map();
    let mut chunk_ids: Vec<u64> = (0..5)
        .map(|i| {
            let ino = fx.file(ROOT_INO, &format!("f{i}"));
            map.allocate_chunk(ino, 0, ids[..3].to_vec())
                .unwrap()
                .chunk_id
        })
        .collect();
    chunk_ids.sort_unstable();
    let later = start + LATER;
    for &id in &ids[1..] {
        fx.beat(id, vec![], vec![], later);
    }

    // Two chunks a check: the first two checks plan two copies each and, the cycle being
    // incomplete, publish no counts yet.
    let mut copied = Vec::new();
    for round in 1..=2 {
        fx.master.check_replication(later, round).unwrap();
        assert_eq!(fx.master.replication().counts().0, None);
        let reply = fx.beat(ids[3], vec![], vec![], later);
        assert_eq!(reply.replicate.len(), 2, "round {round}");
        copied.extend(reply.replicate.iter().map(|c| c.chunk_id));
    }
    // The third reads the last chunk and completes the cycle: the counts cover the whole map.
    fx.master.check_replication(later, 3).unwrap();
    let counts = crate::cluster::replication::HealthCounts {
        chunks: 5,
        under_replicated: 5,
        ..Default::default()
    };
    assert_eq!(fx.master.replication().counts(), (Some(counts), 5));
    let reply = fx.beat(ids[3], vec![], vec![], later);
    copied.extend(reply.replicate.iter().map(|c| c.chunk_id));
    copied.sort_unstable();
    assert_eq!(copied, chunk_ids, "every chunk copied once");
    // The next cycle starts over and plans nothing twice while the copies are in flight.
    for round in 4..=6 {
        fx.master.check_replication(later, round).unwrap();
    }
    assert!(fx.beat(ids[3], vec![], vec![], later).replicate.is_empty());
}

#[test]
fn a_full_report_is_reconciled_with_the_whole_map_a_page_at_a_time() {
    let fx = Fixture::with(|config| config.replication_scan_chunks = 2);
    let now = Instant::now();
    let ids = fx.register_all(&["a", "b", "c"], now);
    let files: Vec<(u64, pb::ChunkReplicaReport)> = (0..5)
        .map(|i| {
            let (ino, chunk) = fx.written_file(&format!("f{i}"), &ids);
            let replica = pb::ChunkReplicaReport {
                chunk_id: chunk.chunk_id,
                version: chunk.version,
                length: 10,
            };
            (ino, replica)
        })
        .collect();

    // `a` reports the first and the last file's replicas only (past the report grace): the
    // three in between, on every page of the walk, no longer count it.
    let report = pb::HeartbeatRequest {
        server_id: ids[0],
        full_report: true,
        chunks: vec![files[0].1, files[4].1],
        ..Default::default()
    };
    let later = now + Duration::from_secs(fx.config.heartbeat_timeout_secs + 1);
    fx.master.heartbeat(&report, later).unwrap();
    for (i, &(ino, _)) in files.iter().enumerate() {
        let want = if i == 0 || i == 4 {
            &ids[..]
        } else {
            &ids[1..]
        };
        assert_eq!(fx.replicas(ino), want, "file {i}");
    }
}
