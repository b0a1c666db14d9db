package dev.tidemark.interop;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Transactions, which Tidemark has not built (docs/compatibility.md, "Not built yet"): the test
 * documents what a Java user gets. Against Tidemark, initTransactions() times out after
 * max.block.ms, since FindCoordinator for a transactional id answers COORDINATOR_NOT_AVAILABLE.
 */
class TransactionsTest {

    @Tag("tidemark-known-failure")
    @Test
    void committedAndAbortedTransactionsAsReadCommittedAndUncommittedConsumersSeeThem() {
        String topic = Kit.newTopic("txn", 1);
        Map<String, Object> cfg = Map.of(ProducerConfig.TRANSACTIONAL_ID_CONFIG, Kit.unique("txn-id"),
                ProducerConfig.MAX_BLOCK_MS_CONFIG, 10000);
        try (KafkaProducer<String, String> p = Kit.producer(cfg)) {
            p.initTransactions();
            p.beginTransaction();
            for (int i = 0; i < 3; i++) {
                p.send(new ProducerRecord<>(topic, 0, "k", "committed-" + i));
            }
            p.commitTransaction();
            p.beginTransaction();
            for (int i = 0; i < 2; i++) {
                p.send(new ProducerRecord<>(topic, 0, "k", "aborted-" + i));
            }
            p.flush();
            p.abortTransaction();
            p.beginTransaction();
            p.send(new ProducerRecord<>(topic, 0, "k", "committed-3"));
            p.commitTransaction();
        }
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaConsumer<String, String> c = Kit.consumer(null,
                Map.of(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed"))) {
            c.assign(List.of(tp));
            List<ConsumerRecord<String, String>> got = Kit.poll(c, 4);
            got.addAll(Kit.pollFor(c, Duration.ofMillis(500)));
            assertEquals(List.of("committed-0", "committed-1", "committed-2", "committed-3"),
                    got.stream().map(ConsumerRecord::value).collect(Collectors.toList()));
        }
        try (KafkaConsumer<String, String> c = Kit.consumer(null,
                Map.of(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_uncommitted"))) {
            c.assign(List.of(tp));
            List<ConsumerRecord<String, String>> got = Kit.poll(c, 6);
            assertEquals(6, got.size(), "read_uncommitted sees the aborted records too");
            // Each transaction ends with a control record, which takes an offset and is not returned.
            assertEquals(4, got.get(3).offset());
        }
    }
}
