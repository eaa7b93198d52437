"""GAIL on MuJoCo from the shipped experts' 4 and 25 demonstrations: fraction of the expert's return at 1M and 2M
environment steps, 3 seeds, as one command.

    python benchmark/bench_gail.py                              # every (env, demos) not yet in benchmark/results
    python benchmark/bench_gail.py --envs Hopper-v4 --demos 25  # some rows only
    python benchmark/bench_gail.py --table-only                 # reprint docs/gail.md's table from the results files

Each (env, demos) is one benchmark/run.py call: gail.py with its defaults, 2M steps, an evaluation at 1M
(--eval-at-steps) and a final one at 2M, 20 episodes each. Results go to benchmark/results/gail/gail_<env>_<m>demos_2m.json;
a row whose results file exists is skipped, and a finished seed of an unfinished row is reused, so an interrupted
benchmark resumes where it stopped. The fraction is the deterministic policy's true return over the mean return of
the expert's 25 shipped episodes (experts/README.md).
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS, MIDWAY = 2_000_000, 1_000_000
ITERATION = 2_048  # env steps per PPO iteration with gail.py's defaults (1 env × 2,048 steps)
ENVS = ("Hopper-v4", "Walker2d-v4", "HalfCheetah-v4")
DEMOS = (4, 25)
# For scale: the `imitation` library's published GAIL, fraction of its experts' return after 10M steps (seals/ envs)
IMITATION = {"Hopper-v4": 1.02, "Walker2d-v4": 0.99, "HalfCheetah-v4": 0.87}


def results_path(env: str, demos: int) -> str:
    return os.path.join(ROOT, "benchmark", "results", "gail", f"gail_{env.split('-')[0].lower()}_{demos}demos_2m.json")


def fraction_at(run: dict, steps: int):
    """The expert fraction of one seed's summary at `steps`: the final evaluation, or the one of eval_history. A run
    moves in whole iterations of 2,048 env steps (gail.py's defaults), so an evaluation "at 1M" is made at the end of the
    iteration that passes 1M (1,001,472) and the final one at the last iteration within 2M (1,998,848)."""
    if abs(run["env_steps"] - steps) < ITERATION:
        return run["expert_fraction"]
    return next((h["expert_fraction"] for h in run.get("eval_history", []) if abs(h["env_steps"] - steps) < ITERATION),
                None)


def mean_std(values: list) -> str:
    if any(v is None for v in values) or not values:
        return "n/a"
    m = sum(values) / len(values)
    return f"{m:.2f} ± {(sum((v - m) ** 2 for v in values) / len(values)) ** 0.5:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=list(ENVS), choices=ENVS)
    parser.add_argument("--demos", nargs="+", type=int, default=list(DEMOS), choices=DEMOS)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--table-only", action="store_true")
    opts = parser.parse_args()
    if not opts.table_only:
        for env in opts.envs:
            for demos in opts.demos:
                if os.path.exists(results_path(env, demos)):
                    continue
                name = os.path.basename(results_path(env, demos))[:-5]
                subprocess.run([sys.executable, "benchmark/run.py", "--name", name, "--script", "gail.py", "--env", env,
                                "--seeds", "1", "2", "3", "--jobs", str(opts.jobs), "--",
                                "--total-timesteps", str(STEPS), "--eval-at-steps", str(MIDWAY), "--num-demos", str(demos),
                                "--eval-episodes", "20", "--exp-name", f"gail_{demos}demos"], cwd=ROOT, check=True)

    print("| env | demos | expert return | fraction of expert at 1M | at 2M (mean ± std, 3 seeds) | per seed at 2M | "
          "`imitation` GAIL at 10M |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for env in ENVS:
        for demos in DEMOS:
            path = results_path(env, demos)
            if not os.path.exists(path):
                print(f"| {env} | {demos} | | not run yet | | | {IMITATION[env]:.2f} |")
                continue
            runs = json.load(open(path))["runs"]
            at_end = [fraction_at(r, STEPS) for r in runs]
            print(f"| {env} | {demos} | {runs[0]['expert_return']:,.0f} | {mean_std([fraction_at(r, MIDWAY) for r in runs])} | "
                  f"**{mean_std(at_end)}** | {', '.join('n/a' if f is None else f'{f:.2f}' for f in at_end)} | "
                  f"{IMITATION[env]:.2f} |")


if __name__ == "__main__":
    main()
