//! Advisory locks: POSIX range rules (coexisting readers, exclusive writers, splitting,
//! conversion, merging), release by owner, session expiry, and locks kept across a restart.

use std::time::{Duration, Instant};

use dfs_proto::FsError;

use super::Fixture;
use crate::error::Error;
use crate::locks::{HeldLock, LockKind, LockSpec, LockTable, Owner};

const INO: u64 = 7;
const EOF: u64 = i64::MAX as u64;

fn owner(session: &str, owner: u64) -> Owner {
    Owner {
        session: session.into(),
        owner,
    }
}

fn spec(who: &Owner, start: u64, end: u64) -> LockSpec {
    LockSpec {
        ino: INO,
        owner: who.clone(),
        start,
        end,
        pid: 100 + who.owner as u32,
    }
}

/// The locks on `INO` as (start, end, kind) triples in range order.
fn ranges(table: &LockTable, now: Instant) -> Vec<(u64, u64, LockKind)> {
    table
        .held(INO, now)
        .into_iter()
        .map(|held| (held.start, held.end, held.kind))
        .collect()
}

#[test]
fn readers_share_writers_exclude_and_disjoint_ranges_coexist() {
    let fx = Fixture::new();
    let table = fx.master.locks();
    let now = Instant::now();
    let (a, b) = (owner("m1", 1), owner("m2", 1));
    assert_eq!(
        table.lock(&spec(&a, 0, 99), LockKind::Read, now).unwrap(),
        None
    );
    assert_eq!(
        table.lock(&spec(&b, 50, 149), LockKind::Read, now).unwrap(),
        None
    );
    // A write lock over a reader of another owner is refused, naming that reader.
    let conflict = table
        .lock(&spec(&b, 0, 9), LockKind::Write, now)
        .unwrap()
        .expect("conflict");
    assert_eq!((conflict.start, conflict.end, conflict.pid), (0, 99, 101));
    assert_eq!(conflict.owner, a);
    // Disjoint ranges coexist even for writers.
    assert_eq!(
        table
            .lock(&spec(&b, 200, 299), LockKind::Write, now)
            .unwrap(),
        None
    );
    assert_eq!(
        table
            .lock(&spec(&a, 300, EOF), LockKind::Write, now)
            .unwrap(),
        None
    );
    // The same number in two sessions is two owners.
    let conflict = table.test(&spec(&owner("m2", 1), 300, 300), LockKind::Read, now);
    assert_eq!(conflict.unwrap().unwrap().end, EOF);
    // A reader is in the way only of other owners' writers, never of its own.
    let conflict = table.test(&spec(&a, 0, EOF), LockKind::Read, now).unwrap();
    assert_eq!(conflict.map(|held| held.start), Some(200));
}

#[test]
fn unlocking_the_middle_splits_a_lock_and_a_new_kind_replaces_the_old() {
    let fx = Fixture::new();
    let table = fx.master.locks();
    let now = Instant::now();
    let a = owner("m1", 1);
    table.lock(&spec(&a, 0, 99), LockKind::Write, now).unwrap();
    table.unlock(&spec(&a, 40, 59), now).unwrap();
    assert_eq!(
        ranges(table, now),
        vec![(0, 39, LockKind::Write), (60, 99, LockKind::Write)]
    );
    // Downgrading a piece splits again; another owner may now read there only.
    table.lock(&spec(&a, 80, 89), LockKind::Read, now).unwrap();
    assert_eq!(
        ranges(table, now),
        vec![
            (0, 39, LockKind::Write),
            (60, 79, LockKind::Write),
            (80, 89, LockKind::Read),
            (90, 99, LockKind::Write)
        ]
    );
    let b = owner("m2", 9);
    assert_eq!(
        table.lock(&spec(&b, 85, 85), LockKind::Read, now).unwrap(),
        None
    );
    assert!(
        table
            .lock(&spec(&b, 40, 60), LockKind::Read, now)
            .unwrap()
            .is_some()
    );
    // Adjacent locks of one owner and kind merge.
    table.lock(&spec(&a, 40, 59), LockKind::Write, now).unwrap();
    assert_eq!(ranges(table, now)[0], (0, 79, LockKind::Write));
}

