"""maxent_irl.py end to end through its command line: tiny runs, clear errors, saving and reloading."""
import os

import numpy as np
import pytest
import torch

import maxent_irl
from cli_helpers import check_run_dir, error_line as _error_line, run_script


def run_cli(*argv):
    return run_script("maxent_irl.py", *argv)


def error_line(result):
    return _error_line(result, "maxent_irl.py")


TINY = ["--iterations", "4", "--log-every", "2", "--num-demos", "5", "--eval-episodes", "3"]


def test_help_works():
    result = run_cli("--help")
    assert result.returncode == 0
    assert "--backup" in result.stdout and "--features" in result.stdout and "--reward-model" in result.stdout


@pytest.mark.parametrize("env_id,extra", [
    ("gridworld", []),
    ("gridworld", ["--features", "coords", "--reward-model", "mlp", "--slip", "0.1", "--grid-size", "5"]),
    ("FrozenLake-v1", ["--backup", "ziebart", "--horizon", "20"]),
    ("FrozenLake8x8-v1", []),
    ("gridworld", ["--method", "max-margin", "--margin", "uniform", "--expert-noise", "0.2"]),
    ("FrozenLake-v1", ["--method", "projection", "--features", "coords"]),
    ("Taxi-v4", ["--reward-on", "transition", "--horizon", "30"]),
    ("FrozenLake-v1", ["--reward-on", "state-action", "--features", "coords", "--reward-model", "mlp"]),
])
def test_tiny_run_writes_the_run_directory(tmp_path, env_id, extra):
    result = run_cli("--env", env_id, "--runs-dir", str(tmp_path), *TINY, *extra)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("eval: ")
    summary = check_run_dir(tmp_path, env_id, "maxent_irl.py", eval_episodes=3)
    assert summary["env_steps"] == 0
    assert summary["evd"] == pytest.approx(summary["expert_return"] - summary["learned_policy_return"])
    assert [h["iteration"] for h in summary["history"]] == [2, 4]
    ckpt = torch.load(os.path.join(summary["run_dir"], "model.pt"), weights_only=True)
    horizon = summary["horizon"]
    assert ckpt["policy"].shape == (horizon, ckpt["reward"].shape[0])
    np.testing.assert_allclose(ckpt["log_pi"].exp().sum(-1).numpy(), 1.0, atol=1e-9)


@pytest.mark.parametrize("argv,needle", [
    (["--env", "NoSuchEnv-v0"], "NoSuchEnv-v0"),
    (["--env", "CartPole-v1"], "does not expose a tabular model"),
    (["--env", "Taxi-v4"], "depends on the transition"),
    (["--env", "FrozenLake-v1", "--horizon", "102"], "longer than FrozenLake-v1's time limit"),
    (["--slip", "1.5"], "--slip"),
    (["--horizon", "1"], "--horizon"),
    (["--num-demos", "0"], "--num-demos"),
    (["--learning-rate", "0"], "--learning-rate"),
    (["--grid-size", "1"], "--grid-size"),
    (["--checkpoint", "no/such/model.pt"], "does not exist"),
    (["--method", "max-margin", "--reward-model", "mlp"], "--reward-model linear"),
    (["--method", "projection", "--backup", "ziebart"], "--backup is MaxEnt's"),
    (["--expert-noise", "1.5"], "--expert-noise"),
    (["--method", "max-margin", "--reward-on", "transition"], "use --reward-on state"),
    (["--env", "Taxi-v4", "--features", "coords", "--reward-on", "transition"], "use --features onehot"),
    (["--slack-c", "0"], "--slack-c"),
    (["--runs-dir", "/proc/no/such/folder"], "cannot create folder"),
])
def test_bad_input_gives_one_clear_line(argv, needle):
    assert needle in error_line(run_cli(*argv))


