"""Steps per second of ppo.py's rollouts with --vector-env sync and async, for 1, 2, 4 and 8 envs (Hopper-v4).

    python benchmark/bench_vector_env.py                # every row; about 3 minutes on an idle 2-core machine
    python benchmark/bench_vector_env.py --steps 65536  # longer runs, steadier figures

Each row is a whole ppo.py run of --steps env steps with the MuJoCo settings' batch (N envs × 2048/N steps, so the
batch stays 2,048 and the update costs the same in every row), one torch thread, the evaluation cut to 1 episode;
SPS is summary.json's (training steps over training wall time). The rows run one after another, sync and async of
one N back to back, so their ratio is measured side by side; absolute figures move by 10–30% between machines and
runs. Writes benchmark/results/ppo/vector_env_sps.json and prints a table.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmark", "results", "ppo", "vector_env_sps.json")


def sps(kind: str, n: int, steps: int) -> float:
    with tempfile.TemporaryDirectory() as runs:
        cmd = [sys.executable, "ppo.py", "--env", "Hopper-v4", "--total-timesteps", str(steps), "--num-envs", str(n),
               "--num-steps", str(2048 // n), "--vector-env", kind, "--eval-episodes", "1", "--no-save-model",
               "--checkpoint-every", "0", "--runs-dir", runs]
        subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        (name,) = os.listdir(runs)
        with open(os.path.join(runs, name, "summary.json")) as f:
            return float(json.load(f)["sps"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=32768)
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 2, 4, 8])
    args = parser.parse_args()
    rows = []
    for n in args.envs:
        row = {"num_envs": n, "sync_sps": sps("sync", n, args.steps), "async_sps": sps("async", n, args.steps)}
        row["async_over_sync"] = row["async_sps"] / row["sync_sps"]
        rows.append(row)
        print(f"N = {n}: sync {row['sync_sps']:,.0f}, async {row['async_sps']:,.0f} SPS "
              f"(async/sync {row['async_over_sync']:.2f})", flush=True)
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    out = {"command": " ".join(["python", "benchmark/bench_vector_env.py"] + sys.argv[1:]), "steps": args.steps,
           "cpus": os.cpu_count(), "machine": platform.processor() or platform.machine(), "rows": rows}
    with open(RESULTS + ".tmp", "w") as f:
        json.dump(out, f, indent=1)
    os.replace(RESULTS + ".tmp", RESULTS)
    print("| envs N | sync SPS | async SPS | async / sync |\n| --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['num_envs']} | {r['sync_sps']:,.0f} | {r['async_sps']:,.0f} | {r['async_over_sync']:.2f} |")


if __name__ == "__main__":
    main()
