"""soft_q.py's equations against brute force: soft value iteration against enumeration of every action sequence, the
soft-max's two limits, the importance-sampled soft value against quadrature, the RBF kernel and the SVGD direction
against autograd and loops, and SVGD moving particles onto a known distribution."""
import itertools
import math

import numpy as np
import pytest
import torch

import soft_q


@pytest.fixture(autouse=True)
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def random_deterministic_mdp(rng, num_states=4, num_actions=3, terminal_prob=0.15):
    """Successor lists with K = 1: next_state, prob, reward, done, all (S, A, 1)."""
    next_state = torch.as_tensor(rng.integers(num_states, size=(num_states, num_actions, 1)))
    prob = torch.ones(num_states, num_actions, 1)
    reward = torch.as_tensor(rng.normal(size=(num_states, num_actions, 1)))
    done = torch.as_tensor(rng.random((num_states, num_actions, 1)) < terminal_prob)
    return next_state, prob, reward, done


def enumerate_returns(next_state, reward, done, s0, horizon):
    """{action sequence: its return} from s0 over H steps (after a terminal transition the episode is over: the
    remaining actions change nothing, and every sequence is still listed, as in the recursion's V = 0 there)."""
    out = {}
    for seq in itertools.product(range(next_state.shape[1]), repeat=horizon):
        s, total, over = s0, 0.0, False
        for a in seq:
            if over:
                break
            total += float(reward[s, a, 0])
            over = bool(done[s, a, 0])
            s = int(next_state[s, a, 0])
        out[seq] = total
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("alpha", [0.3, 1.0, 4.0])
def test_soft_value_iteration_equals_enumeration_of_action_sequences(seed, alpha):
    rng = np.random.default_rng(seed)
    next_state, prob, reward, done = random_deterministic_mdp(rng)
    horizon = 4
    _, v = soft_q.soft_value_iteration(next_state, prob, reward, done, alpha, 1.0, horizon)
    for s0 in range(next_state.shape[0]):
        returns = enumerate_returns(next_state, reward, done, s0, horizon)
        # V_0(s0) = α log Σ_{a_0..a_{H−1}} exp(return/α)  — but after a terminal step, the remaining actions are
        # "free": the recursion has V = 0 there, i.e. α log Σ_a exp(0) = α log|A| per remaining step is NOT added.
        # Sequences differing only after the end are therefore one sequence: count each ended prefix once.
        prefixes = {}
        for seq, ret in returns.items():
            s, key = s0, []
            for a in seq:
                key.append(a)
                ended = bool(done[s, a, 0])
                s = int(next_state[s, a, 0])
                if ended:
                    break
            prefixes[tuple(key)] = ret
        want = alpha * math.log(sum(math.exp(r / alpha) for r in prefixes.values()))
        assert float(v[0, s0]) == pytest.approx(want, rel=1e-9, abs=1e-9)


def test_soft_value_iteration_tends_to_hard_value_iteration():
    rng = np.random.default_rng(3)
    next_state, prob, reward, done = random_deterministic_mdp(rng)
    horizon = 4
    best = [max(enumerate_returns(next_state, reward, done, s0, horizon).values()) for s0 in range(4)]
    for alpha, tol in [(1e-2, 0.05), (1e-4, 5e-4)]:
        _, v = soft_q.soft_value_iteration(next_state, prob, reward, done, alpha, 1.0, horizon)
        # soft ≥ hard, and the gap is at most α·log(number of sequences)
        assert np.all(v[0].numpy() >= np.array(best) - 1e-12)
        np.testing.assert_allclose(v[0].numpy(), best, atol=tol)
    # α = 0 is hard value iteration itself: V_0 is the best return over action sequences, exactly
    _, v_hard = soft_q.soft_value_iteration(next_state, prob, reward, done, 0.0, 1.0, horizon)
    np.testing.assert_allclose(v_hard[0].numpy(), best, rtol=1e-12, atol=1e-12)


def test_soft_value_limits():
    q = torch.tensor([[1.0, 2.0, 4.0], [-3.0, 0.5, 0.0]])
    # α → 0: the hard max
    np.testing.assert_allclose(soft_q.soft_value(q, 1e-4).numpy(), [4.0, 0.5], atol=1e-3)
    # α → ∞: V − α log|A| → mean_a Q
    alpha = 1e5
    np.testing.assert_allclose((soft_q.soft_value(q, alpha) - alpha * math.log(3)).numpy(), q.mean(-1).numpy(), atol=1e-3)
    # no overflow where exp(Q/α) alone would overflow
    big = torch.tensor([[1000.0, 999.0]], dtype=torch.float32)
    assert torch.isfinite(soft_q.soft_value(big, 0.1)).all()


def test_boltzmann_policy_is_exp_of_q_minus_v():
    q = torch.randn(5, 4)
    log_pi = soft_q.boltzmann_log_probs(q, 0.5)
    torch.testing.assert_close(log_pi, (q - soft_q.soft_value(q, 0.5)[:, None]) / 0.5)
    torch.testing.assert_close(log_pi.exp().sum(-1), torch.ones(5))