def test_checkpoint_reproduces_the_evaluation_and_is_checked(tmp_path):
    args = dict(env="gridworld", grid_size=5, iterations=20, num_demos=20, eval_episodes=5, horizon=12)
    trained = maxent_irl.main(maxent_irl.Args(**args, runs_dir=str(tmp_path / "train")))
    model = os.path.join(trained["run_dir"], "model.pt")
    # the checkpoint brings its horizon (12, not the default 2N = 10)
    reloaded = maxent_irl.main(maxent_irl.Args(env="gridworld", grid_size=5, checkpoint=model, eval_episodes=5,
                                               runs_dir=str(tmp_path / "eval")))
    assert reloaded["eval_returns"] == trained["eval_returns"]
    assert reloaded["learned_policy_return"] == pytest.approx(trained["learned_policy_return"])
    assert "--grid-size 5" in error_line(run_cli("--checkpoint", model, "--runs-dir", str(tmp_path / "x")))
    assert "--features onehot" in error_line(run_cli("--grid-size", "5", "--features", "coords", "--checkpoint", model,
                                                     "--runs-dir", str(tmp_path / "y")))
    line = _error_line(run_script("bc.py", "--env", "CartPole-v1", "--checkpoint", model,
                                  "--runs-dir", str(tmp_path / "z")), "bc.py")
    assert "not a model.pt written by bc.py" in line
    (tmp_path / "bogus.pt").write_bytes(b"not a checkpoint")
    assert "cannot read checkpoint" in error_line(run_cli("--checkpoint", str(tmp_path / "bogus.pt"),
                                                          "--runs-dir", str(tmp_path / "w")))


def test_same_seed_same_reward(tmp_path):
    args = dict(env="FrozenLake-v1", iterations=5, num_demos=10, eval_episodes=2)
    first = maxent_irl.main(maxent_irl.Args(**args, runs_dir=str(tmp_path / "a")))
    second = maxent_irl.main(maxent_irl.Args(**args, runs_dir=str(tmp_path / "b")))
    assert first["history"] == second["history"] and first["eval_returns"] == second["eval_returns"]


def test_a_projection_mixture_is_saved_and_reloaded_with_its_weights(tmp_path):
    """Projection's answer is a mixture: model.pt keeps every policy and its weight (summing to 1), the summary's
    exact return is the weighted sum of the policies' returns, and --checkpoint reproduces the evaluation."""
    trained = maxent_irl.main(maxent_irl.Args(method="projection", grid_size=5, iterations=30, num_demos=20,
                                              eval_episodes=6, runs_dir=str(tmp_path / "train")))
    model = torch.load(os.path.join(trained["run_dir"], "model.pt"), weights_only=True)
    policies, weights = model["mixture"]["policies"], model["mixture"]["weights"]
    assert policies.shape[0] == weights.shape[0] == trained["policies_found"] and model["method"] == "projection"
    assert (weights >= 0).all() and float(weights.sum()) == pytest.approx(1.0)
    env = maxent_irl.GridWorld(5)
    mdp = maxent_irl.tabular_model(env, "gridworld")
    exact = sum(float(lam) * maxent_irl.policy_return(pi, torch.as_tensor(mdp["reward"]),
                                                       torch.as_tensor(mdp["next_state"]),
                                                       torch.as_tensor(mdp["prob"]), torch.as_tensor(mdp["p0"]))
                for pi, lam in zip(policies, weights))
    assert trained["learned_policy_return"] == pytest.approx(exact)
    reloaded = maxent_irl.main(maxent_irl.Args(grid_size=5, checkpoint=os.path.join(trained["run_dir"], "model.pt"),
                                               eval_episodes=6, runs_dir=str(tmp_path / "eval")))
    assert reloaded["method"] == "projection" and reloaded["eval_returns"] == trained["eval_returns"]
    assert reloaded["learned_policy_return"] == pytest.approx(trained["learned_policy_return"])


def test_a_transition_reward_is_saved_and_reloaded(tmp_path):
    """model.pt of --reward-on transition holds r_θ(s, a, s'_k) (S, A, K) with the successor of each entry; --checkpoint
    rebuilds the features from the arguments and reproduces the evaluation; another --reward-on is one line."""
    args = dict(env="Taxi-v4", reward_on="transition", horizon=30, iterations=5, num_demos=10, eval_episodes=4)
    trained = maxent_irl.main(maxent_irl.Args(**args, runs_dir=str(tmp_path / "train")))
    path = os.path.join(trained["run_dir"], "model.pt")
    model = torch.load(path, weights_only=True)
    assert model["reward"].shape == model["next_state"].shape == (500, 6, 1)
    reloaded = maxent_irl.main(maxent_irl.Args(env="Taxi-v4", reward_on="transition", checkpoint=path,
                                               eval_episodes=4, runs_dir=str(tmp_path / "eval")))
    assert reloaded["eval_returns"] == trained["eval_returns"]
    assert reloaded["learned_policy_return"] == pytest.approx(trained["learned_policy_return"])
    line = error_line(run_cli("--env", "Taxi-v4", "--reward-on", "state-action", "--checkpoint", path,
                              "--runs-dir", str(tmp_path / "x")))
    assert "--reward-on transition" in line
