"""ppo.py's equations against brute-force or closed-form references.

gail.py and gcl.py train their policies with their own copies of ppo.py's learner; every test below that takes
`learner` runs against each copy, so a slip in any of them fails here (not only a difference between copies).
"""
import numpy as np
import pytest
import torch
from torch.distributions import Categorical, Normal, kl_divergence

import gail
import gcl
import ppo


@pytest.fixture(params=[ppo, gail, gcl], ids=lambda m: m.__name__)
def learner(request):
    """ppo.py, or one of the scripts that carry a copy of its learner."""
    return request.param


# ── GAE ──────────────────────────────────────────────────────────────────────────────────────────────
def random_rollout(rng, T=13, N=4, p_end=0.2):
    """A rollout shaped like the real one: where no episode ends, V(s_{t+1}) is the next row's V(s_{t+1})."""
    rewards = rng.normal(size=(T, N))
    values = rng.normal(size=(T, N))
    dones = (rng.random((T, N)) < p_end).astype(float)
    terminated = dones * (rng.random((T, N)) < 0.5)  # half of the ends are time limits (truncations)
    next_values = np.empty((T, N))
    next_values[:-1] = values[1:]
    next_values[-1] = rng.normal(size=N)  # V(s_T): the bootstrap at the end of the segment
    final = dones.astype(bool)
    next_values[final] = rng.normal(size=final.sum())  # V(final obs), a state the batch never visits
    return rewards, values, next_values, terminated, dones


def k_step_advantage(rewards, next_values, terminated, values, t, i, k, gamma):
    """Â_t^(k) = Σ_{l<k} γ^l r_{t+l} + γ^k V(s_{t+k}) − V(s_t), with V(s_{t+k}) = 0 after a termination."""
    total = sum(gamma ** l * rewards[t + l, i] for l in range(k))
    last = t + k - 1
    return total + gamma ** k * (1 - terminated[last, i]) * next_values[last, i] - values[t, i]


def brute_force_gae(rewards, values, next_values, terminated, dones, gamma, lam):
    """The notes' definition: Â_t = (1−λ)(Â^(1) + λÂ^(2) + λ²Â^(3) + ...).

    The k-step estimators exist for k = 1..L, where L counts the steps up to the episode's end or the end of
    the segment; every estimator beyond L equals Â^(L) (after a termination nothing more comes; at a time limit
    or the segment end, V bootstraps the rest), so the tail Σ_{k≥L} (1−λ)λ^{k−1} Â^(L) = λ^{L−1} Â^(L).
    """
    T, N = rewards.shape
    out = np.zeros((T, N))
    for i in range(N):
        for t in range(T):
            L = 1
            while t + L - 1 < T - 1 and not dones[t + L - 1, i]:
                L += 1
            est = [k_step_advantage(rewards, next_values, terminated, values, t, i, k, gamma) for k in range(1, L + 1)]
            out[t, i] = (1 - lam) * sum(lam ** (k - 1) * est[k - 1] for k in range(1, L)) + lam ** (L - 1) * est[L - 1]
    return out


@pytest.mark.parametrize("gamma,lam", [(0.99, 0.95), (0.9, 0.0), (0.97, 1.0), (1.0, 0.5)])
def test_gae_equals_weighted_average_of_k_step_estimators(gamma, lam, learner):
    rng = np.random.default_rng(0)
    for _ in range(5):
        batch = random_rollout(rng)
        fast = learner.compute_gae(*batch, gamma=gamma, lam=lam)
        np.testing.assert_allclose(fast, brute_force_gae(*batch, gamma, lam), rtol=1e-10, atol=1e-10)


def test_gae_lambda_zero_is_td_error_and_one_is_monte_carlo(learner):
    rng = np.random.default_rng(1)
    rewards, values, next_values, terminated, dones = random_rollout(rng, T=8, N=1, p_end=0.0)
    terminated[:] = 0
    gamma = 0.9
    delta = rewards + gamma * next_values - values
    np.testing.assert_allclose(learner.compute_gae(rewards, values, next_values, terminated, dones, gamma, 0.0), delta)
    # λ = 1, no episode end: Â_0 = Σ_t γ^t r_t + γ^T V(s_T) − V(s_0)
    mc = sum(gamma ** t * rewards[t, 0] for t in range(8)) + gamma ** 8 * next_values[-1, 0] - values[0, 0]
    assert learner.compute_gae(rewards, values, next_values, terminated, dones, gamma, 1.0)[0, 0] == pytest.approx(mc)


