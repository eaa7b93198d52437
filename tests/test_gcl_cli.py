"""gcl.py end to end through its command line: tiny runs on discrete and continuous actions (with every option of the
reward update), clear errors for a missing or mismatched expert and nonsensical arguments, and --checkpoint."""
import os

import pytest
import tyro

import gcl
from cli_helpers import ROOT, check_run_dir, error_line as _error_line, run_script


def run_cli(*argv):
    return run_script("gcl.py", *argv)


def error_line(result):
    return _error_line(result, "gcl.py")


TINY = ["--total-timesteps", "256", "--num-steps", "128", "--num-minibatches", "4", "--update-epochs", "1",
        "--irl-steps", "2", "--eval-episodes", "2"]


def test_help_works():
    result = run_cli("--help")
    assert result.returncode == 0
    assert "--segment-length" in result.stdout and "--num-past-policies" in result.stdout
    assert "--demos-in-background" in result.stdout and "--lcr-coef" in result.stdout


@pytest.mark.parametrize("env_id,extra", [
    ("CartPole-v1", ["--num-demos", "4", "--eval-at-steps", "128", "--demos-in-background"]),
    ("InvertedPendulum-v4", ["--segment-length", "5", "--lcr-coef", "1"]),
    ("Pendulum-v1", ["--segment-length", "10", "--num-envs", "2", "--num-past-policies", "1", "--demos-in-background",
                     "--reward-weight-decay", "1e-4"]),
])
def test_tiny_run_writes_the_run_directory(tmp_path, env_id, extra):
    result = run_cli("--env", env_id, "--runs-dir", str(tmp_path), *TINY, *extra)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-1].startswith("eval: ")
    summary = check_run_dir(tmp_path, env_id, "gcl.py", eval_episodes=2)
    assert summary["env_steps"] == 256 and summary["expert_return"] is not None
    # the background holds both batches of 128 steps (K = 5 ≥ 2 iterations), cut into whole segments
    assert 1 <= summary["ess"] <= summary["background_segments"]
    if env_id == "CartPole-v1":  # 4 of the 25 shipped 500-step episodes; K = 5 keeps both batches: 256 segments
        assert summary["expert_pairs"] == 2000 and summary["num_demos"] == 4 and summary["background_segments"] == 256
        assert summary["expert_fraction"] == pytest.approx(summary["eval_return_mean"] / 500.0)
        (mid,) = summary["eval_history"]  # the evaluation after the first batch of 128 steps
        assert mid["env_steps"] == 128
    if env_id == "Pendulum-v1":  # one batch of 2 envs × 128 steps: 2 × 12 whole segments of 10 steps
        assert summary["background_segments"] == 24 and summary["segment_length"] == 10
        assert summary["expert_fraction"] is None  # a negative expert return has no fraction


@pytest.mark.parametrize("argv,needle", [
    (["--env", "NoSuchEnv-v0"], "NoSuchEnv-v0"),
    (["--env", "Acrobot-v1"], "no expert demonstrations at"),
    (["--env", "InvertedPendulum-v4", "--demos", os.path.join(ROOT, "experts", "CartPole-v1", "demos.npz")],
     "holds demonstrations of CartPole-v1, not InvertedPendulum-v4"),
    (["--env", "CartPole-v1", "--demos", os.path.join(ROOT, "README.md")], "is not a demos.npz"),
    (["--env", "CartPole-v1", "--num-demos", "26"], "holds only 25 episodes"),
    (["--num-demos", "0"], "--num-demos"),
    (["--segment-length", "0"], "--segment-length must be between 1 and --num-steps"),
    (["--num-steps", "64", "--segment-length", "65"], "--segment-length must be between 1 and --num-steps (64)"),
    (["--env", "Pendulum-v1", "--segment-length", "201"], "longer than every one of the 25 demos (the longest has 200"),
    (["--num-past-policies", "0"], "--num-past-policies"),
    (["--lcr-coef", "-1"], "--lcr-coef"),
    (["--reward-learning-rate", "0"], "--reward-learning-rate"),
    (["--eval-at-steps", "0"], "--eval-at-steps"),
    (["--env", "CartPole-v1", "--total-timesteps", "100"], "smaller than one batch"),
    (["--checkpoint", "no/such/model.pt"], "does not exist"),
])
def test_bad_input_gives_one_clear_line(argv, needle):
    assert needle in error_line(run_cli(*argv))


def test_a_missing_expert_says_how_to_make_one(tmp_path):
    line = error_line(run_cli("--env", "CartPole-v1", "--demos", str(tmp_path / "demos.npz")))
    assert line.endswith("make one with: python ppo.py --env CartPole-v1 --save-expert experts/CartPole-v1")


def test_checkpoint_reproduces_the_evaluation(tmp_path):
    # (ReLU layers: the reloaded agent must be built with the activation it was trained with)
    args = dict(env="Pendulum-v1", total_timesteps=256, num_steps=128, num_minibatches=4, update_epochs=1, irl_steps=1,
                eval_episodes=2, activation="relu")
    trained = gcl.main(gcl.Args(**args, runs_dir=str(tmp_path / "train")))
    model = os.path.join(trained["run_dir"], "model.pt")
    reloaded = gcl.main(gcl.Args(env="Pendulum-v1", checkpoint=model, eval_episodes=2, runs_dir=str(tmp_path / "eval")))
    assert reloaded["eval_returns"] == trained["eval_returns"] and reloaded["env_steps"] == 0
    assert reloaded["expert_return"] == trained["expert_return"]
    line = _error_line(run_script("gail.py", "--env", "Pendulum-v1", "--checkpoint", model,
                                  "--runs-dir", str(tmp_path / "x")), "gail.py")
    assert "not a model.pt written by gail.py" in line
    line = error_line(run_cli("--env", "InvertedPendulum-v4", "--checkpoint", model, "--runs-dir", str(tmp_path / "y")))
    assert "was trained on Pendulum-v1" in line


def test_async_envs_give_the_same_run_as_sync_ones(tmp_path):
    """--vector-env async: each env in its own process, the same trajectories (the truncations at 200 steps
    included), so the same evaluation."""
    argv = ["--env", "Pendulum-v1", "--total-timesteps", "512", "--num-envs", "2", "--num-steps", "128",
            "--num-minibatches", "2", "--irl-steps", "2", "--segment-length", "10", "--update-epochs", "1", "--num-demos", "2", "--eval-episodes", "2"]
    runs = {kind: gcl.main(tyro.cli(gcl.Args, args=[*argv, "--vector-env", kind, "--runs-dir", str(tmp_path / kind)]))
            for kind in ("sync", "async")}
    assert runs["sync"]["eval_returns"] == runs["async"]["eval_returns"]
    assert runs["sync"]["train_return_last100"] == runs["async"]["train_return_last100"]
