package dev.tidemark.interop;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.CreatePartitionsOptions;
import org.apache.kafka.clients.admin.CreateTopicsOptions;
import org.apache.kafka.clients.admin.CreateTopicsResult;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.ListTopicsOptions;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.admin.TopicListing;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicCollection;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.errors.InvalidConfigurationException;
import org.apache.kafka.common.errors.InvalidPartitionsException;
import org.apache.kafka.common.errors.InvalidReplicaAssignmentException;
import org.apache.kafka.common.errors.InvalidReplicationFactorException;
import org.apache.kafka.common.errors.InvalidTopicException;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.errors.UnknownTopicIdException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

class AdminTopicsTest {

    @Test
    void createDescribeListAndDeleteATopic() {
        String topic = Kit.unique("admin-topic");
        try (Admin admin = Kit.admin()) {
            CreateTopicsResult r = admin.createTopics(List.of(
                    new NewTopic(topic, 3, (short) 1).configs(Map.of("retention.ms", "3600000"))));
            Kit.get(r.all());
            assertEquals(3, Kit.get(r.numPartitions(topic)));
            assertEquals(1, Kit.get(r.replicationFactor(topic)));
            Uuid createdId = Kit.get(r.topicId(topic));
            assertNotEquals(Uuid.ZERO_UUID, createdId);
            Kit.waitForTopic(admin, topic, 3);

            Collection<Node> nodes = Kit.get(admin.describeCluster().nodes());
            Set<Integer> nodeIds = nodes.stream().map(Node::id).collect(Collectors.toSet());
            TopicDescription d = Kit.get(admin.describeTopics(List.of(topic)).allTopicNames()).get(topic);
            assertEquals(topic, d.name());
            assertFalse(d.isInternal());
            assertEquals(createdId, d.topicId());
            assertEquals(3, d.partitions().size());
            for (int i = 0; i < 3; i++) {
                TopicPartitionInfo p = d.partitions().get(i);
                assertEquals(i, p.partition());
                assertTrue(nodeIds.contains(p.leader().id()), "leader is a cluster node");
                assertEquals(1, p.replicas().size());
                assertEquals(List.of(p.leader()), p.isr());
            }

            Map<String, TopicListing> listings = Kit.get(admin.listTopics().namesToListings());
            assertTrue(listings.containsKey(topic));
            assertFalse(listings.get(topic).isInternal());
            assertEquals(createdId, listings.get(topic).topicId());

            Kit.get(admin.deleteTopics(List.of(topic)).all());
            Kit.eventually("topic gone from listTopics", () -> !Kit.get(admin.listTopics().names()).contains(topic));
            Throwable t = Kit.failure(admin.describeTopics(List.of(topic)).allTopicNames());
            assertInstanceOf(UnknownTopicOrPartitionException.class, t);
        }
    }

    // The Java admin asks Metadata (v12) by topic id with the name "" (not null): the id decides.
    @Test
    void describeAndDeleteByTopicId() {
        String topic = Kit.newTopic("by-id", 2);
        try (Admin admin = Kit.admin()) {
            Uuid id = Kit.get(admin.describeTopics(List.of(topic)).allTopicNames()).get(topic).topicId();
            TopicDescription d = Kit.get(admin.describeTopics(TopicCollection.ofTopicIds(List.of(id))).allTopicIds()).get(id);
            assertEquals(topic, d.name());
            assertEquals(2, d.partitions().size());
            Kit.get(admin.deleteTopics(TopicCollection.ofTopicIds(List.of(id))).all());
            Kit.eventually("topic gone", () -> !Kit.get(admin.listTopics().names()).contains(topic));
            Throwable t = Kit.failure(admin.describeTopics(TopicCollection.ofTopicIds(List.of(id))).allTopicIds());
            assertInstanceOf(UnknownTopicIdException.class, t);
        }
    }

