"""awr.py's equations against naive references: TD(λ) returns against the λ-weighted sum of n-step returns, the
clipped exponential weights against hand-computed values, the log-likelihoods against torch.distributions."""
import math

import numpy as np
import pytest
import torch

import awr


def random_buffer(rng, n=60):
    """A buffer of several stretches: episodes that terminate, episodes cut by a time limit, and a last one that the
    end of the buffer cuts. Returns rewards, next_values, terminations, ends, all (n,)."""
    rewards, next_values = rng.normal(size=n), rng.normal(size=n)
    terminations, ends = np.zeros(n, bool), np.zeros(n, bool)
    t = 0
    while t < n:
        t += int(rng.integers(1, 12))  # an episode of 1–11 steps
        if t <= n:
            ends[t - 1] = True
            terminations[t - 1] = rng.random() < 0.5  # else truncated
    ends[-1] = True  # the end of D
    return rewards, next_values, terminations, ends


def lambda_return_brute_force(rewards, next_values, terminations, ends, gamma, lam, t):
    """(1 − λ) Σ_{n=1}^{N−1} λ^{n−1} G^(n)_t + λ^{N−1} G^(N)_t, with N = the steps from t to its stretch's last step
    (inclusive) and G^(n)_t = Σ_{k<n} γ^k r_{t+k} + γ^n V(s_{t+n}), V(terminal) = 0."""
    last = t
    while not ends[last]:
        last += 1
    big_n = last - t + 1

    def g(n):
        v = 0.0 if terminations[t + n - 1] else next_values[t + n - 1]  # V(s_{t+n}) = next value of step t+n−1
        return sum(gamma ** k * rewards[t + k] for k in range(n)) + gamma ** n * v

    return sum((1 - lam) * lam ** (n - 1) * g(n) for n in range(1, big_n)) + lam ** (big_n - 1) * g(big_n)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("gamma,lam", [(0.99, 0.95), (0.9, 0.0), (0.97, 1.0), (1.0, 0.5)])
def test_td_lambda_equals_the_lambda_weighted_sum_of_n_step_returns(seed, gamma, lam):
    rng = np.random.default_rng(seed)
    buffer = random_buffer(rng)
    got = awr.td_lambda_returns(*buffer, gamma, lam)
    want = [lambda_return_brute_force(*buffer, gamma, lam, t) for t in range(len(got))]
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_td_lambda_special_cases():
    rng = np.random.default_rng(3)
    rewards, next_values, terminations, ends = random_buffer(rng)
    v_next = np.where(terminations, 0.0, next_values)
    # λ = 0: the one-step TD target r_t + γ V(s_{t+1})
    np.testing.assert_allclose(awr.td_lambda_returns(rewards, next_values, terminations, ends, 0.9, 0.0),
                               rewards + 0.9 * v_next)
    # λ = 1 on one terminated episode: the Monte-Carlo discounted reward-to-go, no V at all
    r, end = np.array([1.0, 2.0, 3.0]), np.array([False, False, True])
    got = awr.td_lambda_returns(r, np.full(3, 1e6), end, end, 0.5, 1.0)
    np.testing.assert_allclose(got, [1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3])
    # ... and when a time limit cuts it instead, the cut is bootstrapped with V(s_T)
    got = awr.td_lambda_returns(r, np.array([0.0, 0.0, 8.0]), np.zeros(3, bool), end, 0.5, 1.0)
    np.testing.assert_allclose(got, [1 + 0.5 * 2 + 0.25 * 3 + 0.125 * 8, 2 + 0.5 * 3 + 0.25 * 8, 3 + 0.5 * 8])


def test_weights_by_hand():
    adv = np.array([0.0, math.log(2.0), math.log(20.0) + 1e-9, 10.0, -3.0])
    np.testing.assert_allclose(awr.awr_weights(adv, beta=1.0, w_max=20.0), [1.0, 2.0, 20.0, 20.0, math.exp(-3.0)])
    # β scales the advantages: exp(A/β)
    np.testing.assert_allclose(awr.awr_weights(np.array([0.1, -0.1]), beta=0.05, w_max=20.0),
                               [math.exp(2.0), math.exp(-2.0)])


def test_weights_do_not_overflow():
    adv = np.array([1e3, 1e5, -1e5], np.float64)  # A/β = 2e4 and beyond: exp overflows float64 at 709
    with np.errstate(over="raise"):
        w = awr.awr_weights(adv, beta=0.05, w_max=20.0)
    np.testing.assert_allclose(w, [20.0, 20.0, 0.0])


def test_weights_equal_the_naive_formula_where_it_is_finite():
    rng = np.random.default_rng(0)
    adv = rng.normal(scale=3.0, size=1000)
    np.testing.assert_allclose(awr.awr_weights(adv, 0.7, 20.0), np.minimum(np.exp(adv / 0.7), 20.0), rtol=1e-12)


def test_standardize_and_effective_sample_size():
    x = np.random.default_rng(0).normal(5.0, 3.0, size=500)
    z = awr.standardize(x)
    assert abs(z.mean()) < 1e-12 and z.std() == pytest.approx(1.0, rel=1e-4)
    assert awr.effective_sample_size(np.ones(37)) == pytest.approx(37)
    assert awr.effective_sample_size(np.array([0.0, 5.0, 0.0])) == pytest.approx(1)
    w = np.array([1.0, 3.0])
    assert awr.effective_sample_size(w) == pytest.approx(16 / 10)


