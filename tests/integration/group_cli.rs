//! `tidemark consume --group` and `tidemark group list | describe |
//! reset-offsets | delete`, driven as a user would: the built binary against
//! a real broker. Records are produced with librdkafka, one partition each
//! in turn, so every partition holds ten.
use crate::common;

use std::collections::BTreeSet;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// How long one command may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
const RECORDS: usize = 30;
const PARTITIONS: i32 = 3;

/// What a finished command printed.
struct Output {
    success: bool,
    stdout: String,
    stderr: String,
}

impl Output {
    fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }
}

fn spawn_cli(broker: &Broker, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .args(args)
        .args(["-b", &broker.addr()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tidemark")
}

/// Waits (bounded) for a spawned command and collects what it printed.
fn finish(mut child: Child, what: &str) -> Output {
    let mut out_pipe = child.stdout.take().expect("stdout");
    let mut err_pipe = child.stderr.take().expect("stderr");
    let out_reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = out_pipe.read_to_string(&mut s);
        s
    });
    let err_reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        match child.try_wait().expect("wait for tidemark") {
            Some(status) => break status,
            None if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("`{what}` did not finish within {COMMAND_TIMEOUT:?}");
            }
        }
    };
    Output {
        success: status.success(),
        stdout: out_reader.join().expect("stdout reader"),
        stderr: err_reader.join().expect("stderr reader"),
    }
}

fn cli(broker: &Broker, args: &[&str]) -> Output {
    finish(spawn_cli(broker, args), &args.join(" "))
}

fn cli_ok(broker: &Broker, args: &[&str]) -> Output {
    let out = cli(broker, args);
    assert!(
        out.success,
        "`{}` failed:\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        out.stdout,
        out.stderr
    );
    out
}

fn consume_group(broker: &Broker, topic: &str, group: &str, extra: &[&str]) -> Output {
    let mut args = vec!["consume", topic, "--group", group, "--from-beginning"];
    args.extend_from_slice(extra);
    cli_ok(broker, &args)
}

/// (partition, current offset, log end offset, lag) of each `describe` row of `topic`.
fn describe_rows(out: &Output, topic: &str) -> Vec<(i32, String, String, String)> {
    out.stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|cols| cols.len() >= 6 && cols[1] == topic)
        .map(|cols| {
            (
                cols[2].parse().expect("partition"),
                cols[3].to_string(),
                cols[4].to_string(),
                cols[5].to_string(),
            )
        })
        .collect()
}

#[test]
fn consume_as_a_group_commit_describe_reset_and_delete() {
    let broker = Broker::start_with(&[
        ("group.initial.rebalance.delay.ms", "0"),
        ("group.min.session.timeout.ms", "1000"),
    ]);
    let topic = topic_name("groupcli");
    let group = format!("{topic}-g");
    create_topic(&broker, &topic, PARTITIONS, &[]);
    let values: Vec<String> = (0..RECORDS).map(|i| format!("record-{i}")).collect();
    let recs: Vec<Rec> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Rec::value(v.as_str()).to(i as i32 % PARTITIONS))
        .collect();
    produce_ok(&producer(&broker, &[]), &topic, &recs);
    let expected: BTreeSet<&str> = values.iter().map(String::as_str).collect();

    // A first member gets every record and commits them at exit.
    let first = consume_group(
        &broker,
        &topic,
        &group,
        &["--max-messages", "30", "--idle-timeout-ms", "15000"],
    );
    assert_eq!(
        first.lines().into_iter().collect::<BTreeSet<_>>(),
        expected,
        "stderr: {}",
        first.stderr
    );
    assert_eq!(first.lines().len(), RECORDS);

    // The group's committed offsets: nothing new for the next member.
    let again = consume_group(&broker, &topic, &group, &["--idle-timeout-ms", "1500"]);
    assert!(again.lines().is_empty(), "re-consumed: {}", again.stdout);

    let described = cli_ok(&broker, &["group", "describe", &group]);
    let rows = describe_rows(&described, &topic);
    assert_eq!(rows.len(), PARTITIONS as usize, "{}", described.stdout);
    for (partition, current, end, lag) in &rows {
        assert_eq!(
            (current.as_str(), end.as_str(), lag.as_str()),
            ("10", "10", "0"),
            "partition {partition}: {}",
            described.stdout
        );
    }

    // A dry run plans without committing; --execute commits.
    let plan = cli_ok(
        &broker,
        &[
            "group",
            "reset-offsets",
            &group,
            "--topic",
            &topic,
            "--to-earliest",
        ],
    );
    assert!(plan.stdout.contains("NEW-OFFSET"), "{}", plan.stdout);
    let unchanged = cli_ok(&broker, &["group", "describe", &group]);
    assert!(describe_rows(&unchanged, &topic)
        .iter()
        .all(|r| r.1 == "10"));
    cli_ok(
        &broker,
        &[
            "group",
            "reset-offsets",
            &group,
            "--topic",
            &topic,
            "--to-earliest",
            "--execute",
        ],
    );
    let replay = consume_group(
        &broker,
        &topic,
        &group,
        &["--max-messages", "30", "--idle-timeout-ms", "15000"],
    );
    assert_eq!(
        replay.lines().into_iter().collect::<BTreeSet<_>>(),
        expected,
        "stderr: {}",
        replay.stderr
    );

    // While a member is active, the group is neither reset nor deleted.
    let active = spawn_cli(
        &broker,
        &[
            "consume",
            &topic,
            "--group",
            &group,
            "--idle-timeout-ms",
            "20000",
        ],
    );
    wait_until(Duration::from_secs(15), "the member to join", || {
        let d = cli(&broker, &["group", "describe", &group]);
        d.stdout.contains("State: Stable").then_some(())
    });
    let refused = cli(
        &broker,
        &[
            "group",
            "reset-offsets",
            &group,
            "--topic",
            &topic,
            "--to-earliest",
            "--execute",
        ],
    );
    assert!(!refused.success, "reset committed under an active member");
    let not_empty = cli(&broker, &["group", "delete", &group]);
    assert!(!not_empty.success);
    assert!(
        not_empty.stderr.contains("NON_EMPTY_GROUP"),
        "{}",
        not_empty.stderr
    );
    // Ctrl-C: the member commits, leaves and exits cleanly.
    let pid = active.id() as libc::pid_t;
    // SAFETY: signalling a child process this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let stopped = finish(active, "consume --group (interrupted)");
    assert!(stopped.success, "stderr: {}", stopped.stderr);

    let listed = cli_ok(&broker, &["group", "list"]);
    assert!(
        listed
            .lines()
            .iter()
            .any(|l| l.split_whitespace().next() == Some(group.as_str())),
        "{}",
        listed.stdout
    );

    let deleted = cli_ok(&broker, &["group", "delete", &group]);
    assert!(deleted.stdout.contains(&group));
    let gone = cli(&broker, &["group", "describe", &group]);
    assert!(!gone.success, "{}", gone.stdout);
    assert!(
        gone.stderr.contains("GROUP_ID_NOT_FOUND"),
        "{}",
        gone.stderr
    );
    let twice = cli(&broker, &["group", "delete", &group]);
    assert!(
        twice.stderr.contains("GROUP_ID_NOT_FOUND"),
        "{}",
        twice.stderr
    );
}
