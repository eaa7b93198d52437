"""The shipped experts (experts/<env-id>/) are what the imitation scripts load offline: check each one.

policy.pt2 must load with torch.export alone and fit its env's spaces; demos.npz must be consistent (episode
boundaries, returns, metadata), its actions must be what the env executed (replayed from the recorded reset seeds, they
give the recorded steps), and its references must hold the normalised score's returns.
"""
import json
import os

import gymnasium as gym
import numpy as np
import pytest
import torch

import ppo
from cli_helpers import replay_demos

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPERTS = ["CartPole-v1", "Pendulum-v1", "InvertedPendulum-v4", "Hopper-v4", "HalfCheetah-v4", "Walker2d-v4",
           "Ant-v4"]
EXPERT_SEED = 20_000  # demonstration episode i starts from reset(seed=EXPERT_SEED + i)


@pytest.mark.parametrize("env_id", EXPERTS)
def test_shipped_expert_is_consistent(env_id):
    folder = os.path.join(ROOT, "experts", env_id)
    demos = np.load(os.path.join(folder, "demos.npz"))
    meta = json.loads(str(demos["metadata"]))
    env = ppo.make_env(env_id)
    discrete = isinstance(env.action_space, gym.spaces.Discrete)
    assert meta["env_id"] == env_id and meta["episodes"] == 25
    assert meta["action_space"] == ("discrete" if discrete else "continuous")
    assert meta["obs_dim"] == env.observation_space.shape[0]

    n = int(demos["episode_lengths"].sum())
    assert demos["observations"].shape == demos["next_observations"].shape == (n,) + env.observation_space.shape
    assert demos["actions"].shape == ((n,) if discrete else (n,) + env.action_space.shape)
    ends = np.flatnonzero(demos["terminations"] | demos["truncations"])
    np.testing.assert_array_equal(ends + 1, np.cumsum(demos["episode_lengths"]))
    starts = np.concatenate([[0], ends[:-1] + 1])
    np.testing.assert_allclose([demos["rewards"][s:e + 1].sum() for s, e in zip(starts, ends)],
                               demos["episode_returns"], rtol=1e-4)
    assert meta["return_mean"] == pytest.approx(float(demos["episode_returns"].mean()))

    assert meta["demonstrator"] in ("stochastic", "deterministic")
    reference = meta["reference"]
    assert reference["eval_seed"] == 10_000 and reference["episodes"] == ppo.REFERENCE_EPISODES
    assert len(reference["random_returns"]) == len(reference["expert_returns"]) == reference["episodes"]
    assert len(reference["policy_returns"]) == reference["episodes"]
    assert np.mean(reference["expert_returns"]) > np.mean(reference["random_returns"])

    policy = torch.export.load(os.path.join(folder, "policy.pt2")).module()
    with torch.no_grad():
        relabelled = policy(torch.from_numpy(demos["observations"])).numpy()
    if not discrete:
        assert np.all(relabelled >= env.action_space.low) and np.all(relabelled <= env.action_space.high)
        assert np.all(demos["actions"] >= env.action_space.low) and np.all(demos["actions"] <= env.action_space.high)
    if meta["demonstrator"] == "deterministic":  # the demonstrations are policy.pt2's own actions
        np.testing.assert_allclose(relabelled, demos["actions"], rtol=1e-5, atol=1e-6)
    else:  # sampled: not the mean action (on most steps)
        differ = relabelled != demos["actions"] if discrete else np.abs(relabelled - demos["actions"]).max(-1) > 1e-3
        assert differ.mean() > (0.001 if discrete else 0.5)
    replay_demos(env, demos, 2, EXPERT_SEED)


def test_cartpole_expert_balances_in_the_env():
    policy = torch.export.load(os.path.join(ROOT, "experts", "CartPole-v1", "policy.pt2")).module()
    episodes = ppo.run_episodes(ppo.torch_policy(policy), "CartPole-v1", 3, seed=123)
    assert list(episodes["episode_returns"]) == [500.0, 500.0, 500.0]