def test_log_probs_match_torch_distributions():
    torch.manual_seed(0)
    mu, a, log_std = torch.randn(7, 3), torch.randn(7, 3), torch.full((3,), math.log(0.4))
    want = torch.distributions.Normal(mu, log_std.exp()).log_prob(a).sum(-1)
    torch.testing.assert_close(awr.gaussian_log_prob(a, mu, log_std), want)
    logits, idx = torch.randn(7, 4), torch.randint(0, 4, (7,))
    torch.testing.assert_close(awr.categorical_log_prob(logits, idx), torch.distributions.Categorical(logits=logits).log_prob(idx))


def test_weighted_nll_is_the_weighted_sum_of_per_sample_gradients():
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    obs, actions, w = torch.randn(5, 3), torch.randint(0, 2, (5,)), torch.rand(5)
    loss = awr.weighted_nll(awr.categorical_log_prob(net(obs), actions), w)
    got = torch.autograd.grad(loss, net.weight)[0]
    want = torch.zeros_like(got)
    for i in range(5):  # −(1/m) Σ_i w_i ∇ log π(a_i|s_i)
        logp = awr.categorical_log_prob(net(obs[i:i + 1]), actions[i:i + 1])[0]
        want -= w[i] * torch.autograd.grad(logp, net.weight)[0] / 5
    torch.testing.assert_close(got, want)
    # all weights 1: the behaviour-cloning negative log-likelihood
    ones = awr.weighted_nll(awr.categorical_log_prob(net(obs), actions), torch.ones(5))
    torch.testing.assert_close(ones, torch.nn.functional.cross_entropy(net(obs), actions))


def test_action_bound_loss_by_hand():
    mu = torch.tensor([[0.5, -0.9], [1.5, -3.0]])
    # only the second row is outside: ½·((1.5 − 1)² + (−3 + 1)²) = ½·4.25, averaged over the 2 rows
    assert awr.action_bound_loss(mu).item() == pytest.approx(0.5 * 4.25 / 2)
    assert awr.action_bound_loss(torch.rand(10, 3) * 2 - 1).item() == 0.0


def test_minibatches_visit_every_sample_once_per_pass():
    idx = awr.minibatch_indices(100, 30, 10, torch.Generator().manual_seed(0))  # 300 = 3 passes over 100
    assert idx.shape == (10, 30)
    for p in range(3):
        assert sorted(idx.flatten()[p * 100:(p + 1) * 100].tolist()) == list(range(100))


def test_numpy_actor_equals_the_torch_actor():
    torch.manual_seed(0)
    net = awr.relu_mlp(5, (16, 8), 3, out_scale=0.5)
    x = np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32)
    np.testing.assert_allclose(awr.numpy_relu_mlp(awr.numpy_weights(net), x),
                               net(torch.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_deterministic_policy_maps_the_normalised_mean_to_the_bounds():
    class Fixed(torch.nn.Module):
        def forward(self, x):
            return torch.tensor([[0.0, 1.0, -1.0, 3.0]]).expand(len(x), 4)

    low, high = np.array([-2.0, 0.0, -1.0, -1.0]), np.array([2.0, 4.0, 1.0, 1.0])
    policy = awr.DeterministicPolicy(Fixed(), None, 10.0, False, low, high)
    torch.testing.assert_close(policy(torch.zeros(2, 3))[0], torch.tensor([0.0, 4.0, -1.0, 1.0]))  # last: clipped


def test_value_is_scaled_by_one_over_one_minus_gamma():
    torch.manual_seed(0)
    agent = awr.Agent(3, 2, True, (8,), gamma=0.9)
    obs = torch.randn(4, 3)
    torch.testing.assert_close(agent.value(obs), agent.critic(obs).squeeze(-1) * 10.0)


def test_deterministic_policy_normalises_as_training_does():
    """The deployed policy's actor sees what normalize_obs gives it: (s − μ)/max(σ, floor), clipped."""
    rms = awr.RunningMeanStd((3,))
    rms.mean, rms.var = np.array([1.0, -2.0, 0.5]), np.array([4.0, 1e-6, 0.25])  # σ 2, 0.001 (floored), 0.5
    obs = np.array([[3.0, -1.9, 10.0], [-1.0, -2.0, 0.0]], np.float32)
    policy = awr.DeterministicPolicy(torch.nn.Identity(), rms, 15.0, True, None, None, std_floor=0.01)
    torch.testing.assert_close(policy.actor_output(torch.from_numpy(obs)),
                               torch.from_numpy(awr.normalize_obs(obs, rms, 15.0, 0.01)))
    # 0.1/max(0.001, 0.01) = 10 (100 without the floor); 9.5/0.5 = 19, clipped to 15
    np.testing.assert_allclose(awr.normalize_obs(obs, rms, 15.0, 0.01), [[1.0, 10.0, 15.0], [-1.0, 0.0, -1.0]],
                               rtol=1e-5)
