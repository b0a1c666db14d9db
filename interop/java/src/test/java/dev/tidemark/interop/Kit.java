package dev.tidemark.interop;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.BooleanSupplier;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.KafkaFuture;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * What every test needs: the broker's address, unique names, clients with short
 * timeouts, topic creation that waits until the topic is usable, and polling
 * loops bounded in time.
 */
final class Kit {
    private Kit() {}

    /** How long a test waits for something the broker should do promptly. */
    static final Duration WAIT = Duration.ofSeconds(30);

    private static final AtomicInteger COUNTER = new AtomicInteger();
    private static final String RUN =
            Long.toString(System.currentTimeMillis(), 36) + Integer.toString((int) (Math.random() * 1296), 36);

    static String bootstrap() {
        String b = System.getenv("BOOTSTRAP");
        if (b == null || b.isBlank()) {
            throw new IllegalStateException("BOOTSTRAP is not set: run interop/java/run-tests.sh HOST:PORT");
        }
        return b;
    }

    /** A name no other test, and no earlier run against the same broker, has used. */
    static String unique(String prefix) {
        return "jt-" + prefix + "-" + RUN + "-" + COUNTER.incrementAndGet();
    }

    static Admin admin() {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap());
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 15000);
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30000);
        p.put(AdminClientConfig.CLIENT_ID_CONFIG, "interop-admin");
        return Admin.create(p);
    }

    static Properties producerProps(Map<String, Object> overrides) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap());
        p.put(ProducerConfig.LINGER_MS_CONFIG, 5);
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 10000);
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 30000);
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, 30000);
        p.putAll(overrides);
        return p;
    }

    static KafkaProducer<String, String> producer(Map<String, Object> overrides) {
        return new KafkaProducer<>(producerProps(overrides), new StringSerializer(), new StringSerializer());
    }

    static KafkaProducer<String, String> producer() {
        return producer(Map.of());
    }

    static KafkaProducer<byte[], byte[]> bytesProducer(Map<String, Object> overrides) {
        return new KafkaProducer<>(producerProps(overrides), new ByteArraySerializer(), new ByteArraySerializer());
    }

    static Properties consumerProps(String groupId, Map<String, Object> overrides) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap());
        if (groupId != null) {
            p.put(ConsumerConfig.GROUP_ID_CONFIG, groupId);
        }
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        p.put(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, 15000);
        p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30000);
        p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, 10000);
        p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, 1000);
        p.putAll(overrides);
        return p;
    }

    static KafkaConsumer<String, String> consumer(String groupId, Map<String, Object> overrides) {
        return new KafkaConsumer<>(consumerProps(groupId, overrides), new StringDeserializer(), new StringDeserializer());
    }

    static KafkaConsumer<String, String> consumer() {
        return consumer(null, Map.of());
    }

    static KafkaConsumer<byte[], byte[]> bytesConsumer() {
        return new KafkaConsumer<>(consumerProps(null, Map.of()), new ByteArrayDeserializer(), new ByteArrayDeserializer());
    }

    /** Creates a topic and waits until every partition has a leader. */
    static void createTopic(Admin admin, String name, int partitions, Map<String, String> configs) {
        NewTopic t = new NewTopic(name, partitions, (short) 1);
        if (!configs.isEmpty()) {
            t.configs(configs);
        }
        get(admin.createTopics(List.of(t)).all());
        waitForTopic(admin, name, partitions);
    }

    static void createTopic(Admin admin, String name, int partitions) {
        createTopic(admin, name, partitions, Map.of());
    }

    /** A new topic of its own: unique name, created through a short-lived admin client. */
    static String newTopic(String prefix, int partitions) {
        return newTopic(prefix, partitions, Map.of());
    }

    static String newTopic(String prefix, int partitions, Map<String, String> configs) {
        String name = unique(prefix);
        try (Admin admin = admin()) {
            createTopic(admin, name, partitions, configs);
        }
        return name;
    }

    static void waitForTopic(Admin admin, String name, int partitions) {
        eventually("topic " + name + " with " + partitions + " led partitions", () -> {
            try {
                TopicDescription d = admin.describeTopics(List.of(name)).allTopicNames().get(10, TimeUnit.SECONDS).get(name);
                if (d.partitions().size() != partitions) {
                    return false;
                }
                for (TopicPartitionInfo p : d.partitions()) {
                    if (p.leader() == null || p.leader().isEmpty()) {
                        return false;
                    }
                }
                return true;
            } catch (Exception e) {
                return false;
            }
        });
        // A leader in the metadata may not have opened its log yet (Kafka answers NOT_LEADER_OR_FOLLOWER
        // for a moment): wait until every partition answers ListOffsets.
        Map<TopicPartition, org.apache.kafka.clients.admin.OffsetSpec> specs = new HashMap<>();
        for (int i = 0; i < partitions; i++) {
            specs.put(new TopicPartition(name, i), org.apache.kafka.clients.admin.OffsetSpec.latest());
        }
        get(admin.listOffsets(specs).all());
    }

    /** Waits for a condition, polling it every 100 ms, for at most WAIT. */
    static void eventually(String what, BooleanSupplier condition) {
        eventually(what, WAIT, condition);
    }

    static void eventually(String what, Duration within, BooleanSupplier condition) {
        long deadline = System.nanoTime() + within.toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                fail("timed out after " + within.toSeconds() + " s waiting for " + what);
            }
            sleep(100);
        }
    }

    static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new RuntimeException(e);
        }
    }

    /** The value of a future, or its cause thrown as is. */
    static <T> T get(KafkaFuture<T> f) {
        try {
            return f.get(WAIT.toMillis(), TimeUnit.MILLISECONDS);
        } catch (ExecutionException e) {
            throw sneaky(e.getCause());
        } catch (TimeoutException e) {
            throw new AssertionError("no answer within " + WAIT.toSeconds() + " s", e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new RuntimeException(e);
        }
    }

    static <T> T get(java.util.concurrent.Future<T> f) {
        try {
            return f.get(WAIT.toMillis(), TimeUnit.MILLISECONDS);
        } catch (ExecutionException e) {
            throw sneaky(e.getCause());
        } catch (TimeoutException e) {
            throw new AssertionError("no answer within " + WAIT.toSeconds() + " s", e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new RuntimeException(e);
        }
    }

    /**
     * The exception a future fails with; fails the test if it succeeds, or if the exception has no
     * message (the user would be told nothing).
     */
    static Throwable failure(java.util.concurrent.Future<?> f) {
        Throwable t = failureWithAnyMessage(f);
        if (t.getMessage() == null || t.getMessage().isBlank()) {
            throw new AssertionError("the error has no message: " + t.getClass().getName(), t);
        }
        return t;
    }

    /** As failure, for the few answers where Kafka itself gives no message. */
    static Throwable failureWithAnyMessage(java.util.concurrent.Future<?> f) {
        try {
            Object v = f.get(WAIT.toMillis(), TimeUnit.MILLISECONDS);
            throw new AssertionError("expected a failure, got " + v);
        } catch (ExecutionException e) {
            return e.getCause();
        } catch (TimeoutException e) {
            throw new AssertionError("no answer within " + WAIT.toSeconds() + " s", e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new RuntimeException(e);
        }
    }

    @SuppressWarnings("unchecked")
    private static <E extends Throwable> RuntimeException sneaky(Throwable t) throws E {
        throw (E) t;
    }

    /** Polls until at least {@code count} records came back, for at most WAIT. */
    static <K, V> List<ConsumerRecord<K, V>> poll(KafkaConsumer<K, V> consumer, int count) {
        return poll(consumer, count, WAIT);
    }

    static <K, V> List<ConsumerRecord<K, V>> poll(KafkaConsumer<K, V> consumer, int count, Duration within) {
        List<ConsumerRecord<K, V>> out = new ArrayList<>();
        long deadline = System.nanoTime() + within.toNanos();
        while (out.size() < count) {
            if (System.nanoTime() > deadline) {
                fail("got " + out.size() + " of " + count + " records within " + within.toSeconds() + " s");
            }
            for (ConsumerRecord<K, V> r : consumer.poll(Duration.ofMillis(200))) {
                out.add(r);
            }
        }
        return out;
    }

    /** Polls for a while and returns whatever came (to show that nothing more does). */
    static <K, V> List<ConsumerRecord<K, V>> pollFor(KafkaConsumer<K, V> consumer, Duration duration) {
        List<ConsumerRecord<K, V>> out = new ArrayList<>();
        long deadline = System.nanoTime() + duration.toNanos();
        while (System.nanoTime() < deadline) {
            for (ConsumerRecord<K, V> r : consumer.poll(Duration.ofMillis(100))) {
                out.add(r);
            }
        }
        return out;
    }

    /** Sends records with keys k0.. and values v0.. to one partition and waits for every acknowledgement. */
    static List<RecordMetadata> produce(String topic, int partition, int count) {
        List<java.util.concurrent.Future<RecordMetadata>> fs = new ArrayList<>();
        try (KafkaProducer<String, String> p = producer()) {
            for (int i = 0; i < count; i++) {
                fs.add(p.send(new ProducerRecord<>(topic, partition, "k" + i, "v" + i)));
            }
            p.flush();
        }
        List<RecordMetadata> out = new ArrayList<>();
        for (var f : fs) {
            out.add(get(f));
        }
        return out;
    }

    /** Reads a partition from the beginning with a group-less consumer. */
    static List<ConsumerRecord<String, String>> readAll(String topic, int partition, int count) {
        try (KafkaConsumer<String, String> c = consumer()) {
            TopicPartition tp = new TopicPartition(topic, partition);
            c.assign(List.of(tp));
            c.seekToBeginning(List.of(tp));
            return poll(c, count);
        }
    }

    static Map<TopicPartition, List<ConsumerRecord<String, String>>> byPartition(
            Collection<ConsumerRecord<String, String>> records) {
        Map<TopicPartition, List<ConsumerRecord<String, String>>> out = new HashMap<>();
        for (ConsumerRecord<String, String> r : records) {
            out.computeIfAbsent(new TopicPartition(r.topic(), r.partition()), k -> new ArrayList<>()).add(r);
        }
        return out;
    }

    static Set<TopicPartition> partitions(String topic, int count) {
        Set<TopicPartition> out = new java.util.HashSet<>();
        for (int i = 0; i < count; i++) {
            out.add(new TopicPartition(topic, i));
        }
        return out;
    }

    static void assertOffsetsContiguous(List<? extends ConsumerRecord<?, ?>> records, long from) {
        for (int i = 0; i < records.size(); i++) {
            assertEquals(from + i, records.get(i).offset(), "offset of record " + i);
        }
    }
}
