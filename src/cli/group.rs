//! `tidemark group list | describe | reset-offsets | delete`: consumer group
//! administration in the manner of kafka-consumer-groups.sh, over the
//! blocking client (group requests go to the group's coordinator). Runs on
//! the CLI's main thread.

use std::collections::BTreeMap;

use clap::{ArgGroup, Args, Subcommand};

use client::error::{codes, needs_rejoin};
use client::{Client, ClientError, GroupDescription, GroupListing, OffsetKey, OffsetSpec};

/// List, describe, reset the offsets of, and delete consumer groups.
#[derive(Args, Debug)]
pub struct GroupArgs {
    /// The broker to bootstrap from (comma-separated list allowed).
    #[arg(short = 'b', long = "bootstrap-server", default_value = client::DEFAULT_BOOTSTRAP, global = true)]
    pub bootstrap_server: String,
    /// Request timeout in milliseconds.
    #[arg(long = "timeout-ms", default_value_t = 30_000, global = true)]
    pub timeout_ms: u64,
    /// Kafka client properties for a secured listener (`security.protocol`,
    /// `ssl.truststore.location`, `sasl.mechanism`, `sasl.jaas.config`), as
    /// Kafka's tools take them.
    #[arg(long = "command-config", global = true)]
    pub command_config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    pub command: GroupCommand,
}

#[derive(Subcommand, Debug)]
pub enum GroupCommand {
    /// List every group of every broker, with its state.
    List,
    /// Show a group's state and members, and per partition the committed
    /// offset, the log end offset and the lag.
    Describe {
        /// Group id.
        group: String,
    },
    /// Plan (and with --execute, commit) new offsets for a group with no
    /// active members.
    ResetOffsets(ResetArgs),
    /// Delete a group with no members, with its committed offsets.
    Delete {
        /// Group id.
        group: String,
    },
}

/// `group reset-offsets` options.
#[derive(Args, Debug)]
#[command(group(
    ArgGroup::new("target")
        .required(true)
        .args(["to_earliest", "to_latest", "to_offset", "shift_by"])
))]
pub struct ResetArgs {
    /// Group id.
    pub group: String,
    /// The topic whose offsets to reset.
    #[arg(long)]
    pub topic: String,
    /// Only this partition (default: every partition of the topic).
    #[arg(long)]
    pub partition: Option<i32>,
    /// Reset to the earliest offset.
    #[arg(long = "to-earliest")]
    pub to_earliest: bool,
    /// Reset to the log end offset.
    #[arg(long = "to-latest")]
    pub to_latest: bool,
    /// Reset to this offset (kept within the log's range).
    #[arg(long = "to-offset", value_name = "N")]
    pub to_offset: Option<i64>,
    /// Move the committed offset by N (negative moves back).
    #[arg(long = "shift-by", value_name = "N", allow_negative_numbers = true)]
    pub shift_by: Option<i64>,
    /// Commit the plan (without it, only print it).
    #[arg(long)]
    pub execute: bool,
}

/// Where reset-offsets moves a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetSpec {
    Earliest,
    Latest,
    Offset(i64),
    ShiftBy(i64),
}

impl ResetArgs {
    fn spec(&self) -> ResetSpec {
        match (self.to_offset, self.shift_by, self.to_latest) {
            (Some(n), _, _) => ResetSpec::Offset(n),
            (_, Some(n), _) => ResetSpec::ShiftBy(n),
            (_, _, true) => ResetSpec::Latest,
            _ => ResetSpec::Earliest,
        }
    }
}

/// The new offset of one partition whose log spans `earliest..=latest`
/// (latest is the log end offset), as kafka-consumer-groups.sh computes it:
/// explicit and shifted offsets are kept within that range; a shift needs a
/// committed offset to start from.
pub fn reset_target(
    spec: ResetSpec,
    committed: Option<i64>,
    earliest: i64,
    latest: i64,
) -> Result<i64, ClientError> {
    let within = |n: i64| n.clamp(earliest, latest.max(earliest));
    match spec {
        ResetSpec::Earliest => Ok(earliest),
        ResetSpec::Latest => Ok(latest),
        ResetSpec::Offset(n) => Ok(within(n)),
        ResetSpec::ShiftBy(n) => committed
            .map(|c| within(c.saturating_add(n)))
            .ok_or_else(|| {
                ClientError::InvalidArgument(
                    "cannot shift a partition that has no committed offset".to_owned(),
                )
            }),
    }
}

