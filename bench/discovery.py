#!/usr/bin/env python3
"""Time from start to first connected peer through each discovery source.

A private internet of network namespaces (one router, each host on its own /24, no
route out), like crates/cli/tests/common/netns.rs. Per source, per round: peer A
starts and settles, then peer B starts; the time is from B's start to B's first
"peer connected" log line (tracing timestamps, same clock). For `pex`, C knows only
B and B knows A: the time is from C's start to C's connection to A.

    sudo bench/discovery.py            # 3 rounds of every source
    BENCH_ROUNDS=5 BENCH_SOURCES="tracker dht" sudo bench/discovery.py

Needs root, iproute2, a release build (target/release/swarmsync), and for those
sources opentracker and python3-libtorrent (not needed: the DHT case bootstraps from
our own node). Prints a markdown table.
"""
import datetime
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from harness import log, log_text  # noqa: E402
BIN = os.path.abspath(os.environ.get("SWARMSYNC_BIN", os.path.join(HERE, "..", "target/release/swarmsync")))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SOURCES = os.environ.get("BENCH_SOURCES", "known tracker opentracker dht pex").split()
TIMEOUT = float(os.environ.get("BENCH_TIMEOUT", "180"))
PREFIX = f"swb-{os.getpid()}-"
PORT = 41544
TRACKER_PORT = 6969
DHT_PORT = 41546


def sh(*args, check=True):
    return subprocess.run(args, check=check, capture_output=True, text=True).stdout


