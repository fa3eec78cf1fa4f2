#!/usr/bin/env python3
"""The comparison runs of bench/run.sh: swarmsync, Syncthing, rsync (daemon) and `cp`,
interleaved round by round, on loopback inside the network namespace run.sh made.

Not meant to be started by hand outside that namespace (it listens on fixed 127.0.0.1
ports and installs nftables counters). Settings come from the environment, see run.sh.
Prints a markdown report on stdout and writes it (and the raw JSON) under $BENCH_ROOT.
"""
import copy
import filecmp
import random
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
sys.modules.setdefault("harness", sys.modules[__name__])  # bench/swarm.py imports us
ROOT = os.environ.get("BENCH_ROOT", "/var/tmp/swarmsync-bench")
SCALE = float(os.environ.get("BENCH_SCALE", "0.25"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
PAUSE = float(os.environ.get("BENCH_PAUSE", "5"))
RUN_TIMEOUT = float(os.environ.get("BENCH_RUN_TIMEOUT", "600"))  # per run, seconds
SWARMSYNC = os.environ.get("SWARMSYNC_BIN", "target/release/swarmsync")
# `swarmsync-base`: another build (BENCH_BASE_REV in run.sh) in the same run, for an
# A/B that the machine's drift between runs cannot blur (`large` and `small` only).
SWARMSYNC_BASE = os.environ.get("SWARMSYNC_BASE_BIN")
# BENCH_PERF=1: run the swarmsync peers under `perf record --call-graph dwarf` (profiles land in
# $BENCH_ROOT/run/perf-{src,dst}-DATASET.data; the numbers of such a run are not results).
PERF = os.environ.get("BENCH_PERF", "") not in ("", "0")
PERF_FREQ = os.environ.get("BENCH_PERF_FREQ", "199")
PERF_CG = os.environ.get("BENCH_PERF_CALLGRAPH", "dwarf,16384")
# The cases of a round. BENCH_DATASETS (the older switch) alone selects among the
# transfer cases; BENCH_CASES selects among all of them.
# small-trap is last: the deletions it makes on purpose must not reach the other cases.
ALL_CASES = ["large", "small", "edit", "latency", "swarm", "small-trap"]
CASES = os.environ.get(
    "BENCH_CASES", os.environ.get("BENCH_DATASETS", " ".join(ALL_CASES))).split()
# Checked in main(), not here: carriers.py and scan.py import this module for its helpers,
# and BENCH_CASES may then hold their own case names.
# The datasets the cases read: `edit` and `swarm` use `large`, `small-trap` uses `small`.
DATASET_OF = {"large": "large", "small": "small", "small-trap": "small", "edit": "large",
              "swarm": "large"}
DATASETS = sorted({DATASET_OF[c] for c in CASES if c in DATASET_OF})
# Tools per case (the intersection with BENCH_TOOLS, in its order).
TRANSFER_TOOLS = ["swarmsync", "swarmsync-base", "syncthing", "rsync", "rsync-fsync", "cp"]
CASE_TOOLS = {
    "edit": ["swarmsync", "syncthing", "rsync"],
    "latency": ["swarmsync", "syncthing", "syncthing-delay1"],
    "swarm": ["swarmsync", "syncthing"],
}
EDIT_BYTES = 100
EDIT_TIMEOUT = float(os.environ.get("BENCH_EDIT_TIMEOUT", "120"))
LAT_SAMPLES = int(os.environ.get("BENCH_LAT_SAMPLES", "5"))
LAT_SIZE = int(os.environ.get("BENCH_LAT_SIZE", "4096"))
LAT_TIMEOUT = float(os.environ.get("BENCH_LAT_TIMEOUT", "60"))  # per sample
LAT_GAP = float(os.environ.get("BENCH_LAT_GAP", "1"))  # between samples
# The ext4 recently-deleted trap: nothing is deleted during a run; its trees go at its
# end, `sync`ed, and the next run waits until SETTLE s have passed since. ext4 without a
# journal skips a free inode whose dtime is within 60 s, or within 360 s once its
# inode-table block is dirty again, as it is as soon as one new file lands in it: so a
# round that started 65 s after the last one's deletion still paid (see BENCHMARKS.md).
SETTLE = float(os.environ.get("BENCH_SETTLE", "365"))
# Where the time of the last deletion is kept between runs (its mtime).
DELETED_STAMP = "last-deletion"
TOOLS = os.environ.get(
    "BENCH_TOOLS", "swarmsync syncthing rsync rsync-fsync cp"
).split()
if "syncthing" in TOOLS and "syncthing-delay1" not in TOOLS and os.environ.get(
        "BENCH_LAT_DELAY1", "1") not in ("", "0"):
    TOOLS.append("syncthing-delay1")  # only `latency` has it
if "swarmsync-base" in TOOLS and not SWARMSYNC_BASE:
    TOOLS.remove("swarmsync-base")  # no build to run (run.sh sets it from BENCH_BASE_REV)
RUN = os.path.join(ROOT, "run")
WORK = RUN  # the current run's own directory (main sets it); nothing in it is deleted
            # before the round ends (see SETTLE)
OUT = os.environ.get("BENCH_OUT", ROOT)  # where results.md / results.json go
CLK = os.sysconf("SC_CLK_TCK")
# Names that belong to a tool, not to the data: never compared, never copied.
META = {".sync", ".stfolder", ".stversions", ".stignore"}

PORTS = {
    "swarmsync": (22001, 22002),
    "swarmsync-base": (22011, 22012),
    "syncthing": (22101, 22102),
    "rsync": (22201,),
}
ST_GUI = (22111, 22112)
ST_KEY = "benchbenchbenchbenchbench"


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes


def proc_cpu(pid):
    """utime + stime of a live process (all its threads), seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def proc_hwm(pid):
    """Peak resident set (VmHWM) of a live process, MB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6
    return float("nan")


def children(pid):
    kids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        kids.append(int(d))
            except OSError:
                pass
    return kids


def worker(pid):
    """The process doing the work: Debian's syncthing forks a monitor even with
    --no-restart; follow single children down to the last one (at most 16 levels)."""
    for _ in range(16):
        kids = children(pid)
        if len(kids) != 1:
            break
        pid = kids[0]
    return pid


def spawn(args, logname, env=None):
    out = open(os.path.join(RUN, logname), "ab")
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.Popen(
        args, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=e,
        start_new_session=True,
    )


def stop(p, grace=20):
    """SIGTERM, then SIGKILL after `grace` seconds. Only the process we started."""
    if p is None or p.poll() is not None:
        return
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(grace)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def kill_all(pids, grace):
    """SIGTERM to every pid `pids()` lists, up to `grace` s for them to go, then SIGKILL
    to those left. For namespaces of a script's own, where it started every process."""
    for p in pids():
        try:
            os.kill(p, signal.SIGTERM)
        except ProcessLookupError:
            pass
    end = time.monotonic() + grace
    while pids() and time.monotonic() < end:
        time.sleep(0.2)
    for p in pids():
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def log_text(path):
    """A log file's text without ANSI colours ("" if it does not exist yet)."""
    try:
        with open(path, errors="replace") as f:
            return re.sub(r"\x1b\[[0-9;]*m", "", f.read())
    except FileNotFoundError:
        return ""


def wait_for(what, cond, timeout=120, every=0.1):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(every)
    raise RuntimeError(f"timed out waiting for {what}")


def quiesce(pause=None):
    """The same state before every timer: caches written back, then a fixed pause
    (PAUSE, or the caller's own)."""
    subprocess.run(["sync"], check=True)
    time.sleep(PAUSE if pause is None else pause)


def sh(*args, check=True, input=None):
    """A command's stdout; raises with its stderr if it fails (unless check=False)."""
    r = subprocess.run(args, capture_output=True, text=True, input=input)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {r.stderr.strip()}")
    return r.stdout


# ---------------------------------------------------------------- trees


def load_manifest(ds):
    entries = {}
    with open(ds + ".manifest") as f:
        for line in f:
            if line.startswith("#"):
                continue
            rel, size = line.rstrip("\n").split("\t")
            entries[rel] = int(size)
    return entries


def wait_tree(dst, manifest, deadline, proc_alive=lambda: True):
    """Returns the monotonic time at which every file of the manifest sits under its
    final name with its final size. Only files still missing are looked at again, and
    the poll interval grows with the cost of a poll, so the waiter stays cheap (all the
    tools write a temporary and rename it into place, so name + size means complete)."""
    missing = dict(manifest)
    while True:
        t = time.monotonic()
        for rel, size in list(missing.items()):
            try:
                if os.stat(os.path.join(dst, rel)).st_size == size:
                    del missing[rel]
            except FileNotFoundError:
                pass
        if not missing:
            return time.monotonic()
        if t > deadline:
            raise RuntimeError(f"{len(missing)} files still missing at the deadline")
        if not proc_alive():
            raise RuntimeError("a peer exited before the tree was complete")
        cost = time.monotonic() - t
        time.sleep(min(1.0, max(0.05, 10 * cost)))


def verify(src, dst, manifest):
    """Byte-for-byte: the same set of files (tool metadata aside), the same contents."""
    found = {}
    for d, dirs, files in os.walk(dst):
        if d == dst:
            dirs[:] = [x for x in dirs if x not in META]
        for name in files:
            p = os.path.join(d, name)
            rel = os.path.relpath(p, dst)
            if d == dst and name in META:
                continue
            found[rel] = os.path.getsize(p)
    if set(found) != set(manifest):
        extra = sorted(set(found) - set(manifest))[:5]
        lost = sorted(set(manifest) - set(found))[:5]
        raise RuntimeError(f"tree differs: extra {extra} missing {lost}")
    for rel in manifest:
        if not filecmp.cmp(os.path.join(src, rel), os.path.join(dst, rel), shallow=False):
            raise RuntimeError(f"content differs: {rel}")


# ---------------------------------------------------------------- wire counters


def nft_setup():
    rules = ["table inet bench {"]
    for tool, ports in PORTS.items():
        rules.append(f"  counter {tool.replace('-', '_')} {{ }}")
    rules.append("  chain out { type filter hook output priority 0; policy accept;")
    for tool, ports in PORTS.items():
        s = "{ " + ", ".join(map(str, ports)) + " }"
        n = tool.replace("-", "_")
        rules.append(f"    meta l4proto {{ tcp, udp }} th dport {s} counter name {n}")
        rules.append(
            f"    meta l4proto {{ tcp, udp }} th sport {s} th dport != {s} counter name {n}"
        )
    rules.append("  }")
    rules.append("}")
    r = subprocess.run(["nft", "-f", "-"], input="\n".join(rules), text=True,
                       capture_output=True)
    if r.returncode != 0:
        log("nft counters unavailable:", r.stderr.strip())
        return False
    return True


def nft_bytes(tool):
    try:
        out = subprocess.run(
            ["nft", "-j", "list", "counter", "inet", "bench", tool],
            capture_output=True, text=True, check=True,
        ).stdout
        for item in json.loads(out)["nftables"]:
            if "counter" in item:
                return item["counter"]["bytes"]
    except Exception:  # noqa: BLE001 - counters are optional
        pass
    return None


# ---------------------------------------------------------------- the tools


def fresh(path):
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


class Result(dict):
    pass


def run_swarmsync(src, dst, manifest, tool="swarmsync", binary=SWARMSYNC):
    sport, dport = PORTS[tool]
    state = os.path.join(WORK, "ss-src-state")
    shutil.rmtree(state, ignore_errors=True)
    for f in ("ss-src.log", "ss-dst.log"):
        if os.path.exists(os.path.join(RUN, f)):
            os.remove(os.path.join(RUN, f))
    env = ss_env()
    a = b = None
    ds = os.path.basename(src)

    def pre(side):
        if not PERF:
            return []
        return ["perf", "record", "-F", PERF_FREQ, "--call-graph", PERF_CG, "-o",
                os.path.join(RUN, f"perf-{side}-{ds}.data"), "--"]

    try:
        t_start = time.monotonic()
        a = spawn(pre("src") + [binary, "sync", src, "--listen", f"127.0.0.1:{sport}",
                   "--state", state] + SS_OFF, "ss-src.log", env)
        logf = os.path.join(RUN, "ss-src.log")

        def ready():
            text = open(logf, errors="replace").read()
            if a.poll() is not None:
                raise RuntimeError("swarmsync source exited:\n" + text[-2000:])
            return printed_key(text)

        key = wait_for("swarmsync source scan", ready, timeout=RUN_TIMEOUT)
        scan_s = time.monotonic() - t_start
        pa = worker(a.pid)
        quiesce()
        cpu_a0 = proc_cpu(pa)
        n0 = nft_bytes(tool.replace("-", "_"))
        t0 = time.monotonic()
        b = spawn(pre("dst") + [binary, "sync", dst, "--listen", f"127.0.0.1:{dport}",
                   "--secret", key, "--known-host", f"127.0.0.1:{sport}"] + SS_OFF,
                  "ss-dst.log", env)
        t1 = wait_tree(dst, manifest, t0 + RUN_TIMEOUT,
                       lambda: a.poll() is None and b.poll() is None)
        n1 = nft_bytes(tool.replace("-", "_"))
        pb = worker(b.pid)
        ca, cb = proc_cpu(pa) - cpu_a0, proc_cpu(pb)
        r = Result(wall=t1 - t0, cpu=ca + cb, cpu_src=ca, cpu_dst=cb,
                   rss_src=proc_hwm(pa), rss_dst=proc_hwm(pb), scan=scan_s)
        if n0 is not None and n1 is not None:
            r["wire"] = n1 - n0
        return r
    finally:
        for p in (b, a):
            if p is not None and p.poll() is None and PERF:
                # Stop the profiled process, so that perf writes its data and exits.
                w = worker(p.pid)
                if w != p.pid:
                    os.kill(w, signal.SIGTERM)
        stop(b)
        stop(a)


def st_config(home, port, gui, folder_path, me, other, other_port, paused, **kw):
    """Two devices on 127.0.0.1, each given the other's address."""
    st_config_devices(home, f"tcp://127.0.0.1:{port}", f"127.0.0.1:{gui}", folder_path, me,
                      [(other, f"tcp://127.0.0.1:{other_port}")], paused, **kw)


# Every Syncthing feature that could reach outside the benchmark's namespaces (global
# discovery, relays, NAT, STUN, usage / crash reporting, upgrades) off.
ST_OFFLINE = {
    "globalAnnounceServer": "",
    "globalAnnounceEnabled": "false",
    "localAnnounceEnabled": "false",
    "relaysEnabled": "false",
    "natEnabled": "false",
    "startBrowser": "false",
    "urAccepted": "-1",
    "urSeen": "3",
    "urURL": "",
    "autoUpgradeIntervalH": "0",
    "releasesURL": "",
    "crashReportingEnabled": "false",
    "crashReportingURL": "",
    "stunServer": "",
    "stunKeepaliveStartS": "0",
    "stunKeepaliveMinS": "0",
    "announceLANAddresses": "false",
    "restartOnWakeup": "false",
    # Syncthing renices itself by default; on a shared 2-core machine that would
    # hand it a handicap swarmsync does not have.
    "setLowPriority": "false",
}


def st_offline(options, first=None):
    """Sets `first` (a dict, in its order), then ST_OFFLINE, on a config.xml <options>."""
    for k, v in {**(first or {}), **ST_OFFLINE}.items():
        el = options.find(k)
        if el is None:
            el = ET.SubElement(options, k)
        el.text = v


def st_config_devices(home, listen, gui_addr, folder_path, me, devices, paused,
                      watcher=False, watch_delay=10):
    """Edits a fresh home's config.xml before its first start: every discovery / relay /
    NAT / reporting feature off, the folder `bench` at `folder_path` shared with
    `devices` [(device id, address or "dynamic")], the watcher off (or on with its delay)
    and no periodic rescan."""
    cfg = os.path.join(home, "config.xml")
    tree = ET.parse(cfg)
    root = tree.getroot()
    o = root.find("options")
    for el in o.findall("listenAddress"):
        o.remove(el)
    ET.SubElement(o, "listenAddress").text = listen
    st_offline(o)
    g = root.find("gui")
    g.find("address").text = gui_addr
    g.find("apikey").text = ST_KEY
    defaults = root.find("defaults")
    for dev_id, addr in devices:
        dev = copy.deepcopy(defaults.find("device"))
        dev.set("id", dev_id)
        dev.set("name", "peer-" + dev_id[:7])
        dev.find("address").text = addr
        root.insert(1, dev)
    fo = copy.deepcopy(defaults.find("folder"))
    fo.set("id", "bench")
    fo.set("label", "bench")
    fo.set("path", folder_path)
    fo.set("fsWatcherEnabled", "true" if watcher else "false")
    fo.set("fsWatcherDelayS", str(watch_delay))
    fo.set("rescanIntervalS", "0")
    for d in fo.findall("device"):
        fo.remove(d)
    for dev_id in [me] + [d for d, _ in devices]:
        d = ET.Element("device", {"id": dev_id, "introducedBy": ""})
        ET.SubElement(d, "encryptionPassword")
        fo.insert(1, d)
    fo.find("paused").text = "true" if paused else "false"
    root.insert(0, fo)
    tree.write(cfg)


def st_serve(home, gui_addr, key=ST_KEY):
    """The argv of one `syncthing serve` (GUI / REST on `gui_addr`, host:port)."""
    return ["syncthing", "serve", f"--home={home}", "--no-browser", "--no-restart",
            "--no-upgrade", f"--gui-address=http://{gui_addr}", f"--gui-apikey={key}",
            "--logflags=0"]


def st_env(home):
    """Its environment: no default folder, no upgrade, no restart, $HOME = `home`."""
    return {"STNODEFAULTFOLDER": "1", "STNOUPGRADE": "1", "STNORESTART": "1", "HOME": home}


def st_homes():
    """Two fresh Syncthing homes under WORK (src, dst) and their device ids."""
    homes = [fresh(os.path.join(WORK, "st-src")), fresh(os.path.join(WORK, "st-dst"))]
    ids = []
    for h in homes:
        subprocess.run(["syncthing", "generate", f"--home={h}", "--no-default-folder"],
                       check=True, capture_output=True)
        ids.append(ET.parse(os.path.join(h, "config.xml")).getroot()
                   .find("device").get("id"))
    return homes, ids


def st_get(gui, path, host="127.0.0.1"):
    req = urllib.request.Request(f"http://{host}:{gui}{path}",
                                 headers={"X-API-Key": ST_KEY})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"null")


def st_connected(gui, dev_id, host="127.0.0.1"):
    """Whether the instance with its REST API on host:gui is connected to `dev_id`
    (falsy also while it is not up)."""
    try:
        c = st_get(gui, "/rest/system/connections", host)["connections"]
        return c.get(dev_id, {}).get("connected")
    except Exception:  # noqa: BLE001 - not up yet
        return False


def st_send(gui, method, path, body, host="127.0.0.1", timeout=10):
    req = urllib.request.Request(
        f"http://{host}:{gui}{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"X-API-Key": ST_KEY, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read()


def run_syncthing(src, dst, manifest):
    homes, ids = st_homes()
    os.makedirs(os.path.join(src, ".stfolder"), exist_ok=True)
    os.makedirs(os.path.join(dst, ".stfolder"), exist_ok=True)
    sp, dp = PORTS["syncthing"]
    st_config(homes[0], sp, ST_GUI[0], src, ids[0], ids[1], dp, paused=False)
    st_config(homes[1], dp, ST_GUI[1], dst, ids[1], ids[0], sp, paused=True)
    env = st_env(RUN)
    procs = []
    try:
        t_start = time.monotonic()
        for h, gui, name in ((homes[0], ST_GUI[0], "st-src.log"),
                             (homes[1], ST_GUI[1], "st-dst.log")):
            procs.append(spawn(st_serve(h, f"127.0.0.1:{gui}"), name, env))
        a, b = procs

        def scanned():
            for p in procs:
                if p.poll() is not None:
                    raise RuntimeError("syncthing exited early")
            try:
                s = st_get(ST_GUI[0], "/rest/db/status?folder=bench")
            except Exception:  # noqa: BLE001 - not up yet
                return False
            return s.get("state") == "idle" and s.get("localFiles") == len(manifest)

        wait_for("syncthing source scan", scanned, timeout=RUN_TIMEOUT, every=0.2)
        scan_s = time.monotonic() - t_start

        def connected():
            return st_connected(ST_GUI[1], ids[0])

        wait_for("syncthing peers connected", connected, timeout=120, every=0.2)
        pids = [worker(p.pid) for p in procs]
        quiesce()
        cpu0 = [proc_cpu(pid) for pid in pids]
        n0 = nft_bytes("syncthing")
        t0 = time.monotonic()
        st_send(ST_GUI[1], "PATCH", "/rest/config/folders/bench", {"paused": False})
        t1 = wait_tree(dst, manifest, t0 + RUN_TIMEOUT,
                       lambda: all(p.poll() is None for p in procs))
        n1 = nft_bytes("syncthing")
        cpu = [proc_cpu(pid) - c0 for pid, c0 in zip(pids, cpu0)]
        r = Result(wall=t1 - t0, cpu=sum(cpu), cpu_src=cpu[0], cpu_dst=cpu[1],
                   rss_src=proc_hwm(pids[0]), rss_dst=proc_hwm(pids[1]), scan=scan_s,
                   monitor_pid_differs=float(pids[0] != a.pid))
        if n0 is not None and n1 is not None:
            r["wire"] = n1 - n0
        return r
    finally:
        for p in reversed(procs):
            stop(p)


def rusage_of(path):
    with open(path) as f:
        return json.load(f)


def run_rsync(src, dst, manifest, fsync, before_timer=None, pause=True):
    """`before_timer`: called right before the timer starts (the `edit` case saves its
    edit there); `pause=False` skips the `sync` + pause (an untimed initial run)."""
    port = PORTS["rsync"][0]
    conf = os.path.join(RUN, "rsyncd.conf")
    with open(conf, "w") as f:
        f.write(f"use chroot = no\nuid = root\ngid = root\n"
                f"pid file = {RUN}/rsyncd.pid\n"
                f"[data]\n  path = {src}\n  read only = yes\n")
    ru_d = os.path.join(RUN, "rsyncd.rusage")
    ru_c = os.path.join(RUN, "rsync.rusage")
    for p in (ru_d, ru_c, os.path.join(RUN, "rsyncd.pid")):
        if os.path.exists(p):
            os.remove(p)
    rusage = [sys.executable, os.path.join(HERE, "rusage.py")]
    d = spawn(rusage + [ru_d, "rsync", "--daemon", "--no-detach", f"--port={port}",
                        "--address=127.0.0.1", f"--config={conf}"], "rsyncd.log")
    try:
        def listening():
            r = subprocess.run(["ss", "-Hltn", f"sport = :{port}"],
                               capture_output=True, text=True)
            return str(port) in r.stdout

        wait_for("rsync daemon", listening, timeout=30)
        if pause:
            quiesce()
        if before_timer:
            before_timer()
        n0 = nft_bytes("rsync")
        t0 = time.monotonic()
        args = ["rsync", "-a"] + (["--fsync"] if fsync else []) + [
            f"--exclude=/{m}" for m in sorted(META)] + [
            f"rsync://127.0.0.1:{port}/data/", dst + "/"]
        errf = os.path.join(RUN, "rsync-client.log")
        with open(errf, "w") as err:
            c = subprocess.Popen(rusage + [ru_c] + args, stdin=subprocess.DEVNULL,
                                 stdout=err, stderr=err, start_new_session=True)
        try:
            rc = c.wait(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(c.pid, signal.SIGKILL)  # the wrapper and the rsync it started
            c.wait()
            raise RuntimeError("rsync did not finish before the deadline")
        t1 = time.monotonic()
        if rc != 0:
            raise RuntimeError(f"rsync failed: {open(errf).read()[-2000:]}")
        n1 = nft_bytes("rsync")
    finally:
        stop(d)
    rc, rd = rusage_of(ru_c), rusage_of(ru_d)
    r = Result(wall=t1 - t0, cpu=rc["cpu"] + rd["cpu"], cpu_src=rd["cpu"],
               cpu_dst=rc["cpu"], rss_src=rd["maxrss_mb"], rss_dst=rc["maxrss_mb"])
    if n0 is not None and n1 is not None:
        r["wire"] = n1 - n0
    return r


def run_cp(src, dst, manifest):
    os.rmdir(dst)
    quiesce()
    t0 = time.monotonic()
    subprocess.run(["cp", "-r", src, dst], check=True)
    subprocess.run(["sync"], check=True)
    t1 = time.monotonic()
    for m in META:
        p = os.path.join(dst, m)
        if os.path.isdir(p):
            shutil.rmtree(p)
    return Result(wall=t1 - t0)



# ---------------------------------------------------------------- edit and latency

SS_OFF = ["--no-lan", "--no-dht", "--no-tracker", "--no-pex", "--no-relay", "--no-upnp"]


def ss_env():
    return {"RUST_LOG": os.environ.get("BENCH_RUST_LOG", "info")}


def printed_key(text):
    """The folder key in a swarmsync peer's log text, once its first scan is done."""
    key = None
    for line in text.splitlines():
        if line.startswith("read-write:"):
            key = line.split()[1]
    return key if key and "scan:" in text else None


def ss_key(proc, logf):
    """The folder key a swarmsync peer printed, once its first scan is done."""
    text = open(logf, errors="replace").read()
    if proc.poll() is not None:
        raise RuntimeError(f"swarmsync {logf} exited:\n" + text[-2000:])
    return printed_key(text)


def log_count(logf, pattern):
    try:
        return open(logf, errors="replace").read().count(pattern)
    except FileNotFoundError:
        return 0


def ss_pair(src, dst, tag):
    """Two swarmsync peers on 127.0.0.1 (the source with its state outside its folder),
    the destination joined; returns (a, b, logs) once the destination is connected."""
    sport, dport = PORTS["swarmsync"]
    logs = (f"ss-{tag}-a.log", f"ss-{tag}-b.log")
    for f in logs:
        if os.path.exists(os.path.join(RUN, f)):
            os.remove(os.path.join(RUN, f))
    a = spawn([SWARMSYNC, "sync", src, "--listen", f"127.0.0.1:{sport}", "--state",
               os.path.join(WORK, "ss-a-state")] + SS_OFF, logs[0], ss_env())
    b = None
    try:
        key = wait_for("swarmsync A scan", lambda: ss_key(a, os.path.join(RUN, logs[0])),
                       timeout=RUN_TIMEOUT)
        b = spawn([SWARMSYNC, "sync", dst, "--listen", f"127.0.0.1:{dport}", "--secret", key,
                   "--known-host", f"127.0.0.1:{sport}"] + SS_OFF, logs[1], ss_env())
        def connected():
            if a.poll() is not None or b.poll() is not None:
                raise RuntimeError("a swarmsync peer exited before connecting")
            return log_count(os.path.join(RUN, logs[1]), "peer connected") > 0

        wait_for("swarmsync B connected", connected, timeout=60)
    except BaseException:
        stop(b)
        stop(a)
        raise
    return a, b, logs


def st_pair(src, dst, watcher=False, watch_delay=10, dst_paused=False):
    """Two Syncthing instances on 127.0.0.1 (fresh homes under WORK); returns (procs, ids)
    once the source has scanned and the two are connected."""
    homes, ids = st_homes()
    for d in (src, dst):
        os.makedirs(os.path.join(d, ".stfolder"), exist_ok=True)
    sp, dp = PORTS["syncthing"]
    kw = {"watcher": watcher, "watch_delay": watch_delay}
    st_config(homes[0], sp, ST_GUI[0], src, ids[0], ids[1], dp, paused=False, **kw)
    st_config(homes[1], dp, ST_GUI[1], dst, ids[1], ids[0], sp, paused=dst_paused, **kw)
    env = st_env(WORK)
    procs = []
    try:
        for h, gui, name in ((homes[0], ST_GUI[0], "st-src.log"),
                             (homes[1], ST_GUI[1], "st-dst.log")):
            if os.path.exists(os.path.join(RUN, name)):
                os.remove(os.path.join(RUN, name))
            procs.append(spawn(st_serve(h, f"127.0.0.1:{gui}"), name, env))

        def alive():
            for p in procs:
                if p.poll() is not None:
                    raise RuntimeError("syncthing exited early")
            return True

        def idle(gui, files=None):
            alive()
            try:
                s = st_get(gui, "/rest/db/status?folder=bench")
            except Exception:  # noqa: BLE001 - not up yet
                return False
            return s.get("state") == "idle" and (files is None or s.get("localFiles") == files)

        wait_for("syncthing source scan", lambda: idle(ST_GUI[0]), timeout=RUN_TIMEOUT,
                 every=0.2)

        def connected():
            alive()
            return st_connected(ST_GUI[1], ids[0])

        wait_for("syncthing peers connected", connected, timeout=120, every=0.2)
    except BaseException:
        for p in reversed(procs):
            stop(p)
        raise
    return procs, ids


def st_in_sync(gui):
    """The folder idle with nothing needed (Syncthing's own view)."""
    try:
        s = st_get(gui, "/rest/db/status?folder=bench")
    except Exception:  # noqa: BLE001
        return False
    return s.get("state") == "idle" and s.get("needFiles") == 0 and s.get("needBytes") == 0


def wait_content(dst, src, size, deadline, alive=lambda: True, every=0.01):
    """Monotonic time at which `dst` has `src`'s size and bytes (the size is polled every
    `every` s; the bytes compared when it matches). Raises at the deadline."""
    last_cmp = None
    while True:
        t = time.monotonic()
        try:
            st = os.stat(dst)
            if st.st_size == size and (st.st_mtime_ns, st.st_ino) != last_cmp:
                last_cmp = (st.st_mtime_ns, st.st_ino)
                if filecmp.cmp(src, dst, shallow=False):
                    return t
        except FileNotFoundError:
            pass
        if t > deadline:
            raise RuntimeError(f"{dst} did not get the new content before the deadline")
        if not alive():
            raise RuntimeError("a peer exited before the new content arrived")
        time.sleep(every)


class Edit:
    """The `edit` case's file: one file of `large` copied into a folder of its own; the
    edit inserts EDIT_BYTES (seeded) in its middle like an editor saves: the whole new
    content written to a temporary *outside* the folder (so no tool sees a stray
    temporary), fsync'ed, and renamed over the file. The timer starts when the rename
    returns."""

    def __init__(self, ds_large):
        self.name = sorted(f for f in os.listdir(ds_large) if f.endswith(".bin"))[0]
        self.orig = os.path.join(ds_large, self.name)
        self.src = os.path.join(WORK, "src")
        os.makedirs(self.src, exist_ok=True)
        shutil.copy2(self.orig, os.path.join(self.src, self.name))
        self.path = os.path.join(self.src, self.name)
        self.size = os.path.getsize(self.path)
        self.manifest = {self.name: self.size}
        self.new_size = self.size + EDIT_BYTES

    def save(self):
        with open(self.path, "rb") as f:
            data = f.read()
        mid = len(data) // 2
        ins = random.Random(f"edit-{os.environ.get('BENCH_SEED', '20261201')}").randbytes(
            EDIT_BYTES)
        tmp = os.path.join(WORK, "edit.tmp")
        with open(tmp, "wb") as f:
            f.write(data[:mid])
            f.write(ins)
            f.write(data[mid:])
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, self.path)
        self.manifest = {self.name: self.new_size}
        return time.monotonic()


def run_edit(tool, ds_large):
    ed = Edit(ds_large)
    dst = os.path.join(WORK, "dst")
    os.makedirs(dst, exist_ok=True)
    dst_file = os.path.join(dst, ed.name)
    if tool == "rsync":
        first = run_rsync(ed.src, dst, ed.manifest, fsync=False, pause=False)
        verify(ed.src, dst, ed.manifest)
        t_save = []
        r = run_rsync(ed.src, dst, None, fsync=False,
                      before_timer=lambda: t_save.append(ed.save()))
        r["initial"] = first["wall"]
        r["wire_settled"] = r.get("wire")
        return r, ed.src, dst, ed.manifest
    if tool == "swarmsync":
        t_i = time.monotonic()
        a, b, _ = ss_pair(ed.src, dst, "edit")
        procs = [a, b]
        counter = "swarmsync"
    else:
        t_i = time.monotonic()
        procs, _ids = st_pair(ed.src, dst)
        counter = "syncthing"
    try:
        alive = lambda: all(p.poll() is None for p in procs)  # noqa: E731
        wait_tree(dst, ed.manifest, t_i + RUN_TIMEOUT, alive)
        initial = time.monotonic() - t_i
        verify(ed.src, dst, ed.manifest)
        if tool == "syncthing":
            wait_for("syncthing destination in sync", lambda: st_in_sync(ST_GUI[1]),
                     timeout=60, every=0.2)
        pids = [worker(p.pid) for p in procs]
        quiesce()
        cpu0 = [proc_cpu(p) for p in pids]
        n0 = nft_bytes(counter)
        t0 = ed.save()
        if tool == "syncthing":
            # The watcher is off (as in `large`/`small`): the save is followed at once by
            # a scan of that one file, as an editor integration or the watcher would ask.
            st_send(ST_GUI[0], "POST", f"/rest/db/scan?folder=bench&sub={ed.name}", None,
                    timeout=60)
        t1 = wait_content(dst_file, ed.path, ed.new_size, t0 + EDIT_TIMEOUT, alive)
        n1 = nft_bytes(counter)
        cpu = [proc_cpu(p) - c for p, c in zip(pids, cpu0)]
        time.sleep(2)  # what the edit still causes (index updates) after the content
        n2 = nft_bytes(counter)
        r = Result(wall=t1 - t0, initial=initial, cpu=sum(cpu), cpu_src=cpu[0],
                   cpu_dst=cpu[1], rss_src=proc_hwm(pids[0]), rss_dst=proc_hwm(pids[1]))
        if None not in (n0, n1, n2):
            r["wire"] = n1 - n0
            r["wire_settled"] = n2 - n0
        return r, ed.src, dst, ed.manifest
    finally:
        for p in reversed(procs):
            stop(p)


def run_latency(tool):
    """LAT_SAMPLES files of LAT_SIZE bytes saved one after the other on A (written to a
    temporary outside the folder and renamed in), each timed until it is on B with its
    bytes; the peers were started on two empty folders and are connected and idle."""
    src, dst = os.path.join(WORK, "a"), os.path.join(WORK, "b")
    os.makedirs(src)
    os.makedirs(dst)
    # One file synced first, so that "in sync" is seen, not assumed (swarmsync reports
    # no first scan of an empty folder).
    rng = random.Random(f"latency-{os.environ.get('BENCH_SEED', '20261201')}")
    with open(os.path.join(src, "seed.bin"), "wb") as f:
        f.write(rng.randbytes(LAT_SIZE))
    manifest = {"seed.bin": LAT_SIZE}
    if tool == "swarmsync":
        a, b, _ = ss_pair(src, dst, "lat")
        procs = [a, b]
    else:
        delay = 1 if tool == "syncthing-delay1" else 10
        procs, _ids = st_pair(src, dst, watcher=True, watch_delay=delay)
    try:
        alive = lambda: all(p.poll() is None for p in procs)  # noqa: E731
        wait_content(os.path.join(dst, "seed.bin"), os.path.join(src, "seed.bin"), LAT_SIZE,
                     time.monotonic() + LAT_TIMEOUT, alive)
        if tool != "swarmsync":
            wait_for("syncthing destination idle", lambda: st_in_sync(ST_GUI[1]), timeout=60,
                     every=0.2)
        pids = [worker(p.pid) for p in procs]
        quiesce()
        cpu0 = [proc_cpu(p) for p in pids]
        samples = []
        for k in range(LAT_SAMPLES):
            name = f"lat-{k}.bin"
            tmp = os.path.join(WORK, "lat.tmp")
            with open(tmp, "wb") as f:
                f.write(rng.randbytes(LAT_SIZE))
                f.flush()
                os.fsync(f.fileno())
            os.rename(tmp, os.path.join(src, name))
            t0 = time.monotonic()
            t1 = wait_content(os.path.join(dst, name), os.path.join(src, name), LAT_SIZE,
                              t0 + LAT_TIMEOUT, alive, every=0.002)
            samples.append(t1 - t0)
            manifest[name] = LAT_SIZE
            log(f"    sample {k + 1}: {t1 - t0:.3f} s")
            time.sleep(LAT_GAP)
        cpu = [proc_cpu(p) - c for p, c in zip(pids, cpu0)]
        r = Result(wall=statistics.median(samples), samples=samples, cpu=sum(cpu),
                   cpu_src=cpu[0], cpu_dst=cpu[1], rss_src=proc_hwm(pids[0]),
                   rss_dst=proc_hwm(pids[1]))
        return r, src, dst, manifest
    finally:
        for p in reversed(procs):
            stop(p)

RUNNERS = {
    "swarmsync": run_swarmsync,
    "swarmsync-base": lambda s, d, m: run_swarmsync(s, d, m, "swarmsync-base", SWARMSYNC_BASE),
    "syncthing": run_syncthing,
    "rsync": lambda s, d, m: run_rsync(s, d, m, fsync=False),
    "rsync-fsync": lambda s, d, m: run_rsync(s, d, m, fsync=True),
    "cp": run_cp,
}


# ---------------------------------------------------------------- ceilings


def cpu_ceilings(ds_large):
    out = {}
    files = sorted(
        os.path.join(ds_large, f) for f in os.listdir(ds_large) if f.endswith(".bin"))
    if shutil.which("b3sum") and files:
        size = os.path.getsize(files[0])
        subprocess.run(["cat", files[0]], stdout=subprocess.DEVNULL)
        for threads in (1, 2):
            t = time.monotonic()
            subprocess.run(["b3sum", "--num-threads", str(threads), files[0]],
                           stdout=subprocess.DEVNULL, check=True)
            out[f"blake3_{threads}t_GBps"] = size / (time.monotonic() - t) / 1e9
    r = subprocess.run(
        ["openssl", "speed", "-elapsed", "-seconds", "2", "-bytes", "16384", "-evp",
         "aes-128-gcm"], capture_output=True, text=True)
    for line in r.stdout.splitlines():
        if line.lower().startswith("aes-128-gcm"):
            kbps = line.split()[-1].rstrip("k")
            out["aes128gcm_1t_GBps"] = float(kbps) * 1000 / 1e9
    return out


# ---------------------------------------------------------------- report


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, spec=".2f"):
    return "—" if x is None else format(x, spec)


def report(results, sizes, ceil, meta):
    """Markdown: one table per kind of case, the ratios, the issue's goals."""
    lines = []
    fields = ("wall", "cpu", "cpu_src", "cpu_dst", "rss_src", "rss_dst", "wire", "scan",
              "initial", "wire_settled", "rate_of_caps", "wire_rate_of_caps", "caps_MBps",
              "from_s0", "from_s1", "from_s2", "peers_connected", "tbf_drops")
    m = {}
    for case in CASES:
        for tool in TOOLS:
            runs = results.get(case, {}).get(tool, [])
            if runs:
                m[(case, tool)] = {f: med([r.get(f) for r in runs]) for f in fields}

    def rows(case):
        """(tool, medians, runs) of every tool that has runs of `case`, in TOOLS order."""
        for tool in TOOLS:
            if (case, tool) in m:
                yield tool, m[(case, tool)], results[case][tool]

    def walls(runs):
        return ", ".join(f"{r['wall']:.2f}" for r in runs)

    def cpu_rss(mm):
        cpu = (f"{fmt(mm['cpu'])} ({fmt(mm['cpu_src'])}+{fmt(mm['cpu_dst'])})"
               if mm["cpu"] is not None else "—")
        rss = (f"{fmt(mm['rss_src'], '.1f')} / {fmt(mm['rss_dst'], '.1f')}"
               if mm["rss_src"] is not None else "—")
        return cpu, rss

    transfer = [c for c in CASES if c in ("large", "small", "small-trap")]
    if transfer:
        lines.append("| case | tool | wall s (median; all) | MB/s | CPU-s both (src+dst) "
                     "| peak RSS MB src / dst | wire MB | src scan s |")
        lines.append("|---|---|---|---|---|---|---|---|")
        for case in transfer:
            for tool, mm, runs in rows(case):
                cpu, rss = cpu_rss(mm)
                rate = sizes[DATASET_OF[case]] / mm["wall"] / 1e6
                wire = fmt(mm["wire"] / 1e6 if mm["wire"] is not None else None, ".1f")
                lines.append(f"| {case} | {tool} | {mm['wall']:.2f} ({walls(runs)}) | "
                             f"{rate:.0f} | {cpu} | {rss} | {wire} | {fmt(mm['scan'])} |")
        lines.append("")
    if "swarm" in CASES:
        lines.append("`swarm` (E's rate; caps = 3 × BENCH_SWARM_CAP on the full peers' "
                     "uplinks; share = IP bytes E received from S0 / S1 / S2):")
        lines.append("")
        lines.append("| tool | wall s (median; all) | MB/s | caps MB/s | rate / caps | "
                     "IP rate / caps | share S0/S1/S2 % | peers | CPU-s (3 full + E) | "
                     "peak RSS MB full (max) / E | tbf drops |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for tool, mm, runs in rows("swarm"):
            cpu, rss = cpu_rss(mm)
            got = [mm[f"from_s{i}"] or 0 for i in range(3)]
            share = "/".join(f"{100 * g / sum(got):.0f}" for g in got) if sum(got) else "—"
            lines.append(
                f"| {tool} | {mm['wall']:.2f} ({walls(runs)}) | "
                f"{sizes['large'] / mm['wall'] / 1e6:.1f} | {fmt(mm['caps_MBps'], '.1f')} | "
                f"{fmt(mm['rate_of_caps'])} | {fmt(mm['wire_rate_of_caps'])} | {share} | "
                f"{fmt(mm['peers_connected'], '.0f')} | {cpu} | {rss} | "
                f"{fmt(mm['tbf_drops'], '.0f')} |")
        lines.append("")
    if "edit" in CASES:
        lines.append(f"`edit` ({EDIT_BYTES} B inserted in the middle of one "
                     f"{sizes['large'] / 4 / 2**20:.0f} MiB file; time from the save to "
                     "the new content on the destination):")
        lines.append("")
        lines.append("| tool | s (median; all) | wire KB at completion | wire KB incl. 2 s "
                     "after | CPU-s both (src+dst) | peak RSS MB src / dst | initial sync s |")
        lines.append("|---|---|---|---|---|---|---|")
        for tool, mm, runs in rows("edit"):
            cpu, rss = cpu_rss(mm)
            kb = lambda x: fmt(x / 1e3 if x is not None else None, ".1f")  # noqa: E731
            lines.append(f"| {tool} | {mm['wall']:.2f} ({walls(runs)}) | {kb(mm['wire'])} | "
                         f"{kb(mm['wire_settled'])} | {cpu} | {rss} | {fmt(mm['initial'])} |")
        lines.append("")
    if "latency" in CASES:
        lines.append(f"`latency` ({LAT_SAMPLES} files of {LAT_SIZE} B per round, saved on A "
                     "one after the other; s until on B; the median of each round's median):")
        lines.append("")
        lines.append("| tool | s (median of round medians) | round medians | all samples s | "
                     "CPU-s both over the samples |")
        lines.append("|---|---|---|---|---|")
        for tool, mm, runs in rows("latency"):
            allsamples = " ".join(f"{x:.2f}" for r in runs for x in r["samples"])
            lines.append(f"| {tool} | {mm['wall']:.3f} | {walls(runs)} | {allsamples} | "
                         f"{fmt(mm['cpu'])} |")
        lines.append("")

    lines.append("Ratios (rate × = their wall / ours, > 1 means swarmsync is faster; CPU and "
                 "RSS × = ours / theirs, < 1 is better):")
    lines.append("")
    lines.append("| case | vs | rate (time) × | CPU-s × | RSS src × | RSS dst × | wire × |")
    lines.append("|---|---|---|---|---|---|---|")
    for case in CASES:
        us = m.get((case, "swarmsync"))
        if not us:
            continue
        for tool in TOOLS:
            if tool == "swarmsync" or (case, tool) not in m:
                continue
            th = m[(case, tool)]

            def ratio(f):
                if us.get(f) is None or not th.get(f):
                    return None
                return us[f] / th[f]

            wf = "wire_settled" if case == "edit" else "wire"
            lines.append(f"| {case} | {tool} | {th['wall'] / us['wall']:.2f} | "
                         f"{fmt(ratio('cpu'))} | {fmt(ratio('rss_src'))} | "
                         f"{fmt(ratio('rss_dst'))} | {fmt(ratio(wf))} |")
    lines.append("")
    lines.append("The issue's goals (swarmsync, this run):")
    lines.append("")
    lines.append("| goal | measured | verdict |")
    lines.append("|---|---|---|")

    def goal(name, value, ok):
        if value is None:
            return
        lines.append(f"| {name} | {value} | {'met' if ok else '**missed**'} |")

    def rate_x(case, tool):
        us, th = m.get((case, "swarmsync")), m.get((case, tool))
        return th["wall"] / us["wall"] if us and th else None

    for case, tool, want in (("large", "syncthing", 2.5), ("large", "rsync", 2.0),
                             ("small", "syncthing", 5.0), ("small", "rsync", 1.0)):
        x = rate_x(case, tool)
        if x is not None:
            goal(f"{case}: rate ≥ {want:g}× {tool}", f"{x:.2f}×", x >= want)
    us, rs = m.get(("edit", "swarmsync")), m.get(("edit", "rsync"))
    if us and rs:
        if us.get("wire_settled") is not None and rs.get("wire") is not None:
            goal("edit: bytes on the wire ≤ rsync's",
                 f"{us['wire_settled'] / 1e3:.1f} KB vs {rs['wire'] / 1e3:.1f} KB",
                 us["wire_settled"] <= rs["wire"])
        goal("edit: time ≤ rsync's", f"{us['wall']:.2f} s vs {rs['wall']:.2f} s",
             us["wall"] <= rs["wall"])
    us = m.get(("swarm", "swarmsync"))
    if us and us.get("rate_of_caps") is not None:
        goal("swarm: ≥ 90 % of the sum of the caps", f"{100 * us['rate_of_caps']:.0f} %",
             us["rate_of_caps"] >= 0.9)
    for case in CASES:
        us, th = m.get((case, "swarmsync")), m.get((case, "syncthing"))
        if not us or not th:
            continue
        for f, lab in (("rss_src", "peak RSS src"), ("rss_dst", "peak RSS dst"),
                       ("cpu", "CPU-s")):
            if us.get(f) is not None and th.get(f):
                x = us[f] / th[f]
                goal(f"{case}: {lab} ≤ 1/3 of Syncthing's",
                     f"{us[f]:.1f} vs {th[f]:.1f} ({x:.2f}×)", x <= 1 / 3)
    us = m.get(("latency", "swarmsync"))
    if us:
        goal("latency ≤ 1 s", f"{us['wall']:.3f} s", us["wall"] <= 1.0)
    lines.append("")
    if ceil:
        lines.append("CPU ceilings (one file of `large`, from the page cache): " + ", ".join(
            f"{k} = {v:.2f}" for k, v in ceil.items()))
        lines.append("")
    lines.append("Conditions: " + json.dumps(meta))
    return "\n".join(lines)


def write_results(out, text, failures, raw):
    """The report (and FAILURES, if any) to `out`/results.md and stdout, `raw` to
    `out`/results.json."""
    if failures:
        text += "\n\nFAILURES:\n" + "\n".join(failures)
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(raw, f, indent=1)
    print(text)


def keep_evidence(name, dst):
    """The peers' logs and a listing of the destination of a failed run, kept under
    $BENCH_OUT/failures/ (the next run of the same tool overwrites the logs in RUN)."""
    where = os.path.join(OUT, "failures", name)
    os.makedirs(where, exist_ok=True)
    for f in os.listdir(RUN):
        if f.endswith(".log"):
            shutil.copy(os.path.join(RUN, f), where)
    with open(os.path.join(where, "dst-listing.txt"), "w") as out:
        for d, _dirs, files in os.walk(dst):
            for name_ in files:
                p = os.path.join(d, name_)
                st = os.stat(p)
                out.write(f"{os.path.relpath(p, dst)}\t{st.st_size}\t{st.st_blocks * 512}\n")
    log(f"  evidence kept in {where}")


def run_one(case, tool, dss, manifests, swarm):
    """One timed run in WORK; returns (result, src, dst, manifest) for the verification."""
    if case == "edit":
        return run_edit(tool, dss["large"])
    if case == "latency":
        return run_latency(tool)
    ds = DATASET_OF[case]
    dst = os.path.join(WORK, "dst")
    os.makedirs(dst)
    if case == "swarm":
        r = (swarm.run_swarmsync if tool == "swarmsync" else swarm.run_syncthing)(dst)
        return r, dss[ds], dst, manifests[ds]
    if case == "small-trap":
        # The old harness's state (its benchmark trap): a tree of `small` deleted right
        # before the run (then the same `sync` + pause), so ext4 without a journal skips
        # the freshly deleted inodes (`recently_deleted`) for every file created.
        churn = os.path.join(WORK, "churn")
        subprocess.run(["cp", "-r", dss[ds], churn], check=True)
        shutil.rmtree(churn)
    return RUNNERS[tool](dss[ds], dst, manifests[ds]), dss[ds], dst, manifests[ds]


def deleted_now():
    """`sync`s a deletion and stamps its time for the next run's `settle`."""
    subprocess.run(["sync"], check=True)
    with open(os.path.join(RUN, DELETED_STAMP), "w") as f:
        f.write(f"{time.time()}\n")


def evict(tree):
    """Writes back and drops `tree`'s pages from the page cache (untimed). Trees are
    kept until the run's end (see SETTLE); their cached pages would otherwise keep
    the memory they hold, and every later run would write into pages the guest never
    touched before, which on this VM costs several times more system time (see
    the page-cache note in BENCHMARKS.md)."""
    subprocess.run(["sync"], check=True)
    for dirpath, _dirs, files in os.walk(tree):
        for name in files:
            try:
                fd = os.open(os.path.join(dirpath, name), os.O_RDONLY | os.O_NOFOLLOW)
            except OSError:
                continue
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def settle():
    """Until SETTLE s have passed since the last deletion (which was `sync`ed)."""
    try:
        since = os.stat(os.path.join(RUN, DELETED_STAMP)).st_mtime
    except FileNotFoundError:
        return
    left = SETTLE - (time.time() - since)
    if left > 0:
        log(f"settling {left:.0f} s after the last deletion (ext4 recently_deleted)")
        time.sleep(left)


def in_host_netns():
    """True if this process shares the network namespace of pid 1 (the host's, or the
    container's): its loopback ports, nftables table and `swarm`'s bridge would be
    made there, not in a namespace of the benchmark's own."""
    try:
        return os.stat("/proc/self/ns/net").st_ino == os.stat("/proc/1/ns/net").st_ino
    except OSError:
        return False  # cannot tell (no /proc/1 access); run.sh is the documented way


def check_cases():
    for c in CASES:
        if c not in ALL_CASES:
            sys.exit(f"unknown case {c!r} (known: {' '.join(ALL_CASES)})")


def main():
    global WORK
    check_cases()
    if in_host_netns():
        sys.exit("bench/harness.py runs inside the network namespace bench/run.sh makes "
                 "(it is in pid 1's): use bench/run.sh")
    signal.signal(signal.SIGTERM, lambda n, _f: sys.exit(128 + n))  # run the finally blocks
    os.makedirs(RUN, exist_ok=True)
    # Trees an earlier run left (one that was stopped): deleted now, and the first round
    # waits SETTLE s after.
    stale = [x for x in os.listdir(RUN)
             if (x.startswith("r") and x[1:].isdigit()) or x in ("swarm", "dst")]
    for x in stale:
        shutil.rmtree(os.path.join(RUN, x), ignore_errors=True)
    if stale:
        deleted_now()
    data = os.path.join(ROOT, "data")
    dss = {ds: os.path.join(data, f"{ds}-{SCALE:g}") for ds in DATASETS}
    manifests = {ds: load_manifest(p) for ds, p in dss.items()}
    sizes = {ds: sum(m.values()) for ds, m in manifests.items()}
    have_nft = nft_setup()
    # Warm the page cache with the sources (the anchors are "source in the page cache").
    for p in dss.values():
        subprocess.run(["tar", "cf", "/dev/null", "."], cwd=p)
    uptime_before = open("/proc/loadavg").read().split()[:3]
    results = {}
    failures = []
    started = time.time()
    meta = {
        "scale": SCALE, "rounds": ROUNDS, "pause_s": PAUSE, "settle_s": SETTLE,
        "cases": CASES, "bytes": sizes, "files": {ds: len(m) for ds, m in manifests.items()},
        "loadavg_before": uptime_before, "wire_counters": have_nft,
    }
    swarm = None
    os.makedirs(OUT, exist_ok=True)

    def save_raw():
        with open(os.path.join(OUT, "results.json"), "w") as f:
            json.dump({"results": results, "meta": meta, "failures": failures}, f, indent=1)

    try:
        if "swarm" in CASES:
            import swarm as swarm_mod  # noqa: PLC0415 - only this case needs it
            swarm = swarm_mod.Swarm(dss["large"], manifests["large"])
            meta["swarm_cap"] = swarm_mod.CAP
        settle()
        for rnd in range(ROUNDS):
            rdir = os.path.join(RUN, f"r{rnd + 1}")
            for case in CASES:
                tools = [t for t in TOOLS if t in CASE_TOOLS.get(case, TRANSFER_TOOLS)]
                if not tools:
                    continue
                k = rnd % len(tools)
                for tool in tools[k:] + tools[:k]:
                    WORK = os.path.join(rdir, f"{case}-{tool}")
                    os.makedirs(WORK)
                    log(f"round {rnd + 1}/{ROUNDS} {case} {tool}")
                    dst = os.path.join(WORK, "dst")
                    try:
                        r, src, dst, man = run_one(case, tool, dss, manifests, swarm)
                        verify(src, dst, man)
                        evict(WORK)
                    except Exception as e:  # noqa: BLE001 - reported, fails the run
                        log(f"FAILED {case} {tool}: {e}")
                        failures.append(f"{case} {tool} round {rnd + 1}: {e}")
                        keep_evidence(f"{case}-{tool}-round{rnd + 1}", dst)
                        save_raw()
                        continue
                    r["round"] = rnd + 1
                    size = sizes.get(DATASET_OF.get(case), 0)
                    log(f"  {r['wall']:.3f} s"
                        + (f", {size / r['wall'] / 1e6:.0f} MB/s" if size and case != "edit"
                           else "") + ", "
                        + ", ".join(f"{k}={v:.2f}" for k, v in r.items()
                                    if isinstance(v, (float, int)) and k not in ("wall",
                                                                                 "round")))
                    results.setdefault(case, {}).setdefault(tool, []).append(r)
                    save_raw()
    finally:
        if swarm is not None:
            swarm.close()
        # Nothing was deleted during the run (see SETTLE); its trees go now.
        for rnd in range(ROUNDS):
            shutil.rmtree(os.path.join(RUN, f"r{rnd + 1}"), ignore_errors=True)
        deleted_now()
    ceil = cpu_ceilings(dss["large"]) if "large" in dss else {}
    meta["loadavg_after"] = open("/proc/loadavg").read().split()[:3]
    meta["minutes"] = round((time.time() - started) / 60, 1)
    write_results(OUT, report(results, sizes, ceil, meta), failures,
                  {"results": results, "ceilings": ceil, "meta": meta, "failures": failures})
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
