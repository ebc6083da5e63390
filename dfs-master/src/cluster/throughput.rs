//! The cluster's data throughput from heartbeats: each chunkserver reports its cumulative
//! bytes read and written, and the registry turns two successive reports into the bytes moved
//! between them, for [`MasterMetrics::record_data`](crate::metrics::MasterMetrics::record_data).
//!
//! Totals are cumulative so that a lost heartbeat loses nothing: the next one carries its
//! bytes too. A chunkserver that restarts starts again from zero, so a total smaller than the
//! last one is all new (its delta counts from zero). A server the registry has not heard from
//! since this master took office (known only from the store) has no last total: its first
//! report sets one and counts nothing, since how much of it an earlier leader already counted
//! is unknown. A server that registers with this master has just started, from zero.

/// Bytes a chunkserver read and wrote: cumulative in a report, a difference in a delta.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DataTotals {
    /// Bytes served to readers.
    pub read: u64,
    /// Bytes stored as replicas.
    pub written: u64,
}

impl DataTotals {
    /// The bytes moved between the report that gave `last` (`None`: no report yet, nothing is
    /// counted) and the report `now`. Each total is compared on its own: one that went down
    /// belongs to a restarted server, and counts from zero.
    pub fn delta(last: Option<DataTotals>, now: DataTotals) -> DataTotals {
        let Some(last) = last else {
            return DataTotals::default();
        };
        let since = |last: u64, now: u64| now.checked_sub(last).unwrap_or(now);
        DataTotals {
            read: since(last.read, now.read),
            written: since(last.written, now.written),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(read: u64, written: u64) -> DataTotals {
        DataTotals { read, written }
    }

    #[test]
    fn a_delta_is_the_growth_since_the_last_report() {
        assert_eq!(
            DataTotals::delta(Some(totals(100, 10)), totals(150, 10)),
            totals(50, 0)
        );
    }

    #[test]
    fn a_smaller_total_is_a_restarted_server_counting_from_zero() {
        assert_eq!(
            DataTotals::delta(Some(totals(1000, 500)), totals(30, 700)),
            totals(30, 200)
        );
    }

    #[test]
    fn the_first_report_without_a_last_one_only_sets_the_baseline() {
        assert_eq!(DataTotals::delta(None, totals(1 << 40, 7)), totals(0, 0));
    }
}
