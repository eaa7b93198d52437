"""reinforce.py's equations against brute force: reward-to-go, baselines, and the pseudo-loss's gradient.

The last tests are statistical: on a small tabular MDP whose exact gradient ∇J is computed by dynamic
programming, thousands of sampled batches show that every estimator's mean is ∇J (the baselines are unbiased)
while their variances fall in the order the lecture argues. The sampling is seeded, so each run of the test is
the same; the tolerances are 4 standard errors of the Monte-Carlo means.
"""
import numpy as np
import pytest
import torch

import reinforce


def random_batch(rng, num_episodes, max_len=7):
    """Episodes laid end to end: rewards (B,), dones (B,), lengths (N,)."""
    lengths = rng.integers(1, max_len + 1, size=num_episodes)
    rewards = rng.normal(size=lengths.sum())
    dones = np.zeros(lengths.sum())
    dones[np.cumsum(lengths) - 1] = 1.0
    return rewards, dones, lengths


def split(x, lengths):
    return np.split(x, np.cumsum(lengths)[:-1])


@pytest.mark.parametrize("gamma", [1.0, 0.9, 0.0])
def test_reward_to_go_matches_a_double_loop(gamma):
    rng = np.random.default_rng(0)
    rewards, dones, lengths = random_batch(rng, 6)
    bootstrap = np.zeros_like(rewards)
    ends = np.cumsum(lengths) - 1
    bootstrap[ends[::2]] = rng.normal(size=len(ends[::2]))  # γ·V(s_T) after every other episode
    for boot in (None, bootstrap):
        got = reinforce.reward_to_go(rewards, dones, gamma, boot)
        expected = []
        for r, b in zip(split(rewards, lengths), split(np.zeros_like(rewards) if boot is None else boot, lengths)):
            T = len(r)
            for t in range(T):
                # Q̂_t = Σ_{t'=t}^{T−1} γ^{t'−t} r_{t'} + γ^{T−1−t}·(γ·V(s_T))
                q = sum(gamma ** (tp - t) * r[tp] for tp in range(t, T))
                expected.append(q + gamma ** (T - 1 - t) * b[-1])
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_total_return_is_the_discounted_sum_of_the_whole_episode():
    rng = np.random.default_rng(1)
    rewards, dones, lengths = random_batch(rng, 5)
    got = reinforce.total_return(reinforce.reward_to_go(rewards, dones, 0.95), lengths)
    expected = np.concatenate([np.full(len(r), sum(0.95 ** t * x for t, x in enumerate(r))) for r in split(rewards, lengths)])
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_average_baseline_leaves_the_episode_out():
    rng = np.random.default_rng(2)
    rewards, dones, lengths = random_batch(rng, 5)
    psi = reinforce.reward_to_go(rewards, dones, 1.0)
    episodes = split(psi, lengths)
    # per step: the mean of ψ_{j,t} over the other episodes j still running at t (0 when there is none)
    expected = []
    for i, ep in enumerate(episodes):
        for t in range(len(ep)):
            others = [e[t] for j, e in enumerate(episodes) if j != i and len(e) > t]
            expected.append(np.mean(others) if others else 0.0)
    np.testing.assert_allclose(reinforce.average_baseline(psi, lengths, per_step=True), expected, rtol=1e-12, atol=1e-12)
    # constant: the mean total return of the other episodes, at every step of episode i
    total = reinforce.total_return(psi, lengths)
    returns = np.array([e[0] for e in episodes])
    expected = np.concatenate([np.full(n, (returns.sum() - returns[i]) / (len(returns) - 1)) for i, n in enumerate(lengths)])
    np.testing.assert_allclose(reinforce.average_baseline(total, lengths, per_step=False), expected, rtol=1e-12)
    # one episode: no other to average, so no baseline
    one = np.array([3.0, 2.0, 1.0])
    assert np.all(reinforce.average_baseline(one, np.array([3]), per_step=True) == 0)


