package dev.tidemark.interop;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ClassicGroupDescription;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.ConsumerGroupListing;
import org.apache.kafka.clients.admin.GroupListing;
import org.apache.kafka.clients.admin.ListConsumerGroupOffsetsSpec;
import org.apache.kafka.clients.admin.ListConsumerGroupsOptions;
import org.apache.kafka.clients.admin.ListGroupsOptions;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.admin.MemberToRemove;
import org.apache.kafka.clients.admin.RemoveMembersFromConsumerGroupOptions;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.ClassicGroupState;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.GroupType;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.GroupIdNotFoundException;
import org.apache.kafka.common.errors.GroupNotEmptyException;
import org.apache.kafka.common.errors.GroupSubscribedToTopicException;
import org.apache.kafka.common.errors.UnknownMemberIdException;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

class AdminGroupsTest {

    private static final Duration REBALANCE = Duration.ofSeconds(40);

    /** A subscribed member that owns every partition of the topic. */
    private static Member activeMember(String group, String topic, int partitions, Map<String, Object> cfg) {
        Member m = new Member("member-" + group, group, Member.assignorClass("range"), cfg, topic);
        Member.pollUntil("the member is assigned", REBALANCE, () -> m.consumer.assignment().size() == partitions, m);
        return m;
    }

    private static Map<TopicPartition, OffsetAndMetadata> offsets(Admin admin, String group) {
        return Kit.get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata());
    }

    @Test
    void listAndDescribeAnActiveConsumerGroup() {
        String topic = Kit.newTopic("grp-describe", 2);
        String group = Kit.unique("grp-describe");
        try (Member m = activeMember(group, topic, 2, Map.of()); Admin admin = Kit.admin()) {
            Collection<ConsumerGroupListing> listed = Kit.get(admin.listConsumerGroups().all());
            ConsumerGroupListing mine = listed.stream().filter(l -> l.groupId().equals(group)).findFirst().orElse(null);
            assertNotNull(mine, "group listed");
            assertEquals(Optional.of(GroupState.STABLE), mine.groupState());
            assertFalse(mine.isSimpleConsumerGroup());

            Collection<ConsumerGroupListing> stable = Kit.get(admin.listConsumerGroups(
                    new ListConsumerGroupsOptions().inGroupStates(Set.of(GroupState.STABLE))).all());
            assertTrue(stable.stream().anyMatch(l -> l.groupId().equals(group)));
            Collection<ConsumerGroupListing> empty = Kit.get(admin.listConsumerGroups(
                    new ListConsumerGroupsOptions().inGroupStates(Set.of(GroupState.EMPTY))).all());
            assertFalse(empty.stream().anyMatch(l -> l.groupId().equals(group)), "not listed as Empty");

            ConsumerGroupDescription d = Kit.get(admin.describeConsumerGroups(List.of(group)).all()).get(group);
            assertEquals(group, d.groupId());
            assertEquals(GroupState.STABLE, d.groupState());
            assertEquals(GroupType.CLASSIC, d.type());
            assertEquals("range", d.partitionAssignor());
            assertFalse(d.isSimpleConsumerGroup());
            assertNotNull(d.coordinator());
            assertEquals(1, d.members().size());
            MemberDescription md = d.members().iterator().next();
            assertEquals("member-" + group, md.clientId());
            assertFalse(md.consumerId().isEmpty());
            assertTrue(md.host().contains("127.0.0.1"), "host " + md.host());
            assertEquals(Kit.partitions(topic, 2), md.assignment().topicPartitions());
            assertEquals(Optional.empty(), md.groupInstanceId());
        }
    }

    // ListGroups v5 (group types, KIP-848): every classic group is listed with type "classic".
    @Test
    void listGroupsWithTypeFilter() {
        String topic = Kit.newTopic("grp-types", 1);
        String group = Kit.unique("grp-types");
        try (Member m = activeMember(group, topic, 1, Map.of()); Admin admin = Kit.admin()) {
            Collection<GroupListing> consumers = Kit.get(admin.listGroups(ListGroupsOptions.forConsumerGroups()).all());
            GroupListing mine = consumers.stream().filter(l -> l.groupId().equals(group)).findFirst().orElse(null);
            assertNotNull(mine, "listed among consumer groups");
            assertEquals(Optional.of(GroupType.CLASSIC), mine.type());
            assertEquals("consumer", mine.protocol());
            Collection<GroupListing> classic = Kit.get(admin.listGroups(
                    new ListGroupsOptions().withTypes(Set.of(GroupType.CLASSIC))).all());
            assertTrue(classic.stream().anyMatch(l -> l.groupId().equals(group)));
        }
    }

    @Test
    void listGroupsWithoutFilter() {
        String topic = Kit.newTopic("grp-all", 1);
        String group = Kit.unique("grp-all");
        try (Member m = activeMember(group, topic, 1, Map.of()); Admin admin = Kit.admin()) {
            Collection<GroupListing> all = Kit.get(admin.listGroups().all());
            GroupListing mine = all.stream().filter(l -> l.groupId().equals(group)).findFirst().orElse(null);
            assertNotNull(mine, "listed");
            assertEquals("consumer", mine.protocol());
            assertEquals(Optional.of(GroupState.STABLE), mine.groupState());
        }
    }

    @Test
    void describeClassicGroup() {
        String topic = Kit.newTopic("grp-classic", 1);
        String group = Kit.unique("grp-classic");
        try (Member m = activeMember(group, topic, 1, Map.of()); Admin admin = Kit.admin()) {
            ClassicGroupDescription d = Kit.get(admin.describeClassicGroups(List.of(group)).all()).get(group);
            assertEquals(ClassicGroupState.STABLE, d.state());
            assertFalse(d.isSimpleConsumerGroup());
            assertEquals("consumer", d.protocol());
            assertEquals("range", d.protocolData());
            assertEquals(1, d.members().size());
        }
    }

    // DescribeGroups v6 (KIP-1043) answers an unknown group GROUP_ID_NOT_FOUND (69), which the
    // admin client raises as GroupIdNotFoundException.
    @Test
    void describeAnUnknownGroup() {
        try (Admin admin = Kit.admin()) {
            String group = Kit.unique("grp-unknown");
            Throwable t = Kit.failure(admin.describeConsumerGroups(List.of(group)).all());
            assertInstanceOf(GroupIdNotFoundException.class, t);
        }
    }

    @Test
    void listAlterAndDeleteOffsetsOfAnEmptyGroup() {
        String topic = Kit.newTopic("grp-offsets", 3);
        String group = Kit.unique("grp-offsets");
        for (int p = 0; p < 3; p++) {
            Kit.produce(topic, p, 10);
        }
        TopicPartition p0 = new TopicPartition(topic, 0);
        TopicPartition p1 = new TopicPartition(topic, 1);
        TopicPartition p2 = new TopicPartition(topic, 2);
        try (Admin admin = Kit.admin()) {
            assertTrue(offsets(admin, group).isEmpty(), "no offsets for a group never seen");
            Kit.get(admin.alterConsumerGroupOffsets(group, Map.of(
                    p0, new OffsetAndMetadata(3, "from-admin"), p1, new OffsetAndMetadata(5), p2, new OffsetAndMetadata(9))).all());
            Map<TopicPartition, OffsetAndMetadata> got = offsets(admin, group);
            assertEquals(3, got.get(p0).offset());
            assertEquals("from-admin", got.get(p0).metadata());
            assertEquals(5, got.get(p1).offset());
            assertEquals(9, got.get(p2).offset());

            Map<TopicPartition, OffsetAndMetadata> some = Kit.get(admin.listConsumerGroupOffsets(
                    Map.of(group, new ListConsumerGroupOffsetsSpec().topicPartitions(List.of(p1)))).partitionsToOffsetAndMetadata(group));
            assertEquals(Set.of(p1), some.keySet());
            assertEquals(5, some.get(p1).offset());
            Map<TopicPartition, OffsetAndMetadata> stable = Kit.get(admin.listConsumerGroupOffsets(group,
                    new org.apache.kafka.clients.admin.ListConsumerGroupOffsetsOptions().requireStable(true))
                    .partitionsToOffsetAndMetadata());
            assertEquals(3, stable.get(p0).offset(), "require_stable without transactions");

            ConsumerGroupDescription d = Kit.get(admin.describeConsumerGroups(List.of(group)).all()).get(group);
            assertEquals(GroupState.EMPTY, d.groupState(), "a group with offsets only is Empty");
            assertTrue(d.members().isEmpty());
            assertTrue(Kit.get(admin.listConsumerGroups().all()).stream().anyMatch(l -> l.groupId().equals(group)));

            Kit.get(admin.deleteConsumerGroupOffsets(group, Set.of(p2)).all());
            got = offsets(admin, group);
            assertEquals(Set.of(p0, p1), got.keySet());
        }
        // A member of the group starts where the admin put it.
        try (KafkaConsumer<String, String> c = Kit.consumer(group, Map.of())) {
            c.assign(List.of(p0, p1, p2));
            List<ConsumerRecord<String, String>> rs = Kit.poll(c, 7 + 5 + 10);
            Map<TopicPartition, List<ConsumerRecord<String, String>>> by = Kit.byPartition(rs);
            Kit.assertOffsetsContiguous(by.get(p0), 3);
            Kit.assertOffsetsContiguous(by.get(p1), 5);
            Kit.assertOffsetsContiguous(by.get(p2), 0);
        }
    }

    @Test
    void severalGroupsInOneCall() {
        String topic = Kit.newTopic("grp-several", 1);
        TopicPartition tp = new TopicPartition(topic, 0);
        String g1 = Kit.unique("grp-several");
        String g2 = Kit.unique("grp-several");
        try (Admin admin = Kit.admin()) {
            Kit.get(admin.alterConsumerGroupOffsets(g1, Map.of(tp, new OffsetAndMetadata(1))).all());
            Kit.get(admin.alterConsumerGroupOffsets(g2, Map.of(tp, new OffsetAndMetadata(2))).all());
            Map<String, Map<TopicPartition, OffsetAndMetadata>> both = Kit.get(admin.listConsumerGroupOffsets(Map.of(
                    g1, new ListConsumerGroupOffsetsSpec(), g2, new ListConsumerGroupOffsetsSpec())).all());
            assertEquals(1, both.get(g1).get(tp).offset());
            assertEquals(2, both.get(g2).get(tp).offset());
            Map<String, ConsumerGroupDescription> ds = Kit.get(admin.describeConsumerGroups(List.of(g1, g2)).all());
            assertEquals(GroupState.EMPTY, ds.get(g1).groupState());
            assertEquals(GroupState.EMPTY, ds.get(g2).groupState());
            Kit.get(admin.deleteConsumerGroups(List.of(g1, g2)).all());
            assertTrue(offsets(admin, g1).isEmpty() && offsets(admin, g2).isEmpty());
        }
    }

    @Test
    void offsetsOfAnActiveGroupCannotBeAlteredAndSubscribedTopicOffsetsCannotBeDeleted() {
        String topic = Kit.newTopic("grp-busy", 1);
        String group = Kit.unique("grp-busy");
        TopicPartition tp = new TopicPartition(topic, 0);
        Kit.produce(topic, 0, 5);
        try (Member m = activeMember(group, topic, 1, Map.of()); Admin admin = Kit.admin()) {
            m.consumer.commitSync(Map.of(tp, new OffsetAndMetadata(2)));
            assertEquals(2, offsets(admin, group).get(tp).offset());
            Throwable alter = Kit.failure(admin.alterConsumerGroupOffsets(group, Map.of(tp, new OffsetAndMetadata(4))).all());
            assertInstanceOf(UnknownMemberIdException.class, alter);
            Throwable del = Kit.failure(admin.deleteConsumerGroupOffsets(group, Set.of(tp)).all());
            assertInstanceOf(GroupSubscribedToTopicException.class, del);
            assertEquals(2, offsets(admin, group).get(tp).offset(), "nothing changed");
            // Offsets of a topic the members do not subscribe to can go while the group is active.
            TopicPartition other = new TopicPartition(Kit.newTopic("grp-busy-other", 1), 0);
            m.consumer.commitSync(Map.of(other, new OffsetAndMetadata(1)));
            assertEquals(1, offsets(admin, group).get(other).offset());
            Kit.get(admin.deleteConsumerGroupOffsets(group, Set.of(other)).all());
            assertEquals(Set.of(tp), offsets(admin, group).keySet());
        }
    }

    @Test
    void deleteConsumerGroups() {
        String topic = Kit.newTopic("grp-delete", 1);
        String group = Kit.unique("grp-delete");
        TopicPartition tp = new TopicPartition(topic, 0);
        try (Admin admin = Kit.admin()) {
            try (Member m = activeMember(group, topic, 1, Map.of())) {
                m.consumer.commitSync(Map.of(tp, new OffsetAndMetadata(0)));
                assertInstanceOf(GroupNotEmptyException.class, Kit.failure(admin.deleteConsumerGroups(List.of(group)).all()));
            }
            Kit.eventually("the group is empty", () -> Kit.get(admin.describeConsumerGroups(List.of(group)).all())
                    .get(group).groupState() == GroupState.EMPTY);
            Kit.get(admin.deleteConsumerGroups(List.of(group)).all());
            assertFalse(Kit.get(admin.listConsumerGroups().all()).stream().anyMatch(l -> l.groupId().equals(group)));
            assertTrue(offsets(admin, group).isEmpty(), "its offsets went with it");
            assertInstanceOf(GroupIdNotFoundException.class,
                    Kit.failure(admin.deleteConsumerGroups(List.of(group)).all()), "deleting it again");
        }
    }

    // Kafka keeps a group without offsets whose last member left, Empty (described and listed),
    // until its group-metadata cleanup removes it.
    @Test
    void aGroupWithoutOffsetsWhoseLastMemberLeftIsEmpty() {
        String topic = Kit.newTopic("grp-left", 1);
        String group = Kit.unique("grp-left");
        try (Admin admin = Kit.admin()) {
            try (Member m = activeMember(group, topic, 1, Map.of())) {
                assertEquals(GroupState.STABLE, Kit.get(admin.describeConsumerGroups(List.of(group)).all()).get(group).groupState());
            }
            ConsumerGroupDescription d = Kit.get(admin.describeConsumerGroups(List.of(group)).all()).get(group);
            assertEquals(GroupState.EMPTY, d.groupState());
            assertEquals("", d.partitionAssignor());
            ConsumerGroupListing l = Kit.get(admin.listConsumerGroups().all()).stream()
                    .filter(x -> x.groupId().equals(group)).findFirst().orElse(null);
            assertNotNull(l, "still listed");
            assertEquals(Optional.of(GroupState.EMPTY), l.groupState());
        }
    }

    @Test
    void removeAStaticMemberFromItsGroup() {
        String topic = Kit.newTopic("grp-remove", 1);
        String group = Kit.unique("grp-remove");
        Member m = activeMember(group, topic, 1, Map.of(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, "the-instance",
                ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, 30000));
        try (Admin admin = Kit.admin()) {
            ConsumerGroupDescription before = Kit.get(admin.describeConsumerGroups(List.of(group)).all()).get(group);
            assertEquals(Optional.of("the-instance"), before.members().iterator().next().groupInstanceId());
            Kit.get(admin.removeMembersFromConsumerGroup(group,
                    new RemoveMembersFromConsumerGroupOptions(List.of(new MemberToRemove("the-instance")))).all());
            Kit.eventually("no members left", () -> Kit.get(admin.describeConsumerGroups(List.of(group)).all())
                    .get(group).members().isEmpty());
            assertInstanceOf(UnknownMemberIdException.class, Kit.failure(admin.removeMembersFromConsumerGroup(group,
                    new RemoveMembersFromConsumerGroupOptions(List.of(new MemberToRemove("the-instance")))).all()),
                    "removing it again");
        } finally {
            try {
                m.close();
            } catch (RuntimeException ignored) {
                // The removed member may learn it was fenced while closing.
            }
        }
    }

    // A group that never committed offsets stays Empty once its last member is removed.
    @Test
    void removeAllMembersOfAGroup() {
        String topic = Kit.newTopic("grp-removeall", 2);
        String group = Kit.unique("grp-removeall");
        Member m = activeMember(group, topic, 2, Map.of());
        try (Admin admin = Kit.admin()) {
            Kit.get(admin.removeMembersFromConsumerGroup(group, new RemoveMembersFromConsumerGroupOptions()).all());
            ConsumerGroupDescription d = Kit.get(admin.describeConsumerGroups(List.of(group)).all()).get(group);
            assertTrue(d.members().isEmpty(), "members: " + d.members().stream().map(MemberDescription::consumerId)
                    .collect(Collectors.toList()));
            assertEquals(GroupState.EMPTY, d.groupState());
        } finally {
            try {
                m.close();
            } catch (RuntimeException ignored) {
                // The removed member may learn it was fenced while closing.
            }
        }
    }
}
