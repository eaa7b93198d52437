"""ppo.py's data collection, checked on the toy env of known answers (tests/toy_envs.py).

The run goes through ppo.main itself; spies on the module's own functions record what the rollout hands to the
math: which transitions are terminal, where the sum of GAE stops, from which observation a bootstrap value comes,
which rewards (raw or scaled) and which observations (normalised with which statistics) enter the batch.
The critic is replaced by a known function of the observation, V(ŝ) = ŝ[0] + 3·ŝ[1], so that a value reveals the
state it was computed from (for instance the final observation of an episode, or wrongly the next episode's first).
"""
import os

import numpy as np
import pytest
import torch

import ppo
import toy_envs
from toy_envs import columns, normalized, reference_running_stats, stream

T, N = 16, 2  # two iterations of 16 steps in each of 2 envs: 6 episodes per env, both endings, each twice


def known_value(obs: torch.Tensor) -> torch.Tensor:
    return obs[:, 0] + 3 * obs[:, 1]


def run(tmp_path, monkeypatch, **overrides) -> dict:
    """Two iterations of ppo.main on Count-v0; returns what compute_gae and ppo_losses were given, and the summary."""
    seen = {"gae": [], "losses": []}
    real_gae, real_losses = ppo.compute_gae, ppo.ppo_losses

    def gae_spy(rewards, values, next_values, terminated, dones, gamma, lam):
        advantages = real_gae(rewards, values, next_values, terminated, dones, gamma, lam)
        seen["gae"].append({k: np.array(v) if isinstance(v, np.ndarray) else v for k, v in dict(
            rewards=rewards, values=values, next_values=next_values, terminated=terminated, dones=dones,
            gamma=gamma, lam=lam, advantages=advantages).items()})
        return advantages

    def losses_spy(agent, obs, actions, logp_old, adv, v_old, returns, *rest):
        seen["losses"].append({k: v.clone() for k, v in dict(obs=obs, actions=actions, logp_old=logp_old, adv=adv,
                                                               v_old=v_old, returns=returns).items()})
        return real_losses(agent, obs, actions, logp_old, adv, v_old, returns, *rest)

    monkeypatch.setattr(ppo, "compute_gae", gae_spy)
    monkeypatch.setattr(ppo, "ppo_losses", losses_spy)
    # V(ŝ) known; `+ 0·critic` keeps a gradient path, so the update runs as usual.
    monkeypatch.setattr(ppo.Agent, "value", lambda self, obs: known_value(obs) + 0 * self.critic(obs).squeeze(-1))
    kwargs = dict(env="Count-v0", num_envs=N, num_steps=T, total_timesteps=2 * T * N, num_minibatches=2,
                  update_epochs=1, norm_obs=False, norm_reward=False, eval_episodes=1, runs_dir=str(tmp_path),
                  gamma=0.9, gae_lambda=0.8)
    kwargs.update(overrides)
    seen["summary"] = ppo.main(ppo.Args(**kwargs))
    seen["args"] = kwargs
    return seen


def expected_columns(key: str, iteration: int) -> np.ndarray:
    return columns(key, T, N, iteration)


def test_terminal_and_done_flags_and_bootstrap_states(tmp_path, monkeypatch):
    seen = run(tmp_path, monkeypatch)
    assert len(seen["gae"]) == 2
    for it, call in enumerate(seen["gae"]):
        np.testing.assert_array_equal(call["rewards"], expected_columns("reward", it))
        # terminated: only a true end; dones: a true end or a time limit (the sum of GAE stops at both)
        np.testing.assert_array_equal(call["terminated"], expected_columns("terminated", it))
        np.testing.assert_array_equal(call["dones"], expected_columns("terminated", it) | expected_columns("truncated", it))
        obs, next_obs = expected_columns("obs", it), expected_columns("next_obs", it)
        np.testing.assert_allclose(call["values"], obs[..., 0] + 3 * obs[..., 1])
        # V(s_{t+1}) of the TRUE next state: at an episode's end the final observation, not the next s_0
        np.testing.assert_allclose(call["next_values"], next_obs[..., 0] + 3 * next_obs[..., 1])
        assert call["gamma"] == 0.9 and call["lam"] == 0.8


def test_truncated_episodes_bootstrap_and_terminated_ones_do_not(tmp_path, monkeypatch):
    """The advantages ppo.py computes from the batch equal a brute-force Σ (γλ)^l δ_{t+l} over each episode."""
    seen = run(tmp_path, monkeypatch)
    monkeypatch.undo()  # the real compute_gae again
    gamma, lam = 0.9, 0.8
    for it, call in enumerate(seen["gae"]):
        adv = ppo.compute_gae(call["rewards"], call["values"], call["next_values"], call["terminated"], call["dones"],
                              gamma, lam)
        s = stream(T * (it + 1))
        sl = slice(T * it, None)
        v = s["obs"][sl, 0] + 3 * s["obs"][sl, 1]
        v_next = s["next_obs"][sl, 0] + 3 * s["next_obs"][sl, 1]
        delta = s["reward"][sl] + gamma * (1 - s["terminated"][sl]) * v_next - v
        ends = s["terminated"][sl] | s["truncated"][sl]
        brute = np.zeros(T)
        for t in range(T):
            total, discount = 0.0, 1.0
            for u in range(t, T):
                total += discount * delta[u]
                if ends[u]:
                    break
                discount *= gamma * lam
            brute[t] = total
        np.testing.assert_allclose(adv[:, 0], brute, rtol=1e-5, atol=1e-5)


