#!/usr/bin/env bash
# Apache Kafka and Tidemark under the same loads on this machine, in one run,
# with fio's ceiling beside them, and one table of medians and ratios:
#
#   scripts/side-by-side.sh            the full run (about 25 minutes with 3 rounds)
#   SIDE_BY_SIDE_QUICK=1 scripts/side-by-side.sh    a smoke run (small loads, 1 round)
#   scripts/side-by-side.sh --table RESULTS_TSV      the table of an earlier run again
#
# Three brokers, each started fresh (new data dir) once per round, one after
# another, in an order that rotates each round so that neither side always
# runs on a warmer or a tireder disk:
#   kafka        Apache Kafka (scripts/kafka-peer.sh) with Kafka's defaults: the
#                page cache, no fsync per write
#   kafka-flush  the same with log.flush.interval.messages=1 (the broker-wide
#                form of the topic config flush.messages=1): fsync after every
#                append, before the answer; the like-for-like durable case
#   tidemark     `tidemark dev` (release build) with its defaults: fdatasync
#                before acknowledging acks=all, written-through O_DIRECT
# and in each round, before the brokers, fio's 1 MiB sequential O_DIRECT write
# at iodepth 4 on the same filesystem, the ceiling each produce figure is
# printed as a share of.
#
# The loads, each driven by two clients, Kafka's Java tools
# (kafka-producer-perf-test, kafka-consumer-perf-test) and librdkafka
# (examples/rdkafka_load.rs), each into a topic of its own with 1 partition:
#   produce-1k-acks1    SIDE_BY_SIDE_MB of 1 KiB records, acks=1
#   produce-1k-acksall  the same with acks=all
#   produce-100-acks1   SIDE_BY_SIDE_MB of 100-byte records, acks=1
#     (the producers: linger.ms 5, batch.size 1,000,000, no compression;
#      everything else the client's default, so the Java producer is
#      idempotent at acks=all and not at acks=1, librdkafka never)
#   latency             10,000 records/s of 1 KiB for SIDE_BY_SIDE_LATENCY_S
#                       seconds, acks=all, the clients' defaults otherwise;
#                       p50/p99/p99.9 of send-to-acknowledgement over all but
#                       the first SIDE_BY_SIDE_WARMUP_S seconds (both clients
#                       leave those out; the Java producer's own JIT makes
#                       its first seconds queue up, against either broker)
#   consume             a backlog of SIDE_BY_SIDE_BACKLOG_MB of 1 KiB records
#                       (produced by librdkafka), read from the start by each
#                       client in turn, right after it was written
# and for each produce and consume load the broker's CPU-seconds (user +
# system, all its threads, from /proc) per GB moved; the broker's resident
# memory at the end of its round (and its peak).
#
# Environment (defaults in brackets):
#   SIDE_BY_SIDE_ROUNDS [3]  SIDE_BY_SIDE_MB [1000]  SIDE_BY_SIDE_BACKLOG_MB [2000]
#   SIDE_BY_SIDE_LATENCY_S [20]  SIDE_BY_SIDE_WARMUP_S [5]  SIDE_BY_SIDE_WORK [/tmp/tidemark-side-by-side]
#   SIDE_BY_SIDE_PORT [19700]: Kafka on PORT (its controller PORT+1), Tidemark PORT+10
#   SIDE_BY_SIDE_PROFILE [0]: 1 records a cpu-clock profile (perf, 499 Hz, call
#     graphs) of each broker during the first round's produce-1k-acks1 librdkafka
#     load, and writes the top of each to WORK/profile-BROKER.txt (Kafka's JIT
#     frames are named by the JVM's perf map, written with jcmd before it stops)
#   SIDE_BY_SIDE_BROKERS ["kafka kafka-flush tidemark"]: a subset, to try one side
#
# MB is 10^6 bytes of record values. The machine has 2 cores: the broker and
# its client share them, as does the JVM that runs Kafka's tools, so the
# figures are those of one small box, not a broker's limit. Results (one line
# per measurement) stay in WORK/results.tsv, logs in WORK/logs/; the brokers'
# data dirs are removed after each broker's round.
set -euo pipefail
# A failure inside $(...) stops the run too.
shopt -s inherit_errexit

