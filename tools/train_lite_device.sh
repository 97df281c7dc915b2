#!/usr/bin/env bash
# Train InstMatt-Lite on a lent GPU machine (run by the device tool from the repository root).
# Needs, carried beside the repository: train_pack/ (tools/build_training_pack.py) and
# train_init/lite_init_fp16.pth (RVM's weights in InstMatt-Lite layout: tools/make_lite_init.py).
# Writes to $OUT: log.txt, log.csv, lite_weights_fp16.pth, lite_last_fp32.pth (no optimizer state),
# bench_instmatt.txt (speed of the official-format network on this GPU).
# Settings by environment: MINUTES, BATCH, WORKERS, LR, WARMUP, VAL_IMAGES, VAL_EVERY, SAVE_EVERY, DEVICE,
# INIT (weights to start from), BENCH=0 (skip the InstMatt speed table), PACK (the training pack's
# folder, default train_pack; VAL_IMAGES=0 when it holds no *_val folders), DET_PACK and DET_P (detector-guided
# composites: --det-pack, --det-p), SNAPSHOTS=N (keep the fp16 weights of every save and bring back the last N
# instead of lite_last_fp32.pth: the device returns at most 8 files).
set -o pipefail
MINUTES=${MINUTES:-6.5}
OUT=${OUT:-out/device}
RUN="$OUT/run"
mkdir -p "$RUN"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
nproc
python3 -c "import torch, cv2, numpy, scipy; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'cv2', cv2.__version__, 'numpy', numpy.__version__)"
PACK=${PACK:-train_pack}
extra=()
if [ "${VAL_IMAGES:-16}" != 0 ]; then
  extra+=(--val-cutouts "$PACK/cutouts_val" --val-backgrounds "$PACK/backgrounds_val" --val-images "${VAL_IMAGES:-16}")
else
  extra+=(--val-images 0 --val-every 0)
fi
[ -n "${DET_PACK:-}" ] && extra+=(--det-pack "$DET_PACK" --det-p "${DET_P:-0.6}")
[ "${SNAPSHOTS:-0}" != 0 ] && extra+=(--keep-snapshots)
python3 -m instmatt_app.cli.main train --model lite "$PACK/cutouts_train" "$PACK/backgrounds_train" \
  --init "${INIT:-train_init/lite_init_fp16.pth}" -o "$RUN" --device "${DEVICE:-cuda}" --batch "${BATCH:-16}" --crop 512 \
  --lr "${LR:-2e-4}" --warmup "${WARMUP:-100}" --iterations "${ITERATIONS:-8000}" --minutes "$MINUTES" \
  --workers "${WORKERS:-15}" --long-side 640,960 --log-every 50 --val-every "${VAL_EVERY:-1000}" \
  --save-every "${SAVE_EVERY:-500}" "${extra[@]}" 2>&1 \
  | grep --line-buffered -v -e '^  ' -e 'Exception ignored' -e '^Traceback' -e 'killed by signal' \
  | tee "$OUT/log.txt"
rc=$?
cp "$RUN/log.csv" "$RUN/lite_weights_fp16.pth" "$OUT/" 2>/dev/null
if [ "${SNAPSHOTS:-0}" != 0 ]; then
  ls "$RUN"/lite_weights_fp16_step*.pth 2>/dev/null | tail -n "$SNAPSHOTS" | xargs -r cp -t "$OUT/"
else
  python3 - "$OUT" <<'PY'
import sys, torch
out = sys.argv[1]
obj = torch.load(f"{out}/run/lite_last.pth", map_location="cpu", weights_only=True)
obj.pop("optimizer", None)
torch.save(obj, f"{out}/lite_last_fp32.pth")
print("saved", f"{out}/lite_last_fp32.pth", "step", obj["meta"]["step"])
PY
fi
rm -rf "$RUN"
if [ "${DEVICE:-cuda}" = cuda ] && [ "${BENCH:-1}" = 1 ]; then
  timeout 60 python3 benchmarks/bench_instmatt.py --device cuda --size 1280x720 --people 4 2>&1 | tail -20 \
    | tee "$OUT/bench_instmatt.txt"
fi
exit $rc
