"""ppo.py end to end through its command line: tiny runs, clear errors, saving and reloading."""
import json
import os

import numpy as np
import pytest
import torch

import ppo
from cli_helpers import check_run_dir, error_line as _error_line, only_run_dir, run_script


def run_cli(*argv):
    return run_script("ppo.py", *argv)


def error_line(result):
    return _error_line(result, "ppo.py")


TINY = ["--total-timesteps", "256", "--num-envs", "2", "--num-steps", "64", "--num-minibatches", "2",
        "--update-epochs", "2", "--eval-episodes", "2"]


def test_help_works():
    result = run_cli("--help")
    assert result.returncode == 0
    assert "--total-timesteps" in result.stdout and "--objective" in result.stdout


@pytest.mark.parametrize("env_id,extra", [("CartPole-v1", []), ("Hopper-v4", []), ("CartPole-v1", ["--objective", "kl"]),
                                          ("Pendulum-v1", ["--objective", "kl", "--no-norm-obs", "--no-norm-reward"])])
def test_tiny_run_writes_the_run_directory(tmp_path, env_id, extra):
    result = run_cli("--env", env_id, "--runs-dir", str(tmp_path), *TINY, *extra)
    assert result.returncode == 0, result.stderr
    summary = check_run_dir(tmp_path, env_id, "ppo.py", eval_episodes=2)
    assert summary["env_steps"] == 256


@pytest.mark.parametrize("argv,needle", [
    (["--env", "NoSuchEnv-v0"], "NoSuchEnv-v0"),
    (["--env", "FrozenLake-v1"], "flat Box"),
    (["--env", "CartPole-v1", "--num-minibatches", "3", "--num-steps", "64"], "--num-minibatches"),
    (["--env", "CartPole-v1", "--total-timesteps", "10"], "smaller than one batch"),
    (["--env", "CartPole-v1", "--gamma", "1.5"], "--gamma"),
    (["--env", "CartPole-v1", "--learning-rate", "-1"], "--learning-rate"),
    (["--env", "CartPole-v1", "--checkpoint", "no/such/model.pt"], "does not exist"),
    (["--env", "CartPole-v1", "--save-expert", "/proc/no/such/folder"], "cannot create folder"),
])
def test_bad_input_gives_one_clear_line(argv, needle):
    assert needle in error_line(run_cli(*argv))


def test_env_with_a_missing_dependency_gives_one_clear_line():
    try:
        import Box2D  # noqa: F401
        pytest.skip("Box2D is installed here, so LunarLander-v3 can be made")
    except ImportError:
        pass
    assert "Box2D is not installed" in error_line(run_cli("--env", "LunarLander-v3"))


@pytest.mark.parametrize("argv,needle", [(["--objective", "trpo"], "trpo"), (["--num-envs", "two"], "two")])
def test_unparsable_arguments_are_reported_by_tyro_without_traceback(argv, needle):
    # tyro, which parses the command line, prints its own short boxed message for values of the wrong type.
    result = run_cli(*argv)
    assert result.returncode != 0 and "Traceback" not in result.stderr and needle in result.stderr


def test_checkpoint_of_another_env_is_rejected(tmp_path):
    assert run_cli("--env", "CartPole-v1", "--runs-dir", str(tmp_path), *TINY).returncode == 0
    model = os.path.join(only_run_dir(tmp_path), "model.pt")
    line = error_line(run_cli("--env", "Acrobot-v1", "--checkpoint", model, "--runs-dir", str(tmp_path / "x")))
    assert "CartPole-v1" in line


def test_a_file_that_is_not_a_checkpoint_gets_one_line(tmp_path):
    (tmp_path / "bogus.pt").write_bytes(b"not a checkpoint")
    assert "cannot read checkpoint" in error_line(run_cli("--env", "CartPole-v1", "--checkpoint", str(tmp_path / "bogus.pt"),
                                                          "--runs-dir", str(tmp_path)))


