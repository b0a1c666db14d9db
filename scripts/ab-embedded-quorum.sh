#!/bin/bash
# A/B: tidemark dev with its embedded quorum against the standalone mode
# (--no-quorum), produce 1 GB of 1 KiB records. The standalone mode was
# removed after commit 602ee84: build that commit and point T_STANDALONE at
# its binary to repeat the comparison (the bench client is always $T).
WORK=${WORK:-/tmp/tidemark-ab}; mkdir -p "$WORK"
T=${T:-target/release/tidemark}
T_STANDALONE=${T_STANDALONE:?the tidemark binary of a release with --no-quorum (602ee84 or older)}
run() { # mode acks
  local dir=$WORK/data-$1-$2 port=19500
  rm -rf $dir
  local broker=$T extra=""
  if [ "$1" != quorum ]; then broker=$T_STANDALONE; extra="--no-quorum"; fi
  $broker dev --listen 127.0.0.1:$port --data-dir $dir --cores 2 $extra > $WORK/broker-$1.log 2>&1 &
  local pid=$!
  for i in $(seq 1 100); do grep -q "tidemark: listening on" $WORK/broker-$1.log && break; sleep 0.1; done
  out=$($T bench produce -b 127.0.0.1:$port --create-topic --topic ab --records 976562 --record-size 1024 --acks $2 --broker-pid $pid --json 2>/dev/null)
  kill $pid; wait $pid 2>/dev/null
  rm -rf $dir
  echo "$1 acks=$2 $out"
}
for round in 1 2 3; do
  for acks in 1 all; do run quorum $acks; run noquorum $acks; done
done
