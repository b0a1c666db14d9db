# A recording TCP proxy: client -> broker bytes are split into Kafka frames
# and each frame body written to OUT/<api>-v<ver>-<n>; each connection's raw
# stream (first 64 KiB) to OUT/streams/<n>.
import os, socket, struct, sys, threading
listen, upstream, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
os.makedirs(out + "/streams", exist_ok=True)
lock = threading.Lock(); counter = [0]
def nxt():
    with lock:
        counter[0] += 1; return counter[0]
def pump(src, dst, record):
    buf = b""; raw = b""
    cid = nxt()
    try:
        while True:
            d = src.recv(65536)
            if not d: break
            dst.sendall(d)
            if record:
                if len(raw) < 65536: raw += d
                buf += d
                while len(buf) >= 4:
                    n = struct.unpack(">i", buf[:4])[0]
                    if len(buf) < 4 + n: break
                    body = buf[4:4+n]; buf = buf[4+n:]
                    key, ver = struct.unpack(">hh", body[:4])
                    with open(f"{out}/{key}-v{ver}-{nxt()}", "wb") as f: f.write(body)
    except OSError: pass
    finally:
        if record and raw:
            with open(f"{out}/streams/{cid}", "wb") as f: f.write(raw[:65536])
        for s in (src, dst):
            try: s.shutdown(socket.SHUT_RDWR)
            except OSError: pass
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", listen)); srv.listen(64)
while True:
    c, _ = srv.accept()
    u = socket.create_connection(("127.0.0.1", upstream))
    threading.Thread(target=pump, args=(c, u, True), daemon=True).start()
    threading.Thread(target=pump, args=(u, c, False), daemon=True).start()
