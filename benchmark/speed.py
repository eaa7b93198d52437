"""Steps per second of ppo.py on Hopper-v4 with the MuJoCo defaults (1 env × 2048 steps, 10 epochs × 32
minibatches), eager and with --compile, optionally next to CleanRL's ppo_continuous_action.py:

    python benchmark/speed.py --steps 200000 [--cleanrl PATH/TO/ppo_continuous_action.py]

Runs one after another on an otherwise idle machine (a second busy process changes the figures a lot);
writes benchmark/results/ppo/speed_hopper.json and prints a table. CleanRL's file is not part of this project:
pass a copy of it (on gymnasium 1.4 it needs `env.observation_space` as the third argument of its
TransformObservation call to start). SPS counts the whole run, compile time and evaluation excluded for
ppo.py (summary.json's `sps` is training steps over training wall time; --compile's ~30 s of compiling
falls inside it).
"""
import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_ours(steps: int, extra: list) -> dict:
    with tempfile.TemporaryDirectory() as runs:
        cmd = [sys.executable, "ppo.py", "--env", "Hopper-v4", "--total-timesteps", str(steps), "--eval-episodes", "1",
               "--no-save-model", "--runs-dir", runs] + extra
        subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        (name,) = os.listdir(runs)
        summary = json.load(open(os.path.join(runs, name, "summary.json")))
    return {"command": "python " + " ".join(cmd[1:cmd.index("--runs-dir")] + extra), "sps": summary["sps"],
            "wall_time_s": summary["wall_time_s"]}


def run_cleanrl(path: str, steps: int, threads: str) -> dict:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    if threads:
        env["OMP_NUM_THREADS"] = threads
    with tempfile.TemporaryDirectory() as cwd:
        start = time.time()
        out = subprocess.run([sys.executable, os.path.abspath(path), "--env-id", "Hopper-v4", "--total-timesteps",
                              str(steps)], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout
    sps = int(re.findall(r"SPS: (\d+)", out)[-1])
    prefix = f"OMP_NUM_THREADS={threads} " if threads else ""
    return {"command": f"{prefix}python ppo_continuous_action.py --env-id Hopper-v4 --total-timesteps {steps}",
            "sps": sps, "wall_time_s": round(time.time() - start, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--cleanrl", default=None, help="path to CleanRL's ppo_continuous_action.py")
    args = parser.parse_args()
    rows = {"ppo.py": run_ours(args.steps, []), "ppo.py --compile": run_ours(args.steps, ["--compile"])}
    if args.cleanrl:
        rows["CleanRL ppo_continuous_action.py"] = run_cleanrl(args.cleanrl, args.steps, "")
        rows["CleanRL ppo_continuous_action.py, 1 torch thread"] = run_cleanrl(args.cleanrl, args.steps, "1")
    result = {"steps": args.steps, "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
              "harness_command": "python benchmark/speed.py " + " ".join(sys.argv[1:]), "rows": rows}
    os.makedirs(os.path.join(ROOT, "benchmark", "results", "ppo"), exist_ok=True)
    out = os.path.join(ROOT, "benchmark", "results", "ppo", "speed_hopper.json")
    with open(out + ".tmp", "w") as f:
        json.dump(result, f, indent=2)
    os.replace(out + ".tmp", out)
    print("| implementation | env steps/s | wall time |")
    print("| --- | --- | --- |")
    for name, row in rows.items():
        print(f"| {name} | {row['sps']:,} | {row['wall_time_s']:.0f} s |")


if __name__ == "__main__":
    main()
