"""gail.py end to end through its command line: tiny runs on discrete and continuous actions, clear errors for a
missing or mismatched expert, and --checkpoint."""
import dataclasses
import os

import numpy as np
import pytest
import tyro

import gail
from cli_helpers import ROOT, check_run_dir, error_line as _error_line, run_script


def run_cli(*argv):
    return run_script("gail.py", *argv)


def error_line(result):
    return _error_line(result, "gail.py")


TINY = ["--total-timesteps", "256", "--num-steps", "128", "--num-minibatches", "4", "--disc-minibatches", "4",
        "--update-epochs", "1", "--eval-episodes", "2"]


def test_help_works():
    result = run_cli("--help")
    assert result.returncode == 0
    assert "--reward-form" in result.stdout and "--grad-penalty" in result.stdout and "--num-demos" in result.stdout


@pytest.mark.parametrize("env_id,extra", [
    ("CartPole-v1", ["--num-demos", "4", "--eval-at-steps", "128"]),
    ("InvertedPendulum-v4", ["--reward-form", "negative"]),
    ("Pendulum-v1", ["--reward-form", "logit", "--grad-penalty", "10", "--subsample", "20", "--num-envs", "2"]),
])
def test_tiny_run_writes_the_run_directory(tmp_path, env_id, extra):
    result = run_cli("--env", env_id, "--runs-dir", str(tmp_path), *TINY, *extra)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-1].startswith("eval: ")
    summary = check_run_dir(tmp_path, env_id, "gail.py", eval_episodes=2)
    assert summary["env_steps"] == 256
    assert 0 <= summary["disc_accuracy_expert"] <= 1 and 0 <= summary["disc_accuracy_policy"] <= 1
    assert summary["expert_return"] is not None
    if env_id == "CartPole-v1":  # 4 of the 25 shipped 500-step episodes
        assert summary["expert_pairs"] == 2000 and summary["num_demos"] == 4
        assert summary["expert_fraction"] == pytest.approx(summary["eval_return_mean"] / 500.0)
        assert lines[-3].startswith("fraction of the expert's return (500.0): ")
        # 0 a random policy, 1 the demonstrator: the shipped expert's references on the same 2 evaluation seeds
        reference = gail.demos_metadata(gail.default_expert_path("CartPole-v1", "demos.npz"))["reference"]
        random_return, expert_return = np.mean(reference["random_returns"][:2]), np.mean(reference["expert_returns"][:2])
        assert summary["normalized_score"] == pytest.approx(
            (summary["eval_return_mean"] - random_return) / (expert_return - random_return))
        assert lines[-2] == f"normalised score (random policy 0, demonstrator 1): {summary['normalized_score']:.3f}"
        (mid,) = summary["eval_history"]  # the evaluation after the first batch of 128 steps
        assert mid["env_steps"] == 128 and mid["expert_fraction"] == pytest.approx(mid["eval_return_mean"] / 500.0)
    else:
        assert summary["eval_history"] == []
    if env_id == "Pendulum-v1":  # every 20th step of 25 × 200 steps; a negative expert return has no fraction
        assert summary["expert_pairs"] == 250 and summary["expert_fraction"] is None
        assert summary["reward_form"] == "logit"


@pytest.mark.parametrize("argv,needle", [
    (["--env", "NoSuchEnv-v0"], "NoSuchEnv-v0"),
    (["--env", "Acrobot-v1"], "no expert demonstrations at"),
    (["--env", "InvertedPendulum-v4", "--demos", os.path.join(ROOT, "experts", "CartPole-v1", "demos.npz")],
     "holds demonstrations of CartPole-v1, not InvertedPendulum-v4"),
    (["--env", "CartPole-v1", "--demos", os.path.join(ROOT, "README.md")], "is not a demos.npz"),
    (["--env", "CartPole-v1", "--num-demos", "26"], "holds only 25 episodes"),
    (["--num-demos", "0"], "--num-demos"),
    (["--disc-minibatches", "3"], "--disc-minibatches (3) must divide"),
    (["--grad-penalty", "-1"], "--grad-penalty"),
    (["--eval-at-steps", "0"], "--eval-at-steps"),
    (["--env", "Pendulum-v1", "--subsample", "201"], "longer than the shortest of the 25 demos (200 steps)"),
    (["--total-timesteps", "4096", "--eval-at-steps", "2048", "5000"], "--eval-at-steps"),
    (["--env", "CartPole-v1", "--total-timesteps", "100"], "smaller than one batch"),
    (["--checkpoint", "no/such/model.pt"], "does not exist"),
])
def test_bad_input_gives_one_clear_line(argv, needle):
    assert needle in error_line(run_cli(*argv))


