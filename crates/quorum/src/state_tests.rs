//! Unit tests of the pure state machine.
use super::*;

fn ids(raw: &[i32]) -> Vec<BrokerId> {
    raw.iter().copied().map(BrokerId).collect()
}

/// The partition is led by broker `id`.
fn led(id: i32) -> Option<BrokerId> {
    Some(BrokerId(id))
}

fn broker(id: i32) -> BrokerInfo {
    BrokerInfo {
        broker_id: BrokerId(id),
        host: "127.0.0.1".into(),
        port: 9000 + id as u16,
        rack: None,
        incarnation: None,
        listeners: Vec::new(),
    }
}

fn run(view: &mut ClusterView, command: Command) -> CommandResult {
    apply(view, &Proposal::new(command))
}

fn ok(view: &mut ClusterView, command: Command) -> Applied {
    run(view, command).expect("command applies")
}

fn with_brokers(ids: &[i32]) -> ClusterView {
    let mut view = ClusterView::default();
    for &id in ids {
        ok(&mut view, Command::RegisterBroker { info: broker(id) });
    }
    view
}

fn create(view: &mut ClusterView, name: &str, partitions: i32, rf: i16) -> CommandResult {
    run(
        view,
        Command::CreateTopic {
            name: name.into(),
            partitions,
            replication_factor: rf,
            configs: BTreeMap::new(),
            topic_id: None,
        },
    )
}

fn part<'a>(view: &'a ClusterView, topic: &str, p: i32) -> &'a PartitionState {
    view.partition(topic, p).expect("partition exists")
}

fn expire(view: &mut ClusterView, id: i32) {
    ok(
        view,
        Command::ExpireBroker {
            broker_id: BrokerId(id),
        },
    );
}

fn set_partition(view: &mut ClusterView, topic: &str, replicas: &[i32], leader: i32, isr: &[i32]) {
    let p = &mut view.topics.get_mut(topic).unwrap().partitions[0];
    p.replicas = ids(replicas);
    p.leader = BrokerId::from_wire(leader);
    p.isr = ids(isr);
}

#[test]
fn every_change_bumps_the_revision_and_rejections_do_not() {
    let mut view = with_brokers(&[1, 2, 3]);
    assert_eq!(view.revision, 3);
    assert_eq!(create(&mut view, "t", 3, 3).unwrap().revision, 4);
    assert!(create(&mut view, "t", 3, 3).is_err());
    assert_eq!(view.revision, 4);
    ok(&mut view, Command::DeleteTopic { name: "t".into() });
    assert_eq!(view.revision, 5);
    assert!(view.topics.is_empty());
}

#[test]
fn init_cluster_sets_the_id_once() {
    let mut view = ClusterView::default();
    ok(
        &mut view,
        Command::InitCluster {
            cluster_id: "a".into(),
        },
    );
    let again = ok(
        &mut view,
        Command::InitCluster {
            cluster_id: "b".into(),
        },
    );
    assert_eq!(view.cluster_id, "a");
    assert_eq!(again.revision, 1);
}

#[test]
fn compare_and_set_checks_the_revision() {
    let mut view = with_brokers(&[1]);
    let wrong = Proposal {
        expected_revision: Some(7),
        command: Command::DeleteTopic { name: "x".into() },
    };
    assert_eq!(
        apply(&mut view, &wrong),
        Err(CommandError::RevisionConflict {
            expected: 7,
            actual: 1
        })
    );
    let right = Proposal {
        expected_revision: Some(1),
        command: Command::RegisterBroker { info: broker(2) },
    };
    assert_eq!(apply(&mut view, &right).unwrap().revision, 2);
}

#[test]
fn create_topic_needs_enough_live_brokers() {
    let mut view = with_brokers(&[1, 2]);
    assert_eq!(
        create(&mut view, "t", 1, 3),
        Err(CommandError::InvalidReplicationFactor {
            requested: 3,
            available: 2
        })
    );
    assert!(matches!(
        create(&mut view, "t", 0, 1),
        Err(CommandError::InvalidPartitions(_))
    ));
    assert!(matches!(
        create(&mut view, "bad/name", 1, 1),
        Err(CommandError::InvalidTopic(_))
    ));
    assert!(matches!(
        create(&mut view, "t", 1, 0),
        Err(CommandError::InvalidReplicationFactor { .. })
    ));
}

