"""soft_q.py end to end through its command line: the three ways at a tiny budget, clear errors, saving and reloading."""
import json
import os

import pytest

from cli_helpers import ROOT, check_run_dir, error_line as _error_line, only_run_dir, run_script


def run_cli(*argv):
    return run_script("soft_q.py", *argv)


def error_line(result):
    return _error_line(result, "soft_q.py")


TINY = ["--total-timesteps", "300", "--learning-starts", "100", "--batch-size", "16", "--eval-episodes", "2"]


def test_help_works():
    result = run_cli("--help")
    assert result.returncode == 0
    assert "--alpha" in result.stdout and "--svgd-particles" in result.stdout and "--value-particles" in result.stdout


@pytest.mark.parametrize("env_id,mode,extra", [
    ("CartPole-v1", "discrete", []),
    ("Acrobot-v1", "discrete", ["--norm-obs"]),
    ("Pendulum-v1", "continuous", ["--svgd-particles", "4", "--value-particles", "3"]),
    ("InvertedPendulum-v4", "continuous", []),
])
def test_tiny_run_writes_the_run_directory(tmp_path, env_id, mode, extra):
    result = run_cli("--env", env_id, "--runs-dir", str(tmp_path), *TINY, *extra)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("eval: ")
    summary = check_run_dir(tmp_path, env_id, "soft_q.py", eval_episodes=2)
    assert summary["env_steps"] == 300 and summary["mode"] == mode and summary["alpha"] > 0
    # the discrete way also evaluates the Boltzmann policy softmax(Q/α) itself, beside its greedy limit
    assert ("boltzmann_eval_return_mean" in summary) == (mode == "discrete")


def test_tabular_way_plans_on_the_model(tmp_path):
    result = run_cli("--env", "FrozenLake-v1", "--runs-dir", str(tmp_path), "--alpha", "1e-4", "--gamma", "1",
                     "--eval-episodes", "2")
    assert result.returncode == 0, result.stderr
    summary = check_run_dir(tmp_path, "FrozenLake-v1", "soft_q.py", eval_episodes=2)
    assert summary["mode"] == "tabular" and summary["env_steps"] == 0 and summary["horizon"] == 100
    # α → 0: the soft value is the hard one, and the Boltzmann policy is as good as hard value iteration's
    assert 0 <= summary["soft_minus_hard_value"] < 1e-3
    assert summary["soft_policy_return"] == pytest.approx(summary["hard_policy_return"], abs=1e-3)
    assert summary["hard_policy_return"] == pytest.approx(0.744, abs=1e-3)  # FrozenLake 4×4 in 100 steps


@pytest.mark.parametrize("env_id,extra", [("CartPole-v1", []), ("Pendulum-v1", ["--svgd-particles", "4"])])
def test_checkpoint_reloads_the_same_policy(tmp_path, env_id, extra):
    train_dir, eval_dir = tmp_path / "train", tmp_path / "eval"
    result = run_cli("--env", env_id, "--runs-dir", str(train_dir), *TINY, *extra)
    assert result.returncode == 0, result.stderr
    trained = json.load(open(os.path.join(only_run_dir(train_dir), "summary.json")))
    model = os.path.join(only_run_dir(train_dir), "model.pt")
    result = run_cli("--env", env_id, "--checkpoint", model, "--runs-dir", str(eval_dir), "--eval-episodes", "2",
                     "--hidden-sizes", "7", "--alpha", "3")  # the checkpoint's sizes and α win
    assert result.returncode == 0, result.stderr
    reloaded = json.load(open(os.path.join(only_run_dir(eval_dir), "summary.json")))
    assert reloaded["eval_returns"] == trained["eval_returns"] and reloaded["env_steps"] == 0
    assert reloaded.get("boltzmann_eval_return_mean") == trained.get("boltzmann_eval_return_mean")  # seeded sampling
    assert reloaded["alpha"] == trained["alpha"]


@pytest.mark.parametrize("argv,needle", [
    (["--env", "NoSuchEnv-v0"], "NoSuchEnv-v0"),
    (["--env", "Blackjack-v1"], "flat Box"),
    (["--alpha", "0"], "--alpha"),
    (["--gamma", "1.5"], "--gamma"),
    (["--svgd-particles", "3"], "--svgd-particles"),
    (["--tau", "0"], "--tau"),
    (["--batch-size", "0"], "--batch-size"),
    (["--buffer-size", "10", "--batch-size", "64"], "--buffer-size"),
    (["--hidden-sizes", "0"], "--hidden-sizes"),
    (["--env", "FrozenLake-v1", "--checkpoint", "x.pt"], "no --checkpoint"),
    (["--checkpoint", "no/such/model.pt"], "does not exist"),
    (["--runs-dir", "/proc/no/such/folder"], "cannot create folder"),
])
def test_bad_input_gives_one_clear_line(argv, needle):
    assert needle in error_line(run_cli(*argv))


def test_a_checkpoint_of_another_script_or_env_is_refused(tmp_path):
    assert "cannot read checkpoint" in error_line(run_cli("--checkpoint", os.path.join(ROOT, "README.md")))
    result = run_cli("--env", "Acrobot-v1", "--runs-dir", str(tmp_path), *TINY)
    assert result.returncode == 0, result.stderr
    model = os.path.join(only_run_dir(tmp_path), "model.pt")
    assert "not CartPole-v1" in error_line(run_cli("--checkpoint", model, "--runs-dir", str(tmp_path)))