repo="$(cd "$(dirname "$0")/.." && pwd)"
quick="${SIDE_BY_SIDE_QUICK:-0}"
if [[ "$quick" == 1 ]]; then
    rounds="${SIDE_BY_SIDE_ROUNDS:-1}" produce_mb="${SIDE_BY_SIDE_MB:-100}"
    backlog_mb="${SIDE_BY_SIDE_BACKLOG_MB:-200}" latency_s="${SIDE_BY_SIDE_LATENCY_S:-4}"
    warmup_s="${SIDE_BY_SIDE_WARMUP_S:-1}"
else
    rounds="${SIDE_BY_SIDE_ROUNDS:-3}" produce_mb="${SIDE_BY_SIDE_MB:-1000}"
    backlog_mb="${SIDE_BY_SIDE_BACKLOG_MB:-2000}" latency_s="${SIDE_BY_SIDE_LATENCY_S:-20}"
    warmup_s="${SIDE_BY_SIDE_WARMUP_S:-5}"
fi
work="${SIDE_BY_SIDE_WORK:-/tmp/tidemark-side-by-side}"
kafka_port="${SIDE_BY_SIDE_PORT:-19700}"
tidemark_port=$((kafka_port + 10))
profile="${SIDE_BY_SIDE_PROFILE:-0}"
read -r -a brokers <<< "${SIDE_BY_SIDE_BROKERS:-kafka kafka-flush tidemark}"
latency_rate=10000

tidemark="$repo/target/release/tidemark"
load="$repo/target/release/examples/rdkafka_load"
results="$work/results.tsv"
logs="$work/logs"
clock_ticks="$(getconf CLK_TCK)"

say() { echo "side-by-side: $*" >&2; }
die() {
    say "$*"
    exit 1
}

# --- setup -------------------------------------------------------------------

need_fio() {
    command -v fio > /dev/null && return
    if [[ "$(id -u)" == 0 ]] && command -v apt-get > /dev/null; then
        say "installing fio (Debian package)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q fio > "$logs/fio-install.log" 2>&1 ||
            die "apt-get install fio failed; see $logs/fio-install.log"
    else
        die "fio is needed: apt-get install fio"
    fi
}

build() {
    say "building tidemark and examples/rdkafka_load (release)"
    (cd "$repo" && cargo build --release --bin tidemark --example rdkafka_load) > "$logs/build.log" 2>&1 ||
        die "cargo build failed; see $logs/build.log"
    # Kafka's jars (fetched by Maven the first time) before anything is timed.
    "$repo/scripts/kafka-tool.sh" kafka-producer-perf-test --help > "$logs/kafka-tools-fetch.log" 2>&1 || true
}

# --- measuring -----------------------------------------------------------------

# Appends one measurement: round, broker, load, client, metric, value.
record() {
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >> "$results"
}

# utime + stime of process $1 (every thread), in clock ticks.
cpu_ticks() {
    local stat
    stat="$(< "/proc/$1/stat")"
    stat="${stat##*) }"
    # shellcheck disable=SC2086 # the fields of stat are split on purpose
    set -- $stat
    echo $((${12} + ${13}))
}

# Resident memory of process $1 in MB: field $2 of /proc/PID/status (VmRSS or VmHWM).
resident_mb() {
    awk -v key="$2:" '$1 == key { printf "%.0f", $2 / 1024 }' "/proc/$1/status"
}

# A JSON number field of one line of rdkafka_load's output.
json_field() {
    python3 -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"
}

