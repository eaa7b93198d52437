"""Benchmark of bc.py and dagger.py against the shipped experts: docs/bc.md's imitation tables and the plot.

    python benchmark/bench_imitation.py                 # everything (about an hour on 2 cores, 2 runs at a time)
    python benchmark/bench_imitation.py --table-only    # print the tables and redraw the plot from the results file

Part 1, table: Hopper-v4, HalfCheetah-v4, Walker2d-v4; bc.py with the 25 shipped demos and dagger.py with its
defaults; 3 seeds; each final policy evaluated on 50 episodes (seeds 10000..10049). The expert is evaluated on the
same 50 episodes, so "fraction of expert" compares like with like (the demos' own mean is printed beside it).

Part 2, the compounding-error curve (Hopper-v4): return against the number of expert labels.
  One seed for the curve (the table's runs take most of the hour), except BC from 25 demos and DAgger's defaults
  (the table's 3 seeds).
  - BC from 1 and 25 whole demonstrations (1,000 labels each), and from m = 1, 4, 25 demonstrations keeping every 20th pair
    (--subsample 20, as Ho & Ermon 2016 subsample theirs): 50 labels per demonstration;
  - DAgger with --subsample 20 --episodes-per-round 1 (few labels per round), and with its defaults. A DAgger point is
    π̂_i's own return in round i (β_i = 0, one or two episodes) against the labels π̂_i was trained on.
Each run is cached in benchmark/runs/imitation/<tag>.json, so an interrupted benchmark resumes where it stopped.
Writes benchmark/results/imitation/imitation.json and benchmark/results/imitation/imitation_hopper_labels.png.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
RUNS = os.path.join(ROOT, "benchmark", "runs", "imitation")
RESULTS = os.path.join(ROOT, "benchmark", "results", "imitation", "imitation.json")
PLOT = os.path.join(ROOT, "benchmark", "results", "imitation", "imitation_hopper_labels.png")
ENVS = ["Hopper-v4", "HalfCheetah-v4", "Walker2d-v4"]
SEEDS = [1, 2, 3]
CURVE_SEEDS = [1]  # the curve's runs, one seed (time: the table's 18 runs take most of the hour)
TABLE_EVAL = ["--eval-episodes", "50"]
BC_SUB20 = (1, 4, 25)  # m demonstrations, every 20th pair: 50·m labels
BC_FULL = (1, 25)  # m whole demonstrations: 1,000·m labels (m = 25 are the table's runs)


def jobs() -> list:
    """(tag, script, argv) of every run."""
    out = []
    for env in ENVS:
        for seed in SEEDS:
            out.append((f"table_bc_{env}_{seed}", "bc.py", ["--env", env, "--seed", str(seed)] + TABLE_EVAL))
            out.append((f"table_dagger_{env}_{seed}", "dagger.py", ["--env", env, "--seed", str(seed)] + TABLE_EVAL))
    for seed in CURVE_SEEDS:
        for m in BC_SUB20:
            out.append((f"curve_bc_sub20_{m}_{seed}", "bc.py",
                        ["--seed", str(seed), "--num-demos", str(m), "--subsample", "20"] + (["--val-fraction", "0"] if m == 1 else [])))
        for m in BC_FULL[:-1]:
            out.append((f"curve_bc_full_{m}_{seed}", "bc.py",
                        ["--seed", str(seed), "--num-demos", str(m)] + (["--val-fraction", "0"] if m == 1 else [])))
        out.append((f"curve_dagger_sub20_{seed}", "dagger.py",
                    ["--seed", str(seed), "--subsample", "20", "--episodes-per-round", "1", "--rounds", "12"]))
    return out


def run(job) -> dict:
    tag, script, argv = job
    cache = os.path.join(RUNS, f"{tag}.json")
    if os.path.exists(cache):
        with open(cache) as f:
            return json.load(f)
    runs_dir = os.path.join(RUNS, tag)
    shutil.rmtree(runs_dir, ignore_errors=True)  # a run interrupted before its cache was written starts again
    cmd = [sys.executable, script, "--runs-dir", runs_dir] + argv
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=dict(os.environ, PYTHONWARNINGS="ignore"))
    if proc.returncode != 0:
        raise SystemExit(f"{tag} failed: {proc.stderr[-2000:]}")
    (name,) = os.listdir(runs_dir)
    with open(os.path.join(runs_dir, name, "summary.json")) as f:
        summary = json.load(f)
    summary["command"] = " ".join(["python", script] + argv)
    tmp = cache + ".tmp"
    with open(tmp, "w") as f:
        json.dump(summary, f)
    os.replace(tmp, cache)
    print(f"done {tag}: eval {summary['eval_return_mean']:.1f}", flush=True)
    return summary


def expert_returns(env: str, episodes: int = 50) -> dict:
    """The shipped expert on the evaluation episodes the learners get (seeds 10000 + i)."""
    import torch
    import ppo
    policy = torch.export.load(os.path.join(ROOT, "experts", env, "policy.pt2")).module()
    returns = ppo.run_episodes(ppo.torch_policy(policy), env, episodes, seed=10_000)["episode_returns"]
    demos = ppo.np.load(os.path.join(ROOT, "experts", env, "demos.npz"))
    return {"eval_mean": float(returns.mean()), "eval_std": float(returns.std()),
            "demos_mean": float(demos["episode_returns"].mean())}


def mean_std(values) -> str:
    return f"{np.mean(values):,.0f} ± {np.std(values):,.0f}"


def tables(results: dict) -> None:
    print("| env | expert (same 50 episodes) | BC, 25 demos | fraction | DAgger | fraction | DAgger labels (+ validation) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for env in ENVS:
        if not all(f"table_{s}_{env}_{k}" in results["runs"] for s in ("bc", "dagger") for k in SEEDS):
            print(f"| {env} | (runs missing) |")
            continue
        expert = results["experts"][env]["eval_mean"]
        bc = [results["runs"][f"table_bc_{env}_{s}"]["eval_return_mean"] for s in SEEDS]
        dg_runs = [results["runs"][f"table_dagger_{env}_{s}"] for s in SEEDS]
        dg = [r["eval_return_mean"] for r in dg_runs]
        labels = [r["expert_labels"] for r in dg_runs]
        val = [r["validation_labels"] for r in dg_runs]
        print(f"| {env} | {expert:,.0f} | {mean_std(bc)} | {np.mean(bc) / expert:.3f} | {mean_std(dg)} | "
              f"{np.mean(dg) / expert:.3f} | {np.mean(labels):,.0f} (+ {np.mean(val):,.0f}) |")
    expert = results["experts"]["Hopper-v4"]["eval_mean"]
    print(f"\nHopper-v4, fraction of the expert's return against expert labels (seeds {CURVE_SEEDS}; BC m = 25: {SEEDS}):")
    for name, m_values in (("bc_sub20", BC_SUB20), ("bc_full", BC_FULL)):
        for m in m_values:
            runs = [bc_run(results, name, m, s) for s in (SEEDS if (name, m) == ("bc_full", 25) else CURVE_SEEDS)]
            fr = [r["eval_return_mean"] / expert for r in runs]
            print(f"  {name:9s} m={m:>2}  labels {runs[0]['expert_labels']:>6,}  fraction {np.mean(fr):.3f} ± {np.std(fr):.3f}")
    for name in ("curve_dagger_sub20", "table_dagger_Hopper-v4"):
        for s in (CURVE_SEEDS if name.startswith("curve") else SEEDS):
            r = results["runs"][f"{name}_{s}"]
            pts = dagger_points(r, expert)
            print(f"  {name} seed {s}: " + ", ".join(f"{l:,}:{f:.2f}" for l, f in pts) +
                  f"  -> returned π̂_{r['best_round']}: eval {r['eval_return_mean'] / expert:.3f}")


def bc_run(results: dict, name: str, m: int, seed: int) -> dict:
    if name == "bc_full" and m == 25:
        return results["runs"][f"table_bc_Hopper-v4_{seed}"]
    return results["runs"][f"curve_{name}_{m}_{seed}"]


def dagger_points(summary: dict, expert: float) -> list:
    """[(labels π̂_i was trained on, fraction of expert of π̂_i's own roll-out in round i)] for rounds i ≥ 2 (β_i = 0)."""
    rounds = summary["rounds"]
    return [(rounds[k - 1]["expert_labels"], rounds[k]["rollout_return"] / expert)
            for k in range(1, len(rounds)) if rounds[k]["beta"] == 0]


def plot(results: dict) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    expert = results["experts"]["Hopper-v4"]["eval_mean"]
    fig, ax = plt.subplots(figsize=(8, 5))
    for name, m_values, label, color in (("bc_sub20", BC_SUB20, "BC, every 20th pair of m demos", "tab:orange"),
                                         ("bc_full", BC_FULL, "BC, m whole demos", "tab:red")):
        xs, ys, es = [], [], []
        for m in m_values:
            runs = [bc_run(results, name, m, s) for s in (SEEDS if (name, m) == ("bc_full", 25) else CURVE_SEEDS)]
            fr = [r["eval_return_mean"] / expert for r in runs]
            xs.append(runs[0]["expert_labels"]), ys.append(np.mean(fr)), es.append(np.std(fr))
        ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=label, color=color)
    for name, label, color in (("curve_dagger_sub20", "DAgger --subsample 20 --episodes-per-round 1", "tab:blue"),
                               ("table_dagger_Hopper-v4", "DAgger, defaults", "tab:green")):
        for i, s in enumerate(CURVE_SEEDS if name.startswith("curve") else SEEDS):
            pts = np.array(dagger_points(results["runs"][f"{name}_{s}"], expert))
            ax.plot(pts[:, 0], pts[:, 1], marker=".", alpha=0.7, color=color, label=label if i == 0 else None)
    ax.axhline(1.0, color="gray", ls="--", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("expert labels (state-action pairs the learner was trained on)")
    ax.set_ylabel("return / expert's return")
    ax.set_title("Hopper-v4: BC vs DAgger (DAgger: one line per seed, π̂_i's own roll-out)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(PLOT, dpi=120)
    print(f"plot: {PLOT}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table-only", action="store_true", help="print and plot from benchmark/results/imitation/imitation.json")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--collect-only", action="store_true",
                        help="run nothing: write the results file from the runs cached so far (the tables skip what is missing)")
    args = parser.parse_args()
    if not args.table_only:
        os.makedirs(RUNS, exist_ok=True)
        todo = jobs()
        if args.collect_only:
            todo = [j for j in todo if os.path.exists(os.path.join(RUNS, f"{j[0]}.json"))]
        with ThreadPoolExecutor(args.jobs) as pool:
            summaries = list(pool.map(run, todo))
        results = {"command": "python benchmark/bench_imitation.py",
                   "experts": {env: expert_returns(env) for env in ENVS},
                   "runs": {tag: s for (tag, _, _), s in zip(todo, summaries)}}
        tmp = RESULTS + ".tmp"
        with open(tmp, "w") as f:
            json.dump(results, f, indent=1)
        os.replace(tmp, RESULTS)
    with open(RESULTS) as f:
        results = json.load(f)
    for part in (tables, plot):
        try:
            part(results)
        except (KeyError, IndexError) as err:  # --collect-only before every run is done
            print(f"{part.__name__}: incomplete, no run {err}")


if __name__ == "__main__":
    main()
