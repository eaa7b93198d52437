"""GCL on Hopper-v4 from the shipped expert's 25 demonstrations: fraction of the expert's return at 500k and 1M
environment steps, 3 seeds, beside gail.py's row on the same expert, as one command.

    python benchmark/bench_gcl.py               # run the seeds not yet in benchmark/results (resumes seed by seed)
    python benchmark/bench_gcl.py --table-only  # reprint docs/gcl.md's table from the results files

One benchmark/run.py call: gcl.py with its defaults, 1M steps, an evaluation at 500k (--eval-at-steps) and a final one
at 1M, 20 episodes each. Results go to benchmark/results/gcl/gcl_hopper_25demos_1m.json. The fraction is the deterministic
policy's true return over the mean return of the expert's 25 shipped episodes (experts/README.md). gail.py's column
is read from its own benchmark (benchmark/bench_gail.py, results/gail/gail_hopper_25demos_2m.json, the evaluation at 1M).
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS, MIDWAY = 1_000_000, 500_000
ITERATION = 2_048  # env steps per iteration with gcl.py's defaults (1 env × 2,048 steps)
NAME = "gcl_hopper_25demos_1m"
GAIL = os.path.join(ROOT, "benchmark", "results", "gail", "gail_hopper_25demos_2m.json")


def fraction_at(run: dict, steps: int):
    """The expert fraction of one seed's summary at `steps` (the end of the iteration that passes it, as in
    benchmark/bench_gail.py): the final evaluation or the one in eval_history."""
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
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--table-only", action="store_true")
    opts = parser.parse_args()
    path = os.path.join(ROOT, "benchmark", "results", "gcl", f"{NAME}.json")
    if not opts.table_only and not os.path.exists(path):
        subprocess.run([sys.executable, "benchmark/run.py", "--name", NAME, "--script", "gcl.py", "--env", "Hopper-v4",
                        "--seeds", "1", "2", "3", "--jobs", str(opts.jobs), "--",
                        "--total-timesteps", str(STEPS), "--eval-at-steps", str(MIDWAY), "--num-demos", "25",
                        "--eval-episodes", "20", "--exp-name", "gcl_25demos"], cwd=ROOT, check=True)

    print("| script | env | demos | expert return | fraction of expert at 500k | at 1M (mean ± std, 3 seeds) | "
          "per seed at 1M | target |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    if os.path.exists(path):
        runs = json.load(open(path))["runs"]
        at_end = [fraction_at(r, STEPS) for r in runs]
        print(f"| gcl.py | Hopper-v4 | 25 | {runs[0]['expert_return']:,.0f} | "
              f"{mean_std([fraction_at(r, MIDWAY) for r in runs])} | **{mean_std(at_end)}** | "
              f"{', '.join('n/a' if f is None else f'{f:.2f}' for f in at_end)} | ≥ 0.9 |")
    else:
        print("| gcl.py | Hopper-v4 | 25 | | not run yet | | | ≥ 0.9 |")
    if os.path.exists(GAIL):
        runs = json.load(open(GAIL))["runs"]
        at_1m = [fraction_at(r, STEPS) for r in runs]
        print(f"| gail.py | Hopper-v4 | 25 | {runs[0]['expert_return']:,.0f} | | **{mean_std(at_1m)}** | "
              f"{', '.join('n/a' if f is None else f'{f:.2f}' for f in at_1m)} | |")


if __name__ == "__main__":
    main()
