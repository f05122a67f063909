#!/usr/bin/env bash
# The GPU checks of the benchmarks, in one call: DDN cost vs the floor and peers, fast precision (bf16 DDN
# verified in fp32) vs foolbox, native C&W / DeepFool vs foolbox, training throughput
# (fp32 vs bf16 + channels_last), adversarial-training epoch cost. Writes logs to $OUT (or ./gpu-logs).
# Peers (foolbox, adv_lib) travel as wheels in .whl/ when the GPU machine cannot install them.
set -u
OUT=${OUT:-gpu-logs}; mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
timeout 150 python3 benchmarks/bench_ddn.py --device cuda --repeats 2 2>&1 | tee "$OUT/bench_ddn.txt"
timeout 60 python3 benchmarks/bench_training.py --device cuda --quick 2>&1 | tee "$OUT/bench_training.txt"
timeout 60 python3 benchmarks/bench_adv_training.py --device cuda 2>&1 | tee "$OUT/bench_adv_training.txt"
timeout 240 python3 benchmarks/bench_precision.py --device cuda 2>&1 | tee "$OUT/bench_precision.txt"
timeout 120 python3 benchmarks/bench_cw_deepfool.py --device cuda --quick 2>&1 | tee "$OUT/bench_cw_deepfool.txt"