    // The CreateTopics answer (v5+) carries every config of the new topic with its value and source,
    // which CreateTopicsResult.config() returns.
    @Test
    void createTopicsAnswersTheNewTopicsConfigs() {
        String topic = Kit.unique("create-configs");
        try (Admin admin = Kit.admin()) {
            CreateTopicsResult r = admin.createTopics(List.of(
                    new NewTopic(topic, 1, (short) 1).configs(Map.of("retention.ms", "3600000"))));
            Kit.get(r.all());
            org.apache.kafka.clients.admin.Config c = Kit.get(r.config(topic));
            assertNotNull(c.get("retention.ms"), "retention.ms in " + c);
            assertEquals("3600000", c.get("retention.ms").value());
            assertEquals(org.apache.kafka.clients.admin.ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG,
                    c.get("retention.ms").source());
            assertEquals("delete", c.get("cleanup.policy").value());
        }
    }

    @Test
    void creatingAnExistingTopicIsTopicExists() {
        String topic = Kit.newTopic("exists", 1);
        try (Admin admin = Kit.admin()) {
            Throwable t = Kit.failure(admin.createTopics(List.of(new NewTopic(topic, 1, (short) 1))).all());
            assertInstanceOf(TopicExistsException.class, t);
        }
    }

    @Test
    void validateOnlyCreatesNothing() {
        String topic = Kit.unique("validate-only");
        try (Admin admin = Kit.admin()) {
            CreateTopicsResult r = admin.createTopics(List.of(new NewTopic(topic, 4, (short) 1)),
                    new CreateTopicsOptions().validateOnly(true));
            Kit.get(r.all());
            assertEquals(4, Kit.get(r.numPartitions(topic)));
            Kit.sleep(500);
            assertFalse(Kit.get(admin.listTopics().names()).contains(topic));
        }
    }

    @Test
    void invalidCreationsGetTheirErrors() {
        try (Admin admin = Kit.admin()) {
            assertInstanceOf(InvalidConfigurationException.class, Kit.failure(admin.createTopics(List.of(
                    new NewTopic(Kit.unique("badcfg"), 1, (short) 1).configs(Map.of("retention.ms", "not-a-number")))).all()));
            assertInstanceOf(InvalidConfigurationException.class, Kit.failure(admin.createTopics(List.of(
                    new NewTopic(Kit.unique("unknowncfg"), 1, (short) 1).configs(Map.of("no.such.config", "1")))).all()));
            assertInstanceOf(InvalidPartitionsException.class, Kit.failure(admin.createTopics(List.of(
                    new NewTopic(Kit.unique("zeroparts"), 0, (short) 1))).all()));
            assertInstanceOf(InvalidReplicationFactorException.class, Kit.failure(admin.createTopics(List.of(
                    new NewTopic(Kit.unique("rf"), 1, (short) 50))).all()));
            assertInstanceOf(InvalidTopicException.class, Kit.failure(admin.createTopics(List.of(
                    new NewTopic("bad/name", 1, (short) 1))).all()));
            assertInstanceOf(InvalidTopicException.class, Kit.failure(admin.createTopics(List.of(
                    new NewTopic("x".repeat(250), 1, (short) 1))).all()));
        }
    }

    // A topic whose name differs from an existing one only by '.' against '_' is refused with
    // INVALID_TOPIC_EXCEPTION (17), since both map to the same metric names ("Topic 'a.x' collides
    // with existing topic: a_x").
    @Test
    void topicNamesThatCollideInMetricNamesAreInvalid() {
        String base = Kit.unique("col");
        try (Admin admin = Kit.admin()) {
            Kit.createTopic(admin, base + "_x", 1);
            assertInstanceOf(InvalidTopicException.class, Kit.failure(admin.createTopics(List.of(
                    new NewTopic(base + ".x", 1, (short) 1))).all()));
        }
    }

    @Test
    void topicNamesThatAreDotsOrHaveIllegalCharactersAreInvalid() {
        try (Admin admin = Kit.admin()) {
            for (String bad : List.of(".", "..", "", "with space", "sl/ash", "ü")) {
                assertInstanceOf(InvalidTopicException.class, Kit.failure(admin.createTopics(List.of(
                        new NewTopic(bad, 1, (short) 1))).all()), "topic name '" + bad + "'");
            }
        }
    }

