//! How the view reaches watchers without ever travelling whole: the change
//! log (which topics each revision touched), deltas from a revision, and
//! pages of the view in topic-name order, each bounded in bytes so it fits
//! in one frame. Pure, no I/O: the quorum node builds deltas and pages from
//! its applied view; brokers and the CLI (`QuorumClient`) apply and
//! assemble them.
use super::credentials::SECURITY_TOUCHED;
use super::model::{BrokerInfo, ClusterView, SecurityState, TopicState};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Target size of one page or delta, in JSON bytes: a quarter of the frame
/// limit, so a page of topics just under it plus the broker list still fits.
pub const PAGE_BYTES_MAX: usize = 4 << 20;
/// Revisions the change log remembers; a watcher further behind reads pages.
pub const CHANGE_LOG_REVISIONS_MAX: usize = 8192;
/// Topic names the change log holds in all, at most (a broker's expiry can
/// touch every topic in one revision).
pub const CHANGE_LOG_NAMES_MAX: usize = 1 << 18;

/// Which topics each recent revision changed or removed.
#[derive(Debug, Default)]
pub struct ChangeLog {
    /// The revision before the oldest entry: deltas from it or later are known.
    base: u64,
    entries: VecDeque<(u64, Vec<String>)>,
    names: usize,
}

impl ChangeLog {
    /// An empty log for a view at `revision` (nothing before it is known).
    pub fn starting_at(revision: u64) -> ChangeLog {
        ChangeLog {
            base: revision,
            ..ChangeLog::default()
        }
    }

    /// Notes that the view moved to `revision`, touching `topics`.
    pub fn record(&mut self, revision: u64, topics: Vec<String>) {
        if revision <= self.entries.back().map_or(self.base, |e| e.0) {
            return;
        }
        self.names += topics.len();
        self.entries.push_back((revision, topics));
        while self.entries.len() > CHANGE_LOG_REVISIONS_MAX || self.names > CHANGE_LOG_NAMES_MAX {
            let Some((revision, names)) = self.entries.pop_front() else {
                break;
            };
            self.names -= names.len();
            self.base = revision;
        }
    }

    /// Forgets everything: the view was replaced (a snapshot was installed).
    pub fn reset(&mut self, revision: u64) {
        *self = ChangeLog::starting_at(revision);
    }

    /// The topics touched after `from` up to `to`, or `None` when the log
    /// no longer reaches back to `from`.
    pub fn touched(&self, from: u64, to: u64) -> Option<BTreeSet<String>> {
        if from < self.base {
            return None;
        }
        let names = self
            .entries
            .iter()
            .filter(|(r, _)| *r > from && *r <= to)
            .flat_map(|(_, names)| names.iter().cloned());
        Some(names.collect())
    }
}

/// What changed in the view after `from_revision`, up to `revision`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewDelta {
    pub from_revision: u64,
    pub revision: u64,
    pub cluster_id: String,
    /// Every live broker (small; sent whole).
    pub brokers: BTreeMap<model::BrokerId, BrokerInfo>,
    pub next_producer_id: i64,
    /// Topics created or changed, as they are now.
    pub changed: Vec<TopicState>,
    /// Topics deleted.
    pub removed: Vec<String>,
    /// The security state, when it changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<SecurityState>,
}

/// A part of the view: the cluster's fields and topics in name order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewPage {
    pub cluster_id: String,
    pub revision: u64,
    pub brokers: BTreeMap<model::BrokerId, BrokerInfo>,
    pub next_producer_id: i64,
    pub topics: Vec<TopicState>,
    /// Ask for the page after this topic; `None` on the last page.
    pub next_after: Option<String>,
    /// The security state, on the first page only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<SecurityState>,
}

/// What applying a delta changed, for those who apply only that.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ViewChanges {
    /// Topics created or changed.
    pub changed: Vec<String>,
    /// Topics deleted.
    pub removed: Vec<String>,
    /// Topics whose id changed (deleted and created again).
    pub replaced: Vec<String>,
    /// Any broker registered, expired or moved.
    pub brokers_changed: bool,
}

/// JSON bytes of `value` (counted, not kept).
pub fn json_len<T: Serialize>(value: &T) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, value) {
        Ok(()) => count.0,
        Err(_) => usize::MAX,
    }
}

