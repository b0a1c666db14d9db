//! The consumer protocol carried inside the classic group APIs: a member's
//! subscription (JoinGroup metadata, ConsumerProtocolSubscription) and its
//! assignment (SyncGroup bytes, ConsumerProtocolAssignment), each a version
//! i16 followed by the body at that version, and Kafka's range assignor that
//! the group leader runs. Pure functions on bytes; the CLI's threads only.

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::error::{protocol_error, ClientError};

/// The newest consumer protocol version this client decodes; a newer one is
/// read as this one (later versions only append fields).
const PROTOCOL_VERSION_MAX: i16 = 3;

/// The protocol type of consumer groups.
pub const PROTOCOL_TYPE: &str = "consumer";

/// The name of the range assignor.
pub const RANGE: &str = "range";

/// What a member subscribes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub version: i16,
    pub topics: Vec<String>,
    pub user_data: Option<Bytes>,
}

/// The partitions assigned to one member, by topic (partitions sorted).
pub type TopicPartitions = BTreeMap<String, Vec<i32>>;

/// An assignment as a member receives it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Assignment {
    pub version: i16,
    pub partitions: TopicPartitions,
    pub user_data: Option<Bytes>,
}

/// Reads the version prefix and the version to decode the body at.
fn read_version(bytes: &mut Bytes, what: &str) -> Result<i16, ClientError> {
    if bytes.remaining() < 2 {
        return Err(ClientError::Protocol(format!("{what}: no version")));
    }
    let version = bytes.get_i16();
    if version < 0 {
        return Err(ClientError::Protocol(format!(
            "{what}: negative version {version}"
        )));
    }
    Ok(version)
}

/// A ConsumerProtocolSubscription v0 for `topics` with null user data.
pub fn encode_subscription(topics: &[String]) -> Result<Bytes, ClientError> {
    let body = ConsumerProtocolSubscription::default()
        .with_topics(
            topics
                .iter()
                .map(|t| StrBytes::from_string(t.clone()))
                .collect(),
        )
        .with_user_data(None);
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    body.encode(&mut buf, 0)
        .map_err(|e| protocol_error("encoding subscription", e))?;
    Ok(buf.freeze())
}

/// Decodes a member's subscription (any version).
pub fn decode_subscription(mut bytes: Bytes) -> Result<Subscription, ClientError> {
    let version = read_version(&mut bytes, "subscription")?;
    let body = ConsumerProtocolSubscription::decode(&mut bytes, version.min(PROTOCOL_VERSION_MAX))
        .map_err(|e| protocol_error("decoding subscription", e))?;
    Ok(Subscription {
        version,
        topics: body.topics.iter().map(|t| t.to_string()).collect(),
        user_data: body.user_data,
    })
}

/// A ConsumerProtocolAssignment v0 with null user data.
pub fn encode_assignment(partitions: &TopicPartitions) -> Result<Bytes, ClientError> {
    let assigned = partitions
        .iter()
        .map(|(topic, ids)| {
            TopicPartition::default()
                .with_topic(TopicName(StrBytes::from_string(topic.clone())))
                .with_partitions(ids.clone())
        })
        .collect();
    let body = ConsumerProtocolAssignment::default()
        .with_assigned_partitions(assigned)
        .with_user_data(None);
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    body.encode(&mut buf, 0)
        .map_err(|e| protocol_error("encoding assignment", e))?;
    Ok(buf.freeze())
}

/// Decodes an assignment (any version); empty bytes are an empty assignment,
/// as a coordinator sends to a member the leader gave nothing.
pub fn decode_assignment(mut bytes: Bytes) -> Result<Assignment, ClientError> {
    if bytes.is_empty() {
        return Ok(Assignment::default());
    }
    let version = read_version(&mut bytes, "assignment")?;
    let body = ConsumerProtocolAssignment::decode(&mut bytes, version.min(PROTOCOL_VERSION_MAX))
        .map_err(|e| protocol_error("decoding assignment", e))?;
    let mut partitions = TopicPartitions::new();
    for tp in body.assigned_partitions {
        let ids = partitions.entry(tp.topic.0.to_string()).or_default();
        ids.extend(tp.partitions);
        ids.sort_unstable();
        ids.dedup();
    }
    Ok(Assignment {
        version,
        partitions,
        user_data: body.user_data,
    })
}

