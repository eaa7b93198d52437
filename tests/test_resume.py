"""Checkpoints and --resume, for every script.

A run stopped by SIGINT at a safe point writes checkpoint.pt and raises Interrupted; `--resume RUN_DIR` then finishes
it in the same folder. On a CPU the resumed run must end with the same model, bit for bit, as a run that was never
stopped: every network, optimiser, normaliser, random generator, env, counter and buffer has to travel through the
checkpoint for that to hold. The signal is real (os.kill of this process), sent from inside the k-th call of a
function that the training loop calls once per iteration.
"""
import importlib
import json
import os
import signal
import subprocess
import sys
import time

import gymnasium as gym
import numpy as np
import pytest
import torch
import tyro

from cli_helpers import ROOT, ctrl_c_after_first_step, error_line, only_run_dir, run_script

# script -> (a short run's command line, a function the loop calls once per iteration, the call that sends SIGINT)
RESUMABLE = {
    "ppo": (["--env", "Pendulum-v1", "--total-timesteps", "640", "--num-envs", "2", "--num-steps", "64",
             "--num-minibatches", "2", "--update-epochs", "2"], "numpy_weights", 3),
    # (--vector-env async: the envs' states come from their worker processes and go back into them)
    "ppo-async": (["--env", "Pendulum-v1", "--total-timesteps", "640", "--num-envs", "2", "--num-steps", "64",
                   "--num-minibatches", "2", "--update-epochs", "2", "--vector-env", "async"], "numpy_weights", 3),
    # (continuous: the SVGD sampler, both optimisers and the replay buffer; the stop lands between two updates)
    "soft_q": (["--env", "Pendulum-v1", "--total-timesteps", "300", "--learning-starts", "100", "--batch-size", "16",
                "--buffer-size", "250"], "normalize_obs", 400),
    "gail": (["--env", "Pendulum-v1", "--total-timesteps", "640", "--num-envs", "2", "--num-steps", "64",
              "--num-minibatches", "2", "--disc-minibatches", "2", "--update-epochs", "2", "--num-demos", "2"],
             "numpy_weights", 3),
    "gail-async": (["--env", "Pendulum-v1", "--total-timesteps", "640", "--num-envs", "2", "--num-steps", "64",
                    "--num-minibatches", "2", "--disc-minibatches", "2", "--update-epochs", "2", "--num-demos", "2",
                    "--vector-env", "async"], "numpy_weights", 3),
    # (the background set of past policies' batches travels too)
    "gcl": (["--env", "Pendulum-v1", "--total-timesteps", "640", "--num-envs", "2", "--num-steps", "64",
             "--num-minibatches", "2", "--update-epochs", "2", "--num-demos", "2", "--irl-steps", "2",
             "--segment-length", "10"], "numpy_weights", 5),
    "gcl-async": (["--env", "Pendulum-v1", "--total-timesteps", "640", "--num-envs", "2", "--num-steps", "64",
                   "--num-minibatches", "2", "--update-epochs", "2", "--num-demos", "2", "--irl-steps", "2",
                   "--segment-length", "10", "--vector-env", "async"], "numpy_weights", 5),
    "reinforce": (["--env", "Pendulum-v1", "--total-timesteps", "1000", "--batch-steps", "200", "--baseline", "value",
                   "--value-steps", "2"], "numpy_weights", 2),
    "awr": (["--env", "Pendulum-v1", "--total-timesteps", "640", "--samples-per-iter", "128", "--value-steps", "4",
             "--policy-steps", "4", "--batch-size", "32", "--buffer-size", "300"], "numpy_weights", 3),
    "bc": (["--env", "Pendulum-v1", "--num-demos", "3", "--train-steps", "40", "--val-every", "10"], "mse_loss", 17),
    "dagger": (["--env", "Pendulum-v1", "--rounds", "3", "--episodes-per-round", "1", "--train-steps", "10"],
               "beta_schedule", 2),
    "mppi": (["--env", "Pendulum-v1", "--model", "learned", "--total-timesteps", "60", "--random-steps", "20",
              "--refit-every", "20", "--num-samples", "20", "--horizon", "5", "--model-epochs", "2"], "mppi_plan", 12),
    "maxent_irl": (["--iterations", "12", "--num-demos", "5", "--log-every", "5"], "backward_pass", 4),
    # (max-margin and projection: the set of policies found, their μ and gaps, and projection's μ̄ travel too)
    "maxent_irl-max-margin": (["--method", "max-margin", "--slack-c", "1e6", "--iterations", "12", "--num-demos", "5",
                               "--log-every", "100"], "value_iteration", 4),
    "maxent_irl-projection": (["--method", "projection", "--tolerance", "0", "--iterations", "12", "--num-demos",
                               "5", "--log-every", "100"], "value_iteration", 4),
    # (offline: the dataset and the minibatch generator; the loop's unit is the iteration)
    "awr-offline": (["--env", "Pendulum-v1", "--offline", "--offline-iterations", "5", "--num-demos", "2",
                     "--random-episodes", "2", "--value-steps", "4", "--policy-steps", "4", "--batch-size", "32"],
                    "minibatch_indices", 5),
}