fio_ceiling() {
    local round="$1" out
    say "round $round: fio, 1 MiB sequential O_DIRECT writes, iodepth 4"
    mkdir -p "$work/fio"
    out="$(fio --name=ceiling --directory="$work/fio" --rw=write --bs=1M --direct=1 \
        --ioengine=libaio --iodepth=4 --size=2G --end_fsync=1 --output-format=json 2> "$logs/fio-$round.err")" ||
        die "fio failed; see $logs/fio-$round.err"
    rm -rf "$work/fio"
    echo "$out" > "$logs/fio-$round.json"
    record "$round" fio ceiling fio mb_per_s \
        "$(python3 -c 'import json, sys; print(round(json.load(sys.stdin)["jobs"][0]["write"]["bw_bytes"] / 1e6, 1))' <<< "$out")"
}

# --- brokers -------------------------------------------------------------------

broker_pid="" bootstrap=""

start_broker() {
    local broker="$1" round="$2" data="$work/data-$1"
    rm -rf "$data"
    mkdir -p "$data"
    case "$broker" in
        kafka | kafka-flush)
            local -a settings=()
            [[ "$broker" == kafka-flush ]] && settings=(log.flush.interval.messages=1)
            "$repo/scripts/kafka-peer.sh" start "$kafka_port" "$data" "${settings[@]}" \
                > "$logs/$broker-$round-start.log" 2>&1 ||
                die "Kafka did not start; see $logs/$broker-$round-start.log"
            broker_pid="$(< "$data/kafka.pid")"
            bootstrap="127.0.0.1:$kafka_port"
            ;;
        tidemark)
            "$tidemark" dev --listen "127.0.0.1:$tidemark_port" --data-dir "$data" \
                > "$logs/tidemark-$round.log" 2>&1 < /dev/null &
            broker_pid=$!
            bootstrap="127.0.0.1:$tidemark_port"
            local tries
            for tries in $(seq 1 300); do
                grep -q 'tidemark: listening on' "$logs/tidemark-$round.log" && break
                kill -0 "$broker_pid" 2> /dev/null || die "tidemark exited; see $logs/tidemark-$round.log"
                sleep 0.1
            done
            ((tries < 300)) || die "tidemark did not start; see $logs/tidemark-$round.log"
            ;;
    esac
}

stop_broker() {
    local broker="$1" data="$work/data-$1"
    case "$broker" in
        kafka | kafka-flush) "$repo/scripts/kafka-peer.sh" stop "$data" > /dev/null ;;
        tidemark)
            kill -TERM "$broker_pid" 2> /dev/null || true
            wait "$broker_pid" 2> /dev/null || true
            ;;
    esac
    rm -rf "$data"
}

create_topic() {
    "$tidemark" topic create "$1" --partitions 1 -b "$bootstrap" > /dev/null 2>> "$logs/topics.log" ||
        die "creating topic $1 on $bootstrap failed; see $logs/topics.log"
}

# --- the clients -----------------------------------------------------------------

kafka_tool() {
    "$repo/scripts/kafka-tool.sh" "$@"
}

# Runs a producer load with one client; prints MB/s.
# java_produce TOPIC RECORDS RECORD_BYTES ACKS LOG
java_produce() {
    local out line
    out="$(kafka_tool kafka-producer-perf-test --topic "$1" --num-records "$2" --record-size "$3" \
        --throughput -1 --bootstrap-server "$bootstrap" --command-property "acks=$4" linger.ms=5 \
        batch.size=1000000 compression.type=none 2> "$5.err")" || die "kafka-producer-perf-test failed; see $5.err"
    echo "$out" > "$5"
    # The last line: "N records sent, R records/sec (M MB/sec), ..."
    line="$(grep 'records sent' <<< "$out" | tail -n 1)"
    [[ -n "$line" ]] || die "no summary from kafka-producer-perf-test; see $5"
    awk -v bytes="$3" '{ gsub(",", ""); printf "%.1f", $4 * bytes / 1e6 }' <<< "$line"
}

rdkafka_produce() {
    local out
    out="$("$load" produce "$bootstrap" "$1" "$2" "$3" "$4" 2> "$5.err")" || die "rdkafka_load produce failed; see $5.err"
    echo "$out" > "$5"
    json_field "$out" mb_per_s
}

