"""reinforce.py's batches, checked on the toy env of known answers (tests/toy_envs.py).

Spies on reinforce.py's own functions record what [S1]–[S3] hand to the math: whole episodes laid end to end, where
each ends, the count N that divides the pseudo-loss, the bootstrap of a time-limited episode from its true last
state, and the weights ψ − b. V is replaced by a known function of the observation, V(s) = s[0] + 3·s[1].
"""
import numpy as np
import pytest
import torch

import reinforce
import toy_envs
from toy_envs import stream


def known_value(obs: torch.Tensor) -> torch.Tensor:
    return obs[:, 0] + 3 * obs[:, 1]


def run(tmp_path, monkeypatch, **overrides) -> dict:
    seen = {"rtg": [], "loss": []}
    real_rtg, real_loss = reinforce.reward_to_go, reinforce.pseudo_loss

    def rtg_spy(rewards, dones, gamma, bootstrap=None):
        out = real_rtg(rewards, dones, gamma, bootstrap)
        seen["rtg"].append(dict(rewards=np.array(rewards), dones=np.array(dones), gamma=gamma, q=out.copy(),
                                bootstrap=None if bootstrap is None else np.array(bootstrap)))
        return out

    def loss_spy(logp, weights, num_episodes):
        seen["loss"].append(dict(weights=weights.clone(), num_episodes=num_episodes, n=len(logp)))
        return real_loss(logp, weights, num_episodes)

    monkeypatch.setattr(reinforce, "reward_to_go", rtg_spy)
    monkeypatch.setattr(reinforce, "pseudo_loss", loss_spy)
    monkeypatch.setattr(reinforce.Agent, "value", lambda self, obs: known_value(obs) + 0 * self.critic(obs).squeeze(-1))
    kwargs = dict(env="Count-v0", batch_steps=10, total_timesteps=30, norm_obs=False, norm_adv=False, gamma=0.9,
                  value_steps=1, eval_episodes=1, runs_dir=str(tmp_path))
    kwargs.update(overrides)
    seen["summary"] = reinforce.main(reinforce.Args(**kwargs))
    return seen


def episodes_in_order(count: int) -> list:
    return [toy_envs.episode(k) for k in range(count)]


def test_batches_are_whole_episodes_of_at_least_batch_steps_and_n_counts_them(tmp_path, monkeypatch):
    seen = run(tmp_path, monkeypatch)
    k, total = 0, 0
    for call, loss in zip(seen["rtg"], seen["loss"]):
        # whole episodes k, k+1, ... until the batch holds ≥ 10 steps (lengths 3, 5, 3, 5, ...), the last batch cut
        # short after the episode that reaches --total-timesteps 30: batches of 11, 13 and 8 steps
        eps, steps = [], 0
        while steps < 10 and total + steps < 30:
            eps.append(toy_envs.episode(k))
            steps, k = steps + eps[-1]["length"], k + 1
        total += steps
        np.testing.assert_array_equal(call["rewards"], np.concatenate([e["rewards"] for e in eps]))
        dones = np.concatenate([np.eye(e["length"])[-1] for e in eps])  # 1 at each episode's last step only
        np.testing.assert_array_equal(call["dones"], dones)
        assert call["gamma"] == 0.9
        assert loss["num_episodes"] == len(eps) and loss["n"] == steps
    assert len(seen["loss"]) == 3 and seen["summary"]["env_steps"] == sum(l["n"] for l in seen["loss"])


def test_batch_episodes_fixes_the_number_of_episodes(tmp_path, monkeypatch):
    seen = run(tmp_path, monkeypatch, batch_episodes=3, total_timesteps=20)
    assert [l["num_episodes"] for l in seen["loss"]] == [3, 3]  # 3 + 5 + 3 = 11 steps, then 5 + 3 + 5 = 13
    assert [l["n"] for l in seen["loss"]] == [11, 13]


def test_weights_are_the_reward_to_go_minus_the_value_of_the_state(tmp_path, monkeypatch):
    seen = run(tmp_path, monkeypatch)
    s = stream(seen["summary"]["env_steps"])
    start = 0
    for call, loss in zip(seen["rtg"], seen["loss"]):
        n = len(call["rewards"])
        values = s["obs"][start:start + n, 0] + 3 * s["obs"][start:start + n, 1]
        np.testing.assert_allclose(loss["weights"].numpy(), call["q"] - values, rtol=1e-5, atol=1e-5)
        start += n


def test_total_return_weights_every_step_by_its_episode_s_return(tmp_path, monkeypatch):
    seen = run(tmp_path, monkeypatch, returns="total", baseline="none")
    weights = seen["loss"][0]["weights"].numpy()
    e0, e1 = toy_envs.episode(0), toy_envs.episode(1)
    g = lambda e: sum(0.9 ** t * r for t, r in enumerate(e["rewards"]))  # noqa: E731
    np.testing.assert_allclose(weights[:3], g(e0), rtol=1e-6)
    np.testing.assert_allclose(weights[3:8], g(e1), rtol=1e-6)


def test_a_time_limited_episode_bootstraps_from_its_true_last_state(tmp_path, monkeypatch):
    """--bootstrap-truncated: γ·V(s_T) after the last step of an episode cut by the time limit (odd k), with s_T its
    own last observation [LIMIT, k, 1]; nothing after a terminated one."""
    seen = run(tmp_path, monkeypatch, bootstrap_truncated=True)
    bootstrap = seen["rtg"][0]["bootstrap"]
    # first batch: episodes 0 (3 steps, terminated), 1 (5, truncated), 2 (3, terminated)
    expected = np.zeros(11)
    expected[7] = 0.9 * (toy_envs.LIMIT + 3 * 1)
    np.testing.assert_allclose(bootstrap, expected, rtol=1e-6)


@pytest.mark.parametrize("baseline", ["average", "none"])
def test_training_returns_are_whole_episodes(tmp_path, monkeypatch, baseline):
    seen = run(tmp_path, monkeypatch, baseline=baseline)
    count = sum(l["num_episodes"] for l in seen["loss"])
    returns = [e["rewards"].sum() for e in episodes_in_order(count)]
    assert seen["summary"]["train_return_last100"] == pytest.approx(np.mean(returns))
