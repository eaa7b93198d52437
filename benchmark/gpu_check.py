"""Check --cuda on a machine with an NVIDIA GPU: each script's tiny run (the CLI tests' arguments) on the GPU,
then the model.pt it wrote evaluated on the CPU with the GPU hidden (CUDA_VISIBLE_DEVICES="").

    python benchmark/gpu_check.py            # all ten scripts, ~2.5 min on an H100 machine
    python benchmark/gpu_check.py bc mppi    # some of them

A run passes when it exits 0 and torch.cuda.max_memory_allocated() after it is > 0: the run really put tensors
on the GPU (a script that silently fell back to the CPU would allocate nothing). Prints one line per script
and per CPU evaluation, then ALL OK or SOME FAILED (exit status 1). Not part of the test suite: CI has no GPU.
"""
import glob
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The CLI tests' TINY arguments (tests/test_<script>_cli.py), each script on its default env.
TINY = {
    "ppo": "--total-timesteps 256 --num-envs 2 --num-steps 64 --num-minibatches 2 --update-epochs 2 --eval-episodes 2",
    "reinforce": "--total-timesteps 400 --batch-steps 200 --eval-episodes 2",
    "bc": "--num-demos 3 --train-steps 40 --val-every 20 --eval-episodes 2",
    "dagger": "--rounds 2 --episodes-per-round 1 --train-steps 30 --eval-episodes 2",
    "maxent_irl": "--iterations 4 --log-every 2 --num-demos 5 --eval-episodes 3",
    "gail": "--total-timesteps 256 --num-steps 128 --num-minibatches 4 --disc-minibatches 4 --update-epochs 1 "
            "--eval-episodes 2",
    "gcl": "--total-timesteps 256 --num-steps 128 --num-minibatches 4 --update-epochs 1 --irl-steps 2 "
           "--eval-episodes 2",
    "soft_q": "--total-timesteps 300 --learning-starts 100 --batch-size 16 --eval-episodes 2",
    "mppi": "--model learned --total-timesteps 250 --random-steps 200 --refit-every 50 --model-epochs 2 "
            "--ensemble-size 2 --model-hidden-size 16 --num-samples 10 --eval-episodes 1",
    "awr": "--total-timesteps 256 --samples-per-iter 128 --value-steps 3 --policy-steps 3 --batch-size 32 "
           "--eval-episodes 2",
}
# Runs the script as __main__ in this process, then reports how much GPU memory it allocated.
DRIVER = ("import runpy, sys, torch; sys.argv = sys.argv[1:]\n"
          "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n"
          "except SystemExit as e:\n    assert not e.code, e.code\n"
          "print('CUDA_BYTES', torch.cuda.max_memory_allocated(), flush=True)")


def last_eval_line(stdout: str) -> str:
    lines = [line for line in stdout.splitlines() if line.startswith("eval")]
    return lines[-1] if lines else ""


def main() -> None:
    names = sys.argv[1:] or list(TINY)
    unknown = [n for n in names if n not in TINY]
    if unknown:
        sys.exit(f"gpu_check.py: error: unknown script(s) {unknown}; choose from {list(TINY)}")
    import torch
    if not torch.cuda.is_available():
        sys.exit("gpu_check.py: error: torch sees no CUDA GPU here; run this on a machine with one")
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            runs, start = os.path.join(tmp, name), time.time()
            r = subprocess.run([sys.executable, "-c", DRIVER, f"{name}.py", "--runs-dir", runs, *TINY[name].split()],
                               cwd=ROOT, env=env, capture_output=True, text=True)
            used = [int(l.split()[1]) for l in r.stdout.splitlines() if l.startswith("CUDA_BYTES")]
            used = used[0] if used else 0
            print(f"{name}: exit {r.returncode}, CUDA bytes {used:,}, {time.time() - start:.1f} s, "
                  f"{last_eval_line(r.stdout)}", flush=True)
            if r.returncode or used == 0:
                ok = False
                print(r.stderr[-2000:])
                continue
            # The GPU-written checkpoint must load and evaluate where there is no GPU.
            (ckpt,) = glob.glob(os.path.join(runs, "*", "model.pt"))
            r = subprocess.run([sys.executable, f"{name}.py", "--runs-dir", runs + "_cpu", "--checkpoint", ckpt,
                                "--eval-episodes", "1"], cwd=ROOT, env=dict(env, CUDA_VISIBLE_DEVICES=""),
                               capture_output=True, text=True)
            print(f"  its model.pt on the CPU: exit {r.returncode}, {last_eval_line(r.stdout) or r.stderr[-800:]}",
                  flush=True)
            ok &= r.returncode == 0
    print("ALL OK" if ok else "SOME FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