def test_gae_truncation_bootstraps_and_termination_does_not(learner):
    """One step, episode over: a time limit keeps γV(final obs) in the advantage, a true end drops it."""
    r, v, v_next = np.array([[1.0]]), np.array([[0.5]]), np.array([[2.0]])
    done = np.array([[1.0]])
    truncated_adv = learner.compute_gae(r, v, v_next, np.array([[0.0]]), done, 0.9, 0.95)
    terminated_adv = learner.compute_gae(r, v, v_next, np.array([[1.0]]), done, 0.9, 0.95)
    assert truncated_adv[0, 0] == pytest.approx(1.0 + 0.9 * 2.0 - 0.5)
    assert terminated_adv[0, 0] == pytest.approx(1.0 - 0.5)


# ── The clipped and KL-penalised objectives ─────────────────────────────────────────────────────────
def test_clip_gradient_vanishes_exactly_where_the_notes_say(learner):
    eps = 0.2
    ratio_values = torch.tensor([0.5, 0.79, 0.81, 1.0, 1.19, 1.21, 1.5] * 2, dtype=torch.float64)
    adv = torch.tensor([1.0] * 7 + [-1.0] * 7, dtype=torch.float64)
    ratio = ratio_values.clone().requires_grad_(True)
    learner.ppo_clip_loss(ratio, adv, eps).backward()
    # Zero gradient: r > 1+ε with Â > 0 (already more likely enough), r < 1−ε with Â < 0 (already less likely enough).
    # Everywhere else, including r < 1−ε with Â > 0 and r > 1+ε with Â < 0, the gradient of −mean(r·Â) is −Â/B.
    clipped = ((adv > 0) & (ratio_values > 1 + eps)) | ((adv < 0) & (ratio_values < 1 - eps))
    expected = torch.where(clipped, torch.zeros_like(adv), -adv / len(adv))
    assert torch.equal(ratio.grad, expected)
    assert clipped.sum() == 4


def test_clip_loss_value_matches_hand_computation(learner):
    ratio, adv = torch.tensor([1.5, 0.5]), torch.tensor([2.0, -1.0])
    # min(1.5·2, 1.2·2) = 2.4;  min(0.5·(−1), 0.8·(−1)) = −0.8;  −mean = −0.8
    assert learner.ppo_clip_loss(ratio, adv, 0.2).item() == pytest.approx(-0.8)


def test_kl_penalty_loss_value():
    ratio, adv, kl = torch.tensor([1.1, 0.9]), torch.tensor([1.0, 2.0]), torch.tensor([0.02, 0.04])
    # −mean(r·Â − β·KL) with β = 3: −((1.1 − 0.06) + (1.8 − 0.12)) / 2
    assert ppo.ppo_kl_loss(ratio, adv, kl, 3.0).item() == pytest.approx(-(1.04 + 1.68) / 2)


@pytest.mark.parametrize("kl,expected", [(0.001, 0.5), (0.0066, 0.5), (0.0067, 1.0), (0.01, 1.0),
                                         (0.0149, 1.0), (0.0151, 2.0), (0.5, 2.0)])
def test_adaptive_kl_beta_rule(kl, expected):
    # d_targ = 0.01: halve below 0.01/1.5 ≈ 0.00667, double above 0.015, keep in between.
    assert ppo.adapt_kl_beta(1.0, kl, 0.01, 1.5, 2.0) == expected


def test_value_loss_clipping(learner):
    v_old, ret = torch.tensor([0.0, 0.0]), torch.tensor([1.0, -1.0])
    v = torch.tensor([0.5, 0.5])
    # unclipped: ½·mean(0.25, 2.25) = 0.625
    assert learner.value_loss(v, v_old, ret, None).item() == pytest.approx(0.625)
    # clipped at ε = 0.2: V_clip = 0.2; per sample max((0.5−1)², (0.2−1)²) = 0.64, max(2.25, 1.44) = 2.25
    assert learner.value_loss(v, v_old, ret, 0.2).item() == pytest.approx(0.5 * (0.64 + 2.25) / 2)


# ── Distributions against torch.distributions ────────────────────────────────────────────────────────
def test_gaussian_log_prob_entropy_kl_match_torch_distributions(learner):
    g = torch.Generator().manual_seed(0)
    mu0, mu1, a = (torch.randn(5, 3, generator=g, dtype=torch.float64) for _ in range(3))
    ls0, ls1 = (0.3 * torch.randn(3, generator=g, dtype=torch.float64) for _ in range(2))
    d0, d1 = Normal(mu0, ls0.exp()), Normal(mu1, ls1.exp())
    torch.testing.assert_close(learner.gaussian_log_prob(a, mu0, ls0), d0.log_prob(a).sum(-1))
    torch.testing.assert_close(learner.gaussian_entropy(ls0).expand(5), d0.entropy().sum(-1))
    if learner is ppo:  # (the KL objective is ppo.py's alone)
        torch.testing.assert_close(ppo.gaussian_kl(mu0, ls0, mu1, ls1), kl_divergence(d0, d1).sum(-1))


