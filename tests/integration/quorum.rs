//! The quorum service end to end: real `tidemark quorum` processes on
//! loopback ports with temporary data dirs, driven through `QuorumClient`.
//! Timeouts are short (set in each node's config file, see
//! tests/integration/common/quorum.rs) so every test takes seconds. Each test owns its
//! cluster, so tests run in parallel.
use crate::common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use common::quorum::Quorum;
use model::{BrokerId, LeaderEpoch};
use quorum::protocol::{Request, Response};
use quorum::{BrokerInfo, ClientError, ClusterView, CommandError, Proposal, QuorumClient};

const SECRET: &str = "test-secret";
const WAIT: Duration = Duration::from_secs(20);

/// A client of `cluster` with the shared secret and short timeouts.
fn quorum_client(cluster: &Quorum) -> QuorumClient {
    QuorumClient::new(cluster.endpoint_list(), Some(SECRET.into()))
        .with_timeouts(Duration::from_secs(3), WAIT)
}

/// A fake broker that keeps its session alive (re-registering when told to)
/// until dropped.
struct FakeBroker {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeBroker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn broker_info(id: i32) -> BrokerInfo {
    BrokerInfo {
        incarnation: None,
        listeners: Vec::new(),
        broker_id: BrokerId(id),
        host: "127.0.0.1".into(),
        port: 19000 + id as u16,
        rack: None,
    }
}

async fn start_broker(cluster: &Quorum, id: i32) -> FakeBroker {
    let mut client = quorum_client(cluster);
    client
        .register_broker(broker_info(id))
        .await
        .expect("register broker");
    let task = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if let Err(ClientError::UnknownBroker(_)) = client.heartbeat(BrokerId(id)).await {
                let _ = client.register_broker(broker_info(id)).await;
            }
        }
    });
    FakeBroker { task }
}

