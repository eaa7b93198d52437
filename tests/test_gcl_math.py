"""gcl.py's importance-sampled partition function against enumeration on a small MDP whose trajectories can be listed:
log Ẑ and ∇ log Ẑ match the exact log Z and its gradient with enough samples."""
import itertools
import math

import numpy as np
import pytest
import torch

import gcl


@pytest.fixture(autouse=True)
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


S, A, T = 3, 2, 3  # states, actions, horizon: 3·(2·3)^3 = 648 trajectories


def small_mdp():
    rng = np.random.default_rng(0)
    rho0 = torch.as_tensor(rng.dirichlet(np.ones(S)))
    P = torch.as_tensor(rng.dirichlet(np.ones(S), size=(S, A)))  # P[s, a, s']
    pi = torch.as_tensor(rng.dirichlet(2 * np.ones(A), size=S))  # the sampling policy π[s, a]
    r = torch.as_tensor(rng.normal(size=(S, A)), dtype=torch.float64).requires_grad_(True)  # r_θ(s, a) as a table
    return rho0, P, pi, r


def exact_log_z(rho0, P, r):
    """log Σ_τ p(τ) exp(Σ_t r(s_t, a_t)) over every (s_0, a_0, ..., s_{T−1}, a_{T−1})."""
    terms = []
    for states in itertools.product(range(S), repeat=T):
        for actions in itertools.product(range(A), repeat=T):
            log_p = torch.log(rho0[states[0]]) + sum(torch.log(P[states[t], actions[t], states[t + 1]])
                                                     for t in range(T - 1))
            terms.append(log_p + sum(r[states[t], actions[t]] for t in range(T)))
    return torch.logsumexp(torch.stack(terms), 0)


def sample(rho0, P, pi, num, gen):
    """num trajectories from q(τ) = p(τ) Π π(a_t|s_t): states and actions (num, T)."""
    s = torch.multinomial(rho0, num, replacement=True, generator=gen)
    states, actions = [], []
    for t in range(T):
        a = torch.multinomial(pi[s], 1, generator=gen)[:, 0]
        states.append(s)
        actions.append(a)
        s = torch.multinomial(P[s, a], 1, generator=gen)[:, 0]
    return torch.stack(states, 1), torch.stack(actions, 1)


def test_importance_sampled_log_z_and_gradient_match_enumeration():
    rho0, P, pi, r = small_mdp()
    log_z = exact_log_z(rho0, P, r)
    (grad_exact,) = torch.autograd.grad(log_z, r)
    states, actions = sample(rho0, P, pi, 200_000, torch.Generator().manual_seed(0))
    returns = r[states, actions].sum(1)  # R_θ(τ_j)
    log_q = torch.log(pi[states, actions]).sum(1)  # the dynamics cancel: only Σ log π enters the weights
    log_z_hat = gcl.log_partition_estimate(returns, log_q)
    (grad_hat,) = torch.autograd.grad(log_z_hat, r)
    assert log_z_hat.item() == pytest.approx(log_z.item(), abs=0.01)
    # ∇ log Z = E_{p_θ}[Σ_t ∇r(s_t, a_t)]: the expected visit counts of each (s, a) under the MaxEnt model
    assert grad_hat.numpy() == pytest.approx(grad_exact.numpy(), abs=0.01)
    assert float(grad_exact.sum()) == pytest.approx(T)  # T visits in all: a check of the enumeration itself


def test_log_z_stays_finite_where_exp_overflows():
    returns, log_q = torch.tensor([5000.0, 4990.0]), torch.tensor([-3000.0, -3000.0])
    expected = 8000 + math.log((1 + math.exp(-10)) / 2)
    assert float(gcl.log_partition_estimate(returns.float(), log_q.float())) == pytest.approx(expected, rel=1e-6)


