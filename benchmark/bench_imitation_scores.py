"""Every imitation method on the shipped MuJoCo experts, as normalised scores: docs/imitation.md's table.

    python benchmark/bench_imitation_scores.py --worker 0/2 &   # two workers, one per core, each its share
    python benchmark/bench_imitation_scores.py --worker 1/2 &
    python benchmark/bench_imitation_scores.py --table-only     # print the table from what has finished

Methods, each from the expert's stochastic demonstrations (experts/README.md), 3 seeds, each script's defaults and
its env's preset (gail.py's PRESETS: HalfCheetah, Walker2d and Ant) otherwise:
  bc.py with 4 and with 25 demos; dagger.py (its labeller is policy.pt2, the expert's deterministic policy);
  gail.py with 4 and with 25 demos, 1M env steps; gcl.py with 25 demos, 1M env steps; awr.py --offline (MARWIL on
  the 25 demos alone).
Each final policy is evaluated deterministically on 50 episodes from reset(seed=10000 + i), the seeds on which
ppo.py --save-expert measured the expert's references, so the normalised score (R − R_random) / (R_expert − R_random)
compares like with like: 0 is a uniform random policy, 1 the demonstrator (the stochastic policy that made the demos).

Each run is cached in benchmark/runs/imitation_scores/<tag>.json when it ends, and results/imitation/imitation_scores.json
is rewritten from every cached run after each one, so a worker that is ended resumes where it stopped (a run cut off
midway goes on from its last checkpoint.pt with the script's --resume) and the results file always holds every
finished run.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = os.path.join(ROOT, "benchmark", "runs", "imitation_scores")
RESULTS = os.path.join(ROOT, "benchmark", "results", "imitation", "imitation_scores.json")
ENVS = ["Hopper-v4", "Walker2d-v4", "HalfCheetah-v4", "Ant-v4"]
SEEDS = [1, 2, 3]
EVAL = ["--eval-episodes", "50"]
# method -> (script, argv); cheap methods first, so that whole rows land early
METHODS = {
    "bc_4": ("bc.py", ["--num-demos", "4"]),
    "bc_25": ("bc.py", ["--num-demos", "25"]),
    "dagger": ("dagger.py", []),
    "awr_offline_25": ("awr.py", ["--offline"]),
    "gail_25": ("gail.py", ["--num-demos", "25", "--total-timesteps", "1000000"]),
    "gail_4": ("gail.py", ["--num-demos", "4", "--total-timesteps", "1000000"]),
    "gcl_25": ("gcl.py", ["--num-demos", "25", "--total-timesteps", "1000000"]),
}
TARGETS = {"gail_25": 0.95, "dagger": 0.95}


def jobs(envs: list) -> list:
    """(tag, script, argv) of every run, method by method, then env by env, then seed by seed."""
    return [(f"{method}_{env}_{seed}", script, ["--env", env, "--seed", str(seed)] + argv + EVAL)
            for method, (script, argv) in METHODS.items() for env in envs for seed in SEEDS]


def run(job) -> dict:
    tag, script, argv = job
    cache = os.path.join(RUNS, f"{tag}.json")
    if os.path.exists(cache):
        with open(cache) as f:
            return json.load(f)
    runs_dir = os.path.join(RUNS, tag)
    cmd = [sys.executable, script, "--runs-dir", runs_dir] + argv
    found = os.listdir(runs_dir) if os.path.isdir(runs_dir) else []
    if len(found) == 1 and os.path.isfile(os.path.join(runs_dir, found[0], "checkpoint.pt")):
        cmd = [sys.executable, script, "--resume", os.path.join(runs_dir, found[0])]  # a run cut off: go on from it
    else:
        shutil.rmtree(runs_dir, ignore_errors=True)  # cut off before its first checkpoint: start again
    print(f"{'resume' if '--resume' in cmd else 'start'} {tag}", flush=True)
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
    print(f"done {tag}: eval {summary['eval_return_mean']:.1f}, normalised {summary['normalized_score']:.3f}",
          flush=True)
    return summary


def collect(envs: list) -> dict:
    """{method: {env: {seed: summary}}} of every cached run."""
    out: dict = {}
    for tag, script, argv in jobs(envs):
        cache = os.path.join(RUNS, f"{tag}.json")
        if os.path.exists(cache):
            method, env, seed = tag.rsplit("_", 2)
            with open(cache) as f:
                out.setdefault(method, {}).setdefault(env, {})[seed] = json.load(f)
    return out


def write_results(envs: list) -> None:
    runs = collect(envs)
    rows = []
    for method, by_env in runs.items():
        for env, by_seed in by_env.items():
            scores = [by_seed[s]["normalized_score"] for s in sorted(by_seed)]
            rows.append({"method": method, "env": env, "seeds": sorted(int(s) for s in by_seed),
                         "normalized_scores": scores, "returns": [by_seed[s]["eval_return_mean"] for s in sorted(by_seed)],
                         "commands": [by_seed[s]["command"] for s in sorted(by_seed)]})
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    tmp = RESULTS + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"command": "python benchmark/bench_imitation_scores.py --worker 0/2 (and 1/2)",
                   "eval_episodes": 50, "rows": rows}, f, indent=1)
    os.replace(tmp, RESULTS)


def table() -> None:
    with open(RESULTS) as f:
        rows = json.load(f)["rows"]
    envs = ENVS
    print("| method | " + " | ".join(envs) + " |")
    print("| --- |" + " --- |" * len(envs))
    cells = []
    for env in envs:  # the expert's own deterministic policy, from its references
        with np.load(os.path.join(ROOT, "experts", env, "demos.npz")) as demos:
            ref = json.loads(str(demos["metadata"]))["reference"]
        rand, expert, policy = (np.mean(ref[k]) for k in ("random_returns", "expert_returns", "policy_returns"))
        cells.append(f"{(policy - rand) / (expert - rand):.2f} ({policy:,.0f}; demonstrator {expert:,.0f})")
    print("| expert's policy.pt2 (its return; the demonstrator's) | " + " | ".join(cells) + " |")
    for method in METHODS:
        cells = []
        for env in envs:
            row = next((r for r in rows if r["method"] == method and r["env"] == env), None)
            if row is None:
                cells.append("not run")
                continue
            s = np.array(row["normalized_scores"])
            partial = "" if len(s) == len(SEEDS) else f" ({len(s)} of {len(SEEDS)} seeds)"
            cells.append(f"{s.mean():.2f} ± {s.std():.2f}{partial}")
        target = f" (target ≥ {TARGETS[method]})" if method in TARGETS else ""
        print(f"| {method}{target} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", default="0/1", help="i/n: of the jobs not yet finished, run those whose index is i modulo n")
    parser.add_argument("--envs", nargs="+", default=ENVS)
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args()
    if not args.table_only:
        i, n = (int(x) for x in args.worker.split("/"))
        os.makedirs(RUNS, exist_ok=True)
        # (the jobs still to run, dealt out in turn: workers started together split what is left evenly)
        todo = [j for j in jobs(args.envs) if j[0].rsplit("_", 2)[0] in args.methods
                and not os.path.exists(os.path.join(RUNS, f"{j[0]}.json"))]
        for job in todo[i::n]:
            run(job)
            write_results(ENVS)
        write_results(ENVS)
    table()


if __name__ == "__main__":
    main()
