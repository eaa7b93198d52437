"""Helpers of the command-line tests of every script: run it as a user would, and read what it wrote."""
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_script(script: str, *argv, cwd: str = ROOT) -> subprocess.CompletedProcess:
    """`python <script> argv...` in a subprocess, warnings silenced, output captured."""
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, os.path.join(ROOT, script), *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def ctrl_c_after_first_step(cmd: list, env: dict = None) -> tuple:
    """Start `cmd` in a process group of its own, as a terminal's foreground job is; once it prints its first "step"
    line, send SIGINT to the whole group, as Ctrl-C does; return (exit code, stderr)."""
    env = dict(os.environ, PYTHONWARNINGS="ignore") if env is None else env
    process = subprocess.Popen(cmd, cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True)
    line = process.stdout.readline()
    while line and not line.startswith("step"):
        line = process.stdout.readline()
    assert line, process.stderr.read()
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=120)
    return process.returncode, err


def only_run_dir(runs_dir) -> str:
    """The one run directory a run wrote under runs_dir."""
    (name,) = os.listdir(runs_dir)
    return os.path.join(runs_dir, name)


def error_line(result: subprocess.CompletedProcess, script: str) -> str:
    """The whole stderr must be one line, '<script>: error: ...', saying what is wrong, and no traceback."""
    assert result.returncode != 0
    lines = [l for l in result.stderr.splitlines() if l.strip() and "WARN" not in l]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{script}: error: ")
    assert "Traceback" not in result.stderr
    return lines[0]


SUMMARY_KEYS = {"script", "env", "seed", "env_steps", "wall_time_s", "sps", "eval_episodes", "eval_return_mean",
                "eval_return_std", "eval_returns", "train_return_last100", "checkpoint", "run_dir"}


def check_run_dir(runs_dir, env_id: str, script: str, eval_episodes: int) -> dict:
    """The run directory contract of CONTRIBUTING.md: name, files, no temporary files, summary.json; returns the summary."""
    run_dir = only_run_dir(runs_dir)
    assert os.path.basename(run_dir).startswith(f"{env_id}__{script[:-3]}__1__")
    files = set(os.listdir(run_dir))
    assert {"args.json", "model.pt", "summary.json"} <= files
    assert any(f.startswith("events.out.tfevents") for f in files)
    assert not [f for f in files if ".tmp" in f]  # atomic writes leave no temporary files
    with open(os.path.join(run_dir, "summary.json")) as f:
        summary = json.load(f)
    assert SUMMARY_KEYS <= set(summary) and summary["script"] == script and summary["env"] == env_id
    assert summary["eval_episodes"] == len(summary["eval_returns"]) == eval_episodes
    assert summary["eval_return_mean"] == pytest.approx(float(np.mean(summary["eval_returns"])))
    assert summary["wall_time_s"] >= 0
    assert summary["sps"] > 0 or summary["env_steps"] == 0  # bc.py trains without stepping the env
    with open(os.path.join(run_dir, "args.json")) as f:
        assert json.load(f)["env"] == env_id
    return summary


def replay_demos(env, demos, episodes: int, seed: int) -> None:
    """Step `env` with a demos.npz's recorded actions from reset(seed=seed + i) for its first `episodes` episodes: the
    env must give back the recorded observations, rewards and episode ends (the actions are what the env executed)."""
    # (read each array once: indexing an open npz file decompresses the whole array at every access)
    demos = {k: np.asarray(demos[k]) for k in ("observations", "actions", "rewards", "next_observations", "terminations",
                                               "truncations", "episode_lengths")}
    t = 0
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        for _ in range(int(demos["episode_lengths"][i])):
            np.testing.assert_array_equal(np.float32(obs), demos["observations"][t])
            obs, reward, terminated, truncated, _ = env.step(demos["actions"][t])
            assert reward == demos["rewards"][t] and np.array_equal(np.float32(obs), demos["next_observations"][t])
            assert (terminated, truncated) == (demos["terminations"][t], demos["truncations"][t])
            t += 1
