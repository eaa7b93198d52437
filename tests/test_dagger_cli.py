"""dagger.py end to end through its command line: tiny runs, the β-mixture in the real loop, clear errors."""
import os
import shutil

import numpy as np
import pytest

import dagger
from cli_helpers import ROOT, check_run_dir, error_line as _error_line, run_script


def run_cli(*argv):
    return run_script("dagger.py", *argv)


def error_line(result):
    return _error_line(result, "dagger.py")


TINY = ["--rounds", "2", "--episodes-per-round", "1", "--train-steps", "30", "--eval-episodes", "2"]


def test_help_works():
    result = run_cli("--help")
    assert result.returncode == 0
    assert "--beta-schedule" in result.stdout and "--rounds" in result.stdout and "--expert" in result.stdout


@pytest.mark.parametrize("env_id,extra", [
    ("CartPole-v1", []),
    ("InvertedPendulum-v4", ["--loss", "nll"]),
    ("Pendulum-v1", ["--subsample", "7"]),
])
def test_tiny_run_writes_the_run_directory(tmp_path, env_id, extra):
    result = run_cli("--env", env_id, "--runs-dir", str(tmp_path), *TINY, *extra)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("eval: ")
    summary = check_run_dir(tmp_path, env_id, "dagger.py", eval_episodes=2)
    rounds = summary["rounds"]
    assert [r["round"] for r in rounds] == [1, 2, 3]  # N = 2 rounds of training, and the validation roll-out
    assert rounds[0]["beta"] == 1.0 and rounds[0]["expert_action_fraction"] == 1.0 and rounds[0]["disagreement"] is None
    assert rounds[1]["beta"] == 0.0 and rounds[1]["expert_action_fraction"] == 0.0
    # D grows by each round's labels; the last roll-out only validates
    assert rounds[1]["dataset_size"] == rounds[0]["new_labels"] + rounds[1]["new_labels"] == summary["expert_labels"]
    assert summary["validation_labels"] == rounds[2]["new_labels"]
    assert summary["best_round"] in (2, 3)
    assert summary["best_round"] == 2 + int(np.argmin([rounds[1]["disagreement"], rounds[2]["disagreement"]]))
    if "--subsample" in extra:  # every 7th of each 200-step Pendulum episode
        assert all(28 <= r["new_labels"] <= 29 for r in rounds)


def test_the_mixture_in_the_loop_lets_the_expert_act_with_probability_beta(tmp_path):
    # exponential schedule, p = 0.5: round 2 runs π_2 = ½π* + ½π̂_2 over 2 x 500 CartPole steps (the expert and any
    # learner good enough keep the pole up) or fewer; the expert's share is Binomial(steps, ½)/steps.
    summary = dagger.main(dagger.Args(env="CartPole-v1", rounds=1, episodes_per_round=2, train_steps=300,
                                      beta_schedule="exponential", beta_p=0.5, eval_episodes=0,
                                      runs_dir=str(tmp_path)))
    second = summary["rounds"][1]
    assert second["beta"] == 0.5
    steps = second["new_labels"]
    assert steps >= 200
    assert abs(second["expert_action_fraction"] - 0.5) <= 4 * np.sqrt(0.25 / steps)


@pytest.mark.parametrize("argv,needle", [
    (["--env", "NoSuchEnv-v0"], "NoSuchEnv-v0"),
    (["--env", "Acrobot-v1"], "no expert policy at"),
    (["--env", "InvertedPendulum-v4", "--expert", os.path.join(ROOT, "experts", "CartPole-v1", "policy.pt2")],
     "is the expert of CartPole-v1"),
    (["--env", "CartPole-v1", "--loss", "mse"], "discrete actions"),
    (["--rounds", "0"], "--rounds"),
    (["--beta-p", "1.5"], "--beta-p"),
    (["--subsample", "0"], "--subsample"),
    (["--checkpoint", "no/such/model.pt"], "does not exist"),
])
def test_bad_input_gives_one_clear_line(argv, needle):
    assert needle in error_line(run_cli(*argv))


def test_an_expert_that_does_not_fit_the_env_is_refused(tmp_path):
    # Copied alone (no demos.npz beside it), only the shapes can tell: CartPole's expert returns discrete actions.
    shutil.copy(os.path.join(ROOT, "experts", "CartPole-v1", "policy.pt2"), tmp_path / "policy.pt2")
    line = error_line(run_cli("--env", "InvertedPendulum-v4", "--expert", str(tmp_path / "policy.pt2")))
    assert "do not fit InvertedPendulum-v4's action space" in line
    assert line.endswith("python ppo.py --env InvertedPendulum-v4 --save-expert experts/InvertedPendulum-v4")


def test_checkpoint_reproduces_the_evaluation(tmp_path):
    trained = dagger.main(dagger.Args(env="CartPole-v1", rounds=1, episodes_per_round=1, train_steps=40,
                                      eval_episodes=2, runs_dir=str(tmp_path / "train")))
    model = os.path.join(trained["run_dir"], "model.pt")
    reloaded = dagger.main(dagger.Args(env="CartPole-v1", checkpoint=model, eval_episodes=2,
                                       runs_dir=str(tmp_path / "eval")))
    assert reloaded["eval_returns"] == trained["eval_returns"] and reloaded["env_steps"] == 0
    line = _error_line(run_script("bc.py", "--env", "CartPole-v1", "--checkpoint", model,
                                  "--runs-dir", str(tmp_path / "x")), "bc.py")
    assert "not a model.pt written by bc.py" in line