#[test]
fn a_topic_name_colliding_in_metric_names_is_invalid_and_changes_nothing() {
    let mut view = with_brokers(&[1]);
    create(&mut view, "orders_eu", 1, 1).unwrap();
    let revision = view.revision;
    assert_eq!(
        create(&mut view, "orders.eu", 1, 1),
        Err(CommandError::TopicCollision {
            name: "orders.eu".to_string(),
            existing: "orders_eu".to_string()
        })
    );
    assert_eq!(view.revision, revision);
    assert!(!view.topics.contains_key("orders.eu"));
    assert_eq!(
        CommandError::TopicCollision {
            name: "a.x".into(),
            existing: "a_x".into()
        }
        .kafka_error_code(),
        17
    );
}

#[test]
fn create_topic_places_replicas_with_leader_first_and_full_isr() {
    let mut view = with_brokers(&[1, 2, 3]);
    let applied = create(&mut view, "t", 6, 3).unwrap();
    let Outcome::TopicCreated { topic_id } = applied.outcome else {
        panic!("expected TopicCreated");
    };
    let topic = &view.topics["t"];
    assert_eq!(topic.topic_id, topic_id);
    let mut leaders = BTreeMap::new();
    for p in &topic.partitions {
        assert_eq!(p.leader, Some(p.replicas[0]));
        assert_eq!(p.isr, p.replicas);
        assert_eq!((p.leader_epoch, p.partition_epoch), (LeaderEpoch(0), 0));
        *leaders.entry(p.leader).or_insert(0) += 1;
    }
    assert_eq!(leaders.values().copied().collect::<Vec<_>>(), vec![2, 2, 2]);
}

#[test]
fn expiry_elects_the_first_live_isr_replica_and_shrinks_the_isr() {
    let mut view = with_brokers(&[1, 2, 3]);
    create(&mut view, "t", 1, 3).unwrap();
    set_partition(&mut view, "t", &[1, 2, 3], 1, &[1, 3, 2]);
    expire(&mut view, 1);
    let p = part(&view, "t", 0);
    assert_eq!(p.leader, led(2), "replica order decides, not ISR order");
    assert_eq!(p.leader_epoch, LeaderEpoch(1));
    assert_eq!(p.partition_epoch, 1);
    assert_eq!(p.isr, ids(&[3, 2]));
    assert!(!view.brokers.contains_key(&BrokerId(1)));
}

#[test]
fn expiry_of_a_follower_only_shrinks_the_isr() {
    let mut view = with_brokers(&[1, 2, 3]);
    create(&mut view, "t", 1, 3).unwrap();
    set_partition(&mut view, "t", &[1, 2, 3], 1, &[1, 2, 3]);
    expire(&mut view, 3);
    let p = part(&view, "t", 0);
    assert_eq!(
        (p.leader, p.leader_epoch, p.partition_epoch),
        (led(1), LeaderEpoch(0), 1)
    );
    assert_eq!(p.isr, ids(&[1, 2]));
}

#[test]
fn the_last_isr_member_stays_and_leads_again_when_it_registers() {
    let mut view = with_brokers(&[1, 2]);
    create(&mut view, "t", 1, 2).unwrap();
    set_partition(&mut view, "t", &[1, 2], 1, &[1]);
    expire(&mut view, 1);
    let p = part(&view, "t", 0).clone();
    assert_eq!(p.leader, None);
    assert_eq!(p.isr, ids(&[1]));
    assert_eq!(p.leader_epoch, LeaderEpoch(1));
    ok(&mut view, Command::RegisterBroker { info: broker(1) });
    let p = part(&view, "t", 0);
    assert_eq!(p.leader, led(1));
    assert_eq!(p.leader_epoch, LeaderEpoch(2));
    assert_eq!(p.isr, ids(&[1]));
}

#[test]
fn a_restarted_broker_loses_leadership_and_isr_but_the_same_process_keeps_them() {
    let mut view = with_brokers(&[1, 2, 3]);
    create(&mut view, "t", 1, 3).unwrap();
    set_partition(&mut view, "t", &[1, 2, 3], 1, &[1, 2, 3]);
    // The same process registering again (after a lost heartbeat) changes nothing.
    ok(&mut view, Command::RegisterBroker { info: broker(1) });
    assert_eq!(part(&view, "t", 0).leader, led(1));
    // A new process under the same id: its leadership goes to an ISR member.
    let restarted = BrokerInfo {
        incarnation: Some(uuid::Uuid::from_u128(7)),
        listeners: Vec::new(),
        ..broker(1)
    };
    ok(&mut view, Command::RegisterBroker { info: restarted });
    let p = part(&view, "t", 0);
    assert_eq!((p.leader, p.leader_epoch), (led(2), LeaderEpoch(1)));
    assert_eq!(p.isr, ids(&[2, 3]));
    assert!(view.brokers.contains_key(&BrokerId(1)), "registered again");
}