def test_normalize_gives_zero_mean_unit_std():
    x = np.random.default_rng(3).normal(5.0, 3.0, size=100)
    y = reinforce.normalize(x)
    assert abs(y.mean()) < 1e-12 and abs(y.std() - 1) < 1e-6


def test_pseudo_loss_gradient_is_the_score_function_estimate_of_a_tabular_softmax_policy():
    """∇_θ L̃ = −(1/N) Σ_i Σ_t ∇_θ log π_θ(a_{i,t}|s_{i,t})·ψ_{i,t}, with the softmax score written out by hand:
    ∂ log softmax(θ_s)_a / ∂θ_{s,b} = 1[b = a] − π_θ(b|s)."""
    rng = np.random.default_rng(4)
    S, A, B, N = 4, 3, 30, 5
    theta = torch.tensor(rng.normal(size=(S, A)), requires_grad=True)
    states, actions = rng.integers(S, size=B), rng.integers(A, size=B)
    psi = rng.normal(size=B)
    logp = reinforce.categorical_log_prob(theta[torch.from_numpy(states)], torch.from_numpy(actions))
    reinforce.pseudo_loss(logp, torch.from_numpy(psi), N).backward()

    pi = np.exp(theta.detach().numpy()) / np.exp(theta.detach().numpy()).sum(1, keepdims=True)
    g = np.zeros((S, A))  # the estimate of ∇_θ J
    for s, a, w in zip(states, actions, psi):
        score = -pi[s].copy()
        score[a] += 1.0
        g[s] += score * w / N
    np.testing.assert_allclose(theta.grad.numpy(), -g, rtol=1e-10, atol=1e-12)


def test_pseudo_loss_gradient_for_a_gaussian_policy():
    """For π = N(μ, σ²) with μ the parameter: ∂ log π / ∂μ = (a − μ)/σ² and ∂ log π / ∂ log σ = (a − μ)²/σ² − 1."""
    rng = np.random.default_rng(5)
    B, A, N = 20, 2, 4
    mu = torch.tensor(rng.normal(size=A), requires_grad=True)
    log_std = torch.tensor(rng.normal(size=A) * 0.3, requires_grad=True)
    a = rng.normal(size=(B, A))
    psi = rng.normal(size=B)
    logp = reinforce.gaussian_log_prob(torch.from_numpy(a), mu.expand(B, A), log_std)
    reinforce.pseudo_loss(logp, torch.from_numpy(psi), N).backward()
    m, var = mu.detach().numpy(), np.exp(2 * log_std.detach().numpy())
    g_mu = (psi[:, None] * (a - m) / var).sum(0) / N
    g_log_std = (psi[:, None] * ((a - m) ** 2 / var - 1)).sum(0) / N
    np.testing.assert_allclose(mu.grad.numpy(), -g_mu, rtol=1e-10)
    np.testing.assert_allclose(log_std.grad.numpy(), -g_log_std, rtol=1e-10)


def test_pseudo_loss_refuses_weights_that_carry_a_gradient():
    w = torch.ones(3, requires_grad=True)
    with pytest.raises(AssertionError):
        reinforce.pseudo_loss(torch.zeros(3), w, 1)


# ── The variance story on a small MDP whose exact gradient is known ──────────────────────────────────
S, A, H = 3, 2, 4  # states, actions, time limit (an episode is cut after H steps)
MDP_RNG = np.random.default_rng(6)
REWARD = MDP_RNG.normal(1.0, 1.0, size=(S, A))  # r(s, a): mostly positive, as in CartPole, where baselines matter
P = MDP_RNG.dirichlet(np.ones(S), size=(S, A))  # p(s'|s, a), (S, A, S)
P_END = MDP_RNG.uniform(0.1, 0.4, size=(S, A))  # probability that (s, a) ends the episode
THETA = MDP_RNG.normal(0.0, 0.5, size=(S, A))  # the tabular softmax policy's logits


