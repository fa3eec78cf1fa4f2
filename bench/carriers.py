#!/usr/bin/env python3
"""Throughput of swarmsync's carriers (TCP, QUIC, relay) against Syncthing's TCP and QUIC
paths, on one shaped link between network namespaces, in one run (issue #8).

    sudo bench/carriers.py                                   # defaults below, <= ~20 min
    sudo BENCH_MIB=64 BENCH_ROUNDS=2 BENCH_LOSS="0 1" bench/carriers.py

The network (no route out; nothing leaves the namespaces this script makes):

    A (10.98.1.2) --- router --- B (10.98.2.2)
                        |
                        R (10.98.3.2, `swarmsync relay`)

This kernel has no netem (CONFIG_NET_SCH_NETEM is off), so the router builds the link
from what it has, on the packets it forwards *towards* A or B (so a relayed packet,
A -> router -> R -> router -> B, is shaped once per direction, like a direct one):
  loss   iptables `-m statistic --mode random --probability L/100 -j DROP`, each direction;
  delay  a fixed delay line: the packets towards B go to NFQUEUE 0, where a small C
         program (below, compiled at start with `cc -O2`) accepts each one 2 D after it
         was queued (batched verdicts, packets never copied out). All of the round trip
         sits on the data direction; a congestion controller sees only the RTT (2 D);
  rate   `tc qdisc replace dev ... root tbf rate R burst 32kb limit BDP` on the router's
         egress towards A and towards B (a queue of one BDP = R x 2 D bytes).
Segmentation offloads are off on every interface (gso_max_segs 1), so the router drops
and paces single packets. TCP congestion control: BENCH_TCP_CC (default cubic, Linux's
default; this machine's host default is bbr, but a namespace may only pick from the host's
tcp_allowed_congestion_control, so it is set per route: `ip route ... congctl`).

Cases, rotated within every round (for each loss value):
  ss-tcp    swarmsync, default dialer (TCP first, QUIC after 300 ms): must be carrier tcp
  ss-quic   nft in A's namespace drops TCP port 41544: must be carrier quic
  ss-relay  both peers `--relay R:22067`, nft in A drops every packet to/from B: relay
  st-tcp    Syncthing, listen + device addresses tcp://...:22000
  st-quic   Syncthing, listen + device addresses quic://...:22000
swarmsync: time from B's start to B's tree complete, and from B's first `peer connected`
to complete ("after connect": the relay waits out a 10 s grace for direct paths first).
Syncthing: B's folder starts paused; time from un-pausing (the peers are connected) to
complete. Every tree is then compared byte for byte with A's (untimed; a mismatch fails).

Environment (defaults in brackets):
  BENCH_ROUNDS [3]   BENCH_MIB [256] (4 files of random data, at loss 0)
  BENCH_MIB_LOSSY [16] (at loss > 0: loss-based congestion control at 1 % and 40 ms gets
  well under 1 MB/s)   BENCH_RATE [200mbit]   BENCH_DELAY [20ms] (one way)
  BENCH_LOSS ["0 1"] (percent)   BENCH_CASES ["ss-tcp ss-quic ss-relay st-tcp st-quic"]
  BENCH_TCP_CC [cubic] (or default: the host's)   BENCH_RELAY_RATE [0] (relay --rate-limit, bytes/s, 0 = none)
  BENCH_RUN_TIMEOUT [300] per run   BENCH_TIMEOUT [1200] no new case after this
  BENCH_PAUSE [2] after `sync`, before every timer
  BENCH_OUT [/var/tmp/swarmsync-bench/carriers]  results.md, results.json, failed-* logs
"""
import copy
import ctypes
import datetime
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from harness import (  # noqa: E402
    fresh, kill_all, load_manifest, log, log_text, med, printed_key, proc_cpu, quiesce, sh,
    st_offline, st_env, st_serve, verify, wait_for, wait_tree, worker, write_results)

BIN = os.path.abspath(os.environ.get("SWARMSYNC_BIN", os.path.join(HERE, "..", "target/release/swarmsync")))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
MIB = int(os.environ.get("BENCH_MIB", "256"))
MIB_LOSSY = int(os.environ.get("BENCH_MIB_LOSSY", "16"))
RATE = os.environ.get("BENCH_RATE", "200mbit")
DELAY = os.environ.get("BENCH_DELAY", "20ms")
LOSSES = os.environ.get("BENCH_LOSS", "0 1").split()
CASES = os.environ.get("BENCH_CASES", "ss-tcp ss-quic ss-relay st-tcp st-quic").split()
TCP_CC = os.environ.get("BENCH_TCP_CC", "cubic")
RELAY_RATE = os.environ.get("BENCH_RELAY_RATE", "0")
RUN_TIMEOUT = float(os.environ.get("BENCH_RUN_TIMEOUT", "300"))
TOTAL_TIMEOUT = float(os.environ.get("BENCH_TIMEOUT", "1200"))
PAUSE = float(os.environ.get("BENCH_PAUSE", "2"))
ROOT = os.environ.get("BENCH_ROOT", "/var/tmp/swarmsync-bench")
OUT = os.environ.get("BENCH_OUT", os.path.join(ROOT, "carriers"))
SEED = os.environ.get("BENCH_SEED", "20261201")