def test_minibatches_carry_each_state_s_advantage_value_and_value_target(tmp_path, monkeypatch):
    """Each minibatch row: V_old = V(s_t), R̂_t = Â_t + V(s_t), and log π_θk(a_t|s_t) of the stored action under the
    policy that collected it; one epoch's minibatches are the whole batch, each row once."""
    seen = run(tmp_path, monkeypatch)
    per_iteration = len(seen["losses"]) // 2  # update_epochs = 1: the minibatches of one iteration, then the next
    for it in range(2):
        rows = seen["losses"][it * per_iteration:(it + 1) * per_iteration]
        obs, adv, v_old, returns = (torch.cat([r[k] for r in rows]) for k in ("obs", "adv", "v_old", "returns"))
        torch.testing.assert_close(v_old, known_value(obs))
        torch.testing.assert_close(returns, adv + v_old)
        np.testing.assert_allclose(np.sort(adv.numpy()), np.sort(seen["gae"][it]["advantages"].reshape(-1)), rtol=1e-6)
        np.testing.assert_allclose(np.sort(obs[:, 0].numpy()), np.sort(columns("obs", T, N, it)[..., 0].reshape(-1)))


def test_old_log_probabilities_are_those_of_the_collecting_policy(tmp_path, monkeypatch):
    """logp_old of the first minibatch = log N(a; μ_θ0(s), σ_θ0²) under the initial policy, which the seed rebuilds."""
    seen = run(tmp_path, monkeypatch)
    torch.manual_seed(1)  # the seed the run starts from: ppo.main builds the agent right after seeding
    ppo.seed_everything(1)
    agent = ppo.Agent(3, 1, False, ppo.Args().hidden_size)
    first = seen["losses"][0]
    with torch.no_grad():
        dist = torch.distributions.Normal(agent.actor(first["obs"]), agent.log_std.exp())
        expected = dist.log_prob(first["actions"]).sum(-1)
    torch.testing.assert_close(first["logp_old"], expected, rtol=1e-5, atol=1e-5)


def test_the_entropy_bonus_raises_the_entropy(tmp_path, monkeypatch):
    """On Count-v0 the action changes nothing, so with a large --ent-coef the update is ascent on H[π_θ]: σ grows."""
    seen = run(tmp_path, monkeypatch, ent_coef=1.0, learning_rate=0.05, anneal_lr=False)
    ckpt = torch.load(os.path.join(seen["summary"]["run_dir"], "model.pt"), weights_only=True)
    assert float(ckpt["agent"]["log_std"]) > 0.1  # log σ starts at 0; 4 Adam steps of ~0.05 each


def test_training_returns_are_whole_episodes(tmp_path, monkeypatch):
    seen = run(tmp_path, monkeypatch)
    s = stream(2 * T)
    ends = np.flatnonzero(s["terminated"] | s["truncated"])
    starts = np.concatenate([[0], ends[:-1] + 1])
    returns = [s["reward"][a:b + 1].sum() for a, b in zip(starts, ends)]
    assert seen["summary"]["train_return_last100"] == pytest.approx(np.mean(returns))  # the same in both envs
    assert seen["summary"]["eval_returns"] == [toy_envs.episode(0)["rewards"].sum()]


def test_batch_keeps_the_sampled_action_and_the_env_gets_it_clipped(tmp_path, monkeypatch):
    seen = run(tmp_path, monkeypatch)
    actions = torch.cat([c["actions"] for c in seen["losses"]])
    # σ = 1 at the start and μ ≈ 0: about a third of the draws leave [−1, 1]; the batch must keep them as drawn
    assert (actions.abs() > 1).any()