# Prints "P50 P99 P999" in milliseconds.
java_latency() {
    local out line
    out="$(kafka_tool kafka-producer-perf-test --topic "$1" --num-records "$2" --record-size 1024 \
        --warmup-records $((latency_rate * warmup_s)) --throughput "$latency_rate" \
        --bootstrap-server "$bootstrap" --command-property acks=all 2> "$3.err")" ||
        die "kafka-producer-perf-test failed; see $3.err"
    echo "$out" > "$3"
    # "N steady state records sent, ... 2 ms 50th, 4 ms 95th, 6 ms 99th, 9 ms 99.9th."
    line="$(grep 'steady state records sent' <<< "$out" | tail -n 1)"
    [[ -n "$line" ]] || die "no summary from kafka-producer-perf-test; see $3"
    sed -E 's/.* ([0-9.]+) ms 50th, [0-9.]+ ms 95th, ([0-9.]+) ms 99th, ([0-9.]+) ms 99.9th.*/\1 \2 \3/' <<< "$line"
}

rdkafka_latency() {
    local out
    out="$("$load" latency "$bootstrap" "$1" "$latency_rate" "$latency_s" 1024 all \
        $((latency_rate * warmup_s)) 2> "$3.err")" ||
        die "rdkafka_load latency failed; see $3.err"
    echo "$out" > "$3"
    echo "$(json_field "$out" p50_ms) $(json_field "$out" p99_ms) $(json_field "$out" p999_ms)"
}

java_consume() {
    local out
    out="$(kafka_tool kafka-consumer-perf-test --bootstrap-server "$bootstrap" --topic "$1" \
        --num-records "$2" --timeout 60000 2> "$3.err")" || die "kafka-consumer-perf-test failed; see $3.err"
    echo "$out" > "$3"
    # The header names the columns; fetch.MB.sec excludes joining the group.
    python3 - "$out" << 'EOF'
import sys
lines = [line for line in sys.argv[1].splitlines() if line.strip()]
header = [name.strip() for name in lines[-2].split(",")]
values = [value.strip() for value in lines[-1].split(",")]
row = dict(zip(header, values))
# The tool's MB is 2^20 bytes.
print(round(float(row["fetch.MB.sec"]) * 1.048576, 1))
EOF
}

rdkafka_consume() {
    local out
    out="$("$load" consume "$bootstrap" "$1" "$2" 2> "$3.err")" || die "rdkafka_load consume failed; see $3.err"
    echo "$out" > "$3"
    json_field "$out" mb_per_s
}

# --- one broker's round -------------------------------------------------------------

# Runs "$@" (which prints MB/s) while counting the broker's CPU; records both.
# measured ROUND BROKER LOAD CLIENT MEGABYTES COMMAND...
measured() {
    local round="$1" broker="$2" name="$3" client="$4" megabytes="$5"
    shift 5
    local before after mb_per_s
    before="$(cpu_ticks "$broker_pid")"
    mb_per_s="$("$@")"
    after="$(cpu_ticks "$broker_pid")"
    record "$round" "$broker" "$name" "$client" mb_per_s "$mb_per_s"
    record "$round" "$broker" "$name" "$client" cpu_s_per_gb \
        "$(awk -v t=$((after - before)) -v hz="$clock_ticks" -v mb="$megabytes" 'BEGIN { printf "%.2f", t / hz / (mb / 1000) }')"
    say "round $round $broker $name $client: $mb_per_s MB/s"
}

# perf record of the broker while "$@" runs, when asked for.
profiled() {
    local round="$1" broker="$2"
    shift 2
    if [[ "$profile" != 1 || "$round" != 1 ]]; then
        "$@"
        return
    fi
    perf record -F 499 -g -p "$broker_pid" -o "$work/perf-$broker.data" > /dev/null 2> "$logs/perf-$broker.log" &
    local perf_pid=$!
    "$@"
    kill -INT "$perf_pid" 2> /dev/null || true
    wait "$perf_pid" 2> /dev/null || true
}

