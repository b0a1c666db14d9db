#!/usr/bin/env bash
# Apache Kafka itself, one node, as the reference peer beside Tidemark.
#
#   scripts/kafka-peer.sh start PORT DATA_DIR [--sasl-ssl SASL_PORT] [key=value ...]
#   scripts/kafka-peer.sh stop DATA_DIR
#   scripts/kafka-peer.sh status DATA_DIR
#
# start runs Apache Kafka (the version in scripts/kafka/pom.xml) in KRaft
# combined mode: one process that is both broker and controller, listening for
# clients on 127.0.0.1:PORT. The first start fetches Kafka's jars with Maven
# (see scripts/kafka/lib.sh for the classpath cache) and formats DATA_DIR with
# Kafka's own StorageTool; later starts on the same DATA_DIR keep its topics.
# start returns once the broker answers a Kafka request (ApiVersions and
# Metadata, by Kafka's kafka-broker-api-versions tool), or fails with the log
# to read. Extra key=value arguments are broker settings added after ours
# (they win), e.g. group.initial.rebalance.delay.ms=0 or log.flush.interval.messages=1
# (an fsync after every append: the broker-wide form of the topic config
# flush.messages=1; a broker-level flush.messages would be ignored).
#
# --sasl-ssl SASL_PORT adds a SASL_SSL listener on 127.0.0.1:SASL_PORT, the
# secured broker the Java suite's SecurityTest expects: a PEM keystore signed
# by a test CA made with openssl in DATA_DIR/tls (ca.pem is the clients'
# truststore), PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512, Kafka's
# StandardAuthorizer (allow.everyone.if.no.acl.found left false) and a super
# user, KAFKA_PEER_ADMIN=name:password (default admin:admin-secret), whose
# SCRAM credentials StorageTool writes when it formats DATA_DIR (--add-scram)
# and whose PLAIN password is in the listener's PlainLoginModule JAAS entry
# (Kafka's PLAIN users live there, not in the SCRAM store). User:ANONYMOUS is
# a super user too: the controller and the PLAINTEXT listener (kept for the
# readiness probe) speak as it. The option must be given from the first
# start of a DATA_DIR (the admin is made at format time); DATA_DIR/secure.env
# then holds the SECURE_* variables of interop/java's SecurityTest.
#
# stop sends SIGTERM (Kafka shuts down cleanly), waits up to
# KAFKA_PEER_STOP_TIMEOUT seconds (default 60), then sends SIGKILL.
#
# What DATA_DIR holds:
#   server.properties   the broker's settings, written anew at each start
#   log4j2.properties   its logging settings (copied from scripts/kafka/)
#   peer.env            PORT, CONTROLLER_PORT, CLUSTER_ID of this peer
#   kafka.pid           the broker's process id while it runs
#   kraft-logs/         log.dirs: topic partitions and the KRaft metadata log
#   logs/server.log     Kafka's log (INFO and up)
#   logs/kafka.out      the JVM's console: warnings, errors, crashes
#   logs/gc.log         the JVM's GC log, as Kafka's start script writes it
#   logs/format.log     what StorageTool printed when DATA_DIR was formatted
#   logs/ready.log      what the readiness probe (kafka-broker-api-versions) printed
#   tls/, secure.env    with --sasl-ssl: the test CA, the broker's keystore, the
#                       client settings
#
# The controller listens on 127.0.0.1:PORT+1 when that port is free (else the
# next free one above it); the port chosen is kept in peer.env and used again.
#
# Environment: JAVA_HOME (Java 17 or newer; else java on PATH),
# KAFKA_HEAP_OPTS (default -Xmx1G -Xms1G, as Kafka's kafka-server-start.sh),
# KAFKA_JVM_PERFORMANCE_OPTS (default: those of Kafka's kafka-run-class.sh),
# KAFKA_PEER_START_TIMEOUT (seconds, default 120), KAFKA_PEER_STOP_TIMEOUT.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=kafka/lib.sh
source "$(dirname "$0")/kafka/lib.sh"

usage() {
    sed -n '4,6s/^# *//p' "$0" >&2
    exit 2
}

