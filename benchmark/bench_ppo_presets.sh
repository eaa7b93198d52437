#!/bin/bash
# ppo.py's preset table: `python ppo.py --env X --seed S` (nothing else but the evaluation count) for seeds 1 2 3,
# 1M steps each (the presets' budget). Two workers, one core each, each taking its own envs one seed at a time;
# every row resumes where it stopped (finished seeds are kept, a seed stopped halfway continues from its checkpoint).
#     nohup bash benchmark/bench_ppo_presets.sh A > benchmark/runs/ppo_presets_A.log 2>&1 &
#     nohup bash benchmark/bench_ppo_presets.sh B > benchmark/runs/ppo_presets_B.log 2>&1 &
set -e
cd "$(dirname "$0")/.."
case "$1" in
  A) envs="HalfCheetah-v4 Swimmer-v4 Reacher-v4" ;;
  B) envs="Walker2d-v4 Ant-v4 InvertedDoublePendulum-v4 Hopper-v4" ;;
  *) echo "usage: bash benchmark/bench_ppo_presets.sh A|B" >&2; exit 2 ;;
esac
for env in $envs; do
  name="ppo_preset_$(echo "${env%-v4}" | tr '[:upper:]' '[:lower:]')_1m"
  python benchmark/run.py --name "$name" --script ppo.py --env "$env" --seeds 1 2 3 --jobs 1 -- --eval-episodes 10
done
