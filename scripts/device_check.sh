#!/usr/bin/env bash
# One call on a lent GPU machine (the `device` tool): the GPU tests, the benchmarks on cuda and a
# profile of one translation; logs under $OUT. The machine has its own torch; the packages it
# lacks travel as wheels in .whl/ (carried: see scripts/device_env.sh), the real clips in
# .clips/ (a copy of ../shared/data/real-clips). Usage: bash scripts/device_check.sh [--only NAMES]
set -uo pipefail
OUT=${OUT:-/tmp/musiclord-device}
mkdir -p "$OUT"
. scripts/device_env.sh
export MUSICLORD_REAL_CLIPS=${MUSICLORD_REAL_CLIPS:-$PWD/.clips}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())" \
    | tee -a "$OUT/gpu.txt"
timeout 150 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_audio.py tests/test_translate.py \
    tests/test_train_latent.py tests/test_amortized.py tests/test_encoder_inputs.py 2>&1 | tail -15 | tee "$OUT/pytest_gpu.log"
timeout 60 python3 -m benchmarks.profile_translate --device cuda --seconds 60 --rows 20 >"$OUT/profile_cuda.txt" 2>&1
head -3 "$OUT/profile_cuda.txt"
timeout 330 python3 -m benchmarks.run_all --device cuda --no-write "$@" >"$OUT/bench_cuda.md" 2>"$OUT/bench_cuda.err"
echo "benchmarks rc=$?"
tail -5 "$OUT/bench_cuda.err"
grep -E "RTF|s/step|GFLOP" "$OUT/bench_cuda.err" | tail -20