/// The delta of `view` after `from`, if the log reaches back that far and
/// it fits in `PAGE_BYTES_MAX`; `None` means: read pages instead.
pub fn delta(view: &ClusterView, log: &ChangeLog, from: u64) -> Option<ViewDelta> {
    if from > view.revision {
        return None;
    }
    let touched = log.touched(from, view.revision)?;
    let mut delta = ViewDelta {
        from_revision: from,
        revision: view.revision,
        cluster_id: view.cluster_id.clone(),
        brokers: view.brokers.clone(),
        next_producer_id: view.next_producer_id,
        ..ViewDelta::default()
    };
    let mut bytes = json_len(&delta.brokers);
    for name in touched {
        if name == SECURITY_TOUCHED {
            bytes = bytes.saturating_add(json_len(&view.security));
            delta.security = Some(view.security.clone());
            continue;
        }
        match view.topics.get(&name) {
            Some(topic) => {
                bytes = bytes.saturating_add(json_len(topic));
                delta.changed.push(topic.clone());
            }
            None => {
                bytes = bytes.saturating_add(name.len() + 4);
                delta.removed.push(name);
            }
        }
        if bytes > PAGE_BYTES_MAX {
            return None;
        }
    }
    Some(delta)
}

/// The page of `view` after topic `after` (from the first topic when
/// `None`): topics up to `PAGE_BYTES_MAX`, and always at least one.
pub fn page(view: &ClusterView, after: Option<&str>) -> ViewPage {
    use std::ops::Bound::{Excluded, Unbounded};
    let start = match after {
        Some(name) => Excluded(name.to_string()),
        None => Unbounded,
    };
    let mut page = ViewPage {
        cluster_id: view.cluster_id.clone(),
        revision: view.revision,
        brokers: view.brokers.clone(),
        next_producer_id: view.next_producer_id,
        security: after.is_none().then(|| view.security.clone()),
        ..ViewPage::default()
    };
    let mut bytes = json_len(&page.brokers).saturating_add(json_len(&page.security));
    for (name, topic) in view.topics.range((start, Unbounded)) {
        let size = json_len(topic);
        if !page.topics.is_empty() && bytes.saturating_add(size) > PAGE_BYTES_MAX {
            page.next_after = page.topics.last().map(|t| t.name.clone());
            break;
        }
        bytes = bytes.saturating_add(size);
        page.topics.push(topic.clone());
        debug_assert_eq!(name, &topic.name);
    }
    page
}

impl ClusterView {
    /// Applies a delta that starts at this view's revision; returns what it
    /// changed.
    pub fn apply_delta(&mut self, delta: ViewDelta) -> ViewChanges {
        let mut changes = ViewChanges {
            brokers_changed: self.brokers != delta.brokers,
            ..ViewChanges::default()
        };
        self.cluster_id = delta.cluster_id;
        self.revision = delta.revision;
        self.brokers = delta.brokers;
        self.next_producer_id = delta.next_producer_id;
        if let Some(security) = delta.security {
            self.security = security;
        }
        for name in delta.removed {
            if self.topics.remove(&name).is_some() {
                changes.removed.push(name);
            }
        }
        for topic in delta.changed {
            let name = topic.name.clone();
            let old_id = self.topics.get(&name).map(|t| t.topic_id);
            if old_id.is_some_and(|id| id != topic.topic_id) {
                changes.replaced.push(name.clone());
            }
            self.topics.insert(name.clone(), topic);
            changes.changed.push(name);
        }
        changes
    }

    /// Starts a view from its first page.
    pub fn from_page(page: ViewPage) -> ClusterView {
        let mut view = ClusterView {
            cluster_id: page.cluster_id,
            revision: page.revision,
            brokers: page.brokers,
            next_producer_id: page.next_producer_id,
            security: page.security.unwrap_or_default(),
            ..ClusterView::default()
        };
        view.add_topics(page.topics);
        view
    }