def test_categorical_log_prob_entropy_kl_match_torch_distributions(learner):
    g = torch.Generator().manual_seed(1)
    l0, l1 = torch.randn(6, 4, generator=g, dtype=torch.float64), torch.randn(6, 4, generator=g, dtype=torch.float64)
    a = torch.randint(0, 4, (6,), generator=g)
    c0, c1 = Categorical(logits=l0), Categorical(logits=l1)
    torch.testing.assert_close(learner.categorical_log_prob(l0, a), c0.log_prob(a))
    torch.testing.assert_close(learner.categorical_entropy(l0), c0.entropy())
    if learner is ppo:
        torch.testing.assert_close(ppo.categorical_kl(l0, l1), kl_divergence(c0, c1))


def test_gumbel_max_sampling_follows_softmax(learner):
    """The rollout samples discrete actions as argmax(logits + Gumbel noise); its frequencies must be softmax(logits)."""
    rng = np.random.default_rng(0)
    logits = np.array([[1.0, 0.0, -1.0, 2.0]])
    n = 200_000
    u = rng.random((n, 4))
    samples = learner.gumbel_max_sample(np.repeat(logits, n, axis=0), u)
    freq = np.bincount(samples, minlength=4) / n
    p = np.exp(logits[0]) / np.exp(logits[0]).sum()
    # 5 standard errors of a binomial proportion
    assert np.all(np.abs(freq - p) < 5 * np.sqrt(p * (1 - p) / n))


