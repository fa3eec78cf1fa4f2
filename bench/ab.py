#!/usr/bin/env python3
"""Alternated A/B runs of swarmsync builds on one dataset, for a change's own effect.

    sudo bench/ab.py [--rounds N] [--dataset large|small] [--scale S] [--threads] BIN...

Each round runs every BIN once, in turn: a source peer on the dataset (scanned first,
then `sync` and a pause), a receiver on an empty folder, both on 127.0.0.1 with every
discovery off, timed from the receiver's start until every file has its size. The
receiver's tree is on a fresh ext4 image (no journal, like the benchmark machine's
disk) made and loop-mounted for every run, so no run pays for the deletions of the one
before (the ext4 trap, docs/BENCHMARKS.md). Printed per run: wall seconds, CPU seconds
of each side, when the first / 10 % / 50 % of the files landed, peak RSS of each side
and, at the end, its anonymous / file-backed parts; with --threads, CPU seconds per
thread name. Not a benchmark of record (that is run.sh, against Syncthing and rsync):
a quick, like-for-like look at two builds on this machine, alternated so drift in the
machine's speed falls on both. Needs root (mkfs, losetup, mount).
"""
import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("BENCH_AB_ROOT", "/var/tmp/swarmsync-ab")
MNT = os.path.join(ROOT, "mnt")
OFF = ["--no-lan", "--no-dht", "--no-tracker", "--no-pex", "--no-relay", "--no-upnp"]
PORTS = (23011, 23012)
TICK = os.sysconf("SC_CLK_TCK")


def sh(cmd):
    subprocess.run(cmd, shell=True, check=True)


def fresh_fs():
    """A new empty ext4 image mounted at MNT (the previous one unmounted first)."""
    image = os.path.join(ROOT, "fs.img")
    subprocess.run(f"umount {MNT} 2>/dev/null", shell=True)
    subprocess.run(f"losetup -j {image} -O NAME -n | xargs -r -n1 losetup -d", shell=True)
    os.makedirs(MNT, exist_ok=True)
    sh(f"truncate -s 8G {image} && mkfs.ext4 -q -F -O ^has_journal {image}")
    dev = subprocess.run(["losetup", "--direct-io=on", "-f", "--show", image],
                         capture_output=True, text=True, check=True).stdout.strip()
    sh(f"mount {dev} {MNT}")


def cleanup():
    image = os.path.join(ROOT, "fs.img")
    subprocess.run(f"umount {MNT} 2>/dev/null", shell=True)
    subprocess.run(f"losetup -j {image} -O NAME -n | xargs -r -n1 losetup -d", shell=True)


def cpu(pid):
    try:
        f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / TICK
    except FileNotFoundError:
        return 0.0


def status_mb(pid, key):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def threads(pid):
    out = {}
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            comm = open(f"/proc/{pid}/task/{t}/comm").read().strip()
            f = open(f"/proc/{pid}/task/{t}/stat").read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        out[comm] = out.get(comm, 0.0) + (int(f[11]) + int(f[12])) / TICK
    return " ".join(f"{k}={v:.2f}" for k, v in sorted(out.items(), key=lambda kv: -kv[1])
                    if v >= 0.01)


def manifest(dataset, scale):
    data = os.path.join(ROOT, f"{dataset}-{scale:g}")
    subprocess.run([sys.executable, os.path.join(HERE, "gen_data.py"), data, dataset,
                    str(scale)], check=True)
    entries = {}
    for line in open(data + ".manifest"):
        if not line.startswith("#"):
            rel, size = line.rstrip("\n").split("\t")
            entries[rel] = int(size)
    return data, entries


def wait_key(proc, log):
    while True:
        text = open(log, errors="replace").read()
        if proc.poll() is not None:
            raise RuntimeError(f"the source exited:\n{text[-2000:]}")
        key = None
        for line in text.splitlines():
            if line.startswith("read-write:"):
                key = line.split()[1]
        if key and "scan:" in text:
            return key
        time.sleep(0.05)


def run_once(binary, data, entries, want_threads, timeout=600):
    fresh_fs()
    work = os.path.join(MNT, "w")
    dst = os.path.join(work, "dst")
    os.makedirs(dst)
    logs = [os.path.join(work, n) for n in ("src.log", "dst.log")]
    env = dict(os.environ, RUST_LOG=os.environ.get("BENCH_RUST_LOG", "info"))
    procs = []
    try:
        a = subprocess.Popen([binary, "sync", data, "--listen", f"127.0.0.1:{PORTS[0]}",
                              "--state", os.path.join(work, "src-state")] + OFF,
                             stdout=open(logs[0], "w"), stderr=subprocess.STDOUT, env=env)
        procs.append(a)
        key = wait_key(a, logs[0])
        sh("sync")
        time.sleep(1)
        cpu_a = cpu(a.pid)
        t0 = time.monotonic()
        b = subprocess.Popen([binary, "sync", dst, "--listen", f"127.0.0.1:{PORTS[1]}",
                              "--secret", key, "--known-host", f"127.0.0.1:{PORTS[0]}"] + OFF,
                             stdout=open(logs[1], "w"), stderr=subprocess.STDOUT, env=env)
        procs.append(b)
        missing, landed = dict(entries), []
        every = 0.005 if len(entries) < 100 else 0.05
        while missing:
            if time.monotonic() - t0 > timeout or b.poll() is not None or a.poll() is not None:
                raise RuntimeError(f"{len(missing)} files missing; logs in {work}")
            for rel, size in list(missing.items()):
                try:
                    if os.stat(os.path.join(dst, rel)).st_size == size:
                        del missing[rel]
                        landed.append(time.monotonic() - t0)
                except FileNotFoundError:
                    pass
            time.sleep(every)
        wall = time.monotonic() - t0
        n = len(landed)
        line = (f"{wall:.3f} s  cpu src {cpu(a.pid) - cpu_a:.2f} dst {cpu(b.pid):.2f}  "
                f"landed first {landed[0]:.3f} 10% {landed[n // 10]:.3f} "
                f"50% {landed[n // 2]:.3f}  peak RSS src {status_mb(a.pid, 'VmHWM'):.1f} "
                f"dst {status_mb(b.pid, 'VmHWM'):.1f} MB (anon/file at the end: src "
                f"{status_mb(a.pid, 'RssAnon'):.1f}/{status_mb(a.pid, 'RssFile'):.1f} dst "
                f"{status_mb(b.pid, 'RssAnon'):.1f}/{status_mb(b.pid, 'RssFile'):.1f})")
        if want_threads:
            line += f"\n      dst threads: {threads(b.pid)}\n      src threads: {threads(a.pid)}"
        return line
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
                p.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("binaries", nargs="+")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dataset", choices=["large", "small"], default="small")
    ap.add_argument("--scale", type=float, default=0.25)
    ap.add_argument("--threads", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (it makes and mounts an ext4 image per run)")
    os.makedirs(ROOT, exist_ok=True)
    data, entries = manifest(args.dataset, args.scale)
    try:
        for r in range(args.rounds):
            for binary in args.binaries:
                line = run_once(os.path.abspath(binary), data, entries, args.threads)
                print(f"round {r + 1} {os.path.basename(binary)}: {line}", flush=True)
    finally:
        cleanup()


if __name__ == "__main__":
    main()
