# SPDX-License-Identifier: BSD-3-Clause
"""Build tomopy's gridrec C code here and call it through ctypes (the benchmark's peer).

tomopy is often not importable (no wheel for this Python), but its gridrec is the
reference every tomography user knows. This helper compiles ``source/libtomo/gridrec``
from a tomopy source tree, never copied into this repository, with::

    gcc -O3 -march=native -fPIC -shared -DTOMOPY_USE_FFTW gridrec.c fftw3f (+ its OpenMP lib)

``TOMOPY_USE_FFTW`` is required: without it gridrec.c compiles without any FFT backend,
runs 1.4-1.8x faster and returns wrong images. The source is a tomopy checkout or a
bare git directory of tomopy (read with ``git archive HEAD``), named by ``--gridrec-src``
or ``TOMOSYNTH_GRIDREC_SRC``. fftw3f comes from ``TOMOSYNTH_FFTW_PREFIX`` (``include/``
and ``lib/`` or ``lib64/``), else the finufft wheel's bundled static fftw3f, else the
system's (``/usr/include/fftw3.h``, ``-lfftw3f``).

Checked against tomopy's own test outputs by tests/unit/test_gridrec_build.py.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ENV_SRC = "TOMOSYNTH_GRIDREC_SRC"
ENV_FFTW = "TOMOSYNTH_FFTW_PREFIX"
FLAGS = ["-O3", "-march=native", "-fPIC", "-shared", "-DTOMOPY_USE_FFTW"]


class GridrecUnavailable(RuntimeError):
    """No tomopy source, compiler or fftw3f here: the gridrec peer cannot be built."""


def _export_source(src: Path, dest: Path) -> str:
    """Copy gridrec's sources from a checkout or a bare git dir into `dest`; return the
    tomopy revision (commit or "worktree")."""
    parts = ("include/libtomo", "source/libtomo/gridrec")
    if (src / "source/libtomo/gridrec/gridrec.c").is_file():
        for part in parts:
            shutil.copytree(src / part, dest / part)
        return "worktree"
    git = ["git", f"--git-dir={src}"]
    try:
        rev = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True)
        tar = subprocess.run([*git, "archive", "HEAD", *parts], capture_output=True)
    except FileNotFoundError as exc:
        raise GridrecUnavailable("git not found (needed to read a bare tomopy repo)") from exc
    if rev.returncode or tar.returncode:
        raise GridrecUnavailable(
            f"{src} is neither a tomopy checkout nor a tomopy git directory "
            f"(no source/libtomo/gridrec/gridrec.c): pass --gridrec-src or {ENV_SRC}"
        )
    subprocess.run(["tar", "x", "-C", str(dest)], input=tar.stdout, check=True)
    return rev.stdout.strip()


def _fftw_flags() -> tuple[list[str], str]:
    """Compiler/linker arguments for fftw3f and a one-line description of where from."""
    prefixes = [os.environ[ENV_FFTW]] if os.environ.get(ENV_FFTW) else []
    try:
        import finufft  # its wheel ships include/fftw3.h and lib64/libfftw3f*.a

        prefixes.append(str(Path(finufft.__file__).resolve().parents[1]))
    except ImportError:
        pass
    for prefix in map(Path, prefixes):
        for lib in ("lib64", "lib"):
            static = prefix / lib / "libfftw3f.a"
            if (prefix / "include/fftw3.h").is_file() and static.is_file():
                extra = [str(p) for p in (prefix / lib / "libfftw3f_omp.a",) if p.is_file()]
                # its own fftw copy, bound inside the library and not exported: finufft
                # (loaded in the same process) carries another fftw, and mixing the two
                # copies' planners and plans crashes with threads
                args = [f"-I{prefix / 'include'}", *extra, str(static), "-fopenmp"]
                args += ["-Wl,-Bsymbolic", "-Wl,--exclude-libs,ALL"]
                return args, f"static fftw3f from {prefix}"
            shared = list((prefix / lib).glob("libfftw3f.so*"))
            if (prefix / "include/fftw3.h").is_file() and shared:
                args = [
                    f"-I{prefix / 'include'}",
                    f"-L{prefix / lib}",
                    f"-Wl,-rpath,{prefix / lib}",
                ]
                return [*args, "-lfftw3f_threads", "-lfftw3f"], f"fftw3f from {prefix}"
    if Path("/usr/include/fftw3.h").is_file():
        return ["-lfftw3f_threads", "-lfftw3f"], "system fftw3f"
    raise GridrecUnavailable(
        f"no fftw3f headers and library: install libfftw3-dev, the finufft wheel, or set {ENV_FFTW}"
    )


#: Compiled into the library beside gridrec.c: fftw's planner is not thread-safe, and
#: gridrec.c's call to fftwf_make_planner_thread_safe does nothing with the OpenMP build
#: of fftw's threads library that the finufft wheel ships (two threads planning at once
#: crash). tomopy links the pthreads build; this does what that call does there.
_PLANNER_LOCK_C = r"""
#include <pthread.h>
#include <fftw3.h>
static pthread_mutex_t planner_mutex = PTHREAD_MUTEX_INITIALIZER;
static void planner_lock(void) { pthread_mutex_lock(&planner_mutex); }
static void planner_unlock(void) { pthread_mutex_unlock(&planner_mutex); }
__attribute__((constructor)) static void serialise_planner(void) {
    fftwf_set_planner_hooks(planner_lock, planner_unlock);
}
"""


class Gridrec:
    """tomopy's ``gridrec`` C function, built from `src` into a temporary directory."""

    def __init__(self, src: str | os.PathLike | None = None) -> None:
        src = src or os.environ.get(ENV_SRC)
        if not src:
            raise GridrecUnavailable(f"no tomopy source: pass --gridrec-src or set {ENV_SRC}")
        if shutil.which("gcc") is None:
            raise GridrecUnavailable("gcc not found")
        self._tmp = tempfile.TemporaryDirectory(prefix="gridrec-")
        tmp = Path(self._tmp.name)
        self.revision = _export_source(Path(src), tmp)
        fftw, fftw_from = _fftw_flags()
        lib = tmp / "libtomo-gridrec.so"
        lock_c = tmp / "planner_lock.c"
        lock_c.write_text(_PLANNER_LOCK_C)
        cmd = [
            "gcc",
            *FLAGS,
            f"-I{tmp / 'include'}",
            f"-I{tmp / 'source/libtomo/gridrec'}",
            str(tmp / "source/libtomo/gridrec/gridrec.c"),
            str(lock_c),
            "-pthread",
            "-o",
            str(lib),
            *fftw,
            "-lm",
        ]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode:
            raise GridrecUnavailable(f"gridrec build failed: {res.stderr.strip()[-2000:]}")
        self.build = (
            f"tomopy {self.revision[:12]} gridrec.c (+ a planner lock), gcc {' '.join(FLAGS)}, "
            f"{fftw_from}"
        )
        self._lib = ctypes.CDLL(str(lib))
        self._lib.gridrec.restype = None
        f32 = ctypes.POINTER(ctypes.c_float)
        self._lib.gridrec.argtypes = [f32, ctypes.c_int, ctypes.c_int, ctypes.c_int, f32, f32]
        self._lib.gridrec.argtypes += [f32, ctypes.c_int, ctypes.c_int, ctypes.c_char_p, f32]

    def __call__(
        self,
        proj: np.ndarray,
        theta: np.ndarray,
        center: float | None = None,
        filter_name: str = "ramlak",
        threads: int = 1,
    ) -> np.ndarray:
        """``tomopy.recon(proj, theta, center, algorithm="gridrec", filter_name=...,
        ncore=threads)`` for projections ``(angles, rows, cols)`` -> ``(rows, cols, cols)``.

        As tomopy: rows go in sinogram order, the default centre is ``cols / 2``, the
        filter parameters are ``[0.5, 8]``, and `threads` workers take contiguous blocks
        of rows (ctypes releases the GIL during each call).
        """
        tomo = np.ascontiguousarray(np.swapaxes(np.asarray(proj, np.float32), 0, 1))
        rows, n_angles, n = tomo.shape
        centers = np.full(rows, n / 2.0 if center is None else center, np.float32)
        th = np.ascontiguousarray(theta, np.float32)
        par = np.array([0.5, 8], np.float32)
        out = np.empty((rows, n, n), np.float32)
        name = filter_name.encode()

        def ptr(a: np.ndarray) -> ctypes.POINTER:
            return a.ctypes.data_as(ctypes.POINTER(ctypes.c_float))

        def block(r0: int, r1: int) -> None:
            self._lib.gridrec(
                ptr(tomo[r0:r1]), r1 - r0, n_angles, n, ptr(centers[r0:r1]), ptr(th),
                ptr(out[r0:r1]), n, n, name, ptr(par),
            )  # fmt: skip

        edges = np.linspace(0, rows, max(1, min(threads, rows)) + 1).astype(int)
        spans = [(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]
        if len(spans) == 1:
            block(*spans[0])
        else:
            with ThreadPoolExecutor(len(spans)) as pool:
                list(pool.map(lambda s: block(*s), spans))
        return out
