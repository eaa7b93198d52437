"""Steps per second of ppo.py with 1 and with W processes under torchrun, the same work per process (Hopper-v4).

    python benchmark/bench_torchrun.py                    # 1 and 2 processes; about 2 minutes on an idle 2-core machine
    python benchmark/bench_torchrun.py --procs 1 2 4 --steps 65536

Each process runs the MuJoCo settings' rollout (1 env × 2048 steps, 10 epochs × 32 minibatches of its 2,048 steps),
so W processes collect W × 2,048 steps per iteration and the run's --total-timesteps is W × --steps: each row does
the same work per process, and the ideal is W times the steps per second of one. SPS is summary.json's (every rank's
steps over the training wall time, start-up and evaluation excluded). The rows run one after another, so their ratio
is measured side by side; absolute figures move by 10–30% between machines and runs. One torch thread per process.
Writes benchmark/results/ppo/torchrun_sps.json and prints a table.
"""
import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmark", "results", "ppo", "torchrun_sps.json")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sps(procs: int, steps: int) -> float:
    with tempfile.TemporaryDirectory() as runs:
        script = ["ppo.py", "--env", "Hopper-v4", "--total-timesteps", str(procs * steps), "--eval-episodes", "1",
                  "--no-save-model", "--checkpoint-every", "0", "--runs-dir", runs]
        launcher = [sys.executable] if procs == 1 else [
            sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(procs), "--master-addr",
            "127.0.0.1", "--master-port", str(free_port())]
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
        subprocess.run(launcher + script, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        (name,) = os.listdir(runs)
        with open(os.path.join(runs, name, "summary.json")) as f:
            return float(json.load(f)["sps"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40960, help="env steps per process")
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    rows = []
    for procs in args.procs:
        rows.append({"processes": procs, "sps": sps(procs, args.steps)})
        rows[-1]["speedup"] = rows[-1]["sps"] / rows[0]["sps"]
        print(f"{procs} process(es): {rows[-1]['sps']:,.0f} SPS ({rows[-1]['speedup']:.2f}× one)", flush=True)
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    out = {"command": " ".join(["python", "benchmark/bench_torchrun.py"] + sys.argv[1:]),
           "steps_per_process": args.steps, "cpus": os.cpu_count(),
           "machine": platform.processor() or platform.machine(), "rows": rows}
    with open(RESULTS + ".tmp", "w") as f:
        json.dump(out, f, indent=1)
    os.replace(RESULTS + ".tmp", RESULTS)
    print("| processes | SPS | × one process |\n| --- | --- | --- |")
    for r in rows:
        print(f"| {r['processes']} | {r['sps']:,.0f} | {r['speedup']:.2f} |")


if __name__ == "__main__":
    main()
