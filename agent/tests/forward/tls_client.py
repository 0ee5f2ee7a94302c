"""A forward client over TLS (Python's ssl module): sends one Message with a chunk and checks
the ack. Usage: tls_client.py HOST PORT CA CERT|- KEY|- MODE, MODE = ok | refused | plain."""
import socket
import ssl
import struct
import sys

import msgpack

host, port, ca, cert, key, mode = sys.argv[1], int(sys.argv[2]), *sys.argv[3:7]
req = msgpack.packb(["kube.shop.tls-0.app", msgpack.ExtType(0, struct.pack(">II", 1796119200, 0)),
                     {"log": "over-tls"}, {"chunk": "tls-1"}], use_bin_type=True)
raw = socket.create_connection((host, port), timeout=30)
if mode == "plain":
    raw.sendall(req)
    try:
        data = raw.recv(64)
    except ConnectionResetError:
        data = b""
    assert b"ack" not in data, data
    print("no ack in plain")
    sys.exit(0)
ctx = ssl.create_default_context(cafile=ca)
if cert != "-":
    ctx.load_cert_chain(cert, key)
try:
    s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    s.sendall(req)
    data = s.recv(64)
except (ssl.SSLError, ConnectionResetError, BrokenPipeError) as e:
    assert mode == "refused", f"TLS failed: {e}"
    print("refused")
    sys.exit(0)
if mode == "refused":
    assert data == b"", f"expected a refusal, got {data!r}"
    print("refused")
    sys.exit(0)
assert msgpack.unpackb(data, raw=False) == {"ack": "tls-1"}, data
print("acked")
