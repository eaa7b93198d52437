"""gcl.py's data collection and its background set, checked on the toy env of known answers (tests/toy_envs.py).

Spies on gcl.py's own functions record what the rollout hands to the math: the bootstrapping of ppo.py's learner,
the background set's log-densities (each stored policy scoring each stored batch with its own weights and its own
normalisation statistics), r_θ's inputs, and the reward the policy is trained on. One env (N = 1), so that every
row of a rollout is a distinct state of the known stream.
"""
import os

import numpy as np
import torch

import gcl
import toy_envs
from toy_envs import columns, normalized, reference_running_stats, stream

T = 16


def run(tmp_path, monkeypatch, env_id="Count-v0", iterations=2, **overrides) -> dict:
    demos = toy_envs.write_expert(str(tmp_path / "expert"), env_id, episodes=4)
    seen = {"gae": [], "weights": [], "log_q": [], "inputs": [], "demos": demos}
    real = {name: getattr(gcl, name) for name in ("compute_gae", "numpy_weights", "background_log_density",
                                                   "reward_input")}

    def gae_spy(rewards, values, next_values, terminated, dones, gamma, lam):
        seen["gae"].append(dict(rewards=np.array(rewards), values=np.array(values), next_values=np.array(next_values),
                                terminated=np.array(terminated), dones=np.array(dones), gamma=gamma, lam=lam))
        return real["compute_gae"](rewards, values, next_values, terminated, dones, gamma, lam)

    def weights_spy(net):
        out = real["numpy_weights"](net)
        seen["weights"].append(out)
        return out

    def log_q_spy(log_q_per_policy, log_p_demo):
        seen["log_q"].append(log_q_per_policy.clone())
        return real["background_log_density"](log_q_per_policy, log_p_demo)

    def input_spy(obs, actions, *rest):
        x = real["reward_input"](obs, actions, *rest)
        seen["inputs"].append({"obs": obs.clone(), "actions": actions.clone(), "x": x.clone()})
        return x

    monkeypatch.setattr(gcl, "compute_gae", gae_spy)
    monkeypatch.setattr(gcl, "numpy_weights", weights_spy)
    monkeypatch.setattr(gcl, "background_log_density", log_q_spy)
    monkeypatch.setattr(gcl, "reward_input", input_spy)
    monkeypatch.setattr(gcl.Agent, "value",
                        lambda self, obs: obs[:, 0] + 3 * obs[:, 1] + 0 * self.critic(obs).squeeze(-1))
    kwargs = dict(env=env_id, demos=str(tmp_path / "expert" / "demos.npz"), num_demos=4, num_envs=1, num_steps=T,
                  total_timesteps=iterations * T, num_minibatches=2, update_epochs=1, irl_steps=2,
                  norm_obs=False, norm_reward=False, eval_episodes=1, runs_dir=str(tmp_path / "runs"),
                  gamma=0.9, gae_lambda=0.8, clip_obs=1e6)
    kwargs.update(overrides)
    seen["summary"] = gcl.main(gcl.Args(**kwargs))
    seen["args"] = kwargs
    return seen


def test_terminal_and_done_flags_and_bootstrap_states(tmp_path, monkeypatch):
    seen = run(tmp_path, monkeypatch)
    assert len(seen["gae"]) == 2
    for it, call in enumerate(seen["gae"]):
        np.testing.assert_array_equal(call["terminated"], columns("terminated", T, 1, it))
        np.testing.assert_array_equal(call["dones"], columns("terminated", T, 1, it) | columns("truncated", T, 1, it))
        obs, next_obs = columns("obs", T, 1, it), columns("next_obs", T, 1, it)
        np.testing.assert_allclose(call["values"], obs[..., 0] + 3 * obs[..., 1])
        np.testing.assert_allclose(call["next_values"], next_obs[..., 0] + 3 * next_obs[..., 1])
        assert call["gamma"] == 0.9 and call["lam"] == 0.8


def test_each_stored_policy_scores_each_stored_batch_with_its_own_weights_and_statistics(tmp_path, monkeypatch):
    """log q_κ(τ) = Σ_t log π_κ(a_t|s_t) with π_κ's weights and the normaliser statistics of π_κ's rollout start;
    the background holds the last K = 2 batches, oldest first, and the rows are the last K policies, oldest first."""
    K, iterations = 2, 3
    seen = run(tmp_path, monkeypatch, env_id="CountDiscrete-v0", iterations=iterations, num_past_policies=K,
               norm_obs=True)
    ext = stream(iterations * T + 1)
    stats = reference_running_stats([[x] for x in ext["obs"]])  # stats[j]: after the j + 1 first observations
    weights = seen["weights"][0::2]  # numpy_weights is called twice per iteration (rollout, then background)
    # per iteration: reward_input for each background batch (oldest first), the demos, then the new batch
    calls_per_iteration = [min(i + 1, K) + 2 for i in range(iterations)]
    starts = np.cumsum([0] + calls_per_iteration)
    actions = [seen["inputs"][starts[i + 1] - 1]["actions"] for i in range(iterations)]  # each new batch's a_t
    call = 0
    for i in range(iterations):
        batches = list(range(max(0, i - K + 1), i + 1))
        for j in batches:
            log_q = seen["log_q"][call]
            call += 1
            assert log_q.shape == (len(batches), T)
            raw = ext["obs"][j * T:(j + 1) * T]
            for row, kappa in enumerate(batches):
                x = normalized(raw, stats[kappa * T]).astype(np.float32)  # π_κ's view: its rollout's start
                logits = torch.from_numpy(gcl.numpy_mlp(weights[kappa], x))
                expected = torch.log_softmax(logits, -1).gather(-1, actions[j][:, None]).squeeze(-1)
                torch.testing.assert_close(log_q[row].float(), expected.float(), rtol=1e-4, atol=1e-4)


def test_r_theta_reads_demos_and_samples_with_one_set_of_statistics_and_trains_the_policy(tmp_path, monkeypatch):
    """r_θ's inputs: the new batch and the demos both normalised with this rollout's starting statistics; the policy
    is then trained on r_θ(s_t, a_t) of its own pairs (minus the batch minimum), r_θ as model.pt holds it."""
    seen = run(tmp_path, monkeypatch, norm_obs=True)
    ext = stream(2 * T + 1)
    stats = reference_running_stats([[x] for x in ext["obs"]])
    at_start = stats[T]  # the second rollout starts after T + 1 observations
    x_demo_call, x_policy_call = seen["inputs"][-2], seen["inputs"][-1]
    np.testing.assert_allclose(x_policy_call["obs"].numpy(), normalized(ext["obs"][T:2 * T], at_start),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(x_demo_call["obs"].numpy(), normalized(seen["demos"]["observations"], at_start),
                               rtol=1e-4, atol=1e-5)
    ckpt = torch.load(os.path.join(seen["summary"]["run_dir"], "model.pt"), weights_only=True)
    reward_net = gcl.RewardNet(3, 1, gcl.Args().reward_hidden_size)
    reward_net.load_state_dict(ckpt["reward_net"])
    with torch.no_grad():
        r = reward_net(x_policy_call["x"]).numpy().reshape(T, 1)
    np.testing.assert_allclose(seen["gae"][-1]["rewards"], r - r.min(), rtol=1e-5, atol=1e-5)
