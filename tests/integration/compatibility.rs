//! The ApiVersions the broker advertises, checked against the table in
//! docs/compatibility.md, and the ApiVersions behaviours clients rely on.
use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use common::*;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, ResponseHeader};
use kafka_protocol::protocol::Decodable;

const UNSUPPORTED_VERSION: i16 = 35;

/// The APIs the broker promises (its CLI contract).
const REQUIRED: [(i16, &str); 12] = [
    (0, "Produce"),
    (1, "Fetch"),
    (2, "ListOffsets"),
    (3, "Metadata"),
    (18, "ApiVersions"),
    (19, "CreateTopics"),
    (20, "DeleteTopics"),
    (21, "DeleteRecords"),
    (32, "DescribeConfigs"),
    (37, "CreatePartitions"),
    (44, "IncrementalAlterConfigs"),
    (60, "DescribeCluster"),
];

/// One row of the compatibility table.
#[derive(Debug)]
struct DocRow {
    line: usize,
    name: String,
    key: i16,
    min: i16,
    max: i16,
}

fn cells(line: &str) -> Vec<String> {
    let trimmed = line.trim();
    let inner = trimmed.strip_prefix('|').unwrap_or(trimmed);
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    inner
        .split('|')
        .map(|c| {
            c.trim()
                .trim_matches(|ch: char| ch == '`' || ch == '*' || ch == '_')
                .trim()
                .to_string()
        })
        .collect()
}

fn parse_number(cell: &str) -> Option<i16> {
    let cell = cell.trim_start_matches('v').trim_start_matches('V');
    cell.parse().ok()
}

/// Parses every markdown table whose header names an API, its key and min/max versions.
/// Rows whose key is not a number are skipped; a malformed version is an error.
fn parse_compatibility_table(text: &str) -> Result<Vec<DocRow>, String> {
    let mut rows = Vec::new();
    let mut columns: Option<(usize, usize, usize, usize)> = None;
    for (n, line) in text.lines().enumerate() {
        let line_no = n + 1;
        if !line.trim_start().starts_with('|') {
            columns = None;
            continue;
        }
        let cells = cells(line);
        let lower: Vec<String> = cells.iter().map(|c| c.to_ascii_lowercase()).collect();
        if lower
            .iter()
            .all(|c| c.chars().all(|ch| matches!(ch, '-' | ':' | ' ')))
        {
            continue; // separator row
        }
        let find = |pred: &dyn Fn(&str) -> bool| lower.iter().position(|c| pred(c));
        let header = (
            find(&|c| c == "api" || c == "api name" || c == "name" || c == "request"),
            find(&|c| c == "key" || c == "api key" || c == "apikey"),
            find(&|c| c.contains("min")),
            find(&|c| c.contains("max")),
        );
        if let (Some(name), Some(key), Some(min), Some(max)) = header {
            columns = Some((name, key, min, max));
            continue;
        }
        let Some((name_col, key_col, min_col, max_col)) = columns else {
            continue;
        };
        let get = |i: usize| cells.get(i).map(String::as_str).unwrap_or("");
        let Some(key) = parse_number(get(key_col)) else {
            continue;
        };
        let min = parse_number(get(min_col)).ok_or_else(|| {
            format!(
                "line {line_no}: min version {:?} is not a number",
                get(min_col)
            )
        })?;
        let max = parse_number(get(max_col)).ok_or_else(|| {
            format!(
                "line {line_no}: max version {:?} is not a number",
                get(max_col)
            )
        })?;
        rows.push(DocRow {
            line: line_no,
            name: get(name_col).to_string(),
            key,
            min,
            max,
        });
    }
    Ok(rows)
}

fn normalise(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase()
}

