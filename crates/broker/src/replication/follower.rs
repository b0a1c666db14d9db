//! The follower's divergence decision (KIP-101 and KIP-279), as a pure
//! function: given the leader's answer to OffsetForLeaderEpoch for this
//! log's latest epoch and what this log knows (its end, its high watermark,
//! where an epoch ends in it), where the log must be cut so that it holds
//! nothing the leader does not have. No I/O: the fetcher (`fetcher.rs`)
//! asks the leader, calls this, and does the cut; tests and a simulation
//! can drive it alone. Runs on the partition's owning shard.
use model::{LeaderEpoch, Offset};
use storage::epochs::UNDEFINED_EPOCH_OFFSET;

/// Where a leader epoch ends in a log: the leader's answer to "where does
/// epoch E end in your log?" (Kafka answers the largest epoch it knows at
/// or below E, and where it ends), or this log's own answer to the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderEpochEnd {
    pub leader_epoch: LeaderEpoch,
    pub end_offset: Offset,
}

impl LeaderEpochEnd {
    /// The leader's answer as OffsetForLeaderEpoch carries it: `None` when
    /// the leader knows no epoch that old (`UNDEFINED_EPOCH_OFFSET`); any
    /// other negative end reads as 0.
    pub fn from_leader(leader_epoch: i32, end_offset: i64) -> Option<LeaderEpochEnd> {
        (end_offset != UNDEFINED_EPOCH_OFFSET).then(|| LeaderEpochEnd {
            leader_epoch: LeaderEpoch(leader_epoch),
            end_offset: Offset::from_wire_clamped(end_offset),
        })
    }

    /// This log's answer as `LeaderEpochCache::end_offset_for` gives it:
    /// `None` when the log has no epoch at or below the one asked (a
    /// negative end).
    pub fn from_local((leader_epoch, end_offset): (i32, i64)) -> Option<LeaderEpochEnd> {
        Offset::from_wire(end_offset).map(|end_offset| LeaderEpochEnd {
            leader_epoch: LeaderEpoch(leader_epoch),
            end_offset,
        })
    }
}

/// What the follower's own log says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerLog {
    pub log_end: Offset,
    pub high_watermark: Offset,
}

/// Where the follower's log must be cut, and whether that settles it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truncation {
    /// Cut to this offset (`None`: nothing to cut) and fetch from there.
    Settled(Option<Offset>),
    /// This log does not know the epoch the leader answered with: cut to
    /// where the epoch before it ends here and ask the leader again (Kafka's
    /// intermediate truncation).
    AskAgain(Offset),
}

/// The cut that makes the follower's log hold nothing the leader does not
/// have, as Kafka's fetcher decides it. `answer` is the leader's (`None`:
/// it knows no epoch as old as this log's latest); `end_of_epoch(e)` is
/// this log's answer for epoch `e` (see `LeaderEpochEnd::from_local`).
pub fn truncation_point(
    answer: Option<LeaderEpochEnd>,
    log: FollowerLog,
    end_of_epoch: impl Fn(LeaderEpoch) -> Option<LeaderEpochEnd>,
) -> Truncation {
    let cut = |target: Offset| (target < log.log_end).then_some(target);
    let Some(answer) = answer else {
        // The leader knows no epoch this old: keep only what was committed.
        return Truncation::Settled(cut(log.high_watermark));
    };
    match end_of_epoch(answer.leader_epoch) {
        // No epoch here at or below the leader's: its end is the bound.
        None => Truncation::Settled(cut(answer.end_offset)),
        // KIP-279: the leader answered with an epoch this log never had.
        // Cut where our largest epoch below it ends, and ask again.
        Some(ours) if ours.leader_epoch != answer.leader_epoch => {
            Truncation::AskAgain(ours.end_offset.min(log.log_end))
        }
        // Both have the epoch: it ends at the lower of the two ends.
        Some(ours) => Truncation::Settled(cut(answer.end_offset.min(ours.end_offset))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: FollowerLog = FollowerLog {
        log_end: Offset(100),
        high_watermark: Offset(60),
    };

    /// Our log: epoch 3 from 0 to 70, epoch 5 from 70 to the end.
    fn ours(epoch: LeaderEpoch) -> Option<LeaderEpochEnd> {
        LeaderEpochEnd::from_local(match epoch.0 {
            e if e >= 5 => (5, 100),
            e if e >= 3 => (3, 70),
            _ => (-1, -1),
        })
    }

    fn answer(leader_epoch: i32, end_offset: i64) -> Option<LeaderEpochEnd> {
        LeaderEpochEnd::from_leader(leader_epoch, end_offset)
    }

    use Truncation::{AskAgain, Settled};

    #[test]
    fn the_same_epoch_ending_earlier_at_the_leader_cuts_there() {
        assert_eq!(
            truncation_point(answer(5, 90), LOG, ours),
            Settled(Some(Offset(90)))
        );
    }

    #[test]
    fn an_older_epoch_both_have_ends_at_the_lower_end() {
        // The leader never had epoch 5: its epoch 3 ends at 80, ours at 70.
        assert_eq!(
            truncation_point(answer(3, 80), LOG, ours),
            Settled(Some(Offset(70)))
        );
        assert_eq!(
            truncation_point(answer(3, 65), LOG, ours),
            Settled(Some(Offset(65)))
        );
    }

    #[test]
    fn a_leader_without_so_old_an_epoch_leaves_only_the_committed_records() {
        let undefined = answer(-1, UNDEFINED_EPOCH_OFFSET);
        assert_eq!(
            truncation_point(undefined, LOG, ours),
            Settled(Some(Offset(60)))
        );
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
        assert_eq!(
            truncation_point(answer(4, 75), LOG, ours),
            AskAgain(Offset(70))
        );
    }

    #[test]
    fn with_no_epoch_as_old_here_the_leaders_end_bounds_the_log() {
        assert_eq!(
            truncation_point(answer(1, 20), LOG, ours),
            Settled(Some(Offset(20)))
        );
    }
}
