#!/usr/bin/env python3
"""Deterministic benchmark datasets (seeded; the same scale and seed give the same bytes).

    gen_data.py OUTDIR large|small|scan-large|scan-small SCALE [SEED]

large: 4 files of 256 MiB * SCALE of random bytes.
small: 20,000 * SCALE files of 1-64 KiB (uniform) in 200 * SCALE directories.
scan-large: 16 files of 256 MiB * SCALE of random bytes (the scan benchmark, 4 GiB).
scan-small: 100,000 * SCALE files of 1-16 KiB (uniform) in 1,000 * SCALE directories.
A file OUTDIR/../<name>.manifest (relative path, size) is written last; a dataset whose
manifest exists and matches is reused.
"""
import os
import random
import sys


CHUNK = 16 << 20  # randbytes() of more than 256 MiB overflows; chunks of 16 MiB


def write(path, rng, size):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, CHUNK)
            f.write(rng.randbytes(n))
            left -= n


def main():
    out, kind, scale = sys.argv[1], sys.argv[2], float(sys.argv[3])
    seed = int(sys.argv[4]) if len(sys.argv) > 4 else 20261201
    rng = random.Random(f"{kind}-{seed}")
    entries = []
    if kind == "large":
        size = int(256 * 1024 * 1024 * scale)
        for i in range(4):
            rel = f"large-{i}.bin"
            entries.append((rel, size))
    elif kind == "small":
        nfiles = max(1, int(20000 * scale))
        ndirs = max(1, int(200 * scale))
        for i in range(nfiles):
            rel = f"d{i % ndirs:03d}/f{i:05d}.bin"
            entries.append((rel, rng.randint(1024, 64 * 1024)))
    elif kind == "scan-large":
        size = int(256 * 1024 * 1024 * scale)
        for i in range(16):
            entries.append((f"large-{i:02d}.bin", size))
    elif kind == "scan-small":
        nfiles = max(1, int(100000 * scale))
        ndirs = max(1, int(1000 * scale))
        for i in range(nfiles):
            rel = f"d{i % ndirs:04d}/f{i:06d}.bin"
            entries.append((rel, rng.randint(1024, 16 * 1024)))
    else:
        sys.exit(f"unknown dataset {kind!r}")
    manifest = out.rstrip("/") + ".manifest"
    text = f"# {kind} scale {scale:g} seed {seed}\n" + "".join(
        f"{rel}\t{size}\n" for rel, size in entries)
    if os.path.exists(manifest) and open(manifest).read() == text:
        print(f"{out}: up to date", file=sys.stderr)
        return
    if os.path.exists(manifest):
        os.remove(manifest)
    os.makedirs(out, exist_ok=True)
    for rel, size in entries:
        write(os.path.join(out, rel), rng, size)
    with open(manifest, "w") as f:
        f.write(text)
    print(f"{out}: {len(entries)} files, {sum(s for _, s in entries)} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