def model_tensors(run_dir: str) -> dict:
    """Every tensor in model.pt, flattened to {path: tensor}."""
    flat = {}

    def walk(prefix, value):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}/{k}", v)
        elif isinstance(value, torch.Tensor):
            flat[prefix] = value
    walk("", torch.load(os.path.join(run_dir, "model.pt"), weights_only=True))
    assert flat
    return flat


@pytest.mark.parametrize("name", sorted(RESUMABLE))
def test_an_interrupted_and_resumed_run_ends_with_the_same_model_bit_for_bit(tmp_path, monkeypatch, name):
    script = importlib.import_module(name.split("-")[0])
    argv, hook, stop_at = RESUMABLE[name]
    cli = [*argv, "--eval-episodes", "2"]
    whole = script.main(tyro.cli(script.Args, args=[*cli, "--runs-dir", str(tmp_path / "whole")]))

    real, calls = getattr(script, hook), []
    handler_before = signal.getsignal(signal.SIGINT)  # (SIG_IGN where the suite runs in the background, e.g. nohup)

    def signalling(*a, **k):
        calls.append(1)
        if len(calls) == stop_at:
            os.kill(os.getpid(), signal.SIGINT)  # handled by the script: it finishes the iteration, then stops
        return real(*a, **k)

    monkeypatch.setattr(script, hook, signalling)
    with pytest.raises(script.Interrupted, match=f"stopped by SIGINT at step .*--resume "):
        script.main(tyro.cli(script.Args, args=[*cli, "--runs-dir", str(tmp_path / "split")]))
    monkeypatch.setattr(script, hook, real)
    run_dir = only_run_dir(tmp_path / "split")
    assert sorted(f for f in os.listdir(run_dir) if not f.startswith("events")) == ["args.json", "checkpoint.pt"]
    assert signal.getsignal(signal.SIGINT) is handler_before  # the script's handler is gone after the loop

    resumed = script.main(script.Args(resume=run_dir))
    assert not os.path.exists(os.path.join(run_dir, "checkpoint.pt"))  # stale once model.pt is written
    expected, got = model_tensors(whole["run_dir"]), model_tensors(run_dir)
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(expected[key], got[key]), key
    assert resumed["eval_returns"] == whole["eval_returns"]
    assert resumed["train_return_last100"] == whole["train_return_last100"]
    assert resumed["env_steps"] == whole["env_steps"]


@pytest.mark.parametrize("env_id", ["Hopper-v4", "Ant-v4", "Reacher-v4", "CartPole-v1", "Pendulum-v1"])
def test_a_saved_env_continues_exactly_where_it_was(env_id):
    """A MuJoCo env re-created by unpickling starts from its initial state: its MjData (with the derived body positions
    and contact forces that Ant's and Reacher's observations read) and its generator must be copied back."""
    import ppo
    env = ppo.make_env(env_id)
    env.reset(seed=3)
    env.action_space.seed(4)
    for _ in range(20):
        env.step(env.action_space.sample())
    state = ppo.env_state(env)
    actions = [env.action_space.sample() for _ in range(300)]
    copy = ppo.set_env_state(state)
    for a in actions:
        (o1, r1, t1, u1, _), (o2, r2, t2, u2, _) = env.step(a), copy.step(a)
        assert np.array_equal(o1, o2) and (r1, t1, u1) == (r2, t2, u2)
        if t1 or u1:  # reset() without a seed draws from the env's generator, which must have travelled too
            assert np.array_equal(env.reset()[0], copy.reset()[0])