    /// Adds the topics of a later page.
    pub fn add_topics(&mut self, topics: Vec<TopicState>) {
        for topic in topics {
            self.topics.insert(topic.name.clone(), topic);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PartitionState;

    fn topic(name: &str, partitions: usize) -> TopicState {
        TopicState {
            name: name.to_string(),
            topic_id: uuid::Uuid::new_v4(),
            configs: BTreeMap::new(),
            partitions: vec![
                PartitionState {
                    replicas: vec![model::BrokerId(1)],
                    leader: Some(model::BrokerId(1)),
                    leader_epoch: model::LeaderEpoch(0),
                    isr: vec![model::BrokerId(1)],
                    partition_epoch: 0,
                };
                partitions
            ],
        }
    }

    fn big_view() -> ClusterView {
        let mut view = ClusterView {
            cluster_id: "c".into(),
            revision: 7,
            ..ClusterView::default()
        };
        // About 30 MiB of JSON: more than a frame holds.
        for i in 0..40 {
            view.add_topics(vec![topic(&format!("t{i:03}"), 10_000)]);
        }
        view
    }

    #[test]
    fn pages_cover_a_view_bigger_than_a_frame_in_bounded_steps() {
        let view = big_view();
        assert!(json_len(&view) > 16 << 20);
        let first = page(&view, None);
        let mut assembled = ClusterView::from_page(first.clone());
        let mut after = first.next_after.clone();
        let mut pages = 1;
        while let Some(name) = after {
            let next = page(&view, Some(&name));
            assert!(json_len(&next) <= PAGE_BYTES_MAX + 4096);
            after = next.next_after.clone();
            assembled.add_topics(next.topics);
            pages += 1;
        }
        assert!(pages > 4);
        assert_eq!(assembled, view);
    }

    #[test]
    fn the_security_state_travels_when_it_changed_and_on_first_pages() {
        use crate::model::StoredScramCredential;
        let mut log = ChangeLog::starting_at(1);
        let mut view = ClusterView {
            revision: 1,
            ..ClusterView::default()
        };
        let mut mirror = view.clone();
        let credential = StoredScramCredential {
            salt: vec![1; 8],
            stored_key: vec![2; 32],
            server_key: vec![3; 32],
            iterations: 4096,
        };
        let mut touched = Vec::new();
        crate::credentials::upsert_scram(
            &mut view,
            "alice",
            "SCRAM-SHA-256",
            &credential,
            &mut touched,
        )
        .unwrap();
        view.revision = 2;
        log.record(2, touched);
        view.add_topics(vec![topic("t", 1)]);
        view.revision = 3;
        log.record(3, vec!["t".into()]);
        assert!(
            delta(&view, &log, 2).unwrap().security.is_none(),
            "unchanged since 2"
        );
        mirror.apply_delta(delta(&view, &log, 1).unwrap());
        assert_eq!(mirror, view);
        let first = page(&view, None);
        assert_eq!(ClusterView::from_page(first).security, view.security);
        assert!(page(&view, Some("a")).security.is_none());
        // The stored form is base64 text, not number arrays.
        let json = serde_json::to_string(&view.security).unwrap();
        assert!(json.contains(r#""salt":"AQEBAQEBAQE=""#), "{json}");
    }

    #[test]
    fn deltas_carry_what_changed_or_give_way_to_pages() {
        let mut log = ChangeLog::starting_at(5);
        let mut view = ClusterView {
            revision: 5,
            ..ClusterView::default()
        };
        let mut mirror = view.clone();
        view.add_topics(vec![topic("a", 1), topic("b", 1)]);
        view.revision = 6;
        log.record(6, vec!["a".into(), "b".into()]);
        view.topics.remove("a");
        view.revision = 7;
        log.record(7, vec!["a".into()]);
        let d = delta(&view, &log, 5).unwrap();
        let changes = mirror.apply_delta(d);
        assert_eq!(mirror, view);
        assert_eq!(changes.changed, vec!["b".to_string()]);
        assert!(delta(&view, &log, 4).is_none(), "before the log's base");
        assert!(delta(&view, &log, 8).is_none(), "ahead of the view");
        assert_eq!(delta(&view, &log, 7).unwrap().changed.len(), 0);
        log.record(8, vec!["x".into(); CHANGE_LOG_NAMES_MAX + 1]);
        assert!(
            log.touched(7, 8).is_none(),
            "the oldest entries are dropped"
        );
    }

    #[test]
    fn a_delta_too_large_for_a_page_is_refused() {
        let view = big_view();
        let mut log = ChangeLog::starting_at(0);
        log.record(7, view.topics.keys().cloned().collect());
        assert!(delta(&view, &log, 0).is_none());
    }
}