PREFIX = f"swc{os.getpid()}-"
PORT = 41544
RELAY_PORT = 22067
ST_PORT = 22000
ST_GUI = 8384
ST_KEY = "carrierscarrierscarriers"
OFF = ["--no-lan", "--no-tracker", "--no-dht", "--no-pex", "--no-upnp"]
EXPECT = {"ss-tcp": "tcp", "ss-quic": "quic", "ss-relay": "relay", "st-tcp": "tcp", "st-quic": "quic"}
CLONE_NEWNET = 0x40000000
DELAY_LINE_C = r"""#define _GNU_SOURCE
/* A fixed-delay line for one NFQUEUE: every packet is accepted DELAY_US after it was
   queued (verdicts in batches, so packets are never copied to user space). */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <linux/netlink.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RING (1 << 20)
static uint64_t due_t[RING];
static uint32_t due_id[RING];
static int fd, queue;

static uint64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int put_attr(char *p, int type, const void *data, int len) {
    struct nlattr *a = (struct nlattr *)p;
    a->nla_len = NLA_HDRLEN + len;
    a->nla_type = type;
    memcpy(p + NLA_HDRLEN, data, len);
    return NLA_ALIGN(a->nla_len);
}

static void send_msg(int kind, int flags, const void *attr, int type, int len) {
    char buf[256];
    memset(buf, 0, sizeof buf);
    struct nlmsghdr *h = (struct nlmsghdr *)buf;
    struct nfgenmsg *g = (struct nfgenmsg *)NLMSG_DATA(h);
    g->nfgen_family = AF_UNSPEC;
    g->version = NFNETLINK_V0;
    g->res_id = htons(queue);
    int off = NLMSG_LENGTH(sizeof *g);
    off += put_attr(buf + off, type, attr, len);
    h->nlmsg_len = off;
    h->nlmsg_type = (NFNL_SUBSYS_QUEUE << 8) | kind;
    h->nlmsg_flags = NLM_F_REQUEST | flags;
    if (send(fd, buf, off, 0) < 0) { perror("send"); exit(1); }
}

static void config(const void *attr, int type, int len) {
    char buf[512];
    send_msg(NFQNL_MSG_CONFIG, NLM_F_ACK, attr, type, len);
    int n = recv(fd, buf, sizeof buf, 0);
    struct nlmsghdr *h = (struct nlmsghdr *)buf;
    if (n > 0 && h->nlmsg_type == NLMSG_ERROR) {
        struct nlmsgerr *e = (struct nlmsgerr *)NLMSG_DATA(h);
        if (e->error) { fprintf(stderr, "nfqueue config: %s\n", strerror(-e->error)); exit(1); }
    }
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: %s QUEUE DELAY_US\n", argv[0]); return 2; }
    queue = atoi(argv[1]);
    uint64_t delay = strtoull(argv[2], 0, 10);
    fd = socket(AF_NETLINK, SOCK_RAW, NETLINK_NETFILTER);
    if (fd < 0) { perror("socket"); return 1; }
    int rcv = 32 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof rcv);
    struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) { perror("bind"); return 1; }
    struct nfqnl_msg_config_cmd cmd = {.command = NFQNL_CFG_CMD_BIND};
    config(&cmd, NFQA_CFG_CMD, sizeof cmd);
    struct nfqnl_msg_config_params params = {.copy_range = 0, .copy_mode = NFQNL_COPY_META};
    config(&params, NFQA_CFG_PARAMS, sizeof params);
    uint32_t maxlen = htonl(65536);
    config(&maxlen, NFQA_CFG_QUEUE_MAXLEN, sizeof maxlen);
    fprintf(stderr, "delay line on queue %d: %llu us\n", queue, (unsigned long long)delay);
    uint64_t head = 0, tail = 0, dropped = 0;
    static char buf[1 << 16];
    for (;;) {
        uint64_t t = now_us();
        int64_t last = -1;
        while (head != tail && due_t[head % RING] <= t) last = due_id[head++ % RING];
        if (last >= 0) {
            struct nfqnl_msg_verdict_hdr v = {.verdict = htonl(NF_ACCEPT), .id = htonl((uint32_t)last)};
            send_msg(NFQNL_MSG_VERDICT_BATCH, 0, &v, NFQA_VERDICT_HDR, sizeof v);
        }
        struct timespec ts, *tp = 0;  /* wait for a packet or the head's due time */
        if (head != tail) {
            uint64_t d = due_t[head % RING];
            t = now_us();
            uint64_t w = d > t ? d - t : 0;
            ts.tv_sec = w / 1000000;
            ts.tv_nsec = (w % 1000000) * 1000;
            tp = &ts;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ppoll(&p, 1, tp, 0);
        for (;;) {
            int n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
            if (n < 0) {
                if (errno == ENOBUFS) { dropped++; continue; }
                break;
            }
            uint64_t at = now_us() + delay;
            for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
                if (h->nlmsg_type != ((NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET)) continue;
                int alen = h->nlmsg_len - NLMSG_LENGTH(sizeof(struct nfgenmsg));
                struct nlattr *a = (struct nlattr *)((char *)NLMSG_DATA(h) + NLMSG_ALIGN(sizeof(struct nfgenmsg)));
                while (alen >= (int)NLA_HDRLEN && a->nla_len >= NLA_HDRLEN && a->nla_len <= alen) {
                    if ((a->nla_type & NLA_TYPE_MASK) == NFQA_PACKET_HDR) {
                        struct nfqnl_msg_packet_hdr *ph = (struct nfqnl_msg_packet_hdr *)((char *)a + NLA_HDRLEN);
                        if (tail - head < RING) {
                            due_t[tail % RING] = at;
                            due_id[tail % RING] = ntohl(ph->packet_id);
                            tail++;
                        }
                        break;
                    }
                    alen -= NLA_ALIGN(a->nla_len);
                    a = (struct nlattr *)((char *)a + NLA_ALIGN(a->nla_len));
                }
            }
        }
    }
}
"""
libc = ctypes.CDLL("libc.so.6", use_errno=True)


