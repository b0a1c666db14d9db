package dev.tidemark.interop;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.NoOffsetForPartitionException;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.consumer.OffsetOutOfRangeException;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.OffsetMetadataTooLarge;
import org.junit.jupiter.api.Test;

class ConsumerTest {

    @Test
    void assignAndSeekReadsFromTheOffsetAsked() {
        String topic = Kit.newTopic("seek", 1);
        Kit.produce(topic, 0, 20);
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaConsumer<String, String> c = Kit.consumer()) {
            c.assign(List.of(tp));
            assertEquals(Set.of(tp), c.assignment());
            c.seek(tp, 12);
            assertEquals(12, c.position(tp));
            List<ConsumerRecord<String, String>> got = Kit.poll(c, 8);
            assertEquals(8, got.size());
            Kit.assertOffsetsContiguous(got, 12);
            assertEquals("k12", got.get(0).key());
            assertEquals("v19", got.get(7).value());
            assertEquals(20, c.position(tp));
            // Seek back, with the leader epoch a record carried: the client validates the position
            // with OffsetsForLeaderEpoch before fetching.
            Optional<Integer> epoch = got.get(0).leaderEpoch();
            c.seek(tp, new OffsetAndMetadata(3, epoch, ""));
            List<ConsumerRecord<String, String>> again = Kit.poll(c, 17);
            Kit.assertOffsetsContiguous(again, 3);
        }
    }

    @Test
    void seekToBeginningAndEnd() {
        String topic = Kit.newTopic("seekends", 2);
        Kit.produce(topic, 0, 10);
        Kit.produce(topic, 1, 4);
        TopicPartition p0 = new TopicPartition(topic, 0);
        TopicPartition p1 = new TopicPartition(topic, 1);
        try (KafkaConsumer<String, String> c = Kit.consumer()) {
            c.assign(List.of(p0, p1));
            c.seekToEnd(List.of(p0, p1));
            assertEquals(10, c.position(p0));
            assertEquals(4, c.position(p1));
            assertEquals(0, Kit.pollFor(c, Duration.ofMillis(500)).size(), "nothing past the end");
            Kit.produce(topic, 0, 2);
            List<ConsumerRecord<String, String>> fresh = Kit.poll(c, 2);
            assertEquals(List.of(10L, 11L), List.of(fresh.get(0).offset(), fresh.get(1).offset()));
            c.seekToBeginning(List.of(p0));
            assertEquals(0, c.position(p0));
            List<ConsumerRecord<String, String>> all = Kit.poll(c, 12);
            Kit.assertOffsetsContiguous(all, 0);
            Map<TopicPartition, Long> begin = c.beginningOffsets(List.of(p0, p1));
            Map<TopicPartition, Long> end = c.endOffsets(List.of(p0, p1));
            assertEquals(Map.of(p0, 0L, p1, 0L), begin);
            assertEquals(Map.of(p0, 12L, p1, 4L), end);
        }
    }

    @Test
    void offsetsForTimesFindsTheFirstRecordAtOrAfter() {
        String topic = Kit.newTopic("times", 1);
        long base = 1_700_000_000_000L;
        try (KafkaProducer<String, String> p = Kit.producer(Map.of(ProducerConfig.LINGER_MS_CONFIG, 0))) {
            for (int i = 0; i < 10; i++) {
                Kit.get(p.send(new ProducerRecord<>(topic, 0, base + i * 1000L, "k" + i, "v" + i)));
            }
        }
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaConsumer<String, String> c = Kit.consumer()) {
            Map<TopicPartition, OffsetAndTimestamp> exact = c.offsetsForTimes(Map.of(tp, base + 4000L));
            assertEquals(4, exact.get(tp).offset());
            assertEquals(base + 4000L, exact.get(tp).timestamp());
            Map<TopicPartition, OffsetAndTimestamp> between = c.offsetsForTimes(Map.of(tp, base + 4500L));
            assertEquals(5, between.get(tp).offset());
            assertEquals(base + 5000L, between.get(tp).timestamp());
            Map<TopicPartition, OffsetAndTimestamp> early = c.offsetsForTimes(Map.of(tp, 0L));
            assertEquals(0, early.get(tp).offset());
            Map<TopicPartition, OffsetAndTimestamp> late = c.offsetsForTimes(Map.of(tp, base + 60_000L));
            assertNull(late.get(tp), "no record at or after a time past the last one");
            // Seeking to the found offset reads from there.
            c.assign(List.of(tp));
            c.seek(tp, between.get(tp).offset());
            List<ConsumerRecord<String, String>> got = Kit.poll(c, 5);
            assertEquals("k5", got.get(0).key());
        }
    }

    @Test
    void pauseStopsFetchingAPartitionAndResumeRestartsIt() {
        String topic = Kit.newTopic("pause", 2);
        Kit.produce(topic, 0, 5);
        Kit.produce(topic, 1, 5);
        TopicPartition p0 = new TopicPartition(topic, 0);
        TopicPartition p1 = new TopicPartition(topic, 1);
        try (KafkaConsumer<String, String> c = Kit.consumer()) {
            c.assign(List.of(p0, p1));
            c.pause(List.of(p1));
            assertEquals(Set.of(p1), c.paused());
            List<ConsumerRecord<String, String>> got = Kit.poll(c, 5);
            got.addAll(Kit.pollFor(c, Duration.ofSeconds(1)));
            assertEquals(5, got.size());
            assertTrue(got.stream().allMatch(r -> r.partition() == 0), "only the unpaused partition");
            assertEquals(0, c.position(p1));
            c.resume(List.of(p1));
            assertTrue(c.paused().isEmpty());
            List<ConsumerRecord<String, String>> rest = Kit.poll(c, 5);
            assertTrue(rest.stream().allMatch(r -> r.partition() == 1));
            Kit.assertOffsetsContiguous(rest, 0);
        }
    }

    @Test
    void commitSyncCommitAsyncAndCommitted() throws Exception {
        String topic = Kit.newTopic("commit", 2);
        String group = Kit.unique("commit-group");
        Kit.produce(topic, 0, 10);
        Kit.produce(topic, 1, 10);
        TopicPartition p0 = new TopicPartition(topic, 0);
        TopicPartition p1 = new TopicPartition(topic, 1);
        try (KafkaConsumer<String, String> c = Kit.consumer(group, Map.of())) {
            c.assign(List.of(p0, p1));
            assertEquals(new HashMap<>(), withoutNulls(c.committed(Set.of(p0, p1))), "nothing committed yet");
            c.commitSync(Map.of(p0, new OffsetAndMetadata(4, "meta-p0")));
            CompletableFuture<Map<TopicPartition, OffsetAndMetadata>> done = new CompletableFuture<>();
            c.commitAsync(Map.of(p1, new OffsetAndMetadata(7, "meta-p1")), (offsets, e) -> {
                if (e != null) {
                    done.completeExceptionally(e);
                } else {
                    done.complete(offsets);
                }
            });
            // The callback runs inside poll (or another consumer call).
            Kit.eventually("commitAsync callback", () -> {
                c.poll(Duration.ofMillis(50));
                return done.isDone();
            });
            assertEquals(7, done.get().get(p1).offset());
            Map<TopicPartition, OffsetAndMetadata> committed = c.committed(Set.of(p0, p1));
            assertEquals(4, committed.get(p0).offset());
            assertEquals("meta-p0", committed.get(p0).metadata());
            assertEquals(7, committed.get(p1).offset());
            assertEquals("meta-p1", committed.get(p1).metadata());
        }
        // A new consumer of the group starts at the committed offsets.
        try (KafkaConsumer<String, String> c = Kit.consumer(group, Map.of())) {
            c.assign(List.of(p0, p1));
            List<ConsumerRecord<String, String>> got = Kit.poll(c, 6 + 3);
            Map<TopicPartition, List<ConsumerRecord<String, String>>> by = Kit.byPartition(got);
            Kit.assertOffsetsContiguous(by.get(p0), 4);
            Kit.assertOffsetsContiguous(by.get(p1), 7);
            // commitSync() without arguments commits the positions.
            c.commitSync();
            assertEquals(10, c.committed(Set.of(p0)).get(p0).offset());
        }
    }

    private static Map<TopicPartition, OffsetAndMetadata> withoutNulls(Map<TopicPartition, OffsetAndMetadata> m) {
        Map<TopicPartition, OffsetAndMetadata> out = new HashMap<>();
        m.forEach((k, v) -> {
            if (v != null) {
                out.put(k, v);
            }
        });
        return out;
    }

    @Test
    void autoOffsetResetLatestAndNone() {
        String topic = Kit.newTopic("reset", 1);
        Kit.produce(topic, 0, 5);
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaConsumer<String, String> c = Kit.consumer(Kit.unique("latest"),
                Map.of(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "latest"))) {
            c.assign(List.of(tp));
            assertEquals(5, c.position(tp));
        }
        try (KafkaConsumer<String, String> c = Kit.consumer(Kit.unique("none"),
                Map.of(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "none"))) {
            c.assign(List.of(tp));
            assertThrows(NoOffsetForPartitionException.class, () -> c.poll(Duration.ofSeconds(5)));
        }
    }

    @Test
    void seekPastTheEndWithoutResetIsOffsetOutOfRange() {
        String topic = Kit.newTopic("oor", 1);
        Kit.produce(topic, 0, 3);
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaConsumer<String, String> c = Kit.consumer(null,
                Map.of(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "none"))) {
            c.assign(List.of(tp));
            c.seek(tp, 100);
            OffsetOutOfRangeException e = assertThrows(OffsetOutOfRangeException.class, () -> {
                long deadline = System.currentTimeMillis() + 15000;
                while (System.currentTimeMillis() < deadline) {
                    c.poll(Duration.ofMillis(200));
                }
            });
            assertEquals(100L, e.offsetOutOfRangePartitions().get(tp));
        }
        // With earliest the consumer resets and reads everything.
        try (KafkaConsumer<String, String> c = Kit.consumer()) {
            c.assign(List.of(tp));
            c.seek(tp, 100);
            Kit.assertOffsetsContiguous(Kit.poll(c, 3), 0);
        }
    }

    @Test
    void smallFetchMaxBytesStillReadsEverythingBoundedPerFetch() {
        String topic = Kit.newTopic("fetchmax", 1);
        int n = 40;
        String value = "z".repeat(10_000);
        // One record per batch, so the broker can stop between batches.
        try (KafkaProducer<String, String> p = Kit.producer(Map.of(ProducerConfig.LINGER_MS_CONFIG, 0,
                ProducerConfig.BATCH_SIZE_CONFIG, 1, ProducerConfig.COMPRESSION_TYPE_CONFIG, "none"))) {
            for (int i = 0; i < n; i++) {
                Kit.get(p.send(new ProducerRecord<>(topic, 0, "k" + i, value)));
            }
        }
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaConsumer<String, String> c = Kit.consumer(null, Map.of(
                ConsumerConfig.FETCH_MAX_BYTES_CONFIG, 50_000,
                ConsumerConfig.MAX_POLL_RECORDS_CONFIG, 1000))) {
            c.assign(List.of(tp));
            ConsumerRecords<String, String> first = ConsumerRecords.empty();
            long deadline = System.currentTimeMillis() + 20000;
            while (first.isEmpty() && System.currentTimeMillis() < deadline) {
                first = c.poll(Duration.ofMillis(500));
            }
            // One fetch answer holds at most fetch.max.bytes (the first batch may go over): about 5 records.
            assertTrue(first.count() >= 1 && first.count() <= 6,
                    "first poll returned " + first.count() + " records of 10 KB with fetch.max.bytes=50000");
            List<ConsumerRecord<String, String>> all = new ArrayList<>();
            first.forEach(all::add);
            all.addAll(Kit.poll(c, n - all.size()));
            Kit.assertOffsetsContiguous(all, 0);
        }
    }

    @Test
    void fetchMaxBytesBoundsTheWholeAnswerAcrossPartitions() {
        String topic = Kit.newTopic("fetchmax-parts", 4);
        String value = "q".repeat(10_000);
        try (KafkaProducer<String, String> p = Kit.producer(Map.of(ProducerConfig.LINGER_MS_CONFIG, 0,
                ProducerConfig.BATCH_SIZE_CONFIG, 1, ProducerConfig.COMPRESSION_TYPE_CONFIG, "none"))) {
            for (int i = 0; i < 80; i++) {
                p.send(new ProducerRecord<>(topic, i % 4, "k" + i, value));
            }
            p.flush();
        }
        try (KafkaConsumer<String, String> c = Kit.consumer(null, Map.of(
                ConsumerConfig.FETCH_MAX_BYTES_CONFIG, 50_000,
                ConsumerConfig.MAX_PARTITION_FETCH_BYTES_CONFIG, 1_048_576,
                ConsumerConfig.MAX_POLL_RECORDS_CONFIG, 1000))) {
            c.assign(Kit.partitions(topic, 4));
            ConsumerRecords<String, String> first = ConsumerRecords.empty();
            long deadline = System.currentTimeMillis() + 20000;
            while (first.isEmpty() && System.currentTimeMillis() < deadline) {
                first = c.poll(Duration.ofMillis(500));
            }
            // The request-level limit holds for the sum over partitions, not for each one.
            assertTrue(first.count() >= 1 && first.count() <= 6,
                    "first poll returned " + first.count() + " records of 10 KB over 4 partitions with fetch.max.bytes=50000");
            int total = first.count();
            total += Kit.poll(c, 80 - total).size();
            assertEquals(80, total);
        }
    }

    @Test
    void aBatchLargerThanTheFetchLimitsIsStillReturned() {
        String topic = Kit.newTopic("fetch-oversize", 1);
        String big = "o".repeat(300_000);
        try (KafkaProducer<String, String> p = Kit.producer(Map.of(ProducerConfig.COMPRESSION_TYPE_CONFIG, "none"))) {
            Kit.get(p.send(new ProducerRecord<>(topic, 0, "big", big)));
            Kit.get(p.send(new ProducerRecord<>(topic, 0, "small", "s")));
        }
        // KIP-74: the first batch comes back even when it is over both limits, so the consumer moves on.
        try (KafkaConsumer<String, String> c = Kit.consumer(null, Map.of(
                ConsumerConfig.FETCH_MAX_BYTES_CONFIG, 10_000,
                ConsumerConfig.MAX_PARTITION_FETCH_BYTES_CONFIG, 10_000))) {
            c.assign(List.of(new TopicPartition(topic, 0)));
            List<ConsumerRecord<String, String>> got = Kit.poll(c, 2);
            assertEquals(big, got.get(0).value());
            assertEquals("s", got.get(1).value());
        }
    }

    @Test
    void commitMetadataOverTheLimitIsRefused() {
        String topic = Kit.newTopic("bigmeta", 1);
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaConsumer<String, String> c = Kit.consumer(Kit.unique("bigmeta"), Map.of())) {
            c.assign(List.of(tp));
            // offset.metadata.max.bytes is 4096 by default.
            assertThrows(OffsetMetadataTooLarge.class,
                    () -> c.commitSync(Map.of(tp, new OffsetAndMetadata(0, "m".repeat(5000)))));
            c.commitSync(Map.of(tp, new OffsetAndMetadata(0, "m".repeat(4000))));
            assertEquals(4000, c.committed(Set.of(tp)).get(tp).metadata().length());
        }
    }

    @Test
    void aLongPollIsAnsweredAsSoonAsARecordArrives() {
        String topic = Kit.newTopic("longpoll", 1);
        TopicPartition tp = new TopicPartition(topic, 0);
        KafkaConsumer<String, String> c = Kit.consumer(null, Map.of(
                ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, 8000, ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "latest"));
        try {
            c.assign(List.of(tp));
            c.position(tp);
            c.poll(Duration.ofMillis(300)); // a fetch is now parked on the broker
            long sent;
            try (KafkaProducer<String, String> p = Kit.producer(Map.of(ProducerConfig.LINGER_MS_CONFIG, 0))) {
                Kit.get(p.send(new ProducerRecord<>(topic, 0, "k", "now")));
                sent = System.nanoTime();
            }
            List<ConsumerRecord<String, String>> got = Kit.poll(c, 1);
            long took = Duration.ofNanos(System.nanoTime() - sent).toMillis();
            assertEquals("now", got.get(0).value());
            assertTrue(took < 4000, "the parked fetch was answered " + took + " ms after the append (max wait 8000)");
        } finally {
            c.close(Duration.ofMillis(500)); // not waiting for the next parked fetch
        }
    }

    @Test
    void fetchMinBytesHoldsTheAnswerUntilMaxWait() {
        String topic = Kit.newTopic("minbytes", 1);
        Kit.produce(topic, 0, 1);
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaConsumer<String, String> c = Kit.consumer(null, Map.of(
                ConsumerConfig.FETCH_MIN_BYTES_CONFIG, 100_000, ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, 1500))) {
            c.assign(List.of(tp));
            c.position(tp);
            long start = System.nanoTime();
            List<ConsumerRecord<String, String>> got = Kit.poll(c, 1);
            long took = Duration.ofNanos(System.nanoTime() - start).toMillis();
            assertEquals("v0", got.get(0).value());
            assertTrue(took >= 1000, "one small record came back after " + took + " ms: fetch.min.bytes not waited for");
            assertTrue(took < 10000, "answered after " + took + " ms");
        }
    }

    @Test
    void currentLagFollowsTheHighWatermark() {
        String topic = Kit.newTopic("lag", 1);
        Kit.produce(topic, 0, 10);
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaConsumer<String, String> c = Kit.consumer(null, Map.of(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, 4))) {
            c.assign(List.of(tp));
            List<ConsumerRecord<String, String>> got = Kit.poll(c, 4);
            assertEquals(4, got.size());
            // The lag the consumer knows is the high watermark of its last fetch minus its position.
            assertEquals(6, c.currentLag(tp).orElse(-1));
            Kit.poll(c, 6);
            assertEquals(0, c.currentLag(tp).orElse(-1));
        }
    }

    @Test
    void readCommittedWithoutTransactionsSeesEveryRecord() {
        String topic = Kit.newTopic("readcommitted", 1);
        Kit.produce(topic, 0, 7);
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaConsumer<String, String> c = Kit.consumer(null,
                Map.of(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed"))) {
            c.assign(List.of(tp));
            Kit.assertOffsetsContiguous(Kit.poll(c, 7), 0);
            assertEquals(7L, c.endOffsets(List.of(tp)).get(tp));
        }
    }

    @Test
    void listTopicsAndPartitionsFor() {
        String topic = Kit.newTopic("meta", 3);
        try (KafkaConsumer<String, String> c = Kit.consumer()) {
            var parts = c.partitionsFor(topic);
            assertEquals(3, parts.size());
            parts.forEach(p -> assertNotNull(p.leader()));
            assertTrue(c.listTopics().containsKey(topic));
        }
    }

    @Test
    void manyConsumersOfOneTopicWithoutGroupEachReadEverything() throws Exception {
        String topic = Kit.newTopic("fanout", 1);
        Kit.produce(topic, 0, 30);
        AtomicInteger total = new AtomicInteger();
        List<Thread> ts = new ArrayList<>();
        List<Throwable> errors = new java.util.concurrent.CopyOnWriteArrayList<>();
        for (int i = 0; i < 3; i++) {
            Thread t = new Thread(() -> {
                try {
                    total.addAndGet(Kit.readAll(topic, 0, 30).size());
                } catch (Throwable e) {
                    errors.add(e);
                }
            });
            t.start();
            ts.add(t);
        }
        for (Thread t : ts) {
            t.join(40000);
        }
        assertTrue(errors.isEmpty(), errors.toString());
        assertEquals(90, total.get());
    }
}
