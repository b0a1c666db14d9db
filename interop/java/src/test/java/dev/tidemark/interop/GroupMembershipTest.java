package dev.tidemark.interop;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.clients.consumer.CloseOptions;
import org.apache.kafka.common.errors.FencedInstanceIdException;
import org.apache.kafka.common.errors.InconsistentGroupProtocolException;
import org.apache.kafka.common.errors.InvalidSessionTimeoutException;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

class GroupMembershipTest {

    private static final Duration REBALANCE = Duration.ofSeconds(40);

    @Test
    void aMemberThatLeavesHandsItsPartitionsOverBeforeTheSessionTimeout() {
        String topic = Kit.newTopic("leave", 4);
        String group = Kit.unique("leave");
        Set<TopicPartition> all = Kit.partitions(topic, 4);
        String range = Member.assignorClass("range");
        // A long session timeout: only a LeaveGroup can make the hand-over quick.
        Map<String, Object> cfg = Map.of(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, 45000,
                ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, 1000);
        try (Member a = new Member("a", group, range, cfg, topic)) {
            try (Member b = new Member("b", group, range, cfg, topic)) {
                Member.pollUntil("two partitions each", REBALANCE,
                        () -> a.consumer.assignment().size() == 2 && b.consumer.assignment().size() == 2, a, b);
            }
            long left = System.nanoTime();
            Member.pollUntil("a owns all four", REBALANCE, () -> a.consumer.assignment().equals(all), a);
            long took = Duration.ofNanos(System.nanoTime() - left).toMillis();
            assertTrue(took < 30000, "hand-over took " + took + " ms: the leave was not honoured");
        }
    }

    @Test
    void aMemberThatDiesIsExpiredAfterItsSessionTimeout() throws Exception {
        String topic = Kit.newTopic("expire", 4);
        String group = Kit.unique("expire");
        int sessionMs = 6000;
        ProcessBuilder pb = new ProcessBuilder(
                java.nio.file.Paths.get(System.getProperty("java.home"), "bin", "java").toString(),
                "-cp", System.getProperty("java.class.path"),
                MemberProcess.class.getName(), group, topic, Integer.toString(sessionMs));
        pb.environment().put("BOOTSTRAP", Kit.bootstrap());
        pb.redirectErrorStream(true);
        Process proc = pb.start();
        try {
            java.io.BufferedReader out = new java.io.BufferedReader(new java.io.InputStreamReader(proc.getInputStream()));
            java.util.concurrent.BlockingQueue<String> lines = new java.util.concurrent.LinkedBlockingQueue<>();
            Thread reader = new Thread(() -> out.lines().forEach(lines::add));
            reader.setDaemon(true);
            reader.start();
            Kit.eventually("the other process owns all four", () -> lines.contains("assigned 4"));
            try (Member a = new Member("a", group, Member.assignorClass("range"), Map.of(), topic)) {
                Member.pollUntil("two partitions each", REBALANCE, () -> a.consumer.assignment().size() == 2, a);
                proc.destroyForcibly().waitFor();
                long killed = System.nanoTime();
                Member.pollUntil("a owns all four", REBALANCE, () -> a.consumer.assignment().size() == 4, a);
                long took = Duration.ofNanos(System.nanoTime() - killed).toMillis();
                // The coordinator waits for the session to run out (not much longer), then rebalances.
                assertTrue(took >= sessionMs / 2, "the dead member was expired after " + took + " ms");
                assertTrue(took < sessionMs + 20000, "the dead member was expired after " + took + " ms");
            }
        } finally {
            proc.destroyForcibly();
        }
    }

    // KIP-345: a static member that rejoins (new member id, same group.instance.id) within the
    // session timeout gets its old assignment back; the other member sees nothing.
    @Test
    void staticMemberRejoiningWithinTheSessionKeepsItsPartitionsWithoutARebalance() {
        String topic = Kit.newTopic("static", 4);
        String group = Kit.unique("static");
        String range = Member.assignorClass("range");
        Map<String, Object> common = Map.of(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, 30000);
        Map<String, Object> aCfg = new HashMap<>(common);
        aCfg.put(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, "instance-a");
        Map<String, Object> bCfg = new HashMap<>(common);
        bCfg.put(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, "instance-b");
        try (Member a = new Member("a", group, range, aCfg, topic)) {
            Member.pollUntil("a owns all four", REBALANCE, () -> a.consumer.assignment().size() == 4, a);
            Set<TopicPartition> bHad;
            try (Member b = new Member("b", group, range, bCfg, topic)) {
                Member.pollUntil("two partitions each", REBALANCE,
                        () -> a.consumer.assignment().size() == 2 && b.consumer.assignment().size() == 2, a, b);
                bHad = b.consumer.assignment();
            }
            // b closed: a static member does not leave the group when it closes.
            int aAssigned = a.assignedEvents.size();
            int aRevoked = a.revokedEvents.size();
            Set<TopicPartition> aHas = a.consumer.assignment();
            try (Member b2 = new Member("b2", group, range, bCfg, topic)) {
                Member.pollUntil("b's instance has its partitions back", REBALANCE,
                        () -> b2.consumer.assignment().equals(bHad), a, b2);
                Member.pollFor(Duration.ofSeconds(2), a, b2);
                assertEquals(bHad, b2.consumer.assignment());
                assertEquals(aHas, a.consumer.assignment());
                assertEquals(aAssigned, a.assignedEvents.size(), "a saw no rebalance: assigned " + a.assignedEvents);
                assertEquals(aRevoked, a.revokedEvents.size(), "a saw no rebalance: revoked " + a.revokedEvents);
                try (Admin admin = Kit.admin()) {
                    ConsumerGroupDescription d = Kit.get(admin.describeConsumerGroups(List.of(group)).all()).get(group);
                    assertEquals(GroupState.STABLE, d.groupState());
                    Set<Optional<String>> instances = d.members().stream()
                            .map(MemberDescription::groupInstanceId).collect(Collectors.toSet());
                    assertEquals(Set.of(Optional.of("instance-a"), Optional.of("instance-b")), instances);
                }
            }
        }
    }