# Writes the top of each recorded profile (after the JVM wrote its perf map).
report_profile() {
    local broker="$1"
    [[ -f "$work/perf-$broker.data" ]] || return 0
    perf report -i "$work/perf-$broker.data" --no-children --sort symbol -g none --percent-limit 0.5 --stdio \
        2> /dev/null | grep -v '^$' | head -n 80 > "$work/profile-$broker.txt" || true
    perf report -i "$work/perf-$broker.data" --no-children --sort symbol --percent-limit 2 --stdio \
        2> /dev/null | grep -v '^$' | head -n 600 > "$work/profile-$broker-callers.txt" || true
    perf report -i "$work/perf-$broker.data" --no-children --sort dso -g none --stdio 2> /dev/null |
        grep -v '^$' | head -n 40 > "$work/profile-$broker-dso.txt" || true
    rm -f "$work/perf-$broker.data"
}

run_broker_round() {
    local round="$1" broker="$2" records
    say "round $round: $broker"
    start_broker "$broker" "$round"
    local -a loads=("produce-1k-acks1 1024 1" "produce-1k-acksall 1024 all" "produce-100-acks1 100 1")
    local spec name bytes acks client
    for spec in "${loads[@]}"; do
        read -r name bytes acks <<< "$spec"
        records=$((produce_mb * 1000000 / bytes))
        for client in java rdkafka; do
            create_topic "$name-$client"
            if [[ "$name" == produce-1k-acks1 && "$client" == rdkafka ]]; then
                profiled "$round" "$broker" measured "$round" "$broker" "$name" "$client" "$produce_mb" \
                    "${client}_produce" "$name-$client" "$records" "$bytes" "$acks" "$logs/$broker-$round-$name-$client.out"
            else
                measured "$round" "$broker" "$name" "$client" "$produce_mb" \
                    "${client}_produce" "$name-$client" "$records" "$bytes" "$acks" "$logs/$broker-$round-$name-$client.out"
            fi
        done
    done

    local p50 p99 p999 percentiles
    for client in java rdkafka; do
        create_topic "latency-$client"
        percentiles="$("${client}_latency" "latency-$client" $((latency_rate * latency_s)) \
            "$logs/$broker-$round-latency-$client.out")"
        read -r p50 p99 p999 <<< "$percentiles"
        record "$round" "$broker" latency "$client" p50_ms "$p50"
        record "$round" "$broker" latency "$client" p99_ms "$p99"
        record "$round" "$broker" latency "$client" p999_ms "$p999"
        say "round $round $broker latency $client: p50 $p50 ms, p99 $p99 ms, p99.9 $p999 ms"
    done

    records=$((backlog_mb * 1000000 / 1024))
    create_topic backlog
    rdkafka_produce backlog "$records" 1024 1 "$logs/$broker-$round-backlog.out" > /dev/null
    for client in java rdkafka; do
        measured "$round" "$broker" consume "$client" "$((records * 1024 / 1000000))" \
            "${client}_consume" backlog "$records" "$logs/$broker-$round-consume-$client.out"
    done

    record "$round" "$broker" memory broker resident_mb "$(resident_mb "$broker_pid" VmRSS)"
    record "$round" "$broker" memory broker peak_resident_mb "$(resident_mb "$broker_pid" VmHWM)"
    if [[ "$profile" == 1 && "$round" == 1 && "$broker" == kafka* ]]; then
        # The JIT's symbols for perf, in /tmp/perf-PID.map.
        jcmd "$broker_pid" Compiler.perfmap > /dev/null 2>&1 || true
    fi
    stop_broker "$broker"
    [[ "$profile" == 1 && "$round" == 1 ]] && report_profile "$broker"
    return 0
}

# --- the table ---------------------------------------------------------------------

