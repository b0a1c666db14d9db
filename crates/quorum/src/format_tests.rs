//! Pins the JSON the quorum persists (Raft log entries, snapshots of the
//! view) and sends (requests, answers, deltas): existing data dirs and
//! nodes of the previous release must still read it, so these texts may
//! never change. Each text is decoded, checked, and encoded back to the
//! same bytes.
use super::changes::ViewDelta;
use super::model::ClusterView;
use super::protocol::{Request, Response};
use super::state::{CommandError, Proposal};
use serde::de::DeserializeOwned;
use serde::Serialize;

fn round_trip<T: Serialize + DeserializeOwned>(text: &str) -> T {
    let value: T = serde_json::from_str(text).expect("the pinned text decodes");
    assert_eq!(serde_json::to_string(&value).unwrap(), text, "re-encoded");
    value
}

/// A snapshot's view: broker ids as map keys (strings in JSON), a led and
/// a leaderless partition (leader -1).
const VIEW: &str = concat!(
    r#"{"cluster_id":"c1","revision":7,"brokers":{"1":{"broker_id":1,"host":"h1","port":9092,"rack":"r1","incarnation":null},"#,
    r#""3":{"broker_id":3,"host":"h3","port":9093,"rack":null,"incarnation":"00000000-0000-0001-0000-000000000002"}},"#,
    r#""topics":{"t":{"name":"t","topic_id":"00000000-0000-0000-0000-000000000009","configs":{"min.insync.replicas":"2"},"#,
    r#""partitions":[{"replicas":[1,2,3],"leader":3,"leader_epoch":4,"isr":[3,1],"partition_epoch":6},"#,
    r#"{"replicas":[2],"leader":-1,"leader_epoch":1,"isr":[2],"partition_epoch":2}]}},"next_producer_id":1000}"#
);

#[test]
fn a_snapshot_of_the_view_keeps_its_format() {
    let view: ClusterView = round_trip(VIEW);
    assert_eq!(view.brokers.len(), 2);
    let p = view.partition("t", 0).expect("partition 0");
    assert_eq!(format!("{:?}", p.isr), "[3, 1]");
}

#[test]
fn log_entries_keep_their_format() {
    for text in [
        r#"{"expected_revision":null,"command":{"ExpireBroker":{"broker_id":2}}}"#,
        r#"{"expected_revision":3,"command":{"AlterPartition":{"topic":"t","partition":1,"leader_id":2,"leader_epoch":5,"partition_epoch":9,"new_isr":[2,3]}}}"#,
        r#"{"expected_revision":null,"command":{"AllocateProducerIds":{"broker_id":1,"count":1000}}}"#,
        r#"{"expected_revision":null,"command":{"RegisterBroker":{"info":{"broker_id":4,"host":"h","port":1,"rack":null,"incarnation":null}}}}"#,
    ] {
        round_trip::<Proposal>(text);
    }
}

#[test]
fn requests_answers_and_errors_keep_their_format() {
    round_trip::<Request>(r#"{"Heartbeat":{"broker_id":2}}"#);
    round_trip::<Response>(r#"{"UnknownBroker":{"broker_id":2}}"#);
    for text in [
        r#"{"UnknownBroker":7}"#,
        r#"{"NotLeader":{"topic":"t","partition":0,"leader_id":2}}"#,
        r#"{"FencedLeaderEpoch":{"given":3,"current":4}}"#,
    ] {
        round_trip::<CommandError>(text);
    }
    let delta = concat!(
        r#"{"from_revision":1,"revision":2,"cluster_id":"c","brokers":{"5":{"broker_id":5,"host":"h","port":2,"rack":null,"incarnation":null}},"#,
        r#""next_producer_id":0,"changed":[],"removed":["gone"]}"#
    );
    round_trip::<ViewDelta>(delta);
}
