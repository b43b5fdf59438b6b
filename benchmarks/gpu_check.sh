#!/usr/bin/env bash
# One prepared check for a machine with one CUDA GPU, finishing in under 8 minutes:
#   1. a short study (config/study.yaml + config/gpu_check.yaml: 1.5 min per resolution,
#      WGAN-GP with bf16 AMP; at most 300 s in all), gathered like `make study` into
#      $OUT_DIR/study/ (with FID rows when FID_WEIGHTS is set);
#   2. benchmarks/bench_recon.py --device cuda (2048 wide, 1,500 angles, 16 rows);
#   3. benchmarks/bench_wgan_gp.py --device cuda: ours vs the idiomatic loop (NCHW and
#      channels-last), plain, with --amp and with --compile;
#   4. FID on the GPU between the study's real and generated 256 px slices through
#      pytorch-fid, if FID_WEIGHTS names a local pt_inception-2015-12-05-6726825d.pth
#      (nothing is downloaded); otherwise skipped with a note.
# Everything goes under one folder: $OUT when set (the device machine's output folder),
# else gpu_check/. Each step has its own time limit, so a slow step cannot push the whole
# past 8 minutes; its log says when a limit was hit.
#
#   FID_WEIGHTS=/path/to/pt_inception-2015-12-05-6726825d.pth benchmarks/gpu_check.sh
set -u
cd "$(dirname "$0")/.."
OUT_DIR="${OUT:-gpu_check}"
mkdir -p "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
PY="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
SMK="$(dirname "$PY")/snakemake"; [ -x "$SMK" ] || SMK=snakemake
WORK="${GPU_CHECK_WORKDIR:-$OUT_DIR/run}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
log() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$OUT_DIR/gpu_check.log"; }
step() {  # step NAME LIMIT_S CMD...: run with a time limit, log wall time and status
  local name=$1 limit=$2; shift 2
  local t0=$(date +%s)
  timeout --signal=INT --kill-after=15 "$limit" "$@" >"$OUT_DIR/$name.log" 2>&1
  local rc=$?
  log "$name: exit $rc after $(( $(date +%s) - t0 )) s (limit $limit s)$( [ $rc -eq 124 ] && echo ', TIME LIMIT HIT')"
  return $rc
}

log "start; $("$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else "")' 2>&1)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$OUT_DIR/nvidia-smi.csv" 2>&1

# 1. short study (the trainings use the GPU; CPU stages share the machine's cores)
mkdir -p "$WORK"
t0=$(date +%s)
EXTRA=()
if [ -n "${FID_WEIGHTS:-}" ] && [ -f "${FID_WEIGHTS}" ]; then  # FID rows in the study's tables
  printf 'evaluate:\n  fid_weights: %s\n' "$(cd "$(dirname "$FID_WEIGHTS")" && pwd)/$(basename "$FID_WEIGHTS")" \
    >"$OUT_DIR/fid_overlay.yaml"
  EXTRA=("$OUT_DIR/fid_overlay.yaml")
fi
step study 300 "$SMK" --cores "$(nproc)" --workflow-profile workflow/profiles/default \
  --configfile "$PWD/config/study.yaml" "$PWD/config/gpu_check.yaml" ${EXTRA[@]+"${EXTRA[@]}"} \
  --directory "$WORK"
"$PY" -m tomosynth.cli study-report "$WORK" "$OUT_DIR/study" --wall-s $(( $(date +%s) - t0 )) \
  >"$OUT_DIR/study_report.log" 2>&1 || log "study-report failed (see study_report.log)"

# 2. reconstruction on the GPU
step bench_recon 25 "$PY" benchmarks/bench_recon.py --device cuda --rows 16 --repeat 2

# 3. WGAN-GP training throughput: plain, AMP, torch.compile
step bench_wgan_gp 35 "$PY" benchmarks/bench_wgan_gp.py --device cuda --sizes 64 256 \
  --max-channels 0 --batches 5 --repeats 2 --out "$OUT_DIR/bench_wgan_gp.json"
step bench_wgan_gp_amp 30 "$PY" benchmarks/bench_wgan_gp.py --device cuda --amp --sizes 64 256 \
  --max-channels 0 --batches 5 --repeats 2 --out "$OUT_DIR/bench_wgan_gp_amp.json"
step bench_wgan_gp_compile 35 "$PY" benchmarks/bench_wgan_gp.py --device cuda --compile \
  --sizes 64 256 --max-channels 0 --batches 5 --repeats 2 \
  --out "$OUT_DIR/bench_wgan_gp_compile.json"

# 4. FID on the GPU (pytorch-fid's Inception, local weights only)
if [ -n "${FID_WEIGHTS:-}" ] && [ -f "${FID_WEIGHTS}" ]; then
  step fid 20 "$PY" - "$WORK/results" "$FID_WEIGHTS" "$OUT_DIR/fid.json" <<'PYEOF'
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
log "done; results under $OUT_DIR"
