package dev.tidemark.interop;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Future;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.InvalidRecordException;
import org.apache.kafka.common.errors.InvalidTimestampException;
import org.apache.kafka.common.errors.RecordTooLargeException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.record.TimestampType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class ProducerTest {

    @ParameterizedTest(name = "acks={0}")
    @ValueSource(strings = {"0", "1", "all"})
    void acksModesDeliverEveryRecordInOrder(String acks) {
        String topic = Kit.newTopic("acks" + acks, 1);
        Map<String, Object> cfg = new HashMap<>();
        cfg.put(ProducerConfig.ACKS_CONFIG, acks);
        if (!acks.equals("all")) {
            cfg.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, false);
        }
        int n = 50;
        List<Future<RecordMetadata>> fs = new ArrayList<>();
        try (KafkaProducer<String, String> p = Kit.producer(cfg)) {
            for (int i = 0; i < n; i++) {
                fs.add(p.send(new ProducerRecord<>(topic, 0, "k" + i, "value-" + i)));
            }
            p.flush();
        }
        for (int i = 0; i < n; i++) {
            RecordMetadata md = Kit.get(fs.get(i));
            assertEquals(0, md.partition());
            if (acks.equals("0")) {
                // Nothing comes back with acks=0: the client cannot know the offset.
                assertFalse(md.hasOffset(), "acks=0 has no offset");
            } else {
                assertEquals(i, md.offset(), "offset of record " + i);
            }
        }
        List<ConsumerRecord<String, String>> got = Kit.readAll(topic, 0, n);
        assertEquals(n, got.size());
        Kit.assertOffsetsContiguous(got, 0);
        for (int i = 0; i < n; i++) {
            assertEquals("k" + i, got.get(i).key());
            assertEquals("value-" + i, got.get(i).value());
        }
    }

    @Test
    void idempotentByDefaultNoDuplicatesNoReordering() {
        String topic = Kit.newTopic("idem", 2);
        int n = 400;
        // Small batches and five in flight: many produce requests pipelined per partition.
        Map<String, Object> cfg = Map.of(ProducerConfig.BATCH_SIZE_CONFIG, 1024, ProducerConfig.LINGER_MS_CONFIG, 0);
        List<Future<RecordMetadata>> fs = new ArrayList<>();
        try (KafkaProducer<String, String> p = Kit.producer(cfg)) {
            for (int i = 0; i < n; i++) {
                fs.add(p.send(new ProducerRecord<>(topic, i % 2, "k" + i, "payload-" + i + "-" + "x".repeat(100))));
            }
            p.flush();
        }
        long[] next = new long[2];
        for (int i = 0; i < n; i++) {
            RecordMetadata md = Kit.get(fs.get(i));
            assertEquals(i % 2, md.partition());
            assertEquals(next[i % 2]++, md.offset(), "offsets follow the send order");
        }
        for (int part = 0; part < 2; part++) {
            List<ConsumerRecord<String, String>> got = Kit.readAll(topic, part, n / 2);
            assertEquals(n / 2, got.size());
            for (int j = 0; j < got.size(); j++) {
                assertEquals("k" + (j * 2 + part), got.get(j).key());
            }
        }
        // A second producer (a new producer id) appends after the first one's records.
        List<RecordMetadata> more = Kit.produce(topic, 0, 3);
        assertEquals(n / 2, more.get(0).offset());
    }

    @Test
    void concurrentIdempotentProducersToOnePartitionKeepEachOnesOrder() throws Exception {
        String topic = Kit.newTopic("concurrent", 1);
        int producers = 4;
        int each = 150;
        List<Thread> threads = new ArrayList<>();
        List<Throwable> errors = new java.util.concurrent.CopyOnWriteArrayList<>();
        for (int w = 0; w < producers; w++) {
            final int id = w;
            Thread t = new Thread(() -> {
                try (KafkaProducer<String, String> p = Kit.producer(Map.of(ProducerConfig.BATCH_SIZE_CONFIG, 512,
                        ProducerConfig.LINGER_MS_CONFIG, 1))) {
                    List<Future<RecordMetadata>> fs = new ArrayList<>();
                    for (int i = 0; i < each; i++) {
                        fs.add(p.send(new ProducerRecord<>(topic, 0, "p" + id, Integer.toString(i))));
                    }
                    long last = -1;
                    for (Future<RecordMetadata> f : fs) {
                        long off = Kit.get(f).offset();
                        if (off <= last) {
                            throw new AssertionError("producer " + id + ": offset " + off + " after " + last);
                        }
                        last = off;
                    }
                } catch (Throwable e) {
                    errors.add(e);
                }
            });
            t.start();
            threads.add(t);
        }
        for (Thread t : threads) {
            t.join(60000);
        }
        assertTrue(errors.isEmpty(), errors.toString());
        List<ConsumerRecord<String, String>> got = Kit.readAll(topic, 0, producers * each);
        assertEquals(producers * each, got.size());
        Kit.assertOffsetsContiguous(got, 0);
        Map<String, Integer> next = new HashMap<>();
        for (ConsumerRecord<String, String> r : got) {
            int expected = next.getOrDefault(r.key(), 0);
            assertEquals(Integer.toString(expected), r.value(), "records of " + r.key() + " in order, none twice");
            next.put(r.key(), expected + 1);
        }
    }

    @ParameterizedTest(name = "compression.type={0}")
    @ValueSource(strings = {"none", "gzip", "snappy", "lz4", "zstd"})
    void everyCodecRoundTrips(String codec) {
        String topic = Kit.newTopic("codec-" + codec, 1);
        int n = 300;
        Map<String, Object> cfg = Map.of(
                ProducerConfig.COMPRESSION_TYPE_CONFIG, codec,
                ProducerConfig.LINGER_MS_CONFIG, 20,
                ProducerConfig.BATCH_SIZE_CONFIG, 16384);
        List<String> values = new ArrayList<>();
        List<Future<RecordMetadata>> fs = new ArrayList<>();
        try (KafkaProducer<String, String> p = Kit.producer(cfg)) {
            for (int i = 0; i < n; i++) {
                String v = ("record " + i + " of codec " + codec + " ").repeat(1 + i % 20);
                values.add(v);
                ProducerRecord<String, String> r = new ProducerRecord<>(topic, 0, "key-" + i, v);
                r.headers().add("h", ("header-" + i).getBytes(StandardCharsets.UTF_8));
                fs.add(p.send(r));
            }
            p.flush();
        }
        for (int i = 0; i < n; i++) {
            assertEquals(i, Kit.get(fs.get(i)).offset());
        }
        List<ConsumerRecord<String, String>> got = Kit.readAll(topic, 0, n);
        assertEquals(n, got.size());
        Kit.assertOffsetsContiguous(got, 0);
        for (int i = 0; i < n; i++) {
            ConsumerRecord<String, String> r = got.get(i);
            assertEquals("key-" + i, r.key());
            assertEquals(values.get(i), r.value());
            assertArrayEquals(("header-" + i).getBytes(StandardCharsets.UTF_8), r.headers().lastHeader("h").value());
        }
    }

    @Test
    void headersKeepOrderDuplicatesNullAndEmptyValues() {
        String topic = Kit.newTopic("headers", 1);
        List<Header> headers = List.of(
                new RecordHeader("trace", "abc".getBytes(StandardCharsets.UTF_8)),
                new RecordHeader("nullvalue", null),
                new RecordHeader("trace", "def".getBytes(StandardCharsets.UTF_8)),
                new RecordHeader("empty", new byte[0]),
                new RecordHeader("binary", new byte[] {0, (byte) 0xff, 7}),
                new RecordHeader("unicodé", "ü".getBytes(StandardCharsets.UTF_8)));
        try (KafkaProducer<byte[], byte[]> p = Kit.bytesProducer(Map.of())) {
            Kit.get(p.send(new ProducerRecord<>(topic, 0, null, "k".getBytes(), "with".getBytes(), headers)));
            Kit.get(p.send(new ProducerRecord<>(topic, 0, "k".getBytes(), "without".getBytes())));
        }
        try (KafkaConsumer<byte[], byte[]> c = Kit.bytesConsumer()) {
            TopicPartition tp = new TopicPartition(topic, 0);
            c.assign(List.of(tp));
            List<ConsumerRecord<byte[], byte[]>> got = Kit.poll(c, 2);
            Header[] h = got.get(0).headers().toArray();
            assertEquals(headers.size(), h.length);
            for (int i = 0; i < h.length; i++) {
                assertEquals(headers.get(i).key(), h[i].key());
                if (headers.get(i).value() == null) {
                    assertNull(h[i].value(), "a null header value stays null");
                } else {
                    assertArrayEquals(headers.get(i).value(), h[i].value());
                }
            }
            List<String> traces = new ArrayList<>();
            got.get(0).headers().headers("trace").forEach(x -> traces.add(new String(x.value(), StandardCharsets.UTF_8)));
            assertEquals(List.of("abc", "def"), traces);
            assertEquals(0, got.get(1).headers().toArray().length);
        }
    }

    @Test
    void nullKeysNullValuesAndEmptyBytesAreDistinct() {
        String topic = Kit.newTopic("nulls", 1);
        byte[] empty = new byte[0];
        byte[][][] sent = {
            {null, "v1".getBytes()},
            {"k2".getBytes(), null},
            {null, null},
            {empty, empty},
            {empty, null},
            {null, empty},
        };
        try (KafkaProducer<byte[], byte[]> p = Kit.bytesProducer(Map.of())) {
            for (byte[][] kv : sent) {
                p.send(new ProducerRecord<>(topic, 0, kv[0], kv[1]));
            }
            p.flush();
        }
        try (KafkaConsumer<byte[], byte[]> c = Kit.bytesConsumer()) {
            c.assign(List.of(new TopicPartition(topic, 0)));
            List<ConsumerRecord<byte[], byte[]>> got = Kit.poll(c, sent.length);
            for (int i = 0; i < sent.length; i++) {
                ConsumerRecord<byte[], byte[]> r = got.get(i);
                assertEquals(i, r.offset());
                if (sent[i][0] == null) {
                    assertNull(r.key(), "record " + i + " key is null");
                } else {
                    assertArrayEquals(sent[i][0], r.key(), "record " + i + " key");
                }
                if (sent[i][1] == null) {
                    assertNull(r.value(), "record " + i + " value is null");
                } else {
                    assertArrayEquals(sent[i][1], r.value(), "record " + i + " value");
                }
            }
        }
    }

    @Test
    void recordOverClientMaxRequestSizeIsRefusedBeforeSending() {
        String topic = Kit.newTopic("toolarge-client", 1);
        try (KafkaProducer<String, String> p = Kit.producer()) {
            Throwable t = Kit.failure(p.send(new ProducerRecord<>(topic, 0, "k", "x".repeat(2 * 1024 * 1024))));
            assertInstanceOf(RecordTooLargeException.class, t);
        }
    }

    @Test
    void recordOverBrokerDefaultMaxMessageBytesIsRecordTooLarge() {
        String topic = Kit.newTopic("toolarge-broker", 1);
        Map<String, Object> cfg = Map.of(
                ProducerConfig.MAX_REQUEST_SIZE_CONFIG, 4 * 1024 * 1024,
                ProducerConfig.BUFFER_MEMORY_CONFIG, 16 * 1024 * 1024,
                ProducerConfig.COMPRESSION_TYPE_CONFIG, "none");
        try (KafkaProducer<String, String> p = Kit.producer(cfg)) {
            // Over the broker's default message.max.bytes (1048588): MESSAGE_TOO_LARGE from the broker.
            Throwable t = Kit.failure(p.send(new ProducerRecord<>(topic, 0, "k", "x".repeat(1_200_000))));
            assertInstanceOf(RecordTooLargeException.class, t);
            // The producer goes on working, and only the record that fit is stored.
            assertEquals(0, Kit.get(p.send(new ProducerRecord<>(topic, 0, "k", "small"))).offset());
        }
        List<ConsumerRecord<String, String>> got = Kit.readAll(topic, 0, 1);
        assertEquals("small", got.get(0).value());
    }

    @Test
    void recordOverTopicMaxMessageBytesIsRecordTooLarge() {
        String topic = Kit.newTopic("toolarge-topic", 1, Map.of("max.message.bytes", "10000"));
        Map<String, Object> cfg = Map.of(ProducerConfig.COMPRESSION_TYPE_CONFIG, "none");
        try (KafkaProducer<String, String> p = Kit.producer(cfg)) {
            Throwable t = Kit.failure(p.send(new ProducerRecord<>(topic, 0, "k", "y".repeat(20000))));
            assertInstanceOf(RecordTooLargeException.class, t);
            assertEquals(0, Kit.get(p.send(new ProducerRecord<>(topic, 0, "k", "y".repeat(5000)))).offset());
        }
    }

    @Test
    void deliveryToManyPartitions() {
        int partitions = 24;
        String topic = Kit.newTopic("many", partitions);
        int perPartition = 10;
        Map<Integer, List<String>> sent = new HashMap<>();
        Map<String, Integer> keyPartition = new HashMap<>();
        try (KafkaProducer<String, String> p = Kit.producer()) {
            List<Future<RecordMetadata>> fs = new ArrayList<>();
            List<Integer> want = new ArrayList<>();
            for (int i = 0; i < perPartition; i++) {
                for (int part = 0; part < partitions; part++) {
                    String v = "p" + part + "-" + i;
                    sent.computeIfAbsent(part, k -> new ArrayList<>()).add(v);
                    fs.add(p.send(new ProducerRecord<>(topic, part, "explicit", v)));
                    want.add(part);
                }
            }
            for (int i = 0; i < fs.size(); i++) {
                assertEquals(want.get(i), Kit.get(fs.get(i)).partition());
            }
            // Keyed records: the default partitioner sends a key to the same partition every time.
            for (int round = 0; round < 3; round++) {
                for (int k = 0; k < 40; k++) {
                    String key = "key-" + k;
                    int part = Kit.get(p.send(new ProducerRecord<>(topic, key, "keyed-" + round))).partition();
                    Integer before = keyPartition.putIfAbsent(key, part);
                    if (before != null) {
                        assertEquals(before, part, "key " + key + " stays on its partition");
                    }
                }
            }
        }
        assertTrue(new java.util.HashSet<>(keyPartition.values()).size() > 1, "keys spread over partitions");
        try (KafkaConsumer<String, String> c = Kit.consumer()) {
            c.assign(Kit.partitions(topic, partitions));
            List<ConsumerRecord<String, String>> got = Kit.poll(c, partitions * perPartition + 120);
            Map<TopicPartition, List<ConsumerRecord<String, String>>> by = Kit.byPartition(got);
            for (int part = 0; part < partitions; part++) {
                List<ConsumerRecord<String, String>> rs = by.get(new TopicPartition(topic, part));
                assertNotNull(rs, "partition " + part + " has records");
                List<String> explicit = new ArrayList<>();
                for (ConsumerRecord<String, String> r : rs) {
                    if (r.key().equals("explicit")) {
                        explicit.add(r.value());
                    } else {
                        assertEquals(keyPartition.get(r.key()), part);
                    }
                }
                assertEquals(sent.get(part), explicit, "partition " + part + " in send order");
                Kit.assertOffsetsContiguous(rs, 0);
            }
        }
    }

    @Test
    void aRecordJustUnderTheLimitRoundTrips() {
        String topic = Kit.newTopic("nearlimit", 1);
        String big = "b".repeat(1_000_000);
        Map<String, Object> cfg = Map.of(ProducerConfig.MAX_REQUEST_SIZE_CONFIG, 2 * 1024 * 1024,
                ProducerConfig.COMPRESSION_TYPE_CONFIG, "none");
        try (KafkaProducer<String, String> p = Kit.producer(cfg)) {
            assertEquals(0, Kit.get(p.send(new ProducerRecord<>(topic, 0, "big", big))).offset());
        }
        ConsumerRecord<String, String> r = Kit.readAll(topic, 0, 1).get(0);
        assertEquals(big.length(), r.value().length());
        assertEquals(big, r.value());
    }

    @Test
    void producingToAnUnknownTopicCreatesIt() {
        // auto.create.topics.enable is on by default in Kafka and in Tidemark.
        String topic = Kit.unique("autocreate");
        try (KafkaProducer<String, String> p = Kit.producer()) {
            RecordMetadata md = Kit.get(p.send(new ProducerRecord<>(topic, "k", "v")));
            assertEquals(0, md.offset());
        }
        assertEquals("v", Kit.readAll(topic, 0, 1).get(0).value());
    }

    // message.timestamp.after.max.ms (Kafka 4's default: 3600000): a record stamped two hours ahead
    // is refused with INVALID_TIMESTAMP (32).
    @Test
    void aTimestampFarInTheFutureIsInvalidTimestamp() {
        // Kafka 4's default message.timestamp.after.max.ms is one hour.
        String topic = Kit.newTopic("future", 1);
        long inTwoHours = System.currentTimeMillis() + 2 * 3600_000L;
        try (KafkaProducer<String, String> p = Kit.producer()) {
            Throwable t = Kit.failure(p.send(new ProducerRecord<>(topic, 0, inTwoHours, "k", "v")));
            assertInstanceOf(InvalidTimestampException.class, t);
            long inTenMinutes = System.currentTimeMillis() + 600_000L;
            assertEquals(0, Kit.get(p.send(new ProducerRecord<>(topic, 0, inTenMinutes, "k", "v"))).offset());
        }
    }

    @Test
    void createTimeTimestampsAreKept() {
        String topic = Kit.newTopic("ts", 1);
        long base = 1_600_000_000_000L;
        try (KafkaProducer<String, String> p = Kit.producer()) {
            for (int i = 0; i < 5; i++) {
                RecordMetadata md = Kit.get(p.send(new ProducerRecord<>(topic, 0, base + i * 1000L, "k", "v" + i)));
                assertEquals(base + i * 1000L, md.timestamp());
            }
        }
        List<ConsumerRecord<String, String>> got = Kit.readAll(topic, 0, 5);
        for (int i = 0; i < 5; i++) {
            assertEquals(TimestampType.CREATE_TIME, got.get(i).timestampType());
            assertEquals(base + i * 1000L, got.get(i).timestamp());
        }
    }

    // message.timestamp.type=LogAppendTime: the broker stamps the batches with its time.
    @Test
    void logAppendTimeTopicStampsRecordsWithBrokerTime() {
        String topic = Kit.newTopic("lat", 1, Map.of("message.timestamp.type", "LogAppendTime"));
        long before = System.currentTimeMillis();
        long old = 1_000_000L;
        RecordMetadata md;
        try (KafkaProducer<String, String> p = Kit.producer()) {
            md = Kit.get(p.send(new ProducerRecord<>(topic, 0, old, "k", "v")));
        }
        long after = System.currentTimeMillis();
        assertTrue(md.timestamp() >= before - 5000 && md.timestamp() <= after + 5000,
                "the produce answer carries the broker's append time, got " + md.timestamp());
        ConsumerRecord<String, String> r = Kit.readAll(topic, 0, 1).get(0);
        assertEquals(TimestampType.LOG_APPEND_TIME, r.timestampType());
        assertEquals(md.timestamp(), r.timestamp());
    }

    // KIP-467: the INVALID_RECORD answer names the invalid record (batch_index 1) in record_errors,
    // so the client fails it with InvalidRecordException and the others with a plain KafkaException.
    @Test
    void nullKeyOnCompactedTopicIsInvalidRecordForThatRecordOnly() {
        String topic = Kit.newTopic("compact-nullkey", 1, Map.of("cleanup.policy", "compact"));
        // One batch of three records: the middle one has no key. Linger long enough that they batch.
        Map<String, Object> cfg = Map.of(ProducerConfig.LINGER_MS_CONFIG, 500, ProducerConfig.COMPRESSION_TYPE_CONFIG, "none");
        Future<RecordMetadata> good1;
        Future<RecordMetadata> bad;
        Future<RecordMetadata> good2;
        try (KafkaProducer<String, String> p = Kit.producer(cfg)) {
            good1 = p.send(new ProducerRecord<>(topic, 0, "a", "1"));
            bad = p.send(new ProducerRecord<>(topic, 0, null, "2"));
            good2 = p.send(new ProducerRecord<>(topic, 0, "c", "3"));
            p.flush();
        }
        Throwable badError = Kit.failure(bad);
        assertInstanceOf(InvalidRecordException.class, badError);
        // With per-record errors (KIP-467) the client tells the valid records apart: they fail with a
        // plain KafkaException saying they were part of a batch with an invalid record.
        for (Future<RecordMetadata> f : List.of(good1, good2)) {
            Throwable t = Kit.failure(f);
            assertInstanceOf(KafkaException.class, t);
            assertFalse(t instanceof InvalidRecordException, "a valid record is not the invalid one: " + t);
        }
        // Nothing of the batch was stored; a keyed record afterwards is.
        try (KafkaProducer<String, String> p = Kit.producer()) {
            assertEquals(0, Kit.get(p.send(new ProducerRecord<>(topic, 0, "d", "4"))).offset());
        }
    }
}