#[test]
fn closing_releases_one_owner_and_a_dead_session_releases_all_its_locks() {
    let fx = Fixture::new();
    let table = fx.master.locks();
    let t0 = Instant::now();
    let ttl = table.ttl();
    let (a1, a2, b) = (owner("m1", 1), owner("m1", 2), owner("m2", 1));
    table.lock(&spec(&a1, 0, 9), LockKind::Write, t0).unwrap();
    table.lock(&spec(&a2, 10, 19), LockKind::Write, t0).unwrap();
    table.release_owner(INO, &a1, t0).unwrap();
    assert_eq!(ranges(table, t0), vec![(10, 19, LockKind::Write)]);

    // m2 keeps renewing, m1 stops: after a time-to-live m1's locks are gone.
    let t1 = t0 + ttl / 2;
    assert!(table.renew("m2", t1) || table.renew("m2", t1));
    assert_eq!(
        table.lock(&spec(&b, 0, 9), LockKind::Write, t1).unwrap(),
        None
    );
    let blocked: Option<HeldLock> = table.lock(&spec(&b, 10, 19), LockKind::Write, t1).unwrap();
    assert_eq!(blocked.unwrap().owner, a2);
    let t2 = t0 + ttl + Duration::from_millis(1);
    assert_eq!(
        table.lock(&spec(&b, 10, 19), LockKind::Write, t2).unwrap(),
        None
    );
    // The dead session is unknown when it comes back.
    assert!(!table.renew("m1", t2));
    assert!(table.renew("m1", t2));

    // Ending a session drops its locks at once.
    table.end_session("m2", t2).unwrap();
    assert!(ranges(table, t2).is_empty());
}

#[test]
fn a_restarted_master_keeps_the_locks_for_a_time_to_live() {
    let fx = Fixture::new();
    let t0 = Instant::now();
    let (a, b, c) = (owner("m1", 1), owner("m2", 1), owner("m3", 1));
    let table = fx.master.locks();
    table.lock(&spec(&a, 0, 99), LockKind::Write, t0).unwrap();
    table.lock(&spec(&b, 100, 199), LockKind::Read, t0).unwrap();
    table.unlock(&spec(&a, 40, 49), t0).unwrap();
    let before = ranges(table, t0);

    let fx = fx.reopen();
    let table = fx.master.locks();
    let t1 = Instant::now();
    assert_eq!(ranges(table, t1), before);
    assert!(
        table
            .lock(&spec(&c, 0, 0), LockKind::Read, t1)
            .unwrap()
            .is_some()
    );
    // m1 comes back in time: its session is known. m2 never does: its lock goes.
    assert!(table.renew("m1", t1 + table.ttl() / 2));
    let t2 = t1 + table.ttl() + Duration::from_millis(1);
    assert_eq!(
        ranges(table, t2),
        vec![(0, 39, LockKind::Write), (50, 99, LockKind::Write)]
    );
    // The expiry was recorded too.
    let fx = fx.reopen();
    assert_eq!(ranges(fx.master.locks(), Instant::now()).len(), 2);
}

#[test]
fn malformed_requests_are_refused() {
    let fx = Fixture::new();
    let table = fx.master.locks();
    let now = Instant::now();
    let bad = |spec: LockSpec| match table.lock(&spec, LockKind::Read, now) {
        Err(Error::Fs(FsError::Invalid(_))) => {}
        other => panic!("expected EINVAL, got {other:?}"),
    };
    bad(spec(&owner("", 1), 0, 9));
    bad(spec(&owner("m1", 1), 10, 9));
}