# ── The command line: a real Ctrl-C, a real resume, NaN, bad --resume ─────────────────────────────────────────────
# script -> a run far longer than the test waits for, which prints a progress line early
LONG = {
    "ppo": ["--env", "CartPole-v1", "--total-timesteps", "10000000", "--num-steps", "64", "--num-minibatches", "2",
            "--update-epochs", "1"],
    "reinforce": ["--env", "CartPole-v1", "--total-timesteps", "10000000", "--batch-steps", "200"],
    "awr": ["--env", "CartPole-v1", "--total-timesteps", "10000000", "--samples-per-iter", "128", "--value-steps", "2",
            "--policy-steps", "2", "--batch-size", "32"],
    "bc": ["--env", "CartPole-v1", "--num-demos", "3", "--train-steps", "10000000", "--val-every", "10"],
    "dagger": ["--env", "CartPole-v1", "--rounds", "100000", "--episodes-per-round", "1", "--train-steps", "10"],
    "gail": ["--env", "CartPole-v1", "--total-timesteps", "10000000", "--num-steps", "128", "--num-minibatches", "4",
             "--disc-minibatches", "4", "--update-epochs", "1"],
    "gcl": ["--env", "CartPole-v1", "--total-timesteps", "10000000", "--num-steps", "128", "--num-minibatches", "4",
            "--update-epochs", "1", "--irl-steps", "1"],
    "soft_q": ["--env", "CartPole-v1", "--total-timesteps", "10000000", "--learning-starts", "100", "--batch-size", "16"],
    "maxent_irl": ["--iterations", "10000000", "--log-every", "1"],
    "mppi": ["--env", "Pendulum-v1", "--model", "learned", "--total-timesteps", "100000", "--random-steps", "20",
             "--refit-every", "20", "--num-samples", "20", "--horizon", "5", "--model-epochs", "1"],
}


