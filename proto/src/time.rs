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
}
