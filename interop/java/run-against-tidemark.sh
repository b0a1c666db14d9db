#!/usr/bin/env bash
# Starts a Tidemark of its own (tidemark dev, fresh data dir, a free port),
# runs the Java interop tests against it with run-tests.sh, stops it and
# removes its data dir.
#
#   interop/java/run-against-tidemark.sh [TIDEMARK_BINARY] [mvn args...]
#
# TIDEMARK_BINARY defaults to target/release/tidemark of this repository.
# TIDEMARK_KNOWN_FAILURES=skip leaves out the tests that document known
# Tidemark bugs (see README.md); by default they run, and fail.
# The exit code is run-tests.sh's.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
bin="${1:-$repo/target/release/tidemark}"
[ $# -gt 0 ] && shift
if [ ! -x "$bin" ]; then
    echo "no Tidemark binary at $bin (cargo build --release first)" >&2
    exit 2
fi

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
data="$(mktemp -d /tmp/tidemark-java-interop.XXXXXX)"
log="$data.log"
ulimit -l unlimited 2>/dev/null || ulimit -l "$(ulimit -H -l)" 2>/dev/null || true
"$bin" dev --listen "127.0.0.1:$port" --data-dir "$data/data" > "$log" 2>&1 &
pid=$!
stop() {
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    rm -rf "$data" "$log"
}
trap stop EXIT

for _ in $(seq 1 300); do
    grep -q "listening on .*127.0.0.1:$port" "$log" 2>/dev/null && break
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "Tidemark exited before listening:" >&2
        cat "$log" >&2
        exit 1
    fi
    sleep 0.1
done
if ! grep -q "listening on .*127.0.0.1:$port" "$log"; then
    echo "Tidemark did not listen on 127.0.0.1:$port within 30 s:" >&2
    tail -20 "$log" >&2
    exit 1
fi
echo "java interop: Tidemark $("$bin" --version 2>/dev/null || echo "($bin)") on 127.0.0.1:$port"

"$here/run-tests.sh" "127.0.0.1:$port" "$@"
rc=$?
if [ $rc -ne 0 ]; then
    echo "java interop: Tidemark's log (last lines):"
    tail -20 "$log"
fi
exit $rc