def parse_rate(s):
    m = re.fullmatch(r"([\d.]+)\s*([kmg]?)(bit|bps)", s.lower())
    if not m:
        raise SystemExit(f"BENCH_RATE {s!r}: use e.g. 200mbit")
    v = float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[m.group(2)]
    return v if m.group(3) == "bit" else v * 8  # bits per second


def parse_ms(s):
    m = re.fullmatch(r"([\d.]+)\s*(us|ms|s)?", s.lower())
    return float(m.group(1)) * {"us": 1e-3, "ms": 1, "s": 1e3, None: 1}[m.group(2)]


# ---------------------------------------------------------------- the network


class Net:
    """A router and hosts on their own /24s behind it; no route out of them."""

    def __init__(self, delay_line_bin, logdir):
        self.delay_line_bin, self.logdir = delay_line_bin, logdir
        self.delay_line = None
        self.router = PREFIX + "rt"
        self.made = []
        self.addr = {}
        self.ns = {}
        self.dev = {}
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        self.shaped = False

    def _build(self):
        sh("ip", "netns", "add", self.router)
        self.made.append(self.router)
        sh("ip", "netns", "exec", self.router, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")
        for k, name in enumerate(("a", "b", "r"), start=1):
            ns, addr, gw, dev = PREFIX + name, f"10.98.{k}.2", f"10.98.{k}.1", f"h{name}"
            sh("ip", "netns", "add", ns)
            self.made.append(ns)
            sh("ip", "link", "add", dev, "netns", self.router, "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "-n", self.router, "addr", "add", f"{gw}/24", "dev", dev)
            sh("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0")
            # One packet per skb everywhere: the router must drop and pace real packets.
            sh("ip", "-n", self.router, "link", "set", dev, "gso_max_segs", "1", "up")
            sh("ip", "-n", ns, "link", "set", "eth0", "gso_max_segs", "1", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            # A namespace may only pick a default congestion control from the host's
            # tcp_allowed_congestion_control; a route's `congctl` has no such limit.
            cc = ["congctl", TCP_CC] if TCP_CC not in ("", "default") else []
            sh("ip", "-n", ns, "route", "replace", f"10.98.{k}.0/24", "dev", "eth0", *cc)
            sh("ip", "-n", ns, "route", "add", "default", "via", gw, *cc)
            self.ns[name], self.addr[name], self.dev[name] = ns, addr, dev
        rtt_us = int(2 * parse_ms(DELAY) * 1000)
        self.delay_line = Proc(self.router, [self.delay_line_bin, "0", str(rtt_us)],
                               os.path.join(self.logdir, "delay-line.log"))
        wait_for("the delay line", lambda: "delay line on queue" in self.delay_line.text()
                 or (not self.delay_line.alive() and sys.exit(self.delay_line.text())), timeout=10)

    def shape(self, loss):
        """Loss, the delay line and the rate on the router, towards A and towards B."""
        rate_bps = parse_rate(RATE)
        bdp = int(rate_bps / 8 * 2 * parse_ms(DELAY) / 1000)
        ipt = ["ip", "netns", "exec", self.router, "iptables"]
        sh(*ipt, "-F", "FORWARD")
        for name in ("a", "b"):
            if float(loss) > 0:
                sh(*ipt, "-A", "FORWARD", "-o", self.dev[name], "-m", "statistic", "--mode", "random",
                   "--probability", f"{float(loss) / 100:g}", "-j", "DROP")
        sh(*ipt, "-A", "FORWARD", "-o", self.dev["b"], "-j", "NFQUEUE", "--queue-num", "0")
        tbf = ["tbf", "rate", RATE, "burst", "32kb", "limit", str(max(bdp, 64 * 1024))]
        for name in ("a", "b"):
            sh("ip", "netns", "exec", self.router, "tc", "qdisc", "replace", "dev", self.dev[name], "root", *tbf)
        return (f"loss {loss} % each way (iptables statistic), delay {2 * parse_ms(DELAY):g} ms round trip "
                f"(NFQUEUE delay line), {' '.join(tbf)}")

    def delay_line_cpu(self):
        try:
            return proc_cpu(self.delay_line.p.pid)
        except (OSError, AttributeError):
            return None

    def firewall(self, case):
        """nft rules in A's namespace only (table inet carriers, replaced per case)."""
        ns = self.ns["a"]
        sh("ip", "netns", "exec", ns, "nft", "delete", "table", "inet", "carriers", check=False)
        if case == "ss-quic":
            rules = f"""table inet carriers {{
  chain in {{ type filter hook input priority 0; policy accept; tcp dport {PORT} drop; tcp sport {PORT} drop; }}
  chain out {{ type filter hook output priority 0; policy accept; tcp dport {PORT} drop; tcp sport {PORT} drop; }}
}}"""
        elif case == "ss-relay":
            b = self.addr["b"]
            rules = f"""table inet carriers {{
  chain in {{ type filter hook input priority 0; policy accept; ip saddr {b} drop; }}
  chain out {{ type filter hook output priority 0; policy accept; ip daddr {b} drop; }}
}}"""
        else:
            return
        sh("ip", "netns", "exec", ns, "nft", "-f", "-", input=rules)

    def pids(self):
        out = []
        for ns in self.made:
            out += [int(p) for p in sh("ip", "netns", "pids", ns, check=False).split()]
        return out

    def close(self):
        kill_all(self.pids, 5)  # every process in these namespaces was started by this script
        for ns in reversed(self.made):  # tc and nft state goes with its namespace
            sh("ip", "netns", "del", ns, check=False)


def ns_connect(ns, host, port, timeout=10):
    """A TCP socket made inside namespace `ns` (it stays there), connected."""
    orig = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns")
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        finally:
            if libc.setns(orig, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")
    finally:
        os.close(orig)
        os.close(target)
    s.settimeout(timeout)
    try:
        s.connect((host, port))
    except OSError:
        s.close()
        raise
    return s


def st_rest(ns, method, path, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", ST_GUI, timeout=10)
    conn.sock = ns_connect(ns, "127.0.0.1", ST_GUI)
    try:
        headers = {"X-API-Key": ST_KEY}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=headers)
        r = conn.getresponse()
        text = r.read()
        if r.status >= 300:
            raise RuntimeError(f"{method} {path}: {r.status} {text[:200]!r}")
        return json.loads(text) if text else None
    finally:
        conn.close()


# ---------------------------------------------------------------- processes


class Proc:
    def __init__(self, ns, args, log_path, env=None):
        self.log = log_path
        e = dict(os.environ, RUST_LOG="info")
        e.update(env or {})
        self.out = open(log_path, "ab")
        # `ip netns exec` execs the command itself: self.p.pid is the program's pid.
        self.p = subprocess.Popen(["ip", "netns", "exec", ns] + args, stdin=subprocess.DEVNULL,
                                  stdout=self.out, stderr=self.out, env=e, start_new_session=True)

    def alive(self):
        return self.p.poll() is None

    def text(self):
        return log_text(self.log)

    def first(self, pattern):
        """Epoch time of the first log line matching `pattern` (tracing timestamps)."""
        for line in self.text().splitlines():
            if re.search(pattern, line):
                try:
                    return datetime.datetime.fromisoformat(line.split()[0].replace("Z", "+00:00")).timestamp()
                except (ValueError, IndexError):
                    continue
        return None

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(15)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.out.close()


# ---------------------------------------------------------------- swarmsync


def run_swarmsync(net, case, src, work, manifest):
    dst = fresh(os.path.join(work, "dst"))
    state = fresh(os.path.join(work, "a-state"))
    procs = []
    try:
        extra = []
        if case == "ss-relay":
            procs.append(Proc(net.ns["r"], [BIN, "relay", "--listen", f"0.0.0.0:{RELAY_PORT}",
                                            "--rate-limit", RELAY_RATE],
                              os.path.join(work, "relay.log")))
            extra = ["--relay", f"{net.addr['r']}:{RELAY_PORT}"]
        a = Proc(net.ns["a"], [BIN, "sync", src, "--listen", f"0.0.0.0:{PORT}", "--state", state] + OFF + extra,
                 os.path.join(work, "a.log"))
        procs.append(a)

        def ready():
            if not a.alive():
                raise RuntimeError("A exited:\n" + a.text()[-2000:])
            text = a.text()
            return printed_key(text)

        key = wait_for("A's scan", ready, timeout=RUN_TIMEOUT)
        if case == "ss-relay":  # A is on the relay before B starts
            wait_for("A registered at the relay", lambda: net_has_conn(net.ns["r"], RELAY_PORT), timeout=30)
        quiesce(PAUSE)
        pa = worker(a.p.pid)
        cpu_a0 = proc_cpu(pa)
        c0 = counters(net)
        t0m, t0 = time.monotonic(), time.time()
        b = Proc(net.ns["b"], [BIN, "sync", dst, "--listen", f"0.0.0.0:{PORT}", "--secret", key,
                               "--known-host", f"{net.addr['a']}:{PORT}"] + OFF + extra,
                 os.path.join(work, "b.log"))
        procs.append(b)
        t1m = wait_tree(dst, manifest, t0m + RUN_TIMEOUT, lambda: all(p.alive() for p in procs))
        t1 = t0 + (t1m - t0m)
        drops = delta(c0, counters(net))
        cc = (tcp_cc_seen(net.ns["r"], RELAY_PORT) if case == "ss-relay"  # the senders' sockets
              else tcp_cc_seen(net.ns["a"], PORT) if case == "ss-tcp" else None)
        cpu_a, cpu_b = proc_cpu(pa) - cpu_a0, proc_cpu(worker(b.p.pid))
        conn = b.first(r"peer connected")

        def carriers():
            try:
                with open(os.path.join(dst, ".sync", "status.json")) as f:
                    peers = json.load(f).get("peers", [])
            except (OSError, ValueError):
                return None
            return sorted(p.get("carrier", "") for p in peers) or None

        seen = wait_for("B's status.json with a peer", carriers, timeout=10, every=0.2)
        r = {"wall": t1 - t0, "after_connect": (t1 - conn) if conn else None,
             "connect": (conn - t0) if conn else None, "cpu_src": cpu_a, "cpu_dst": cpu_b,
             "cpu": cpu_a + cpu_b, "carrier": ",".join(seen), "tcp_cc": cc, **drops}
        if seen != [EXPECT[case]]:
            raise RuntimeError(f"carrier {seen}, expected {EXPECT[case]} (time {r['wall']:.2f} s)")
        return r, dst
    finally:
        for p in reversed(procs):
            p.stop()


def tcp_cc_seen(ns, port):
    """The congestion control of established TCP sockets on `port` in `ns` (`ss -ti`)."""
    out = sh("ip", "netns", "exec", ns, "ss", "-Htin", "state", "established",
             f"( sport = :{port} or dport = :{port} )", check=False)
    names = sorted(set(re.findall(r"\b(cubic|bbr|reno|bbr2|bbr3)\b", out)))
    rtts = sorted(float(x) for x in re.findall(r"\brtt:([\d.]+)/", out))
    return (",".join(names) + (f" rtt {rtts[-1]:.1f} ms" if rtts else "")) or None


def snmp(ns):
    """/proc/net/snmp and netstat of a namespace, as {"Udp.RcvbufErrors": n, ...}."""
    out = {}
    for f in ("/proc/net/snmp", "/proc/net/netstat"):
        lines = sh("ip", "netns", "exec", ns, "cat", f, check=False).splitlines()
        for names, values in zip(lines[::2], lines[1::2]):
            kind, names = names.split(":", 1)
            for k, v in zip(names.split(), values.split(":", 1)[1].split()):
                out[f"{kind}.{k}"] = int(v)
    return out


def counters(net):
    """What the peers' stacks and the router's queue dropped so far."""
    a, b = snmp(net.ns["a"]), snmp(net.ns["b"])
    r = snmp(net.ns["r"])
    tbf = sh("ip", "netns", "exec", net.router, "tc", "-s", "qdisc", "show", "dev", net.dev["b"], check=False)
    m = re.search(r"dropped (\d+)", tbf)
    return {"b_udp_rcvbuf_errors": b.get("Udp.RcvbufErrors", 0), "a_udp_sndbuf_errors": a.get("Udp.SndbufErrors", 0),
            "a_tcp_retrans": a.get("Tcp.RetransSegs", 0), "r_tcp_retrans": r.get("Tcp.RetransSegs", 0),
            "tbf_drops_to_b": int(m.group(1)) if m else 0}


def delta(c0, c1):
    return {k: c1[k] - c0[k] for k in c0}


def net_has_conn(ns, port):
    out = sh("ip", "netns", "exec", ns, "ss", "-Htn", "state", "established", f"sport = :{port}", check=False)
    return bool(out.strip())


# ---------------------------------------------------------------- Syncthing


def st_config(home, listen, folder_path, me, other, other_addr, paused):
    """Like bench/harness.py: every discovery / relay / NAT / reporting feature off."""
    cfg = os.path.join(home, "config.xml")
    tree = ET.parse(cfg)
    root = tree.getroot()
    o = root.find("options")
    for el in o.findall("listenAddress"):
        o.remove(el)
    ET.SubElement(o, "listenAddress").text = listen
    st_offline(o)
    g = root.find("gui")
    g.find("address").text = f"127.0.0.1:{ST_GUI}"
    g.find("apikey").text = ST_KEY
    defaults = root.find("defaults")
    dev = copy.deepcopy(defaults.find("device"))
    dev.set("id", other)
    dev.set("name", "peer")
    dev.find("address").text = other_addr
    root.insert(1, dev)
    fo = copy.deepcopy(defaults.find("folder"))
    fo.set("id", "bench")
    fo.set("label", "bench")
    fo.set("path", folder_path)
    fo.set("fsWatcherEnabled", "false")
    fo.set("rescanIntervalS", "0")
    for d in fo.findall("device"):
        fo.remove(d)
    for dev_id in (me, other):
        d = ET.Element("device", {"id": dev_id, "introducedBy": ""})
        ET.SubElement(d, "encryptionPassword")
        fo.insert(1, d)
    fo.find("paused").text = "true" if paused else "false"
    root.insert(0, fo)
    tree.write(cfg)


def run_syncthing(net, case, src, work, manifest):
    scheme = EXPECT[case]
    dst = fresh(os.path.join(work, "dst"))
    homes = [fresh(os.path.join(work, "st-a")), fresh(os.path.join(work, "st-b"))]
    ids = []
    for h in homes:
        sh("syncthing", "generate", f"--home={h}", "--no-default-folder")
        ids.append(ET.parse(os.path.join(h, "config.xml")).getroot().find("device").get("id"))
    os.makedirs(os.path.join(src, ".stfolder"), exist_ok=True)
    os.makedirs(os.path.join(dst, ".stfolder"), exist_ok=True)
    listen = f"{scheme}://0.0.0.0:{ST_PORT}"
    # Only B dials (as in the swarmsync cases): with both dialing from their listen port
    # (Syncthing reuses it for outgoing TCP) the two SYNs cross and neither connects.
    st_config(homes[0], listen, src, ids[0], ids[1], "dynamic", paused=False)
    st_config(homes[1], listen, dst, ids[1], ids[0], f"{scheme}://{net.addr['a']}:{ST_PORT}", paused=True)
    env = st_env(work)
    procs = []
    try:
        for h, side in ((homes[0], "a"), (homes[1], "b")):
            procs.append(Proc(net.ns[side], st_serve(h, f"127.0.0.1:{ST_GUI}", ST_KEY),
                              os.path.join(work, f"st-{side}.log"), env))

        def scanned():
            if not all(p.alive() for p in procs):
                raise RuntimeError("syncthing exited early")
            try:
                s = st_rest(net.ns["a"], "GET", "/rest/db/status?folder=bench")
            except Exception:  # noqa: BLE001 - not up yet
                return False
            return s.get("state") == "idle" and s.get("localFiles") == len(manifest)

        wait_for("Syncthing A's scan", scanned, timeout=RUN_TIMEOUT, every=0.3)

        def connection():
            try:
                c = st_rest(net.ns["b"], "GET", "/rest/system/connections")["connections"].get(ids[0], {})
            except Exception:  # noqa: BLE001
                return None
            return c.get("type") if c.get("connected") else None

        kind = wait_for("Syncthing peers connected", connection, timeout=120, every=0.3)
        pids = [worker(p.p.pid) for p in procs]
        quiesce(PAUSE)
        cpu0 = [proc_cpu(p) for p in pids]
        c0 = counters(net)
        t0 = time.monotonic()
        st_rest(net.ns["b"], "PATCH", "/rest/config/folders/bench", {"paused": False})
        t1 = wait_tree(dst, manifest, t0 + RUN_TIMEOUT, lambda: all(p.alive() for p in procs))
        cpu = [proc_cpu(p) - c for p, c in zip(pids, cpu0)]
        drops = delta(c0, counters(net))
        cc = tcp_cc_seen(net.ns["a"], ST_PORT) if scheme == "tcp" else None
        kind_end = connection() or kind
        r = {"wall": t1 - t0, "after_connect": t1 - t0, "connect": None, "cpu_src": cpu[0],
             "cpu_dst": cpu[1], "cpu": sum(cpu), "carrier": kind_end, "tcp_cc": cc, **drops}
        if not kind_end.startswith(scheme):
            raise RuntimeError(f"connection type {kind_end}, expected {scheme}")
        return r, dst
    finally:
        for p in reversed(procs):
            p.stop()


RUNNERS = {"ss-tcp": run_swarmsync, "ss-quic": run_swarmsync, "ss-relay": run_swarmsync,
           "st-tcp": run_syncthing, "st-quic": run_syncthing}


# ---------------------------------------------------------------- report


def report(results, sizes, conditions):
    ceiling = parse_rate(RATE) / 8 / 1e6
    lines = [f"Link: {conditions.get('link')} (loss varies per row); "
             f"ceiling {ceiling:.1f} MB/s of IP packets. TCP congestion control: {TCP_CC}.", ""]
    lines.append("| loss | case | carrier | size MiB | s from start (median; all) | s after connect | "
                 "MB/s from start | MB/s after connect | % of link | CPU-s A+B |")
    lines.append("|---|---|---|---:|---|---:|---:|---:|---:|---|")
    med_rate = {}
    for loss in LOSSES:
        size = sizes[loss]
        for case in CASES:
            runs = results.get(loss, {}).get(case, [])
            ok = [r for r in runs if r]
            if not runs:
                continue
            if not ok:
                lines.append(f"| {loss} % | {case} | — | {size / 2**20:.0f} | failed ({len(runs)}) | | | | | |")
                continue
            w = med([r["wall"] for r in ok])
            ac = med([r["after_connect"] for r in ok])
            cs, cd = med([r["cpu_src"] for r in ok]), med([r["cpu_dst"] for r in ok])
            shown = ", ".join("fail" if not r else f"{r['wall']:.2f}" for r in runs)
            rate, rate_ac = size / w / 1e6, (size / ac / 1e6 if ac else None)
            med_rate[(loss, case)] = (rate, rate_ac)
            lines.append(
                f"| {loss} % | {case} | {ok[0]['carrier']} | {size / 2**20:.0f} | {w:.2f} ({shown}) | "
                f"{ac:.2f} | {rate:.2f} | {rate_ac:.2f} | {100 * rate_ac / ceiling:.0f} | "
                f"{cs + cd:.1f} ({cs:.1f}+{cd:.1f}) |")
    lines.append("")
    lines.append("| loss | swarmsync quic / tcp (start; after connect) | swarmsync relay / tcp (after connect) "
                 "| Syncthing quic / tcp | swarmsync tcp / Syncthing tcp | swarmsync quic / Syncthing quic |")
    lines.append("|---|---|---|---|---|---|")

    def ratio(loss, a, b, i=1):
        x, y = med_rate.get((loss, a)), med_rate.get((loss, b))
        return f"{x[i] / y[i]:.2f}" if x and y and x[i] and y[i] else "—"

    for loss in LOSSES:
        lines.append(f"| {loss} % | {ratio(loss, 'ss-quic', 'ss-tcp', 0)}; {ratio(loss, 'ss-quic', 'ss-tcp')} | "
                     f"{ratio(loss, 'ss-relay', 'ss-tcp')} | {ratio(loss, 'st-quic', 'st-tcp')} | "
                     f"{ratio(loss, 'ss-tcp', 'st-tcp')} | {ratio(loss, 'ss-quic', 'st-quic')} |")
    lines.append("")
    lines.append("Conditions: " + json.dumps(conditions))
    return "\n".join(lines)


def dataset(mib):
    scale = mib / 1024
    path = os.path.join(ROOT, "data", f"large-{scale:g}")
    subprocess.run([sys.executable, os.path.join(HERE, "gen_data.py"), path, "large", str(scale), SEED], check=True)
    return path


def main():
    global BIN
    if os.geteuid() != 0:
        sys.exit("bench/carriers.py needs root (network namespaces, tc, nftables)")
    for tool in ("ip", "tc", "nft", "iptables", "syncthing", "ss", "cc"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing (apt-get install iproute2 nftables iptables syncthing gcc)")
    if not os.path.exists(BIN):
        sys.exit(f"{BIN} is missing: cargo build --release -p cli")
    os.makedirs(OUT, exist_ok=True)
    srcs, manifests, sizes = {}, {}, {}
    for loss in LOSSES:
        mib = MIB if float(loss) == 0 else MIB_LOSSY
        srcs[loss] = dataset(mib)
        manifests[loss] = load_manifest(srcs[loss])
        sizes[loss] = sum(manifests[loss].values())
    for p in set(srcs.values()):  # the sources in the page cache
        subprocess.run(["tar", "cf", "/dev/null", "."], cwd=p)
    work = fresh(f"/var/tmp/swarmsync-carriers-{os.getpid()}")
    with open(os.path.join(work, "delay_line.c"), "w") as f:
        f.write(DELAY_LINE_C)
    # A copy of the binary: the shared target/ may be rebuilt by someone during the run.
    shutil.copy2(BIN, os.path.join(work, "swarmsync"))
    BIN = os.path.join(work, "swarmsync")
    delay_line = os.path.join(work, "delay_line")
    sh("cc", "-O2", "-o", delay_line, os.path.join(work, "delay_line.c"))
    conditions = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "loadavg_before": open("/proc/loadavg").read().split()[:3], "rounds": ROUNDS,
        "mib": {l: sizes[l] / 2**20 for l in LOSSES}, "rate": RATE, "delay_one_way": DELAY,
        "losses_pct": LOSSES, "tcp_cc": TCP_CC, "relay_rate_limit": RELAY_RATE,
        "swarmsync": sh(BIN, "--version").strip() + ", binary of " + time.strftime(
            "%Y-%m-%d %H:%M UTC", time.gmtime(os.path.getmtime(BIN))), "syncthing": sh("syncthing", "--version").split()[1],
        "kernel": os.uname().release, "nproc": os.cpu_count(),
    }
    results, failures = {}, []
    net = None
    started = time.monotonic()

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    try:
        net = Net(delay_line, OUT)
        stopped_early = False
        for rnd in range(ROUNDS):
            for li, loss in enumerate(LOSSES):
                conditions["link"] = net.shape(loss)
                k = (rnd + li) % len(CASES)
                for case in CASES[k:] + CASES[:k]:
                    if time.monotonic() - started > TOTAL_TIMEOUT:
                        stopped_early = True
                        break
                    net.firewall(case)
                    run_dir = fresh(os.path.join(work, "run"))
                    log(f"round {rnd + 1}/{ROUNDS} loss {loss}% {case}")
                    try:
                        r, dst = RUNNERS[case](net, case, srcs[loss], run_dir, manifests[loss])
                        verify(srcs[loss], dst, manifests[loss])
                        r["round"] = rnd + 1
                        log(f"  {r['wall']:.2f} s from start, after connect {r['after_connect'] or 0:.2f} s, "
                            f"{sizes[loss] / r['wall'] / 1e6:.2f} MB/s, carrier {r['carrier']}, "
                            f"CPU {r['cpu_src']:.1f}+{r['cpu_dst']:.1f} s, TCP cc {r.get('tcp_cc')}, "
                            + ", ".join(f"{k} {r[k]}" for k in ("b_udp_rcvbuf_errors", "a_tcp_retrans",
                                                                 "r_tcp_retrans", "tbf_drops_to_b")))
                    except Exception as e:  # noqa: BLE001 - reported, fails the run
                        log(f"  FAILED: {e}")
                        failures.append(f"round {rnd + 1} loss {loss}% {case}: {e}")
                        keep = os.path.join(OUT, f"failed-r{rnd + 1}-loss{loss}-{case}")
                        shutil.rmtree(keep, ignore_errors=True)
                        shutil.copytree(run_dir, keep, ignore=shutil.ignore_patterns("dst", "*.bin", "index-*"))
                        log(f"  logs kept in {keep}")
                        r = None
                    finally:
                        shutil.rmtree(os.path.join(run_dir, "dst"), ignore_errors=True)
                    results.setdefault(loss, {}).setdefault(case, []).append(r)
                net.firewall("none")
            if stopped_early:
                log(f"BENCH_TIMEOUT ({TOTAL_TIMEOUT:.0f} s) reached: stopping after round {rnd + 1}")
                conditions["stopped_early_in_round"] = rnd + 1
                break
    except KeyboardInterrupt as e:
        log(f"interrupted ({e}); cleaning up")
        failures.append(f"interrupted: {e}")
    finally:
        if net:
            conditions["delay_line_cpu_s"] = net.delay_line_cpu()
            net.close()
        shutil.rmtree(work, ignore_errors=True)
    conditions["loadavg_after"] = open("/proc/loadavg").read().split()[:3]
    conditions["minutes"] = round((time.monotonic() - started) / 60, 1)
    write_results(OUT, report(results, sizes, conditions), failures,
                  {"results": results, "conditions": conditions, "failures": failures})
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