def test_soft_targets_bootstrap_truncation_but_not_termination():
    r, v, term = torch.tensor([1.0, 1.0]), torch.tensor([10.0, 10.0]), torch.tensor([1.0, 0.0])
    torch.testing.assert_close(soft_q.soft_q_targets(r, v, term, 0.9), torch.tensor([1.0, 10.0]))


def test_importance_sampled_soft_value_matches_quadrature():
    # Q(a) = −3(a − 0.4)² on [−1, 1] (D = 1): α log ∫ exp(Q/α) da by a fine midpoint rule
    torch.manual_seed(0)
    alpha = 0.5
    grid = torch.linspace(-1, 1, 200_001)[:-1] + 1e-5
    want = alpha * math.log(float(torch.exp(-3 * (grid - 0.4) ** 2 / alpha).mean() * 2))
    a = torch.rand(4, 100_000) * 2 - 1  # 4 states, M uniform particles each
    got = soft_q.importance_sampled_soft_value(-3 * (a - 0.4) ** 2, alpha, act_dim=1)
    np.testing.assert_allclose(got.numpy(), want, atol=5e-3)
    # in 2-D the proposal's density is 2^−2: a constant Q = c gives α log ∫ e^{c/α} = c + α log 4
    flat = soft_q.importance_sampled_soft_value(torch.full((1, 7), 2.0), alpha, act_dim=2)
    assert float(flat) == pytest.approx(2.0 + alpha * math.log(4.0))


def test_rbf_kernel_and_its_gradient():
    torch.manual_seed(0)
    xs, ys = torch.randn(2, 5, 3, requires_grad=True), torch.randn(2, 4, 3)
    kappa, grad = soft_q.rbf_kernel(xs, ys)
    dist2 = ((xs[:, :, None] - ys[:, None]) ** 2).sum(-1)
    h = dist2.flatten(1).median(1).values / math.log(6)
    torch.testing.assert_close(kappa, torch.exp(-dist2 / h[:, None, None]))
    # ∇_x κ against autograd, with the bandwidth held fixed (as the function does)
    for b, i, j in [(0, 0, 0), (1, 4, 3), (0, 2, 1)]:
        x = xs[b, i].detach().clone().requires_grad_(True)
        k = torch.exp(-((x - ys[b, j]) ** 2).sum() / h[b].detach())
        torch.testing.assert_close(grad[b, i, j], torch.autograd.grad(k, x)[0])


def test_svgd_direction_equals_the_double_loop():
    torch.manual_seed(1)
    score, kappa, kgrad = torch.randn(2, 3, 2), torch.rand(2, 3, 4), torch.randn(2, 3, 4, 2)
    got = soft_q.svgd_direction(score, kappa, kgrad)
    for b in range(2):
        for i in range(4):
            want = sum(kappa[b, j, i] * score[b, j] + kgrad[b, j, i] for j in range(3)) / 3
            torch.testing.assert_close(got[b, i], want)


def test_svgd_moves_particles_onto_a_gaussian():
    # log p(a) = −(a − 1)²/(2·0.5²): SVGD steps (every particle both scores and moves) take 100 particles started
    # at −2 ± 0.1 to mean 1 and std 0.5; without the kernel's repulsion term they would pile up on a = 1.
    torch.manual_seed(0)
    particles = torch.randn(1, 100, 1) * 0.1 - 2.0
    for _ in range(600):
        kappa, grad = soft_q.rbf_kernel(particles, particles)
        particles = particles + 0.05 * soft_q.svgd_direction(-(particles - 1.0) / 0.25, kappa, grad)
    assert float(particles.mean()) == pytest.approx(1.0, abs=0.02)
    assert float(particles.std()) == pytest.approx(0.5, abs=0.03)
    # the score term alone (no repulsion): the particles pile up on the mode, far narrower than the target
    collapsed = torch.randn(1, 100, 1) * 0.1 - 2.0
    for _ in range(600):
        kappa, _ = soft_q.rbf_kernel(collapsed, collapsed)
        collapsed = collapsed + 0.05 * soft_q.svgd_direction(-(collapsed - 1.0) / 0.25, kappa, torch.zeros(1, 100, 100, 1))
    assert float(collapsed.std()) < 0.25 and float((collapsed - 1.0).abs().median()) < 0.01


def test_policy_return_equals_enumeration():
    rng = np.random.default_rng(4)
    next_state, prob, reward, done = random_deterministic_mdp(rng)
    horizon, alpha = 3, 0.7
    q, _ = soft_q.soft_value_iteration(next_state, prob, reward, done, alpha, 1.0, horizon)
    log_pi = soft_q.boltzmann_log_probs(q, alpha)
    start = torch.tensor([0.5, 0.5, 0.0, 0.0])
    want = 0.0
    for s0 in (0, 1):
        for seq in itertools.product(range(3), repeat=horizon):
            s, p, total = s0, 0.5, 0.0
            for t, a in enumerate(seq):
                p *= float(log_pi[t, s, a].exp())
                total += float(reward[s, a, 0])
                if bool(done[s, a, 0]):
                    break
                s = int(next_state[s, a, 0])
            else:
                want += p * total
                continue
            # ended early: the remaining actions were not taken; count this prefix once (its probability is p)
            if all(x == 0 for x in seq[t + 1:]):
                want += p * total
    assert soft_q.policy_return(log_pi, next_state, prob, reward, done, start) == pytest.approx(want, rel=1e-9)