    @Test
    void aStaticMemberClosingWithLeaveGroupHandsItsPartitionsOver() {
        String topic = Kit.newTopic("static-leave", 4);
        String group = Kit.unique("static-leave");
        String range = Member.assignorClass("range");
        Map<String, Object> aCfg = Map.of(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, "instance-a",
                ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, 45000);
        Map<String, Object> bCfg = Map.of(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, "instance-b",
                ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, 45000);
        try (Member a = new Member("a", group, range, aCfg, topic)) {
            Member b = new Member("b", group, range, bCfg, topic);
            Member.pollUntil("two partitions each", REBALANCE,
                    () -> a.consumer.assignment().size() == 2 && b.consumer.assignment().size() == 2, a, b);
            // KIP-1092: a static member may leave for good when it closes.
            b.consumer.close(CloseOptions.groupMembershipOperation(CloseOptions.GroupMembershipOperation.LEAVE_GROUP)
                    .withTimeout(Duration.ofSeconds(10)));
            long left = System.nanoTime();
            Member.pollUntil("a owns all four", REBALANCE, () -> a.consumer.assignment().size() == 4, a);
            long took = Duration.ofNanos(System.nanoTime() - left).toMillis();
            assertTrue(took < 30000, "hand-over took " + took + " ms: the static member's leave was not honoured");
        }
    }

    // KIP-345: an OffsetCommit from the replaced member (old member id, same group.instance.id)
    // is answered FENCED_INSTANCE_ID (82): FencedInstanceIdException, fatal for that consumer, so
    // two processes configured alike are told so.
    @Test
    void aSecondConsumerWithTheSameInstanceIdFencesTheFirst() {
        String topic = Kit.newTopic("fenced", 2);
        String group = Kit.unique("fenced");
        String range = Member.assignorClass("range");
        Map<String, Object> cfg = Map.of(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, "twin",
                ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, 30000);
        Member first = new Member("first", group, range, cfg, topic);
        try {
            Member.pollUntil("first assigned", REBALANCE, () -> first.consumer.assignment().size() == 2, first);
            try (Member second = new Member("second", group, range, cfg, topic)) {
                Member.pollUntil("second assigned", REBALANCE, () -> second.consumer.assignment().size() == 2, second);
                // The first one learns it was replaced (its heartbeat or commit is FENCED_INSTANCE_ID).
                assertThrows(FencedInstanceIdException.class, () -> {
                    long deadline = System.currentTimeMillis() + 20000;
                    while (System.currentTimeMillis() < deadline) {
                        first.poll();
                        first.consumer.commitSync();
                        second.poll();
                    }
                });
                Member.pollFor(Duration.ofMillis(500), second);
                assertEquals(2, second.consumer.assignment().size(), "the new instance keeps the partitions");
            }
        } finally {
            try {
                first.close();
            } catch (RuntimeException ignored) {
                // A fenced consumer may fail to close cleanly.
            }
        }
    }

    @Test
    void subscribedMemberCommitsAndTheNextMemberResumesThere() {
        String topic = Kit.newTopic("resume", 1);
        String group = Kit.unique("resume");
        Kit.produce(topic, 0, 20);
        TopicPartition tp = new TopicPartition(topic, 0);
        Map<String, Object> cfg = Map.of(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, 8);
        try (KafkaConsumer<String, String> c = Kit.consumer(group, cfg)) {
            c.subscribe(List.of(topic));
            List<ConsumerRecord<String, String>> got = Kit.poll(c, 1);
            long next = got.get(got.size() - 1).offset() + 1;
            c.commitSync(Map.of(tp, new OffsetAndMetadata(next)));
            assertEquals(next, c.committed(Set.of(tp)).get(tp).offset());
            Kit.assertOffsetsContiguous(got, 0);
            assertTrue(next <= 8);
        }
        try (KafkaConsumer<String, String> c = Kit.consumer(group, Map.of())) {
            c.subscribe(List.of(topic));
            List<ConsumerRecord<String, String>> rest = Kit.poll(c, 1);
            long first = rest.get(0).offset();
            assertTrue(first >= 1 && first <= 8, "resumed at the committed offset, got " + first);
            rest.addAll(Kit.poll(c, (int) (20 - first - rest.size())));
            Kit.assertOffsetsContiguous(rest, first);
            assertEquals("k19", rest.get(rest.size() - 1).key());
        }
    }