# The broker's SASL_SSL settings (--sasl-ssl): $1 DATA_DIR, $2 the port, $3
# the admin's name, $4 its password.
sasl_ssl_properties() {
    local data="$1" sport="$2" user="$3" password="$4" mechanism
    cat << EOF

# --sasl-ssl: a SASL_SSL listener on 127.0.0.1:$sport with a PEM keystore
# (DATA_DIR/tls, a test CA), PLAIN and SCRAM, and Kafka's authorizer. The
# super users: $user (SCRAM credentials from format time, PLAIN below) and
# ANONYMOUS (the controller listener and the PLAINTEXT one).
ssl.keystore.type=PEM
ssl.keystore.location=$data/tls/broker.pem
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$user="$password";
EOF
    for mechanism in scram-sha-256 scram-sha-512; do
        echo "listener.name.sasl_ssl.$mechanism.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;"
    done
    cat << EOF
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:$user;User:ANONYMOUS
EOF
}

# A test CA and the broker's PEM keystore (key and chain in one file) for
# localhost and 127.0.0.1, in $1/tls, made once.
make_tls() {
    local tls="$1/tls"
    [[ -f "$tls/broker.pem" && -f "$tls/ca.pem" ]] && return 0
    command -v openssl > /dev/null || kafka_die "--sasl-ssl needs openssl (apt-get install openssl)"
    mkdir -p "$tls"
    {
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=kafka-peer test CA" \
            -keyout "$tls/ca.key" -out "$tls/ca.pem" &&
            openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
                -keyout "$tls/broker.key" -out "$tls/broker.csr" &&
            printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$tls/san.ext" &&
            openssl x509 -req -in "$tls/broker.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" \
                -CAcreateserial -days 825 -extfile "$tls/san.ext" -out "$tls/broker.crt"
    } > "$tls/openssl.log" 2>&1 || kafka_die "openssl failed; see $tls/openssl.log"
    cat "$tls/broker.key" "$tls/broker.crt" > "$tls/broker.pem"
}

# Something accepts connections on 127.0.0.1:$1 (or has it bound, per ss).
port_in_use() {
    if (exec 3<> "/dev/tcp/127.0.0.1/$1") 2> /dev/null; then
        return 0
    fi
    if command -v ss > /dev/null; then
        [[ -n "$(ss -Htan "( sport = :$1 )" 2> /dev/null | grep -v TIME-WAIT || true)" ]]
        return
    fi
    return 1
}

# True while process $1 runs (a zombie left for a parent that never reaps it
# counts as gone).
alive() {
    local stat
    stat="$(cat "/proc/$1/stat" 2> /dev/null)" || return 1
    stat="${stat##*) }"
    [[ "${stat:0:1}" != Z ]]
}

# The pid of the peer that runs on DATA_DIR $1, or nothing. The pid file is
# trusted only if that process is a Kafka broker reading this DATA_DIR's
# server.properties (a stale file's pid may belong to anything by now).
peer_pid() {
    local pid cmdline
    [[ -f "$1/kafka.pid" ]] || return 0
    pid="$(< "$1/kafka.pid")"
    [[ "$pid" =~ ^[0-9]+$ ]] && alive "$pid" || return 0
    cmdline="$(tr '\0' ' ' < "/proc/$pid/cmdline" 2> /dev/null || true)"
    if [[ "$cmdline" == *" kafka.Kafka $1/server.properties"* ]]; then
        echo "$pid"
    fi
}

# Reads KEY=VALUE lines of peer.env into the variables PEER_<KEY>.
read_peer_env() {
    local key value
    PEER_PORT="" PEER_CONTROLLER_PORT="" PEER_CLUSTER_ID="" PEER_SASL_SSL_PORT=""
    [[ -f "$1/peer.env" ]] || return 0
    while IFS='=' read -r key value; do
        case "$key" in
            PORT) PEER_PORT="$value" ;;
            CONTROLLER_PORT) PEER_CONTROLLER_PORT="$value" ;;
            CLUSTER_ID) PEER_CLUSTER_ID="$value" ;;
            SASL_SSL_PORT) PEER_SASL_SSL_PORT="$value" ;;
        esac
    done < "$1/peer.env"
}

# A cluster id as Kafka's StorageTool random-uuid makes one: 16 random bytes,
# URL-safe base64 without padding, never starting with '-'.
new_cluster_id() {
    local id
    while :; do
        id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
        [[ "$id" == -* ]] || break
    done
    echo "$id"
}

# A free port for the controller near $1: $2 (the one recorded) if free, never
# $3 (the SASL_SSL port, when there is one).
choose_controller_port() {
    local port="$1" recorded="$2" sport="${3:-0}" p
    for p in $recorded $((port + 1)) $(seq $((port + 2)) $((port + 200))); do
        if ((p != port && p != sport && p <= 65535)) && ! port_in_use "$p"; then
            echo "$p"
            return
        fi
    done
    kafka_die "no free port for the controller near $port"
}

