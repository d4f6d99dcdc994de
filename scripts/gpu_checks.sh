# The GPU paths in one bounded script, for a session lent a GPU machine that has PyTorch, Lightning, numba and
# scikit-image but not the rest of our packages and no network (docs/gpu.md: what it showed).
# Prepare here, once (.gpu/ is ignored through .git/info/exclude and carried to the machine):
#   mkdir -p .gpu/whl .gpu/site .gpu/data/isbi2012 && echo /.gpu/ >> .git/info/exclude
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .gpu/whl hydra-core==1.3.8 \
#     omegaconf==2.3.1 albumentations==2.0.8 albucore==0.0.24 pydantic==2.12.5 pydantic_core==2.41.5 \
#     typing_inspection==0.4.5 annotated_types==0.8.0 simsimd==6.5.16 stringzilla==5.3.2
#   cp -r .venv/lib/python3.*/site-packages/antlr4 .gpu/site/     # antlr4-python3-runtime 4.9.3 has no wheel
#   cp ../shared/data/isbi2012/*.tif .gpu/data/isbi2012/
# There: bash scripts/gpu_checks.sh gpu SECONDS   (here, as a dry run: bash scripts/gpu_checks.sh cpu SECONDS
# with STEPS=3 MAXTIME=00:00:00:20 PAPERTIME=00:00:00:10 GOAL_STEPS=3). Stages run in order; each is skipped when
# less time is left than it needs, or when ONLY names other stages (ONLY="goal": that one alone), so the script ends
# inside SECONDS; $OUT gets log.txt and runs.tgz.
set -u
TRAINER=${1:-gpu}
BUDGET=${2:-420}
START=$(date +%s)
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
LOG=$OUT/log.txt
RUNS=/tmp/gpuruns
export PYTHONUNBUFFERED=1 WANDB_MODE=offline ISBI2012_MIRROR=$PWD/.gpu/data/isbi2012
if [ "$TRAINER" = gpu ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl >>"$LOG" 2>&1
  export PYTHONPATH=/tmp/site:$PWD/.gpu/site
  PY=python3
  nvidia-smi >>"$LOG" 2>&1
else
  PY=python
fi
left() { echo $((BUDGET - ($(date +%s) - START))); }
stage() {  # stage NAME NEEDS_S CMD...: run CMD with the time left, unless less than NEEDS_S is left
  local name=$1 needs=$2; shift 2
  local l; l=$(left)
  if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]]; then echo "=== $name: skipped, not in ONLY" | tee -a "$LOG"; return; fi
  if [ "$l" -lt "$needs" ]; then echo "=== $name: skipped, ${l}s left" | tee -a "$LOG"; return; fi
  echo "=== $name ($(date -u +%T), ${l}s left): $*" | tee -a "$LOG"
  local t0; t0=$(date +%s)
  timeout "$l" "$@" >>"$LOG" 2>&1
  echo "=== $name: rc=$? in $(($(date +%s) - t0))s" | tee -a "$LOG"
}
$PY - >>"$LOG" 2>&1 <<'E'
import torch, lightning, numba, hydra, albumentations
print("torch", torch.__version__, "lightning", lightning.__version__, "numba", numba.__version__)
print("cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-")
from src.config.hardware import default_precision, default_workers
print("default precision", default_precision(), "workers", default_workers())
E
T="$PY -m src.train trainer=$TRAINER logger=csv paths.log_dir=$RUNS"
STEPS=${STEPS:-4500}
MAXTIME=${MAXTIME:-00:00:01:30}
PAPERTIME=${PAPERTIME:-null}
# 1. NCCL DDP (one process: a single GPU cannot hold two NCCL ranks) with synchronised batch norm, one batch
stage ddp 60 $T trainer=ddp trainer.accelerator=$TRAINER trainer.devices=1 debug=fast experiment=isbi2012_cpu test=false
# 2. the paper's set-up (its 200 epochs, or PAPERTIME), validated once at the end
stage paper 100 $T experiment=isbi2012_paper trainer.max_time=$PAPERTIME trainer.check_val_every_n_epoch=1000
# 3. the affinity recipe and today's recipe, three times their steps or MAXTIME of training, fold 4, seed 12345
stage affinities 120 $T experiment=isbi2012_cpu_affinities trainer.max_steps=$STEPS trainer.max_time=$MAXTIME
stage recipe 120 $T experiment=isbi2012_cpu trainer.max_steps=$STEPS trainer.max_time=$MAXTIME
# 4. the open test of docs/affinities.md: wider affinity networks trained longer, five seeds side by side
stage goal 420 env PY="$PY" RUNS="$RUNS" TRAINER="$TRAINER" bash scripts/gpu_goal.sh
# what each run wrote: its configuration, metrics and step timings
(cd $RUNS 2>/dev/null && tar czf "$OUT/runs.tgz" --exclude='*.ckpt' --exclude='*.tif' --exclude='*.png' --exclude='*.zarr' . )
grep -h "headline:\|stopped:\|it/s\]$\|^goal_s" "$LOG" | tail -20
echo "total $(($(date +%s) - START))s" | tee -a "$LOG"