/// Watches until `done` holds for the view, or fails after `WAIT`.
async fn wait_for_view(
    client: &mut QuorumClient,
    what: &str,
    done: impl Fn(&ClusterView) -> bool,
) -> ClusterView {
    let deadline = Instant::now() + WAIT;
    let mut revision = 0;
    loop {
        let view = client
            .watch(revision, Duration::from_millis(500))
            .await
            .expect("watch");
        if done(&view) {
            return view;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {view:#?}"
        );
        revision = view.revision;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_elect_a_leader_and_spread_replicas() {
    let cluster = Quorum::start_with(3, Some(SECRET), Some(1000));
    let mut client = quorum_client(&cluster);
    let view = client.read().await.expect("a leader answers a read");
    assert!(
        !view.cluster_id.is_empty(),
        "the cluster id is set once a leader exists"
    );
    let _brokers = [
        start_broker(&cluster, 1).await,
        start_broker(&cluster, 2).await,
        start_broker(&cluster, 3).await,
    ];
    client
        .create_topic("orders", 6, 3, BTreeMap::new())
        .await
        .expect("create topic");
    let view = client.read().await.expect("read");
    let topic = &view.topics["orders"];
    let mut leaders = BTreeMap::new();
    for p in &topic.partitions {
        let mut replicas = p.replicas.clone();
        replicas.sort();
        assert_eq!(replicas, vec![BrokerId(1), BrokerId(2), BrokerId(3)]);
        assert_eq!(p.leader, Some(p.replicas[0]));
        assert_eq!(p.isr.len(), 3);
        *leaders.entry(p.leader).or_insert(0) += 1;
    }
    assert_eq!(leaders.values().copied().collect::<Vec<_>>(), vec![2, 2, 2]);

    let output = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .args([
            "cluster",
            "status",
            "--json",
            "--quorum",
            &cluster.endpoints(),
        ])
        .env("TIDEMARK_QUORUM_SECRET", SECRET)
        .output()
        .expect("run cluster status");
    assert!(output.status.success(), "{output:?}");
    let status: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json status");
    assert!(status["leader"].is_string(), "{status}");
    assert_eq!(
        status["view"]["topics"]["orders"]["partitions"]
            .as_array()
            .map(Vec::len),
        Some(6)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_elects_another_and_the_restarted_node_catches_up() {
    let mut cluster = Quorum::start_with(3, Some(SECRET), Some(1000));
    let mut client = quorum_client(&cluster);
    let _broker = start_broker(&cluster, 1).await;
    client
        .create_topic("before", 2, 1, BTreeMap::new())
        .await
        .expect("create");
    let before = client.read().await.expect("read");
    let leader = cluster.index_of(client.leader().expect("a leader answered"));

    cluster.kill(leader);
    let killed_at = Instant::now();
    client
        .create_topic("after", 1, 1, BTreeMap::new())
        .await
        .expect("create after failover");
    let failover = killed_at.elapsed();
    assert!(
        failover < Duration::from_secs(10),
        "failover took {failover:?}"
    );
    let view = client.read().await.expect("read from the new leader");
    assert_ne!(cluster.index_of(client.leader().expect("leader")), leader);
    assert_eq!(view.topics["before"], before.topics["before"]);
    assert!(view.topics.contains_key("after"));
    assert!(
        view.brokers.contains_key(&BrokerId(1)),
        "a leader change does not expire brokers"
    );

    cluster.spawn(leader);
    let addr = cluster.nodes[leader].addr.clone();
    let deadline = Instant::now() + WAIT;
    loop {
        let request = Request::Watch {
            from_revision: 0,
            timeout_ms: 500,
        };
        if let Ok(Response::View(v)) = client.send_to(&addr, request).await {
            if v.topics.contains_key("after") {
                assert_eq!(v.topics["after"], view.topics["after"]);
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the restarted node did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_broker_loses_leadership_and_isr_and_leads_again_after_registering() {
    let cluster = Quorum::start_with(3, Some(SECRET), Some(1000));
    let mut client = quorum_client(&cluster);
    let mut brokers: BTreeMap<i32, FakeBroker> = BTreeMap::new();
    for id in 1..=3 {
        brokers.insert(id, start_broker(&cluster, id).await);
    }
    client
        .create_topic("shared", 3, 3, BTreeMap::new())
        .await
        .expect("create");
    client
        .create_topic("solo", 3, 1, BTreeMap::new())
        .await
        .expect("create");
    let before = client.read().await.expect("read");
    let victim = before.topics["shared"].partitions[0]
        .leader
        .expect("a leader");
    drop(brokers.remove(&victim.0));

    let after = wait_for_view(&mut client, "the broker to expire", |v| {
        !v.brokers.contains_key(&victim)
    })
    .await;
    for (old, new) in before.topics["shared"]
        .partitions
        .iter()
        .zip(&after.topics["shared"].partitions)
    {
        assert!(!new.isr.contains(&victim), "{new:?}");
        if old.leader == Some(victim) {
            let expected = old
                .replicas
                .iter()
                .copied()
                .find(|b| *b != victim)
                .expect("another replica");
            assert_eq!(new.leader, Some(expected));
            assert_eq!(new.leader_epoch, LeaderEpoch(old.leader_epoch.0 + 1));
        } else {
            assert_eq!(
                (new.leader, new.leader_epoch),
                (old.leader, old.leader_epoch)
            );
        }
        assert!(new.partition_epoch > old.partition_epoch);
    }
    let orphan = after.topics["solo"]
        .partitions
        .iter()
        .position(|p| p.replicas == vec![victim])
        .expect("a solo partition on the victim");
    let p = &after.topics["solo"].partitions[orphan];
    assert_eq!((p.leader, p.isr.clone()), (None, vec![victim]));

    brokers.insert(victim.0, start_broker(&cluster, victim.0).await);
    let view = client.read().await.expect("read");
    let p = &view.topics["solo"].partitions[orphan];
    assert_eq!(p.leader, Some(victim));
    assert_eq!(p.leader_epoch, LeaderEpoch(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_alter_partition_and_wrong_revision_are_rejected() {
    let cluster = Quorum::start_with(3, Some(SECRET), Some(1000));
    let mut client = quorum_client(&cluster);
    let _brokers = [
        start_broker(&cluster, 1).await,
        start_broker(&cluster, 2).await,
        start_broker(&cluster, 3).await,
    ];
    client
        .create_topic("t", 1, 3, BTreeMap::new())
        .await
        .expect("create");
    let p = client.read().await.expect("read").topics["t"].partitions[0].clone();
    let leader = p.leader.expect("a leader");
    let shrunk = vec![leader];
    let state = client
        .alter_partition(
            "t",
            0,
            leader,
            p.leader_epoch,
            p.partition_epoch,
            shrunk.clone(),
        )
        .await
        .expect("shrink the ISR");
    assert_eq!(
        (state.isr.clone(), state.partition_epoch),
        (shrunk, p.partition_epoch + 1)
    );

    let stale = client
        .alter_partition(
            "t",
            0,
            leader,
            p.leader_epoch,
            p.partition_epoch,
            p.replicas.clone(),
        )
        .await;
    assert!(
        matches!(
            stale,
            Err(ClientError::Rejected(
                CommandError::InvalidUpdateVersion { .. }
            ))
        ),
        "{stale:?}"
    );
    let fenced = client
        .alter_partition(
            "t",
            0,
            leader,
            LeaderEpoch(p.leader_epoch.0 - 1),
            state.partition_epoch,
            p.replicas.clone(),
        )
        .await;
    assert!(
        matches!(
            fenced,
            Err(ClientError::Rejected(
                CommandError::FencedLeaderEpoch { .. }
            ))
        ),
        "{fenced:?}"
    );

    let revision = client.read().await.expect("read").revision;
    let delete = |expected| Proposal {
        expected_revision: Some(expected),
        command: quorum::Command::DeleteTopic { name: "t".into() },
    };
    let conflict = client.write(delete(revision - 1)).await;
    assert!(
        matches!(
            conflict,
            Err(ClientError::Rejected(CommandError::RevisionConflict { .. }))
        ),
        "{conflict:?}"
    );
    let applied = client
        .write(delete(revision))
        .await
        .expect("CAS at the current revision");
    assert_eq!(applied.revision, revision + 1);
}

async fn raw_exchange(addr: &str, bytes: &[u8]) -> Vec<u8> {
    let addr = addr.to_string();
    let bytes = bytes.to_vec();
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        stream.write_all(&bytes).expect("write");
        let mut answer = Vec::new();
        let mut len = [0u8; 4];
        if stream.read_exact(&mut len).is_ok() {
            answer.resize(u32::from_be_bytes(len) as usize, 0);
            stream.read_exact(&mut answer).expect("read body");
        }
        answer
    })
    .await
    .expect("join")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_oversized_and_unauthenticated_requests_are_refused() {
    let cluster = Quorum::start_with(3, Some(SECRET), Some(1000));
    let mut client = quorum_client(&cluster);
    let before = client.read().await.expect("read");
    let addr = client.leader().expect("leader").to_string();

    let garbage = b"this is not json";
    let mut frame = (garbage.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(garbage);
    let answer: Response =
        serde_json::from_slice(&raw_exchange(&addr, &frame).await).expect("a response");
    assert!(matches!(answer, Response::BadRequest { .. }), "{answer:?}");

    let oversized = u32::MAX.to_be_bytes();
    assert!(
        raw_exchange(&addr, &oversized).await.is_empty(),
        "the connection is closed"
    );
    assert!(raw_exchange(&addr, &[0xde, 0xad]).await.is_empty());

    let unauthenticated = r#"{"auth":null,"request":{"Write":{"expected_revision":null,"command":{"DeleteTopic":{"name":"x"}}}}}"#;
    let mut frame = (unauthenticated.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(unauthenticated.as_bytes());
    let answer: Response =
        serde_json::from_slice(&raw_exchange(&addr, &frame).await).expect("a response");
    assert!(matches!(answer, Response::Unauthenticated), "{answer:?}");

    let mut wrong = QuorumClient::new(cluster.endpoint_list(), Some("wrong".into()));
    let refused = wrong.create_topic("x", 1, 1, BTreeMap::new()).await;
    assert!(
        matches!(refused, Err(ClientError::Unauthenticated)),
        "{refused:?}"
    );
    let mut none = QuorumClient::new(cluster.endpoint_list(), None);
    assert!(matches!(
        none.read().await,
        Err(ClientError::Unauthenticated)
    ));

    let after = client.read().await.expect("the node keeps serving");
    assert_eq!(after, before, "refused requests change nothing");
    let _broker = start_broker(&cluster, 1).await;
    client
        .create_topic("fine", 1, 1, BTreeMap::new())
        .await
        .expect("create");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_cluster_restart_keeps_everything_including_snapshots() {
    let mut cluster = Quorum::start_with(3, Some(SECRET), Some(10));
    let mut client = quorum_client(&cluster);
    let broker = start_broker(&cluster, 1).await;
    for i in 0..30 {
        client
            .create_topic(&format!("topic-{i}"), 1, 1, BTreeMap::new())
            .await
            .expect("create");
    }
    // A node that misses more than the log kept after a snapshot is caught
    // up by an InstallSnapshot.
    cluster.kill(2);
    for i in 30..60 {
        client
            .create_topic(&format!("topic-{i}"), 1, 1, BTreeMap::new())
            .await
            .expect("create with one node down");
    }
    cluster.spawn(2);
    let lagging = cluster.nodes[2].addr.clone();
    let deadline = Instant::now() + WAIT;
    loop {
        let request = Request::Watch {
            from_revision: 0,
            timeout_ms: 500,
        };
        if let Ok(Response::View(v)) = client.send_to(&lagging, request).await {
            if v.topics.contains_key("topic-59") {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the lagging node did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = std::fs::read_to_string(&cluster.nodes[2].log).unwrap_or_default();
    assert!(log.contains("quorum snapshot installed"), "{log}");
    let (first, count) = client
        .allocate_producer_ids(BrokerId(1), 1000)
        .await
        .expect("producer ids");
    let before = client.read().await.expect("read");
    let deadline = Instant::now() + WAIT;
    for i in 0..cluster.nodes.len() {
        let addr = cluster.nodes[i].addr.clone();
        loop {
            let status = client.status(&addr).await.expect("status");
            if status.snapshot_index.is_some() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {} took no snapshot: {status:?}",
                i + 1
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(cluster.nodes[i].data_dir.join("snapshot.json").exists());
    }

    for i in 0..cluster.nodes.len() {
        cluster.kill(i);
    }
    for i in 0..cluster.nodes.len() {
        cluster.spawn(i);
    }
    let mut client = quorum_client(&cluster);
    let after = client.read().await.expect("read after restart");
    assert_eq!(after.cluster_id, before.cluster_id);
    assert_eq!(after.topics, before.topics);
    assert!(after.revision >= before.revision);
    assert_eq!(after.next_producer_id, first + count);
    drop(broker);
    client
        .create_topic("post-restart", 1, 1, BTreeMap::new())
        .await
        .expect("create");
}
