#!/usr/bin/env bash
# The Pokémon model's GPU run, prepared to fit one call of a lent GPU (a 10-minute command; docs/TRAINING.md):
#
#   here, once:   mkdir -p runs/gpu_cache && cp ~/.cache/diffusion_core/pokemon.npz runs/gpu_cache/
#   on the GPU:   bash tools/gpu_pokemon.sh            (device tool: carry ["runs/gpu_cache"])
#
# For each config (two by default, trained side by side on the one GPU, same seed and data order, so that they
# are an A/B): time the training command's own loop (benchmarks.train_throughput --dataset), size --steps so
# that training takes TRAIN_SECONDS, train from scratch, then, while the time allows, evaluate the result.
# Each run trains in a folder of its own (ARMS/NAME) into checkpoints/pokemon, so the command its card records is
# the shipped checkpoint's. What comes back, under $OUT (the device returns at most 8 files of at most 16 MiB):
# each finished checkpoint as NAME.tar (folder pokemon/: weights, config, card; no train_state), its sample grids
# as NAME_samples.tar, and logs.tar (calibration, training, noise-found probe and evaluation logs and JSON); the
# probe and the evaluation are printed too. The model card of each records its exact command.
set -euo pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-runs/gpu_out}
export DIFFUSION_CORE_CACHE=$(realpath -s "${DIFFUSION_CORE_CACHE:-runs/gpu_cache}")
PY=${PYTHON:-python3}
[[ $PY == */* ]] && PY=$(realpath -s "$PY")  # the runs start in their own folders
TRAIN_SECONDS=${TRAIN_SECONDS:-330}     # training time of each run; the runs share the GPU
DEADLINE=${DEADLINE:-560}               # seconds after the start by which everything has finished
CALIB_SECONDS=${CALIB_SECONDS:-20}
THREADS=${THREADS:-4}
MIN_STEPS=${MIN_STEPS:-600}             # no fewer (the preset's warm-up is 500)
read -r -a RUNS <<< "${RUNS:-pokemon=configs/pokemon64_gpu.json pokemon_dropout=configs/pokemon64_gpu_dropout.json}"
ARMS=${ARMS:-runs/gpu_arms}             # run NAME trains in ARMS/NAME: the code, and its own checkpoints/pokemon
LOGS=runs/gpu_logs
rm -rf "$LOGS" "$ARMS"; mkdir -p "$OUT" "$LOGS"
test -f "$DIFFUSION_CORE_CACHE/pokemon.npz" || {
    echo "no $DIFFUSION_CORE_CACHE/pokemon.npz: copy ~/.cache/diffusion_core/pokemon.npz there first" >&2; exit 2; }
{ nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
  $PY -c 'import torch; print(torch.__version__)'; } | tee "$LOGS/machine.txt"

# 1. calibrate all runs at once (they train at once)
for run in "${RUNS[@]}"; do
    name=${run%%=*} config=${run#*=}
    $PY -m benchmarks.train_throughput --dataset pokemon --config "$config" --seconds "$CALIB_SECONDS" \
        --threads "$THREADS" > "$LOGS/calib_$name.json" 2> "$LOGS/calib_$name.log" &
done
wait
for run in "${RUNS[@]}"; do
    name=${run%%=*}
    [ -s "$LOGS/calib_$name.json" ] || {
        echo "calibration of $name failed:" >&2; tail -20 "$LOGS/calib_$name.log" >&2; exit 1; }
done

# 2. train from scratch, --steps sized from the calibration (rounded down to a hundred)
for run in "${RUNS[@]}"; do
    name=${run%%=*} config=${run#*=}
    steps=$($PY -c "import json, sys; d = json.load(open(sys.argv[1]))['train_loop']
print(max($MIN_STEPS, int(d['steps_per_s'] * $TRAIN_SECONDS) // 100 * 100))" "$LOGS/calib_$name.json")
    echo "$name: $steps steps of $config"
    # each run in a folder of its own, so that every card records the shipped name, --out checkpoints/pokemon
    mkdir -p "$ARMS/$name/checkpoints"
    ln -s "$PWD/diffusion_core" "$PWD/configs" "$PWD/benchmarks" "$ARMS/$name/"
    (cd "$ARMS/$name" && $PY -m diffusion_core.train --dataset pokemon --config "$config" --steps "$steps" \
        --out checkpoints/pokemon --threads "$THREADS") > "$LOGS/train_$name.log" 2>&1 &
done
wait

# 3. pack each finished folder, then evaluate while the deadline allows (the card's figures are measured later)
finished=()
for run in "${RUNS[@]}"; do
    name=${run%%=*}
    if grep -q "^wrote checkpoints/pokemon" "$LOGS/train_$name.log"; then
        tar -cf "$OUT/$name.tar" --exclude=train_state --exclude=samples -C "$ARMS/$name/checkpoints" pokemon
        tar -cf "$OUT/${name}_samples.tar" -C "$ARMS/$name/checkpoints" pokemon/samples  # the weights' tar < 16 MiB
        finished+=("$name")
    else
        echo "training $name failed:" >&2; tail -c 2000 "$LOGS/train_$name.log" >&2
    fi
done
# how much of the noise each finds on the figures, beside a bilateral filter's (seconds; docs/TRAINING.md)
for name in "${finished[@]}"; do
    (cd "$ARMS/$name" && $PY -m benchmarks.pokemon_coherence --checkpoint checkpoints/pokemon --x0-only \
        --threads "$THREADS") > "$LOGS/noise_found_$name.json" 2> "$LOGS/noise_found_$name.log" || true
    echo "$name noise found on the figures (model, filter):"
    $PY -c "import json, sys; d = json.load(open(sys.argv[1]))['x0_pred_error_per_255']
for t, v in d.items(): print(' ', t, round(v['noise_found_figure'], 3), round(v['filter_noise_found_figure'], 3))" \
        "$LOGS/noise_found_$name.json" || true
done
left=$((DEADLINE - SECONDS))
echo "training done at ${SECONDS}s; ${left}s left for evaluation"
if [ "$left" -gt 30 ]; then
    for name in "${finished[@]}"; do
        (cd "$ARMS/$name" && timeout "$left" $PY -m diffusion_core.evaluate --checkpoint checkpoints/pokemon \
            --num "${EVAL_NUM:-500}") > "$LOGS/eval_$name.json" 2> "$LOGS/eval_$name.log" &
    done
    wait
    for name in "${finished[@]}"; do echo "$name:"; cat "$LOGS/eval_$name.json"; done
fi
tar -cf "$OUT/logs.tar" -C "$LOGS" .
echo "finished at ${SECONDS}s"
