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

from cli_helpers import ROOT, error_line, only_run_dir, run_script

# script -> (a short run's command line, a function the loop calls once per iteration, the call that sends SIGINT)
RESUMABLE = {
    "ppo": (["--env", "Pendulum-v1", "--total-timesteps", "640", "--num-envs", "2", "--num-steps", "64",
             "--num-minibatches", "2", "--update-epochs", "2"], "numpy_weights", 3),
    # (continuous: the SVGD sampler, both optimisers and the replay buffer; the stop lands between two updates)
    "soft_q": (["--env", "Pendulum-v1", "--total-timesteps", "300", "--learning-starts", "100", "--batch-size", "16",
                "--buffer-size", "250"], "normalize_obs", 400),
    "gail": (["--env", "Pendulum-v1", "--total-timesteps", "640", "--num-envs", "2", "--num-steps", "64",
              "--num-minibatches", "2", "--disc-minibatches", "2", "--update-epochs", "2", "--num-demos", "2"],
             "numpy_weights", 3),
    # (the background set of past policies' batches travels too)
    "gcl": (["--env", "Pendulum-v1", "--total-timesteps", "640", "--num-envs", "2", "--num-steps", "64",
             "--num-minibatches", "2", "--update-epochs", "2", "--num-demos", "2", "--irl-steps", "2",
             "--segment-length", "10"], "numpy_weights", 5),
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
    script = importlib.import_module(name)
    argv, hook, stop_at = RESUMABLE[name]
    cli = [*argv, "--eval-episodes", "2"]
    whole = script.main(tyro.cli(script.Args, args=[*cli, "--runs-dir", str(tmp_path / "whole")]))

    real, calls = getattr(script, hook), []

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
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is gone after the loop

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