def test_rbf_bandwidth_is_the_median_squared_distance_over_log_of_k_plus_1():
    # K_x = 3 particles at 0, 1, 3 and K_y = 1 at 0: squared distances 0, 1, 9, median 1, h = 1/log 4
    xs, ys = torch.tensor([[[0.0], [1.0], [3.0]]]), torch.tensor([[[0.0]]])
    kappa, _ = soft_q.rbf_kernel(xs, ys)
    torch.testing.assert_close(kappa[0, :, 0], torch.exp(-torch.tensor([0.0, 1.0, 9.0]) * math.log(4.0)))


def test_svgd_surrogate_moves_the_second_half_along_the_direction_and_holds_the_first():
    """∂loss/∂particles: 0 on the first half (its score is held fixed), −Δf/(B·K/2) on the second, with Δf the
    SVGD direction from the first half's score of log p, here a Gaussian whose score is −(a − m)/s²."""
    torch.manual_seed(2)
    particles = torch.randn(2, 6, 2, requires_grad=True)
    m, s2 = torch.tensor([0.3, -0.5]), 0.4
    log_p = lambda a: -((a - m) ** 2).sum(-1) / (2 * s2)  # noqa: E731
    loss, direction = soft_q.svgd_sampler_loss(particles, log_p)
    (grad,) = torch.autograd.grad(loss, particles)
    fixed, moved = particles[:, :3].detach(), particles[:, 3:].detach()
    kappa, kappa_grad = soft_q.rbf_kernel(fixed, moved)
    want = soft_q.svgd_direction(-(fixed - m) / s2, kappa, kappa_grad)
    torch.testing.assert_close(direction, want)
    torch.testing.assert_close(grad[:, :3], torch.zeros(2, 3, 2))
    torch.testing.assert_close(grad[:, 3:], -want / (2 * 3))


def test_svgd_sampler_converges_to_exp_q_over_alpha_times_the_barrier_prior():
    """Particles moved by the surrogate's gradient (the sampler's update with f_φ = the particles themselves) on
    Q(a) = −α(a − 0.5)²/(2·0.3²) settle on p(a) ∝ exp(Q/α)·(1 − a²) (mean 0.381, std 0.247 by quadrature), not on
    the truncated Gaussian exp(Q/α) (mean 0.469, std 0.271): the DEVIATION stated at svgd_log_target."""
    alpha = 0.2
    torch.manual_seed(0)
    pool = (torch.rand(1, 200, 1) * 0.2 - 0.1).requires_grad_(True)
    optimizer = torch.optim.SGD([pool], lr=1.0)
    q = lambda a: -alpha * ((a - 0.5) ** 2).squeeze(-1) / (2 * 0.09)  # noqa: E731
    for _ in range(1000):
        perm = torch.randperm(200)
        loss, _ = soft_q.svgd_sampler_loss(pool[:, perm], lambda a: soft_q.svgd_log_target(q(a), a, alpha))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            pool.clamp_(-0.999, 0.999)
    a = pool.detach().flatten()
    assert float(a.mean()) == pytest.approx(0.381, abs=0.03)
    assert float(a.std()) == pytest.approx(0.247, abs=0.03)


def test_tabular_way_pays_on_transitions_like_maxent_irl_on_taxi():
    """Taxi-v4 pays on the action (−10 for an illegal pick-up or drop-off): the tabular way's rewards are per (s, a, s')
    already. Its hard value iteration (α = 0) over the time limit earns exactly what maxent_irl.py's expert does with
    --reward-on transition (two scripts, two ways of ending an episode: `done` here, an absorbing exit state there)."""
    import gymnasium as gym
    import maxent_irl
    env = gym.make("Taxi-v4")
    mdp = soft_q.tabular_model(env, "Taxi-v4")
    next_state, prob, reward, done = (torch.as_tensor(mdp[k]) for k in ("next_state", "prob", "reward", "done"))
    start = torch.as_tensor(env.unwrapped.initial_state_distrib, dtype=torch.float64)
    q, _ = soft_q.soft_value_iteration(next_state, prob, reward, done, 0.0, 1.0, 200)
    greedy = torch.log(torch.nn.functional.one_hot(q.argmax(-1), 6).double())
    ours = soft_q.policy_return(greedy, next_state, prob, reward, done, start)
    m = maxent_irl.tabular_model(env, "Taxi-v4", "transition")
    m_next, m_prob, m_reward, m_p0 = (torch.as_tensor(m[k]) for k in ("next_state", "prob", "reward", "p0"))
    policy, _ = maxent_irl.value_iteration(m_reward, m_next, m_prob, 201)
    np.testing.assert_allclose(ours, maxent_irl.policy_return(policy, m_reward, m_next, m_prob, m_p0), atol=1e-9)
