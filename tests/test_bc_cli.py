"""bc.py end to end through its command line: tiny runs, clear errors, saving and reloading."""
import os

import pytest

import bc
from cli_helpers import ROOT, check_run_dir, error_line as _error_line, run_script


def run_cli(*argv):
    return run_script("bc.py", *argv)


def error_line(result):
    return _error_line(result, "bc.py")


TINY = ["--num-demos", "3", "--train-steps", "40", "--val-every", "20", "--eval-episodes", "2"]


def test_help_works():
    result = run_cli("--help")
    assert result.returncode == 0
    assert "--num-demos" in result.stdout and "--loss" in result.stdout and "--val-fraction" in result.stdout


@pytest.mark.parametrize("env_id,extra", [
    ("CartPole-v1", []),
    ("InvertedPendulum-v4", []),
    ("InvertedPendulum-v4", ["--loss", "nll", "--subsample", "5"]),
    ("Pendulum-v1", ["--val-fraction", "0", "--num-demos", "1"]),
])
def test_tiny_run_writes_the_run_directory(tmp_path, env_id, extra):
    result = run_cli("--env", env_id, "--runs-dir", str(tmp_path), *TINY, *extra)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("eval: ")
    summary = check_run_dir(tmp_path, env_id, "bc.py", eval_episodes=2)
    assert summary["env_steps"] == 0  # BC never steps the environment to train
    pairs = summary["train_pairs"] + summary["val_pairs"]
    assert pairs == summary["expert_labels"]
    if "--subsample" in extra:
        assert 3 * 1000 / 5 - 3 <= pairs <= 3 * 1000 / 5 + 3  # every 5th of 3 x 1000 steps
    if env_id == "Pendulum-v1":
        assert summary["val_pairs"] == 0 and summary["expert_fraction"] is None  # negative returns: no fraction
    else:
        assert summary["val_pairs"] > 0 and summary["expert_return"] > 0


@pytest.mark.parametrize("argv,needle", [
    (["--env", "NoSuchEnv-v0"], "NoSuchEnv-v0"),
    (["--env", "Acrobot-v1"], "no expert demonstrations at"),
    (["--env", "InvertedPendulum-v4", "--demos", os.path.join(ROOT, "experts", "CartPole-v1", "demos.npz")],
     "holds demonstrations of CartPole-v1, not InvertedPendulum-v4"),
    (["--env", "CartPole-v1", "--loss", "mse"], "discrete actions"),
    (["--num-demos", "26"], "holds only 25 episodes"),
    (["--num-demos", "1"], "--val-fraction 0"),
    (["--val-fraction", "1"], "--val-fraction"),
    (["--subsample", "0"], "--subsample"),
    (["--log-std-min", "3"], "--log-std-min"),
    (["--checkpoint", "no/such/model.pt"], "does not exist"),
    (["--runs-dir", "/proc/no/such/folder"], "cannot create folder"),
])
def test_bad_input_gives_one_clear_line(argv, needle):
    assert needle in error_line(run_cli(*argv))


def test_missing_expert_names_the_command_that_makes_it():
    line = error_line(run_cli("--env", "Acrobot-v1"))
    assert line.endswith("make one with: python ppo.py --env Acrobot-v1 --save-expert experts/Acrobot-v1")


def test_checkpoint_reproduces_the_evaluation_and_is_checked(tmp_path):
    trained = bc.main(bc.Args(env="InvertedPendulum-v4", num_demos=2, train_steps=50, val_every=25, loss="nll",
                              eval_episodes=3, runs_dir=str(tmp_path / "train")))
    model = os.path.join(trained["run_dir"], "model.pt")
    reloaded = bc.main(bc.Args(env="InvertedPendulum-v4", checkpoint=model, eval_episodes=3,
                               runs_dir=str(tmp_path / "eval")))
    assert reloaded["eval_returns"] == trained["eval_returns"]
    assert "InvertedPendulum-v4" in error_line(run_cli("--env", "Hopper-v4", "--checkpoint", model,
                                                       "--runs-dir", str(tmp_path / "x")))
    # a bc.py checkpoint is not dagger.py's, and the other way round
    line = _error_line(run_script("dagger.py", "--env", "InvertedPendulum-v4", "--checkpoint", model,
                                  "--runs-dir", str(tmp_path / "y")), "dagger.py")
    assert "not a model.pt written by dagger.py" in line
    (tmp_path / "bogus.pt").write_bytes(b"not a checkpoint")
    assert "cannot read checkpoint" in error_line(run_cli("--env", "InvertedPendulum-v4", "--checkpoint",
                                                          str(tmp_path / "bogus.pt"), "--runs-dir", str(tmp_path / "z")))


def test_same_seed_same_policy(tmp_path):
    args = dict(env="InvertedPendulum-v4", num_demos=3, train_steps=60, val_every=20, eval_episodes=2)
    first = bc.main(bc.Args(**args, runs_dir=str(tmp_path / "a")))
    second = bc.main(bc.Args(**args, runs_dir=str(tmp_path / "b")))
    assert first["best_val_loss"] == second["best_val_loss"] and first["eval_returns"] == second["eval_returns"]