#[test]
fn unclean_election_picks_a_live_replica_outside_the_isr() {
    let mut view = with_brokers(&[1, 2]);
    create(&mut view, "t", 1, 2).unwrap();
    ok(
        &mut view,
        Command::AlterTopicConfigs {
            name: "t".into(),
            set: [(UNCLEAN_LEADER_ELECTION.to_string(), "true".to_string())].into(),
            delete: vec![],
        },
    );
    set_partition(&mut view, "t", &[1, 2], 1, &[1]);
    expire(&mut view, 1);
    let p = part(&view, "t", 0);
    assert_eq!(p.leader, led(2));
    assert_eq!(p.isr, ids(&[2]));
}

#[test]
fn unclean_election_on_registration_of_a_replica() {
    let mut view = with_brokers(&[1, 2]);
    create(&mut view, "t", 1, 2).unwrap();
    set_partition(&mut view, "t", &[1, 2], 1, &[1]);
    expire(&mut view, 2);
    expire(&mut view, 1);
    assert_eq!(part(&view, "t", 0).leader, None);
    let mut configs = BTreeMap::new();
    configs.insert(UNCLEAN_LEADER_ELECTION.to_string(), "true".to_string());
    ok(
        &mut view,
        Command::AlterTopicConfigs {
            name: "t".into(),
            set: configs,
            delete: vec![],
        },
    );
    ok(&mut view, Command::RegisterBroker { info: broker(2) });
    let p = part(&view, "t", 0);
    assert_eq!((p.leader, p.isr.clone()), (led(2), ids(&[2])));
}

#[test]
fn clean_election_never_leaves_the_isr() {
    let mut view = with_brokers(&[1, 2]);
    create(&mut view, "t", 1, 2).unwrap();
    set_partition(&mut view, "t", &[1, 2], 1, &[1]);
    expire(&mut view, 1);
    assert_eq!(part(&view, "t", 0).leader, None);
    ok(&mut view, Command::RegisterBroker { info: broker(2) });
    assert_eq!(part(&view, "t", 0).leader, None);
}

#[test]
fn expiring_an_unknown_broker_is_rejected() {
    let mut view = with_brokers(&[1]);
    assert_eq!(
        run(
            &mut view,
            Command::ExpireBroker {
                broker_id: BrokerId(9)
            }
        ),
        Err(CommandError::UnknownBroker(BrokerId(9)))
    );
}

fn alter(leader_id: i32, leader_epoch: i32, partition_epoch: i32, new_isr: &[i32]) -> Command {
    Command::AlterPartition {
        topic: "t".into(),
        partition: 0,
        leader_id: BrokerId(leader_id),
        leader_epoch: LeaderEpoch(leader_epoch),
        partition_epoch,
        new_isr: ids(new_isr),
    }
}

#[test]
fn alter_partition_checks_leader_and_epochs() {
    let mut view = with_brokers(&[1, 2, 3]);
    create(&mut view, "t", 1, 3).unwrap();
    set_partition(&mut view, "t", &[1, 2, 3], 1, &[1, 2, 3]);
    assert!(matches!(
        run(&mut view, alter(2, 0, 0, &[2])),
        Err(CommandError::NotLeader { .. })
    ));
    assert!(matches!(
        run(&mut view, alter(1, 5, 0, &[1])),
        Err(CommandError::FencedLeaderEpoch {
            given: LeaderEpoch(5),
            current: LeaderEpoch(0)
        })
    ));
    assert!(matches!(
        run(&mut view, alter(1, 0, 3, &[1])),
        Err(CommandError::InvalidUpdateVersion {
            given: 3,
            current: 0
        })
    ));
    let applied = ok(&mut view, alter(1, 0, 0, &[1, 2]));
    let Outcome::Partition(p) = applied.outcome else {
        panic!("expected the partition back");
    };
    assert_eq!(
        (p.isr.clone(), p.partition_epoch, p.leader_epoch),
        (ids(&[1, 2]), 1, LeaderEpoch(0))
    );
    // The same request again is now stale.
    assert!(matches!(
        run(&mut view, alter(1, 0, 0, &[1, 2, 3])),
        Err(CommandError::InvalidUpdateVersion { .. })
    ));
    ok(&mut view, alter(1, 0, 1, &[1, 2, 3]));
}

