//! Writer leases: one holder at a time, expiry and recovery, persistence across a restart,
//! and the chunk version bump of a new holder.

use std::time::{Duration, Instant};

use dfs_proto::{FsError, ROOT_INO};

use super::{Fixture, fs_err, ts};

/// The default lease time-to-live the fixture's master runs with.
fn ttl(fx: &Fixture) -> Duration {
    fx.master.leases().ttl()
}

#[test]
fn one_holder_at_a_time_until_the_lease_expires() {
    let fx = Fixture::new();
    let ino = fx.file(ROOT_INO, "f");
    let leases = fx.master.leases();
    let t0 = Instant::now();
    let first = leases.acquire(ino, "a", t0).unwrap();
    assert!(!first.recover);
    // The holder may ask again (another handle of the same mount): same grant.
    assert_eq!(leases.acquire(ino, "a", t0).unwrap(), first);
    assert_eq!(fs_err(leases.acquire(ino, "b", t0)), FsError::Busy);
    // Renewals keep it alive past the first time-to-live.
    let t1 = t0 + ttl(&fx) / 2;
    leases.renew(ino, "a", t1).unwrap();
    let t2 = t0 + ttl(&fx) + Duration::from_millis(1);
    assert_eq!(fs_err(leases.acquire(ino, "b", t2)), FsError::Busy);
    // Unrenewed, it expires; the next holder must recover the file.
    let t3 = t1 + ttl(&fx) + Duration::from_millis(1);
    let second = leases.acquire(ino, "b", t3).unwrap();
    assert!(second.recover);
    assert!(second.generation > first.generation);
    // The old holder has lost it.
    assert!(matches!(
        fs_err(leases.renew(ino, "a", t3)),
        FsError::Stale(_)
    ));
    assert!(matches!(
        fs_err(leases.generation(ino, "a")),
        FsError::Stale(_)
    ));
    // A released lease is free at once, with nothing to recover; releasing twice is harmless.
    leases.release(ino, "b").unwrap();
    leases.release(ino, "b").unwrap();
    let third = leases.acquire(ino, "c", t3).unwrap();
    assert!(!third.recover);
}

#[test]
fn a_batch_of_releases_frees_only_the_holders_leases() {
    let fx = Fixture::new();
    let (f, g, h) = (
        fx.file(ROOT_INO, "f"),
        fx.file(ROOT_INO, "g"),
        fx.file(ROOT_INO, "h"),
    );
    let leases = fx.master.leases();
    let now = Instant::now();
    leases.acquire(f, "a", now).unwrap();
    leases.acquire(g, "a", now).unwrap();
    leases.acquire(h, "b", now).unwrap();
    // h is b's and stays so; an inode a never held is ignored.
    leases.release_many(&[f, g, h, 999], "a").unwrap();
    assert!(!leases.acquire(f, "c", now).unwrap().recover);
    assert!(!leases.acquire(g, "c", now).unwrap().recover);
    assert_eq!(fs_err(leases.acquire(h, "c", now)), FsError::Busy);
}

#[test]
fn only_regular_files_have_leases() {
    let fx = Fixture::new();
    let dir = fx.dir(ROOT_INO, "d");
    let now = Instant::now();
    assert_eq!(
        fs_err(fx.master.leases().acquire(dir, "a", now)),
        FsError::IsDir
    );
    assert_eq!(
        fs_err(fx.master.leases().acquire(999, "a", now)),
        FsError::NotFound
    );
    let file = fx.file(ROOT_INO, "f");
    assert!(matches!(
        fs_err(fx.master.leases().acquire(file, "", now)),
        FsError::Invalid(_)
    ));
}

#[test]
fn a_restarted_master_honours_leases_for_a_full_time_to_live() {
    let fx = Fixture::new();
    let ino = fx.file(ROOT_INO, "f");
    let first = fx
        .master
        .leases()
        .acquire(ino, "a", Instant::now())
        .unwrap();
    let fx = fx.reopen();
    let leases = fx.master.leases();
    let now = Instant::now();
    assert_eq!(fs_err(leases.acquire(ino, "b", now)), FsError::Busy);
    // The holder keeps it without a gap.
    assert_eq!(leases.acquire(ino, "a", now).unwrap(), first);
    leases.release(ino, "a").unwrap();
    let fx = fx.reopen();
    // A released lease stays released.
    let grant = fx
        .master
        .leases()
        .acquire(ino, "b", Instant::now())
        .unwrap();
    // A new generation: past every one handed out before the restart (the counter restarts
    // at its synced reservation, see `Txn::next_id`).
    assert!(!grant.recover);
    assert!(grant.generation > first.generation);
}

#[test]
fn a_new_holder_raises_chunk_versions_to_what_it_stamped() {
    let fx = Fixture::new();
    let ino = fx.file(ROOT_INO, "f");
    let chunk_map = fx.master.chunk_map();
    let v1 = chunk_map.allocate_chunk(ino, 0, vec![1]).unwrap().version;
    // Asking without a higher version changes nothing (a writer re-fetching its chunk).
    let same = chunk_map.raise_version(ino, 0, 0).unwrap().unwrap();
    assert_eq!(same.version, v1);
    let raised = chunk_map.raise_version(ino, 0, v1 + 1).unwrap().unwrap();
    assert_eq!(raised.version, v1 + 1);
    // Versions never go back.
    assert_eq!(
        chunk_map
            .raise_version(ino, 0, v1)
            .unwrap()
            .unwrap()
            .version,
        v1 + 1
    );
    assert_eq!(chunk_map.raise_version(ino, 1, 5).unwrap(), None);
    // A commit from the old holder is refused as stale.
    let old = dfs_proto::pb::ChunkCommit {
        index: 0,
        chunk_id: raised.chunk_id,
        version: v1,
        length: 10,
        placed_servers: Vec::new(),
    };
    assert!(matches!(
        fs_err(chunk_map.commit_write(ino, &[old], 10, None, None, ts(5))),
        FsError::Stale(_)
    ));
}

#[test]
fn removing_a_file_forgets_its_lease() {
    let fx = Fixture::new();
    let ino = fx.file(ROOT_INO, "f");
    fx.master
        .leases()
        .acquire(ino, "a", Instant::now())
        .unwrap();
    fx.ns().unlink(ROOT_INO, b"f", ts(20)).unwrap();
    // After a restart the lease is not honoured any more (the record went with the inode).
    let fx = fx.reopen();
    assert!(matches!(
        fs_err(fx.master.leases().generation(ino, "a")),
        FsError::Stale(_)
    ));
}
