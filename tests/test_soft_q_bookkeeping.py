"""soft_q.py's replay buffer, checked on the toy env of known answers (tests/toy_envs.py).

Every minibatch row drawn from the buffer must be a true transition of the env: reward, next state and termination
of the state it starts from. On Count-v0 they follow from s = [t, k, 1] alone: r = t + 1 + 0.5k, s' = [t + 1, k, 1]
(the episode's own last observation at its end, never the next episode's s_0), terminated only where an even
episode reaches TERM_AT (a time limit is not terminal). Spies on soft_q.py's own functions record the rows.
"""
import numpy as np
import pytest
import torch

import soft_q
import toy_envs

B = 8


def run(tmp_path, monkeypatch, env_id, **overrides) -> dict:
    seen = {"normalized": [], "targets": [], "soft_v": []}
    real_norm, real_targets = soft_q.normalize_obs, soft_q.soft_q_targets

    def norm_spy(obs, rms, clip):
        out = real_norm(obs, rms, clip)
        if len(obs) == B:  # the minibatch's s then s' ([S2]); acting normalises one observation at a time
            seen["normalized"].append((np.array(obs), out.copy()))
        return out

    def targets_spy(rewards, next_soft_v, terminations, gamma):
        seen["targets"].append(dict(rewards=rewards.clone(), terminations=terminations.clone(), gamma=gamma))
        return real_targets(rewards, next_soft_v, terminations, gamma)

    monkeypatch.setattr(soft_q, "normalize_obs", norm_spy)
    monkeypatch.setattr(soft_q, "soft_q_targets", targets_spy)
    kwargs = dict(env=env_id, total_timesteps=60, learning_starts=20, batch_size=B, buffer_size=32,
                  svgd_particles=4, value_particles=4, eval_episodes=1, runs_dir=str(tmp_path), gamma=0.9)
    kwargs.update(overrides)
    seen["summary"] = soft_q.main(soft_q.Args(**kwargs))
    return seen


@pytest.mark.parametrize("env_id", ["Count-v0", "CountDiscrete-v0"])
def test_every_replayed_row_is_a_true_transition(tmp_path, monkeypatch, env_id):
    seen = run(tmp_path, monkeypatch, env_id)
    assert len(seen["targets"]) == 40 and len(seen["normalized"]) == 80  # one update per step after step 20
    for u, call in enumerate(seen["targets"]):
        obs, next_obs = seen["normalized"][2 * u][0], seen["normalized"][2 * u + 1][0]
        t, k = obs[:, 0], obs[:, 1]
        np.testing.assert_allclose(call["rewards"].numpy(), t + 1 + 0.5 * k)
        np.testing.assert_array_equal(next_obs, np.stack([t + 1, k, np.ones(B)], 1))
        terminal = (k % 2 == 0) & (t + 1 == toy_envs.TERM_AT)
        np.testing.assert_array_equal(call["terminations"].numpy(), terminal.astype(np.float32))
        assert call["gamma"] == 0.9
    # the buffer is a ring of the 32 most recent transitions: the last update (step 60) draws from steps 29–60,
    # stream rows 28–59, which belong to episodes k ≥ 7
    first_kept = toy_envs.stream(60)["obs"][28, 1]
    assert first_kept == 7 and seen["normalized"][-2][0][:, 1].min() >= first_kept


def test_observations_are_normalised_with_the_statistics_of_every_state_acted_on(tmp_path, monkeypatch):
    """--norm-obs: s and s' of a minibatch both normalised with the running statistics of every observation the
    agent has acted on so far (s_0 of each episode included, an episode's last observation not)."""
    seen = run(tmp_path, monkeypatch, "Count-v0", norm_obs=True, total_timesteps=30)
    s = toy_envs.stream(30)
    for u in range(len(seen["targets"])):
        step = 21 + u  # the update of step `step` comes after acting on s_0 .. s_{step−1} of the stream
        stats = toy_envs.reference_running_stats([s["obs"][:step]])[-1]
        for raw, got in seen["normalized"][2 * u:2 * u + 2]:
            np.testing.assert_allclose(got, toy_envs.normalized(raw, stats), rtol=1e-4, atol=1e-5)
