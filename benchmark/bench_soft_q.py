"""soft_q.py on its three kinds of task, 3 seeds, beside ppo.py at the same budget, as one command.

    python benchmark/bench_soft_q.py                        # every row not yet in benchmark/results
    python benchmark/bench_soft_q.py --envs CartPole-v1     # some envs only
    python benchmark/bench_soft_q.py --table-only           # reprint docs/soft_q.md's table from the results files

Each (script, env) is one benchmark/run.py call (results in benchmark/results/<script>/<script>_<env>_<steps>.json); a row
whose results file exists is skipped, so an interrupted benchmark resumes. soft_q.py runs with its defaults; ppo.py with the
settings docs/ppo.md gives for each kind of task (its CartPole settings for the discrete envs, its defaults for the
continuous ones), for the same number of steps. The paper publishes no table for these tasks.
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# env: env steps
BUDGETS = {"CartPole-v1": 100_000, "Acrobot-v1": 100_000, "Pendulum-v1": 30_000, "Hopper-v4": 300_000}
PPO_DISCRETE = ["--num-envs", "4", "--num-steps", "128", "--num-minibatches", "4", "--update-epochs", "4",
                "--ent-coef", "0.01", "--learning-rate", "2.5e-4"]  # ppo.py's CartPole-v1 preset
SCRIPTS = ("soft_q.py", "ppo.py")


def results_path(script: str, env: str) -> str:
    return os.path.join(ROOT, "benchmark", "results", script[:-3],
                        f"{script[:-3]}_{env.split('-')[0].lower()}_{BUDGETS[env] // 1000}k.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=list(BUDGETS), choices=list(BUDGETS))
    parser.add_argument("--scripts", nargs="+", default=list(SCRIPTS), choices=SCRIPTS)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--table-only", action="store_true")
    opts = parser.parse_args()
    if not opts.table_only:
        for env in opts.envs:
            for script in opts.scripts:
                if os.path.exists(results_path(script, env)):
                    continue
                extra = PPO_DISCRETE if script == "ppo.py" and env in ("CartPole-v1", "Acrobot-v1") else []
                name = os.path.basename(results_path(script, env))[:-5]
                subprocess.run([sys.executable, "benchmark/run.py", "--name", name, "--script", script, "--env", env,
                                "--seeds", "1", "2", "3", "--jobs", str(opts.jobs), "--",
                                "--total-timesteps", str(BUDGETS[env]), "--eval-episodes", "20", *extra],
                               cwd=ROOT, check=True)

    print("| env | env steps | soft_q.py: eval return (20 episodes), 3 seeds | per seed | training return (last 100) | "
          "ppo.py, same budget: eval return | per seed | soft_q.py wall time per run |")
    print("| --- | ---: | ---: | --- | ---: | ---: | --- | ---: |")
    for env, steps in BUDGETS.items():
        cells = []
        for script in SCRIPTS:
            path = results_path(script, env)
            if not os.path.exists(path):
                cells.append(["not run", "", ""] if script == "soft_q.py" else ["not run", ""])
                continue
            r = json.load(open(path))
            row = [f"{r['eval_return']['mean']:,.0f} ± {r['eval_return']['std']:,.0f}",
                   " / ".join(f"{s['eval_return_mean']:,.0f}" for s in r["runs"])]
            if script == "soft_q.py":
                row.append(f"{r['train_return_last100']['mean']:,.0f} ± {r['train_return_last100']['std']:,.0f}")
                wall = f"{r['run_wall_time_s']['mean'] / 60:.1f} min"
            cells.append(row)
        wall = wall if os.path.exists(results_path("soft_q.py", env)) else ""
        print(f"| {env} | {steps:,} | " + " | ".join(" | ".join(c) for c in cells) + f" | {wall} |")


if __name__ == "__main__":
    main()
