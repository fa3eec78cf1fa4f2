#!/usr/bin/env python3
"""The `swarm` case of bench/harness.py: one empty peer E and three full peers S0, S1, S2,
each in its own network namespace, each full peer's uplink capped with tbf; E's rate
against the sum of the caps. Not run by hand: harness.py (inside run.sh's namespace)
builds the network once per run, seeds the full peers once per tool, then runs one
timed transfer per tool and round.

The network (no route out of any of these namespaces; nothing leaves the machine):

    S0 10.97.0.10 ─┐
    S1 10.97.0.11 ─┼─ bridge swbr0 (10.97.0.1) in the harness's namespace
    S2 10.97.0.12 ─┤
    E  10.97.0.20 ─┘

The caps: `tc qdisc replace dev eth0 root tbf rate CAP burst 32kb limit 256kb` on each
full peer's own eth0 (its uplink, towards the bridge); E's uplink and the downlinks are
not shaped. This kernel has no netem, and none is needed: the bridge adds no delay.
Bytes on the wire: nftables counters in E's namespace, per full peer and direction (IP
bytes), so the report shows which share each full peer served.

Seeding (once per run and tool, untimed, caps off): S0 holds the `large` dataset; S1 and
S2 start empty and get it from S0 with the same tool, so the three have the same
history (as a real swarm's seeders would: with three independent scans Syncthing would
see three concurrent versions and pull only from the one whose version wins). Every
round then restarts the three (their rescan is not timed), and E starts empty:
  swarmsync  E = `swarmsync sync DIR --secret KEY --known-host S0 --known-host S1
             --known-host S2` (discovery off); the timer starts when E is launched;
  Syncthing  E's folder (fresh database, the same device key every round) starts paused;
             the timer starts when it is unpaused, once E is connected to all three.
"""
import json
import os
import re
import shutil
import time
import xml.etree.ElementTree as ET

import harness as H

CAP = os.environ.get("BENCH_SWARM_CAP", "100mbit")
NS = os.environ.get("BENCH_NS", f"swarmsync-bench-{os.getpid()}")
NET = "10.97.0"
HUB = f"{NET}.1"
ADDR = {"s0": f"{NET}.10", "s1": f"{NET}.11", "s2": f"{NET}.12", "e": f"{NET}.20"}
SEEDERS = ("s0", "s1", "s2")
SS_PORT = 22001
ST_PORT = 22000
ST_GUI = 8384
BRIDGE = "swbr0"


sh = H.sh


def parse_rate(s):
    m = re.fullmatch(r"([\d.]+)\s*([kmg]?)(bit|bps)", s.lower())
    if not m:
        raise SystemExit(f"BENCH_SWARM_CAP {s!r}: use e.g. 100mbit")
    v = float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[m.group(2)]
    return v / 8 if m.group(3) == "bit" else v  # bytes per second


