"""Which of awr.py's departures from the released AWR code mattered on Hopper-v4 (and HalfCheetah-v4) at 1M steps: one row per departure,
each the current defaults with that one choice put back the way awr.py had it before (or, for the actions, the way
the released code has it), as one command.

    python benchmark/bench_awr_ablation.py              # every row, seed 1 of each first, then seed 2, then seed 3
    python benchmark/bench_awr_ablation.py --seeds 1    # seed 1 of every row only
    python benchmark/bench_awr_ablation.py --table-only # reprint docs/awr.md's ablation table from the results files

The defaults row is the main table's Hopper row (benchmark/bench_awr.py, 5 seeds); the earlier row is the main
table's Hopper row as it was before the defaults changed (benchmark/results/awr/earlier_defaults). Each other row is
one benchmark/run.py call per seed count, so its results file (benchmark/results/awr/awr_ablation_<row>.json) always
holds the seeds finished so far, and an interrupted benchmark resumes where it stopped. One run takes ~20 min of one
core on this machine (--jobs 2 on 2 cores).
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 1_000_000
# the released code's policy step size per env, as bench_awr.py
LEARNING_RATES = {"Hopper-v4": "1e-4", "HalfCheetah-v4": "5e-5"}
# row -> (what it changes, awr.py's arguments on top of the defaults[, env: Hopper-v4 unless named])
ROWS = {
    "step_normaliser": ("observation statistics updated at every env step, not once per iteration",
                        ["--obs-norm-update", "step"]),
    "earlier_normaliser": ("the earlier normaliser: every step, σ floor 1e-4, clipped to ±10",
                           ["--obs-norm-update", "step", "--obs-std-floor", "1e-4", "--clip-obs", "10"]),
    "no_whole_episodes": ("exactly 2,048 steps per iteration, episodes continuing across iterations, D trimmed by "
                          "sample", ["--no-whole-episodes"]),
    "unclipped_actions": ("the env gets the unclipped draw (released code)", ["--no-clip-actions"]),
    # HalfCheetah's episodes are always 1,000 steps: whole episodes make every iteration 3,000 steps, not 2,048
    "halfcheetah_no_whole_episodes": ("HalfCheetah-v4: exactly 2,048 steps per iteration (whole episodes: 3,000)",
                                      ["--no-whole-episodes"], "HalfCheetah-v4"),
}
MAIN_HALFCHEETAH = os.path.join(ROOT, "benchmark", "results", "awr", "awr_halfcheetah_advantage_1m.json")
EARLIER_HALFCHEETAH = os.path.join(ROOT, "benchmark", "results", "awr", "earlier_defaults",
                                   "awr_halfcheetah_advantage_1m.json")


def row_env(row: str) -> str:
    return ROWS[row][2] if len(ROWS[row]) > 2 else "Hopper-v4"
MAIN = os.path.join(ROOT, "benchmark", "results", "awr", "awr_hopper_advantage_1m.json")
EARLIER = os.path.join(ROOT, "benchmark", "results", "awr", "earlier_defaults", "awr_hopper_advantage_1m.json")


def results_path(row: str) -> str:
    return os.path.join(ROOT, "benchmark", "results", "awr", f"awr_ablation_{row}.json")


def line(label: str, change: str, path: str) -> str:
    if not os.path.exists(path):
        return f"| {label} | {change} | not run yet | | |"
    r = json.load(open(path))
    per_seed = ", ".join(f"{s['eval_return_mean']:,.0f}" for s in r["runs"])
    return (f"| {label} | {change} | {len(r['runs'])} | {r['eval_return']['mean']:,.0f} ± {r['eval_return']['std']:,.0f} "
            f"| {per_seed} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--seeds", type=int, default=3, help="run seeds 1..this many of each row")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--table-only", action="store_true")
    opts = parser.parse_args()
    if not opts.table_only:
        for n in range(1, opts.seeds + 1):  # breadth first: every row gets seed 1 before any row gets seed 2
            for row in opts.rows:
                if os.path.exists(results_path(row)) and len(json.load(open(results_path(row)))["runs"]) >= n:
                    continue
                env = row_env(row)
                subprocess.run([sys.executable, "benchmark/run.py", "--name", f"awr_ablation_{row}", "--script",
                                "awr.py", "--env", env, "--seeds", *[str(i) for i in range(1, n + 1)],
                                "--jobs", str(opts.jobs), "--", "--total-timesteps", str(STEPS),
                                "--learning-rate", LEARNING_RATES[env], "--eval-episodes", "20",
                                "--exp-name", f"awr_ablation_{row}", *ROWS[row][1]], cwd=ROOT, check=True)

    print("| row | what differs from the defaults | seeds | eval return (20 episodes), mean ± std | per seed |")
    print("| --- | --- | --- | --- | --- |")
    for env, main_path, earlier_path in (("Hopper-v4", MAIN, EARLIER),
                                         ("HalfCheetah-v4", MAIN_HALFCHEETAH, EARLIER_HALFCHEETAH)):
        print(line("defaults", f"{env}: none (released code's normaliser, whole episodes, clipped actions)", main_path))
        for row in ROWS:
            if row_env(row) == env:
                print(line(row, ROWS[row][0], results_path(row)))
        print(line("earlier defaults", f"{env}: earlier_normaliser and no_whole_episodes together (the code before)",
                   earlier_path))


if __name__ == "__main__":
    main()
