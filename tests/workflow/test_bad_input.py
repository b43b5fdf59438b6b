"""Bad input through Snakemake itself: the console shows one line naming the key or file,
the exit code is non-zero and nothing partial is left in results/; an interrupted training
resumes instead of starting over.

The dry-run cases take a few seconds each; the ones that run jobs are marked slow.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tomosynth.io import write_dxchange

REPO = Path(__file__).resolve().parents[2]


def snakemake(workdir: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run Snakemake without the workflow's default profile (as with any other profile)."""
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--workflow-profile", "none", *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(workdir)},
    )


@pytest.fixture
def work(wf, tmp_path) -> Path:
    return wf.copy_workflow(tmp_path / "repo")


def _results_files(workdir: Path) -> list[str]:
    res = workdir / "results"
    return sorted(str(p.relative_to(workdir)) for p in res.rglob("*")) if res.exists() else []


CONFIG_CASES = {
    "unknown_top_key": ("bogus: 1\n", "unknown config key 'bogus'"),
    "unknown_recon_key": ("recon:\n  bogus: 1\n", "under recon; valid keys: backend"),
    "reversed_percentiles": ("preprocess:\n  percentiles: [99, 1]\n", "preprocess.percentiles"),
    "split_sum": (
        "preprocess:\n  split: {train: 0.8, val: 0.4, test: 0.3}\n",
        "preprocess.split: train + val + test = 1.5",
    ),
    "scan_is_a_directory": ("scans:\n  mine: {path: ., voxel_um: 1}\n", "is a directory"),
    # issue 21 §10, §16: caught before any job, in one line
    "preset_generator_key": (
        "srgan:\n  presets:\n    exp_d:\n      generator: {chanels: 8}\n",
        "config srgan.presets.exp_d.generator: unknown key 'chanels'",
    ),
    "empty_splits": (
        "preprocess:\n  split: {train: 1, val: 0, test: 0}\n",
        "preprocess.split: test, val are 0",
    ),
}


@pytest.mark.workflow
@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_bad_config_stops_before_any_job_with_a_short_message(work, case):
    overlay, needle = CONFIG_CASES[case]
    (work / "bad.yaml").write_text(overlay)
    proc = snakemake(work, "--cores", "1", "--configfile", "tiny.yaml", "bad.yaml")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert needle in out, out[-3000:]
    assert len(out.splitlines()) <= 8, out  # was 2,884 lines for an unknown key
    assert _results_files(work) == []


@pytest.mark.workflow
def test_yaml_syntax_error_in_config_yaml_names_file_and_line(work):
    text = (work / "config.yaml").read_text().splitlines()
    line = next(i for i, x in enumerate(text) if x.startswith("  chunk_rows:"))
    text[line] = "  chunk_rows: [16"
    (work / "config.yaml").write_text("\n".join(text) + "\n")
    proc = snakemake(work, "-n", "--configfile", "tiny.yaml")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"config.yaml:{line + 2}:" in out and "expected ',' or ']'" in out, out[-3000:]
    assert f"started at line {line + 1}" in out
    assert len(out.splitlines()) <= 8, out


def tomosynth_run(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """``tomosynth run ARGS`` (the checked entry point to Snakemake), as `snakemake` above."""
    cmd = [sys.executable, "-m", "tomosynth.cli", "run", "--workflow-profile", "none", *args]
    env = {**os.environ, "PYTHONPATH": str(workdir)}
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=300, env=env)


# issue 21 §7, §14: Snakemake reads --configfile overlays before the Snakefile runs and names
# neither the file nor the line of a YAML error ("Config file is not valid JSON or YAML"),
# and shows a traceback for a missing one; `tomosynth run` checks them, then runs Snakemake.
OVERLAY_CASES = {
    "yaml_error": (
        "recon:\n  chunk_rows: 8\n  filter: [ramlak\nx: 1\n",
        "bad.yaml:4:2: expected ','",
    ),
    "missing": (None, "absent.yaml: no such config file"),
    "empty": ("", "empty.yaml: the config file is empty"),
}


@pytest.mark.workflow
@pytest.mark.parametrize("case", sorted(OVERLAY_CASES))
def test_broken_overlay_is_one_line_through_tomosynth_run(work, case):
    text, needle = OVERLAY_CASES[case]
    name = {"missing": "absent.yaml", "empty": "empty.yaml"}.get(case, "bad.yaml")
    if text is not None:
        (work / name).write_text(text)
    proc = tomosynth_run(work, "-n", "--configfile", "tiny.yaml", name)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1
    assert out.startswith(name) and needle in out and len(out.splitlines()) == 1, out
    assert not (work / ".snakemake").exists()  # stopped before Snakemake started
    plain = snakemake(work, "-n", "--configfile", "tiny.yaml", name)
    assert plain.returncode != 0  # Snakemake itself stops too, but without the file:line