def test_a_missing_expert_says_how_to_make_one(tmp_path):
    line = error_line(run_cli("--env", "CartPole-v1", "--demos", str(tmp_path / "demos.npz")))
    assert line.endswith("make one with: python ppo.py --env CartPole-v1 --save-expert experts/CartPole-v1")


def test_checkpoint_reproduces_the_evaluation(tmp_path):
    args = dict(env="CartPole-v1", total_timesteps=256, num_steps=128, num_minibatches=4, disc_minibatches=4,
                update_epochs=1, eval_episodes=2)
    trained = gail.main(gail.Args(**args, runs_dir=str(tmp_path / "train")))
    model = os.path.join(trained["run_dir"], "model.pt")
    reloaded = gail.main(gail.Args(env="CartPole-v1", checkpoint=model, eval_episodes=2, runs_dir=str(tmp_path / "eval")))
    assert reloaded["eval_returns"] == trained["eval_returns"] and reloaded["env_steps"] == 0
    assert reloaded["expert_return"] == trained["expert_return"] == 500.0
    line = _error_line(run_script("bc.py", "--env", "CartPole-v1", "--checkpoint", model,
                                  "--runs-dir", str(tmp_path / "x")), "bc.py")
    assert "not a model.pt written by bc.py" in line
    line = error_line(run_cli("--env", "InvertedPendulum-v4", "--checkpoint", model, "--runs-dir", str(tmp_path / "y")))
    assert "was trained on CartPole-v1" in line


def test_a_relu_policy_reloads_with_relu_layers(tmp_path):
    args = dict(env="Pendulum-v1", total_timesteps=256, num_steps=128, num_minibatches=4, disc_minibatches=4,
                update_epochs=1, eval_episodes=2, activation="relu", init_log_std=-1.0, ortho_init=False)
    trained = gail.main(gail.Args(**args, runs_dir=str(tmp_path / "train")))
    model = os.path.join(trained["run_dir"], "model.pt")
    reloaded = gail.main(gail.Args(env="Pendulum-v1", checkpoint=model, eval_episodes=2, runs_dir=str(tmp_path / "eval")))
    assert reloaded["eval_returns"] == trained["eval_returns"]


def test_presets_apply_by_env_and_a_flag_always_wins():
    ant = gail.parse_args(["--env", "Ant-v4"])
    assert (ant.preset, ant.init_log_std, ant.grad_penalty) == ("Ant", -1.0, 10.0)
    mine = gail.parse_args(["--env", "Ant-v5", "--grad-penalty", "0"])  # v5 shares v4's entry; the flag wins
    assert (mine.preset, mine.init_log_std, mine.grad_penalty) == ("Ant", -1.0, 0.0)
    for argv in (["--env", "Ant-v4", "--preset", "none"], ["--env", "Hopper-v4"]):  # the plain Args defaults
        args = gail.parse_args(argv)
        assert gail.resolve_preset(args) is None and args.preset == "none"
        assert (args.init_log_std, args.grad_penalty) == (0.0, 0.0)
    from_python = gail.Args(env="HalfCheetah-v4")
    assert gail.resolve_preset(from_python) == "HalfCheetah" and from_python.init_log_std == -1.0
    for name, preset in gail.PRESETS.items():
        assert preset["source"] and set(preset["args"]) <= {f.name for f in dataclasses.fields(gail.Args)}, name


def test_async_envs_give_the_same_run_as_sync_ones(tmp_path):
    """--vector-env async: each env in its own process, the same trajectories (the truncations at 200 steps
    included), so the same evaluation."""
    argv = ["--env", "Pendulum-v1", "--total-timesteps", "512", "--num-envs", "2", "--num-steps", "128",
            "--num-minibatches", "2", "--disc-minibatches", "2", "--update-epochs", "1", "--num-demos", "2", "--eval-episodes", "2"]
    runs = {kind: gail.main(tyro.cli(gail.Args, args=[*argv, "--vector-env", kind, "--runs-dir", str(tmp_path / kind)]))
            for kind in ("sync", "async")}
    assert runs["sync"]["eval_returns"] == runs["async"]["eval_returns"]
    assert runs["sync"]["train_return_last100"] == runs["async"]["train_return_last100"]
