"""Posts records with the `fluent-logger` client (PyPI; Message mode, EventTime).
Usage: fluent_logger.py HOST PORT N."""
import sys

from fluent import sender

host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = sender.FluentSender("kube.shop.py-0", host=host, port=port, nanosecond_precision=True)
for i in range(n):
    if not s.emit("app", {"log": f"py-{i:04}", "stream": "stderr" if i % 2 else "stdout"}):
        raise SystemExit(f"emit {i} failed: {s.last_error}")
s.close()
print("done")
