"""mppi.py end to end through its command line: both models at a tiny budget, clear errors, saving and reloading."""
import json
import os

import gymnasium as gym
import numpy as np
import pytest

from cli_helpers import ROOT, check_run_dir, error_line as _error_line, only_run_dir, run_script


def run_cli(*argv):
    return run_script("mppi.py", *argv)


def error_line(result):
    return _error_line(result, "mppi.py")


# a learned model at a tiny budget: 250 steps, two small members, two refits of 40 epochs (one minibatch each):
# enough for the held-out error to beat predicting the mean (0.59; with 2 epochs, 1.17: worse than the mean)
TINY_LEARNED = ["--model", "learned", "--total-timesteps", "250", "--random-steps", "200", "--refit-every", "50",
                "--model-epochs", "40", "--ensemble-size", "2", "--model-hidden-size", "16", "--num-samples", "10",
                "--eval-episodes", "1"]


def test_help_works():
    result = run_cli("--help")
    assert result.returncode == 0
    assert "--num-samples" in result.stdout and "--temperature" in result.stdout and "--model" in result.stdout


@pytest.mark.parametrize("env_id,extra", [
    ("Pendulum-v1", ["--eval-episodes", "1"]),
    ("InvertedPendulum-v4", ["--eval-episodes", "1", "--num-samples", "8", "--horizon", "4"]),
    ("Hopper-v4", ["--eval-episodes", "1", "--num-samples", "4", "--horizon", "3"]),
])
def test_true_model_run_writes_the_run_directory(tmp_path, env_id, extra):
    result = run_cli("--env", env_id, "--runs-dir", str(tmp_path), *extra)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("eval: ")
    summary = check_run_dir(tmp_path, env_id, "mppi.py", eval_episodes=1)
    # nothing is trained with the true model: no environment step before the evaluation
    assert summary["env_steps"] == 0 and summary["model"] == "true"
    assert summary["plan_ms_median"] > 0 and 1 <= summary["ess_mean"]
    with open(os.path.join(only_run_dir(tmp_path), "args.json")) as f:
        args = json.load(f)
    assert args["num_samples"] is not None and args["horizon"] is not None  # the presets are recorded as used


def test_learned_model_run_fits_and_reloads(tmp_path):
    result = run_cli("--runs-dir", str(tmp_path / "train"), *TINY_LEARNED)
    assert result.returncode == 0, result.stderr
    summary = check_run_dir(tmp_path / "train", "Pendulum-v1", "mppi.py", eval_episodes=1)
    assert summary["env_steps"] == 250 and summary["model"] == "learned"
    assert 0 <= summary["model_holdout_mse"] < 1  # better than predicting the mean (1 in standardised units)
    model = os.path.join(summary["run_dir"], "model.pt")
    # the checkpoint's planner settings win over the command line's, and the evaluation replays the same episode
    result = run_cli("--checkpoint", model, "--runs-dir", str(tmp_path / "eval"), "--eval-episodes", "1",
                     "--num-samples", "50", "--ensemble-size", "5")
    assert result.returncode == 0, result.stderr
    (name,) = os.listdir(tmp_path / "eval")
    with open(os.path.join(tmp_path, "eval", name, "summary.json")) as f:
        again = json.load(f)
    assert again["eval_returns"] == summary["eval_returns"] and again["env_steps"] == 0


@pytest.mark.parametrize("argv,needle", [
    (["--env", "NoSuchEnv-v0"], "cannot make environment 'NoSuchEnv-v0'"),
    (["--env", "CartPole-v1"], "needs a 1-D Box action space"),
    (["--env", "HalfCheetah-v4"], "use --model learned"),
    (["--num-samples", "1"], "--num-samples must be at least 2"),
    (["--temperature", "0"], "--temperature must be positive"),
    (["--noise-std", "-1"], "--noise-std must be positive"),
    (["--knots", "-1"], "--knots must be >= 0"),
    (["--hopper-reward", "env"], "--hopper-reward env is for Hopper with --model true"),
    (["--env", "Hopper-v4", "--model", "learned", "--hopper-reward", "env"], "--hopper-reward env is for Hopper"),
    (["--env", "Hopper-v4", "--no-terminal-value"], "--no-terminal-value is for InvertedPendulum"),
    (["--model", "learned", "--num-samples", "12"], "must be a multiple of --ensemble-size"),
    (["--model", "learned", "--total-timesteps", "100"], "must cover the --random-steps"),
    (["--checkpoint", "no/such/model.pt"], "does not exist"),
])
def test_bad_input_gives_one_clear_line(argv, needle, tmp_path):
    assert needle in error_line(run_cli(*argv, "--runs-dir", str(tmp_path)))
    assert not os.listdir(tmp_path)  # refused before a run directory was made


def test_a_checkpoint_of_another_script_or_env_is_refused(tmp_path):
    assert "cannot read checkpoint" in error_line(run_cli("--checkpoint", os.path.join(ROOT, "README.md")))
    result = run_cli("--runs-dir", str(tmp_path / "train"), *TINY_LEARNED)
    assert result.returncode == 0, result.stderr
    model = os.path.join(only_run_dir(tmp_path / "train"), "model.pt")
    assert "not MountainCarContinuous-v0" in error_line(
        run_cli("--env", "MountainCarContinuous-v0", "--checkpoint", model, "--runs-dir", str(tmp_path / "e")))



class UnboundedActionsEnv(gym.Env):
    """A Box env whose actions have no bounds: MPPI's σ (a fraction of the range) and its clipping are undefined."""
    observation_space = gym.spaces.Box(-1.0, 1.0, (2,))
    action_space = gym.spaces.Box(-np.inf, np.inf, (1,))

    def __init__(self, render_mode=None):
        self.render_mode = render_mode

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        return np.zeros(2, np.float32), 0.0, False, False, {}


def test_unbounded_actions_are_refused_before_anything_runs(tmp_path):
    import mppi
    gym.register("UnboundedActionsTest-v0", entry_point=UnboundedActionsEnv, max_episode_steps=10)
    with pytest.raises(mppi.UserError, match="has unbounded actions"):
        mppi.main(mppi.Args(env="UnboundedActionsTest-v0", model="learned", runs_dir=str(tmp_path)))
    assert not os.listdir(tmp_path)
