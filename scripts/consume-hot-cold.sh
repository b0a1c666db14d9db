#!/bin/bash
# Consume of a 2 GB backlog, hot (right after producing it, on the same
# broker) and cold (after a restart), with one or more builds:
#   scripts/consume-hot-cold.sh ROUNDS target/release/tidemark [OTHER_BUILD ...]
# Prints one line per build and round. Run after `cargo build --release`.
rounds=${1:?rounds}; shift
work=${WORK:-/tmp/tidemark-consume}; port=${PORT:-19621}
mkdir -p "$work"
summary() {
  python3 -c "import json,sys; d=json.load(sys.stdin); print('MB/s', round(d['mb_per_s']), 'cpu/GB', round(d['broker_cpu_s_per_gb'], 2))"
}
start() { # binary
  "$1" dev --listen 127.0.0.1:$port --data-dir "$work/data" --cores 2 > "$work/broker.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do grep -q "tidemark: listening on" "$work/broker.log" && break; sleep 0.1; done
}
for round in $(seq 1 "$rounds"); do
  for bin in "$@"; do
    rm -rf "$work/data"
    start "$bin"
    "$bin" bench produce -b 127.0.0.1:$port --create-topic --topic c --records 1953125 \
      --record-size 1024 --acks 1 --json > /dev/null 2>&1
    hot=$("$bin" bench consume -b 127.0.0.1:$port --topic c --broker-pid $pid --json 2>/dev/null | summary)
    rss=$(awk '/VmRSS/ {print int($2/1024) " MB"}' /proc/$pid/status)
    kill $pid; wait $pid 2>/dev/null
    start "$bin"
    cold=$("$bin" bench consume -b 127.0.0.1:$port --topic c --broker-pid $pid --json 2>/dev/null | summary)
    kill $pid; wait $pid 2>/dev/null
    echo "round $round $bin: hot $hot (resident after: $rss) | cold $cold"
  done
done
rm -rf "$work/data"