class Swarm:
    def __init__(self, ds, manifest):
        self.ds, self.manifest = ds, manifest
        self.ns = {n: f"{NS}-{n}" for n in ADDR}
        self.made = []
        self.cap_bytes = parse_rate(CAP)
        self.work = os.path.join(H.RUN, "swarm")
        shutil.rmtree(self.work, ignore_errors=True)
        os.makedirs(self.work)
        self.seeded = {}
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------ the network

    def _build(self):
        sh("ip", "link", "add", BRIDGE, "type", "bridge")
        self.made.append(("link", BRIDGE))
        sh("ip", "addr", "add", f"{HUB}/24", "dev", BRIDGE)
        sh("ip", "link", "set", BRIDGE, "up")
        for name, addr in ADDR.items():
            ns = self.ns[name]
            sh("ip", "netns", "add", ns)
            self.made.append(("netns", ns))
            dev = f"sw-{name}"
            sh("ip", "link", "add", dev, "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "link", "set", dev, "master", BRIDGE, "up")
            sh("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        rules = ["table inet swarm {"]
        for s in SEEDERS:
            rules.append(f"  counter from_{s} {{ }}")
            rules.append(f"  counter to_{s} {{ }}")
        rules.append("  chain in { type filter hook input priority 0; policy accept;")
        rules += [f"    ip saddr {ADDR[s]} counter name from_{s}" for s in SEEDERS]
        rules.append("  }")
        rules.append("  chain out { type filter hook output priority 0; policy accept;")
        rules += [f"    ip daddr {ADDR[s]} counter name to_{s}" for s in SEEDERS]
        rules.append("  }")
        rules.append("}")
        sh("ip", "netns", "exec", self.ns["e"], "nft", "-f", "-", input="\n".join(rules))
    def cap(self, on):
        for s in SEEDERS:
            if on:
                sh("ip", "netns", "exec", self.ns[s], "tc", "qdisc", "replace", "dev", "eth0",
                   "root", "tbf", "rate", CAP, "burst", "32kb", "limit", "256kb")
            else:
                sh("ip", "netns", "exec", self.ns[s], "tc", "qdisc", "del", "dev", "eth0",
                   "root", check=False)

    def counters(self):
        out = {}
        for s in SEEDERS:
            for d in ("from", "to"):
                text = sh("ip", "netns", "exec", self.ns["e"], "nft", "list", "counter",
                          "inet", "swarm", f"{d}_{s}")
                m = re.search(r"bytes (\d+)", text)
                out[f"{d}_{s}"] = int(m.group(1)) if m else 0
        return out

    def tbf_drops(self):
        n = 0
        for s in SEEDERS:
            text = sh("ip", "netns", "exec", self.ns[s], "tc", "-s", "qdisc", "show", "dev",
                      "eth0", check=False)
            m = re.search(r"dropped (\d+)", text)
            n += int(m.group(1)) if m else 0
        return n

    def pids(self):
        out = []
        for kind, name in self.made:
            if kind == "netns":
                out += [int(p) for p in sh("ip", "netns", "pids", name, check=False).split()]
        return out

    def close(self):
        H.kill_all(self.pids, 10)  # every process in these namespaces was started by us
        for kind, name in reversed(self.made):
            if kind == "netns":
                sh("ip", "netns", "del", name, check=False)
            else:
                sh("ip", "link", "del", name, check=False)
        self.made = []
        shutil.rmtree(self.work, ignore_errors=True)  # the seeded copies (1 GB at 0.25)

    def spawn(self, name, args, logname, env=None):
        if os.path.exists(os.path.join(H.RUN, logname)):
            os.remove(os.path.join(H.RUN, logname))  # H.spawn appends
        return H.spawn(["ip", "netns", "exec", self.ns[name]] + args, logname, env)

    # ------------------------------------------------------------ swarmsync

    def ss_peer(self, name, folder, state, logname, extra=()):
        return self.spawn(name, [H.SWARMSYNC, "sync", folder, "--listen",
                                 f"0.0.0.0:{SS_PORT}", "--state", state] + H.SS_OFF
                          + list(extra), logname, H.ss_env())

    @staticmethod
    def ss_status_files(proc, state):
        if proc.poll() is not None:
            raise RuntimeError(f"a swarmsync peer ({state}) exited")
        try:
            with open(os.path.join(state, "status.json")) as f:
                return json.load(f).get("files")
        except (OSError, ValueError):
            return None

    def ss_seed(self):
        w = os.path.join(self.work, "ss")
        os.makedirs(w)
        dirs = {"s0": self.ds, "s1": os.path.join(w, "s1"), "s2": os.path.join(w, "s2")}
        states = {s: os.path.join(w, f"{s}-state") for s in SEEDERS}
        procs = []
        try:
            a = self.ss_peer("s0", dirs["s0"], states["s0"], "swarm-ss-seed-s0.log")
            procs.append(a)
            key = H.wait_for("swarm S0 scan", lambda: H.ss_key(a, os.path.join(
                H.RUN, "swarm-ss-seed-s0.log")), timeout=H.RUN_TIMEOUT)
            for s in ("s1", "s2"):
                os.makedirs(dirs[s])
                procs.append(self.ss_peer(s, dirs[s], states[s], f"swarm-ss-seed-{s}.log",
                                          ["--secret", key, "--known-host",
                                           f"{ADDR['s0']}:{SS_PORT}"]))
            t0 = time.monotonic()
            alive = lambda: all(p.poll() is None for p in procs)  # noqa: E731
            for s in ("s1", "s2"):
                H.wait_tree(dirs[s], self.manifest, t0 + H.RUN_TIMEOUT, alive)
                H.verify(self.ds, dirs[s], self.manifest)
            time.sleep(3)  # their indexes committed
        finally:
            for p in reversed(procs):
                H.stop(p)
        self.seeded["swarmsync"] = (key, dirs, states)
        H.log(f"  swarm: swarmsync seeders ready ({time.monotonic() - t0:.1f} s to seed 2)")

    def run_swarmsync(self, dst):
        if "swarmsync" not in self.seeded:
            self.ss_seed()
        key, dirs, states = self.seeded["swarmsync"]
        procs = []
        try:
            logs = {s: f"swarm-ss-{s}.log" for s in ADDR}
            for f in logs.values():
                if os.path.exists(os.path.join(H.RUN, f)):
                    os.remove(os.path.join(H.RUN, f))
            seeders = [self.ss_peer(s, dirs[s], states[s], logs[s]) for s in SEEDERS]
            procs += seeders
            # An unchanged rescan logs nothing; the status file in the state directory
            # says when a peer is up with its files indexed.
            for s, p in zip(SEEDERS, seeders):
                H.wait_for(f"swarm {s} up", lambda p=p, s=s: self.ss_status_files(p, states[s])
                           == len(self.manifest), timeout=H.RUN_TIMEOUT, every=0.2)
            self.cap(True)
            pids = [H.worker(p.pid) for p in seeders]
            H.quiesce()
            cpu0 = [H.proc_cpu(p) for p in pids]
            c0, d0 = self.counters(), self.tbf_drops()
            t0 = time.monotonic()
            e = self.spawn("e", [H.SWARMSYNC, "sync", dst, "--listen", f"0.0.0.0:{SS_PORT}",
                                 "--secret", key] + sum(
                (["--known-host", f"{ADDR[s]}:{SS_PORT}"] for s in SEEDERS), [])
                + H.SS_OFF, logs["e"], H.ss_env())
            procs.append(e)
            t1 = H.wait_tree(dst, self.manifest, t0 + H.RUN_TIMEOUT,
                             lambda: all(p.poll() is None for p in procs))
            r = self._result(t0, t1, c0, d0, pids, cpu0, H.worker(e.pid))
            r["peers_connected"] = float(H.log_count(os.path.join(H.RUN, logs["e"]),
                                                     "peer connected"))
            return r
        finally:
            self.cap(False)
            for p in reversed(procs):
                H.stop(p)

    # ------------------------------------------------------------ Syncthing

    def st_home(self, name, folder, devices, paused):
        home = os.path.join(self.work, "st", f"home-{name}")
        os.makedirs(home)
        sh("syncthing", "generate", f"--home={home}", "--no-default-folder")
        dev_id = ET.parse(os.path.join(home, "config.xml")).getroot().find("device").get("id")
        return home, dev_id

    def st_start(self, name, home, logname):
        return self.spawn(name, H.st_serve(home, f"{ADDR[name]}:{ST_GUI}"), logname,
                          H.st_env(os.path.join(self.work, "st")))

    def st_status(self, name):
        try:
            return H.st_get(ST_GUI, "/rest/db/status?folder=bench", host=ADDR[name])
        except Exception:  # noqa: BLE001 - not up yet
            return {}

    def st_connected(self, name, dev_id):
        return bool(H.st_connected(ST_GUI, dev_id, ADDR[name]))

    def st_seed(self):
        w = os.path.join(self.work, "st")
        os.makedirs(w)
        dirs = {"s0": self.ds, "s1": os.path.join(w, "s1"), "s2": os.path.join(w, "s2")}
        for s in ("s1", "s2"):
            os.makedirs(os.path.join(dirs[s], ".stfolder"))
        os.makedirs(os.path.join(self.ds, ".stfolder"), exist_ok=True)
        homes, ids = {}, {}
        for n in ADDR:
            homes[n], ids[n] = self.st_home(n, None, None, None)
        tcp = lambda n: f"tcp://{ADDR[n]}:{ST_PORT}"  # noqa: E731
        listen = f"tcp://0.0.0.0:{ST_PORT}"
        # Only one side of each pair dials (both dialing from their listen ports, the SYNs
        # can cross and neither connect): S1, S2 dial S0; E dials all three.
        devs = {"s0": [(ids["s1"], "dynamic"), (ids["s2"], "dynamic"), (ids["e"], "dynamic")],
                "s1": [(ids["s0"], tcp("s0")), (ids["e"], "dynamic")],
                "s2": [(ids["s0"], tcp("s0")), (ids["e"], "dynamic")]}
        for s in SEEDERS:
            H.st_config_devices(homes[s], listen, f"{ADDR[s]}:{ST_GUI}", dirs[s], ids[s],
                                devs[s], paused=False)
        H.st_config_devices(homes["e"], listen, f"{ADDR['e']}:{ST_GUI}", "@E@", ids["e"],
                            [(ids[s], tcp(s)) for s in SEEDERS], paused=True)
        pristine = os.path.join(w, "home-e-pristine")
        shutil.copytree(homes["e"], pristine)
        procs = []
        t0 = time.monotonic()
        try:
            for s in SEEDERS:
                procs.append(self.st_start(s, homes[s], f"swarm-st-seed-{s}.log"))
            alive = lambda: all(p.poll() is None for p in procs)  # noqa: E731
            for s in ("s1", "s2"):
                H.wait_tree(dirs[s], self.manifest, t0 + H.RUN_TIMEOUT, alive)
                H.verify(self.ds, dirs[s], self.manifest)

            def all_in_sync():
                if not alive():
                    raise RuntimeError("a Syncthing seeder exited")
                for s in SEEDERS:
                    st = self.st_status(s)
                    if not (st.get("state") == "idle" and st.get("needFiles") == 0
                            and st.get("localFiles") == len(self.manifest)):
                        return False
                return True

            H.wait_for("Syncthing seeders in sync", all_in_sync, timeout=120, every=0.3)
            time.sleep(2)
        finally:
            for p in reversed(procs):
                H.stop(p)
        self.seeded["syncthing"] = (homes, ids, dirs, pristine)
        H.log(f"  swarm: Syncthing seeders ready ({time.monotonic() - t0:.1f} s to seed 2)")

    def run_syncthing(self, dst):
        if "syncthing" not in self.seeded:
            self.st_seed()
        homes, ids, dirs, pristine = self.seeded["syncthing"]
        os.makedirs(os.path.join(dst, ".stfolder"), exist_ok=True)
        home_e = os.path.join(H.WORK, "st-home-e")
        shutil.copytree(pristine, home_e)
        cfg = os.path.join(home_e, "config.xml")
        with open(cfg) as f:
            text = f.read()
        with open(cfg, "w") as f:
            f.write(text.replace("@E@", dst))
        procs = []
        try:
            logs = {s: f"swarm-st-{s}.log" for s in ADDR}
            for f in logs.values():
                if os.path.exists(os.path.join(H.RUN, f)):
                    os.remove(os.path.join(H.RUN, f))
            seeders = [self.st_start(s, homes[s], logs[s]) for s in SEEDERS]
            procs += seeders
            e = self.st_start("e", home_e, logs["e"])
            procs.append(e)
            alive = lambda: all(p.poll() is None for p in procs)  # noqa: E731

            def ready():
                if not alive():
                    raise RuntimeError("a Syncthing peer exited")
                for s in SEEDERS:
                    st = self.st_status(s)
                    if st.get("state") != "idle" or st.get("localFiles") != len(self.manifest):
                        return False
                return all(self.st_connected("e", ids[s]) for s in SEEDERS)

            H.wait_for("Syncthing seeders scanned and E connected to all three", ready,
                       timeout=H.RUN_TIMEOUT, every=0.3)
            self.cap(True)
            pids = [H.worker(p.pid) for p in seeders]
            pe = H.worker(e.pid)
            H.quiesce()
            cpu0 = [H.proc_cpu(p) for p in pids]
            cpu_e0 = H.proc_cpu(pe)
            c0, d0 = self.counters(), self.tbf_drops()
            t0 = time.monotonic()
            H.st_send(ST_GUI, "PATCH", "/rest/config/folders/bench", {"paused": False},
                      host=ADDR["e"])
            t1 = H.wait_tree(dst, self.manifest, t0 + H.RUN_TIMEOUT, alive)
            r = self._result(t0, t1, c0, d0, pids, cpu0, pe, cpu_e0)
            r["peers_connected"] = float(sum(self.st_connected("e", ids[s]) for s in SEEDERS))
            return r
        finally:
            self.cap(False)
            for p in reversed(procs):
                H.stop(p)

    # ------------------------------------------------------------ both

    def _result(self, t0, t1, c0, d0, pids, cpu0, pe, cpu_e0=0.0):
        c1 = self.counters()
        size = sum(self.manifest.values())
        cpu_s = sum(H.proc_cpu(p) - c for p, c in zip(pids, cpu0))
        cpu_e = H.proc_cpu(pe) - cpu_e0
        wall = t1 - t0
        r = H.Result(wall=wall, cpu=cpu_s + cpu_e, cpu_src=cpu_s, cpu_dst=cpu_e,
                     rss_src=max(H.proc_hwm(p) for p in pids), rss_dst=H.proc_hwm(pe),
                     caps_MBps=3 * self.cap_bytes / 1e6,
                     rate_of_caps=size / wall / (3 * self.cap_bytes),
                     tbf_drops=float(self.tbf_drops() - d0))
        wire = 0
        for s in SEEDERS:
            got = c1[f"from_{s}"] - c0[f"from_{s}"]
            sent = c1[f"to_{s}"] - c0[f"to_{s}"]
            r[f"from_{s}"] = got
            wire += got + sent
        r["wire"] = wire
        r["wire_rate_of_caps"] = sum(r[f"from_{s}"] for s in SEEDERS) / wall / (
            3 * self.cap_bytes)
        return r
