#!/usr/bin/env python3
"""Cost of idle followers: the agent's CPU and RSS while one source ingests at full speed,
without and with N idle `follow=true` connections on another source, and the latency of a
normal query meanwhile; then N idle follows with no ingest at all. The without/with phases
alternate for --rounds pairs in one run, so other load on the machine weighs on both alike.

    cargo build --release -p runnel-agent
    python3 benches/http/idle_follows.py [--runnel target/release/runnel] [--follows 1000] [--seconds 10] [--rounds 3]

Stdlib only. The writer is this script appending CRI lines as fast as it can to one file, so
"full speed" is the slower of it and the agent; the ingest rate is printed from the agent's
own record counts so the phases can be compared.
"""
import argparse, json, os, resource, socket, statistics, subprocess, tempfile, threading, time
import urllib.request

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def rss_kib(pid, key="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def get(addr, path):
    with urllib.request.urlopen(f"http://{addr}{path}", timeout=30) as r:
        return r.status, r.read()


def records(addr):
    _, body = get(addr, "/v1/sources")
    return sum(s["records"] for s in json.loads(body)["sources"])


def appended(addr):
    _, body = get(addr, "/metrics")
    for line in body.decode().splitlines():
        if line.startswith("runnel_index_records_appended_total "):
            return int(float(line.split()[1]))
    raise RuntimeError("no runnel_index_records_appended_total on /metrics")


def drained(addr, timeout=300):
    """Wait until the agent has ingested the writer's backlog (the counter stops moving)."""
    deadline, last = time.monotonic() + timeout, -1
    while time.monotonic() < deadline:
        n = appended(addr)
        if n == last:
            return n
        last = n
        time.sleep(1.5)  # the index part of /metrics is a snapshot up to 1 s old
    raise RuntimeError("the agent did not catch up")


def cri_log(root, ns, pod):
    d = os.path.join(root, f"{ns}_{pod}_uid-{pod}", "app")
    os.makedirs(d, exist_ok=True)
    return os.path.join(d, "0.log")


def writer(path, stop, written):
    line = "2024-05-01T12:00:00.000000001Z stdout F " + "x" * 150 + "\n"
    block = line * 2000
    with open(path, "a") as f:
        while not stop.is_set():
            f.write(block)
            f.flush()
            written[0] += 2000


def phase(addr, pid, root, seconds, name):
    stop, written = threading.Event(), [0]
    busy = cri_log(root, "bench", "busy-0")
    r0, c0 = drained(addr), cpu_seconds(pid)
    t = threading.Thread(target=writer, args=(busy, stop, written))
    t0 = time.monotonic()
    t.start()
    lat = []
    while time.monotonic() - t0 < seconds:
        q0 = time.monotonic()
        status, _ = get(addr, "/v1/logs?namespace=bench&pod=query-0&tailLines=10")
        assert status == 200
        lat.append((time.monotonic() - q0) * 1000)
        time.sleep(0.05)
    stop.set()
    t.join()
    rss = rss_kib(pid)
    # Until the backlog is in: the agent's CPU for the whole phase's input.
    ingested = drained(addr) - r0 - 0
    elapsed = time.monotonic() - t0
    cpu = cpu_seconds(pid) - c0
    lat.sort()
    row = {"cpu": 100 * cpu / elapsed, "rss": rss / 1024, "ingest": ingested / elapsed / 1000,
           "p50": statistics.median(lat), "p99": lat[max(0, int(len(lat) * 0.99) - 1)],
           "load": os.getloadavg()[0], "us_per_line": 1e6 * cpu / max(ingested, 1)}
    print(f"{name:<34} cpu {row['cpu']:6.1f}%  rss {row['rss']:6.1f} MiB  "
          f"ingest {row['ingest']:7.1f} k lines/s  query p50 {row['p50']:5.2f} ms  "
          f"p99 {row['p99']:5.2f} ms  cpu/line {row['us_per_line']:.2f} us  ({len(lat)} queries, load {row['load']:.2f})")
    return row


def open_follows(addr, n):
    host, port = addr.rsplit(":", 1)
    socks = []
    for _ in range(n):
        s = socket.create_connection((host, int(port)))
        s.sendall(b"GET /v1/logs?namespace=bench&pod=idle-0&follow=true HTTP/1.1\r\nHost: x\r\n\r\n")
        socks.append(s)
    for s in socks:  # each has its first page
        s.settimeout(30)
        got = b""
        while b"idle-0 line 99" not in got:
            chunk = s.recv(65536)
            if not chunk:
                raise RuntimeError("a follow was closed before its first page")
            got += chunk
    return socks


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runnel", default="target/release/runnel")
    ap.add_argument("--follows", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--rounds", type=int, default=3, help="without/with pairs, alternating")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * a.follows + 256)), hard))
    work = tempfile.mkdtemp(prefix="runnel-follow-bench-")
    root = os.path.join(work, "pods")
    for pod in ["idle-0", "query-0"]:
        with open(cri_log(root, "bench", pod), "w") as f:
            for i in range(100):
                f.write(f"2024-05-01T12:00:{i % 60:02d}.000000001Z stdout F {pod} line {i}\n")
    cfg = os.path.join(work, "runnel.yaml")
    with open(cfg, "w") as f:
        f.write(f"data_dir: {work}/data\ninputs:\n  docker: {{ enabled: false }}\n  cri: {{ enabled: true, root: {root} }}\n"
                f"http: {{ listen: \"127.0.0.1:0\", limits: {{ max_follows: {a.follows + 10}, max_connections: {a.follows + 100} }} }}\n"
                "metrics: { enabled: false }\nindex: { max_disk_bytes: 4GiB }\nlog: { level: warn }\n")
    agent = subprocess.Popen([a.runnel, "agent", "--config", cfg], stdout=subprocess.PIPE, text=True)
    try:
        addr = None
        for line in agent.stdout:
            if line.startswith("runnel: listening on http://"):
                addr = line.strip().split("://", 1)[1]
                break
        deadline = time.monotonic() + 30
        while records(addr) < 200:
            assert time.monotonic() < deadline, "not ingested"
            time.sleep(0.1)
        pid = agent.pid
        print(f"agent idle: rss {rss_kib(pid) / 1024:.1f} MiB")
        # The phases alternate (without, with, without, with, ...) so that whatever else the
        # machine is doing weighs on both alike; each line also shows the load average.
        results = {"without": [], "with": []}
        for r in range(a.rounds):
            results["without"].append(phase(addr, pid, root, a.seconds, f"[{r + 1}] ingest, no follows"))
            socks = open_follows(addr, a.follows)
            print(f"[{r + 1}] {a.follows} follows open: rss {rss_kib(pid) / 1024:.1f} MiB")
            results["with"].append(phase(addr, pid, root, a.seconds, f"[{r + 1}] ingest, {a.follows} idle follows"))
            if r == a.rounds - 1:
                drained(addr)
                c0, t0 = cpu_seconds(pid), time.monotonic()
                time.sleep(a.seconds)
                print(f"{'no ingest, ' + str(a.follows) + ' idle follows':<34} cpu {100 * (cpu_seconds(pid) - c0) / (time.monotonic() - t0):6.1f}%  "
                      f"rss {rss_kib(pid) / 1024:6.1f} MiB  peak rss {rss_kib(pid, 'VmHWM') / 1024:.1f} MiB")
            for s in socks:
                s.close()
        print("median over rounds:")
        for k, rows in results.items():
            med = {f: statistics.median(row[f] for row in rows) for f in rows[0]}
            print(f"  {k + ' follows':<16} cpu {med['cpu']:6.1f}%  rss {med['rss']:6.1f} MiB  ingest {med['ingest']:7.1f} k lines/s  "
                  f"query p50 {med['p50']:5.2f} ms  p99 {med['p99']:5.2f} ms  cpu/line {med['us_per_line']:.2f} us  load {med['load']:.2f}")
    finally:
        agent.terminate()
        agent.wait(timeout=30)
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