def test_mixture_density_and_ess_by_hand():
    log_q = torch.log(torch.tensor([[0.2, 0.5], [0.4, 0.1]]))  # (k = 2 policies, M = 2 trajectories)
    assert gcl.mixture_log_density(log_q).exp().numpy() == pytest.approx([0.3, 0.3])
    assert gcl.effective_sample_size(torch.zeros(7)) == pytest.approx(7)
    assert gcl.effective_sample_size(torch.tensor([0.0, -1000.0, -1000.0])) == pytest.approx(1)
    w = torch.tensor([1.0, 2.0, 3.0])
    assert gcl.effective_sample_size(torch.log(w)) == pytest.approx(36 / 14)


def test_ioc_loss_is_minus_demo_return_plus_log_z_hat():
    returns_demo, returns_bg, log_q = torch.tensor([1.0, 3.0]), torch.tensor([0.5, -0.5]), torch.tensor([-1.0, -2.0])
    log_z_hat = math.log((math.exp(1.5) + math.exp(1.5)) / 2)
    assert float(gcl.ioc_loss(returns_demo, returns_bg, log_q)) == pytest.approx(-(2.0 - log_z_hat))


def test_rollout_segments_stay_within_one_episode_and_start_where_the_demos_are_cut():
    # (T = 6, N = 2): env 0 runs one episode from t = 0; env 1 is at time 3 of an episode that ends after step 1
    # (time 4), then a new one starts at step 2 with time 0.
    times = np.array([[0, 3], [1, 4], [2, 0], [3, 1], [4, 2], [5, 3]])
    # segments of 2: env 0 at steps (0,1), (2,3), (4,5); env 1 at (2,3) and (4,5) (times 0–1 and 2–3), not at
    # (0,1), which starts at the odd time 3 and crosses the episode's end. Flat index t·N + i.
    got = gcl.rollout_segments(times, 2)
    assert sorted(map(tuple, got.tolist())) == sorted([(0, 2), (4, 6), (8, 10), (5, 7), (9, 11)])
    assert gcl.rollout_segments(times, 1).ravel().tolist() == list(range(12))  # L = 1: every step
    assert gcl.rollout_segments(times, 6).tolist() == [[0, 2, 4, 6, 8, 10]]  # env 0's whole episode only
    assert gcl.rollout_segments(times, 7).shape == (0, 7)


def test_episode_segments_cut_each_demo_from_its_start():
    got = gcl.episode_segments(np.array([5, 3, 1]), 2)  # episodes at flat indices 0–4, 5–7, 8
    assert got.tolist() == [[0, 1], [2, 3], [5, 6]]
    assert gcl.episode_segments(np.array([5, 3]), 1).ravel().tolist() == list(range(8))
    assert gcl.episode_segments(np.array([2, 2]), 3).shape == (0, 3)


def test_local_constancy_penalty_is_the_squared_second_difference():
    assert float(gcl.local_constancy_penalty(torch.tensor([[1.0, 2.0, 3.0], [5.0, 3.0, 1.0]]))) == 0  # linear: 0
    # (0 − 2·1 + 0)² = 4 and (1 − 2·1 + 3)² = 4, mean 4; one more: (0 − 0 + 3)² = 9 -> (4 + 4 + 9) / 3
    r = torch.tensor([[0.0, 1.0, 0.0], [1.0, 1.0, 3.0], [0.0, 0.0, 3.0]])
    assert float(gcl.local_constancy_penalty(r)) == pytest.approx(17 / 3)


