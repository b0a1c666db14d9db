package dev.tidemark.interop;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.AlterConfigsOptions;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ConfigEntry.ConfigSource;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.InvalidConfigurationException;
import org.apache.kafka.common.errors.InvalidRequestException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.junit.jupiter.api.Test;

class AdminConfigsTest {

    private static Config describe(Admin admin, String topic) {
        ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, topic);
        return Kit.get(admin.describeConfigs(List.of(r)).all()).get(r);
    }

    private static void alter(Admin admin, String topic, AlterConfigOp... ops) {
        ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, topic);
        Kit.get(admin.incrementalAlterConfigs(Map.of(r, List.of(ops))).all());
    }

    private static AlterConfigOp op(String name, String value, AlterConfigOp.OpType type) {
        return new AlterConfigOp(new ConfigEntry(name, value), type);
    }

    @Test
    void describeConfigsShowsDefaultsAndTopicOverrides() {
        String topic = Kit.newTopic("cfg-describe", 1, Map.of("retention.ms", "7200000", "segment.bytes", "16777216"));
        try (Admin admin = Kit.admin()) {
            Config c = describe(admin, topic);
            ConfigEntry retention = c.get("retention.ms");
            assertEquals("7200000", retention.value());
            assertEquals(ConfigSource.DYNAMIC_TOPIC_CONFIG, retention.source());
            assertFalse(retention.isDefault());
            assertEquals("16777216", c.get("segment.bytes").value());

            ConfigEntry cleanup = c.get("cleanup.policy");
            assertEquals("delete", cleanup.value());
            assertEquals(ConfigSource.DEFAULT_CONFIG, cleanup.source());
            assertTrue(cleanup.isDefault());
            assertEquals("1048588", c.get("max.message.bytes").value());
            assertEquals("CreateTime", c.get("message.timestamp.type").value());
            assertEquals("-1", c.get("retention.bytes").value());
            assertEquals("1", c.get("min.insync.replicas").value());
            for (ConfigEntry e : c.entries()) {
                assertFalse(e.isSensitive(), e.name() + " is not sensitive");
            }
        }
    }

    @Test
    void describeConfigsOfAnUnknownTopicIsUnknownTopic() {
        try (Admin admin = Kit.admin()) {
            ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, Kit.unique("nope"));
            // Kafka's answer has an empty error message here.
            assertInstanceOf(UnknownTopicOrPartitionException.class,
                    Kit.failureWithAnyMessage(admin.describeConfigs(List.of(r)).all()));
        }
    }

    /**
     * Every topic config Apache Kafka 4.4 describes for a new topic, with its default value (the
     * source is DEFAULT_CONFIG, or DYNAMIC_DEFAULT_BROKER_CONFIG for min.insync.replicas, which a
     * KRaft controller sets cluster-wide).
     */
    static final Map<String, String> KAFKA_TOPIC_DEFAULTS = Map.ofEntries(
            Map.entry("cleanup.policy", "delete"),
            Map.entry("compression.gzip.level", "-1"),
            Map.entry("compression.type", "producer"),
            Map.entry("compression.zstd.level", "3"),
            Map.entry("delete.retention.ms", "86400000"),
            Map.entry("errors.deadletterqueue.group.enable", "false"),
            Map.entry("file.delete.delay.ms", "60000"),
            Map.entry("flush.messages", "9223372036854775807"),
            Map.entry("flush.ms", "9223372036854775807"),
            Map.entry("follower.replication.throttled.replicas", ""),
            Map.entry("index.interval.bytes", "4096"),
            Map.entry("leader.replication.throttled.replicas", ""),
            Map.entry("local.retention.bytes", "-2"),
            Map.entry("local.retention.ms", "-2"),
            Map.entry("max.compaction.lag.ms", "9223372036854775807"),
            Map.entry("max.decompressed.message.bytes", "2147483639"),
            Map.entry("max.message.bytes", "1048588"),
            Map.entry("message.timestamp.after.max.ms", "3600000"),
            Map.entry("message.timestamp.before.max.ms", "9223372036854775807"),
            Map.entry("message.timestamp.type", "CreateTime"),
            Map.entry("min.cleanable.dirty.ratio", "0.5"),
            Map.entry("min.compaction.lag.ms", "0"),
            Map.entry("min.insync.replicas", "1"),
            Map.entry("preallocate", "false"),
            Map.entry("remote.copy.lag.bytes", "-1"),
            Map.entry("remote.copy.lag.ms", "0"),
            Map.entry("remote.log.copy.disable", "false"),
            Map.entry("remote.log.delete.on.disable", "false"),
            Map.entry("remote.storage.enable", "false"),
            Map.entry("retention.bytes", "-1"),
            Map.entry("retention.ms", "604800000"),
            Map.entry("segment.bytes", "1073741824"),
            Map.entry("segment.index.bytes", "10485760"),
            Map.entry("segment.jitter.ms", "0"),
            Map.entry("segment.ms", "604800000"),
            Map.entry("unclean.leader.election.enable", "false"));

    @Test
    void describeConfigsListsEveryTopicConfigKafkaDefinesWithItsDefault() {
        String topic = Kit.newTopic("cfg-all", 1);
        try (Admin admin = Kit.admin()) {
            Config c = describe(admin, topic);
            Set<String> missing = new TreeSet<>();
            List<String> wrong = new java.util.ArrayList<>();
            KAFKA_TOPIC_DEFAULTS.forEach((name, value) -> {
                ConfigEntry e = c.get(name);
                if (e == null) {
                    missing.add(name);
                } else if (!value.equals(e.value()) || e.source() == ConfigSource.DYNAMIC_TOPIC_CONFIG) {
                    wrong.add(name + "=" + e.value() + " (" + e.source() + ")");
                }
            });
            assertTrue(missing.isEmpty() && wrong.isEmpty(), "missing topic configs: " + missing
                    + "; not Kafka's default: " + wrong);
        }
    }

    // What kafka-configs --describe --all shows: Kafka's config types, the topic override as the
    // first synonym, the broker-level synonym of each default (log.cleanup.policy,
    // message.max.bytes), and each config's documentation.
    @Test
    void describeConfigsWithSynonymsDocumentationAndTypes() {
        String topic = Kit.newTopic("cfg-synonyms", 1, Map.of("retention.ms", "3600000"));
        ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, topic);
        try (Admin admin = Kit.admin()) {
            Config c = Kit.get(admin.describeConfigs(List.of(r), new org.apache.kafka.clients.admin.DescribeConfigsOptions()
                    .includeSynonyms(true).includeDocumentation(true)).all()).get(r);
            Map<String, ConfigEntry.ConfigType> types = Map.of(
                    "retention.ms", ConfigEntry.ConfigType.LONG,
                    "retention.bytes", ConfigEntry.ConfigType.LONG,
                    "segment.ms", ConfigEntry.ConfigType.LONG,
                    "delete.retention.ms", ConfigEntry.ConfigType.LONG,
                    "segment.bytes", ConfigEntry.ConfigType.INT,
                    "max.message.bytes", ConfigEntry.ConfigType.INT,
                    "min.insync.replicas", ConfigEntry.ConfigType.INT,
                    "cleanup.policy", ConfigEntry.ConfigType.LIST,
                    "message.timestamp.type", ConfigEntry.ConfigType.STRING,
                    "unclean.leader.election.enable", ConfigEntry.ConfigType.BOOLEAN);
            List<String> wrongTypes = new java.util.ArrayList<>();
            types.forEach((name, type) -> {
                if (c.get(name).type() != type) {
                    wrongTypes.add(name + " is " + c.get(name).type() + ", not " + type);
                }
            });
            List<String> problems = wrongTypes;
            ConfigEntry retention = c.get("retention.ms");
            if (retention.synonyms().isEmpty() || retention.synonyms().get(0).source() != ConfigSource.DYNAMIC_TOPIC_CONFIG
                    || !"3600000".equals(retention.synonyms().get(0).value())) {
                problems.add("retention.ms synonyms do not start with the topic override: " + retention.synonyms());
            }
            for (String[] pair : new String[][] {{"cleanup.policy", "log.cleanup.policy"}, {"max.message.bytes", "message.max.bytes"}}) {
                Set<String> names = c.get(pair[0]).synonyms().stream().map(ConfigEntry.ConfigSynonym::name).collect(Collectors.toSet());
                if (!names.contains(pair[1])) {
                    problems.add(pair[0] + " synonyms lack " + pair[1] + ": " + names);
                }
            }
            if (retention.documentation() == null || retention.documentation().isBlank()) {
                problems.add("retention.ms has no documentation: '" + retention.documentation() + "'");
            }
            assertTrue(problems.isEmpty(), String.join("; ", problems));
        }
    }

    @Test
    void configsKafka4RemovedAreUnknown() {
        // message.timestamp.difference.max.ms and message.downconversion.enable were removed in Kafka 4.0.
        try (Admin admin = Kit.admin()) {
            Map<String, String> removed = Map.of("message.timestamp.difference.max.ms", "1000",
                    "message.downconversion.enable", "true");
            removed.forEach((name, value) -> {
                Throwable t = Kit.failure(admin.createTopics(List.of(new org.apache.kafka.clients.admin.NewTopic(
                        Kit.unique("removed"), 1, (short) 1).configs(Map.of(name, value)))).all());
                assertInstanceOf(InvalidConfigurationException.class, t, name);
            });
        }
    }

    @Test
    void incrementalAlterConfigsSetAndDelete() {
        String topic = Kit.newTopic("cfg-alter", 1);
        try (Admin admin = Kit.admin()) {
            alter(admin, topic, op("retention.ms", "123456789", AlterConfigOp.OpType.SET),
                    op("max.message.bytes", "2000000", AlterConfigOp.OpType.SET));
            Kit.eventually("altered configs visible", () -> "123456789".equals(describe(admin, topic).get("retention.ms").value()));
            Config c = describe(admin, topic);
            assertEquals(ConfigSource.DYNAMIC_TOPIC_CONFIG, c.get("retention.ms").source());
            assertEquals("2000000", c.get("max.message.bytes").value());

            alter(admin, topic, op("retention.ms", null, AlterConfigOp.OpType.DELETE));
            Kit.eventually("deleted config back to its default", () -> {
                ConfigEntry e = describe(admin, topic).get("retention.ms");
                return "604800000".equals(e.value()) && e.source() == ConfigSource.DEFAULT_CONFIG;
            });
            assertEquals("2000000", describe(admin, topic).get("max.message.bytes").value(), "the other override stays");
        }
    }

    @Test
    void incrementalAlterConfigsValidateOnlyAndInvalidValues() {
        String topic = Kit.newTopic("cfg-validate", 1);
        ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, topic);
        try (Admin admin = Kit.admin()) {
            Kit.get(admin.incrementalAlterConfigs(Map.of(r, List.of(op("retention.ms", "1000", AlterConfigOp.OpType.SET))),
                    new AlterConfigsOptions().validateOnly(true)).all());
            Kit.sleep(300);
            assertEquals("604800000", describe(admin, topic).get("retention.ms").value(), "validate only changes nothing");

            Throwable bad = Kit.failure(admin.incrementalAlterConfigs(
                    Map.of(r, List.of(op("retention.ms", "soon", AlterConfigOp.OpType.SET)))).all());
            assertInstanceOf(InvalidConfigurationException.class, bad);
            Throwable badPolicy = Kit.failure(admin.incrementalAlterConfigs(
                    Map.of(r, List.of(op("cleanup.policy", "sometimes", AlterConfigOp.OpType.SET)))).all());
            assertInstanceOf(InvalidConfigurationException.class, badPolicy);
            Throwable unknown = Kit.failure(admin.incrementalAlterConfigs(
                    Map.of(r, List.of(op("no.such.config", "1", AlterConfigOp.OpType.SET)))).all());
            assertTrue(unknown instanceof InvalidConfigurationException || unknown instanceof InvalidRequestException,
                    "unknown config refused: " + unknown);
            ConfigResource missing = new ConfigResource(ConfigResource.Type.TOPIC, Kit.unique("missing"));
            assertInstanceOf(UnknownTopicOrPartitionException.class, Kit.failure(admin.incrementalAlterConfigs(
                    Map.of(missing, List.of(op("retention.ms", "1000", AlterConfigOp.OpType.SET)))).all()));
            assertEquals("604800000", describe(admin, topic).get("retention.ms").value());
        }
    }

    @Test
    void incrementalAlterConfigsAppendAndSubtractOnAListConfig() {
        String topic = Kit.newTopic("cfg-list", 1);
        try (Admin admin = Kit.admin()) {
            alter(admin, topic, op("cleanup.policy", "compact", AlterConfigOp.OpType.APPEND));
            Kit.eventually("cleanup.policy appended", () -> {
                String v = describe(admin, topic).get("cleanup.policy").value();
                return Set.of("delete", "compact").equals(new HashSet<>(List.of(v.split(","))));
            });
            alter(admin, topic, op("cleanup.policy", "delete", AlterConfigOp.OpType.SUBTRACT));
            Kit.eventually("cleanup.policy subtracted", () -> "compact".equals(describe(admin, topic).get("cleanup.policy").value()));
        }
    }

    @Test
    void compressionTypeTopicConfigIsAcceptedAndDescribed() {
        String topic = Kit.newTopic("cfg-compression", 1, Map.of("compression.type", "gzip"));
        try (Admin admin = Kit.admin()) {
            assertEquals("gzip", describe(admin, topic).get("compression.type").value());
            alter(admin, topic, op("compression.type", "zstd", AlterConfigOp.OpType.SET));
            Kit.eventually("compression.type altered", () -> "zstd".equals(describe(admin, topic).get("compression.type").value()));
        }
        // Whatever the codec the broker stores, consumers read the records back.
        Kit.produce(topic, 0, 5);
        assertEquals("v4", Kit.readAll(topic, 0, 5).get(4).value());
    }

    @Test
    void brokerConfigsAreDescribed() {
        try (Admin admin = Kit.admin()) {
            org.apache.kafka.common.Node node = Kit.get(admin.describeCluster().nodes()).iterator().next();
            ConfigResource r = new ConfigResource(ConfigResource.Type.BROKER, Integer.toString(node.id()));
            Config c = Kit.get(admin.describeConfigs(List.of(r)).all()).get(r);
            assertFalse(c.entries().isEmpty());
            ConfigEntry maxMessage = c.get("message.max.bytes");
            assertNotNull(maxMessage, "message.max.bytes described");
            assertEquals("1048588", maxMessage.value());
        }
    }
}
