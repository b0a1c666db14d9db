//! The simulation's oracle: what a user of the cluster was told, and the
//! checks that it stays true. A record acknowledged with acks=all is
//! present exactly once, at its offset, in the log of every replica that
//! becomes leader; a record a consumer read (below a leader's high
//! watermark) that some broker had synced is never replaced by another at
//! its offset. The world calls these checks whenever a broker becomes
//! leader and at the end of a run.
//!
//! A read record that no disk had synced yet is counted, not held: a
//! leader alone in the ISR counts its written (not yet synced) records in
//! the high watermark, as Kafka's does, and a crash that loses its unsynced
//! tail takes them back. acks=all records are never among them (they are
//! acknowledged after the sync).
use crate::message::Entry;
use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub struct Oracle {
    /// Offset -> value of every acknowledged record.
    acked: BTreeMap<u64, u64>,
    /// Offset -> value of every record a consumer read that a broker had synced.
    consumed: BTreeMap<u64, u64>,
    /// Records a consumer read before any broker synced them.
    pub volatile_reads: u64,
    pub acks: u64,
    pub leader_checks: u64,
}

impl Oracle {
    /// The producer was told `value` is at `offset` (counted by the caller).
    pub fn on_ack(&mut self, offset: u64, value: u64) -> Result<(), String> {
        if let Some(&other) = self.acked.get(&offset) {
            return Err(format!(
                "records {other} and {value} were both acknowledged at offset {offset}"
            ));
        }
        if let Some(&read) = self.consumed.get(&offset) {
            if read != value {
                return Err(format!(
                    "record {value} was acknowledged at offset {offset}, where a consumer read {read}"
                ));
            }
        }
        self.acked.insert(offset, value);
        Ok(())
    }

    /// A consumer read `entries` from `base_offset` on; `synced(offset,
    /// entry)` says whether a broker had synced that record then.
    pub fn on_consumed(
        &mut self,
        base_offset: u64,
        entries: &[Entry],
        synced: impl Fn(u64, &Entry) -> bool,
    ) -> Result<(), String> {
        for (i, entry) in entries.iter().enumerate() {
            let offset = base_offset + i as u64;
            if !synced(offset, entry) {
                self.volatile_reads += 1;
                continue;
            }
            let known = self.consumed.get(&offset).or(self.acked.get(&offset));
            if let Some(&earlier) = known {
                if earlier != entry.value {
                    return Err(format!(
                        "a consumer read record {} at offset {offset}, where {earlier} was read or acknowledged before",
                        entry.value
                    ));
                }
            }
            self.consumed.insert(offset, entry.value);
        }
        Ok(())
    }

    /// Whether `log` (of `who`, a new or final leader) holds every
    /// acknowledged and every consumed record at its offset (when that is
    /// `promised`), and no record twice.
    pub fn check_leader_log(
        &mut self,
        who: &str,
        log: &[Entry],
        promised: bool,
    ) -> Result<(), String> {
        self.leader_checks += 1;
        let promises: &[(&str, &BTreeMap<u64, u64>)] = if promised {
            &[("acknowledged", &self.acked), ("consumed", &self.consumed)]
        } else {
            &[]
        };
        for &(kind, records) in promises {
            for (&offset, &value) in records {
                match log.get(offset as usize) {
                    Some(entry) if entry.value == value => {}
                    Some(entry) => {
                        return Err(format!(
                        "{who} holds record {} at offset {offset}, where record {value} was {kind}",
                        entry.value
                    ))
                    }
                    None => {
                        return Err(format!(
                        "{who}'s log ends at {}: it lost {kind} record {value} at offset {offset}",
                        log.len()
                    ))
                    }
                }
            }
        }
        // The producer never sends a value twice: one in a log twice was
        // copied twice.
        let mut seen = BTreeMap::new();
        for (offset, entry) in log.iter().enumerate() {
            if let Some(first) = seen.insert(entry.value, offset) {
                return Err(format!(
                    "{who} holds record {} twice, at offsets {first} and {offset}",
                    entry.value
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(value: u64) -> Entry {
        Entry {
            epoch: model::LeaderEpoch(0),
            value,
        }
    }

    #[test]
    fn a_leader_missing_an_acknowledged_record_fails() {
        let mut o = Oracle::default();
        o.on_ack(0, 10).unwrap();
        o.on_ack(1, 11).unwrap();
        assert!(o
            .check_leader_log("b1", &[entry(10), entry(11)], true)
            .is_ok());
        assert!(o.check_leader_log("b2", &[entry(10)], true).is_err());
        assert!(o
            .check_leader_log("b3", &[entry(10), entry(12)], true)
            .is_err());
    }

    #[test]
    fn a_record_read_and_then_replaced_fails() {
        let mut o = Oracle::default();
        let synced = |_: u64, _: &Entry| true;
        o.on_consumed(0, &[entry(1), entry(2)], synced).unwrap();
        assert!(o.on_consumed(1, &[entry(3)], synced).is_err());
        assert!(o.on_ack(1, 4).is_err());
    }

    #[test]
    fn a_record_read_before_any_sync_is_counted_not_held() {
        let mut o = Oracle::default();
        o.on_consumed(0, &[entry(1)], |_, _| false).unwrap();
        assert_eq!(o.volatile_reads, 1);
        assert!(o.check_leader_log("b1", &[], true).is_ok());
    }

    #[test]
    fn a_record_twice_in_a_log_fails() {
        let mut o = Oracle::default();
        o.on_ack(0, 7).unwrap();
        assert!(o
            .check_leader_log("b1", &[entry(7), entry(7)], false)
            .is_err());
    }
}