/// Runs a `group` subcommand.
pub fn run(args: GroupArgs) -> Result<(), ClientError> {
    let config = super::client_config(
        &args.bootstrap_server,
        args.timeout_ms,
        args.command_config.as_deref(),
    )?;
    let mut client = Client::connect(config)?;
    match args.command {
        GroupCommand::List => {
            print!("{}", list_text(&client.list_groups()?));
            Ok(())
        }
        GroupCommand::Describe { group } => describe(&mut client, &group),
        GroupCommand::ResetOffsets(reset) => reset_offsets(&mut client, &reset),
        GroupCommand::Delete { group } => {
            client.delete_group(&group)?;
            println!("Deleted consumer group '{group}'.");
            Ok(())
        }
    }
}

/// Columns aligned on the widest cell, two spaces apart.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        s.push('\n');
        s
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

fn or_dash(s: &str) -> String {
    if s.is_empty() {
        "-".to_owned()
    } else {
        s.to_owned()
    }
}

fn list_text(groups: &[GroupListing]) -> String {
    let rows: Vec<Vec<String>> = groups
        .iter()
        .map(|g| {
            vec![
                g.group_id.clone(),
                or_dash(&g.state),
                or_dash(&g.protocol_type),
            ]
        })
        .collect();
    table(&["GROUP", "STATE", "PROTOCOL-TYPE"], &rows)
}

/// One partition row of `describe`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OffsetRow {
    topic: String,
    partition: i32,
    committed: Option<i64>,
    log_end: Option<i64>,
    /// (member id, host, client id) of the partition's owner.
    owner: Option<(String, String, String)>,
}

impl OffsetRow {
    fn lag(&self) -> Option<i64> {
        Some((self.log_end? - self.committed?).max(0))
    }
}

fn opt(n: Option<i64>) -> String {
    n.map_or_else(|| "-".to_owned(), |n| n.to_string())
}

/// The partitions to show: every assigned one and every committed one.
fn offset_rows(desc: &GroupDescription, committed: &BTreeMap<OffsetKey, i64>) -> Vec<OffsetRow> {
    let mut rows: BTreeMap<OffsetKey, OffsetRow> = BTreeMap::new();
    for m in &desc.members {
        for (topic, partitions) in m.assignment.iter().flatten() {
            for p in partitions {
                rows.insert(
                    (topic.clone(), *p),
                    OffsetRow {
                        topic: topic.clone(),
                        partition: *p,
                        committed: None,
                        log_end: None,
                        owner: Some((
                            m.member_id.clone(),
                            m.client_host.clone(),
                            m.client_id.clone(),
                        )),
                    },
                );
            }
        }
    }
    for ((topic, partition), offset) in committed {
        rows.entry((topic.clone(), *partition))
            .or_insert_with(|| OffsetRow {
                topic: topic.clone(),
                partition: *partition,
                committed: None,
                log_end: None,
                owner: None,
            })
            .committed = Some(*offset);
    }
    rows.into_values().collect()
}

/// Fills in each row's log end offset (left unknown for a topic that fails).
fn add_log_ends(client: &mut Client, rows: &mut [OffsetRow]) {
    let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for r in rows.iter() {
        by_topic
            .entry(r.topic.clone())
            .or_default()
            .push(r.partition);
    }
    for (topic, partitions) in by_topic {
        let ends = match client
            .topic(&topic, false)
            .and_then(|_| client.list_offsets(&topic, &partitions, OffsetSpec::Latest))
        {
            Ok(ends) => ends,
            Err(e) => {
                eprintln!("tidemark: {topic}: log end offsets unknown: {e}");
                continue;
            }
        };
        for (partition, end) in ends {
            if let Some(r) = rows
                .iter_mut()
                .find(|r| r.topic == topic && r.partition == partition)
            {
                r.log_end = Some(end);
            }
        }
    }
}

fn describe_text(desc: &GroupDescription, rows: &[OffsetRow]) -> String {
    let protocol = if desc.protocol.is_empty() {
        or_dash(&desc.protocol_type)
    } else {
        format!("{}/{}", or_dash(&desc.protocol_type), desc.protocol)
    };
    let mut out = format!(
        "Group: {}\tState: {}\tProtocol: {}\tMembers: {}\n\n",
        desc.group_id,
        desc.state,
        protocol,
        desc.members.len()
    );
    let offset_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let (member, host, client) = r
                .owner
                .clone()
                .unwrap_or_else(|| ("-".to_owned(), "-".to_owned(), "-".to_owned()));
            vec![
                desc.group_id.clone(),
                r.topic.clone(),
                r.partition.to_string(),
                opt(r.committed),
                opt(r.log_end),
                opt(r.lag()),
                member,
                host,
                client,
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "GROUP",
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "LOG-END-OFFSET",
            "LAG",
            "CONSUMER-ID",
            "HOST",
            "CLIENT-ID",
        ],
        &offset_rows,
    ));
    if !desc.members.is_empty() {
        out.push('\n');
        let member_rows: Vec<Vec<String>> = desc
            .members
            .iter()
            .map(|m| {
                vec![
                    m.member_id.clone(),
                    m.client_host.clone(),
                    m.client_id.clone(),
                    assignment_text(m.assignment.as_ref()),
                ]
            })
            .collect();
        out.push_str(&table(
            &["CONSUMER-ID", "HOST", "CLIENT-ID", "ASSIGNMENT"],
            &member_rows,
        ));
    }
    out
}

