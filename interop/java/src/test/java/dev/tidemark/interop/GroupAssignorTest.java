package dev.tidemark.interop;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Two members share topics under each assignor; the group as the coordinator describes it matches. */
class GroupAssignorTest {

    private static final Duration REBALANCE = Duration.ofSeconds(40);

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"range", "roundrobin", "sticky", "cooperative-sticky"})
    void twoMembersSplitTwoTopicsAndConsumeEachRecordOnce(String assignor) {
        String t1 = Kit.newTopic("asg-a-" + assignor, 3);
        String t2 = Kit.newTopic("asg-b-" + assignor, 3);
        String group = Kit.unique("asg-" + assignor);
        Set<TopicPartition> all = new HashSet<>(Kit.partitions(t1, 3));
        all.addAll(Kit.partitions(t2, 3));
        try (Member a = new Member("a", group, Member.assignorClass(assignor), Map.of(), t1, t2);
                Member b = new Member("b", group, Member.assignorClass(assignor), Map.of(), t1, t2)) {
            Member.pollUntil("both members assigned, covering all six partitions", REBALANCE, () -> {
                Set<TopicPartition> x = a.consumer.assignment();
                Set<TopicPartition> y = b.consumer.assignment();
                Set<TopicPartition> union = new HashSet<>(x);
                union.addAll(y);
                return !x.isEmpty() && !y.isEmpty() && union.equals(all) && x.size() + y.size() == 6;
            }, a, b);
            Set<TopicPartition> x = a.consumer.assignment();
            Set<TopicPartition> y = b.consumer.assignment();
            if (assignor.equals("range")) {
                // Range deals each topic alone: one member gets two partitions of each topic.
                List<Integer> sizes = new ArrayList<>(List.of(x.size(), y.size()));
                sizes.sort(null);
                assertEquals(List.of(2, 4), sizes, "range: " + x + " / " + y);
                Set<TopicPartition> bigger = x.size() == 4 ? x : y;
                assertEquals(Set.of(new TopicPartition(t1, 0), new TopicPartition(t1, 1),
                        new TopicPartition(t2, 0), new TopicPartition(t2, 1)), bigger);
            } else if (assignor.equals("roundrobin")) {
                // Round robin deals the sorted partitions of both topics in turn.
                Set<TopicPartition> even = Set.of(new TopicPartition(t1, 0), new TopicPartition(t1, 2), new TopicPartition(t2, 1));
                Set<TopicPartition> odd = Set.of(new TopicPartition(t1, 1), new TopicPartition(t2, 0), new TopicPartition(t2, 2));
                assertTrue((x.equals(even) && y.equals(odd)) || (x.equals(odd) && y.equals(even)), "roundrobin: " + x + " / " + y);
            } else {
                assertEquals(3, x.size(), assignor + ": " + x + " / " + y);
                assertEquals(3, y.size(), assignor + ": " + x + " / " + y);
            }

            try (Admin admin = Kit.admin()) {
                ConsumerGroupDescription d = Kit.get(admin.describeConsumerGroups(List.of(group)).all()).get(group);
                assertEquals(GroupState.STABLE, d.groupState());
                assertEquals(assignor, d.partitionAssignor());
                assertEquals(2, d.members().size());
                Map<String, Set<TopicPartition>> byClient = d.members().stream().collect(Collectors.toMap(
                        MemberDescription::clientId, m -> m.assignment().topicPartitions()));
                assertEquals(Map.of("a", x, "b", y), byClient, "described assignments are the members' own");
            }

            int n = 60;
            try (KafkaProducer<String, String> p = Kit.producer()) {
                for (int i = 0; i < n; i++) {
                    p.send(new ProducerRecord<>(i % 2 == 0 ? t1 : t2, "key" + i, "v" + i));
                }
                p.flush();
            }
            Member.pollUntil("all " + n + " records consumed", REBALANCE,
                    () -> a.records.size() + b.records.size() >= n, a, b);
            Member.pollFor(Duration.ofMillis(300), a, b);
            Set<String> seen = new HashSet<>();
            for (Member m : List.of(a, b)) {
                for (ConsumerRecord<String, String> r : m.records) {
                    assertTrue(m.consumer.assignment().contains(new TopicPartition(r.topic(), r.partition())),
                            m.name + " read only its own partitions");
                    assertTrue(seen.add(r.value()), "no record twice: " + r.value());
                }
            }
            assertEquals(n, seen.size());
        }
    }

    @Test
    void singleMemberGetsEveryPartitionOfEverySubscribedTopic() {
        String t1 = Kit.newTopic("solo-a", 2);
        String t2 = Kit.newTopic("solo-b", 5);
        String group = Kit.unique("solo");
        Kit.produce(t1, 1, 3);
        Kit.produce(t2, 4, 3);
        try (Member a = new Member("solo", group, Member.assignorClass("range"), Map.of(), t1, t2)) {
            Member.pollUntil("7 partitions and 6 records", REBALANCE,
                    () -> a.consumer.assignment().size() == 7 && a.records.size() >= 6, a);
            assertEquals(1, a.assignedEvents.size(), "one assignment: " + a.assignedEvents);
        }
    }
}
