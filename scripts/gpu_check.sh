#!/usr/bin/env bash
# The GPU checks, in one run on a CUDA machine (the `device` tool's: Python 3.12 with torch, numpy,
# onnxruntime, opencv, numba; no network): the GPU-marked tests and `benchmarks.gpu`, whose
# section is merged into a copy of docs/benchmarks.md. Wheels the machine lacks travel in .whl/
# (diffrp-nvdiffrast: nvdiffrast, JIT-compiled with nvcc here). Results go to $OUT. The stage
# timeouts sum to 570 s, under the `device` tool's 600 s a call (measured on an H200: the GPU
# tests took 16-41 s, the benchmark section's avatar build 49-68 s of its time).
set -uo pipefail
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
fi
[ -e harp_track/models ] || ln -s ../models harp_track/models  # as the installed package maps it
export PYTHONPATH="$PWD:/tmp/site" PYTHONUNBUFFERED=1 TORCH_CUDA_ARCH_LIST=9.0
nvidia-smi -L
python3 -c "import numpy, onnxruntime, torch; print('torch', torch.__version__, 'numpy', numpy.__version__, \
'onnxruntime', onnxruntime.__version__, onnxruntime.get_available_providers())"
if [ -d /tmp/site/nvdiffrast ]; then  # compile it once, up front; without it the rest runs torch-only
    SECONDS=0
    timeout 150 python3 -c "from harp_track.render import select_backend; select_backend('nvdiffrast', 'cuda')" \
        >"$OUT/nvdiffrast_build.log" 2>&1 || { tail -20 "$OUT/nvdiffrast_build.log"; rm -rf /tmp/site/nvdiffrast; }
    echo "nvdiffrast build: ${SECONDS} s"
fi
timeout 120 python3 -m pytest -q -p no:cacheprovider -m gpu tests/render tests/fit tests/tracking tests/avatar_builder 2>&1 | tee "$OUT/pytest.log"
cp docs/benchmarks.md "$OUT/benchmarks.md"
timeout 300 python3 -m benchmarks --only gpu --out "$OUT/benchmarks.md" 2>&1 | tee "$OUT/benchmark.log"
