//! Conversions between wire [`Timestamp`]s and [`SystemTime`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::pb::Timestamp;

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Timestamp {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp {
                secs: d.as_secs() as i64,
                nanos: d.subsec_nanos(),
            },
            Err(before) => {
                // Before 1970: keep nanos in [0, 1e9) with a negative second count.
                let d = before.duration();
                let mut secs = -(d.as_secs() as i64);
                let mut nanos = d.subsec_nanos();
                if nanos > 0 {
                    secs -= 1;
                    nanos = 1_000_000_000 - nanos;
                }
                Timestamp { secs, nanos }
            }
        }
    }
}

impl From<Timestamp> for SystemTime {
    fn from(t: Timestamp) -> SystemTime {
        let nanos = Duration::from_nanos(u64::from(t.nanos));
        if t.secs >= 0 {
            UNIX_EPOCH + Duration::from_secs(t.secs as u64) + nanos
        } else {
            UNIX_EPOCH - Duration::from_secs(t.secs.unsigned_abs()) + nanos
        }
    }
}

/// The current time as a wire timestamp.
pub fn now() -> Timestamp {
    SystemTime::now().into()
}

/// Milliseconds since the Unix epoch, now (0 if the clock is before it).
pub fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// How stale atime may grow before a read marks it even though it is newer than mtime and
/// ctime (Linux's `relatime` rule).
pub const ATIME_REFRESH: Duration = Duration::from_secs(24 * 60 * 60);

/// An attribute's time; unset reads as the epoch (older than any time set).
pub fn time_or_epoch(t: Option<Timestamp>) -> SystemTime {
    t.map_or(std::time::UNIX_EPOCH, SystemTime::from)
}

/// Whether reading a file with attributes `attr` at `now` must mark its atime, by the
/// `relatime` rule: atime not newer than mtime or ctime, or older than a day. Marking only
/// then keeps repeated reads from costing a metadata write each, while `ls -lu`, mail
/// readers and `find -anewer` still see every read after a change. Shared by the master
/// (which marks at open) and the mount (which marks at opendir).
pub fn access_due(attr: &crate::pb::Attr, now: SystemTime) -> bool {
    let atime = time_or_epoch(attr.atime);
    atime <= time_or_epoch(attr.mtime)
        || atime <= time_or_epoch(attr.ctime)
        || now
            .duration_since(atime)
            .is_ok_and(|age| age >= ATIME_REFRESH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_nanoseconds() {
        for t in [
            UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789),
            UNIX_EPOCH - Duration::new(5, 250_000_000),
            UNIX_EPOCH,
        ] {
            let wire = Timestamp::from(t);
            assert!(wire.nanos < 1_000_000_000);
            assert_eq!(SystemTime::from(wire), t);
        }
    }

    #[test]
    fn reads_mark_atime_by_the_relatime_rule() {
        let at = |secs| Some(Timestamp { secs, nanos: 0 });
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let attr = |atime, mtime| crate::pb::Attr {
            atime: at(atime),
            mtime: at(mtime),
            ctime: at(mtime),
            ..crate::pb::Attr::default()
        };
        assert!(access_due(&attr(100, 200), now), "atime before mtime");
        assert!(access_due(&attr(200, 200), now), "atime equal to mtime");
        assert!(
            !access_due(&attr(999_000, 200), now),
            "fresh atime after mtime"
        );
        assert!(
            access_due(&attr(900_000, 200), now),
            "atime older than a day"
        );
    }
}