kafka_version() {
    sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$KAFKA_POM"
}

write_server_properties() {
    local data="$1" port="$2" cport="$3" sport="$4"
    shift 4
    local setting listeners="PLAINTEXT://127.0.0.1:$port" map="PLAINTEXT:PLAINTEXT"
    if [[ -n "$sport" ]]; then
        listeners+=",SASL_SSL://127.0.0.1:$sport"
        map+=",SASL_SSL:SASL_SSL"
    fi
    {
        cat << EOF
# Written by scripts/kafka-peer.sh at each start: edits here are lost (pass
# key=value arguments to start instead). Every setting not named here is
# Apache Kafka's own default. The ones named, and why:

# One process that is broker and controller at once, node 1, and the only
# voter of its KRaft quorum (a static voter set: the controller's address is
# read from here at each start, so its port may change between starts).
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
controller.listener.names=CONTROLLER

# Clients on 127.0.0.1:$port, the controller on 127.0.0.1:$cport, loopback
# only (Kafka's default listens on every interface at 9092). The map names
# CONTROLLER, which Kafka's default map does not.
listeners=$listeners,CONTROLLER://127.0.0.1:$cport
advertised.listeners=$listeners
listener.security.protocol.map=$map,CONTROLLER:PLAINTEXT

# Partitions and the metadata log under DATA_DIR (the default is /tmp/kafka-logs).
log.dirs=$data/kraft-logs

# There is one broker: the internal topics (consumer offsets, transaction
# state, share-group state) default to 3 replicas and a min ISR of 2, which
# one broker can never satisfy, so group coordination, transactions and share
# groups would fail. One replica each, as in Kafka's own single-node sample config.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1

# Left at Kafka's defaults on purpose: group.initial.rebalance.delay.ms (3000,
# as in Tidemark, so group timings compare; tests that want speed pass
# group.initial.rebalance.delay.ms=0), num.partitions (1),
# auto.create.topics.enable (true), the flush policy (the page cache, no fsync
# per write; pass log.flush.interval.messages=1 for the durable comparison).
EOF
        if [[ -n "$sport" ]]; then
            sasl_ssl_properties "$data" "$sport" "${ADMIN_USER:?}" "${ADMIN_PASSWORD:?}"
        fi
        if (($# > 0)); then
            echo
            echo "# Given to kafka-peer.sh start:"
            for setting in "$@"; do
                echo "$setting"
            done
        fi
    } > "$data/server.properties"
}

# True once Kafka has logged, from byte $2 of log $1 on (or anywhere in it,
# if it has been rolled over since), that its server started.
started_in_log() {
    local from="$2"
    [[ -f "$1" ]] || return 1
    (($(stat -c %s "$1") + 1 >= from)) || from=1
    tail -c +"$from" "$1" | grep -q 'Kafka Server started'
}

stop_pid() {
    local pid="$1" timeout="${KAFKA_PEER_STOP_TIMEOUT:-60}" deadline
    kill -TERM "$pid" 2> /dev/null || return 0
    deadline=$((SECONDS + timeout))
    while alive "$pid" && ((SECONDS < deadline)); do
        sleep 0.2
    done
    if alive "$pid"; then
        echo "kafka-peer: pid $pid still running ${timeout}s after SIGTERM; sending SIGKILL" >&2
        kill -KILL "$pid" 2> /dev/null || true
        deadline=$((SECONDS + 10))
        while alive "$pid" && ((SECONDS < deadline)); do
            sleep 0.2
        done
    fi
}

cmd_start() {
    (($# >= 2)) || usage
    local port="$1" data="$2" sport=""
    shift 2
    if [[ "${1:-}" == --sasl-ssl ]]; then
        (($# >= 2)) || usage
        sport="$2"
        shift 2
        [[ "$sport" =~ ^[0-9]+$ ]] && ((sport >= 1 && sport <= 65535 && sport != port)) ||
            kafka_die "SASL_PORT must be a port number other than PORT, not '$sport'"
    fi
    local admin="${KAFKA_PEER_ADMIN:-admin:admin-secret}"
    ADMIN_USER="${admin%%:*}" ADMIN_PASSWORD="${admin#*:}"
    # The JAAS entry and StorageTool's --add-scram quote neither.
    [[ "$admin" == ?*:?* && "$admin" != *[\"\;,\[\]=\ ]* ]] ||
        kafka_die "KAFKA_PEER_ADMIN must be name:password without quotes, semicolons, commas, brackets, = or spaces"
    local setting pid cport cluster_id java cp started version
    if ! [[ "$port" =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
        kafka_die "PORT must be a port number, not '$port'"
    fi
    for setting in "$@"; do
        [[ "$setting" == ?*=* ]] || kafka_die "broker settings are key=value, not '$setting'"
    done
    mkdir -p "$data/logs"
    data="$(cd "$data" && pwd)"
    pid="$(peer_pid "$data")"
    [[ -z "$pid" ]] || kafka_die "a peer already runs on $data (pid $pid); stop it first: $0 stop $data"
    port_in_use "$port" && kafka_die "127.0.0.1:$port is already in use"
    [[ -n "$sport" ]] && port_in_use "$sport" && kafka_die "127.0.0.1:$sport is already in use"

    started=$SECONDS
    java="$(kafka_java)"
    cp="$(kafka_classpath)"
    version="$(kafka_version)"

    # The short-lived JVMs of this script (StorageTool, the readiness probe):
    # a small heap and the quick client compiler, as they live for seconds.
    local -a probe_opts=(-Xmx256M -XX:+UseSerialGC -XX:TieredStopAtLevel=1
        -Dlog4j2.configurationFile="$KAFKA_SCRIPTS_DIR/tools-log4j2.properties")

    read_peer_env "$data"
    cport="$(choose_controller_port "$port" "$PEER_CONTROLLER_PORT" "$sport")"
    cluster_id="${PEER_CLUSTER_ID:-$(new_cluster_id)}"
    if [[ -f "$data/kraft-logs/meta.properties" && "${sport:+secured}" != "${PEER_SASL_SSL_PORT:+secured}" ]]; then
        kafka_die "$data was formatted ${PEER_SASL_SSL_PORT:+with}${PEER_SASL_SSL_PORT:-without} --sasl-ssl (its users are made at format time): start it the same way, or use a new DATA_DIR"
    fi
    [[ -z "$sport" ]] || make_tls "$data"
    printf 'PORT=%s\nCONTROLLER_PORT=%s\nCLUSTER_ID=%s\nSASL_SSL_PORT=%s\n' "$port" "$cport" "$cluster_id" "$sport" > "$data/peer.env"
    write_server_properties "$data" "$port" "$cport" "$sport" "$@"
    cp "$KAFKA_SCRIPTS_DIR/server-log4j2.properties" "$data/log4j2.properties"

    # Format on first start only: meta.properties marks a formatted log dir.
    if [[ ! -f "$data/kraft-logs/meta.properties" ]]; then
        local -a scram=()
        if [[ -n "$sport" ]]; then
            scram=(--add-scram "SCRAM-SHA-256=[name=$ADMIN_USER,password=$ADMIN_PASSWORD]"
                --add-scram "SCRAM-SHA-512=[name=$ADMIN_USER,password=$ADMIN_PASSWORD]")
        fi
        if ! "$java" "${probe_opts[@]}" -cp "$cp" kafka.tools.StorageTool format --cluster-id "$cluster_id" \
            --config "$data/server.properties" "${scram[@]}" > "$data/logs/format.log" 2>&1 < /dev/null; then
            cat "$data/logs/format.log" >&2
            kafka_die "formatting $data/kraft-logs failed (see $data/logs/format.log)"
        fi
    fi

    local -a heap
    # shellcheck disable=SC2206 # word splitting of the user's options is intended
    heap=(${KAFKA_HEAP_OPTS:--Xmx1G -Xms1G})
    kafka_jvm_performance_opts
    rm -f "$data/kafka.pid"
    # Where this start's lines begin in server.log (it is appended to).
    local log_from=1
    [[ -f "$data/logs/server.log" ]] && log_from=$(($(stat -c %s "$data/logs/server.log") + 1))
    echo "=== kafka-peer.sh start $port $data at $(date -u '+%F %T') UTC" >> "$data/logs/kafka.out"
    # setsid: the broker leaves the caller's session, so a Ctrl-C meant for the
    # caller does not reach it; it writes its own pid before becoming java.
    # shellcheck disable=SC2016 # $$ and $1 belong to the inner shell
    setsid bash -c 'echo $$ > "$1"; shift; exec "$@"' kafka-peer "$data/kafka.pid" \
        "$java" "${heap[@]}" "${KAFKA_JVM_OPTS[@]}" \
        "-Xlog:gc*:file=$data/logs/gc.log:time,tags:filecount=10,filesize=100M" \
        -Dkafka.logs.dir="$data/logs" -Dlog4j2.configurationFile="$data/log4j2.properties" \
        -cp "$cp" kafka.Kafka "$data/server.properties" \
        >> "$data/logs/kafka.out" 2>&1 < /dev/null &

    local timeout="${KAFKA_PEER_START_TIMEOUT:-120}" deadline
    deadline=$((SECONDS + timeout))
    while [[ ! -s "$data/kafka.pid" ]] && ((SECONDS < deadline)); do
        sleep 0.1
    done
    pid="$(cat "$data/kafka.pid" 2> /dev/null || true)"
    [[ -n "$pid" ]] || kafka_die "the broker did not start; see $data/logs/kafka.out"

    # Ready when a real client gets answers: ApiVersions, then Metadata naming
    # this broker (which Kafka does only once the broker is registered and
    # unfenced). The probe is a JVM, which would compete with the broker's own
    # startup for the CPU, so it waits until Kafka has logged that it started
    # (or, should that line change, until the port has been open for 20 s).
    local open_since=""
    while :; do
        if ! alive "$pid"; then
            tail -n 30 "$data/logs/kafka.out" >&2
            kafka_die "the broker exited during startup; see $data/logs/server.log and $data/logs/kafka.out"
        fi
        if [[ -z "$open_since" ]] && port_in_use "$port"; then
            open_since=$SECONDS
        fi
        if [[ -n "$open_since" ]] && { started_in_log "$data/logs/server.log" "$log_from" || ((SECONDS - open_since >= 20)); } &&
            timeout $((deadline - SECONDS > 10 ? deadline - SECONDS : 10)) "$java" "${probe_opts[@]}" \
                -cp "$cp" org.apache.kafka.tools.BrokerApiVersionsCommand \
                --bootstrap-server "127.0.0.1:$port" > "$data/logs/ready.log" 2>&1 < /dev/null; then
            break
        fi
        if ((SECONDS >= deadline)); then
            stop_pid "$pid"
            tail -c +"$log_from" "$data/logs/server.log" 2> /dev/null | tail -n 30 >&2 || true
            kafka_die "the broker did not answer on 127.0.0.1:$port within ${timeout}s, so it was stopped; see $data/logs/server.log and $data/logs/kafka.out"
        fi
        sleep 0.5
    done
    echo "Apache Kafka $version on 127.0.0.1:$port (controller 127.0.0.1:$cport, pid $pid), data in $data, log in $data/logs/server.log; ready in $((SECONDS - started))s"
    if [[ -n "$sport" ]]; then
        printf 'SECURE_BOOTSTRAP=127.0.0.1:%s\nSECURE_TRUSTSTORE=%s\nSECURE_ADMIN_USER=%s\nSECURE_ADMIN_PASSWORD=%s\n' \
            "$sport" "$data/tls/ca.pem" "$ADMIN_USER" "$ADMIN_PASSWORD" > "$data/secure.env"
        echo "SASL_SSL on 127.0.0.1:$sport (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512; truststore $data/tls/ca.pem; super user $ADMIN_USER); its settings in $data/secure.env"
    fi
}

cmd_stop() {
    (($# == 1)) || usage
    local data="$1" pid
    [[ -d "$data" ]] || kafka_die "no such directory: $data"
    data="$(cd "$data" && pwd)"
    pid="$(peer_pid "$data")"
    if [[ -z "$pid" ]]; then
        rm -f "$data/kafka.pid"
        echo "no Kafka peer running on $data"
        return
    fi
    stop_pid "$pid"
    rm -f "$data/kafka.pid"
    echo "stopped the Kafka peer on $data (pid $pid)"
}

cmd_status() {
    (($# == 1)) || usage
    local data pid
    data="$(cd "$1" 2> /dev/null && pwd)" || kafka_die "no such directory: $1"
    pid="$(peer_pid "$data")"
    read_peer_env "$data"
    if [[ -n "$pid" ]]; then
        echo "running: pid $pid, 127.0.0.1:$PEER_PORT (controller 127.0.0.1:$PEER_CONTROLLER_PORT), cluster $PEER_CLUSTER_ID"
    else
        echo "not running"
        return 1
    fi
}

(($# >= 1)) || usage
command="$1"
shift
case "$command" in
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    status) cmd_status "$@" ;;
    *) usage ;;
esac