def test_saved_model_and_exported_expert_reproduce_the_evaluation(tmp_path):
    """Train briefly, then: (1) --checkpoint reloads model.pt and gets the same evaluation returns;
    (2) policy.pt2, loaded with torch.export alone, gets them too; (3) demos.npz is what the policy did."""
    args = ppo.Args(env="Hopper-v4", total_timesteps=4096, num_steps=1024, num_minibatches=8, update_epochs=2,
                    eval_episodes=3, runs_dir=str(tmp_path / "train"), save_expert=str(tmp_path / "expert"),
                    expert_episodes=3)
    trained = ppo.main(args)

    reloaded = ppo.main(ppo.Args(env="Hopper-v4", checkpoint=os.path.join(trained["run_dir"], "model.pt"),
                                 eval_episodes=3, runs_dir=str(tmp_path / "eval")))
    assert reloaded["eval_returns"] == trained["eval_returns"]

    policy = torch.export.load(str(tmp_path / "expert" / "policy.pt2")).module()
    with torch.no_grad():
        batch = policy(torch.zeros(5, 11))  # any batch size
    assert batch.shape == (5, 3)
    exported = ppo.run_episodes(ppo.torch_policy(policy), "Hopper-v4", 3, args.eval_seed)
    np.testing.assert_allclose(exported["episode_returns"], trained["eval_returns"], rtol=1e-6)

    demos = np.load(tmp_path / "expert" / "demos.npz")
    meta = json.loads(str(demos["metadata"]))
    assert meta["env_id"] == "Hopper-v4" and meta["episodes"] == 3 and meta["action_space"] == "continuous"
    n = int(demos["episode_lengths"].sum())
    assert demos["observations"].shape == (n, 11) and demos["actions"].shape == (n, 3)
    assert demos["next_observations"].shape == (n, 11) and demos["rewards"].shape == (n,)
    assert demos["terminations"].shape == demos["truncations"].shape == (n,)
    ends = np.flatnonzero(demos["terminations"] | demos["truncations"])
    np.testing.assert_array_equal(ends + 1, np.cumsum(demos["episode_lengths"]))
    starts = np.concatenate([[0], ends[:-1] + 1])
    returns = [demos["rewards"][s:e + 1].sum() for s, e in zip(starts, ends)]
    np.testing.assert_allclose(returns, demos["episode_returns"], rtol=1e-5)
    assert meta["return_mean"] == pytest.approx(demos["episode_returns"].mean())
    # the recorded actions are exactly the exported policy's actions on the recorded observations
    with torch.no_grad():
        relabel = policy(torch.from_numpy(demos["observations"])).numpy()
    np.testing.assert_allclose(relabel, demos["actions"], rtol=1e-6, atol=1e-7)


def test_discrete_expert_exports_integer_actions(tmp_path):
    args = ppo.Args(env="CartPole-v1", total_timesteps=256, num_envs=2, num_steps=64, num_minibatches=2,
                    update_epochs=1, eval_episodes=1, runs_dir=str(tmp_path), save_expert=str(tmp_path / "e"),
                    expert_episodes=2)
    ppo.main(args)
    policy = torch.export.load(str(tmp_path / "e" / "policy.pt2")).module()
    actions = policy(torch.zeros(4, 4))
    assert actions.shape == (4,) and actions.dtype == torch.int64
    assert json.loads(str(np.load(tmp_path / "e" / "demos.npz")["metadata"]))["action_space"] == "discrete"


def test_capture_video_records_the_evaluation_episodes(tmp_path):
    result = run_cli("--env", "CartPole-v1", "--runs-dir", str(tmp_path), "--capture-video", *TINY)
    assert result.returncode == 0, result.stderr
    videos = os.listdir(os.path.join(only_run_dir(tmp_path), "videos"))
    assert sorted(v for v in videos if v.endswith(".mp4")) == ["rl-video-episode-0.mp4", "rl-video-episode-1.mp4"]


def test_command_line_reproduces_the_arguments():
    args = ppo.Args(env="CartPole-v1", seed=3, learning_rate=2.5e-4, norm_reward=False, num_envs=4)
    command = ppo.command_line(args)
    assert command == "python ppo.py --env CartPole-v1 --seed 3 --num-envs 4 --learning-rate 0.00025 --no-norm-reward"
    import tyro
    assert tyro.cli(ppo.Args, args=command.split()[2:]) == args