def test_the_ppo_and_reward_input_copies_equal_gail_py(float64):
    # gcl.py carries its own copies of gail.py's PPO update and input scaling (tests/test_gail_math.py checks those
    # against brute force); these must stay equal.
    import gail
    g = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    T, N = 7, 3
    arrays = [rng.normal(size=(T, N)) for _ in range(3)] + [(rng.random((T, N)) < 0.2).astype(float)] * 2
    assert np.array_equal(gcl.compute_gae(*arrays, 0.99, 0.95), gail.compute_gae(*arrays, 0.99, 0.95))
    ratio, adv, v, v_old, ret = (torch.rand(8, generator=g) + 0.5 for _ in range(5))
    assert torch.equal(gcl.ppo_clip_loss(ratio, adv, 0.2), gail.ppo_clip_loss(ratio, adv, 0.2))
    assert torch.equal(gcl.value_loss(v, v_old, ret, 0.2), gail.value_loss(v, v_old, ret, 0.2))
    a, mu, log_std = torch.randn(5, 2, generator=g), torch.randn(5, 2, generator=g), torch.randn(2, generator=g)
    assert torch.equal(gcl.gaussian_log_prob(a, mu, log_std), gail.gaussian_log_prob(a, mu, log_std))
    low, high = torch.tensor([-1.0, -2.0]), torch.tensor([1.0, 3.0])
    obs, act = torch.randn(5, 4, generator=g), 3 * torch.randn(5, 2, generator=g)
    assert torch.equal(gcl.reward_input(obs, act, False, 2, low, high),
                       gail.discriminator_input(obs, act, False, 2, low, high))


def test_policy_reward_removes_the_constant_the_ioc_loss_leaves_free():
    r = np.array([[0.5, -2.0], [1.0, -1.5]])
    assert gcl.policy_reward(r, "batch-min").tolist() == [[2.5, 0.0], [3.0, 0.5]]  # every step ≥ 0, differences kept
    assert gcl.policy_reward(r, "none") is r
    # the constant is free: the IOC loss of r_θ + c equals that of r_θ (segments of L = 3 steps, so R shifts by 3c)
    returns_demo, returns_bg, log_q = torch.tensor([1.0, 3.0]), torch.tensor([0.5, -0.5, 2.0]), torch.tensor([-1.0, -2.0, 0.3])
    assert float(gcl.ioc_loss(returns_demo + 3 * 7.0, returns_bg + 3 * 7.0, log_q)) == pytest.approx(
        float(gcl.ioc_loss(returns_demo, returns_bg, log_q)))


def test_pooled_background_density_gives_an_unbiased_log_z(float64):
    """1-D, K = 2 policy batches drawn from N(−1, 1) and N(1.5, 0.7²), one demo batch of the same size from
    p̂ = N(0, 0.5²); the reward R(x) = log N(x; 0.3, 0.8²) has Z = ∫ exp R = 1. Every sample weighted under the
    pooled density (q_1 + q_2 + p̂)/3, log Ẑ = 0 within 0.005 (n = 100k a batch); the earlier weighting (samples
    under q = ½(q_1 + q_2), demos under ½q + ½p̂) is biased by +0.04."""
    def log_normal(x, m, s):
        return -0.5 * ((x - m) / s) ** 2 - math.log(s) - 0.5 * math.log(2 * math.pi)

    g = torch.Generator().manual_seed(0)
    n = 100_000
    x = torch.cat([-1 + torch.randn(n, generator=g), 1.5 + 0.7 * torch.randn(n, generator=g),
                   0.5 * torch.randn(n, generator=g)])
    log_q = torch.stack([log_normal(x, -1, 1), log_normal(x, 1.5, 0.7)])  # (K, M), every sample under each policy
    log_p = log_normal(x, 0, 0.5)
    returns = log_normal(x, 0.3, 0.8)
    pooled = gcl.background_log_density(log_q, log_p)
    torch.testing.assert_close(pooled, torch.log((log_q.exp().sum(0) + log_p.exp()) / 3))
    assert abs(float(gcl.log_partition_estimate(returns, pooled))) < 0.005
    q = gcl.mixture_log_density(log_q)
    earlier = torch.cat([q[:2 * n], gcl.mixture_log_density(torch.stack([q[2 * n:], log_p[2 * n:]]))])
    assert float(gcl.log_partition_estimate(returns, earlier)) > 0.03
    # without demos in the background: the K policies' mixture
    torch.testing.assert_close(gcl.background_log_density(log_q, None), q)