/// `t(0,1),u(2)`, `-` for nothing, `?` when it could not be decoded.
fn assignment_text(assignment: Option<&BTreeMap<String, Vec<i32>>>) -> String {
    let Some(assignment) = assignment else {
        return "?".to_owned();
    };
    if assignment.is_empty() {
        return "-".to_owned();
    }
    assignment
        .iter()
        .map(|(t, ps)| {
            let ids: Vec<String> = ps.iter().map(i32::to_string).collect();
            format!("{t}({})", ids.join(","))
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn not_found(group: &str) -> ClientError {
    ClientError::kafka(
        "DescribeGroups",
        codes::GROUP_ID_NOT_FOUND,
        group,
        Some(&format!("consumer group '{group}' does not exist")),
    )
}

fn describe(client: &mut Client, group: &str) -> Result<(), ClientError> {
    let desc = client.describe_group(group)?;
    let committed = client.committed_offsets(group, None)?;
    if desc.is_dead() && committed.is_empty() {
        return Err(not_found(group));
    }
    let mut rows = offset_rows(&desc, &committed);
    add_log_ends(client, &mut rows);
    print!("{}", describe_text(&desc, &rows));
    Ok(())
}

/// One line of the reset plan.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PlannedReset {
    partition: i32,
    committed: Option<i64>,
    new_offset: i64,
}

fn reset_offsets(client: &mut Client, args: &ResetArgs) -> Result<(), ClientError> {
    let topic = client.topic(&args.topic, false)?;
    let partitions: Vec<i32> = match args.partition {
        Some(p) if topic.partition(p).is_none() => {
            return Err(ClientError::InvalidArgument(format!(
                "partition {p} does not exist ({} has {})",
                args.topic,
                topic.partition_count()
            )))
        }
        Some(p) => vec![p],
        None => topic.partitions.iter().map(|p| p.id).collect(),
    };
    let desc = client.describe_group(&args.group)?;
    if !desc.members.is_empty() {
        eprintln!(
            "tidemark: group '{}' has {} active member(s) (state {}): offsets can only be \
             committed once they have left",
            args.group,
            desc.members.len(),
            desc.state
        );
    }
    let asked = BTreeMap::from([(args.topic.clone(), partitions.clone())]);
    let committed = client.committed_offsets(&args.group, Some(&asked))?;
    let earliest = client.list_offsets(&args.topic, &partitions, OffsetSpec::Earliest)?;
    let latest = client.list_offsets(&args.topic, &partitions, OffsetSpec::Latest)?;
    let plan = plan_resets(args, &committed, &earliest, &latest)?;
    print!("{}", plan_text(&args.group, &args.topic, &plan));
    if !args.execute {
        eprintln!("Dry run: nothing was committed. Add --execute to commit these offsets.");
        return Ok(());
    }
    let offsets: BTreeMap<OffsetKey, i64> = plan
        .iter()
        .map(|p| ((args.topic.clone(), p.partition), p.new_offset))
        .collect();
    match client.commit_offsets(&args.group, -1, "", &offsets) {
        Ok(()) => {
            println!("Committed new offsets of {} partition(s).", offsets.len());
            Ok(())
        }
        Err(e) if e.kafka_code().is_some_and(needs_rejoin) => {
            eprintln!("tidemark: the coordinator refused the commit: the group has active members");
            Err(e)
        }
        Err(e) => Err(e),
    }
}

fn plan_resets(
    args: &ResetArgs,
    committed: &BTreeMap<OffsetKey, i64>,
    earliest: &[(i32, i64)],
    latest: &[(i32, i64)],
) -> Result<Vec<PlannedReset>, ClientError> {
    let spec = args.spec();
    earliest
        .iter()
        .map(|&(partition, start)| {
            let end = latest
                .iter()
                .find(|(p, _)| *p == partition)
                .map(|(_, e)| *e)
                .ok_or_else(|| {
                    ClientError::Protocol(format!("no log end offset for partition {partition}"))
                })?;
            let current = committed.get(&(args.topic.clone(), partition)).copied();
            let new_offset = reset_target(spec, current, start, end).map_err(|e| {
                ClientError::InvalidArgument(format!("{}-{partition}: {e}", args.topic))
            })?;
            Ok(PlannedReset {
                partition,
                committed: current,
                new_offset,
            })
        })
        .collect()
}

fn plan_text(group: &str, topic: &str, plan: &[PlannedReset]) -> String {
    let rows: Vec<Vec<String>> = plan
        .iter()
        .map(|p| {
            vec![
                group.to_owned(),
                topic.to_owned(),
                p.partition.to_string(),
                opt(p.committed),
                p.new_offset.to_string(),
            ]
        })
        .collect();
    table(
        &[
            "GROUP",
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "NEW-OFFSET",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use client::MemberDescription;

    #[derive(Parser, Debug)]
    struct TestCli {
        #[command(subcommand)]
        command: GroupCommand,
    }

    #[test]
    fn reset_targets() {
        use ResetSpec::*;
        assert_eq!(reset_target(Earliest, Some(5), 2, 10).expect("e"), 2);
        assert_eq!(reset_target(Latest, None, 2, 10).expect("l"), 10);
        assert_eq!(reset_target(Offset(7), None, 2, 10).expect("o"), 7);
        assert_eq!(reset_target(Offset(1), None, 2, 10).expect("low"), 2);
        assert_eq!(reset_target(Offset(99), None, 2, 10).expect("high"), 10);
        assert_eq!(reset_target(ShiftBy(-3), Some(5), 0, 10).expect("back"), 2);
        assert_eq!(
            reset_target(ShiftBy(-30), Some(5), 1, 10).expect("floor"),
            1
        );
        assert_eq!(reset_target(ShiftBy(30), Some(5), 0, 10).expect("ceil"), 10);
        assert!(reset_target(ShiftBy(1), None, 0, 10).is_err());
        // An empty log: earliest == latest.
        assert_eq!(reset_target(Offset(3), None, 0, 0).expect("empty"), 0);
    }

    #[test]
    fn reset_args_parse() {
        let cli = TestCli::try_parse_from([
            "x",
            "reset-offsets",
            "g",
            "--topic",
            "t",
            "--shift-by",
            "-2",
        ])
        .expect("parse");
        let GroupCommand::ResetOffsets(args) = cli.command else {
            panic!("not reset-offsets");
        };
        assert_eq!(args.spec(), ResetSpec::ShiftBy(-2));
        assert!(!args.execute);
        // Exactly one target is required.
        assert!(TestCli::try_parse_from(["x", "reset-offsets", "g", "--topic", "t"]).is_err());
        assert!(TestCli::try_parse_from([
            "x",
            "reset-offsets",
            "g",
            "--topic",
            "t",
            "--to-earliest",
            "--to-latest"
        ])
        .is_err());
    }

    #[test]
    fn plan_from_offsets() {
        let args = ResetArgs {
            group: "g".into(),
            topic: "t".into(),
            partition: None,
            to_earliest: false,
            to_latest: false,
            to_offset: None,
            shift_by: Some(-5),
            execute: false,
        };
        let committed = BTreeMap::from([(("t".to_string(), 0), 8), (("t".to_string(), 1), 3)]);
        let plan =
            plan_resets(&args, &committed, &[(0, 0), (1, 2)], &[(0, 10), (1, 4)]).expect("plan");
        assert_eq!(plan[0].new_offset, 3);
        assert_eq!(plan[1].new_offset, 2);
        let text = plan_text("g", "t", &plan);
        assert!(text.starts_with("GROUP  TOPIC  PARTITION  CURRENT-OFFSET  NEW-OFFSET\n"));
        assert!(text.contains("g      t      0          8               3\n"));
    }

    #[test]
    fn describe_rows_and_lag() {
        let desc = GroupDescription {
            group_id: "g".into(),
            state: "Stable".into(),
            protocol_type: "consumer".into(),
            protocol: "range".into(),
            members: vec![MemberDescription {
                member_id: "m1".into(),
                group_instance_id: None,
                client_id: "cli".into(),
                client_host: "/127.0.0.1".into(),
                assignment: Some(BTreeMap::from([("t".to_string(), vec![0, 1])])),
            }],
        };
        let committed = BTreeMap::from([(("t".to_string(), 1), 4), (("u".to_string(), 0), 2)]);
        let mut rows = offset_rows(&desc, &committed);
        assert_eq!(rows.len(), 3);
        rows[1].log_end = Some(10);
        assert_eq!(rows[0].lag(), None);
        assert_eq!(rows[1].lag(), Some(6));
        assert_eq!(rows[2].owner, None);
        let text = describe_text(&desc, &rows);
        assert!(text.starts_with("Group: g\tState: Stable\tProtocol: consumer/range\tMembers: 1\n"));
        assert!(text.contains("t      1          4               10              6    m1"));
        assert!(text.contains("m1           /127.0.0.1  cli        t(0,1)\n"));
    }
}
