#!/usr/bin/env python3
"""The comparison runs of bench/run.sh: swarmsync, Syncthing, rsync (daemon) and `cp`,
interleaved round by round, on loopback inside the network namespace run.sh made.

Not meant to be started by hand outside that namespace (it listens on fixed 127.0.0.1
ports and installs nftables counters). Settings come from the environment, see run.sh.
Prints a markdown report on stdout and writes it (and the raw JSON) under $BENCH_ROOT.
"""
import copy
import filecmp
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("BENCH_ROOT", "/var/tmp/swarmsync-bench")
SCALE = float(os.environ.get("BENCH_SCALE", "0.25"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
PAUSE = float(os.environ.get("BENCH_PAUSE", "5"))
RUN_TIMEOUT = float(os.environ.get("BENCH_RUN_TIMEOUT", "600"))  # per run, seconds
SWARMSYNC = os.environ.get("SWARMSYNC_BIN", "target/release/swarmsync")
# BENCH_PERF=1: run the swarmsync peers under `perf record --call-graph dwarf` (profiles land in
# $BENCH_ROOT/run/perf-{src,dst}-DATASET.data; the numbers of such a run are not results).
PERF = os.environ.get("BENCH_PERF", "") not in ("", "0")
PERF_FREQ = os.environ.get("BENCH_PERF_FREQ", "199")
PERF_CG = os.environ.get("BENCH_PERF_CALLGRAPH", "dwarf,16384")
DATASETS = os.environ.get("BENCH_DATASETS", "large small").split()
TOOLS = os.environ.get(
    "BENCH_TOOLS", "swarmsync syncthing rsync rsync-fsync cp"
).split()
RUN = os.path.join(ROOT, "run")
OUT = os.environ.get("BENCH_OUT", ROOT)  # where results.md / results.json go
CLK = os.sysconf("SC_CLK_TCK")
# Names that belong to a tool, not to the data: never compared, never copied.
META = {".sync", ".stfolder", ".stversions", ".stignore"}

PORTS = {
    "swarmsync": (22001, 22002),
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
    --no-restart; follow single children down to the last one."""
    while True:
        kids = children(pid)
        if len(kids) != 1:
            return pid
        pid = kids[0]


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


def wait_for(what, cond, timeout=120, every=0.1):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(every)
    raise RuntimeError(f"timed out waiting for {what}")


def quiesce():
    """The same state before every timer: caches written back, then a fixed pause."""
    subprocess.run(["sync"], check=True)
    time.sleep(PAUSE)


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


def run_swarmsync(src, dst, manifest):
    sport, dport = PORTS["swarmsync"]
    state = os.path.join(RUN, "ss-src-state")
    shutil.rmtree(state, ignore_errors=True)
    for f in ("ss-src.log", "ss-dst.log"):
        if os.path.exists(os.path.join(RUN, f)):
            os.remove(os.path.join(RUN, f))
    off = ["--no-lan", "--no-dht", "--no-tracker", "--no-pex", "--no-relay", "--no-upnp"]
    env = {"RUST_LOG": os.environ.get("BENCH_RUST_LOG", "info")}
    a = b = None
    ds = os.path.basename(src)

    def pre(side):
        if not PERF:
            return []
        return ["perf", "record", "-F", PERF_FREQ, "--call-graph", PERF_CG, "-o",
                os.path.join(RUN, f"perf-{side}-{ds}.data"), "--"]

    try:
        t_start = time.monotonic()
        a = spawn(pre("src") + [SWARMSYNC, "sync", src, "--listen", f"127.0.0.1:{sport}",
                   "--state", state] + off, "ss-src.log", env)
        logf = os.path.join(RUN, "ss-src.log")

        def ready():
            text = open(logf, errors="replace").read()
            if a.poll() is not None:
                raise RuntimeError("swarmsync source exited:\n" + text[-2000:])
            key = None
            for line in text.splitlines():
                if line.startswith("read-write:"):
                    key = line.split()[1]
            return key if key and "scan:" in text else None

        key = wait_for("swarmsync source scan", ready, timeout=RUN_TIMEOUT)
        scan_s = time.monotonic() - t_start
        pa = worker(a.pid)
        quiesce()
        cpu_a0 = proc_cpu(pa)
        n0 = nft_bytes("swarmsync")
        t0 = time.monotonic()
        b = spawn(pre("dst") + [SWARMSYNC, "sync", dst, "--listen", f"127.0.0.1:{dport}",
                   "--secret", key, "--known-host", f"127.0.0.1:{sport}"] + off,
                  "ss-dst.log", env)
        t1 = wait_tree(dst, manifest, t0 + RUN_TIMEOUT,
                       lambda: a.poll() is None and b.poll() is None)
        n1 = nft_bytes("swarmsync")
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


def st_config(home, port, gui, folder_path, me, other, other_port, paused):
    cfg = os.path.join(home, "config.xml")
    tree = ET.parse(cfg)
    root = tree.getroot()
    o = root.find("options")
    settings = {
        "listenAddress": f"tcp://127.0.0.1:{port}",
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
    for k, v in settings.items():
        el = o.find(k)
        if el is None:
            el = ET.SubElement(o, k)
        el.text = v
    g = root.find("gui")
    g.find("address").text = f"127.0.0.1:{gui}"
    g.find("apikey").text = ST_KEY
    defaults = root.find("defaults")
    dev = copy.deepcopy(defaults.find("device"))
    dev.set("id", other)
    dev.set("name", "peer")
    dev.find("address").text = f"tcp://127.0.0.1:{other_port}"
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


def st_get(gui, path):
    req = urllib.request.Request(f"http://127.0.0.1:{gui}{path}",
                                 headers={"X-API-Key": ST_KEY})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"null")


def st_send(gui, method, path, body):
    req = urllib.request.Request(
        f"http://127.0.0.1:{gui}{path}", method=method, data=json.dumps(body).encode(),
        headers={"X-API-Key": ST_KEY, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.read()


def run_syncthing(src, dst, manifest):
    homes = [fresh(os.path.join(RUN, "st-src")), fresh(os.path.join(RUN, "st-dst"))]
    ids = []
    for h in homes:
        subprocess.run(["syncthing", "generate", f"--home={h}", "--no-default-folder"],
                       check=True, capture_output=True)
        ids.append(ET.parse(os.path.join(h, "config.xml")).getroot()
                   .find("device").get("id"))
    os.makedirs(os.path.join(src, ".stfolder"), exist_ok=True)
    os.makedirs(os.path.join(dst, ".stfolder"), exist_ok=True)
    sp, dp = PORTS["syncthing"]
    st_config(homes[0], sp, ST_GUI[0], src, ids[0], ids[1], dp, paused=False)
    st_config(homes[1], dp, ST_GUI[1], dst, ids[1], ids[0], sp, paused=True)
    env = {"STNODEFAULTFOLDER": "1", "STNOUPGRADE": "1", "STNORESTART": "1",
           "HOME": RUN}
    procs = []
    try:
        t_start = time.monotonic()
        for h, gui, name in ((homes[0], ST_GUI[0], "st-src.log"),
                             (homes[1], ST_GUI[1], "st-dst.log")):
            procs.append(spawn(
                ["syncthing", "serve", f"--home={h}", "--no-browser", "--no-restart",
                 "--no-upgrade", f"--gui-address=http://127.0.0.1:{gui}",
                 f"--gui-apikey={ST_KEY}", "--logflags=0"], name, env))
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
            try:
                c = st_get(ST_GUI[1], "/rest/system/connections")["connections"]
                return c.get(ids[0], {}).get("connected")
            except Exception:  # noqa: BLE001
                return False

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


def run_rsync(src, dst, manifest, fsync):
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
        quiesce()
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


RUNNERS = {
    "swarmsync": run_swarmsync,
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
    lines = []
    fields = ("wall", "cpu", "cpu_src", "cpu_dst", "rss_src", "rss_dst", "wire", "scan")
    lines.append("| dataset | tool | wall s (median; all) | MB/s | CPU-s both (src+dst) "
                 "| peak RSS MB src / dst | wire MB | src scan s |")
    lines.append("|---|---|---|---|---|---|---|---|")
    m = {}
    for ds in DATASETS:
        for tool in TOOLS:
            runs = results.get(ds, {}).get(tool, [])
            if not runs:
                continue
            mm = {f: med([r.get(f) for r in runs]) for f in fields}
            m[(ds, tool)] = mm
            walls = ", ".join(f"{r['wall']:.2f}" for r in runs)
            rate = sizes[ds] / mm["wall"] / 1e6
            cpu = (f"{fmt(mm['cpu'])} ({fmt(mm['cpu_src'])}+{fmt(mm['cpu_dst'])})"
                   if mm["cpu"] is not None else "—")
            rss = (f"{fmt(mm['rss_src'], '.1f')} / {fmt(mm['rss_dst'], '.1f')}"
                   if mm["rss_src"] is not None else "—")
            wire = fmt(mm["wire"] / 1e6 if mm["wire"] is not None else None, ".1f")
            lines.append(f"| {ds} | {tool} | {mm['wall']:.2f} ({walls}) | {rate:.0f} "
                         f"| {cpu} | {rss} | {wire} | {fmt(mm['scan'])} |")
    lines.append("")
    lines.append("Ratios (swarmsync against each; rate ratio = other's wall / ours, "
                 "> 1 means we are faster; RSS and CPU ratio = ours / theirs, < 1 is "
                 "better):")
    lines.append("")
    lines.append("| dataset | vs | rate × | CPU-s × | RSS src × | RSS dst × | goal |")
    lines.append("|---|---|---|---|---|---|---|")
    goals = {("large", "syncthing"): 2.5, ("large", "rsync"): 2.0,
             ("small", "syncthing"): 5.0, ("small", "rsync"): 1.0}
    for ds in DATASETS:
        us = m.get((ds, "swarmsync"))
        if not us:
            continue
        for tool in TOOLS:
            if tool == "swarmsync" or (ds, tool) not in m:
                continue
            th = m[(ds, tool)]
            rate = th["wall"] / us["wall"]

            def ratio(f):
                if us.get(f) is None or not th.get(f):
                    return None
                return us[f] / th[f]

            goal = goals.get((ds, tool))
            notes = []
            if goal is not None:
                notes.append(f"rate ≥ {goal}×: {'met' if rate >= goal else 'MISSED'}")
            if tool == "syncthing":
                for f, lab in (("cpu", "CPU"), ("rss_src", "RSS src"),
                               ("rss_dst", "RSS dst")):
                    x = ratio(f)
                    if x is not None:
                        notes.append(f"{lab} ≤ 1/3: {'met' if x <= 1 / 3 else 'MISSED'}")
            lines.append(f"| {ds} | {tool} | {rate:.2f} | {fmt(ratio('cpu'))} | "
                         f"{fmt(ratio('rss_src'))} | {fmt(ratio('rss_dst'))} | "
                         f"{'; '.join(notes)} |")
    lines.append("")
    if ceil:
        lines.append("CPU ceilings (one file of `large`, from the page cache): " + ", ".join(
            f"{k} = {v:.2f}" for k, v in ceil.items()))
        lines.append("")
    lines.append("Conditions: " + json.dumps(meta))
    return "\n".join(lines)


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


def main():
    os.makedirs(RUN, exist_ok=True)
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
    for rnd in range(ROUNDS):
        order = TOOLS[rnd % len(TOOLS):] + TOOLS[:rnd % len(TOOLS)]
        for ds in DATASETS:
            for tool in order:
                dst = fresh(os.path.join(RUN, "dst"))
                log(f"round {rnd + 1}/{ROUNDS} {ds} {tool}")
                try:
                    r = RUNNERS[tool](dss[ds], dst, manifests[ds])
                    verify(dss[ds], dst, manifests[ds])
                except Exception as e:  # noqa: BLE001 - reported, fails the run
                    log(f"FAILED {ds} {tool}: {e}")
                    failures.append(f"{ds} {tool} round {rnd + 1}: {e}")
                    keep_evidence(f"{ds}-{tool}-round{rnd + 1}", dst)
                    continue
                r["round"] = rnd + 1
                log(f"  {r['wall']:.2f} s, {sizes[ds] / r['wall'] / 1e6:.0f} MB/s, "
                    + ", ".join(f"{k}={v:.2f}" for k, v in r.items()
                                if isinstance(v, float) and k != "wall"))
                results.setdefault(ds, {}).setdefault(tool, []).append(r)
        shutil.rmtree(os.path.join(RUN, "dst"), ignore_errors=True)
    ceil = cpu_ceilings(dss["large"]) if "large" in dss else {}
    meta = {
        "scale": SCALE, "rounds": ROUNDS, "pause_s": PAUSE,
        "bytes": sizes, "files": {ds: len(m) for ds, m in manifests.items()},
        "loadavg_before": uptime_before,
        "loadavg_after": open("/proc/loadavg").read().split()[:3],
        "minutes": round((time.time() - started) / 60, 1),
        "wire_counters": have_nft,
    }
    text = report(results, sizes, ceil, meta)
    if failures:
        text += "\n\nFAILURES:\n" + "\n".join(failures)
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "results.md"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump({"results": results, "ceilings": ceil, "meta": meta,
                   "failures": failures}, f, indent=1)
    print(text)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
