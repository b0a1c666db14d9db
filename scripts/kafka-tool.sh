#!/usr/bin/env bash
# Runs one of Apache Kafka's command-line tools by the name of its script in
# Kafka's bin/ (with or without .sh), against any Kafka-compatible broker:
#
#   scripts/kafka-tool.sh kafka-topics --bootstrap-server 127.0.0.1:9092 --list
#   scripts/kafka-tool.sh kafka-run-class CLASS ARGS...   any main class in the jars
#   scripts/kafka-tool.sh --list                           the names known here
#
# The arguments after the name go to the tool unchanged. The jars are those of
# scripts/kafka-peer.sh (same Kafka version, same classpath cache: see
# scripts/kafka/lib.sh), so the first run may fetch them with Maven.
# The tool logs warnings and errors to standard error; its own output is on
# standard output. As in Kafka's scripts, the heap is 512 MB for the clients
# that move data (console, perf-test and verifiable producers and consumers)
# and 256 MB for the rest; KAFKA_HEAP_OPTS and KAFKA_JVM_PERFORMANCE_OPTS
# replace those options, JAVA_HOME picks the Java (17 or newer).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=kafka/lib.sh
source "$(dirname "$0")/kafka/lib.sh"

# Script name -> main class and heap, as in Kafka's bin/*.sh.
declare -A tools=(
    [kafka-acls]="org.apache.kafka.tools.AclCommand 256M"
    [kafka-broker-api-versions]="org.apache.kafka.tools.BrokerApiVersionsCommand 256M"
    [kafka-client-metrics]="org.apache.kafka.tools.ClientMetricsCommand 256M"
    [kafka-cluster]="org.apache.kafka.tools.ClusterTool 256M"
    [kafka-configs]="org.apache.kafka.tools.ConfigCommand 256M"
    [kafka-console-consumer]="org.apache.kafka.tools.consumer.ConsoleConsumer 512M"
    [kafka-console-producer]="org.apache.kafka.tools.ConsoleProducer 512M"
    [kafka-console-share-consumer]="org.apache.kafka.tools.consumer.ConsoleShareConsumer 512M"
    [kafka-consumer-groups]="org.apache.kafka.tools.consumer.group.ConsumerGroupCommand 256M"
    [kafka-consumer-perf-test]="org.apache.kafka.tools.ConsumerPerformance 512M"
    [kafka-delegation-tokens]="org.apache.kafka.tools.DelegationTokenCommand 256M"
    [kafka-delete-records]="org.apache.kafka.tools.DeleteRecordsCommand 256M"
    [kafka-dump-log]="org.apache.kafka.tools.DumpLogSegments 256M"
    [kafka-e2e-latency]="org.apache.kafka.tools.EndToEndLatency 256M"
    [kafka-features]="org.apache.kafka.tools.FeatureCommand 256M"
    [kafka-get-offsets]="org.apache.kafka.tools.GetOffsetShell 256M"
    [kafka-groups]="org.apache.kafka.tools.GroupsCommand 256M"
    [kafka-jmx]="org.apache.kafka.tools.JmxTool 256M"
    [kafka-leader-election]="org.apache.kafka.tools.LeaderElectionCommand 256M"
    [kafka-log-dirs]="org.apache.kafka.tools.LogDirsCommand 256M"
    [kafka-metadata-quorum]="org.apache.kafka.tools.MetadataQuorumCommand 256M"
    [kafka-producer-perf-test]="org.apache.kafka.tools.ProducerPerformance 512M"
    [kafka-reassign-partitions]="org.apache.kafka.tools.reassign.ReassignPartitionsCommand 256M"
    [kafka-replica-verification]="org.apache.kafka.tools.ReplicaVerificationTool 256M"
    [kafka-share-consumer-perf-test]="org.apache.kafka.tools.ShareConsumerPerformance 512M"
    [kafka-share-groups]="org.apache.kafka.tools.consumer.group.ShareGroupCommand 256M"
    [kafka-storage]="kafka.tools.StorageTool 256M"
    [kafka-streams-application-reset]="org.apache.kafka.tools.StreamsResetter 512M"
    [kafka-streams-groups]="org.apache.kafka.tools.streams.StreamsGroupCommand 256M"
    [kafka-topics]="org.apache.kafka.tools.TopicCommand 256M"
    [kafka-transactions]="org.apache.kafka.tools.TransactionsCommand 256M"
    [kafka-verifiable-consumer]="org.apache.kafka.tools.VerifiableConsumer 512M"
    [kafka-verifiable-producer]="org.apache.kafka.tools.VerifiableProducer 512M"
    [kafka-verifiable-share-consumer]="org.apache.kafka.tools.VerifiableShareConsumer 512M"
)

known_names() {
    printf '%s\n' "${!tools[@]}" kafka-run-class | sort | sed 's/^/  /'
}

usage() {
    sed -n '4,6s/^# *//p' "$0" >&2
    echo "Tools:" >&2
    known_names >&2
    exit 2
}

(($# >= 1)) || usage
name="${1%.sh}"
shift
case "$name" in
    --list | -l)
        known_names
        exit 0
        ;;
    -h | --help) usage ;;
    kafka-run-class)
        (($# >= 1)) || kafka_die "kafka-run-class needs a class name"
        class="$1" heap=256M
        shift
        ;;
    *)
        if [[ -z "${tools[$name]+set}" ]]; then
            {
                echo "kafka-tool.sh: unknown tool '$name'. Known tools:"
                known_names
            } >&2
            exit 2
        fi
        read -r class heap <<< "${tools[$name]}"
        ;;
esac

java="$(kafka_java)"
cp="$(kafka_classpath)"
# shellcheck disable=SC2206 # word splitting of the user's options is intended
heap_opts=(${KAFKA_HEAP_OPTS:--Xmx$heap})
kafka_jvm_performance_opts
exec "$java" "${heap_opts[@]}" "${KAFKA_JVM_OPTS[@]}" \
    -Dlog4j2.configurationFile="$KAFKA_SCRIPTS_DIR/tools-log4j2.properties" \
    -cp "$cp" "$class" "$@"
