package dev.tidemark.interop;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Test;

/**
 * Incremental (cooperative) rebalancing as members come and go: with cooperative-sticky
 * a member gives up only the partitions that move, keeps consuming the rest, and a
 * member that leaves hands its partitions over without the others revoking anything.
 */
class CooperativeRebalanceTest {

    private static final Duration REBALANCE = Duration.ofSeconds(40);

    @Test
    void membersJoiningAndLeavingMoveOnlyThePartitionsThatMustMove() {
        String topic = Kit.newTopic("coop", 6);
        String group = Kit.unique("coop");
        Set<TopicPartition> all = Kit.partitions(topic, 6);
        String assignor = Member.assignorClass("cooperative-sticky");

        try (Member a = new Member("a", group, assignor, Map.of(), topic)) {
            Member.pollUntil("a owns all six partitions", REBALANCE, () -> a.consumer.assignment().equals(all), a);
            assertTrue(a.revokedEvents.isEmpty(), "nothing revoked from the first member: " + a.revokedEvents);

            // b joins: a gives up only what b takes.
            Set<TopicPartition> aBefore = a.consumer.assignment();
            try (Member b = new Member("b", group, assignor, Map.of(), topic)) {
                Member.pollUntil("a and b own three each", REBALANCE,
                        () -> a.consumer.assignment().size() == 3 && b.consumer.assignment().size() == 3
                                && disjointCover(all, a, b), a, b);
                assertTrue(aBefore.containsAll(a.consumer.assignment()), "a keeps a subset of what it had");
                for (Set<TopicPartition> revoked : a.revokedEvents) {
                    assertNotEquals(aBefore, revoked, "a never revokes all its partitions at once");
                    assertTrue(b.consumer.assignment().containsAll(revoked), "a revokes only what b gets: " + revoked);
                }
                assertTrue(a.lostEvents.isEmpty() && b.lostEvents.isEmpty(), "no partitions lost");

                // c joins: each of a and b gives up one partition.
                Set<TopicPartition> aMid = a.consumer.assignment();
                Set<TopicPartition> bMid = b.consumer.assignment();
                int aRevokes = a.revokedEvents.size();
                try (Member c = new Member("c", group, assignor, Map.of(), topic)) {
                    Member.pollUntil("two partitions each", REBALANCE,
                            () -> a.consumer.assignment().size() == 2 && b.consumer.assignment().size() == 2
                                    && c.consumer.assignment().size() == 2 && disjointCover(all, a, b, c), a, b, c);
                    assertTrue(aMid.containsAll(a.consumer.assignment()), "a is sticky");
                    assertTrue(bMid.containsAll(b.consumer.assignment()), "b is sticky");
                    for (Set<TopicPartition> revoked : a.revokedEvents.subList(aRevokes, a.revokedEvents.size())) {
                        assertEquals(1, revoked.size(), "a revokes one partition, not all: " + revoked);
                    }
                    consumeAcross(topic, 30, a, b, c);
                }
                // c left: its two partitions go to a and b, who revoke nothing.
                int aRevoked = a.revokedEvents.size();
                int bRevoked = b.revokedEvents.size();
                Member.pollUntil("a and b own three each again", REBALANCE,
                        () -> a.consumer.assignment().size() == 3 && b.consumer.assignment().size() == 3
                                && disjointCover(all, a, b), a, b);
                assertEquals(aRevoked, a.revokedEvents.size(), "a revoked nothing when c left: " + a.revokedEvents);
                assertEquals(bRevoked, b.revokedEvents.size(), "b revoked nothing when c left: " + b.revokedEvents);
                consumeAcross(topic, 30, a, b);
            }
            // b left: a owns everything again.
            Member.pollUntil("a owns all six again", REBALANCE, () -> a.consumer.assignment().equals(all), a);
            assertTrue(a.lostEvents.isEmpty(), "a lost nothing");
        }
    }

    @Test
    void fiveMembersJoiningAtOnceShareTenPartitionsEvenly() {
        String topic = Kit.newTopic("coop-five", 10);
        String group = Kit.unique("coop-five");
        Set<TopicPartition> all = Kit.partitions(topic, 10);
        String assignor = Member.assignorClass("cooperative-sticky");
        Member[] ms = new Member[5];
        try {
            for (int i = 0; i < ms.length; i++) {
                ms[i] = new Member("m" + i, group, assignor, Map.of(), topic);
            }
            Member.pollUntil("two partitions each", REBALANCE, () -> {
                for (Member m : ms) {
                    if (m.consumer.assignment().size() != 2) {
                        return false;
                    }
                }
                return disjointCover(all, ms);
            }, ms);
            consumeAcross(topic, 40, ms);
        } finally {
            for (Member m : ms) {
                if (m != null) {
                    m.close();
                }
            }
        }
    }

    private static boolean disjointCover(Set<TopicPartition> all, Member... ms) {
        Set<TopicPartition> union = new HashSet<>();
        int total = 0;
        for (Member m : ms) {
            union.addAll(m.consumer.assignment());
            total += m.consumer.assignment().size();
        }
        return union.equals(all) && total == all.size();
    }

    /** Produces n fresh records over every partition and checks that the members read each once. */
    private static void consumeAcross(String topic, int n, Member... ms) {
        for (Member m : ms) {
            Member.pollFor(Duration.ofMillis(100), m);
            m.records.clear();
        }
        String tag = Kit.unique("batch");
        int partitions = 0;
        for (Member m : ms) {
            partitions += m.consumer.assignment().size();
        }
        try (KafkaProducer<String, String> p = Kit.producer()) {
            for (int i = 0; i < n; i++) {
                p.send(new ProducerRecord<>(topic, i % partitions, "k" + i, tag + "-" + i));
            }
            p.flush();
        }
        Member.pollUntil(n + " fresh records", REBALANCE, () -> {
            int count = 0;
            for (Member m : ms) {
                count += (int) m.records.stream().filter(r -> r.value().startsWith(tag)).count();
            }
            return count >= n;
        }, ms);
        Set<String> seen = new HashSet<>();
        for (Member m : ms) {
            for (ConsumerRecord<String, String> r : m.records) {
                if (r.value().startsWith(tag)) {
                    assertTrue(seen.add(r.value()), "read once: " + r.value());
                    assertTrue(m.consumer.assignment().contains(new TopicPartition(r.topic(), r.partition())));
                }
            }
        }
        assertEquals(n, seen.size());
        for (Member m : ms) {
            List<ConsumerRecord<String, String>> mine = m.records;
            assertTrue(mine.stream().anyMatch(r -> r.value().startsWith(tag)), m.name + " consumed some");
        }
    }
}
