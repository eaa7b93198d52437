"""gail.py's data collection and the discriminator's data, checked on the toy env of known answers (tests/toy_envs.py).

Spies on gail.py's own functions record what the rollout hands to the math: the bootstrapping of ppo.py's learner
(terminal vs truncated, the final observation), the (s, a) pairs D is trained on (which side is the expert, which
normalisation each side gets), and the reward the policy is then trained on (D's, of the policy's own pairs, after
D's update). The critic is replaced by a known function of the observation, V(ŝ) = ŝ[0] + 3·ŝ[1].
"""
import os

import numpy as np
import torch

import gail
import toy_envs
from toy_envs import columns, normalized, reference_running_stats, stream

T, N = 16, 2


def known_value(obs: torch.Tensor) -> torch.Tensor:
    return obs[:, 0] + 3 * obs[:, 1]


def run(tmp_path, monkeypatch, env_id="Count-v0", **overrides) -> dict:
    demos = toy_envs.write_expert(str(tmp_path / "expert"), env_id, episodes=4)
    seen = {"gae": [], "inputs": [], "disc_loss": [], "losses": [], "demos": demos}
    real_gae, real_input, real_loss = gail.compute_gae, gail.discriminator_input, gail.discriminator_loss
    real_ppo_losses, real_reward = gail.ppo_losses, gail.gail_reward
    seen["learned"] = []

    def reward_spy(logits, form):
        out = real_reward(logits, form)
        seen["learned"].append(out.detach().clone())
        return out

    monkeypatch.setattr(gail, "gail_reward", reward_spy)

    def gae_spy(rewards, values, next_values, terminated, dones, gamma, lam):
        seen["gae"].append(dict(rewards=np.array(rewards), values=np.array(values), next_values=np.array(next_values),
                                terminated=np.array(terminated), dones=np.array(dones), gamma=gamma, lam=lam))
        return real_gae(rewards, values, next_values, terminated, dones, gamma, lam)

    def input_spy(obs, actions, *rest):
        x = real_input(obs, actions, *rest)
        seen["inputs"].append({"obs": obs.clone(), "actions": actions.clone(), "x": x.clone()})
        return x

    def loss_spy(logits_expert, logits_policy):
        seen["disc_loss"].append((logits_expert.detach().clone(), logits_policy.detach().clone()))
        return real_loss(logits_expert, logits_policy)

    def ppo_losses_spy(agent, obs, actions, *rest):
        seen["losses"].append(actions.clone())
        return real_ppo_losses(agent, obs, actions, *rest)

    monkeypatch.setattr(gail, "compute_gae", gae_spy)
    monkeypatch.setattr(gail, "ppo_losses", ppo_losses_spy)
    monkeypatch.setattr(gail, "discriminator_input", input_spy)
    monkeypatch.setattr(gail, "discriminator_loss", loss_spy)
    monkeypatch.setattr(gail.Agent, "value", lambda self, obs: known_value(obs) + 0 * self.critic(obs).squeeze(-1))
    kwargs = dict(env=env_id, demos=str(tmp_path / "expert" / "demos.npz"), num_demos=4, num_envs=N, num_steps=T,
                  total_timesteps=2 * T * N, num_minibatches=2, update_epochs=1, disc_minibatches=2,
                  norm_obs=False, norm_reward=False, eval_episodes=1, runs_dir=str(tmp_path / "runs"),
                  gamma=0.9, gae_lambda=0.8)
    kwargs.update(overrides)
    seen["summary"] = gail.main(gail.Args(**kwargs))
    return seen


def test_terminal_and_done_flags_and_bootstrap_states(tmp_path, monkeypatch):
    seen = run(tmp_path, monkeypatch)
    assert len(seen["gae"]) == 2
    for it, call in enumerate(seen["gae"]):
        np.testing.assert_array_equal(call["terminated"], columns("terminated", T, N, it))
        np.testing.assert_array_equal(call["dones"], columns("terminated", T, N, it) | columns("truncated", T, N, it))
        obs, next_obs = columns("obs", T, N, it), columns("next_obs", T, N, it)
        np.testing.assert_allclose(call["values"], obs[..., 0] + 3 * obs[..., 1])
        np.testing.assert_allclose(call["next_values"], next_obs[..., 0] + 3 * next_obs[..., 1])
        assert call["gamma"] == 0.9 and call["lam"] == 0.8


