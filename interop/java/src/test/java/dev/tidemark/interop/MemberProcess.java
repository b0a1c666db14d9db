package dev.tidemark.interop;

import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;

/**
 * A group member in a JVM of its own, so a test can kill it without a goodbye (no LeaveGroup,
 * no more heartbeats) and watch the coordinator expire its session.
 * Arguments: group, topic, session timeout in ms. Prints "assigned N" after each assignment.
 */
public final class MemberProcess {
    private MemberProcess() {}

    public static void main(String[] args) {
        String group = args[0];
        String topic = args[1];
        int sessionMs = Integer.parseInt(args[2]);
        KafkaConsumer<String, String> c = Kit.consumer(group, Map.of(
                ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, sessionMs,
                ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, 500,
                ConsumerConfig.CLIENT_ID_CONFIG, "process-member",
                ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, Member.assignorClass("range")));
        c.subscribe(List.of(topic), new ConsumerRebalanceListener() {
            @Override
            public void onPartitionsRevoked(Collection<TopicPartition> partitions) {}

            @Override
            public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
                System.out.println("assigned " + c.assignment().size());
                System.out.flush();
            }
        });
        long deadline = System.currentTimeMillis() + 120_000;
        while (System.currentTimeMillis() < deadline) {
            c.poll(Duration.ofMillis(200));
        }
        c.close();
    }
}