def start(script: str, *argv) -> subprocess.Popen:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.Popen([sys.executable, os.path.join(ROOT, script), *argv], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def interrupt_after_first_line(process: subprocess.Popen, signum=signal.SIGINT) -> tuple:
    """Wait for the run's first progress line, send `signum`, return (exit code, stderr)."""
    line = process.stdout.readline()
    while line and not line.startswith(("step", "iter", "round", "iteration")):
        line = process.stdout.readline()
    assert line, process.stderr.read()
    process.send_signal(signum)
    out, err = process.communicate(timeout=120)
    return process.returncode, err


@pytest.mark.parametrize("name", sorted(LONG))
def test_ctrl_c_stops_at_a_safe_point_with_one_line_and_a_checkpoint(tmp_path, name):
    process = start(f"{name}.py", *LONG[name], "--runs-dir", str(tmp_path))
    code, err = interrupt_after_first_line(process)
    lines = [l for l in err.splitlines() if l.strip() and "WARN" not in l]
    assert code == 130 and len(lines) == 1 and "Traceback" not in err, err
    run_dir = only_run_dir(tmp_path)
    assert lines[0].startswith(f"{name}.py: stopped by SIGINT at step ")
    assert lines[0].endswith(f"resume with: python {name}.py --resume {run_dir}")
    files = os.listdir(run_dir)
    assert "checkpoint.pt" in files and "model.pt" not in files and not [f for f in files if ".tmp" in f]


def test_sigterm_then_resume_on_the_command_line_finishes_the_run(tmp_path):
    process = start("ppo.py", "--env", "CartPole-v1", "--total-timesteps", "3072", "--num-steps", "64",
                    "--num-minibatches", "2", "--update-epochs", "1", "--eval-episodes", "2", "--runs-dir", str(tmp_path))
    code, err = interrupt_after_first_line(process, signal.SIGTERM)
    assert code == 130 and "stopped by SIGTERM" in err, err
    run_dir = only_run_dir(tmp_path)
    result = run_script("ppo.py", "--resume", run_dir)
    assert result.returncode == 0, result.stderr
    files = os.listdir(run_dir)
    assert {"model.pt", "summary.json"} <= set(files) and "checkpoint.pt" not in files
    with open(os.path.join(run_dir, "summary.json")) as f:
        assert json.load(f)["env_steps"] == 3072
    # a finished run has nothing to resume
    assert "nothing to resume" in error_line(run_script("ppo.py", "--resume", run_dir), "ppo.py")


def test_ctrl_c_to_the_whole_process_group_of_an_async_run_stops_it_at_a_safe_point(tmp_path):
    """A terminal's Ctrl-C signals every process of the group, --vector-env async's env workers too: they must outlive
    it, so that the main process can finish the iteration and save their envs in checkpoint.pt."""
    code, err = ctrl_c_after_first_step([sys.executable, os.path.join(ROOT, "ppo.py"), "--env", "Pendulum-v1",
                                         "--total-timesteps", "6400", "--num-envs", "2", "--num-steps", "64",
                                         "--num-minibatches", "2", "--update-epochs", "1", "--vector-env", "async",
                                         "--eval-episodes", "2", "--runs-dir", str(tmp_path)])
    assert code == 130 and "stopped by SIGINT" in err and "Traceback" not in err, err
    run_dir = only_run_dir(tmp_path)
    assert "checkpoint.pt" in os.listdir(run_dir)
    with open(os.path.join(run_dir, "args.json")) as f:
        args = json.load(f)
    result = run_script("ppo.py", "--resume", run_dir)
    assert result.returncode == 0 and args["vector_env"] == "async", result.stderr
    with open(os.path.join(run_dir, "summary.json")) as f:
        assert json.load(f)["env_steps"] == 6400


def test_a_second_signal_interrupts_at_once():
    import ppo
    sigterm_before = signal.getsignal(signal.SIGTERM)
    with ppo.StopSignals() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.received == "SIGINT"
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # (the handler runs between bytecodes; it raises long before this ends)
    assert signal.getsignal(signal.SIGTERM) is sigterm_before  # put back as it was


# A learning rate of 1e6 drives every learner's losses and weights to NaN or inf within a few updates.
NAN = {
    "ppo": ["--env", "Pendulum-v1", "--learning-rate", "1e6", "--total-timesteps", "4096"],
    "reinforce": ["--env", "Pendulum-v1", "--learning-rate", "1e6", "--total-timesteps", "4000", "--batch-steps", "1000"],
    "awr": ["--env", "Pendulum-v1", "--learning-rate", "1e6", "--total-timesteps", "512", "--samples-per-iter", "256",
            "--value-steps", "20", "--policy-steps", "20"],
    "soft_q": ["--env", "Pendulum-v1", "--learning-rate", "1e6", "--policy-learning-rate", "1e6", "--total-timesteps",
               "1200", "--learning-starts", "200"],
    "bc": ["--env", "Pendulum-v1", "--learning-rate", "1e6", "--train-steps", "500", "--val-every", "100"],
    "dagger": ["--env", "Pendulum-v1", "--learning-rate", "1e6", "--rounds", "1", "--episodes-per-round", "1",
               "--train-steps", "100"],
    "gail": ["--env", "Pendulum-v1", "--learning-rate", "1e6", "--total-timesteps", "2048", "--num-steps", "1024"],
    "gcl": ["--env", "Pendulum-v1", "--learning-rate", "1e6", "--total-timesteps", "2048", "--num-steps", "1024"],
    "mppi": ["--env", "Pendulum-v1", "--model", "learned", "--model-learning-rate", "1e6", "--total-timesteps", "40",
             "--random-steps", "20", "--refit-every", "20", "--num-samples", "20"],
}


@pytest.mark.parametrize("name", sorted(NAN))
def test_a_diverging_run_stops_with_one_line_naming_the_value_and_the_step(tmp_path, name):
    result = run_script(f"{name}.py", *NAN[name], "--runs-dir", str(tmp_path))
    line = error_line(result, f"{name}.py")
    assert "became non-finite (NaN or inf) at step " in line
    files = os.listdir(only_run_dir(tmp_path))
    assert "model.pt" not in files and "summary.json" not in files and not [f for f in files if ".tmp" in f]


def test_a_diverging_run_keeps_its_last_good_checkpoint(tmp_path, monkeypatch):
    """Checkpoints every 128 steps, then NaN weights in the fourth iteration (by hand: a diverging learning rate would
    not write a good checkpoint first). The checkpoint of step 384 must stay, and the line must point at it."""
    import ppo
    args = tyro.cli(ppo.Args, args=[*RESUMABLE["ppo"][0], "--checkpoint-every", "128", "--runs-dir", str(tmp_path)])
    real, calls = ppo.numpy_weights, []

    def poisoned(actor):
        calls.append(1)
        if len(calls) == 4:  # the fourth iteration's update diverges
            with torch.no_grad():
                actor[0].weight.fill_(float("nan"))
        return real(actor)

    monkeypatch.setattr(ppo, "numpy_weights", poisoned)
    with pytest.raises(ppo.UserError, match=r"at step 512; stopped: the last good checkpoint is .*checkpoint.pt"):
        ppo.main(args)
    run_dir = only_run_dir(tmp_path)
    state = torch.load(os.path.join(run_dir, "checkpoint.pt"), weights_only=False)
    assert state["global_step"] == 384
    assert all(torch.isfinite(v).all() for v in state["agent"].values())


SCRIPTS = sorted(LONG)


@pytest.mark.parametrize("name", SCRIPTS)
def test_bad_resume_requests_get_one_line(tmp_path, name):
    script = importlib.import_module(name)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with pytest.raises(script.UserError, match="holds no checkpoint.pt"):
        script.main(script.Args(resume=str(run_dir)))
    (run_dir / "checkpoint.pt").write_bytes(b"not a checkpoint")
    (run_dir / "args.json").write_text("{}")
    with pytest.raises(script.UserError, match="cannot resume from"):
        script.main(script.Args(resume=str(run_dir)))
    with pytest.raises(script.UserError, match="drop --seed"):
        script.main(script.Args(resume=str(run_dir), seed=3))
    torch.save({"script": "another.py"}, run_dir / "checkpoint.pt")  # another script's run
    with pytest.raises(script.UserError, match=f"not a checkpoint written by {name}.py"):
        script.main(script.Args(resume=str(run_dir)))
    (run_dir / "model.pt").write_bytes(b"")
    (run_dir / "checkpoint.pt").unlink()
    with pytest.raises(script.UserError, match="finished run"):
        script.main(script.Args(resume=str(run_dir)))


@pytest.mark.parametrize("name", SCRIPTS)
def test_a_checkpoint_that_cannot_be_read_leaves_no_run_directory(tmp_path, name):
    script = importlib.import_module(name)
    argv = [a for a in LONG[name]]
    args = tyro.cli(script.Args, args=[*argv, "--checkpoint", str(tmp_path / "missing.pt"),
                                       "--runs-dir", str(tmp_path / "runs")])
    with pytest.raises(script.UserError):
        script.main(args)
    assert not os.path.exists(tmp_path / "runs") or os.listdir(tmp_path / "runs") == []


def test_an_interrupted_expert_export_leaves_no_temporary_file(tmp_path, monkeypatch):
    import ppo
    folder = tmp_path / "expert"

    def interrupted(*a, **k):
        raise KeyboardInterrupt
    args = tyro.cli(ppo.Args, args=[*RESUMABLE["ppo"][0], "--eval-episodes", "1", "--save-expert", str(folder),
                                    "--runs-dir", str(tmp_path / "runs")])
    real = ppo.run_episodes
    monkeypatch.setattr(ppo, "run_episodes", lambda *a, **k: (interrupted() if a[2] == args.expert_episodes
                                                               else real(*a, **k)))
    with pytest.raises(KeyboardInterrupt):
        ppo.main(args)
    assert os.listdir(folder) == []
