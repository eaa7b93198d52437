"""reinforce.py end to end through its command line: tiny runs, clear errors, saving and reloading."""
import json
import os

import pytest

import reinforce
from cli_helpers import check_run_dir, error_line as _error_line, run_script


def run_cli(*argv):
    return run_script("reinforce.py", *argv)


def error_line(result):
    return _error_line(result, "reinforce.py")


TINY = ["--total-timesteps", "400", "--batch-steps", "200", "--eval-episodes", "2"]


def test_help_works():
    result = run_cli("--help")
    assert result.returncode == 0
    assert "--baseline" in result.stdout and "--returns" in result.stdout and "--batch-steps" in result.stdout


@pytest.mark.parametrize("env_id,extra", [
    ("CartPole-v1", []),
    ("InvertedPendulum-v4", []),
    ("CartPole-v1", ["--returns", "total", "--baseline", "none", "--no-norm-adv", "--gamma", "1.0"]),
    ("CartPole-v1", ["--baseline", "average"]),
    ("CartPole-v1", ["--returns", "total", "--baseline", "average"]),
    ("Pendulum-v1", ["--bootstrap-truncated", "--no-norm-obs"]),
])
def test_tiny_run_writes_the_run_directory(tmp_path, env_id, extra):
    result = run_cli("--env", env_id, "--runs-dir", str(tmp_path), *TINY, *extra)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("eval: ")
    summary = check_run_dir(tmp_path, env_id, "reinforce.py", eval_episodes=2)
    # whole episodes: training ends after the episode that reaches --total-timesteps
    assert 400 <= summary["env_steps"] < 400 + 1000  # (no episode of these envs is longer than 1000 steps)


@pytest.mark.parametrize("argv,needle", [
    (["--env", "NoSuchEnv-v0"], "NoSuchEnv-v0"),
    (["--env", "FrozenLake-v1"], "flat Box"),
    (["--total-timesteps", "10"], "smaller than one batch"),
    (["--gamma", "1.5"], "--gamma"),
    (["--learning-rate", "0"], "--learning-rate"),
    (["--batch-steps", "0"], "--batch-steps"),
    (["--bootstrap-truncated", "--baseline", "average"], "--baseline value"),
    (["--checkpoint", "no/such/model.pt"], "does not exist"),
    (["--runs-dir", "/proc/no/such/folder"], "cannot create folder"),
])
def test_bad_input_gives_one_clear_line(argv, needle):
    assert needle in error_line(run_cli(*argv))


@pytest.mark.parametrize("argv,needle", [(["--baseline", "critic"], "critic"), (["--batch-steps", "many"], "many")])
def test_unparsable_arguments_are_reported_by_tyro_without_traceback(argv, needle):
    result = run_cli(*argv)
    assert result.returncode != 0 and "Traceback" not in result.stderr and needle in result.stderr


def test_checkpoint_reproduces_the_evaluation_and_is_checked(tmp_path):
    trained = reinforce.main(reinforce.Args(env="InvertedPendulum-v4", total_timesteps=2000, batch_steps=1000,
                                            eval_episodes=3, runs_dir=str(tmp_path / "train")))
    model = os.path.join(trained["run_dir"], "model.pt")
    reloaded = reinforce.main(reinforce.Args(env="InvertedPendulum-v4", checkpoint=model, eval_episodes=3,
                                             runs_dir=str(tmp_path / "eval")))
    assert reloaded["eval_returns"] == trained["eval_returns"] and reloaded["env_steps"] == 0
    # another env, and a file that is not a reinforce.py checkpoint, get one line each
    assert "InvertedPendulum-v4" in error_line(run_cli("--env", "Hopper-v4", "--checkpoint", model,
                                                       "--runs-dir", str(tmp_path / "x")))
    # a reinforce.py checkpoint is not ppo.py's (their networks have the same names, so only the label tells)
    ppo_line = _error_line(run_script("ppo.py", "--env", "InvertedPendulum-v4", "--checkpoint", model,
                                      "--runs-dir", str(tmp_path / "z")), "ppo.py")
    assert "not a model.pt written by ppo.py" in ppo_line
    (tmp_path / "bogus.pt").write_bytes(b"not a checkpoint")
    assert "cannot read checkpoint" in error_line(run_cli("--checkpoint", str(tmp_path / "bogus.pt"),
                                                          "--runs-dir", str(tmp_path / "y")))


def test_target_return_stops_training_and_is_recorded(tmp_path):
    # A target every run reaches at once: the first batch's last episode already averages ≥ 1.
    summary = reinforce.main(reinforce.Args(total_timesteps=10_000, batch_steps=200, target_return=1.0,
                                            target_window=1, eval_episodes=1, runs_dir=str(tmp_path)))
    assert summary["steps_to_target"] == summary["env_steps"] < 400
    assert json.load(open(os.path.join(summary["run_dir"], "summary.json")))["steps_to_target"] == summary["env_steps"]


def test_training_is_deterministic_for_a_seed(tmp_path):
    args = dict(total_timesteps=1000, batch_steps=250, eval_episodes=2)
    a = reinforce.main(reinforce.Args(runs_dir=str(tmp_path / "a"), **args))
    b = reinforce.main(reinforce.Args(runs_dir=str(tmp_path / "b"), **args))
    assert a["eval_returns"] == b["eval_returns"] and a["train_return_last100"] == b["train_return_last100"]