/// Kafka's RangeAssignor: for each topic, the members subscribed to it,
/// sorted by member id, get consecutive ranges of its partitions; the first
/// `partitions % members` get one more. Every member appears in the result,
/// with an empty map when it gets nothing. Topics missing from
/// `partition_counts` are skipped.
pub fn range_assign(
    subscriptions: &BTreeMap<String, Vec<String>>,
    partition_counts: &BTreeMap<String, i32>,
) -> BTreeMap<String, TopicPartitions> {
    let mut result: BTreeMap<String, TopicPartitions> = subscriptions
        .keys()
        .map(|m| (m.clone(), TopicPartitions::new()))
        .collect();
    for (topic, &count) in partition_counts {
        // BTreeMap keys are already sorted by member id.
        let members: Vec<&String> = subscriptions
            .iter()
            .filter(|(_, topics)| topics.contains(topic))
            .map(|(m, _)| m)
            .collect();
        let Ok(member_count) = i32::try_from(members.len()) else {
            continue;
        };
        if member_count == 0 || count <= 0 {
            continue;
        }
        let per_member = count / member_count;
        let extra = count % member_count;
        for (i, member) in (0..member_count).zip(members) {
            let start = per_member * i + i.min(extra);
            let length = per_member + i32::from(i < extra);
            if length == 0 {
                continue;
            }
            if let Some(assigned) = result.get_mut(member) {
                assigned.insert(topic.clone(), (start..start + length).collect());
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(list: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        list.iter()
            .map(|(m, topics)| {
                (
                    m.to_string(),
                    topics.iter().map(|t| t.to_string()).collect(),
                )
            })
            .collect()
    }

    fn counts(list: &[(&str, i32)]) -> BTreeMap<String, i32> {
        list.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    #[test]
    fn subscription_v0_layout() {
        let bytes = encode_subscription(&["t1".to_string(), "xy".to_string()]).expect("encode");
        let mut expected = vec![0u8, 0]; // version 0
        expected.extend_from_slice(&[0, 0, 0, 2]); // two topics
        expected.extend_from_slice(&[0, 2, b't', b'1']);
        expected.extend_from_slice(&[0, 2, b'x', b'y']);
        expected.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]); // null user data
        assert_eq!(&bytes[..], &expected[..]);
        let back = decode_subscription(bytes).expect("decode");
        assert_eq!(back.version, 0);
        assert_eq!(back.topics, vec!["t1", "xy"]);
        assert_eq!(back.user_data, None);
    }

    #[test]
    fn subscription_v1_decodes_with_owned_partitions() {
        let mut raw = vec![0u8, 1];
        raw.extend_from_slice(&[0, 0, 0, 1, 0, 1, b'a']); // topics ["a"]
        raw.extend_from_slice(&[0, 0, 0, 3, 1, 2, 3]); // user data
        raw.extend_from_slice(&[0, 0, 0, 1, 0, 1, b'a', 0, 0, 0, 1, 0, 0, 0, 4]); // owned a-4
        let back = decode_subscription(Bytes::from(raw)).expect("decode");
        assert_eq!(back.version, 1);
        assert_eq!(back.topics, vec!["a"]);
        assert_eq!(back.user_data.as_deref(), Some(&[1u8, 2, 3][..]));
    }

    #[test]
    fn assignment_v0_layout() {
        let mut partitions = TopicPartitions::new();
        partitions.insert("t".to_string(), vec![0, 2]);
        let bytes = encode_assignment(&partitions).expect("encode");
        let mut expected = vec![0u8, 0]; // version 0
        expected.extend_from_slice(&[0, 0, 0, 1]); // one topic
        expected.extend_from_slice(&[0, 1, b't']);
        expected.extend_from_slice(&[0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2]); // [0, 2]
        expected.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]); // null user data
        assert_eq!(&bytes[..], &expected[..]);
        let back = decode_assignment(bytes).expect("decode");
        assert_eq!(back.partitions, partitions);
    }

    #[test]
    fn assignment_newer_versions_and_user_data() {
        // v3 from a newer client: same layout for these fields, empty user data.
        let mut raw = vec![0u8, 3];
        raw.extend_from_slice(&[0, 0, 0, 1, 0, 1, b'b', 0, 0, 0, 1, 0, 0, 0, 7]);
        raw.extend_from_slice(&[0, 0, 0, 0]);
        let back = decode_assignment(Bytes::from(raw)).expect("decode");
        assert_eq!(back.version, 3);
        assert_eq!(back.partitions.get("b"), Some(&vec![7]));
        assert_eq!(back.user_data.as_deref(), Some(&[][..]));
        // A version far in the future is read as the newest known.
        let mut raw = vec![0u8, 9];
        raw.extend_from_slice(&[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
        assert!(decode_assignment(Bytes::from(raw))
            .expect("decode")
            .partitions
            .is_empty());
    }

    #[test]
    fn assignment_empty_and_garbage() {
        assert_eq!(
            decode_assignment(Bytes::new()).expect("empty"),
            Assignment::default()
        );
        assert!(decode_assignment(Bytes::from_static(&[0])).is_err());
        assert!(decode_assignment(Bytes::from_static(&[0xff, 0xff, 0, 0])).is_err());
        // Announces 100 topics, holds none.
        assert!(decode_assignment(Bytes::from_static(&[0, 0, 0, 0, 0, 100])).is_err());
        assert!(decode_subscription(Bytes::from_static(&[0, 0, 0, 0, 0, 1, 0])).is_err());
    }

    #[test]
    fn range_two_members_three_partitions() {
        let got = range_assign(
            &members(&[("c1", &["t"]), ("c0", &["t"])]),
            &counts(&[("t", 3)]),
        );
        assert_eq!(got["c0"]["t"], vec![0, 1]);
        assert_eq!(got["c1"]["t"], vec![2]);
    }

    #[test]
    fn range_kafka_two_topics_example() {
        // Kafka's documented example: C0 and C1 on t0 and t1 with 3 partitions each.
        let got = range_assign(
            &members(&[("C0", &["t0", "t1"]), ("C1", &["t0", "t1"])]),
            &counts(&[("t0", 3), ("t1", 3)]),
        );
        assert_eq!(got["C0"]["t0"], vec![0, 1]);
        assert_eq!(got["C0"]["t1"], vec![0, 1]);
        assert_eq!(got["C1"]["t0"], vec![2]);
        assert_eq!(got["C1"]["t1"], vec![2]);
    }

    #[test]
    fn range_more_members_than_partitions_and_partial_subscriptions() {
        let got = range_assign(
            &members(&[("a", &["t"]), ("b", &["t", "u"]), ("c", &["t"])]),
            &counts(&[("t", 2), ("u", 4), ("missing", 0)]),
        );
        assert_eq!(got["a"].get("t"), Some(&vec![0]));
        assert_eq!(got["b"].get("t"), Some(&vec![1]));
        assert_eq!(got["b"].get("u"), Some(&vec![0, 1, 2, 3]));
        assert!(got["c"].is_empty());
        // Seven partitions over three members: 3, 2, 2.
        let got = range_assign(
            &members(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"])]),
            &counts(&[("t", 7)]),
        );
        assert_eq!(got["a"]["t"], vec![0, 1, 2]);
        assert_eq!(got["b"]["t"], vec![3, 4]);
        assert_eq!(got["c"]["t"], vec![5, 6]);
    }
}
