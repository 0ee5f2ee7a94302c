"""Sends one chunk and never reads its ack (as if the ack were lost).
Usage: lost_ack.py HOST PORT MODE, MODE = send | resend: resend reads and checks the ack."""
import socket
import struct
import sys
import time

import msgpack

host, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
T0 = 1796119200
entries = b"".join(
    msgpack.packb([msgpack.ExtType(0, struct.pack(">II", T0, i)), {"log": f"chunk-{i:03}"}])
    for i in range(200)
)
req = msgpack.packb(["kube.shop.lost-0.app", entries, {"chunk": "lost-ack-chunk", "size": 200}], use_bin_type=True)
s = socket.create_connection((host, port), timeout=30)
s.sendall(req)
if mode == "resend":
    u = msgpack.Unpacker(raw=False)
    while True:
        data = s.recv(4096)
        if not data:
            raise SystemExit("closed before the ack")
        u.feed(data)
        for o in u:
            assert o == {"ack": "lost-ack-chunk"}, o
            print("acked")
            raise SystemExit(0)
else:
    print("sent")
    sys.stdout.flush()
    # Hold the connection open without reading until the test kills the agent.
    time.sleep(120)
