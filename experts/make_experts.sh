#!/usr/bin/env bash
# Trains and exports every shipped expert with ppo.py (run from the repository root; a few hours on 2 cores, the
# 3M-step Walker2d run the longest). Training is deterministic on a CPU: each line gives back the shipped expert.
# Each demos.npz holds 25 episodes of the policy as trained (actions sampled, --expert-demos stochastic); add
# --expert-demos deterministic for policy.pt2's own. experts/README.md says which seeds and lengths were tried.
set -euo pipefail
export PYTHONWARNINGS=ignore
PY=${PYTHON:-python}
$PY ppo.py --env CartPole-v1 --save-expert experts/CartPole-v1
$PY ppo.py --env InvertedPendulum-v4 --total-timesteps 150000 --save-expert experts/InvertedPendulum-v4
$PY ppo.py --env Pendulum-v1 --total-timesteps 300000 --save-expert experts/Pendulum-v1
# the presets' 1M-step runs (benchmark/results/ppo/ppo_preset_*_1m.json), the seed with the best evaluation
$PY ppo.py --env Hopper-v4 --seed 2 --save-expert experts/Hopper-v4
$PY ppo.py --env HalfCheetah-v4 --seed 2 --save-expert experts/HalfCheetah-v4
$PY ppo.py --env Ant-v4 --save-expert experts/Ant-v4
# the Walker2d preset with a decaying step size, 3M steps: better demonstrations than the 1M runs (experts/README.md)
$PY ppo.py --env Walker2d-v4 --seed 2 --total-timesteps 3000000 --anneal-lr --save-expert experts/Walker2d-v4