#[test]
fn alter_partition_validates_the_new_isr() {
    let mut view = with_brokers(&[1, 2, 3, 4]);
    create(&mut view, "t", 1, 3).unwrap();
    set_partition(&mut view, "t", &[1, 2, 3], 1, &[1, 2, 3]);
    for bad in [&[2, 3][..], &[1, 4], &[1, 1], &[]] {
        assert!(
            matches!(
                run(&mut view, alter(1, 0, 0, bad)),
                Err(CommandError::InvalidIsr(_))
            ),
            "{bad:?}"
        );
    }
    expire(&mut view, 3);
    let epoch = part(&view, "t", 0).partition_epoch;
    assert!(matches!(
        run(&mut view, alter(1, 0, epoch, &[1, 3])),
        Err(CommandError::InvalidIsr(_))
    ));
    assert!(matches!(
        run(
            &mut view,
            Command::AlterPartition {
                topic: "t".into(),
                partition: 7,
                leader_id: BrokerId(1),
                leader_epoch: LeaderEpoch(0),
                partition_epoch: 0,
                new_isr: ids(&[1]),
            }
        ),
        Err(CommandError::UnknownPartition { .. })
    ));
}

#[test]
fn create_partitions_grows_with_the_same_replication_factor() {
    let mut view = with_brokers(&[1, 2, 3]);
    create(&mut view, "t", 2, 2).unwrap();
    ok(
        &mut view,
        Command::CreatePartitions {
            name: "t".into(),
            count: 5,
        },
    );
    let topic = &view.topics["t"];
    assert_eq!(topic.partitions.len(), 5);
    assert!(topic.partitions.iter().all(|p| p.replicas.len() == 2));
    assert!(matches!(
        run(
            &mut view,
            Command::CreatePartitions {
                name: "t".into(),
                count: 5
            }
        ),
        Err(CommandError::InvalidPartitions(_))
    ));
}

#[test]
fn topic_configs_are_set_and_deleted() {
    let mut view = with_brokers(&[1]);
    create(&mut view, "t", 1, 1).unwrap();
    let set: BTreeMap<String, String> = [("retention.ms".to_string(), "10".to_string())].into();
    ok(
        &mut view,
        Command::AlterTopicConfigs {
            name: "t".into(),
            set,
            delete: vec![],
        },
    );
    assert_eq!(view.topics["t"].configs["retention.ms"], "10");
    ok(
        &mut view,
        Command::AlterTopicConfigs {
            name: "t".into(),
            set: BTreeMap::new(),
            delete: vec!["retention.ms".into()],
        },
    );
    assert!(view.topics["t"].configs.is_empty());
    let bad: BTreeMap<String, String> =
        [(UNCLEAN_LEADER_ELECTION.to_string(), "maybe".to_string())].into();
    assert!(matches!(
        run(
            &mut view,
            Command::AlterTopicConfigs {
                name: "t".into(),
                set: bad,
                delete: vec![]
            }
        ),
        Err(CommandError::InvalidConfig(_))
    ));
}

#[test]
fn producer_id_blocks_do_not_overlap() {
    let mut view = with_brokers(&[1, 2]);
    let a = ok(
        &mut view,
        Command::AllocateProducerIds {
            broker_id: BrokerId(1),
            count: 1000,
        },
    );
    let b = ok(
        &mut view,
        Command::AllocateProducerIds {
            broker_id: BrokerId(2),
            count: 1000,
        },
    );
    assert_eq!(
        a.outcome,
        Outcome::ProducerIds {
            first_id: 0,
            count: 1000
        }
    );
    assert_eq!(
        b.outcome,
        Outcome::ProducerIds {
            first_id: 1000,
            count: 1000
        }
    );
    assert!(run(
        &mut view,
        Command::AllocateProducerIds {
            broker_id: BrokerId(9),
            count: 1
        }
    )
    .is_err());
    assert!(run(
        &mut view,
        Command::AllocateProducerIds {
            broker_id: BrokerId(1),
            count: 0
        }
    )
    .is_err());
}

#[test]
fn derived_topic_ids_are_deterministic() {
    let mut a = with_brokers(&[1]);
    let mut b = with_brokers(&[1]);
    create(&mut a, "t", 1, 1).unwrap();
    create(&mut b, "t", 1, 1).unwrap();
    assert_eq!(a, b);
}

fn create_with(name: &str, configs: BTreeMap<String, String>) -> Command {
    Command::CreateTopic {
        name: name.into(),
        partitions: 1,
        replication_factor: 1,
        configs,
        topic_id: None,
    }
}

