# shellcheck shell=bash
# Shared by scripts/kafka-peer.sh and scripts/kafka-tool.sh (sourced, not run).
#
# kafka_classpath prints the classpath of the Apache Kafka jars named in
# scripts/kafka/pom.xml. The first call resolves them with Maven into the
# local Maven repository (~/.m2, or wherever Maven's settings put it) and
# writes the classpath to a cache file; later calls read that file and call
# no Maven at all, so a warm start costs one JVM and nothing more.
#
# The cache is $XDG_CACHE_HOME/tidemark-kafka (default ~/.cache/tidemark-kafka),
# one file per content of pom.xml: changing the pom (a new Kafka version) makes
# a new classpath, and a classpath whose jars have gone (~/.m2 cleaned) is
# resolved again. KAFKA_PEER_CACHE overrides the folder.

KAFKA_SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KAFKA_POM="$KAFKA_SCRIPTS_DIR/pom.xml"
KAFKA_CACHE="${KAFKA_PEER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tidemark-kafka}"

kafka_die() {
    echo "$(basename "$0"): $*" >&2
    exit 1
}

# The java to run: $JAVA_HOME/bin/java when JAVA_HOME is set, else the one on
# PATH. Kafka 4.x brokers and tools need Java 17 or newer.
kafka_java() {
    local java version major
    if [[ -n "${JAVA_HOME:-}" ]]; then
        java="$JAVA_HOME/bin/java"
    else
        java="$(command -v java || true)"
    fi
    if [[ -n "${JAVA_HOME:-}" && ! -x "$java" ]]; then
        kafka_die "JAVA_HOME is $JAVA_HOME but $java is not there"
    fi
    [[ -n "$java" && -x "$java" ]] ||
        kafka_die "no java found (set JAVA_HOME or put Java 17+ on PATH; on Debian: apt-get install openjdk-17-jdk-headless)"
    version="$("$java" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = //p')"
    major="${version%%.*}"
    [[ "$major" =~ ^[0-9]+$ && "$major" -ge 17 ]] ||
        kafka_die "$java is Java ${version:-of unknown version}; Apache Kafka 4.x needs Java 17 or newer (set JAVA_HOME)"
    echo "$java"
}

# True when every entry of the classpath in file $1 exists.
kafka_classpath_intact() {
    local entry
    local -a entries
    [[ -s "$1" ]] || return 1
    IFS=: read -r -a entries < "$1"
    for entry in "${entries[@]}"; do
        [[ -f "$entry" ]] || return 1
    done
}

kafka_classpath() {
    local key file log
    key="$(sha256sum "$KAFKA_POM" | cut -c1-16)"
    file="$KAFKA_CACHE/classpath-$key.txt"
    if kafka_classpath_intact "$file"; then
        cat "$file"
        return
    fi
    mkdir -p "$KAFKA_CACHE"
    # One resolution at a time: a test suite may start a peer and a tool at once.
    exec 9> "$KAFKA_CACHE/resolve.lock"
    flock 9
    if ! kafka_classpath_intact "$file"; then
        command -v mvn > /dev/null ||
            kafka_die "Maven is needed once to fetch Apache Kafka's jars (on Debian: apt-get install maven)"
        log="$KAFKA_CACHE/resolve-$key.log"
        echo "Fetching Apache Kafka's jars with Maven (once; log: $log) ..." >&2
        if ! mvn -B -q -f "$KAFKA_POM" dependency:build-classpath \
            -Dmdep.outputFile="$file.tmp" > "$log" 2>&1 < /dev/null; then
            tail -n 20 "$log" >&2
            kafka_die "Maven could not resolve the Kafka jars; see $log"
        fi
        mv "$file.tmp" "$file"
    fi
    exec 9>&-
    cat "$file"
}

# The JVM options Kafka's own bin/kafka-run-class.sh passes to every broker and
# tool, so that a run here behaves (and performs) like one from Kafka's
# distribution. KAFKA_JVM_PERFORMANCE_OPTS replaces them, as it does there.
kafka_jvm_performance_opts() {
    # shellcheck disable=SC2206,SC2034 # split on purpose; read by the caller
    KAFKA_JVM_OPTS=(${KAFKA_JVM_PERFORMANCE_OPTS:--server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true})
}
