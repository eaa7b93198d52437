"""awr.py end to end through its command line: tiny runs online and offline, clear errors, saving and reloading."""
import json
import os

import pytest

from cli_helpers import ROOT, check_run_dir, error_line as _error_line, only_run_dir, run_script


def run_cli(*argv):
    return run_script("awr.py", *argv)


def error_line(result):
    return _error_line(result, "awr.py")


TINY = ["--samples-per-iter", "128", "--value-steps", "3", "--policy-steps", "3", "--batch-size", "32",
        "--eval-episodes", "2"]


def test_help_works():
    result = run_cli("--help")
    assert result.returncode == 0
    assert "--weighting" in result.stdout and "--offline" in result.stdout and "--beta" in result.stdout


@pytest.mark.parametrize("env_id,extra", [
    ("CartPole-v1", []),
    ("InvertedPendulum-v4", []),
    ("Pendulum-v1", ["--weighting", "reward", "--no-norm-obs"]),
    ("CartPole-v1", ["--no-norm-adv", "--beta", "0.05", "--td-lambda", "1.0"]),
])
def test_tiny_online_run_writes_the_run_directory(tmp_path, env_id, extra):
    result = run_cli("--env", env_id, "--runs-dir", str(tmp_path), "--total-timesteps", "256", *TINY, *extra)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("eval: ")
    summary = check_run_dir(tmp_path, env_id, "awr.py", eval_episodes=2)
    # iterations of at least --samples-per-iter (128) steps, each ending with an episode (--whole-episodes)
    assert summary["env_steps"] >= 256 and summary["iterations"] == 2


@pytest.mark.parametrize("env_id,extra", [
    ("CartPole-v1", ["--random-episodes", "3", "--num-demos", "2"]),
    ("InvertedPendulum-v4", ["--num-demos", "1", "--weighting", "reward"]),
])
def test_tiny_offline_run_takes_no_environment_steps(tmp_path, env_id, extra):
    result = run_cli("--env", env_id, "--offline", "--offline-iterations", "2", "--runs-dir", str(tmp_path), *TINY, *extra)
    assert result.returncode == 0, result.stderr
    summary = check_run_dir(tmp_path, env_id, "awr.py", eval_episodes=2)
    assert summary["env_steps"] == 0 and summary["iterations"] == 2
    assert summary["demo_episodes"] == int(extra[extra.index("--num-demos") + 1])
    assert summary["expert_fraction"] == pytest.approx(summary["eval_return_mean"] / summary["demo_return"])
    if "--random-episodes" in extra:
        assert summary["random_episodes"] == 3 and summary["random_return"] < summary["demo_return"]


def test_checkpoint_reloads_the_same_policy(tmp_path):
    train_dir, eval_dir = tmp_path / "train", tmp_path / "eval"
    result = run_cli("--env", "InvertedPendulum-v4", "--runs-dir", str(train_dir), "--total-timesteps", "256", *TINY)
    assert result.returncode == 0, result.stderr
    trained = json.load(open(os.path.join(only_run_dir(train_dir), "summary.json")))
    model = os.path.join(only_run_dir(train_dir), "model.pt")
    result = run_cli("--env", "InvertedPendulum-v4", "--checkpoint", model, "--runs-dir", str(eval_dir),
                     "--eval-episodes", "2", "--hidden-sizes", "7")  # the checkpoint's sizes win
    assert result.returncode == 0, result.stderr
    reloaded = json.load(open(os.path.join(only_run_dir(eval_dir), "summary.json")))
    assert reloaded["eval_returns"] == trained["eval_returns"] and reloaded["env_steps"] == 0


@pytest.mark.parametrize("argv,needle", [
    (["--env", "NoSuchEnv-v0"], "NoSuchEnv-v0"),
    (["--env", "FrozenLake-v1"], "flat Box"),
    (["--total-timesteps", "10"], "smaller than one iteration"),
    (["--beta", "0"], "--beta"),
    (["--gamma", "1.0"], "--gamma"),
    (["--td-lambda", "1.5"], "--td-lambda"),
    (["--weight-clip", "-1"], "--weight-clip"),
    (["--buffer-size", "100"], "--buffer-size"),
    (["--learning-rate", "0"], "--learning-rate"),
    (["--hidden-sizes", "0"], "--hidden-sizes"),
    (["--obs-std-floor", "0"], "--obs-std-floor"),
    (["--clip-obs", "nan"], "--clip-obs"),
    (["--random-episodes", "5"], "add --offline"),
    (["--offline", "--env", "Acrobot-v1"], "no expert demonstrations"),
    (["--offline", "--demos", "experts/Hopper-v4/demos.npz"], "not CartPole-v1"),
    (["--offline", "--demos", "README.md"], "is not a demos.npz"),
    (["--offline", "--num-demos", "26"], "holds only 25 episodes"),
    (["--checkpoint", "no/such/model.pt"], "does not exist"),
    (["--runs-dir", "/proc/no/such/folder"], "cannot create folder"),
])
def test_bad_input_gives_one_clear_line(argv, needle):
    assert needle in error_line(run_cli(*argv))


def test_a_checkpoint_of_another_script_or_env_is_refused(tmp_path):
    result = run_cli("--checkpoint", os.path.join(ROOT, "README.md"))
    assert "cannot read checkpoint" in error_line(result)
    result = run_cli("--env", "InvertedPendulum-v4", "--runs-dir", str(tmp_path), "--total-timesteps", "128", *TINY)
    assert result.returncode == 0, result.stderr
    model = os.path.join(only_run_dir(tmp_path), "model.pt")
    assert "not CartPole-v1" in error_line(run_cli("--checkpoint", model, "--runs-dir", str(tmp_path)))
    other = run_script("reinforce.py", "--env", "InvertedPendulum-v4", "--runs-dir", str(tmp_path / "r"),
                       "--total-timesteps", "200", "--batch-steps", "100", "--eval-episodes", "0")
    assert other.returncode == 0, other.stderr
    reinforce_model = os.path.join(only_run_dir(tmp_path / "r"), "model.pt")
    assert "not a model.pt written by awr.py" in error_line(
        run_cli("--env", "InvertedPendulum-v4", "--checkpoint", reinforce_model, "--runs-dir", str(tmp_path)))
