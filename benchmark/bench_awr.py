"""AWR against its ablation RWR on MuJoCo at 1M environment steps, 5 seeds on Hopper and 3 elsewhere, as one command.

    python benchmark/bench_awr.py                       # every env and weighting not yet in benchmark/results
    python benchmark/bench_awr.py --envs Hopper-v4      # one env (both weightings)
    python benchmark/bench_awr.py --table-only          # reprint docs/awr.md's table from the results files

Each (env, weighting) is one benchmark/run.py call: awr.py with its defaults (the paper's settings) except the
policy step size, which is the released code's per-env value (xbpeng/awr, awr_configs.py), and --weighting. Results
go to benchmark/results/awr/awr_<env>_<weighting>_1m.json; a pair whose results file exists is skipped, and a finished
seed of an unfinished pair is reused, so an interrupted benchmark resumes where it stopped. One run takes ~12–20 min of
one core on this machine (2 cores: --jobs 2). Results of the earlier defaults are kept in
benchmark/results/awr/earlier_defaults; the table shows a row from there, marked, until it is re-run.
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 1_000_000
# seeds per env: Hopper's runs spread the most (the earlier defaults: 1,341 to 3,151), so its row takes 5
SEEDS = {"Hopper-v4": 5, "Walker2d-v4": 3, "HalfCheetah-v4": 3}
# policy step size per env, from the released code's awr_configs.py (the paper's text gives one value, 5e-5)
LEARNING_RATES = {"Hopper-v4": "1e-4", "Walker2d-v4": "2.5e-5", "HalfCheetah-v4": "5e-5"}
WEIGHTINGS = ("advantage", "reward")
# Results of the earlier defaults (episodes continuing across iterations, the statistics updated at every step with
# a σ floor of 1e-4 and clipped to ±10), kept for comparison; a row not yet re-run is shown from there.
EARLIER = "earlier_defaults"
# For scale: the paper's Table 1 (final returns, v2 envs, after more than 1M steps) and the released logs at 1M.
PAPER = {"Hopper-v4": (3405, 605), "Walker2d-v4": (5813, 406), "HalfCheetah-v4": (9136, 1400)}


def results_path(env: str, weighting: str, folder: str = "") -> str:
    return os.path.join(ROOT, "benchmark", "results", "awr", folder,
                        f"awr_{env.split('-')[0].lower()}_{weighting}_1m.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=list(LEARNING_RATES), choices=list(LEARNING_RATES))
    parser.add_argument("--weightings", nargs="+", default=list(WEIGHTINGS), choices=WEIGHTINGS)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--table-only", action="store_true")
    opts = parser.parse_args()
    if not opts.table_only:
        for env in opts.envs:
            for weighting in opts.weightings:
                if os.path.exists(results_path(env, weighting)):
                    continue
                name = os.path.basename(results_path(env, weighting))[:-5]
                subprocess.run([sys.executable, "benchmark/run.py", "--name", name, "--script", "awr.py", "--env", env,
                                "--seeds", *[str(i) for i in range(1, SEEDS[env] + 1)], "--jobs", str(opts.jobs), "--",
                                "--total-timesteps", str(STEPS), "--weighting", weighting,
                                "--learning-rate", LEARNING_RATES[env], "--eval-episodes", "20",
                                "--exp-name", f"awr_{weighting}"], cwd=ROOT, check=True)

    print("| env | weighting | defaults | env steps | eval return (20 episodes), mean ± std over seeds | per seed | "
          "training return (last 100 episodes) | paper's final (AWR / RWR) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for env in LEARNING_RATES:
        for weighting in WEIGHTINGS:
            label = f"{weighting} ({'AWR' if weighting == 'advantage' else 'RWR'})"
            paper = f"{PAPER[env][WEIGHTINGS.index(weighting)]:,}"
            # a row not yet run with the current defaults shows its run with the earlier ones, marked as such
            for path, defaults in ((results_path(env, weighting), "current"),
                                   (results_path(env, weighting, EARLIER), "earlier")):
                if os.path.exists(path):
                    break
            else:
                print(f"| {env} | {label} | | not run yet | | | | {paper} |")
                continue
            r = json.load(open(path))
            bold = "**" if weighting == "advantage" and defaults == "current" else ""
            print(f"| {env} | {label} | {defaults} | {r['runs'][0]['env_steps']:,} | "
                  f"{bold}{r['eval_return']['mean']:,.0f} ± {r['eval_return']['std']:,.0f}{bold} | "
                  + ", ".join(f"{s['eval_return_mean']:,.0f}" for s in r["runs"])
                  + f" | {r['train_return_last100']['mean']:,.0f} ± {r['train_return_last100']['std']:,.0f} | {paper} |")


if __name__ == "__main__":
    main()