def test_scaled_rewards_use_the_std_of_the_discounted_return_reset_at_episode_ends(tmp_path, monkeypatch):
    seen = run(tmp_path, monkeypatch, norm_reward=True, clip_reward=1e6)
    gamma = 0.9
    s = stream(2 * T)
    g, batches = 0.0, []
    for r, end in zip(s["reward"], s["terminated"] | s["truncated"]):
        g = gamma * g + r
        batches.append([g] * N)  # every env has the same stream: one batch of N equal returns per step
        if end:
            g = 0.0
    stats = reference_running_stats(batches)
    expected = s["reward"] / np.sqrt(np.array([var for _, var in stats]) + 1e-8)
    got = np.concatenate([c["rewards"][:, 0] for c in seen["gae"]])
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_observations_are_normalised_with_the_running_statistics_of_every_state_seen(tmp_path, monkeypatch):
    """ŝ_t = clip((s_t − μ)/√(σ² + 1e-8)) with μ, σ² of every raw observation received so far (the reset ones
    included, the final ones not: they are never the policy's input); the final observation of an episode is
    normalised with the same statistics as the state received at that step; the deployed policy (model.pt and
    the evaluation) applies the final statistics."""
    seen = run(tmp_path, monkeypatch, norm_obs=True, clip_obs=1e6)
    s, ext = stream(2 * T), stream(2 * T + 1)
    # received: s_0 at the start, then each step's next observation (at an episode's end, the next episode's s_0)
    received = [ext["obs"][t] for t in range(2 * T + 1)]
    stats = reference_running_stats([[x] * N for x in received])

    got_v = np.concatenate([c["values"][:, 0] for c in seen["gae"]])
    got_next = np.concatenate([c["next_values"][:, 0] for c in seen["gae"]])
    exp_v = [known_value(torch.tensor(normalized(s["obs"][t], stats[t]))[None]).item() for t in range(2 * T)]
    exp_next = [known_value(torch.tensor(normalized(s["next_obs"][t], stats[t + 1]))[None]).item() for t in range(2 * T)]
    np.testing.assert_allclose(got_v, exp_v, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got_next, exp_next, rtol=1e-4, atol=1e-4)

    # the saved statistics are those of every received observation, and the deployed policy applies them
    run_dir = seen["summary"]["run_dir"]
    ckpt = torch.load(os.path.join(run_dir, "model.pt"), weights_only=True)
    np.testing.assert_allclose(ckpt["obs_rms"]["mean"].numpy(), stats[-1][0], rtol=1e-6)
    np.testing.assert_allclose(ckpt["obs_rms"]["var"].numpy(), stats[-1][1], rtol=1e-6)
    agent, rms = ppo.load_checkpoint(os.path.join(run_dir, "model.pt"), ppo.Args(env="Count-v0"), 3, 1, False,
                                     torch.device("cpu"))
    policy = ppo.DeterministicPolicy(agent.actor, rms, 1e6, False, np.array([-1.0]), np.array([1.0]))
    raw = np.array([[0, 0, 1], [2, 1, 1], [4, 3, 1]], np.float32)
    with torch.no_grad():
        deployed = policy(torch.from_numpy(raw)).numpy()
    # what the rollout's actor computes on the same raw states, clipped to the bounds as the env would clip it
    rollout = np.clip(ppo.numpy_mlp(ppo.numpy_weights(agent.actor), ppo.normalize_obs(raw, rms, 1e6)), -1, 1)
    np.testing.assert_allclose(deployed, rollout, rtol=1e-5, atol=1e-6)


def test_learning_rate_anneals_linearly_per_iteration_and_target_kl_stops_the_epochs(tmp_path, monkeypatch):
    """α_k = (1 − (k − 1)/K)·α for iteration k of K; with --target-kl, the epochs of an iteration stop after the
    first whose last minibatch's approximate KL exceeds it."""
    lrs = []
    real_step = torch.optim.Adam.step

    def step_spy(self, *a, **k):
        lrs.append(self.param_groups[0]["lr"])
        return real_step(self, *a, **k)

    monkeypatch.setattr(torch.optim.Adam, "step", step_spy)
    run(tmp_path / "a", monkeypatch, total_timesteps=4 * T * N, update_epochs=2, learning_rate=0.01)
    per_iteration = 2 * 2  # 2 epochs × 2 minibatches
    assert len(lrs) == 4 * per_iteration
    np.testing.assert_allclose(lrs, np.repeat([0.01 * (1 - k / 4) for k in range(4)], per_iteration))
    lrs.clear()
    run(tmp_path / "b", monkeypatch, update_epochs=3, target_kl=1e-12, ent_coef=0.1)
    assert len(lrs) == 2 * 2  # one epoch of 2 minibatches per iteration: the KL after it exceeds 1e-12


def test_the_deployed_discrete_policy_takes_the_most_likely_action():
    torch.manual_seed(0)
    agent = ppo.Agent(3, 4, True, 16)
    policy = ppo.DeterministicPolicy(agent.actor, None, 10.0, True, None, None)
    obs = torch.randn(50, 3)
    torch.testing.assert_close(policy(obs), agent.actor(obs).argmax(-1))


def test_every_step_is_taken_with_the_gradient_clipped_to_max_grad_norm(tmp_path, monkeypatch):
    pre, post = [], []
    real_clip, real_step = torch.nn.utils.clip_grad_norm_, torch.optim.Adam.step

    def clip_spy(params, max_norm, *a, **k):
        norm = real_clip(params, max_norm, *a, **k)
        pre.append(float(norm))
        return norm

    def step_spy(self, *a, **k):
        post.append(float(torch.cat([p.grad.reshape(-1) for g in self.param_groups for p in g["params"]]).norm()))
        return real_step(self, *a, **k)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", clip_spy)
    monkeypatch.setattr(torch.optim.Adam, "step", step_spy)
    run(tmp_path, monkeypatch, max_grad_norm=1e-3, ent_coef=0.1)
    assert len(pre) == len(post) == 2 * 2  # every Adam step follows a clip
    assert max(pre) > 1e-3  # the raw gradients are larger than the bound ...
    assert max(post) <= 1e-3 * (1 + 1e-5)  # ... and each step sees them clipped to it