#[test]
fn table_parser_is_tolerant() {
    let text = "\
# Compatibility

Some prose | with a pipe.

| API | Key | Min version | Max version | Notes |
|-----|----:|:-----------:|-------------|-------|
| Produce | 0 | 3 | 11 | acks 0/1/all |
| `Fetch` | `1` | v4 | 16 | |
| **ApiVersions** | 18 | 0 | 4 |

| Config | Default |
|---|---|
| num.partitions | 1 |
";
    let rows = parse_compatibility_table(text).expect("parse");
    let got: Vec<(String, i16, i16, i16)> = rows
        .iter()
        .map(|r| (r.name.clone(), r.key, r.min, r.max))
        .collect();
    assert_eq!(
        got,
        vec![
            ("Produce".to_string(), 0, 3, 11),
            ("Fetch".to_string(), 1, 4, 16),
            ("ApiVersions".to_string(), 18, 0, 4),
        ]
    );
    assert!(parse_compatibility_table(
        "| API | Key | Min | Max |\n|---|---|---|---|\n| Produce | 0 | x | 9 |\n"
    )
    .is_err());
}

#[test]
fn advertised_api_versions_match_docs_compatibility_md() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/compatibility.md");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "docs/compatibility.md is missing ({e}). The broker's documentation must list every \
             API it advertises in a table `| API | Key | Min version | Max version | Notes |`"
        )
    });
    let rows =
        parse_compatibility_table(&text).unwrap_or_else(|e| panic!("docs/compatibility.md: {e}"));
    assert!(
        !rows.is_empty(),
        "docs/compatibility.md has no table with the columns `| API | Key | Min version | Max version | Notes |`"
    );
    let mut documented: BTreeMap<i16, &DocRow> = BTreeMap::new();
    for row in &rows {
        if let Some(previous) = documented.insert(row.key, row) {
            panic!(
                "docs/compatibility.md lists API key {} twice (lines {} and {})",
                row.key, previous.line, row.line
            );
        }
    }

    let broker = Broker::start();
    let advertised = RawConn::connect(&broker).api_versions();

    let mut problems = Vec::new();
    for (key, name) in REQUIRED {
        if !advertised.contains_key(&key) {
            problems.push(format!("the broker does not advertise {name} (key {key})"));
        }
    }
    for (key, (min, max)) in &advertised {
        match documented.get(key) {
            None => problems.push(format!(
                "API key {key} ({}) is advertised as {min}..={max} but not documented",
                api_name(*key)
            )),
            Some(row) if (row.min, row.max) != (*min, *max) => problems.push(format!(
                "line {}: {} (key {key}) is documented as {}..={} but advertised as {min}..={max}",
                row.line, row.name, row.min, row.max
            )),
            Some(_) => {}
        }
        if min > max {
            problems.push(format!("API key {key}: advertised min {min} > max {max}"));
        }
    }
    for (key, row) in &documented {
        if !advertised.contains_key(key) {
            problems.push(format!(
                "line {}: {} (key {key}) is documented but not advertised",
                row.line, row.name
            ));
        }
        if let Ok(api) = ApiKey::try_from(*key) {
            let expected = format!("{api:?}");
            if normalise(&row.name) != normalise(&expected) {
                problems.push(format!(
                    "line {}: key {key} is {expected} in the Kafka protocol, documented as {:?}",
                    row.line, row.name
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "docs/compatibility.md and ApiVersions disagree:\n  {}",
        problems.join("\n  ")
    );
}

fn api_name(key: i16) -> String {
    ApiKey::try_from(key)
        .map(|k| format!("{k:?}"))
        .unwrap_or_else(|_| "unknown".to_string())
}

#[test]
fn every_api_versions_version_gives_the_same_table() {
    let broker = Broker::start();
    let mut conn = RawConn::connect(&broker);
    let v3 = conn.api_versions();
    for version in 0..=2 {
        let response: ApiVersionsResponse = conn.request(&ApiVersionsRequest::default(), version);
        assert_eq!(response.error_code, 0, "ApiVersions v{version} error code");
        let table: BTreeMap<i16, (i16, i16)> = response
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        assert_eq!(table, v3, "ApiVersions v{version} and v3 disagree");
    }
    let &(min, max) = v3.get(&18).expect("ApiVersions advertises itself");
    assert_eq!(min, 0, "ApiVersions min version (clients start at v0)");
    assert!(max >= 3, "ApiVersions max version {max} < 3");
}

#[test]
fn api_versions_at_an_unknown_version_answers_unsupported_version_in_v0() {
    let broker = Broker::start();
    let mut conn = RawConn::connect(&broker);
    // Header v2 (flexible) claiming ApiVersions v127, then a v3 body, as a future client sends.
    let mut body = BytesMut::new();
    body.put_i16(18);
    body.put_i16(127);
    body.put_i32(4242);
    body.put_i16(5);
    body.extend_from_slice(b"tests");
    body.put_u8(0); // header tagged fields
    body.put_u8(6); // compact string "future"
    body.extend_from_slice(b"future");
    body.put_u8(4); // compact string "9.9"
    body.extend_from_slice(b"9.9");
    body.put_u8(0); // body tagged fields
    let mut frame = BytesMut::new();
    frame.put_i32(body.len() as i32);
    frame.extend_from_slice(&body);
    conn.send_bytes(&frame);

    let mut response = conn.read_frame().expect("a response to ApiVersions v127");
    let header = ResponseHeader::decode(&mut response, 0).expect("response header v0");
    assert_eq!(header.correlation_id, 4242);
    let answer = ApiVersionsResponse::decode(&mut response, 0).expect("ApiVersionsResponse v0");
    assert_eq!(answer.error_code, UNSUPPORTED_VERSION, "error code");
    let api_versions = answer
        .api_keys
        .iter()
        .find(|k| k.api_key == 18)
        .expect("the answer lists ApiVersions' own versions");
    assert_eq!(api_versions.min_version, 0);
    assert!(api_versions.max_version >= 3);

    // The connection is still usable for the retry at a supported version.
    assert!(!conn.api_versions().is_empty());
}

/// A ListOffsets v0 frame (the old offsets-array form, which kafka-protocol
/// no longer encodes): latest offsets of `topic`/0, at most one.
fn list_offsets_v0_frame(topic: &str) -> BytesMut {
    let mut body = BytesMut::new();
    body.put_i16(2); // ListOffsets
    body.put_i16(0);
    body.put_i32(7);
    body.put_i16(5);
    body.extend_from_slice(b"tests");
    body.put_i32(-1); // replica id
    body.put_i32(1); // one topic
    body.put_i16(topic.len() as i16);
    body.extend_from_slice(topic.as_bytes());
    body.put_i32(1); // one partition
    body.put_i32(0);
    body.put_i64(-1); // latest
    body.put_i32(1); // max_num_offsets
    let mut frame = BytesMut::new();
    frame.put_i32(body.len() as i32);
    frame.extend_from_slice(&body);
    frame
}

#[test]
fn list_offsets_v0_closes_its_connection_as_kafka_4_does() {
    // Kafka 4.x serves ListOffsets 1 and up (KIP-896 removed v0); a request
    // of a version it does not serve closes that connection, unanswered
    // (only ApiVersions answers UNSUPPORTED_VERSION).
    let broker = Broker::start();
    let topic = topic_name("list-offsets-v0");
    create_topic(&broker, &topic, 1, &[]);
    let mut conn = RawConn::connect(&broker);
    let versions = conn.api_versions();
    assert_eq!(
        versions.get(&2).map(|v| v.0),
        Some(1),
        "ListOffsets min version"
    );
    conn.send_bytes(&list_offsets_v0_frame(&topic));
    let read = wait_for_close(&mut conn.stream, Duration::from_secs(10))
        .expect("ListOffsets v0 closes the connection");
    assert_eq!(read, 0, "nothing is answered before the close");
    // Only that connection: the broker serves the next one.
    let mut next = RawConn::connect(&broker);
    assert!(!next.api_versions().is_empty());
    assert_eq!(watermarks(&broker, &topic, 0), (0, 0));
}
