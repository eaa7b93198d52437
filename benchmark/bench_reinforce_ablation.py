"""The lecture's variance-reduction ablation of REINFORCE on CartPole-v1, as one command.

    python benchmark/bench_reinforce_ablation.py              # ~10 min on 2 cores (2 runs at a time)
    python benchmark/bench_reinforce_ablation.py --table-only # reprint docs/reinforce.md's table from the results files

For each variant, 5 seeds of reinforce.py with everything at its default except the switches named, until the
last 10 training episodes average ≥ 475 or 300k steps (benchmark/run.py, results in
benchmark/results/reinforce/reinforce_cartpole_<variant>.json); then benchmark/bench_reinforce_variance.py measures each
estimator's gradient variance on the same policies and trajectories (benchmark/results/reinforce/reinforce_variance.json).
The table joins the two.
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUDGET = ["--total-timesteps", "300000", "--target-return", "475"]
# (results name, switches, table label, estimator name in reinforce_variance.json)
VARIANTS = [
    ("total", ["--returns", "total", "--baseline", "none", "--no-norm-adv"], "total return r(τ)", "total"),
    ("rtg", ["--baseline", "none", "--no-norm-adv"], "reward-to-go Q̂_t", "reward_to_go"),
    ("rtg_average", ["--baseline", "average", "--no-norm-adv"], "Q̂_t − average baseline", "rtg + average"),
    ("rtg_value", ["--no-norm-adv"], "Q̂_t − learned V(s_t)", "rtg + value"),
    ("rtg_value_norm", [], "Q̂_t − V(s_t), normalised (default)", "rtg + value + norm"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table-only", action="store_true")
    parser.add_argument("--jobs", type=int, default=2)
    opts = parser.parse_args()
    if not opts.table_only:
        for name, switches, _, _ in VARIANTS:
            subprocess.run([sys.executable, "benchmark/run.py", "--name", f"reinforce_cartpole_{name}",
                            "--script", "reinforce.py", "--env", "CartPole-v1", "--seeds", "1", "2", "3", "4", "5",
                            "--jobs", str(opts.jobs), "--", *BUDGET, *switches], cwd=ROOT, check=True)
        subprocess.run([sys.executable, "benchmark/bench_reinforce_variance.py"], cwd=ROOT, check=True)

    variance = json.load(open(os.path.join(ROOT, "benchmark", "results", "reinforce", "reinforce_variance.json")))
    stages = variance["stages"]
    head = " | ".join(f"rel. variance at {s['training_steps']:,} steps (return {s['mean_episode_return']:.0f})" for s in stages)
    print(f"| ψ (estimator) | switches | steps to 475, mean ± std (5 seeds) | reached | final eval | {head} |")
    print("| --- | --- | --- | --- | --- |" + " --- |" * len(stages))
    for name, switches, label, estimator in VARIANTS:
        r = json.load(open(os.path.join(ROOT, "benchmark", "results", "reinforce", f"reinforce_cartpole_{name}.json")))
        t = r["steps_to_target"]
        steps = f"{t['mean']:,.0f} ± {t['std']:,.0f}" if t["reached"] == len(t["per_seed"]) else \
            "not all: " + ", ".join("> 300k" if s is None else f"{s:,}" for s in t["per_seed"])
        rel = " | ".join(f"{s['estimators'][estimator]['relative_variance']:.3g}" for s in stages)
        print(f"| {label} | `{' '.join(switches) or '(defaults)'}` | {steps} | {t['reached']}/{len(t['per_seed'])} | "
              f"{r['eval_return']['mean']:.0f} ± {r['eval_return']['std']:.0f} | {rel} |")


if __name__ == "__main__":
    main()
