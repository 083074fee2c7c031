#!/bin/bash
# A Slurm job array over `msr sweep --index`: one run (arm x seed) per array task, every
# task writing into one result store on a shared file system; `msr report` afterwards.
#
#   N=$(msr sweep experiments/p1_forgetting.py --scale full --count)  # how many runs
#   sbatch --array=0-$((N - 1))%16 scripts/slurm_sweep.sh experiments/p1_forgetting.py --scale full
#   msr report runs/sweep                                          # once every task is done
#
# Results are stored atomically under a hash of each run's full config: a re-submitted
# array skips the runs that finished, and an index whose run an identical arm already
# stored is skipped (two identical arms running at the same time both run, harmlessly:
# one result is kept). RUN_DIR (default runs/sweep) must be shared.
#SBATCH --job-name=msr-sweep
#SBATCH --cpus-per-task=2
#SBATCH --mem=16G
#SBATCH --time=02:00:00
#SBATCH --output=slurm-%A_%a.out
set -euo pipefail
: "${SLURM_ARRAY_TASK_ID:?run this with sbatch --array=0-<N-1>}"
exec msr sweep "$@" --index "$SLURM_ARRAY_TASK_ID" --run-dir "${RUN_DIR:-runs/sweep}"
