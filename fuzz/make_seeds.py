#!/usr/bin/env python3
"""Writes the committed seed corpora of the fuzz targets into seeds/<target>/ (a few small files
each; libFuzzer grows its own corpus in corpus/<target>/ from them). Run from anywhere:
    python3 fuzz/make_seeds.py
The structured targets (line_merger, active_recovery, sealed_read) read their input through
`arbitrary::Unstructured`: a few leading bytes choose the mode and sizes, the rest is content."""
import gzip
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
SEEDS = os.path.join(HERE, "seeds")


def put(target, name, data):
    d = os.path.join(SEEDS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def mp_str(b):
    """A MessagePack str (fixstr or str8), written by hand so the seeds need no package."""
    b = b.encode() if isinstance(b, str) else b
    return (bytes([0xA0 | len(b)]) if len(b) < 32 else bytes([0xD9, len(b)])) + b


def mp_bin(b):
    return b"\xc6" + struct.pack(">I", len(b)) + b


def event_time(s, ns):
    return b"\xd7\x00" + struct.pack(">II", s, ns)


def fwd_entry(i, meta=False):
    record = b"\x82" + mp_str("log") + mp_str(f"line {i}") + mp_str("stream") + mp_str("stdout")
    t = event_time(1700000000 + i, i * 1000)
    if meta:
        t = b"\x92" + t + b"\x81" + mp_str("trace") + mp_str("t1")
    return b"\x92" + t + record


# A zstd frame of one entry, made once with the zstandard package (level 1).
ZSTD_ENTRY = bytes.fromhex("28b52ffd201291000092d7006553f1000000007b81a36c6f67a17a")


JSON_LINES = [
    r'{"log":"GET /healthz 200\n","stream":"stdout","time":"2024-05-01T12:00:00.123456789Z"}',
    r'{"log":"first fragment without newline","stream":"stderr","time":"2024-05-01T12:00:01Z"}',
    r'{"log":"caf\u00e9 \"q\" \\ \t\u2028 \ud83d\ude00\n","stream":"stdout","time":"2024-05-01T14:00:00.5+02:00"}',
    r'{"log":"","stream":"stdout","attrs":{"a":[1,{"b":"}"}]},"time":"2024-05-01T12:00:00Z"}',
    '\x00\x00\x00ut line","stream":"stdout","time":"2024-05-01T12:00:00Z"}',
]
CRI_LINES = [
    "2024-05-01T12:00:00.123456789Z stdout F GET /healthz 200",
    "2024-05-01T12:00:00.1Z stderr P first half ",
    "2024-05-01T14:00:00+02:00 stdout F:extra content with  spaces",
    "2024-05-01T12:00:00Z stdout F",
    "1969-12-31T23:59:60.999999999-00:00 stderr F leap",
]


def main():
    if os.path.isdir(SEEDS):
        shutil.rmtree(SEEDS)
    for i, l in enumerate(JSON_LINES):
        put("json_line", f"line{i}", l)
    for i, l in enumerate(CRI_LINES):
        put("cri_line", f"line{i}", l)

    # line_merger: [format bool][long ratio][max_line][pieces count][piece lengths...] content
    json_file = (
        JSON_LINES[0] + "\n" + JSON_LINES[1] + "\n"
        + r'{"log":"second fragment\n","stream":"stderr","time":"2024-05-01T12:00:01Z"}' + "\n"
        + "not json\n" + JSON_LINES[2] + "\n" + '{"log":"unfinished'
    )
    cri_file = "\n".join(CRI_LINES[:4]) + "\n2024-05-01T12:00:00.2Z stderr F second half\n"
    put("line_merger", "json", b"\x01\x00\x20\x04\x07\x30\x01\xff" + json_file.encode())
    put("line_merger", "cri", b"\x00\x00\x10\x03\x11\x02\x40" + cri_file.encode())
    put("line_merger", "cri_long", b"\x00\x07\x50\x00\x30\x20" + b"2024-05-01T12:00:00Z stdout P " + b"x" * 40)
    put("line_merger", "json_long", b"\x01\x07\x50\x00\x30\x20" + b'{"log":"' + b"y" * 40)

    # active_recovery / sealed_read: [mode][sizes][records...][damage]
    rec = bytes(range(256))
    put("active_recovery", "flip", b"\x02\x08" + rec[:200] + b"\x00\x10\x00\x55")
    put("active_recovery", "cut", b"\x02\x10" + rec[50:250] + b"\x06\x40\x00")
    put("active_recovery", "garbage", b"\x00\x01" + b"\x01" + b"\x00" * 30 + b"RNLACT01" + rec[:64])
    put("sealed_read", "flip", b"\x02\x00\x80\x20" + rec + b"\x01\x00\x02\x99")
    put("sealed_read", "cut", b"\x02\x01\x00\x30" + rec + b"\x06\x00\x01")
    put("sealed_read", "garbage", b"\x00\x00\x40\x01" + rec[:40] + b"\x01RNLSEG01" + b"\x00" * 72)

    with open(os.path.join(HERE, "..", "config", "examples", "runnel.yaml"), "rb") as f:
        put("config_load", "example", f.read())
    put("config_load", "small", "index: { max_disk_bytes: 2GiB, max_age: 1h30m }\nhttp:\n  listen: \"127.0.0.1:2020\"\n")
    put("config_load", "interpolate", "node_name: ${NODE_NAME:-node-$$1}\ndata_dir: /tmp/$$x\n# ${NOT_READ}\n")
    put("config_load", "huge", "inputs: { rescan_interval: 18446744073709551615 }\nindex: { max_age: 213503982334601d, max_disk_bytes: 16777216TiB }\n")
    put("config_load", "sinks", "sinks:\n  elasticsearch:\n    enabled: true\n    endpoints: [\"https://es:9200\"]\n    retry: { initial: 500ms, max: 30s }\n    parse_json: message\n")

    put("logs_query", "full", "pod=web-1&namespace=shop&container=nginx&sinceTime=2024-05-01T12%3A00%3A00Z&untilTime=2024-05-01T13:00:00.5%2B02:00&tailLines=10&limitBytes=100&timestamps=true&follow=1")
    put("logs_query", "since", "pod=a+b%20c&sinceSeconds=3600&previous")
    put("logs_query", "bad", "pod=%zz&tailLines=-1&%41=1")

    # forward_decode: [read length byte] then requests as a client sends them.
    tag = mp_str("kube.shop.web-0.app")
    chunk = b"\x81" + mp_str("chunk") + mp_str("p8n9gmxTQVC8/nh2wlKKeQ==")
    message = b"\x94" + tag + event_time(1700000000, 5) + b"\x81" + mp_str("log") + mp_str("hi") + chunk
    forward = b"\x92" + tag + b"\x92" + fwd_entry(1) + fwd_entry(2, meta=True)
    packed = b"".join(fwd_entry(i) for i in range(3))
    packed_fwd = b"\x93" + tag + mp_bin(packed) + chunk
    packed_str = b"\x92" + tag + mp_str(packed[:31])
    gz = gzip.compress(packed[:40]) + gzip.compress(packed[40:])
    gzip_fwd = b"\x93" + tag + mp_bin(gz) + b"\x82" + mp_str("chunk") + mp_str("c1") + mp_str("compressed") + mp_str("gzip")
    zstd_fwd = b"\x93" + tag + mp_bin(ZSTD_ENTRY) + b"\x81" + mp_str("compressed") + mp_str("zstd")
    put("forward_decode", "message", b"\x07" + b"\xc0" + message)
    put("forward_decode", "forward", b"\x00" + forward + b"\xc0")
    put("forward_decode", "packed", b"\x03" + packed_fwd + packed_str)
    put("forward_decode", "gzip", b"\x10" + gzip_fwd)
    put("forward_decode", "zstd", b"\x3f" + zstd_fwd)
    put("forward_decode", "huge_len", b"\x01" + b"\x92" + tag + b"\xdd\xff\xff\xff\xf0")


if __name__ == "__main__":
    main()
