#!/bin/bash
# Swimmer-v4 sweep behind ppo.py's Swimmer preset: the zoo's settings (γ = 0.9999) leave two seeds of three in the
# slow-gait local optimum (~130-150 against ~290). Each row is 3 seeds × 1M steps of the preset plus the flags shown,
# through benchmark/run.py, so a row resumes where it stopped. Two workers, one core each:
#     nohup bash benchmark/bench_ppo_swimmer_sweep.sh A > benchmark/runs/ppo_swimmer_sweep_A.log 2>&1 &
#     nohup bash benchmark/bench_ppo_swimmer_sweep.sh B > benchmark/runs/ppo_swimmer_sweep_B.log 2>&1 &
# Table: python benchmark/bench_ppo_presets_table.py --swimmer-sweep
set -e
cd "$(dirname "$0")/.."
row() {  # row NAME FLAGS...
  name="ppo_swimmer_sweep_$1"; shift
  python benchmark/run.py --name "$name" --script ppo.py --env Swimmer-v4 --seeds 1 2 3 --jobs 1 -- --eval-episodes 10 "$@"
}
case "$1" in
  A) row gamma0999 --gamma 0.999
     row lambda098 --gae-lambda 0.98 ;;
  B) row gamma0999_lambda098 --gamma 0.999 --gae-lambda 0.98
     row gamma0995 --gamma 0.995 ;;
  *) echo "usage: bash benchmark/bench_ppo_swimmer_sweep.sh A|B" >&2; exit 2 ;;
esac
