"""Writes the seed corpora fuzz/corpus/<target>/seed-* from a capture.

A capture (see capture.sh) is a directory of client request frames, one
file per frame body named <api key>-v<version>-<n>, raw client streams under
streams/, and the broker's data dir (segments, the quorum's Raft log).

    python3 make_seeds.py CAPTURE_DIR DATA_DIR FUZZ_DIR
"""
import glob, json, os, struct, sys, zlib

cap, data, fuzz = sys.argv[1:4]
def out(target, name, body):
    d = os.path.join(fuzz, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(body)

# request: every captured frame body; at most 3 per API and version, the
# smallest ones (the corpus stays small, the fuzzer grows its own).
frames = {}
for path in sorted(glob.glob(os.path.join(cap, "*-v*-*"))):
    key = os.path.basename(path).rsplit("-", 1)[0]
    frames.setdefault(key, []).append(open(path, "rb").read())
for key, bodies in sorted(frames.items()):
    for i, body in enumerate(sorted(set(bodies), key=len)[:3]):
        out("request", f"{key}-{i}", body)

# frame: a few raw client streams (length-prefixed frames back to back),
# cut to 4 KiB, behind the target's two mode bytes (small limit).
streams = sorted(glob.glob(os.path.join(cap, "streams", "*")))
for i, path in enumerate(streams[:6]):
    raw = open(path, "rb").read()[:4096]
    out("frame", f"stream-{i}", bytes([0x0e, 0xff]) + raw)
# and one frame of 1.5 MiB in the run-length mode (limit 2 MiB).
big = 3 << 19
out("frame", "large", bytes([8 * 16 + 1, 0]) + bytes([3]) + struct.pack(">i", big)
    + bytes([0x80 + 95, ord("x")]))

# batch: each record batch inside captured Produce requests (uncompressed
# and every codec), flags 0 and 1 (require_keys), and whole segments cut to
# 16 KiB as fetched data (flag 8).
def batches(buf):
    i = 0
    while i + 61 <= len(buf):
        length = struct.unpack(">i", buf[i + 8:i + 12])[0]
        if buf[i + 16] == 2 and buf[i:i + 8] == bytes(8) and 49 <= length <= len(buf) - i - 12:
            yield buf[i:i + 12 + length]
            i += 12 + length
        else:
            i += 1
n = 0
seen = set()
for key, bodies in sorted(frames.items()):
    if not key.startswith("0-"):
        continue
    for body in bodies:
        for b in batches(body):
            attrs = struct.unpack(">h", b[21:23])[0]
            codec = attrs & 7
            if (codec, len(b) // 256) in seen:
                continue
            seen.add((codec, len(b) // 256))
            out("batch", f"codec{codec}-{n}", bytes([0]) + b)
            out("batch", f"codec{codec}-{n}-keys", bytes([1]) + b)
            n += 1
segments = [p for p in sorted(glob.glob(os.path.join(data, "*", "*.log"))) if os.path.getsize(p)]
for i, path in enumerate(segments[:8]):
    out("batch", f"fetched-{i}", bytes([8 + 2 * (i % 2)]) + open(path, "rb").read()[:16384])

# quorum: the Raft log's entries as AppendEntries, each command as a Write,
# and one of every other request, as frames (mode 0) and as bodies (mode 1).
entries = []
log = open(os.path.join(data, "__quorum", "raft.log"), "rb").read()
i = 0
while i + 8 <= len(log):
    length = struct.unpack(">I", log[i:i + 4])[0]
    entries.append(json.loads(log[i + 8:i + 8 + length]))
    i += 8 + length
vote = {"leader_id": {"term": 1, "node_id": 1}, "committed": True}
requests = [
    {"AppendEntries": {"vote": vote, "prev_log_id": None, "entries": entries[:4], "leader_commit": entries[3]["log_id"] if len(entries) > 3 else None}},
    {"AppendEntries": {"vote": vote, "prev_log_id": entries[-1]["log_id"], "entries": [], "leader_commit": entries[-1]["log_id"]}},
    {"Vote": {"vote": {"leader_id": {"term": 2, "node_id": 2}, "committed": False}, "last_log_id": entries[-1]["log_id"]}},
    {"RegisterBroker": {"info": {"broker_id": 2, "host": "127.0.0.1", "port": 9093, "rack": "r1", "incarnation": "ce090cb0-cb00-4d55-a2bc-8c240687fcfc"}}},
    {"Heartbeat": {"broker_id": 1}},
    "Read",
    {"Watch": {"from_revision": 3, "timeout_ms": 1000}},
    "Status",
]
for e in entries:
    if isinstance(e["payload"], dict) and "Normal" in e["payload"]:
        requests.append({"Write": e["payload"]["Normal"]})
# Commands the capture did not make.
for command in [
    {"ExpireBroker": {"broker_id": 2}},
    {"AlterPartition": {"topic": "t", "partition": 0, "leader_id": 1, "leader_epoch": 0, "partition_epoch": 0, "new_isr": [1, 2]}},
    {"CreateTopic": {"name": "x", "partitions": 2, "replication_factor": 3, "configs": {"cleanup.policy": "compact", "unclean.leader.election.enable": "true"}, "topic_id": None}},
]:
    requests.append({"Write": {"expected_revision": 7, "command": command}})
stream = b""
for n, request in enumerate(requests):
    body = json.dumps({"auth": "0123456789abcdef", "request": request}, separators=(",", ":")).encode()
    out("quorum", f"body-{n}", b"\x01" + body)
    stream += struct.pack(">I", len(body)) + body
out("quorum", "stream", b"\x00" + stream)
