"""Offline AWR (MARWIL) on CartPole-v1: one expert demo drowned in random-policy episodes, AWR vs RWR vs BC.

    python benchmark/bench_awr_offline.py               # ~15 min on one core; configurations already run are skipped
    python benchmark/bench_awr_offline.py --table-only  # reprint docs/awr.md's table from the results files

The dataset is the first shipped expert demo (500 steps, return 500) plus R episodes of a uniformly random policy
(~22 steps each, return ~22), R = 100 or 1,000; awr.py --offline with its defaults (20 iterations, no environment
step taken to train) and each weighting: advantage (AWR/MARWIL), reward (RWR), and --beta 1e9, which makes every
weight exp(≈0) = 1: plain behaviour cloning of the whole mixture. 3 seeds (the random episodes differ per seed);
results in benchmark/results/awr/awr_offline_<method>_r<R>.json.
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METHODS = {"awr": ["--weighting", "advantage"], "rwr": ["--weighting", "reward"], "bc": ["--beta", "1e9"]}
RANDOM_EPISODES = (100, 1000)


def results_path(method: str, episodes: int) -> str:
    return os.path.join(ROOT, "benchmark", "results", "awr", f"awr_offline_{method}_r{episodes}.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table-only", action="store_true")
    parser.add_argument("--jobs", type=int, default=1)
    opts = parser.parse_args()
    if not opts.table_only:
        for episodes in RANDOM_EPISODES:
            for method, switches in METHODS.items():
                if os.path.exists(results_path(method, episodes)):
                    continue
                name = os.path.basename(results_path(method, episodes))[:-5]
                subprocess.run([sys.executable, "benchmark/run.py", "--name", name, "--script", "awr.py",
                                "--env", "CartPole-v1", "--seeds", "1", "2", "3", "--jobs", str(opts.jobs), "--",
                                "--offline", "--num-demos", "1", "--random-episodes", str(episodes),
                                "--eval-episodes", "20", "--exp-name", f"offline_{method}", *switches],
                               cwd=ROOT, check=True)

    print("| dataset (CartPole-v1) | samples (seed 1) | AWR (`--weighting advantage`) | RWR (`--weighting reward`) | "
          "BC (`--beta 1e9`) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for episodes in RANDOM_EPISODES:
        cells, samples = [], None
        results = {m: json.load(open(results_path(m, episodes))) for m in METHODS
                   if os.path.exists(results_path(m, episodes))}
        best = max((r["eval_return"]["mean"] for r in results.values()), default=None)
        for method in METHODS:
            if method not in results:
                cells.append("not run")
                continue
            r = results[method]
            samples = r["runs"][0]["dataset_steps"]
            per_seed = " / ".join(f"{s['eval_return_mean']:.0f}" for s in r["runs"])
            bold = "**" if r["eval_return"]["mean"] == best else ""  # the best mean of the row
            cells.append(f"{bold}{r['eval_return']['mean']:.0f} ± {r['eval_return']['std']:.0f}{bold} ({per_seed})")
        print(f"| 1 expert demo + {episodes:,} random episodes | {samples or '':,} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
