#!/usr/bin/env python3
"""Scan benchmark (issue #4): `swarmsync scan` against Syncthing's scan of the same
tree, and the machine's read + hash ceilings, interleaved in one run. Run by hand as
root (drops the page cache, makes a network namespace); never part of the tests.

    sudo python3 bench/scan.py                     # the issue's datasets, ~15-20 min
    sudo SCAN_SCALE=0.05 SCAN_ROUNDS=1 python3 bench/scan.py   # a smoke run

Datasets (bench/gen_data.py, deterministic, under $BENCH_ROOT/data/):
  scan-small: 100,000 files of 1-16 KiB in 1,000 directories (872 MB at scale 1)
  scan-large: 16 files of 256 MiB (4 GiB)

Per round, dataset and tool (the order of the tools rotates every round):
  initial-cold   fresh state, `sync` + drop_caches, one full scan
  rescan-warm    the same state again, nothing changed
  initial-warm   fresh state, data still in the page cache
  rescan-cold    `sync` + drop_caches, the same state again
and the ceilings: `cat` of the data (cold read), `b3sum` of the data cold and warm.

swarmsync: `swarmsync scan DATA --state STATE --json`, timed from exec to exit
(start-up and index creation included); CPU and peak RSS from wait4's rusage.
Syncthing: one instance, offline (no discovery, relays, NAT, STUN, usage or crash
reports, upgrades; GUI and listener on 127.0.0.1 only, inside a private network
namespace), the folder created paused, watcher and periodic rescans off. Initial scan:
from `PATCH paused=false` until /rest/db/status is idle with every file counted
(process start-up excluded). Rescan: `POST /rest/db/scan`, which returns when the scan
is done. CPU from /proc/PID/stat, peak RSS = VmHWM of the worker process.

Environment (defaults in brackets):
  SCAN_SCALE [1]  SCAN_ROUNDS [3]  SCAN_DATASETS ["scan-small scan-large"]
  BENCH_ROOT [/var/tmp/swarmsync-bench]  SCAN_OUT [$BENCH_ROOT/scan]
  SCAN_NO_BUILD=1 (use target/release as it is)  BENCH_SEED [20261201]
  SCAN_TIMEOUT [14400]  bound on the measuring half (seconds; then killed, and failed)
Results: $SCAN_OUT/results.md (table), results.json (every run), conditions.txt.
"""
import copy
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
ROOT = os.environ.get("BENCH_ROOT", "/var/tmp/swarmsync-bench")
OUT = os.environ.get("SCAN_OUT", os.path.join(ROOT, "scan"))
RUN = os.path.join(OUT, "run")
BIN = os.path.join(OUT, "bin")
SCALE = float(os.environ.get("SCAN_SCALE", "1"))
ROUNDS = int(os.environ.get("SCAN_ROUNDS", "3"))
DATASETS = os.environ.get("SCAN_DATASETS", "scan-small scan-large").split()
SEED = os.environ.get("BENCH_SEED", "20261201")
TOOLS = ["swarmsync", "syncthing", "ceiling"]
ST_GUI = 22311
ST_LISTEN = 22301
ST_KEY = "scanbenchscanbenchscanbench"
NS_ENV = "SCAN_BENCH_NETNS"
TIMEOUT = float(os.environ.get("SCAN_TIMEOUT", "14400"))

sys.dont_write_bytecode = True  # no __pycache__ in the shared tree
sys.path.insert(0, HERE)
import harness  # noqa: E402 - the process helpers of the sync benchmark

harness.RUN = RUN  # its spawn() writes logs there


log, med = harness.log, harness.med


def loadavg():
    return " ".join(open("/proc/loadavg").read().split()[:3])


def drop_caches():
    """Cold start: dirty pages written back, then page cache, dentries and inodes
    dropped (the whole machine's: other users' builds pay for it too)."""
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")
    # What every process start needs again (libc, the loader), so neither tool's
    # timer pays for reloading the shell environment.
    subprocess.run(["true"], check=True)
    time.sleep(1)


