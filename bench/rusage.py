#!/usr/bin/env python3
"""rusage.py OUT.json CMD ARGS...: runs CMD, forwards SIGTERM/SIGINT to it, and writes
the CPU seconds (user + system) and peak RSS of CMD and every descendant it waited for
(wait4's rusage) to OUT.json. Exits with CMD's status."""
import json
import os
import signal
import sys

out, argv = sys.argv[1], sys.argv[2:]
pid = os.fork()
if pid == 0:
    os.execvp(argv[0], argv)
for s in (signal.SIGTERM, signal.SIGINT):
    signal.signal(s, lambda n, _f: os.kill(pid, n))
_, status, ru = os.wait4(pid, 0)  # retried by Python itself on EINTR (PEP 475)
with open(out, "w") as f:
    json.dump({"cpu": ru.ru_utime + ru.ru_stime, "user": ru.ru_utime, "sys": ru.ru_stime,
               "maxrss_mb": ru.ru_maxrss * 1024 / 1e6}, f)
sys.exit(os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else 0)