def test_the_policy_is_trained_on_d_s_reward_of_its_own_pairs_after_d_s_update(tmp_path, monkeypatch):
    """Last iteration: r_t = −log(1 − D(s_t, a_t)) with the D that model.pt holds (D is not touched after [S2])."""
    seen = run(tmp_path, monkeypatch)
    x_policy = seen["inputs"][-2]["x"]  # the last rollout's pairs: discriminator_input(policy) then (expert)
    ckpt = torch.load(os.path.join(seen["summary"]["run_dir"], "model.pt"), weights_only=True)
    disc = gail.Discriminator(3, 1, gail.Args().disc_hidden_size)
    disc.load_state_dict(ckpt["discriminator"])
    with torch.no_grad():
        expected = torch.nn.functional.softplus(disc(x_policy)).numpy().reshape(T, N)
    np.testing.assert_allclose(seen["gae"][-1]["rewards"], expected, rtol=1e-5, atol=1e-6)


def test_d_is_trained_with_the_expert_as_the_positive_class(tmp_path, monkeypatch):
    """D = P(expert | s, a): after enough steps, D's logits are higher on the expert's pairs than on the policy's,
    and the loss is given the expert's logits first. Run on the discrete toy env, whose expert (a = t mod 2)
    and initial policy (a coin flip) differ in half of the pairs."""
    seen = run(tmp_path, monkeypatch, env_id="CountDiscrete-v0", disc_epochs=30, disc_learning_rate=1e-2)
    x_policy, x_expert = seen["inputs"][-2]["x"], seen["inputs"][-1]["x"]
    ckpt = torch.load(os.path.join(seen["summary"]["run_dir"], "model.pt"), weights_only=True)
    disc = gail.Discriminator(3, 2, gail.Args().disc_hidden_size)
    disc.load_state_dict(ckpt["discriminator"])
    with torch.no_grad():
        # the expert's pairs that the initial policy can also produce are ambiguous; the rest must go to the expert
        expert_logits, policy_logits = disc(x_expert), disc(x_policy)
    assert expert_logits.mean() > policy_logits.mean() + 1.0
    # the first argument of every loss call holds logits of expert pairs: D's last logits there are the higher ones
    last_e, last_p = seen["disc_loss"][-1]
    assert last_e.mean() > last_p.mean()


def test_d_sees_policy_and_expert_states_normalised_with_the_same_statistics(tmp_path, monkeypatch):
    """Both sides of D's data are normalised from raw states with one set of statistics (the rollout's last), and the
    actions are the executed ones (clipped to the bounds) rescaled to [−1, 1]."""
    seen = run(tmp_path, monkeypatch, norm_obs=True, clip_obs=1e6)
    ext = stream(2 * T + 1)
    received = [ext["obs"][t] for t in range(2 * T + 1)]  # reset s_0, then each step's next observation
    stats = reference_running_stats([[x] * N for x in received])
    expert_raw = seen["demos"]["observations"]
    for it in range(2):
        policy_call, expert_call = seen["inputs"][2 * it], seen["inputs"][2 * it + 1]
        at_end = stats[T * (it + 1)]  # every observation received up to the end of rollout `it`
        raw = columns("obs", T, N, it).reshape(T * N, 3)
        np.testing.assert_allclose(policy_call["obs"].numpy(), normalized(raw, at_end), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(expert_call["obs"].numpy(), normalized(expert_raw, at_end), rtol=1e-4, atol=1e-5)
        a = policy_call["x"][:, 3].numpy()
        assert a.min() >= -1 and a.max() <= 1 and np.isclose(np.abs(a), 1).any()  # some draws clipped at a bound
        np.testing.assert_allclose(expert_call["x"][:, 3].numpy(), seen["demos"]["actions"][:, 0], rtol=1e-6)
    # while the policy's batch keeps each action as drawn (log π_θ is the density of the draw, not of its clip)
    assert (torch.cat(seen["losses"]).abs() > 1).any()


def test_learned_rewards_are_scaled_by_the_std_of_their_running_discounted_return(tmp_path, monkeypatch):
    """r̂_t = r_t / √(Var[G] + 1e-8), G_t = γ·G_{t−1} + r_t reset at every episode end (time limits too) and carried
    from one rollout to the next, Var over every G so far (RunningMeanStd's prior included)."""
    seen = run(tmp_path, monkeypatch, norm_reward=True, clip_reward=1e6)
    dones = [columns("terminated", T, N, it) | columns("truncated", T, N, it) for it in range(2)]
    g, history, expected = np.zeros(N), [], []
    for it in range(2):
        learned = seen["learned"][it].numpy().reshape(T, N)
        for t in range(T):
            g = 0.9 * g + learned[t]
            history.append(g.copy())
            g = g * (1 - dones[it][t])
        var = reference_running_stats([np.concatenate(history)])[-1][1]  # one update per rollout, all its G
        expected.append(learned / np.sqrt(var + 1e-8))
    for it in range(2):
        np.testing.assert_allclose(seen["gae"][it]["rewards"], expected[it], rtol=1e-4)
