//! The follower's divergence decision (KIP-101 and KIP-279), as a pure
//! function: given the leader's answer to OffsetForLeaderEpoch for this
//! log's latest epoch and what this log knows (its end, its high watermark,
//! where an epoch ends in it), where the log must be cut so that it holds
//! nothing the leader does not have. No I/O: the fetcher (`fetcher.rs`)
//! asks the leader, calls this, and does the cut; tests and a simulation
//! can drive it alone. Runs on the partition's owning shard.
use storage::epochs::UNDEFINED_EPOCH_OFFSET;

/// The leader's answer to "where does epoch E end in your log?" (Kafka
/// answers the largest epoch it knows at or below E, and where it ends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderEpochEnd {
    pub leader_epoch: i32,
    /// `UNDEFINED_EPOCH_OFFSET` (-1) when the leader knows no epoch that old.
    pub end_offset: i64,
}

/// What the follower's own log says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerLog {
    pub log_end: u64,
    pub high_watermark: u64,
}

/// Where the follower's log must be cut, and whether that settles it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truncation {
    /// Cut to this offset (`None`: nothing to cut) and fetch from there.
    Settled(Option<u64>),
    /// This log does not know the epoch the leader answered with: cut to
    /// where the epoch before it ends here and ask the leader again (Kafka's
    /// intermediate truncation).
    AskAgain(u64),
}

/// The cut that makes the follower's log hold nothing the leader does not
/// have, as Kafka's fetcher decides it. `end_of_epoch(e)` is this log's
/// answer for epoch `e` (the largest epoch at or below `e` and where it
/// ends, as `LeaderEpochCache::end_offset_for` gives it).
pub fn truncation_point(
    answer: LeaderEpochEnd,
    log: FollowerLog,
    end_of_epoch: impl Fn(i32) -> (i32, i64),
) -> Truncation {
    let cut = |target: u64| (target < log.log_end).then_some(target);
    if answer.end_offset == UNDEFINED_EPOCH_OFFSET {
        // The leader knows no epoch this old: keep only what was committed.
        return Truncation::Settled(cut(log.high_watermark));
    }
    let leader_end = answer.end_offset.max(0) as u64;
    match end_of_epoch(answer.leader_epoch) {
        // No epoch here at or below the leader's: its end is the bound.
        (_, our_end) if our_end < 0 => Truncation::Settled(cut(leader_end)),
        // KIP-279: the leader answered with an epoch this log never had.
        // Cut where our largest epoch below it ends, and ask again.
        (ours, our_end) if ours != answer.leader_epoch => {
            Truncation::AskAgain((our_end as u64).min(log.log_end))
        }
        // Both have the epoch: it ends at the lower of the two ends.
        (_, our_end) => Truncation::Settled(cut(leader_end.min(our_end as u64))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: FollowerLog = FollowerLog {
        log_end: 100,
        high_watermark: 60,
    };

    /// Our log: epoch 3 from 0 to 70, epoch 5 from 70 to the end.
    fn ours(epoch: i32) -> (i32, i64) {
        match epoch {
            e if e >= 5 => (5, 100),
            e if e >= 3 => (3, 70),
            _ => (-1, -1),
        }
    }

    fn answer(leader_epoch: i32, end_offset: i64) -> LeaderEpochEnd {
        LeaderEpochEnd {
            leader_epoch,
            end_offset,
        }
    }

    use Truncation::{AskAgain, Settled};

    #[test]
    fn the_same_epoch_ending_earlier_at_the_leader_cuts_there() {
        assert_eq!(
            truncation_point(answer(5, 90), LOG, ours),
            Settled(Some(90))
        );
    }

    #[test]
    fn an_older_epoch_both_have_ends_at_the_lower_end() {
        // The leader never had epoch 5: its epoch 3 ends at 80, ours at 70.
        assert_eq!(
            truncation_point(answer(3, 80), LOG, ours),
            Settled(Some(70))
        );
        assert_eq!(
            truncation_point(answer(3, 65), LOG, ours),
            Settled(Some(65))
        );
    }

    #[test]
    fn a_leader_without_so_old_an_epoch_leaves_only_the_committed_records() {
        let undefined = answer(-1, UNDEFINED_EPOCH_OFFSET);
        assert_eq!(truncation_point(undefined, LOG, ours), Settled(Some(60)));
    }

    #[test]
    fn nothing_is_cut_when_the_leader_has_everything() {
        assert_eq!(truncation_point(answer(5, 100), LOG, ours), Settled(None));
        assert_eq!(truncation_point(answer(5, 130), LOG, ours), Settled(None));
    }

    /// The leader's epoch 4 (records 70..75 this log never had) against this
    /// log's epoch 5 from 70: keeping 70..75 would leave two different
    /// records at each of those offsets. Cut at the end of our epoch 3 and
    /// ask again.
    #[test]
    fn an_epoch_this_log_never_had_cuts_before_it_and_asks_again() {
        assert_eq!(truncation_point(answer(4, 75), LOG, ours), AskAgain(70));
    }

    #[test]
    fn with_no_epoch_as_old_here_the_leaders_end_bounds_the_log() {
        assert_eq!(
            truncation_point(answer(1, 20), LOG, ours),
            Settled(Some(20))
        );
    }
}