@pytest.mark.workflow
def test_tomosynth_run_hands_good_overlays_to_snakemake(work):
    (work / "mine.yaml").write_text("recon:\n  chunk_rows: 8\n")
    proc = tomosynth_run(work, "-n", "--configfile", "tiny.yaml", "mine.yaml", "--quiet", "rules")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "reconstruct" in proc.stdout + proc.stderr  # Snakemake's own dry-run summary


@pytest.mark.workflow
def test_memory_request_above_the_machine_is_warned_before_any_job(work):
    (work / "big.yaml").write_text(
        "recon:\n  chunk_rows: 4096\nsimulate:\n  columns: 2048\n  slices: 2048\n  angles: 1500\n"
    )
    proc = snakemake(work, "-n", "--configfile", "tiny.yaml", "big.yaml")
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [x for x in proc.stderr.splitlines() if x.startswith("warning: rule reconstruct")]
    assert lines and "lower recon.chunk_rows" in lines[0] and "this machine's memory" in lines[0]
    proc = snakemake(work, "-n", "--configfile", "tiny.yaml")
    assert "asks for" not in proc.stderr


@pytest.mark.workflow
def test_second_run_in_a_busy_folder_is_told_it_is_in_use(work, tmp_path):
    exe = tmp_path / "bin" / "snakemake"  # looks like `snakemake --cores 1` in the folder
    exe.parent.mkdir()
    exe.symlink_to(sys.executable)
    other = subprocess.Popen(
        [str(exe), "-c", "import time; time.sleep(120)", "--cores", "1"], cwd=work
    )
    try:
        time.sleep(1)
        proc = snakemake(work, "--cores", "1", "--configfile", "tiny.yaml")
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0
        assert f"is in use by another Snakemake run (pid {other.pid}:" in out, out[-3000:]
        assert "--rerun-incomplete" not in out and len(out.splitlines()) <= 8, out
        proc = snakemake(work, "-n", "--configfile", "tiny.yaml")  # a dry run writes nothing
        assert proc.returncode == 0 and "warning: " in proc.stderr and "in use" in proc.stderr
    finally:
        other.kill()
        other.wait()


@pytest.mark.workflow
def test_empty_scans_overlay_warns_and_run_scans_selects(work, tmp_path):
    (work / "empty.yaml").write_text("scans: {}\n")
    proc = snakemake(work, "-n", "--configfile", "tiny.yaml", "empty.yaml")
    assert proc.returncode == 0
    assert "'scans: {}' has no effect" in proc.stderr and "run_scans" in proc.stderr
    scan = tmp_path / "mine.h5"
    write_dxchange(  # job sizes read its header at parse time
        scan,
        np.full((12, 4, 16), 2000, np.uint16),
        np.full((2, 4, 16), 4000, np.uint16),
        np.full((2, 4, 16), 100, np.uint16),
        np.linspace(0, np.pi, 12, endpoint=False),
    )
    (work / "mine.yaml").write_text(f"scans:\n  mine: {{path: {scan}}}\nrun_scans: [mine]\n")
    proc = snakemake(work, "-n", "--configfile", "tiny.yaml", "mine.yaml")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "scan=mine" in proc.stdout and "scan=shale" not in proc.stdout
    assert "simulate_scan" not in proc.stdout


def _write_scan(path: Path, *, negative=False, radians=False):
    from tomosynth.io import write_dxchange

    rng = np.random.default_rng(0)
    a, r, c = 32, 12, 32
    theta = np.linspace(0, np.pi, a, endpoint=False)
    data = rng.poisson(2000, (a, r, c)).astype(np.float32)
    flat = rng.poisson(5000, (2, r, c)).astype(np.float32)
    dark = rng.poisson(100, (2, r, c)).astype(np.float32)
    write_dxchange(path, -data if negative else data, flat, dark, theta)
    if radians:
        import h5py

        with h5py.File(path, "r+") as h:
            h["/exchange/theta"][...] = theta
            del h["/exchange/theta"].attrs["units"]


