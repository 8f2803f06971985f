#!/usr/bin/env bash
# All GPU checks in one run on a lent CUDA machine (see bench/README.md):
#   1. train the shapes demo models with the full config on the GPU (app.demo.train --device cuda);
#   2. Easel's engine against bare diffusers at the released sizes (bench/gpu_engine.py);
#   3. each speed tactic against eager bf16 (bench/gpu_speed.py: attention kernel, First Block Cache,
#      regional compile, fp8 layerwise casting, model offload under a 12 GB cap).
# Writes train.log, bench.log, speed.log and the trained folders (demo.tgz.part-*) to $OUT.
# TRAIN_SECONDS=0 skips the training when only the figures are wanted.
set -uo pipefail
OUT="${OUT:-/tmp/easel-gpu-out}"; mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TRANSFORMERS_VERBOSITY=error
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, diffusers, transformers; print('torch', torch.__version__, 'diffusers', diffusers.__version__, 'transformers', transformers.__version__)"
[ "${TRAIN_SECONDS:-300}" != 0 ] && timeout "${TRAIN_SECONDS:-300}" python3 -m app.demo.train --out /tmp/easel-demo --device cuda 2>&1 | tee "$OUT/train.log"
if [ -d /tmp/easel-demo/easel-demo-shapes-flux ]; then
  tar -C /tmp/easel-demo -czf /tmp/easel-demo.tgz $(cd /tmp/easel-demo && ls -d easel-demo-shapes-*)
  split -b 15M /tmp/easel-demo.tgz "$OUT/demo.tgz.part-"
fi
timeout "${BENCH_SECONDS:-150}" python3 bench/gpu_engine.py --runs 2 --cases flux-schnell sd3.5-large 2>&1 | tee "$OUT/bench.log"
timeout "${SPEED_SECONDS:-300}" python3 bench/gpu_speed.py --runs 2 --cases flux-schnell flux-dev sd3.5-large 2>&1 | tee "$OUT/speed.log"
