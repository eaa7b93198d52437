"""ppo.py end to end through its command line: tiny runs, clear errors, saving and reloading."""
import dataclasses
import json
import math
import os

import numpy as np
import pytest
import torch
import tyro

import ppo
from cli_helpers import replay_demos, check_run_dir, error_line as _error_line, only_run_dir, run_script


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
                    expert_episodes=3, expert_demos="deterministic")
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
    assert meta["demonstrator"] == "deterministic"
    # the reference returns of the normalised score: the demonstrator (here policy.pt2) on the evaluation seeds
    reference = meta["reference"]
    assert reference["eval_seed"] == args.eval_seed and reference["episodes"] == ppo.REFERENCE_EPISODES
    np.testing.assert_allclose(reference["expert_returns"][:3], trained["eval_returns"], rtol=1e-6)
    assert reference["policy_returns"] == reference["expert_returns"]
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


def test_stochastic_demos_are_the_sampling_policy_on_the_env(tmp_path):
    """By default demos.npz holds the policy as trained: actions sampled from π_θ (not policy.pt2's mean), each one
    the action the env executed at the recorded state; the reference returns are reproducible."""
    args = ppo.Args(env="Hopper-v4", total_timesteps=2048, num_steps=1024, num_minibatches=8, update_epochs=1,
                    eval_episodes=2, runs_dir=str(tmp_path / "train"), save_expert=str(tmp_path / "expert"),
                    expert_episodes=3)
    ppo.main(args)
    with np.load(tmp_path / "expert" / "demos.npz") as data:
        demos = {k: data[k] for k in data.files}
    meta = json.loads(str(demos["metadata"]))
    assert meta["demonstrator"] == "stochastic"
    assert dataclasses.asdict(ppo.parse_args(meta["command"].split()[2:])) == dataclasses.asdict(args)
    replay_demos(ppo.make_env("Hopper-v4"), demos, 3, args.expert_seed)
    policy = torch.export.load(str(tmp_path / "expert" / "policy.pt2")).module()
    with torch.no_grad():
        mean_action = policy(torch.from_numpy(demos["observations"])).numpy()
    assert np.abs(demos["actions"] - mean_action).mean() > 0.1  # sampled, not the mean (σ ≈ 1 after 2 updates)
    assert np.all(np.abs(demos["actions"]) <= 1.0)  # clipped to Hopper's bounds, as the env executes them
    reference = meta["reference"]
    space = ppo.make_env("Hopper-v4").action_space
    random_returns = ppo.run_episodes(ppo.uniform_random_policy(space, args.eval_seed), "Hopper-v4",
                                      ppo.REFERENCE_EPISODES, args.eval_seed)["episode_returns"]
    assert reference["random_returns"] == random_returns.tolist()
    assert len(reference["expert_returns"]) == ppo.REFERENCE_EPISODES


def test_sampling_policy_draws_from_the_trained_distribution():
    """a ~ N(μ, σ²) clipped to the bounds, and a categorical draw with the softmax's probabilities."""
    actor = torch.nn.Linear(2, 2)
    with torch.no_grad():
        actor.weight.zero_()
        actor.bias.copy_(torch.tensor([0.1, -0.3]))
    wide = ppo.DeterministicPolicy(actor, None, 10.0, False, np.full(2, -100.0), np.full(2, 100.0))
    draw = ppo.sampling_policy(wide, torch.log(torch.tensor([0.5, 2.0])), seed=0)
    actions = draw(np.zeros((40_000, 2), np.float32))
    np.testing.assert_allclose(actions.mean(0), [0.1, -0.3], atol=0.03)
    np.testing.assert_allclose(actions.std(0), [0.5, 2.0], rtol=0.02)
    narrow = ppo.DeterministicPolicy(actor, None, 10.0, False, np.full(2, -0.2), np.full(2, 0.2))
    clipped = ppo.sampling_policy(narrow, torch.log(torch.tensor([0.5, 2.0])), seed=0)(np.zeros((40_000, 2), np.float32))
    assert clipped.min() == -0.2 and clipped.max() == 0.2
    assert np.mean(clipped[:, 0] == 0.2) == pytest.approx(0.5 * math.erfc((0.2 - 0.1) / (0.5 * math.sqrt(2))), abs=0.01)
    logits = torch.nn.Linear(2, 3)
    with torch.no_grad():
        logits.weight.zero_()
        logits.bias.copy_(torch.tensor([0.0, 1.0, -1.0]))
    discrete = ppo.DeterministicPolicy(logits, None, 10.0, True, None, None)
    picks = ppo.sampling_policy(discrete, torch.zeros(3), seed=0)(np.zeros((40_000, 2), np.float32))
    assert picks.dtype == np.int64
    np.testing.assert_allclose(np.bincount(picks, minlength=3) / len(picks),
                               torch.softmax(torch.tensor([0.0, 1.0, -1.0]), 0).numpy(), atol=0.01)


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