@pytest.mark.workflow
@pytest.mark.slow
@pytest.mark.parametrize(
    "kind, needle", [("negative", "negative values"), ("radians", "theta_units: radians")]
)
def test_impossible_scan_fails_with_one_console_line(work, tmp_path, kind, needle):
    scan = tmp_path / f"{kind}.h5"
    _write_scan(scan, negative=kind == "negative", radians=kind == "radians")
    (work / "mine.yaml").write_text(f"scans:\n  mine: {{path: {scan}}}\nrun_scans: [mine]\n")
    proc = snakemake(
        work, "results/recon/mine", "--cores", "1", "--configfile", "tiny.yaml", "mine.yaml"
    )
    assert proc.returncode != 0
    lines = [x for x in proc.stderr.splitlines() if x.startswith("DataError in rule reconstruct")]
    assert len(lines) == 1 and str(scan) in lines[0] and needle in lines[0], proc.stderr[-3000:]
    assert not (work / "results" / "recon" / "mine").exists()
    assert not list((work / "results").rglob(".mine.*")) if (work / "results").exists() else True
    if kind == "radians":  # the documented fix works
        (work / "fix.yaml").write_text("scans:\n  mine: {theta_units: radians}\n")
        proc = snakemake(
            work,
            "results/recon/mine",
            "--cores",
            "1",
            "--configfile",
            "tiny.yaml",
            "mine.yaml",
            "fix.yaml",
        )
        assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.workflow
@pytest.mark.slow
def test_deleted_png_is_named_by_its_consumer_and_by_verify(wf, tiny_local_run, tmp_path):
    work = tmp_path / "repo"
    shutil.copytree(tiny_local_run, work, symlinks=True)
    from tomosynth.cli import main

    assert main(["verify", str(work / "results")]) == 0
    victim = sorted((work / "results/png/shale/32px").glob("slice_*.png"))[0]
    victim.unlink()
    assert main(["verify", str(work / "results")]) == 1
    # Snakemake alone would say "Nothing to be done": the parse-time check names the folder
    proc = snakemake(work, "-n", "--configfile", "tiny.yaml")
    assert f"results/png/shale/32px is damaged (results/png/shale/32px/{victim.name}: missing" in (
        proc.stderr
    )
    assert "snakemake --forcerun export_png" in proc.stderr
    proc = snakemake(
        work, "--cores", "1", "--configfile", "tiny.yaml", "--forcerun", "compute_morphology"
    )
    assert proc.returncode != 0
    lines = [x for x in proc.stderr.splitlines() if x.startswith("DataError in rule")]
    assert lines and str(victim.name) in lines[0] and "snakemake --forcerun export_png" in lines[0]


@pytest.mark.workflow
@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "kill9"])
def test_interrupted_snakemake_checkpoints_the_training_and_the_rerun_resumes(work, sig):
    (work / "long.yaml").write_text(
        "wgan_gp:\n  train:\n    budget_minutes: 0.75\n    max_epochs: 100000\n"
        "    checkpoint_every: 100000\n"
    )
    model = work / "results/models/wgan_gp/shale_16px"
    target = "results/models/wgan_gp/shale_16px/final.pt"
    args = ["--cores", "2", target, "--configfile", "tiny.yaml", "long.yaml"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--workflow-profile", "none", *args],
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": str(work)},
    )
    log = work / "logs/train_wgan_gp/shale_16px.log"
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline and not (log.exists() and "wgan_gp 16px" in log.read_text()):
        time.sleep(0.5)
    time.sleep(8)
    t0 = time.monotonic()
    proc.send_signal(sig)  # the Snakemake process only, not its process group
    out, _ = proc.communicate(timeout=120)
    # kill -9: the orphaned training notices that Snakemake is gone
    while "stopped by signal" not in log.read_text() and time.monotonic() - t0 < 25:
        time.sleep(0.2)
    assert time.monotonic() - t0 < 25, "the training went on after Snakemake stopped"
    assert (model / "latest.pt").exists(), out[-3000:]
    time.sleep(2)  # the stopped training exits
    assert not (model / "final.pt").exists()
    if sig == signal.SIGKILL:  # Snakemake's lock stays: the documented one extra command
        unlock = subprocess.run(
            [sys.executable, "-m", "snakemake", "--unlock", *args[2:]],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONPATH": str(work)},
        )
        assert unlock.returncode == 0, unlock.stderr[-2000:]
    # the default profile (rerun-incomplete) makes the same command resume where it stopped
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--profile",
            "workflow/profiles/default",
            "--cores",
            "2",
            *args[2:],
        ],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(work)},
    )
    assert res.returncode == 0, res.stderr[-3000:]
    text = log.read_text()
    assert "resuming" in text and "starting over" not in text, text[-2000:]
    assert "(budget)" in text
