package dev.tidemark.interop;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.time.Duration;
import java.util.HashSet;
import java.util.List;
import java.util.Properties;
import java.util.Set;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.GroupType;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The KIP-848 consumer group protocol (group.protocol=consumer), which Tidemark has not built
 * (docs/compatibility.md, "Not built yet"): against Tidemark the consumer's poll fails with
 * UnsupportedVersionException, ConsumerGroupHeartbeat (API 68) being absent from ApiVersions.
 */
class ConsumerGroupProtocolTest {

    @Tag("tidemark-known-failure")
    @Test
    void twoConsumersOfTheNewProtocolShareATopic() {
        String topic = Kit.newTopic("kip848", 4);
        String group = Kit.unique("kip848");
        for (int p = 0; p < 4; p++) {
            Kit.produce(topic, p, 5);
        }
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, Kit.bootstrap());
        props.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        props.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "consumer");
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        props.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 20000);
        try (KafkaConsumer<String, String> a = new KafkaConsumer<>(props, new StringDeserializer(), new StringDeserializer());
                KafkaConsumer<String, String> b = new KafkaConsumer<>(props, new StringDeserializer(), new StringDeserializer())) {
            a.subscribe(List.of(topic));
            b.subscribe(List.of(topic));
            Set<String> seen = new HashSet<>();
            long deadline = System.currentTimeMillis() + 40000;
            while (System.currentTimeMillis() < deadline
                    && !(a.assignment().size() == 2 && b.assignment().size() == 2 && seen.size() == 20)) {
                for (KafkaConsumer<String, String> c : List.of(a, b)) {
                    for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(100))) {
                        seen.add(r.partition() + "/" + r.offset());
                    }
                }
            }
            assertEquals(2, a.assignment().size(), "a: " + a.assignment());
            assertEquals(2, b.assignment().size(), "b: " + b.assignment());
            assertEquals(20, seen.size());
            a.commitSync();
            try (Admin admin = Kit.admin()) {
                ConsumerGroupDescription d = Kit.get(admin.describeConsumerGroups(List.of(group)).all()).get(group);
                assertEquals(GroupType.CONSUMER, d.type());
                assertEquals(2, d.members().size());
                Set<TopicPartition> committed = Kit.get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata()).keySet();
                assertEquals(a.assignment(), committed);
            }
        }
    }
}
