#!/usr/bin/env bash
# One prepared check for a machine with one CUDA GPU, finishing in under 8 minutes, also on
# a compute node without internet:
#   0. with --offline WHEELHOUSE: installs the project's Python dependencies from that
#      folder (`make wheelhouse`, torch excluded: the node's own CUDA build is used) into
#      $OUT_DIR/site with `pip --no-index`, and checks that everything imports;
#   1. a short study (config/study.yaml + config/gpu_check.yaml), whose GPU jobs share the
#      GPU (--resources gpu=$GPU_JOBS), gathered like `make study` into $OUT_DIR/study/
#      (--keep-going: a failed job costs only what depends on it; an offline install has no
#      FRD v1 stack, so its distance tables hold FID when FID_WEIGHTS is set);
#   2. benchmarks/bench_recon.py --device cuda at 2048 wide, 1,500 angles;
#   3. benchmarks/bench_wgan_gp.py --device cuda: ours vs the idiomatic loop, plain and with
#      bf16 AMP (and torch.compile with --compile, which needs minutes to compile);
#   4. FID on the GPU through pytorch-fid if FID_WEIGHTS names a local
#      pt_inception-2015-12-05-6726825d.pth (nothing is downloaded); else skipped.
# Each step has its own time limit, and $OUT_DIR/figures.json is rewritten after every step
# (name, exit status, seconds, and the step's JSON figures), so a step cut at its limit
# still leaves the figures of the steps before it. Everything goes under $OUT when set,
# else gpu_check/.
#
#   benchmarks/gpu_check.sh [--offline WHEELHOUSE] [--compile]
#   FID_WEIGHTS=/path/to/pt_inception-2015-12-05-6726825d.pth GPU_JOBS=4 benchmarks/gpu_check.sh
set -u
cd "$(dirname "$0")/.."
WHEELHOUSE=""
COMPILE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --offline) WHEELHOUSE="$(cd "$2" && pwd)" || { echo "gpu_check: no folder $2" >&2; exit 2; }; shift 2 ;;
    --compile) COMPILE=1; shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "gpu_check: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
OUT_DIR="${OUT:-gpu_check}"
mkdir -p "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
GPU_JOBS="${GPU_JOBS:-4}"
PY="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
WORK="${GPU_CHECK_WORKDIR:-$OUT_DIR/run}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
FIGS="$OUT_DIR/figures.json"
log() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$OUT_DIR/gpu_check.log"; }
record() {  # record NAME RC SECONDS [JSON_FILE]: add one step to figures.json at once
  "$PY" - "$FIGS" "$@" <<'PYEOF'
import json, sys
from pathlib import Path
figs, name, rc, secs = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
data = json.loads(figs.read_text()) if figs.exists() else {"steps": {}}
step = {"exit": rc, "seconds": secs, "time_limit_hit": rc == 124}
if len(sys.argv) > 5 and Path(sys.argv[5]).is_file():
    try:
        step["figures"] = json.loads(Path(sys.argv[5]).read_text())
    except ValueError as exc:
        step["figures_error"] = f"{sys.argv[5]}: {exc}"
data["steps"][name] = step
tmp = figs.with_suffix(".tmp")
tmp.write_text(json.dumps(data, indent=2))
tmp.replace(figs)
PYEOF
}
step() {  # step NAME LIMIT_S JSON_OR_- CMD...: run with a time limit, log and record it
  local name=$1 limit=$2 json=$3; shift 3
  local t0=$(date +%s)
  timeout --signal=INT --kill-after=15 "$limit" "$@" >"$OUT_DIR/$name.log" 2>&1
  local rc=$? secs=$(( $(date +%s) - t0 ))
  log "$name: exit $rc after $secs s (limit $limit s)$( [ $rc -eq 124 ] && echo ', TIME LIMIT HIT')"
  record "$name" "$rc" "$secs" "$json"
  return $rc
}