def exact_values(theta: torch.Tensor):
    """J(θ) and the time-indexed values V_t(s), t < H, by backward dynamic programming (γ = 1, s_0 = 0)."""
    pi = torch.softmax(theta, -1)
    r, p, end = (torch.as_tensor(x) for x in (REWARD, P, P_END))
    v_next = torch.zeros(S, dtype=theta.dtype)
    values = []
    for _ in range(H):
        q = r + (1 - end) * (p @ v_next)  # Q_t(s, a), (S, A)
        v_next = (pi * q).sum(-1)  # V_t(s), (S,)
        values.append(v_next)
    return v_next[0], values[::-1]


def sample_batch(rng, pi, num_episodes):
    """num_episodes episodes from s_0 = 0, run side by side: states, actions, rewards, dones (B,), lengths (N,),
    laid end to end as reinforce.py lays out a batch."""
    s = np.zeros(num_episodes, np.int64)
    alive = np.ones(num_episodes, bool)
    steps = []  # per time step: (alive mask, s, a, r, done), each (N,)
    for t in range(H):
        a = (rng.random(num_episodes)[:, None] > np.cumsum(pi[s], -1)).sum(-1)  # a ~ π(·|s) by inverse CDF
        a = np.minimum(a, A - 1)  # (guards a cumulative sum that rounds to just below 1)
        done = (rng.random(num_episodes) < P_END[s, a]) | (t == H - 1)
        steps.append((alive.copy(), s, a, REWARD[s, a], done))
        s_next = (rng.random(num_episodes)[:, None] > np.cumsum(P[s, a], -1)).sum(-1)
        s, alive = np.minimum(s_next, S - 1), alive & ~done
    alive_m, s_m, a_m, r_m, d_m = (np.stack(x, 1) for x in zip(*steps))  # (N, H) each
    # episode by episode (row-major), keeping only the steps before each episode's end
    return s_m[alive_m], a_m[alive_m], r_m[alive_m], d_m[alive_m].astype(float), alive_m.sum(1)


def test_baselines_are_unbiased_and_reduce_variance():
    theta = torch.tensor(THETA, requires_grad=True)
    J, values = exact_values(theta)
    (exact_grad,) = torch.autograd.grad(J, theta)
    exact_grad = exact_grad.numpy().ravel()
    v_table = np.stack([v.detach().numpy() for v in values])  # V_t(s), (H, S): a perfect time-aware "learned" value
    pi = np.exp(THETA) / np.exp(THETA).sum(-1, keepdims=True)

    rng = np.random.default_rng(7)
    M, N = 4000, 4  # batches, episodes per batch
    names = ["total", "total + average", "reward_to_go", "reward_to_go + average", "reward_to_go + value",
             "total + average with τ_i (notes)"]
    grads = {name: np.zeros((M, S * A)) for name in names}
    for m in range(M):
        states, actions, rewards, dones, lengths = sample_batch(rng, pi, N)
        rtg = reinforce.reward_to_go(rewards, dones, 1.0)
        total = reinforce.total_return(rtg, lengths)
        t_index = np.concatenate([np.arange(n) for n in lengths])
        psis = {
            "total": total,
            "total + average": total - reinforce.average_baseline(total, lengths, per_step=False),
            "reward_to_go": rtg,
            "reward_to_go + average": rtg - reinforce.average_baseline(rtg, lengths, per_step=True),
            "reward_to_go + value": rtg - v_table[t_index, states],
            # the notes' b = (1/N) Σ_j r(τ_j), τ_i included
            "total + average with τ_i (notes)": total - total[np.cumsum(lengths) - 1].mean(),
        }
        # ∇_θ log π_θ(a_t|s_t) of the tabular softmax, (B, S·A): row s_t holds e_{a_t} − π(·|s_t) (the previous
        # test checks this against autograd of the pseudo-loss)
        score = np.zeros((len(states), S, A))
        score[np.arange(len(states)), states] = -pi[states]
        score[np.arange(len(states)), states, actions] += 1.0
        score = score.reshape(len(states), S * A)
        for name, psi in psis.items():
            grads[name][m] = psi @ score / N  # ĝ = (1/N) Σ_i Σ_t ∇ log π_θ(a_{i,t}|s_{i,t})·ψ_{i,t}

    stats = {}
    for name, gs in grads.items():
        mean, se = gs.mean(0), gs.std(0) / np.sqrt(M)
        stats[name] = (mean, se, gs.var(0).sum())  # total variance tr Cov[ĝ]
    for name in names[:-1]:
        mean, se, _ = stats[name]
        # unbiased: every component within 4 standard errors of the exact gradient
        assert np.all(np.abs(mean - exact_grad) <= 4 * se + 1e-12), (name, mean, exact_grad, se)
    var = {name: s[2] for name, s in stats.items()}
    assert var["reward_to_go"] < var["total"]
    assert var["total + average"] < var["total"]
    assert var["reward_to_go + average"] < var["reward_to_go"]
    assert var["reward_to_go + value"] < var["reward_to_go"]
    # The notes' baseline, which includes τ_i itself, shrinks the expected gradient to (1 − 1/N)·∇J ...
    mean, se, _ = stats["total + average with τ_i (notes)"]
    assert np.all(np.abs(mean - (1 - 1 / N) * exact_grad) <= 4 * se + 1e-12)
    # ... and with N = 4 the shrink is measurable: the mean is more than 4 standard errors from ∇J
    assert np.linalg.norm(mean - exact_grad) > 4 * np.linalg.norm(se), (mean, exact_grad, se)


