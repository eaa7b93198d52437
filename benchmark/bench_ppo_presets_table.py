"""docs/ppo.md's preset table: ppo.py at 1M steps with each env's preset (benchmark/bench_ppo_presets.sh), beside CleanRL's
and rl-baselines3-zoo's published PPO results at 1M steps.

    python benchmark/bench_ppo_presets_table.py          # reads benchmark/results/ppo/ppo_preset_<env>_1m.json
    python benchmark/bench_ppo_presets_table.py --swimmer-sweep   # the Swimmer sweep (bench_ppo_swimmer_sweep.sh)

A row whose results file does not exist yet is printed as not run yet.
"""
import glob
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Published references at 1M steps: CleanRL's ppo_continuous_action.py benchmark (training return) and
# rl-baselines3-zoo's PPO benchmark table (its tuned settings, the same the presets translate).
CLEANRL = {"Hopper-v4": "2,383 ± 272", "Walker2d-v4": "2,288 ± 572", "HalfCheetah-v4": "1,443 ± 46"}
ZOO = {"Hopper-v4": "2,410", "Walker2d-v4": "3,479", "HalfCheetah-v4": "5,819", "Ant-v4": "1,327", "Swimmer-v4": "282"}
ENVS = ["Hopper-v4", "Walker2d-v4", "HalfCheetah-v4", "Ant-v4", "Swimmer-v4", "Reacher-v4", "InvertedDoublePendulum-v4"]


def fmt(d: dict) -> str:
    digits = 1 if abs(d["mean"]) < 100 else 0  # (Reacher's returns are a few units)
    return f"{d['mean']:,.{digits}f} ± {d['std']:,.{digits}f}"


def swimmer_sweep() -> None:
    print("| flags on top of today's Swimmer preset | eval return (mean ± std over seeds) | per seed | training return |")
    print("| --- | --- | --- | --- |")
    rows = sorted(glob.glob(os.path.join(ROOT, "benchmark", "results", "ppo", "ppo_swimmer_sweep_*.json")))
    for path in rows:
        with open(path) as f:
            r = json.load(f)
        # (the zoo row ran as the preset before the preset changed: its file says which flags give it now)
        flags = r.get("flags") or r["harness_command"].split("--eval-episodes 10")[1].strip()
        seeds = ", ".join(f"{run['eval_return_mean']:,.0f}" for run in r["runs"])
        print(f"| `{flags}` | **{fmt(r['eval_return'])}** | {seeds} | {fmt(r['train_return_last100'])} |")


def main() -> None:
    if sys.argv[1:] == ["--swimmer-sweep"]:
        return swimmer_sweep()
    print("| env | preset | eval return (10 episodes, mean ± std over seeds) | per seed | training return (last 100) "
          "| CleanRL at 1M | rl-baselines3-zoo at 1M |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for env in ENVS:
        name = f"ppo_preset_{env[:-3].lower()}_1m"
        path = os.path.join(ROOT, "benchmark", "results", "ppo", f"{name}.json")
        ref = f"| {CLEANRL.get(env, '—')} | {ZOO.get(env, '—')} |"
        if not os.path.exists(path):
            print(f"| {env} | {env[:-3]} | (not run yet) | | {ref}")
            continue
        with open(path) as f:
            r = json.load(f)
        digits = 1 if abs(r["eval_return"]["mean"]) < 100 else 0
        seeds = ", ".join(f"{run['eval_return_mean']:,.{digits}f}" for run in r["runs"])
        print(f"| {env} | {env[:-3]} | **{fmt(r['eval_return'])}** | {seeds} | {fmt(r['train_return_last100'])} {ref}")


if __name__ == "__main__":
    main()