#[test]
fn config_values_and_topic_sizes_are_bounded() {
    let mut view = with_brokers(&[1]);
    let huge: BTreeMap<String, String> = [(
        "retention.ms".to_string(),
        format!("{}1", "0".repeat(CONFIG_VALUE_BYTES_MAX)),
    )]
    .into();
    assert!(matches!(
        run(&mut view, create_with("t", huge)),
        Err(CommandError::InvalidConfig(_))
    ));
    let many: BTreeMap<String, String> = (0..3)
        .map(|i| (format!("k{i}"), "x".repeat(CONFIG_VALUE_BYTES_MAX)))
        .collect();
    assert!(run(&mut view, create_with("t", many)).is_err());
    ok(&mut view, create_with("t", BTreeMap::new()));
    let set: BTreeMap<String, String> = (0..3)
        .map(|i| (format!("k{i}"), "x".repeat(CONFIG_VALUE_BYTES_MAX)))
        .collect();
    let alter = Command::AlterTopicConfigs {
        name: "t".into(),
        set,
        delete: vec![],
    };
    assert!(matches!(
        run(&mut view, alter),
        Err(CommandError::InvalidConfig(_))
    ));
    let mut wide = with_brokers(&(1..=40).collect::<Vec<_>>());
    assert!(matches!(
        create(&mut wide, "w", PARTITIONS_PER_TOPIC_MAX, 40),
        Err(CommandError::InvalidPartitions(_))
    ));
    assert!(create(&mut wide, "w", PARTITIONS_PER_TOPIC_MAX, 3).is_ok());
}

#[test]
fn a_batch_applies_each_command_and_reports_the_topics_it_touched() {
    let mut view = with_brokers(&[1]);
    let commands = vec![
        create_with("a", BTreeMap::new()),
        create_with("a", BTreeMap::new()),
        create_with("b", BTreeMap::new()),
        Command::Batch { commands: vec![] },
    ];
    let mut touched = Vec::new();
    let applied = apply_tracked(
        &mut view,
        &Proposal::new(Command::Batch { commands }),
        &mut touched,
    )
    .unwrap();
    let Outcome::Batch(outcomes) = applied.outcome else {
        panic!("not a batch outcome");
    };
    assert!(outcomes[0].is_ok() && outcomes[2].is_ok());
    assert!(matches!(
        outcomes[1],
        Err(CommandError::TopicAlreadyExists(_))
    ));
    assert!(outcomes[3].is_err(), "no nested batches");
    assert_eq!(applied.revision, 3);
    assert_eq!(touched, vec!["a".to_string(), "b".to_string()]);
    let mut touched = Vec::new();
    let expire = Proposal::new(Command::ExpireBroker {
        broker_id: BrokerId(1),
    });
    apply_tracked(&mut view, &expire, &mut touched).unwrap();
    assert_eq!(touched, vec!["a".to_string(), "b".to_string()]);
}

#[test]
fn a_batch_adds_state_when_any_of_its_commands_does() {
    let deletes = Command::Batch {
        commands: vec![Command::DeleteTopic { name: "t".into() }],
    };
    assert!(!deletes.adds_state());
    let creates = Command::Batch {
        commands: vec![
            Command::DeleteTopic { name: "t".into() },
            create_with("u", BTreeMap::new()),
        ],
    };
    assert!(creates.adds_state());
}

#[test]
fn registering_the_same_broker_again_changes_no_revision() {
    let mut view = with_brokers(&[1, 2]);
    create(&mut view, "t", 1, 2).unwrap();
    let before = view.clone();
    let applied = ok(&mut view, Command::RegisterBroker { info: broker(1) });
    assert_eq!(applied.revision, before.revision);
    assert_eq!(view, before);
    // A leaderless partition it can lead is a change, and gets a revision.
    set_partition(&mut view, "t", &[1, 2], 1, &[1]);
    expire(&mut view, 1);
    let revision = view.revision;
    ok(&mut view, Command::RegisterBroker { info: broker(1) });
    assert_eq!(view.revision, revision + 1);
    assert_eq!(part(&view, "t", 0).leader, led(1));
}

#[test]
fn setting_configs_to_the_values_they_have_changes_no_revision() {
    let mut view = with_brokers(&[1]);
    create(&mut view, "t", 1, 1).unwrap();
    let alter = |set: &[(&str, &str)], delete: &[&str]| Command::AlterTopicConfigs {
        name: "t".into(),
        set: set
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        delete: delete.iter().map(|k| k.to_string()).collect(),
    };
    ok(&mut view, alter(&[("retention.ms", "100000")], &[]));
    let before = view.clone();
    ok(
        &mut view,
        alter(&[("retention.ms", "100000")], &["segment.bytes"]),
    );
    assert_eq!(
        view, before,
        "the same value again, and deleting an absent key"
    );
    ok(&mut view, alter(&[], &["retention.ms"]));
    assert_eq!(view.revision, before.revision + 1, "a delete is a change");
    assert!(!view.topics["t"].configs.contains_key("retention.ms"));
}
