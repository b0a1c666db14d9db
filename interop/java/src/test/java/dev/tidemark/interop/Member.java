package dev.tidemark.interop;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.BooleanSupplier;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;

/**
 * A subscribed group member driven from the test's thread: every call to {@link #poll}
 * polls it once, and its rebalance listener records what it was given and what it lost.
 * Several members are driven in turn from one thread (a consumer is not thread safe,
 * and one thread keeps the order of events readable).
 */
final class Member implements AutoCloseable, ConsumerRebalanceListener {
    final String name;
    final KafkaConsumer<String, String> consumer;
    final List<Set<TopicPartition>> assignedEvents = new ArrayList<>();
    final List<Set<TopicPartition>> revokedEvents = new ArrayList<>();
    final List<Set<TopicPartition>> lostEvents = new ArrayList<>();
    final List<ConsumerRecord<String, String>> records = new ArrayList<>();
    private final Set<TopicPartition> owned = new HashSet<>();

    Member(String name, String group, String assignor, Map<String, Object> extra, String... topics) {
        this.name = name;
        Map<String, Object> cfg = new java.util.HashMap<>(extra);
        cfg.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, assignor);
        cfg.put(ConsumerConfig.CLIENT_ID_CONFIG, name);
        this.consumer = Kit.consumer(group, cfg);
        consumer.subscribe(List.of(topics), this);
    }

    static String assignorClass(String name) {
        switch (name) {
            case "range":
                return org.apache.kafka.clients.consumer.RangeAssignor.class.getName();
            case "roundrobin":
                return org.apache.kafka.clients.consumer.RoundRobinAssignor.class.getName();
            case "sticky":
                return org.apache.kafka.clients.consumer.StickyAssignor.class.getName();
            case "cooperative-sticky":
                return org.apache.kafka.clients.consumer.CooperativeStickyAssignor.class.getName();
            default:
                throw new IllegalArgumentException(name);
        }
    }

    void poll() {
        for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(100))) {
            records.add(r);
        }
    }

    Set<TopicPartition> owned() {
        return new HashSet<>(owned);
    }

    @Override
    public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
        assignedEvents.add(new HashSet<>(partitions));
        owned.addAll(partitions);
    }

    @Override
    public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
        revokedEvents.add(new HashSet<>(partitions));
        owned.removeAll(partitions);
    }

    @Override
    public void onPartitionsLost(Collection<TopicPartition> partitions) {
        lostEvents.add(new HashSet<>(partitions));
        owned.removeAll(partitions);
    }

    @Override
    public void close() {
        consumer.close(Duration.ofSeconds(10));
    }

    /** Polls every member in turn until the condition holds, for at most {@code within}. */
    static void pollUntil(String what, Duration within, BooleanSupplier condition, Member... members) {
        long deadline = System.nanoTime() + within.toNanos();
        while (true) {
            for (Member m : members) {
                m.poll();
            }
            if (condition.getAsBoolean()) {
                return;
            }
            if (System.nanoTime() > deadline) {
                StringBuilder s = new StringBuilder("timed out after " + within.toSeconds() + " s waiting for " + what);
                for (Member m : members) {
                    s.append("; ").append(m.name).append(" owns ").append(m.owned())
                            .append(" (assigned ").append(m.assignedEvents)
                            .append(", revoked ").append(m.revokedEvents)
                            .append(", lost ").append(m.lostEvents).append(")");
                }
                throw new AssertionError(s.toString());
            }
        }
    }

    /** Polls every member in turn for a while. */
    static void pollFor(Duration duration, Member... members) {
        long deadline = System.nanoTime() + duration.toNanos();
        while (System.nanoTime() < deadline) {
            for (Member m : members) {
                m.poll();
            }
        }
    }

    @Override
    public String toString() {
        return name + owned;
    }
}
