#!/bin/bash
# Swimmer-v4 sweep behind ppo.py's Swimmer preset. The zoo's settings (γ = 0.9999, λ = 0.95) leave two seeds of three in
# the slow-gait local optimum (~130-150 against ~290); γ = 0.999 with λ = 0.98 does not, and became the preset. Each
# row is 3 seeds × 1M steps of the preset with its γ and λ replaced by the row's, through benchmark/run.py, so a row
# resumes where it stopped. Two workers, one core each:
#     nohup bash benchmark/bench_ppo_swimmer_sweep.sh A > benchmark/runs/ppo_swimmer_sweep_A.log 2>&1 &
#     nohup bash benchmark/bench_ppo_swimmer_sweep.sh B > benchmark/runs/ppo_swimmer_sweep_B.log 2>&1 &
# Table: python benchmark/bench_ppo_presets_table.py --swimmer-sweep
# (results/ppo/ppo_swimmer_sweep_zoo.json was run as the preset itself while the preset was the zoo's; the row below
# gives the same settings, and the runs are deterministic on one machine.)
set -e
cd "$(dirname "$0")/.."
row() {  # row NAME FLAGS...
  name="ppo_swimmer_sweep_$1"; shift
  python benchmark/run.py --name "$name" --script ppo.py --env Swimmer-v4 --seeds 1 2 3 --jobs 1 -- --eval-episodes 10 "$@"
}
case "$1" in
  A) row zoo --gamma 0.9999 --gae-lambda 0.95
     row gamma0999_lambda098 --gamma 0.999 --gae-lambda 0.98 ;;
  B) row gamma0999_lambda095 --gamma 0.999 --gae-lambda 0.95
     row gamma09999_lambda098 --gamma 0.9999 --gae-lambda 0.98 ;;
  *) echo "usage: bash benchmark/bench_ppo_swimmer_sweep.sh A|B" >&2; exit 2 ;;
esac