summarise() {
    python3 - "$results" "${brokers[*]}" << 'EOF'
import statistics, sys
from collections import defaultdict

path, brokers = sys.argv[1], sys.argv[2].split()
values = defaultdict(list)
seen_rounds = set()
for line in open(path):
    round_, broker, load, client, metric, value = line.rstrip("\n").split("\t")
    values[(broker, load, client, metric)].append(float(value))
    seen_rounds.add(round_)
rounds = len(seen_rounds)

def median(broker, load, client, metric):
    got = values.get((broker, load, client, metric))
    return statistics.median(got) if got else None

names = {"kafka": "Kafka", "kafka-flush": "Kafka flush.messages=1", "tidemark": "Tidemark"}
fio = median("fio", "ceiling", "fio", "mb_per_s")
others = [b for b in brokers if b != "tidemark"]
header = ["load", "client"] + [names[b] for b in brokers]
if "tidemark" in brokers:
    header += ["Tidemark ÷ " + names[b] for b in others]
print("| " + " | ".join(header) + " |")
print("|" + "---|" * len(header))

def number(value, unit):
    if value is None:
        return "–"
    if unit == "MB/s":
        text = f"{value:.0f}"
        if fio:
            text += f" ({100 * value / fio:.0f}%)"
        return text
    return f"{value:.2f}" if value < 10 else f"{value:.0f}"

def row(label, load, client, metric, unit, higher_is_better):
    cells = [median(b, load, client, metric) for b in brokers]
    line = [label, client] + [number(c, unit if load.startswith("produce") else "") for c in cells]
    if "tidemark" in brokers:
        ours = cells[brokers.index("tidemark")]
        for b in others:
            theirs = cells[brokers.index(b)]
            if ours is None or not theirs:
                line.append("–")
            else:
                ratio = ours / theirs
                line.append(f"{ratio:.2f}" if ratio >= 0.1 else f"{ratio:.1g}")
    print("| " + " | ".join(line) + " |")

loads = [("produce-1k-acks1", "produce 1 KiB, acks=1"),
         ("produce-1k-acksall", "produce 1 KiB, acks=all"),
         ("produce-100-acks1", "produce 100 B, acks=1"),
         ("consume", "consume the backlog")]
for load, label in loads:
    for client in ("java", "rdkafka"):
        row(label + ", MB/s", load, client, "mb_per_s", "MB/s", True)
for client in ("java", "rdkafka"):
    for metric, label in (("p50_ms", "p50"), ("p99_ms", "p99"), ("p999_ms", "p99.9")):
        row(f"latency {label} at 10k/s, ms", "latency", client, metric, "", False)
for load, label in loads:
    for client in ("java", "rdkafka"):
        row(label + ", broker CPU-s/GB", load, client, "cpu_s_per_gb", "", False)
row("broker resident memory at the end, MB", "memory", "broker", "resident_mb", "", False)
row("broker peak resident memory, MB", "memory", "broker", "peak_resident_mb", "", False)
print()
print(f"Medians of {rounds} round(s). fio 1 MiB sequential O_DIRECT write, iodepth 4: "
      + (f"{fio:.0f} MB/s (runs: {', '.join(f'{v:.0f}' for v in values[('fio', 'ceiling', 'fio', 'mb_per_s')])}); "
         "each produce figure's share of it in brackets." if fio else "not measured."))
print("Ratios are Tidemark's figure over the other's: above 1 is better for MB/s, below 1 for latency, CPU and memory.")
EOF
}

# --- main --------------------------------------------------------------------------

main() {
    if [[ "${1:-}" == --table ]]; then
        results="${2:?--table needs the results.tsv of a run}"
        summarise
        return
    fi
    mkdir -p "$logs"
    : > "$results"
    need_fio
    build
    local round i broker count=${#brokers[@]}
    say "$rounds round(s): produce $produce_mb MB per load, a backlog of $backlog_mb MB, latency for ${latency_s}s (${warmup_s}s warm-up); work in $work"
    for round in $(seq 1 "$rounds"); do
        fio_ceiling "$round"
        for i in $(seq 0 $((count - 1))); do
            broker="${brokers[$(((i + round - 1) % count))]}"
            run_broker_round "$round" "$broker"
        done
    done
    summarise | tee "$work/table.md"
    say "table in $work/table.md, every measurement in $results"
}

main "$@"
