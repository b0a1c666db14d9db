package dev.tidemark.interop;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;

import java.util.List;
import java.util.Map;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.DeletedRecords;
import org.apache.kafka.clients.admin.ListOffsetsOptions;
import org.apache.kafka.clients.admin.ListOffsetsResult.ListOffsetsResultInfo;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.IsolationLevel;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.OffsetOutOfRangeException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

class AdminOffsetsTest {

    private static ListOffsetsResultInfo list(Admin admin, TopicPartition tp, OffsetSpec spec) {
        return Kit.get(admin.listOffsets(Map.of(tp, spec)).partitionResult(tp));
    }

    /** Three records, each its own batch, stamped 100, 400 and 250. */
    private static TopicPartition outOfOrderTimestamps(String prefix) {
        String topic = Kit.newTopic(prefix, 1);
        try (KafkaProducer<String, String> p = Kit.producer(Map.of(ProducerConfig.LINGER_MS_CONFIG, 0))) {
            for (long ts : new long[] {100, 400, 250}) {
                Kit.get(p.send(new ProducerRecord<>(topic, 0, ts, "k" + ts, "v" + ts)));
            }
        }
        return new TopicPartition(topic, 0);
    }

    @Test
    void earliestLatestAndByTimestamp() {
        TopicPartition tp = outOfOrderTimestamps("lo-basic");
        try (Admin admin = Kit.admin()) {
            assertEquals(0, list(admin, tp, OffsetSpec.earliest()).offset());
            assertEquals(3, list(admin, tp, OffsetSpec.latest()).offset());
            // The first offset whose timestamp is at or after the one asked.
            ListOffsetsResultInfo at100 = list(admin, tp, OffsetSpec.forTimestamp(100));
            assertEquals(0, at100.offset());
            assertEquals(100, at100.timestamp());
            ListOffsetsResultInfo at200 = list(admin, tp, OffsetSpec.forTimestamp(200));
            assertEquals(1, at200.offset());
            assertEquals(400, at200.timestamp());
            assertEquals(-1, list(admin, tp, OffsetSpec.forTimestamp(500)).offset(), "no record at or after 500");
            // Several partitions and specs in one call.
            TopicPartition other = new TopicPartition(Kit.newTopic("lo-other", 1), 0);
            Kit.produce(other.topic(), 0, 4);
            Map<TopicPartition, ListOffsetsResultInfo> both = Kit.get(admin.listOffsets(
                    Map.of(tp, OffsetSpec.earliest(), other, OffsetSpec.latest())).all());
            assertEquals(0, both.get(tp).offset());
            assertEquals(4, both.get(other).offset());
            assertEquals(4, Kit.get(admin.listOffsets(Map.of(other, OffsetSpec.latest()),
                    new ListOffsetsOptions(IsolationLevel.READ_COMMITTED)).partitionResult(other)).offset());
        }
    }

    @Test
    void maxTimestampIsTheRecordWithTheLargestTimestamp() {
        TopicPartition tp = outOfOrderTimestamps("lo-max");
        try (Admin admin = Kit.admin()) {
            ListOffsetsResultInfo max = list(admin, tp, OffsetSpec.maxTimestamp());
            assertEquals(400, max.timestamp());
            assertEquals(1, max.offset());
        }
    }

    // ListOffsets MAX_TIMESTAMP (-3, KIP-734) answers the record with the largest timestamp (1,
    // stamped 400), not the end of the batch that holds it.
    @Test
    void maxTimestampInsideOneBatchIsTheRecordNotTheBatchEnd() {
        String topic = Kit.newTopic("lo-max-batch", 1);
        // The three records go out in one batch (a long linger, sent before any acknowledgement).
        try (KafkaProducer<String, String> p = Kit.producer(Map.of(ProducerConfig.LINGER_MS_CONFIG, 200,
                ProducerConfig.COMPRESSION_TYPE_CONFIG, "none"))) {
            for (long ts : new long[] {100, 400, 250}) {
                p.send(new ProducerRecord<>(topic, 0, ts, "k" + ts, "v" + ts));
            }
            p.flush();
        }
        TopicPartition tp = new TopicPartition(topic, 0);
        try (Admin admin = Kit.admin()) {
            ListOffsetsResultInfo max = list(admin, tp, OffsetSpec.maxTimestamp());
            assertEquals(400, max.timestamp());
            assertEquals(1, max.offset());
            assertEquals(1, list(admin, tp, OffsetSpec.forTimestamp(300)).offset());
        }
    }

