"""The shared-key handshake from the client's side, written from the Forward Protocol
Specification v1 (HELO, PING, PONG with SHA-512 hex digests), independent of the server's code.
Usage: handshake.py HOST PORT SHARED_KEY USER PASSWORD EXPECT, EXPECT = ok | refused."""
import hashlib
import os
import socket
import struct
import sys

import msgpack

host, port, key, user, password, expect = sys.argv[1], int(sys.argv[2]), *sys.argv[3:7]
key, user, password = key.encode(), user.encode(), password.encode()
s = socket.create_connection((host, port), timeout=30)
u = msgpack.Unpacker(raw=True)


def recv_one():
    while True:
        for o in u:
            return o
        data = s.recv(4096)
        if not data:
            return None
        u.feed(data)


helo = recv_one()
assert helo[0] == b"HELO", helo
opts = helo[1]
nonce, auth_salt = opts[b"nonce"], opts[b"auth"]
assert opts[b"keepalive"] is True, opts
# A text salt (as Fluentd sends it, a str) so the server must accept str as well as bin.
salt = os.urandom(16).hex().encode()
hostname = b"sidecar-host"
digest = hashlib.sha512(salt + hostname + nonce + key).hexdigest()
pw_digest = hashlib.sha512(auth_salt + user + password).hexdigest() if auth_salt else ""
ping = ["PING", hostname.decode(), salt.decode(), digest, user.decode(), pw_digest]
s.sendall(msgpack.packb(ping, use_bin_type=True))
pong = recv_one()
assert pong[0] == b"PONG", pong
if expect == "refused":
    assert pong[1] is False, pong
    assert recv_one() is None, "the connection must be closed after a failed PING"
    print("refused")
    sys.exit(0)
assert pong[1] is True, pong
server_host = pong[3]
want = hashlib.sha512(salt + server_host + nonce + key).hexdigest().encode()
assert pong[4] == want, "the server's PONG digest does not prove it knows the key"
et = msgpack.ExtType(0, struct.pack(">II", 1796119200, 0))
s.sendall(msgpack.packb(["kube.shop.auth-0.app", et, {"log": "after-handshake"}, {"chunk": "hs-1"}], use_bin_type=True))
ack = recv_one()
assert ack == {b"ack": b"hs-1"}, ack
print("ok", server_host.decode())
