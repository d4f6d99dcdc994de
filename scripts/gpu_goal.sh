# The open test of docs/affinities.md on one GPU: the affinity recipe with wider networks trained longer, held-out
# fold 4, several seeds side by side (each run is small and bound by its per-step overhead, so they share the GPU
# well), then each run's held-out cells slice by slice. On the CPU the fold-4 score is set by whether two merges of
# large cells (slices 24 and 29) are made, which flips from seed to seed: judge by those slices over the seeds.
# Stage `goal` of scripts/gpu_checks.sh runs it with that script's PY, RUNS and TRAINER. A dry run here:
#   PY=python RUNS=/tmp/goal TRAINER=cpu GOAL_SEEDS="1 2" GOAL_STEPS=3 bash scripts/gpu_goal.sh
set -u
PY=${PY:-python3}
RUNS=${RUNS:-/tmp/gpuruns}
TRAINER=${TRAINER:-gpu}
SEEDS=${GOAL_SEEDS:-12345 2 3 4 5}
CHANNELS=${GOAL_CHANNELS:-32}   # first level's channels: four times the recipe's
STEPS=${GOAL_STEPS:-6000}       # four times the recipe's
TIME=${GOAL_TIME:-00:00:05:00}  # each run's training clock, so that the stage ends inside one call
WORKERS=${GOAL_WORKERS:-2}      # loader processes a run: the runs share the machine's cores
mkdir -p "$RUNS"
# the stage's timeout stops the runs too, not only this shell (they run in the background)
trap 'kill $(jobs -p) 2>/dev/null' TERM INT
for seed in $SEEDS; do
  $PY -m src.train trainer="$TRAINER" logger=csv experiment=isbi2012_cpu_affinities seed="$seed" data.fold=4 \
    model.base_channels="$CHANNELS" trainer.max_steps="$STEPS" trainer.max_time="$TIME" data.num_workers="$WORKERS" \
    hydra.run.dir="$RUNS/goal_s$seed" >"$RUNS/goal_s$seed.log" 2>&1 &
done
wait
$PY - "$RUNS" $SEEDS <<'E'
import json
import sys
from pathlib import Path

runs = Path(sys.argv[1])
for seed in sys.argv[2:]:
    path = runs / f"goal_s{seed}" / "metrics.json"
    if not path.exists():
        print(f"goal_s{seed}: no metrics.json; its log: {runs / f'goal_s{seed}.log'}")
        continue
    run = json.loads(path.read_text())
    cells = run["held_out"]["postprocess"]
    slices = " ".join(f"{s['slice']}: {s['vrand']:.3f}" for s in cells["per_slice"])
    scores = f"V_rand {cells['vrand']:.4f}, V_info {cells['vinfo']:.4f}"
    print(f"goal_s{seed}, {run['global_step']} steps: {scores}; {slices}")
E