    // OffsetSpec.earliestLocal() (-4, ListOffsets v8) and latestTiered() (-5, v9): without tiered
    // storage Kafka answers the log start offset and -1.
    @Test
    void earliestLocalAndLatestTieredWithoutTieredStorage() {
        TopicPartition tp = new TopicPartition(Kit.newTopic("lo-local", 1), 0);
        Kit.produce(tp.topic(), 0, 6);
        try (Admin admin = Kit.admin()) {
            Kit.get(admin.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(2))).all());
            // Without tiered storage the local log is the whole log.
            assertEquals(2, list(admin, tp, OffsetSpec.earliestLocal()).offset());
            assertEquals(-1, list(admin, tp, OffsetSpec.latestTiered()).offset());
        }
    }

    @Test
    void emptyPartitionOffsets() {
        TopicPartition tp = new TopicPartition(Kit.newTopic("lo-empty", 1), 0);
        try (Admin admin = Kit.admin()) {
            assertEquals(0, list(admin, tp, OffsetSpec.earliest()).offset());
            assertEquals(0, list(admin, tp, OffsetSpec.latest()).offset());
            assertEquals(-1, list(admin, tp, OffsetSpec.forTimestamp(0)).offset());
        }
    }

    @Test
    void listOffsetsOfAnUnknownTopicIsUnknownTopicOrPartition() {
        try (Admin admin = Kit.admin()) {
            TopicPartition tp = new TopicPartition(Kit.unique("never-created"), 0);
            Throwable t = Kit.failure(admin.listOffsets(Map.of(tp, OffsetSpec.latest()),
                    new ListOffsetsOptions().timeoutMs(5000)).partitionResult(tp));
            assertInstanceOf(UnknownTopicOrPartitionException.class, t);
        }
    }

    @Test
    void deleteRecordsMovesTheLogStart() {
        String topic = Kit.newTopic("delrec", 2);
        Kit.produce(topic, 0, 10);
        Kit.produce(topic, 1, 6);
        TopicPartition p0 = new TopicPartition(topic, 0);
        TopicPartition p1 = new TopicPartition(topic, 1);
        try (Admin admin = Kit.admin()) {
            DeletedRecords d = Kit.get(admin.deleteRecords(Map.of(p0, RecordsToDelete.beforeOffset(4))).lowWatermarks().get(p0));
            assertEquals(4, d.lowWatermark());
            assertEquals(4, list(admin, p0, OffsetSpec.earliest()).offset());
            assertEquals(10, list(admin, p0, OffsetSpec.latest()).offset());
            // -1 deletes everything up to the high watermark.
            DeletedRecords all = Kit.get(admin.deleteRecords(Map.of(p1, RecordsToDelete.beforeOffset(-1))).lowWatermarks().get(p1));
            assertEquals(6, all.lowWatermark());
            // Past the high watermark is out of range.
            Throwable t = Kit.failure(admin.deleteRecords(Map.of(p0, RecordsToDelete.beforeOffset(50))).lowWatermarks().get(p0));
            assertInstanceOf(OffsetOutOfRangeException.class, t);
            // Deleting below the log start changes nothing.
            assertEquals(4, Kit.get(admin.deleteRecords(Map.of(p0, RecordsToDelete.beforeOffset(2))).lowWatermarks().get(p0)).lowWatermark());
        }
        try (KafkaConsumer<String, String> c = Kit.consumer()) {
            c.assign(List.of(p0, p1));
            c.seekToBeginning(List.of(p0, p1));
            assertEquals(4, c.position(p0));
            assertEquals(6, c.position(p1));
            List<ConsumerRecord<String, String>> got = Kit.poll(c, 6);
            Kit.assertOffsetsContiguous(got, 4);
            assertEquals("k4", got.get(0).key());
            assertEquals(Map.of(p0, 4L, p1, 6L), c.beginningOffsets(List.of(p0, p1)));
        }
    }

    @Test
    void aGroupCommittedBelowTheLogStartResetsToIt() {
        String topic = Kit.newTopic("delrec-group", 1);
        String group = Kit.unique("delrec-group");
        TopicPartition tp = new TopicPartition(topic, 0);
        Kit.produce(topic, 0, 10);
        try (Admin admin = Kit.admin()) {
            Kit.get(admin.alterConsumerGroupOffsets(group, Map.of(tp, new org.apache.kafka.clients.consumer.OffsetAndMetadata(2))).all());
            Kit.get(admin.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(6))).all());
        }
        try (KafkaConsumer<String, String> c = Kit.consumer(group, Map.of())) {
            c.subscribe(List.of(topic));
            List<ConsumerRecord<String, String>> got = Kit.poll(c, 4);
            Kit.assertOffsetsContiguous(got, 6);
        }
    }
}