def test_batches_of_at_least_b_steps_bias_the_average_and_a_fixed_episode_count_does_not():
    """reinforce.py's default batch collects whole episodes until it holds --batch-steps steps, so the number N of
    episodes in it depends on their lengths, and ĝ = (1/N) Σ_i g_i is not unbiased: on this MDP (episodes of 1–4
    steps, batches of ≥ 4 steps, N ≈ 1.7) the mean lies many standard errors from ∇J. With --batch-episodes, N is
    fixed and the same estimator is unbiased. (The bias shrinks as batches grow; here they are small to make it
    measurable.)"""
    theta = torch.tensor(THETA, requires_grad=True)
    J, _ = exact_values(theta)
    (exact_grad,) = torch.autograd.grad(J, theta)
    exact_grad = exact_grad.numpy().ravel()
    pi = np.exp(THETA) / np.exp(THETA).sum(-1, keepdims=True)
    rng = np.random.default_rng(8)

    def estimate(min_steps=None, num_episodes=None):
        """ĝ of one batch, collected as reinforce.py does: whole episodes until ≥ min_steps, or exactly num_episodes."""
        parts = []
        while (sum(len(p[0]) for p in parts) < min_steps) if min_steps else (len(parts) < num_episodes):
            parts.append(sample_batch(rng, pi, 1))
        states, actions, rewards, dones = (np.concatenate([p[k] for p in parts]) for k in range(4))
        rtg = reinforce.reward_to_go(rewards, dones, 1.0)
        score = np.zeros((len(states), S, A))
        score[np.arange(len(states)), states] = -pi[states]
        score[np.arange(len(states)), states, actions] += 1.0
        return rtg @ score.reshape(len(states), S * A) / len(parts), len(parts)

    M = 16_000
    for kind, kwargs in (("steps", {"min_steps": 4}), ("episodes", {"num_episodes": 2})):
        grads, counts = zip(*(estimate(**kwargs) for _ in range(M)))
        grads = np.asarray(grads)
        mean, se = grads.mean(0), grads.std(0) / np.sqrt(M)
        z = np.abs(mean - exact_grad) / (se + 1e-12)
        if kind == "steps":
            assert 1.5 < np.mean(counts) < 2
            assert z.max() > 6, z  # biased: far outside what sampling noise explains
        else:
            assert z.max() < 4.5, z  # unbiased: every component within the noise (12 components)