# 0. offline install: pip --no-index into a folder on PYTHONPATH (the node's python keeps
#    its own torch and scientific stack; `assumed.txt` lists what it must provide)
if [ -n "$WHEELHOUSE" ]; then
  SITE="$OUT_DIR/site"
  step install 120 - "$PY" -m pip install --no-index --no-deps --no-compile --no-cache-dir \
    --disable-pip-version-check -q --upgrade --target "$SITE" "$WHEELHOUSE"/*.whl \
    || { log "offline install failed: see $OUT_DIR/install.log"; exit 1; }
  export PYTHONPATH="$PWD:$SITE${PYTHONPATH#$PWD}"
  export PATH="$SITE/bin:$PATH"
  step imports 60 - "$PY" -c "import torch, numpy, scipy, cv2, h5py, pandas, matplotlib, skimage, tifffile, yaml, jsonschema, snakemake, pytorch_fid, finufft, tomosynth.cli" \
    || { log "imports failed (a package the node must provide is missing?): see $OUT_DIR/imports.log and $WHEELHOUSE/assumed.txt"; exit 1; }
fi
SMK=("$PY" -m snakemake)

log "start; $("$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else "")' 2>&1)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$OUT_DIR/nvidia-smi.csv" 2>&1

# 1. short study: GPU jobs share the GPU, CPU stages use the node's cores
mkdir -p "$WORK"
t0=$(date +%s)
EXTRA=()
if [ -n "${FID_WEIGHTS:-}" ] && [ -f "${FID_WEIGHTS}" ]; then  # FID rows in the study's tables
  printf 'evaluate:\n  fid_weights: %s\n' "$(cd "$(dirname "$FID_WEIGHTS")" && pwd)/$(basename "$FID_WEIGHTS")" \
    >"$OUT_DIR/fid_overlay.yaml"
  EXTRA=("$OUT_DIR/fid_overlay.yaml")
fi
step study 270 - "${SMK[@]}" --cores "$(nproc)" --workflow-profile workflow/profiles/default \
  --resources gpu="$GPU_JOBS" --keep-going \
  --configfile "$PWD/config/study.yaml" "$PWD/config/gpu_check.yaml" ${EXTRA[@]+"${EXTRA[@]}"} \
  --directory "$WORK"
"$PY" -m tomosynth.cli study-report "$WORK" "$OUT_DIR/study" --wall-s $(( $(date +%s) - t0 )) \
  >"$OUT_DIR/study_report.log" 2>&1 || log "study-report failed (see study_report.log)"

# 2. reconstruction on the GPU, Tomobank size
step bench_recon 60 - "$PY" benchmarks/bench_recon.py --device cuda --sizes 2048x1500 \
  --rows 16 --repeat 2

# 3. WGAN-GP training throughput: plain, bf16 AMP (and torch.compile on request)
for mode in plain amp compile; do
  [ "$mode" = compile ] && [ "$COMPILE" = 0 ] && continue
  flag=(); [ "$mode" != plain ] && flag=(--"$mode")
  limit=40; [ "$mode" = compile ] && limit=240
  step "bench_wgan_gp_$mode" "$limit" "$OUT_DIR/bench_wgan_gp_$mode.json" \
    "$PY" benchmarks/bench_wgan_gp.py --device cuda ${flag[@]+"${flag[@]}"} --sizes 64 256 \
    --max-channels 0 --batches 5 --repeats 2 --out "$OUT_DIR/bench_wgan_gp_$mode.json"
done

# 4. FID on the GPU (pytorch-fid's Inception, local weights only)
if [ -n "${FID_WEIGHTS:-}" ] && [ -f "${FID_WEIGHTS}" ]; then
  step fid 30 "$OUT_DIR/fid.json" "$PY" - "$WORK/results" "$FID_WEIGHTS" "$OUT_DIR/fid.json" <<'PYEOF'
import json, sys, time
from pathlib import Path
import torch
from pytorch_fid.fid_score import calculate_fid_given_paths
from tomosynth.metrics.fid import offline_torch_home
res, weights, out = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
real = res / "png" / "shale" / "256px"
fake = res / "samples" / "wgan_gp" / "shale_256px"
t0 = time.perf_counter()
with offline_torch_home(weights):
    fid = calculate_fid_given_paths([str(real), str(fake)], 50, "cuda", 2048, num_workers=4)
torch.cuda.synchronize()
rec = {"fid_real_256px_vs_wgan_gp_256px": fid, "seconds": time.perf_counter() - t0,
       "device": torch.cuda.get_device_name()}
out.write_text(json.dumps(rec, indent=2)); print(rec)
PYEOF
else
  log "fid: skipped: set FID_WEIGHTS to a local pt_inception-2015-12-05-6726825d.pth (nothing is downloaded)"
fi
log "done; figures in $FIGS, logs under $OUT_DIR"
