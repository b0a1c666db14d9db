//! The broker's log output as an operator's tooling reads it
//! (docs/operations.md): no ANSI colour codes when it goes to a pipe (as
//! under journald or a log shipper), and with `TIDEMARK_LOG_FORMAT=json`
//! one JSON object per line, with the level and the message.
use crate::common::*;

#[test]
fn logs_written_to_a_pipe_carry_no_colour_codes() {
    let broker = Broker::start();
    create_topic(&broker, "plain-logs", 1, &[]);
    let output = broker.output();
    assert!(output.contains("INFO"), "{output}");
    assert!(
        !output.contains('\u{1b}'),
        "colour codes in piped logs: {output:?}"
    );
}

#[test]
fn json_logs_are_one_object_per_line() {
    let broker = Broker::start_with_environment(&[], &[("TIDEMARK_LOG_FORMAT", "json")]);
    create_topic(&broker, "json-logs", 1, &[]);
    let output = broker.output();
    // The harness marks each line with its run and stream: `[run 1 err] `.
    let logged: Vec<&str> = output
        .lines()
        .filter_map(|l| l.split_once(" err] ").map(|(_, line)| line))
        .collect();
    let events: Vec<serde_json::Value> = logged
        .iter()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(!events.is_empty(), "no JSON events: {output}");
    for event in &events {
        assert!(event["level"].is_string(), "{event}");
        assert!(event["fields"]["message"].is_string(), "{event}");
    }
    assert!(!output.contains('\u{1b}'), "{output:?}");
    assert!(
        logged
            .iter()
            .all(|l| l.starts_with('{') || !l.contains("INFO")),
        "a text log line among the JSON ones: {output}"
    );
}