    @Test
    void batchesOfTopicOperationsAnswerEachTopic() {
        String good = Kit.unique("batch-good");
        String existing = Kit.newTopic("batch-existing", 1);
        try (Admin admin = Kit.admin()) {
            CreateTopicsResult r = admin.createTopics(List.of(
                    new NewTopic(good, 2, (short) 1),
                    new NewTopic(existing, 1, (short) 1),
                    new NewTopic(Kit.unique("batch-bad"), 1, (short) 1).configs(Map.of("retention.ms", "x"))));
            Kit.get(r.values().get(good));
            assertInstanceOf(TopicExistsException.class, Kit.failure(r.values().get(existing)));
            assertEquals(3, r.values().size());
            Kit.waitForTopic(admin, good, 2);
            String unknown = Kit.unique("batch-unknown");
            var d = admin.deleteTopics(List.of(good, unknown));
            Kit.get(d.topicNameValues().get(good));
            assertInstanceOf(UnknownTopicOrPartitionException.class, Kit.failure(d.topicNameValues().get(unknown)));
        }
    }

    @Test
    void explicitReplicaAssignments() {
        String topic = Kit.unique("assigned");
        try (Admin admin = Kit.admin()) {
            int node = Kit.get(admin.describeCluster().nodes()).iterator().next().id();
            Kit.get(admin.createTopics(List.of(new NewTopic(topic, Map.of(0, List.of(node), 1, List.of(node))))).all());
            Kit.waitForTopic(admin, topic, 2);
            TopicDescription d = Kit.get(admin.describeTopics(List.of(topic)).allTopicNames()).get(topic);
            for (TopicPartitionInfo p : d.partitions()) {
                assertEquals(node, p.leader().id());
                assertEquals(List.of(node), p.replicas().stream().map(Node::id).collect(Collectors.toList()));
            }
            Kit.get(admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(3, List.of(List.of(node))))).all());
            Kit.waitForTopic(admin, topic, 3);
            // A replica on a broker that does not exist is refused.
            assertInstanceOf(InvalidReplicaAssignmentException.class, Kit.failure(admin.createTopics(List.of(
                    new NewTopic(Kit.unique("assigned-bad"), Map.of(0, List.of(node + 100))))).all()));
        }
    }

    @Test
    void createWithBrokerDefaults() {
        String topic = Kit.unique("defaults");
        try (Admin admin = Kit.admin()) {
            CreateTopicsResult r = admin.createTopics(List.of(new NewTopic(topic, Optional.empty(), Optional.empty())));
            Kit.get(r.all());
            int parts = Kit.get(r.numPartitions(topic));
            assertTrue(parts >= 1);
            assertEquals(1, Kit.get(r.replicationFactor(topic)));
            Kit.waitForTopic(admin, topic, parts);
        }
    }

    @Test
    void createPartitionsGrowsATopic() {
        String topic = Kit.newTopic("grow", 2);
        try (Admin admin = Kit.admin()) {
            Kit.get(admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(6)),
                    new CreatePartitionsOptions().validateOnly(true)).all());
            assertEquals(2, Kit.get(admin.describeTopics(List.of(topic)).allTopicNames()).get(topic).partitions().size(),
                    "validate only changes nothing");
            Kit.get(admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(5))).all());
            Kit.waitForTopic(admin, topic, 5);
            assertInstanceOf(InvalidPartitionsException.class,
                    Kit.failure(admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(3))).all()));
            assertInstanceOf(InvalidPartitionsException.class,
                    Kit.failure(admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(5))).all()));
            assertInstanceOf(UnknownTopicOrPartitionException.class,
                    Kit.failure(admin.createPartitions(Map.of(Kit.unique("nope"), NewPartitions.increaseTo(5))).all()));
        }
        // A producer that knew two partitions finds the new ones and delivers to them.
        assertEquals(4, Kit.produce(topic, 4, 1).get(0).partition());
        assertEquals("k0", Kit.readAll(topic, 4, 1).get(0).key());
    }

    @Test
    void aDeletedTopicCanBeRecreatedAtOnceAndStartsEmpty() {
        String topic = Kit.newTopic("recreate", 2);
        Kit.produce(topic, 0, 5);
        try (Admin admin = Kit.admin()) {
            Uuid oldId = Kit.get(admin.describeTopics(List.of(topic)).allTopicNames()).get(topic).topicId();
            Kit.get(admin.deleteTopics(List.of(topic)).all());
            Kit.get(admin.createTopics(List.of(new NewTopic(topic, 3, (short) 1))).all());
            Kit.waitForTopic(admin, topic, 3);
            TopicDescription d = Kit.get(admin.describeTopics(List.of(topic)).allTopicNames()).get(topic);
            assertNotEquals(oldId, d.topicId(), "a new topic id");
            assertEquals(3, d.partitions().size());
        }
        try (KafkaProducer<String, String> p = Kit.producer()) {
            assertEquals(0, Kit.get(p.send(new ProducerRecord<>(topic, 0, "new", "record"))).offset(),
                    "the recreated topic starts at offset 0");
        }
        try (var c = Kit.consumer()) {
            TopicPartition tp = new TopicPartition(topic, 0);
            c.assign(List.of(tp));
            List<ConsumerRecord<String, String>> got = Kit.poll(c, 1);
            got.addAll(Kit.pollFor(c, java.time.Duration.ofMillis(700)));
            assertEquals(1, got.size(), "none of the old records: " + got);
            assertEquals("new", got.get(0).key());
        }
    }

    @Test
    void deletingAnUnknownTopicIsUnknownTopic() {
        try (Admin admin = Kit.admin()) {
            assertInstanceOf(UnknownTopicOrPartitionException.class,
                    Kit.failure(admin.deleteTopics(List.of(Kit.unique("never"))).all()));
        }
    }

    @Test
    void consumerOffsetsIsListedAsInternal() {
        String topic = Kit.newTopic("internal", 1);
        String group = Kit.unique("internal");
        try (Admin admin = Kit.admin()) {
            Kit.get(admin.alterConsumerGroupOffsets(group, Map.of(new TopicPartition(topic, 0), new OffsetAndMetadata(0))).all());
            Map<String, TopicListing> all = Kit.get(admin.listTopics(new ListTopicsOptions().listInternal(true)).namesToListings());
            assertTrue(all.containsKey("__consumer_offsets"), "internal topics listed: " + all.keySet());
            assertTrue(all.get("__consumer_offsets").isInternal());
            assertFalse(Kit.get(admin.listTopics().names()).contains("__consumer_offsets"), "hidden by default");
            TopicDescription d = Kit.get(admin.describeTopics(List.of("__consumer_offsets")).allTopicNames()).get("__consumer_offsets");
            assertTrue(d.isInternal());
        }
    }

    @Test
    void describeClusterNamesTheBrokerAndAController() {
        try (Admin admin = Kit.admin()) {
            DescribeClusterResult r = admin.describeCluster();
            Collection<Node> nodes = Kit.get(r.nodes());
            assertFalse(nodes.isEmpty());
            String clusterId = Kit.get(r.clusterId());
            assertNotNull(clusterId);
            assertFalse(clusterId.isEmpty());
            Node controller = Kit.get(r.controller());
            assertNotNull(controller);
            assertTrue(nodes.stream().anyMatch(n -> n.id() == controller.id()), "controller among " + nodes);
            String[] hp = Kit.bootstrap().split(",")[0].split(":");
            assertTrue(nodes.stream().anyMatch(n -> n.port() == Integer.parseInt(hp[1])),
                    "the bootstrap broker is a node: " + nodes);
            // The same cluster id as the client sees in Metadata.
            try (KafkaProducer<String, String> p = Kit.producer()) {
                assertFalse(p.partitionsFor(Kit.newTopic("cluster", 1)).isEmpty());
            }
        }
    }

    @Test
    void describeFeaturesAnswers() {
        try (Admin admin = Kit.admin()) {
            assertNotNull(Kit.get(admin.describeFeatures().featureMetadata()).supportedFeatures());
        }
    }
}
