"""Forward protocol suite against a running agent, built byte for byte from the Forward
Protocol Specification v1/v1.5 with the independent `msgpack` encoder (PyPI).

Usage: protocol.py HOST PORT. Prints one line per check; exits non-zero on the first failure.
The Rust test that starts the agent reads the index afterwards (exactly-once, identities).
"""
import gzip
import socket
import struct
import sys

import msgpack
import zstandard

HOST, PORT = sys.argv[1], int(sys.argv[2])
T0 = 1796119200  # 2026-12-01T10:00:00Z
TAG = "kube.shop.web-0.side"


def event_time(sec, nsec=0):
    return msgpack.ExtType(0, struct.pack(">II", sec, nsec))


def pack(obj):
    return msgpack.packb(obj, use_bin_type=True)


def connect():
    s = socket.create_connection((HOST, PORT), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_acks(s, n):
    u = msgpack.Unpacker(raw=False)
    got = []
    while len(got) < n:
        data = s.recv(65536)
        if not data:
            raise AssertionError(f"connection closed after {len(got)} of {n} acks")
        u.feed(data)
        for o in u:
            got.append(o)
    return got


def expect_ack(s, chunk):
    (a,) = read_acks(s, 1)
    assert a == {"ack": chunk}, f"expected ack {chunk!r}, got {a!r}"


def send_ack(payload, chunk, s=None):
    own = s is None
    s = s or connect()
    s.sendall(payload)
    expect_ack(s, chunk)
    if own:
        s.close()
    print(f"ok {chunk}")


def entry(sec, rec, nsec=0):
    return pack([event_time(sec, nsec), rec])


def expect_closed(payload, what):
    s = connect()
    try:
        s.sendall(payload)
    except OSError:
        pass
    s.settimeout(30)
    try:
        data = s.recv(1024)
    except ConnectionResetError:
        data = b""
    assert data == b"", f"{what}: expected the connection closed, got {data!r}"
    s.close()
    print(f"closed {what}")


# 1. Message mode, EventTime as fixext8.
send_ack(pack([TAG, event_time(T0, 500_000_000), {"log": "message-eventtime\n"}, {"chunk": "c-msg"}]), "c-msg")
# 2. Message mode, integer seconds.
send_ack(pack([TAG, T0 + 1, {"log": "message-int"}, {"chunk": "c-int"}]), "c-int")
# 3. Forward mode.
send_ack(pack([TAG, [[event_time(T0 + 2), {"log": "forward-1"}], [event_time(T0 + 2, 1), {"log": "forward-2", "stream": "stderr"}]], {"chunk": "c-fwd"}]), "c-fwd")
# 4. PackedForward with a bin carrier.
packed = entry(T0 + 3, {"log": "packed-bin-1"}) + entry(T0 + 3, {"log": "packed-bin-2"})
send_ack(pack([TAG, packed, {"chunk": "c-bin", "size": 2}]), "c-bin")
# 5. PackedForward with a str carrier (str 32 header written by hand; the bytes are not UTF-8).
packed = entry(T0 + 4, {"log": "packed-str-1"}) + entry(T0 + 4, {"log": "packed-str-2"})
raw = b"\x93" + pack(TAG) + b"\xdb" + struct.pack(">I", len(packed)) + packed + pack({"chunk": "c-str"})
send_ack(raw, "c-str")
# 6. CompressedPackedForward, gzip, two concatenated members.
payload = gzip.compress(entry(T0 + 5, {"log": "gzip-1"})) + gzip.compress(entry(T0 + 5, {"log": "gzip-2"}))
send_ack(pack([TAG, payload, {"chunk": "c-gz", "compressed": "gzip", "size": 2}]), "c-gz")
# 7. CompressedPackedForward, zstd.
payload = zstandard.ZstdCompressor().compress(entry(T0 + 6, {"log": "zstd-1"}) + entry(T0 + 6, {"log": "zstd-2"}))
send_ack(pack([TAG, payload, {"chunk": "c-zstd", "compressed": "zstd"}]), "c-zstd")
# 8. v1.5 entry metadata form [[time, {metadata}], record].
send_ack(pack([TAG, [[[event_time(T0 + 7), {"otel": 1}], {"log": "v15-metadata"}]], {"chunk": "c-v15"}]), "c-v15")
# 9. EventTime in the ext8 encoding (0xc7, length 8, type 0), written by hand.
et = b"\xc7\x08\x00" + struct.pack(">II", T0 + 8, 42)
raw = b"\x94" + pack(TAG) + et + pack({"log": "ext8-time"}) + pack({"chunk": "c-ext8"})
send_ack(raw, "c-ext8")
# 10. A nil heartbeat, then a request on the same connection.
s = connect()
s.sendall(b"\xc0")
send_ack(pack([TAG, event_time(T0 + 9), {"log": "after-heartbeat"}, {"chunk": "c-hb"}]), "c-hb", s)
s.close()
# 11. One request split across many TCP segments (TCP_NODELAY, one byte per send).
s = connect()
for b in pack([TAG, event_time(T0 + 10), {"log": "split-request"}, {"chunk": "c-split"}]):
    s.sendall(bytes([b]))
expect_ack(s, "c-split")
s.close()
print("ok c-split")
# 12. Many requests back to back on one connection, acks read afterwards.
s = connect()
s.sendall(b"".join(pack([TAG, event_time(T0 + 11, i), {"log": f"pipelined-{i:02}"}, {"chunk": f"c-p{i}"}]) for i in range(50)))
acks = read_acks(s, 50)
assert acks == [{"ack": f"c-p{i}"} for i in range(50)], acks
s.close()
print("ok pipelined")
# 13. A resent chunk (its ack was "lost"): acknowledged again, stored once.
send_ack(pack([TAG, event_time(T0, 500_000_000), {"log": "message-eventtime\n"}, {"chunk": "c-msg"}]), "c-msg")
send_ack(pack([TAG, [[event_time(T0 + 2), {"log": "forward-1"}], [event_time(T0 + 2, 1), {"log": "forward-2", "stream": "stderr"}]], {"chunk": "c-fwd"}]), "c-fwd")
# 14. A record without a message key is stored whole as compact JSON.
send_ack(pack([TAG, event_time(T0 + 12), {"level": "warn", "n": 7}, {"chunk": "c-json"}]), "c-json")
# 15. Identity from Fluent Bit's kubernetes map when the tag does not match.
k8s = {"namespace_name": "shop", "pod_name": "web-1", "container_name": "app"}
send_ack(pack(["tail.0", event_time(T0 + 13), {"log": "from-k8s-map", "kubernetes": k8s}, {"chunk": "c-k8s"}]), "c-k8s")
# 16. Neither: namespace default, pod = the tag, container forward.
send_ack(pack(["plain.tag", event_time(T0 + 14), {"message": "fallback"}, {"chunk": "c-fb"}]), "c-fb")
# 17. No chunk option: stored without an ack (checked by the test through the index).
s = connect()
s.sendall(pack([TAG, event_time(T0 + 15), {"log": "no-ack"}]))
s.sendall(pack([TAG, event_time(T0 + 15, 1), {"log": "after-no-ack"}, {"chunk": "c-after"}]))
expect_ack(s, "c-after")
s.close()
# 18. The UDP heartbeat is answered with 0x00.
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(30)
u.sendto(b"\x00", (HOST, PORT))
data, _ = u.recvfrom(16)
assert data == b"\x00", data
print("ok udp heartbeat")

# Bad input: each closes its connection and is counted; a half-sent request meanwhile does
# not stall others.
slow = connect()
slow.sendall(pack([TAG, event_time(T0), {"log": "x"}])[:5])
expect_closed(b"\x93\xa3tag\xc6\x40\x00\x00\x00", "frame_too_large")
bomb = gzip.compress(b"\x00" * (8 << 20))
expect_closed(pack([TAG, bomb, {"compressed": "gzip", "chunk": "c-bomb"}]), "decompressed_too_large")
expect_closed(b"\xc1", "undecodable")
expect_closed(pack([123, event_time(T0), {"log": "x"}, {"chunk": "c-bad"}]), "wrong_type")
expect_closed(pack([TAG, "not-a-time", {"log": "x"}, {"chunk": "c-bad2"}]), "wrong_type entry time")
expect_closed(pack([TAG, b"\x93\x01", {"compressed": "lz4", "chunk": "c-bad3"}]), "bad_compression")
send_ack(pack([TAG, event_time(T0 + 16), {"log": "while-a-slow-client-waits"}, {"chunk": "c-slow"}]), "c-slow")
slow.close()
print("protocol suite passed")