def test_command_line_leaves_out_what_the_preset_gives():
    """A run with its env's preset: the command names only what differs from the preset, and gives the same args."""
    args = ppo.parse_args(["--env", "HalfCheetah-v4", "--seed", "2", "--gamma", "0.99"])
    command = ppo.command_line(args)
    assert command == "python ppo.py --env HalfCheetah-v4 --seed 2 --gamma 0.99"
    assert ppo.parse_args(command.split()[2:]) == args
    other = ppo.parse_args(["--env", "HalfCheetah-v4", "--preset", "Hopper"])
    assert ppo.command_line(other) == "python ppo.py --env HalfCheetah-v4 --preset Hopper"


def test_an_expert_exported_from_a_checkpoint_records_the_one_command_that_remakes_it(tmp_path):
    """--checkpoint --save-expert writes the training run's command plus the export's flags; that command, run from
    scratch, gives the same demos and references (training is deterministic on a CPU)."""
    tiny = dict(env="CartPole-v1", total_timesteps=256, num_envs=2, num_steps=64, num_minibatches=2, update_epochs=1)
    trained = ppo.main(ppo.Args(**tiny, eval_episodes=3, runs_dir=str(tmp_path / "train")))
    exported = tmp_path / "exported"
    ppo.main(ppo.parse_args(["--env", "CartPole-v1", "--checkpoint", os.path.join(trained["run_dir"], "model.pt"),
                             "--save-expert", str(exported), "--expert-episodes", "2", "--eval-episodes", "2",
                             "--runs-dir", str(tmp_path / "eval")]))
    with np.load(exported / "demos.npz") as data:
        first = {k: data[k] for k in data.files}
    meta = json.loads(str(first["metadata"]))
    assert meta["command"] == (f"python ppo.py --env CartPole-v1 --total-timesteps 256 --eval-episodes 2 "
                               f"--save-expert {exported} --expert-episodes 2 --num-envs 2 --num-steps 64 "
                               f"--num-minibatches 2 --update-epochs 1")
    assert "--checkpoint" in meta["exported_by"]
    ppo.main(ppo.parse_args(meta["command"].split()[2:] + ["--runs-dir", str(tmp_path / "again")]))
    with np.load(exported / "demos.npz") as data:
        again = {k: data[k] for k in data.files}
    for key in first:
        if key != "metadata":
            np.testing.assert_array_equal(again[key], first[key])
    assert json.loads(str(again["metadata"]))["reference"] == meta["reference"]


def test_async_envs_give_the_same_run_as_sync_ones(tmp_path):
    """--vector-env async steps each env in its own process: the same trajectories, so the same model and returns.
    Hopper at this budget falls every ~20 steps, so the episode ends (final_obs, SAME_STEP resets) are exercised."""
    argv = ["--env", "Hopper-v4", "--total-timesteps", "1024", "--num-envs", "4", "--num-steps", "128",
            "--num-minibatches", "2", "--update-epochs", "1", "--eval-episodes", "2"]
    runs = {kind: ppo.main(tyro.cli(ppo.Args, args=[*argv, "--vector-env", kind, "--runs-dir", str(tmp_path / kind)]))
            for kind in ("sync", "async")}
    assert runs["sync"]["eval_returns"] == runs["async"]["eval_returns"]
    assert runs["sync"]["train_return_last100"] == runs["async"]["train_return_last100"]
    models = [torch.load(os.path.join(runs[k]["run_dir"], "model.pt"), weights_only=True)["agent"] for k in runs]
    assert all(torch.equal(models[0][key], models[1][key]) for key in models[0])
