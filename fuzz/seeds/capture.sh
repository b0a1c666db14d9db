#!/usr/bin/env bash
# Captures client requests for the seed corpora: starts `tidemark dev`
# advertising a recording proxy (proxy.py) in front of it, drives
# kafka-python (drive.py, drive2.py) and the tidemark CLI (every codec)
# through the proxy, then writes fuzz/corpus/*/seed-* (make_seeds.py).
# Usage: fuzz/seeds/capture.sh [TIDEMARK_BINARY]  (default target/debug/tidemark)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${1:-$here/../../target/debug/tidemark}"
work="$(mktemp -d)"
broker_port=47311 proxy_port=47312
"$bin" dev --listen 127.0.0.1:$broker_port --data-dir "$work/data" --cores 1 \
    --set advertised.listeners=127.0.0.1:$proxy_port >"$work/broker.log" 2>&1 &
broker=$!
python3 "$here/proxy.py" $proxy_port $broker_port "$work/out" >"$work/proxy.log" 2>&1 &
proxy=$!
trap 'kill $proxy $broker 2>/dev/null || true' EXIT
sleep 3
bs=127.0.0.1:$proxy_port
python3 "$here/drive.py" $bs
python3 "$here/drive2.py" $bs
"$bin" topic create cli -b $bs --partitions 2
for z in none gzip snappy lz4 zstd; do
    seq 1 40 | sed "s/^/key\t$z-/" | "$bin" produce cli -b $bs --compression $z --key-separator $'\t' --batch-size 15
done
timeout 10 "$bin" consume cli -b $bs --from-beginning --max-messages 100 >/dev/null || true
timeout 15 "$bin" consume cli -b $bs --group cg --from-beginning --max-messages 50 >/dev/null || true
"$bin" group list -b $bs && "$bin" group describe cg -b $bs
"$bin" topic list -b $bs && "$bin" topic describe cli -b $bs
"$bin" topic delete cli -b $bs
rm -f "$here"/../corpus/*/seed-*
python3 "$here/make_seeds.py" "$work/out" "$work/data" "$here/.."
echo "seeds written; capture kept in $work"