class Internet:
    def __init__(self):
        self.router = PREFIX + "router"
        self.hosts = []
        sh("ip", "netns", "add", self.router)
        try:
            sh("ip", "-n", self.router, "link", "set", "lo", "up")
            sh("ip", "netns", "exec", self.router, "sh", "-c",
               "echo 1 > /proc/sys/net/ipv4/ip_forward")
        except BaseException:
            self.close()  # one_round's finally only sees a constructed Internet
            raise

    def add_host(self, name):
        k = len(self.hosts) + 1
        ns, addr, gw = PREFIX + "h-" + name, f"10.99.{k}.2", f"10.99.{k}.1"
        sh("ip", "netns", "add", ns)
        self.hosts.append(ns)
        sh("ip", "link", "add", f"h{k}", "netns", self.router, "type", "veth", "peer", "name", "eth0", "netns", ns)
        sh("ip", "-n", self.router, "addr", "add", f"{gw}/24", "dev", f"h{k}")
        sh("ip", "-n", self.router, "link", "set", f"h{k}", "up")
        sh("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        sh("ip", "-n", ns, "route", "add", "default", "via", gw)
        return ns, addr

    def close(self):
        for ns in self.hosts + [self.router]:
            sh("ip", "netns", "del", ns, check=False)


class Proc:
    def __init__(self, ns, args, log_path, env=None):
        self.log = log_path
        e = dict(os.environ, RUST_LOG="info,net=debug")
        e.update(env or {})
        self.out = open(log_path, "wb")
        self.started = time.time()
        self.p = subprocess.Popen(["ip", "netns", "exec", ns] + args, stdin=subprocess.DEVNULL,
                                  stdout=self.out, stderr=self.out, env=e)

    def text(self):
        return log_text(self.log)

    def first(self, pattern):
        """Seconds since start of the first log line matching `pattern`, or None."""
        for line in self.text().splitlines():
            if re.search(pattern, line):
                stamp = line.split()[0]
                try:
                    t = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
                except ValueError:
                    continue
                return t - self.started
        return None

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.out.close()


def wait(what, cond, timeout=TIMEOUT):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v is not None and v is not False:
            return v
        time.sleep(0.05)
    raise RuntimeError(f"timed out: {what}")


def new_key():
    out = json.loads(sh(BIN, "key", "new", "--json"))
    return out["read_write"], out["folder_id"]


def one_round(source, work):
    net = Internet()
    procs = []
    try:
        hosts = {n: net.add_host(n) for n in ("t", "a", "b", "c")}
        secret, folder_id = new_key()
        off = ["--no-lan", "--no-dht", "--no-tracker", "--no-pex", "--no-upnp"]

        def sync(name, extra, drop=()):
            d = os.path.join(work, name)
            os.makedirs(d, exist_ok=True)
            flags = [f for f in off if f not in drop]
            p = Proc(hosts[name][0], [BIN, "sync", d, "--listen", f"0.0.0.0:{PORT}", "--secret", secret] + flags + extra,
                     os.path.join(work, name + ".log"))
            procs.append(p)
            return p

        t_addr = hosts["t"][1]
        if source == "known":
            a = sync("a", [])
            wait("A up", lambda: "syncing " in a.text() or None)
            b = sync("b", ["--known-host", f"{hosts['a'][1]}:{PORT}"])
            return wait("B connected", lambda: b.first("peer connected"))
        if source in ("tracker", "opentracker"):
            if source == "tracker":
                procs.append(Proc(hosts["t"][0], [BIN, "tracker", "--listen", f"0.0.0.0:{TRACKER_PORT}"],
                                  os.path.join(work, "tracker.log")))
            else:
                root = os.path.join(work, "ot")
                os.makedirs(root)
                with open(os.path.join(root, "whitelist.txt"), "w") as f:
                    f.write(folder_id + "\n")
                for path in (work, root):
                    os.chmod(path, 0o755)
                os.chmod(os.path.join(root, "whitelist.txt"), 0o644)
                procs.append(Proc(hosts["t"][0], ["sh", "-c", f"cd {root} && exec opentracker -i {t_addr} -P {TRACKER_PORT} -p {TRACKER_PORT} -d {root} -u nobody -w whitelist.txt"],
                                  os.path.join(work, "ot.log")))
            time.sleep(0.3)
            tr = ["--tracker", f"{t_addr}:{TRACKER_PORT}"]
            a = sync("a", tr, drop=("--no-tracker",))
            wait("A announced", lambda: a.first(r"tracker announce .*found") is not None or None)
            b = sync("b", tr, drop=("--no-tracker",))
            return wait("B connected", lambda: b.first("peer connected"))
        if source == "dht":
            # Our own node on T is the bootstrap of a private DHT.
            boot = ["--dht-bootstrap", f"{t_addr}:{DHT_PORT}"]
            d = os.path.join(work, "t")
            os.makedirs(d)
            other, _ = new_key()
            procs.append(Proc(hosts["t"][0], [BIN, "sync", d, "--listen", f"0.0.0.0:{PORT}", "--secret", other,
                                              "--no-lan", "--no-tracker", "--no-pex", "--no-upnp", "--dht-server",
                                              "--dht-bootstrap", f"{t_addr}:{DHT_PORT}"],
                              os.path.join(work, "t.log")))
            time.sleep(1)
            a = sync("a", boot, drop=("--no-dht",))
            wait("A announced", lambda: "DHT announce and lookup done" in a.text() or None)
            b = sync("b", boot, drop=("--no-dht",))
            return wait("B connected", lambda: b.first("peer connected"))
        if source == "pex":
            a = sync("a", [], drop=("--no-pex",))
            wait("A up", lambda: "syncing " in a.text() or None)
            b = sync("b", ["--known-host", f"{hosts['a'][1]}:{PORT}"], drop=("--no-pex",))
            wait("B connected", lambda: b.first("peer connected"))
            c = sync("c", ["--known-host", f"{hosts['b'][1]}:{PORT}"], drop=("--no-pex",))
            a_ip = re.escape(hosts["a"][1])
            return wait("C connected to A", lambda: c.first(rf"peer connected.*remote={a_ip}:"))
        raise ValueError(source)
    finally:
        for p in procs:
            p.stop()
        net.close()


def main():
    if os.geteuid() != 0:
        sys.exit("bench/discovery.py needs root (network namespaces)")
    if not os.path.exists(BIN):
        sys.exit(f"{BIN} is missing: cargo build --release -p cli")
    results = {s: [] for s in SOURCES}
    for r in range(ROUNDS):
        for source in SOURCES:
            work = tempfile.mkdtemp(prefix="swb-", dir="/var/tmp")
            try:
                t = one_round(source, work)
                results[source].append(t)
                log(f"round {r + 1} {source}: {t:.3f} s")
            except Exception as e:  # a failed round is reported, not hidden
                log(f"round {r + 1} {source}: FAILED {e}")
                results[source].append(None)
                keep = work + "-failed"
                shutil.copytree(work, keep, dirs_exist_ok=True)
                log(f"  logs kept in {keep}")
            finally:
                shutil.rmtree(work, ignore_errors=True)
    print(f"| source | median s | rounds (s) |")
    print(f"|---|---:|---|")
    for source, ts in results.items():
        ok = [t for t in ts if t is not None]
        med = f"{statistics.median(ok):.2f}" if ok else "failed"
        shown = ", ".join("fail" if t is None else f"{t:.2f}" for t in ts)
        print(f"| {source} | {med} | {shown} |")
    if any(t is None for ts in results.values() for t in ts):
        sys.exit(1)


if __name__ == "__main__":
    main()
