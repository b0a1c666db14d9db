//! Kafka's rules for topic names, in one place: which names are valid, and
//! which new names collide with an existing topic. A leaf module (it imports
//! nothing of Tidemark's): the quorum's state machine and the standalone topic
//! registry both apply these rules, on whichever thread creates the topic.
use std::collections::BTreeMap;

/// Kafka's limit on a topic name's length, in characters.
pub const MAX_CHARS: usize = 249;

/// Why `name` is not a valid topic name, or `Ok` when it is. The rule is
/// Kafka's (`org.apache.kafka.common.internals.Topic.validate`): 1 to 249
/// characters of ASCII letters, digits, '.', '_' and '-', and not "." or "..".
pub fn check(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty");
    }
    if name.len() > MAX_CHARS {
        return Err("it is longer than 249 characters");
    }
    if name == "." || name == ".." {
        return Err("\".\" and \"..\" are not allowed");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

/// The existing topic, other than `name` itself, whose name differs from
/// `name` only by '.' against '_'. Kafka refuses to create such a topic
/// (INVALID_TOPIC_EXCEPTION, "Topic 'a.x' collides with existing topic: a_x")
/// because both names map to the same metric names, where '.' is written '_'.
///
/// Only names that share `name`'s prefix up to its first '.' or '_' can
/// collide, so only those are compared: a name without either costs one
/// lookup.
pub fn colliding_topic<'a, V>(name: &str, topics: &'a BTreeMap<String, V>) -> Option<&'a str> {
    let first_separator = name.find(['.', '_'])?;
    let prefix = &name[..first_separator];
    topics
        .range::<str, _>((
            std::ops::Bound::Included(prefix),
            std::ops::Bound::Unbounded,
        ))
        .map(|(existing, _)| existing.as_str())
        .take_while(|existing| existing.starts_with(prefix))
        .find(|existing| *existing != name && same_metric_name(existing, name))
}

/// True when `a` and `b` are equal once every '.' is read as '_'.
fn same_metric_name(a: &str, b: &str) -> bool {
    let metric = |c: u8| if c == b'.' { b'_' } else { c };
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .all(|(x, y)| metric(x) == metric(y))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics(names: &[&str]) -> BTreeMap<String, ()> {
        names.iter().map(|n| (n.to_string(), ())).collect()
    }

    #[test]
    fn kafkas_invalid_names_are_refused_with_a_reason() {
        for bad in ["", ".", "..", "with space", "sl/ash", "ü", &"x".repeat(250)] {
            assert!(check(bad).is_err(), "{bad:?}");
        }
        for good in ["a", "a.b_c-D9", "...", &"x".repeat(249)] {
            assert_eq!(check(good), Ok(()), "{good:?}");
        }
    }

    #[test]
    fn names_differing_only_by_dot_against_underscore_collide() {
        let existing = topics(&["orders_eu", "orders", "payments.v1.eu"]);
        assert_eq!(colliding_topic("orders.eu", &existing), Some("orders_eu"));
        assert_eq!(
            colliding_topic("payments_v1.eu", &existing),
            Some("payments.v1.eu")
        );
        assert_eq!(
            colliding_topic("payments_v1_eu", &existing),
            Some("payments.v1.eu")
        );
    }

    #[test]
    fn a_name_does_not_collide_with_itself_nor_with_other_names() {
        let existing = topics(&["orders_eu", "orders-eu", "orders_eu2", "orders_e"]);
        assert_eq!(colliding_topic("orders_eu", &existing), None);
        assert_eq!(colliding_topic("orders-eu", &existing), None);
        assert_eq!(colliding_topic("orders.us", &existing), None);
        assert_eq!(colliding_topic("plain", &existing), None);
        assert_eq!(colliding_topic("orders.eu2", &existing), Some("orders_eu2"));
    }
}
