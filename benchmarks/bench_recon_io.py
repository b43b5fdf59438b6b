# SPDX-License-Identifier: BSD-3-Clause
"""Read stage of `reconstruct_scan` on a per-projection gzip-compressed HDF5 file.

Usage::

    .venv/bin/python benchmarks/bench_recon_io.py              # 2048 wide, ~160 MB, ~2 min
    .venv/bin/python benchmarks/bench_recon_io.py --angles 600 --rows 256 --out io.json

Writes one synthetic scan twice: gzip-compressed with one HDF5 chunk per projection
(``chunks=(1, rows, cols)``, Tomobank's common layout) and uncompressed contiguous. For each
file, in a fresh subprocess per case, it reads all rows in chunks of ``--chunk-rows`` rows
the old way (`read_dxchange` per chunk, which decompresses every projection once per chunk)
and the new way (`plan_row_reads`: a sinogram-ordered scratch copy built by one pass over the
file, then chunks read from it; direct reads when the layout needs none; on ``--threads``
threads). Printed side by side: seconds and the growth of peak resident memory (Linux
``VmHWM`` reset after the imports, minus ``VmRSS`` before), next to the float32 chunk that
both must hold.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def write_scans(folder: Path, angles: int, rows: int, cols: int, level: int) -> dict[str, Path]:
    """The same counts as a gzip per-projection file and an uncompressed contiguous one."""
    import h5py

    rng = np.random.default_rng(0)
    x = (np.arange(cols) + 0.5 - cols / 2) / (0.4 * cols)
    paths = {"gzip, chunk per projection": folder / "gzip.h5", "uncompressed": folder / "raw.h5"}
    layouts = {
        "gzip, chunk per projection": dict(
            chunks=(1, rows, cols), compression="gzip", compression_opts=level
        ),
        "uncompressed": {},
    }
    files = {name: h5py.File(path, "w") for name, path in paths.items()}
    try:
        for name, f in files.items():
            for key, n in (("data", angles), ("data_white", 10), ("data_dark", 10)):
                f.create_dataset(
                    f"/exchange/{key}", shape=(n, rows, cols), dtype=np.uint16, **layouts[name]
                )
            f.create_dataset("/exchange/theta", data=np.linspace(0, 180, angles, endpoint=False))
        flat = rng.poisson(4000.0, (10, rows, cols)).astype(np.uint16)
        dark = rng.poisson(100.0, (10, rows, cols)).astype(np.uint16)
        for a0 in range(0, angles, 16):
            a1 = min(a0 + 16, angles)
            # a cylinder with an off-centre inclusion: smooth counts plus Poisson noise
            shift = 0.3 * np.cos(np.linspace(a0, a1, a1 - a0, endpoint=False) * np.pi / angles)
            path = np.sqrt(np.clip(1 - x[None, :] ** 2, 0, None)) + 0.2 * np.sqrt(
                np.clip(1 - ((x[None, :] - shift[:, None]) / 0.1) ** 2, 0, None)
            )
            lam = 100 + 3900 * np.exp(-2.0 * path)[:, None, :] * np.ones((1, rows, 1))
            block = rng.poisson(lam).astype(np.uint16)
            for f in files.values():
                f["/exchange/data"][a0:a1] = block
        for f in files.values():
            f["/exchange/data_white"][...] = flat
            f["/exchange/data_dark"][...] = dark
    finally:
        for f in files.values():
            f.close()
    return paths


_CASE = """
import json, sys, time
from pathlib import Path
from tomosynth.io import (SinogramScratch, h5_layout, inspect_dxchange, plan_row_reads,
                          read_dxchange, scan_digest)

def status_mb(key):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024.0

scan, order, chunk_rows, scratch_dir = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
threads = int(sys.argv[5]) if order == "new" else 1
info = inspect_dxchange(scan)
before = status_mb("VmRSS")
Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
t0 = time.perf_counter()
mode = "direct"
if order == "new":
    mode, _ = plan_row_reads(h5_layout(scan), info.n_rows, chunk_rows)
if mode == "transpose":
    s = SinogramScratch(scratch_dir, scan, (0, info.n_rows), scan_digest(scan), 128, threads=threads)
    s.build()
    read = s.read
else:
    read = lambda a, b: read_dxchange(scan, rows=(a, b), threads=threads)
total = 0.0
for a in range(0, info.n_rows, chunk_rows):
    p = read(a, min(a + chunk_rows, info.n_rows))
    total += float(p.data[:, 0, 0].sum())
    del p
seconds = time.perf_counter() - t0
print(json.dumps({"mode": mode, "seconds": seconds,
                  "peak_growth_mb": status_mb("VmHWM") - before, "check": total}))
"""


def run_case(scan: Path, order: str, chunk_rows: int, scratch: Path, threads: int = 1) -> dict:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _CASE,
            str(scan),
            order,
            str(chunk_rows),
            str(scratch),
            str(threads),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
        timeout=3600,
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cols", type=int, default=2048)
    ap.add_argument("--rows", type=int, default=128)
    ap.add_argument("--angles", type=int, default=300)
    ap.add_argument("--chunk-rows", type=int, default=16)
    ap.add_argument("--level", type=int, default=4, help="gzip level (Tomobank files: 1-6)")
    ap.add_argument("--threads", type=int, default=1, help="threads of the new read order")
    ap.add_argument("--out", type=Path, help="also write the results as JSON")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_recon_io_") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        paths = write_scans(tmp, args.angles, args.rows, args.cols, args.level)
        sizes = {name: path.stat().st_size / 2**20 for name, path in paths.items()}
        print(
            f"scan: {args.angles} angles + 20 flats/darks, {args.rows} rows x {args.cols} cols, "
            f"uint16 ({args.angles * args.rows * args.cols * 2 / 2**20:.0f} MB of projections); "
            f"written in {time.perf_counter() - t0:.0f} s"
        )
        chunk_mb = 4 * (args.angles + 20) * args.chunk_rows * args.cols / 2**20
        print(f"chunk_rows {args.chunk_rows}: one float32 chunk is {chunk_mb:.0f} MB")
        results = []
        for name, path in paths.items():
            for order in ("old", "new"):
                scratch = tmp / f"scratch_{path.stem}_{order}"
                res = run_case(path, order, args.chunk_rows, scratch, args.threads)
                res.update(file=name, file_mb=round(sizes[name], 1), order=order)
                results.append(res)
        checks = {round(r["check"], 3) for r in results}
        assert len(checks) == 1, f"the read orders returned different data: {results}"
        print()
        print("| file | size (MB) | read order | mode | seconds | peak RSS growth (MB) |")
        print("|---|---|---|---|---|---|")
        for r in results:
            print(
                f"| {r['file']} | {r['file_mb']:.0f} | {r['order']} | {r['mode']} "
                f"| {r['seconds']:.2f} | {r['peak_growth_mb']:.0f} |"
            )
        gz = {r["order"]: r for r in results if r["file"].startswith("gzip")}
        print(
            f"\ngzip file, old / new read time: {gz['old']['seconds'] / gz['new']['seconds']:.1f}x"
        )
        if args.out:
            args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