def dataset_path(ds):
    return os.path.join(ROOT, "data", f"{ds}-{SCALE:g}")


# ---------------------------------------------------------------- swarmsync


def ss_scan(data, state):
    """One `swarmsync scan`; returns its JSON summary plus wall, CPU and peak RSS."""
    # Peak RSS through GNU time, not our own wait4: a child exec'd from a vfork
    # (as subprocess does) inherits this Python process's high-water mark in its
    # rusage. time(1) forks from its own tiny image, so its %M is swarmsync's.
    rss_file = os.path.join(RUN, "ss-scan.rss")
    argv = ["/usr/bin/time", "-f", "%M", "-o", rss_file,
            os.path.join(BIN, "swarmsync"), "scan", data, "--state", state, "--json"]
    err = open(os.path.join(RUN, "ss-scan.log"), "ab")
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=err)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    p.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    if p.returncode != 0:
        raise RuntimeError(f"swarmsync scan exited {p.returncode}; see {err.name}")
    s = json.loads(out)
    with open(rss_file) as f:
        rss_kib = int(f.read().split()[-1])
    return {"wall": wall, "cpu": ru.ru_utime + ru.ru_stime, "user": ru.ru_utime,
            "sys": ru.ru_stime, "rss": rss_kib * 1024 / 1e6, "self_s": s["seconds"],
            "files": s["files"], "hashed_files": s["hashed_files"],
            "hashed_bytes": s["hashed_bytes"], "records": s["records_changed"]}


def run_swarmsync(data, nfiles):
    state = os.path.join(RUN, "ss-state")
    out = {}
    for phase in ("initial-cold", "rescan-warm", "initial-warm", "rescan-cold"):
        if phase.startswith("initial"):
            shutil.rmtree(state, ignore_errors=True)
        if phase.endswith("cold"):
            drop_caches()
        r = ss_scan(data, state)
        if r["files"] != nfiles:
            raise RuntimeError(f"swarmsync counted {r['files']} files, not {nfiles}")
        if phase.startswith("rescan") and r["hashed_files"] != 0:
            raise RuntimeError(f"unchanged rescan rehashed {r['hashed_files']} files")
        out[phase] = r
        log(f"    swarmsync {phase}: {r['wall']:.2f} s (self {r['self_s']:.2f}), "
            f"cpu {r['cpu']:.2f}, rss {r['rss']:.1f} MB")
    shutil.rmtree(state, ignore_errors=True)
    return out


# ---------------------------------------------------------------- Syncthing


def st_config(home, data):
    """The offline settings of harness.st_config, for one device and one folder."""
    cfg = os.path.join(home, "config.xml")
    tree = ET.parse(cfg)
    root = tree.getroot()
    me = root.find("device").get("id")
    harness.st_offline(root.find("options"),
                       {"listenAddress": f"tcp://127.0.0.1:{ST_LISTEN}"})
    g = root.find("gui")
    g.find("address").text = f"127.0.0.1:{ST_GUI}"
    g.find("apikey").text = ST_KEY
    fo = copy.deepcopy(root.find("defaults").find("folder"))
    fo.set("id", "bench")
    fo.set("label", "bench")
    fo.set("path", data)
    fo.set("fsWatcherEnabled", "false")
    fo.set("rescanIntervalS", "0")
    for d in fo.findall("device"):
        fo.remove(d)
    d = ET.Element("device", {"id": me, "introducedBy": ""})
    ET.SubElement(d, "encryptionPassword")
    fo.insert(1, d)
    fo.find("paused").text = "true"
    root.insert(0, fo)
    tree.write(cfg)


def st_get(path):
    req = urllib.request.Request(f"http://127.0.0.1:{ST_GUI}{path}",
                                 headers={"X-API-Key": ST_KEY})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read() or b"null")