    @Test
    void patternSubscriptionPicksUpMatchingTopicsIncludingNewOnes() {
        String prefix = Kit.unique("pattern");
        String t1 = prefix + "-one";
        String t2 = prefix + "-two";
        String other = Kit.unique("pattern-other");
        try (org.apache.kafka.clients.admin.Admin admin = Kit.admin()) {
            Kit.createTopic(admin, t1, 1);
            Kit.createTopic(admin, t2, 2);
            Kit.createTopic(admin, other, 1);
        }
        Kit.produce(t1, 0, 2);
        Kit.produce(t2, 1, 2);
        Kit.produce(other, 0, 2);
        String group = Kit.unique("pattern-group");
        try (KafkaConsumer<String, String> c = Kit.consumer(group, Map.of(ConsumerConfig.METADATA_MAX_AGE_CONFIG, 1000))) {
            c.subscribe(java.util.regex.Pattern.compile(java.util.regex.Pattern.quote(prefix) + "-.*"));
            List<ConsumerRecord<String, String>> got = Kit.poll(c, 4);
            got.addAll(Kit.pollFor(c, Duration.ofMillis(500)));
            assertEquals(Set.of(t1, t2), got.stream().map(ConsumerRecord::topic).collect(Collectors.toSet()));
            assertEquals(4, got.size());
            c.commitSync();
            // A matching topic created later joins the subscription (the group rebalances; what was
            // committed is not read again).
            String t3 = prefix + "-three";
            try (org.apache.kafka.clients.admin.Admin admin = Kit.admin()) {
                Kit.createTopic(admin, t3, 1);
            }
            Kit.produce(t3, 0, 3);
            List<ConsumerRecord<String, String>> later = Kit.poll(c, 3);
            assertTrue(later.stream().allMatch(r -> r.topic().equals(t3)), "records of the new topic");
            assertTrue(c.assignment().contains(new TopicPartition(t3, 0)));
        }
    }

    @Test
    void aMemberWithNoAssignorInCommonIsRefused() {
        String topic = Kit.newTopic("inconsistent", 2);
        String group = Kit.unique("inconsistent");
        try (Member a = new Member("a", group, Member.assignorClass("range"), Map.of(), topic)) {
            Member.pollUntil("a assigned", REBALANCE, () -> a.consumer.assignment().size() == 2, a);
            try (KafkaConsumer<String, String> b = Kit.consumer(group, Map.of(
                    ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, Member.assignorClass("roundrobin")))) {
                b.subscribe(List.of(topic));
                assertThrows(InconsistentGroupProtocolException.class, () -> {
                    long deadline = System.currentTimeMillis() + 20000;
                    while (System.currentTimeMillis() < deadline) {
                        b.poll(Duration.ofMillis(200));
                        a.poll();
                    }
                });
            }
            Member.pollFor(Duration.ofMillis(500), a);
            assertEquals(2, a.consumer.assignment().size(), "a keeps its partitions");
        }
    }

    @Test
    void aSessionTimeoutBelowTheBrokerMinimumIsRefused() {
        String topic = Kit.newTopic("short-session", 1);
        // group.min.session.timeout.ms is 6000 by default.
        try (KafkaConsumer<String, String> c = Kit.consumer(Kit.unique("short-session"), Map.of(
                ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, 2000, ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, 500))) {
            c.subscribe(List.of(topic));
            assertThrows(InvalidSessionTimeoutException.class, () -> {
                long deadline = System.currentTimeMillis() + 20000;
                while (System.currentTimeMillis() < deadline) {
                    c.poll(Duration.ofMillis(200));
                }
            });
        }
    }

    @Test
    void autoCommitCommitsWhatWasConsumed() {
        String topic = Kit.newTopic("autocommit", 1);
        String group = Kit.unique("autocommit");
        Kit.produce(topic, 0, 15);
        TopicPartition tp = new TopicPartition(topic, 0);
        Map<String, Object> cfg = Map.of(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, true,
                ConsumerConfig.AUTO_COMMIT_INTERVAL_MS_CONFIG, 200);
        try (KafkaConsumer<String, String> c = Kit.consumer(group, cfg)) {
            c.subscribe(List.of(topic));
            Kit.poll(c, 15);
            Kit.eventually("auto commit of offset 15", () -> {
                c.poll(Duration.ofMillis(100));
                OffsetAndMetadata om = c.committed(Set.of(tp)).get(tp);
                return om != null && om.offset() == 15;
            });
        }
        try (Admin admin = Kit.admin()) {
            Map<TopicPartition, OffsetAndMetadata> offsets =
                    Kit.get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata());
            assertEquals(15, offsets.get(tp).offset());
        }
    }
}
