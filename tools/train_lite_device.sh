#!/usr/bin/env bash
# Train InstMatt-Lite on a lent GPU machine (run by the device tool from the repository root).
# Needs, carried beside the repository: train_pack/ (tools/build_training_pack.py) and
# train_init/lite_init_fp16.pth (RVM's weights in InstMatt-Lite layout: tools/make_lite_init.py).
# Writes to $OUT: log.txt, log.csv, lite_weights_fp16.pth, lite_last_fp32.pth (no optimizer state),
# bench_instmatt.txt (speed of the official-format network on this GPU).
# Settings by environment: MINUTES, BATCH, WORKERS, LR, VAL_IMAGES, VAL_EVERY, SAVE_EVERY, DEVICE,
# INIT (weights to start from), BENCH=0 (skip the InstMatt speed table).
set -o pipefail
MINUTES=${MINUTES:-6.5}
OUT=${OUT:-out/device}
RUN="$OUT/run"
mkdir -p "$RUN"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
nproc
python3 -c "import torch, cv2, numpy, scipy; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'cv2', cv2.__version__, 'numpy', numpy.__version__)"
python3 -m instmatt_app.cli.main train --model lite train_pack/cutouts_train train_pack/backgrounds_train \
  --val-cutouts train_pack/cutouts_val --val-backgrounds train_pack/backgrounds_val --val-images "${VAL_IMAGES:-16}" \
  --init "${INIT:-train_init/lite_init_fp16.pth}" -o "$RUN" --device "${DEVICE:-cuda}" --batch "${BATCH:-16}" --crop 512 \
  --lr "${LR:-2e-4}" --warmup 100 --iterations "${ITERATIONS:-8000}" --minutes "$MINUTES" --workers "${WORKERS:-15}" \
  --long-side 640,960 --log-every 50 --val-every "${VAL_EVERY:-1000}" --save-every "${SAVE_EVERY:-500}" 2>&1 \
  | grep --line-buffered -v -e '^  ' -e 'Exception ignored' -e '^Traceback' -e 'killed by signal' \
  | tee "$OUT/log.txt"
rc=$?
cp "$RUN/log.csv" "$RUN/lite_weights_fp16.pth" "$OUT/" 2>/dev/null
python3 - "$OUT" <<'PY'
import sys, torch
out = sys.argv[1]
obj = torch.load(f"{out}/run/lite_last.pth", map_location="cpu", weights_only=True)
obj.pop("optimizer", None)
torch.save(obj, f"{out}/lite_last_fp32.pth")
print("saved", f"{out}/lite_last_fp32.pth", "step", obj["meta"]["step"])
PY
rm -rf "$RUN"
if [ "${DEVICE:-cuda}" = cuda ] && [ "${BENCH:-1}" = 1 ]; then
  timeout 60 python3 benchmarks/bench_instmatt.py --device cuda --size 1280x720 --people 4 2>&1 | tail -20 \
    | tee "$OUT/bench_instmatt.txt"
fi
exit $rc
