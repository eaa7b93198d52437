"""Benchmark harness: run one script over several seeds and collect what each run's summary.json says.

    python benchmark/run.py --name ppo_hopper_1m --script ppo.py --env Hopper-v4 --seeds 1 2 3 \
        -- --total-timesteps 1000000

Each run writes its usual run directory under benchmark/runs/<name>/ (TensorBoard events, model, summary);
the harness writes benchmark/results/<script>/<name>.json (every seed's summary, the mean and std over seeds, the
exact commands) and prints the docs' table row. Runs go one after another unless --jobs > 1; SPS is only
comparable between runs made under the same load, so the results file records the jobs count.
A seed that finished (benchmark/runs/<name>/<env>__seed<N>.summary.json, with the same command) is not run again,
so an interrupted benchmark resumes where it stopped; a seed stopped halfway continues from its checkpoint.pt.
A later issue adds its rows by calling this with its own script and arguments.
"""
import argparse
import glob
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_one(script: str, env: str, seed: int, runs_dir: str, extra: list) -> dict:
    cmd = [sys.executable, script, "--env", env, "--seed", str(seed), "--runs-dir", runs_dir] + extra
    command = " ".join(["python", script, "--env", env, "--seed", str(seed)] + [shlex.quote(a) for a in extra])
    # A seed that finished with this exact command before (its summary kept beside its log) is not run again, so
    # an interrupted multi-seed benchmark resumes seed by seed, not pair by pair.
    done_path = os.path.join(runs_dir, f"{env}__seed{seed}.summary.json")
    if os.path.exists(done_path):
        with open(done_path) as f:
            done = json.load(f)
        if done.get("command") == command:
            print(f"benchmark: seed {seed} already done ({done['run_dir']}); reusing its summary", flush=True)
            return done
    log_path = os.path.join(runs_dir, f"{env}__seed{seed}.log")
    # A seed stopped halfway (the job was ended: SIGTERM writes checkpoint.pt, and --checkpoint-every keeps one
    # anyway) continues from its checkpoint with --resume; the scripts resume bit for bit, so the result is the same.
    unfinished = sorted(glob.glob(os.path.join(runs_dir, f"{env}__*__{seed}__*", "checkpoint.pt")))
    if unfinished and os.path.exists(log_path):
        cmd = [sys.executable, script, "--resume", os.path.relpath(os.path.dirname(unfinished[-1]), ROOT)]
        print(f"benchmark: seed {seed} resumes from {unfinished[-1]}", flush=True)
    with open(log_path, "a" if unfinished else "w") as log:
        proc = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark: seed {seed} failed (exit {proc.returncode}); see {log_path}")
    # the run directory printed last by the script: "... run directory <path>"
    with open(log_path) as log:
        run_dir = [line for line in log if "run directory" in line][-1].rsplit("run directory", 1)[1].strip()
    with open(os.path.join(ROOT, run_dir, "summary.json")) as f:
        summary = json.load(f)
    summary["command"] = command
    with open(done_path + ".tmp", "w") as f:
        json.dump(summary, f, indent=2)
    os.replace(done_path + ".tmp", done_path)
    return summary


def mean_std(values: list) -> dict:
    values = [v for v in values if v is not None]
    if not values:
        return {"mean": None, "std": None}
    m = sum(values) / len(values)
    return {"mean": m, "std": (sum((v - m) ** 2 for v in values) / len(values)) ** 0.5}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True, help="results file name, e.g. ppo_hopper_1m")
    parser.add_argument("--script", default="ppo.py")
    parser.add_argument("--env", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--jobs", type=int, default=1, help="runs at the same time (SPS falls when they share cores)")
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="arguments after -- go to the script")
    args = parser.parse_args()
    extra = args.extra[1:] if args.extra[:1] == ["--"] else args.extra

    runs_dir = os.path.join(ROOT, "benchmark", "runs", args.name)
    os.makedirs(runs_dir, exist_ok=True)
    start = time.time()
    with ThreadPoolExecutor(args.jobs) as pool:
        summaries = list(pool.map(lambda s: run_one(args.script, args.env, s, runs_dir, extra), args.seeds))

    result = {
        "name": args.name, "script": args.script, "env": args.env, "seeds": args.seeds, "jobs": args.jobs,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "harness_command": "python benchmark/run.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "wall_time_s": round(time.time() - start, 1),
        "train_return_last100": mean_std([s["train_return_last100"] for s in summaries]),
        "eval_return": mean_std([s["eval_return_mean"] for s in summaries]),
        "sps": mean_std([s["sps"] for s in summaries]),
        "run_wall_time_s": mean_std([s["wall_time_s"] for s in summaries]),
        "runs": summaries,
    }
    if any("steps_to_target" in s for s in summaries):  # runs with --target-return (reinforce.py)
        reached = [s.get("steps_to_target") for s in summaries]
        result["steps_to_target"] = {**mean_std(reached), "reached": sum(r is not None for r in reached),
                                     "per_seed": reached}
    # one results folder per script: benchmark/results/<script>/<name>.json
    out_dir = os.path.join(ROOT, "benchmark", "results", os.path.splitext(os.path.basename(args.script))[0])
    os.makedirs(out_dir, exist_ok=True)
    out = os.path.join(out_dir, f"{args.name}.json")
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=2)
    os.replace(tmp, out)

    def fmt(d, digits=0):
        if d["mean"] is None:  # e.g. no training episodes (offline runs)
            return "—"
        return f"{d['mean']:,.{digits}f} ± {d['std']:,.{digits}f}"
    print(f"| {args.script} | {args.env} | {summaries[0]['env_steps']:,} | {fmt(result['train_return_last100'])} | "
          f"{fmt(result['eval_return'])} | {fmt(result['run_wall_time_s'])} s | {fmt(result['sps'])} | `{result['harness_command']}` |")


if __name__ == "__main__":
    main()