# ── Helpers the training loop relies on ──────────────────────────────────────────────────────────────
def test_numpy_actor_equals_torch_actor(learner):
    torch.manual_seed(0)
    agent = learner.Agent(7, 3, discrete=False, hidden=16)
    x = np.random.default_rng(0).normal(size=(5, 7)).astype(np.float32)
    with torch.no_grad():
        expected = agent.actor(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(learner.numpy_mlp(learner.numpy_weights(agent.actor), x), expected, rtol=1e-5, atol=1e-6)


def test_running_mean_std_equals_batch_statistics():
    rng = np.random.default_rng(0)
    data = rng.normal(3.0, 2.0, size=(1000, 4))
    rms = ppo.RunningMeanStd((4,))
    for chunk in np.array_split(data, [1, 2, 10, 50, 400, 999]):
        rms.update(chunk)
    # the prior count 1e-4 (mean 0, var 1) shifts the result by ~1e-7
    np.testing.assert_allclose(rms.mean, data.mean(0), rtol=1e-5)
    np.testing.assert_allclose(rms.var, data.var(0), rtol=1e-5)


def test_flat_parameters_train_like_separate_ones():
    """The flat-buffer trick changes speed only: the same Adam steps give the same parameters."""
    def run(flat: bool):
        torch.manual_seed(0)
        agent = ppo.Agent(5, 2, discrete=False, hidden=8)
        if flat:
            buffer = ppo.flatten_parameters(agent)
            opt = torch.optim.Adam([buffer], lr=1e-2, eps=1e-5)
        else:
            opt = torch.optim.Adam(agent.parameters(), lr=1e-2, eps=1e-5)
        x = torch.randn(16, 5, generator=torch.Generator().manual_seed(1))
        for _ in range(5):
            loss = agent.actor(x).pow(2).mean() + agent.value(x).pow(2).mean() + agent.log_std.sum()
            if flat:
                buffer.grad.zero_()
            else:
                opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_([buffer] if flat else list(agent.parameters()), 0.5)
            opt.step()
        return [p.detach().clone() for p in agent.parameters()]

    for a, b in zip(run(False), run(True)):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("discrete,objective", [(False, "clip"), (True, "kl")])
def test_compiled_losses_equal_eager_losses(discrete, objective):
    """--compile must change the speed only: the same losses and gradients as the eager function."""
    torch.manual_seed(0)
    agent = ppo.Agent(6, 3, discrete=discrete, hidden=16)
    M = 32
    obs = torch.randn(M, 6)
    actions = torch.randint(0, 3, (M,)) if discrete else torch.randn(M, 3)
    with torch.no_grad():
        out_old = agent.actor(obs) + 0.1 * torch.randn(M, 3)
        logp_old = agent.log_prob(out_old, actions)
    batch = (obs, actions, logp_old, torch.randn(M), torch.randn(M), torch.randn(M), out_old,
             agent.log_std.detach() - 0.1, torch.tensor(0.7), objective, 0.2, True, True)

    def losses_and_grads(fn):
        agent.zero_grad()
        pg, v, ent, kl, cf = fn(agent, *batch)
        (pg + 0.5 * v - 0.01 * ent).backward()
        return [pg, v, ent, kl, cf] + [p.grad.clone() for p in agent.parameters() if p.grad is not None]

    eager = losses_and_grads(ppo.ppo_losses)
    compiled = losses_and_grads(torch.compile(ppo.ppo_losses))
    for a, b in zip(eager, compiled):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("copy", [gail, gcl], ids=lambda m: m.__name__)
@pytest.mark.parametrize("discrete", [False, True])
def test_the_copies_minibatch_losses_and_gradients_equal_ppo_s(copy, discrete):
    """gail.py's and gcl.py's minibatch update (the clip objective only) = ppo.py's, losses and gradients."""
    torch.manual_seed(0)
    theirs = copy.Agent(6, 3, discrete, 16)
    ours = ppo.Agent(6, 3, discrete, 16)
    ours.load_state_dict(theirs.state_dict())
    with torch.no_grad():
        ours.log_std.add_(0.3), theirs.log_std.add_(0.3)
    M = 32
    obs = torch.randn(M, 6)
    actions = torch.randint(0, 3, (M,)) if discrete else torch.randn(M, 3)
    with torch.no_grad():
        logp_old = ours.log_prob(ours.actor(obs) + 0.3 * torch.randn(M, 3), actions)
    adv, v_old, returns = torch.randn(M), torch.randn(M), torch.randn(M)

    def run(agent, losses):
        agent.zero_grad()
        pg, v, ent = losses[:3]
        (pg + 0.5 * v - 0.01 * ent).backward()
        return [pg, v, ent, losses[3], losses[4]] + [p.grad.clone() for p in agent.parameters() if p.grad is not None]

    expected = run(ours, ppo.ppo_losses(ours, obs, actions, logp_old, adv, v_old, returns, None, None,
                                        torch.tensor(1.0), "clip", 0.2, True, True))
    got = run(theirs, copy.ppo_losses(theirs, obs, actions, logp_old, adv, v_old, returns, 0.2, True, True))
    for a, b in zip(expected, got):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("discrete", [False, True])
def test_minibatch_losses_against_torch_distributions(discrete):
    """ppo_losses = −L^CLIP of r = π_θ/π_θk on the minibatch-normalised Â, the value loss, the entropy and the KL
    diagnostic, each recomputed here from torch.distributions."""
    torch.manual_seed(0)
    agent = ppo.Agent(5, 3, discrete, 16)
    with torch.no_grad():
        agent.log_std.add_(-0.4)
    M = 64
    obs = torch.randn(M, 5)
    actions = torch.randint(0, 3, (M,)) if discrete else torch.randn(M, 3)
    logp_old = torch.randn(M) * 0.3 - 2.0
    adv, v_old, returns = 2 + 3 * torch.randn(M), torch.randn(M), torch.randn(M)
    pg, v, ent, kl, clipfrac = ppo.ppo_losses(agent, obs, actions, logp_old, adv, v_old, returns, None, None,
                                              torch.tensor(1.0), "clip", 0.2, True, True)
    with torch.no_grad():
        out = agent.actor(obs)
        dist = Categorical(logits=out) if discrete else Normal(out, agent.log_std.exp())
        logp = dist.log_prob(actions) if discrete else dist.log_prob(actions).sum(-1)
        entropy = dist.entropy() if discrete else dist.entropy().sum(-1)
        ratio = torch.exp(logp - logp_old)
        a = (adv - adv.mean()) / (adv.std() + 1e-8)
        expected_pg = -torch.min(ratio * a, ratio.clamp(0.8, 1.2) * a).mean()
        value = agent.value(obs)
        v_clip = v_old + (value - v_old).clamp(-0.2, 0.2)
        expected_v = 0.5 * torch.max((value - returns) ** 2, (v_clip - returns) ** 2).mean()
    torch.testing.assert_close(pg.detach(), expected_pg)
    torch.testing.assert_close(v.detach(), expected_v)
    torch.testing.assert_close(ent.detach(), entropy.mean())
    torch.testing.assert_close(kl, ((ratio - 1) - torch.log(ratio)).mean())
    torch.testing.assert_close(clipfrac, ((ratio - 1).abs() > 0.2).float().mean())