def st_send(method, path, body=None):
    req = urllib.request.Request(
        f"http://127.0.0.1:{ST_GUI}{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"X-API-Key": ST_KEY, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return r.read()


def st_session(data, nfiles, cold, rescan_cold):
    """A fresh Syncthing home: the initial scan, then one unchanged rescan."""
    home = harness.fresh(os.path.join(RUN, "st-home"))
    subprocess.run(["syncthing", "generate", f"--home={home}", "--no-default-folder"],
                   check=True, capture_output=True)
    st_config(home, data)
    p = harness.spawn(harness.st_serve(home, f"127.0.0.1:{ST_GUI}", ST_KEY), "st.log",
                      harness.st_env(RUN))
    try:
        def up():
            if p.poll() is not None:
                raise RuntimeError("syncthing exited early; see st.log")
            try:
                return st_get("/rest/system/ping").get("ping") == "pong"
            except Exception:  # noqa: BLE001 - not listening yet
                return False

        harness.wait_for("syncthing up with the folder paused", up, timeout=120)
        pid = harness.worker(p.pid)
        if cold:
            drop_caches()
        c0 = harness.proc_cpu(pid)
        t0 = time.monotonic()
        st_send("PATCH", "/rest/config/folders/bench", {"paused": False})

        def scanned():
            if p.poll() is not None:
                raise RuntimeError("syncthing exited during the scan")
            s = st_get("/rest/db/status?folder=bench")
            return s.get("state") == "idle" and s.get("localFiles") == nfiles

        harness.wait_for("syncthing initial scan", scanned, timeout=1800, every=0.05)
        initial = {"wall": time.monotonic() - t0, "cpu": harness.proc_cpu(pid) - c0,
                   "rss": harness.proc_hwm(pid)}
        if rescan_cold:
            drop_caches()
        c0 = harness.proc_cpu(pid)
        t0 = time.monotonic()
        st_send("POST", "/rest/db/scan?folder=bench")
        rescan = {"wall": time.monotonic() - t0, "cpu": harness.proc_cpu(pid) - c0,
                  "rss": harness.proc_hwm(pid)}
        s = st_get("/rest/db/status?folder=bench")
        if s.get("localFiles") != nfiles:
            raise RuntimeError(f"syncthing counts {s.get('localFiles')} files after rescan")
        return initial, rescan
    finally:
        harness.stop(p)


def run_syncthing(data, nfiles):
    os.makedirs(os.path.join(data, ".stfolder"), exist_ok=True)
    out = {}
    out["initial-cold"], out["rescan-warm"] = st_session(data, nfiles, True, False)
    out["initial-warm"], out["rescan-cold"] = st_session(data, nfiles, False, True)
    for phase, r in out.items():
        log(f"    syncthing {phase}: {r['wall']:.2f} s, cpu {r['cpu']:.2f}, "
            f"rss {r['rss']:.1f} MB")
    return out


# ---------------------------------------------------------------- ceilings


def timed(argv, cwd=None, shell=False):
    t0 = time.monotonic()
    subprocess.run(argv, cwd=cwd, shell=shell, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - t0


def run_ceiling(data, _nfiles):
    """What the machine does with the same bytes: read them (cat), read and hash
    them once (b3sum, all cores), cold and warm."""
    out = {}
    # Every file, in the order of the manifest, to cat and b3sum through xargs.
    listing = os.path.join(RUN, "files.list0")
    with open(listing, "wb") as f:
        for rel in harness.load_manifest(data):
            f.write(rel.encode() + b"\0")
    nproc = str(os.cpu_count() or 1)
    cat = f"xargs -0 -P{nproc} -n 500 cat < {listing} > /dev/null"
    # b3sum hashes a big file on every core (mmap); small files one per process,
    # hence -P.
    b3 = f"xargs -0 -P{nproc} -n 500 b3sum < {listing} > /dev/null"
    drop_caches()
    out["read-cold"] = {"wall": timed(cat, cwd=data, shell=True)}
    drop_caches()
    out["b3sum-cold"] = {"wall": timed(b3, cwd=data, shell=True)}
    out["b3sum-warm"] = {"wall": timed(b3, cwd=data, shell=True)}
    for phase, r in out.items():
        log(f"    ceiling {phase}: {r['wall']:.2f} s")
    return out


RUNNERS = {"swarmsync": run_swarmsync, "syncthing": run_syncthing,
           "ceiling": run_ceiling}


def hash_ceiling():
    r = subprocess.run([os.path.join(BIN, "hash_ceiling")], capture_output=True,
                       text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- report


def report(results, sizes, cpu_ceil, meta):
    phases = ("initial-cold", "initial-warm", "rescan-warm", "rescan-cold")
    lines = ["| dataset | phase | tool | wall s (median; all) | MB/s | CPU-s | "
             "peak RSS MB | swarmsync's own s |", "|---|---|---|---|---|---|---|---|"]
    m = {}
    for ds in DATASETS:
        for phase in phases + ("read-cold", "b3sum-cold", "b3sum-warm"):
            for tool in TOOLS:
                runs = [r[phase] for r in results.get(ds, {}).get(tool, [])
                        if phase in r]
                if not runs:
                    continue
                mm = {f: med([r.get(f) for r in runs])
                      for f in ("wall", "cpu", "rss", "self_s")}
                m[(ds, phase, tool)] = mm
                walls = ", ".join(f"{r['wall']:.2f}" for r in runs)
                rate = sizes[ds] / mm["wall"] / 1e6
                lines.append(
                    f"| {ds} | {phase} | {tool} | {mm['wall']:.2f} ({walls}) | "
                    f"{rate:.0f} | {harness.fmt(mm['cpu'])} | "
                    f"{harness.fmt(mm['rss'], '.1f')} | {harness.fmt(mm['self_s'])} |")
    lines += ["", "| dataset | phase | Syncthing wall / ours (goal ≥ 3) | "
              "ceiling / ours (b3sum; goal ours ≥ 0.7 of it) | RSS ours / theirs "
              "(goal ≤ 0.33) |", "|---|---|---|---|---|"]
    for ds in DATASETS:
        for phase in phases:
            us = m.get((ds, phase, "swarmsync"))
            th = m.get((ds, phase, "syncthing"))
            if not us:
                continue
            speed = th["wall"] / us["wall"] if th else None
            ceil_phase = {"initial-cold": "b3sum-cold",
                          "initial-warm": "b3sum-warm"}.get(phase)
            ce = m.get((ds, ceil_phase, "ceiling")) if ceil_phase else None
            of_ceiling = ce["wall"] / us["wall"] if ce else None
            rss = us["rss"] / th["rss"] if th and th.get("rss") else None
            lines.append(f"| {ds} | {phase} | {harness.fmt(speed)} | "
                         f"{harness.fmt(of_ceiling)} | {harness.fmt(rss)} |")
    lines += ["", "CPU ceilings (hash_ceiling, in memory, GB/s): " + json.dumps(cpu_ceil),
              "", "Conditions: " + json.dumps(meta)]
    return "\n".join(lines)


# ---------------------------------------------------------------- main


def inside():
    if harness.in_host_netns():
        sys.exit(f"{NS_ENV} is set but this is pid 1's network namespace: "
                 "start bench/scan.py without it")
    os.makedirs(RUN, exist_ok=True)
    manifests = {ds: harness.load_manifest(dataset_path(ds)) for ds in DATASETS}
    sizes = {ds: sum(mf.values()) for ds, mf in manifests.items()}
    meta = {"scale": SCALE, "rounds": ROUNDS, "bytes": sizes,
            "files": {ds: len(mf) for ds, mf in manifests.items()},
            "loadavg_before": loadavg()}
    started = time.time()
    cpu_ceil = {"start": hash_ceiling()}
    results = {}
    failures = []
    for rnd in range(ROUNDS):
        order = TOOLS[rnd % len(TOOLS):] + TOOLS[:rnd % len(TOOLS)]
        for ds in DATASETS:
            for tool in order:
                log(f"round {rnd + 1}/{ROUNDS} {ds} {tool} (load {loadavg()})")
                try:
                    r = RUNNERS[tool](dataset_path(ds), len(manifests[ds]))
                except Exception as e:  # noqa: BLE001 - reported, fails the run
                    log(f"FAILED {ds} {tool}: {e}")
                    failures.append(f"{ds} {tool} round {rnd + 1}: {e}")
                    continue
                r["round"] = rnd + 1
                r["load"] = loadavg()
                results.setdefault(ds, {}).setdefault(tool, []).append(r)
    cpu_ceil["end"] = hash_ceiling()
    meta["loadavg_after"] = loadavg()
    meta["minutes"] = round((time.time() - started) / 60, 1)
    harness.write_results(OUT, report(results, sizes, cpu_ceil, meta), failures,
                          {"results": results, "cpu_ceilings": cpu_ceil, "meta": meta,
                           "failures": failures})
    return 1 if failures else 0


def outside():
    if os.geteuid() != 0:
        sys.exit("bench/scan.py needs root (drop_caches, network namespace)")
    for tool in ("syncthing", "b3sum", "ip", "/usr/bin/time"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing (apt-get install syncthing b3sum iproute2 time)")
    os.makedirs(BIN, exist_ok=True)
    if not os.environ.get("SCAN_NO_BUILD"):
        for args in (["-p", "cli"], ["-p", "bench", "--bin", "hash_ceiling"]):
            subprocess.run(["cargo", "build", "--release"] + args, cwd=REPO, check=True)
    # Copies: the shared target/ may be rebuilt by someone else during the run.
    for name in ("swarmsync", "hash_ceiling"):
        shutil.copy2(os.path.join(REPO, "target", "release", name), BIN)
    os.makedirs(os.path.join(ROOT, "data"), exist_ok=True)
    for ds in DATASETS:
        subprocess.run([sys.executable, os.path.join(HERE, "gen_data.py"),
                        dataset_path(ds), ds, str(SCALE), SEED], check=True)
    rev = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip()
    # The tree is shared: name what differs from HEAD (the scan path is
    # crates/{cli,scan,index,record,keys}).
    dirty = subprocess.run(["git", "-C", REPO, "diff", "--name-only", "HEAD", "--",
                            "crates", "Cargo.toml", "Cargo.lock"],
                           capture_output=True, text=True).stdout.split()
    cond = [
        f"date: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}",
        f"machine: nproc={os.cpu_count()}, kernel {os.uname().release}",
        "fs: " + subprocess.run(["df", "-T", ROOT], capture_output=True,
                                text=True).stdout.splitlines()[-1],
        f"swarmsync: working tree at {rev}"
        + (f", uncommitted: {' '.join(dirty)}" if dirty else ", clean"),
        "syncthing: " + subprocess.run(["syncthing", "--version"], capture_output=True,
                                       text=True).stdout.strip(),
        "b3sum: " + subprocess.run(["b3sum", "--version"], capture_output=True,
                                   text=True).stdout.strip(),
        "uptime before: " + subprocess.run(["uptime"], capture_output=True,
                                           text=True).stdout.strip(),
    ]
    ns = f"swarmsync-scan-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    status = 1
    try:
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"],
                       check=True)
        env = dict(os.environ, **{NS_ENV: ns})
        try:
            status = subprocess.run(["ip", "netns", "exec", ns, sys.executable,
                                     os.path.abspath(__file__)], env=env,
                                    timeout=TIMEOUT).returncode
        except subprocess.TimeoutExpired:
            log(f"SCAN_TIMEOUT ({TIMEOUT:.0f} s) reached: stopped")
    finally:
        # Everything left in the namespace was started by this run.
        pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True,
                              text=True).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), 9)
            except OSError:
                pass
        subprocess.run(["ip", "netns", "delete", ns])
    cond.append("uptime after: " + subprocess.run(["uptime"], capture_output=True,
                                                  text=True).stdout.strip())
    with open(os.path.join(OUT, "conditions.txt"), "w") as f:
        f.write("\n".join(cond) + "\n")
    print("\n".join(cond))
    return status


if __name__ == "__main__":
    sys.exit(inside() if os.environ.get(NS_ENV) else outside())
