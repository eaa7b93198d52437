"""maxent_irl.py's equations against brute force: enumeration of every trajectory, finite differences, value
iteration against every action sequence, the exact return against the env itself."""
import itertools
import math

import gymnasium as gym
import numpy as np
import pytest
import torch

import maxent_irl as mi



@pytest.fixture(autouse=True)
def float64_by_default():
    """float64 in this module's tests only: a module-level set_default_dtype would leak into every other test file."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def random_mdp(num_states: int, num_actions: int, deterministic: bool, seed: int) -> tuple:
    """(next_state (S, A, K), prob (S, A, K)) with K = 1 (deterministic) or K = S (dense, random probabilities)."""
    rng = np.random.default_rng(seed)
    if deterministic:
        next_state = rng.integers(num_states, size=(num_states, num_actions, 1))
        prob = np.ones((num_states, num_actions, 1))
    else:
        next_state = np.broadcast_to(np.arange(num_states), (num_states, num_actions, num_states)).copy()
        prob = rng.dirichlet(np.ones(num_states), size=(num_states, num_actions))
    return torch.as_tensor(next_state), torch.as_tensor(prob)


def dense(next_state, prob) -> np.ndarray:
    """T[s, a, s'] from the successor lists."""
    num_states, num_actions, _ = next_state.shape
    t = np.zeros((num_states, num_actions, num_states))
    for s, a, k in itertools.product(range(num_states), range(num_actions), range(next_state.shape[2])):
        t[s, a, next_state[s, a, k]] += float(prob[s, a, k])
    return t


def trajectories(t: np.ndarray, s0: int, horizon: int):
    """Every (states, actions, Π P) with H states from s0: H − 1 actions, every successor."""
    num_states, num_actions, _ = t.shape
    for actions in itertools.product(range(num_actions), repeat=horizon - 1):
        for rest in itertools.product(range(num_states), repeat=horizon - 1):
            states = (s0,) + rest
            p = math.prod(t[states[i], actions[i], states[i + 1]] for i in range(horizon - 1))
            if p > 0:
                yield states, actions, p


def brute_visits_maxent(t, reward, p0, horizon) -> np.ndarray:
    """D(s) of P(τ | s_0) ∝ exp(Σ_t r(s_t)) Π P(s_{t+1}|s_t, a_t), mixed over s_0 ∼ p0, by enumeration."""
    visits = np.zeros(len(reward))
    for s0 in np.flatnonzero(p0):
        paths = list(trajectories(t, int(s0), horizon))
        weights = np.array([p * math.exp(sum(reward[s] for s in states)) for states, _, p in paths])
        weights /= weights.sum()
        for (states, _, _), w in zip(paths, weights):
            for s in states:
                visits[s] += p0[s0] * w
    return visits


def brute_visits_policy(t, log_pi, p0, horizon) -> np.ndarray:
    """D(s) of s_0 ∼ p0, a_t ∼ π_t(·|s_t), s_{t+1} ∼ P(·|s_t, a_t), by enumeration."""
    pi = np.exp(np.asarray(log_pi))
    visits = np.zeros(len(p0))
    for s0 in np.flatnonzero(p0):
        for states, actions, p in trajectories(t, int(s0), horizon):
            w = p0[s0] * p * math.prod(pi[i, states[i], actions[i]] for i in range(horizon - 1))
            for s in states:
                visits[s] += w
    return visits


@pytest.mark.parametrize("backup", ["ziebart", "soft"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_passes_equal_enumeration_of_every_trajectory_on_deterministic_dynamics(backup, seed):
    """The issue's check: forward(backward(r)) = D of P(τ) ∝ exp(Σ wᵀx(s_t)) Π P, within 1e-6 (both backups)."""
    num_states, num_actions, horizon = 4, 3, 5
    next_state, prob = random_mdp(num_states, num_actions, True, seed)
    rng = np.random.default_rng(seed + 10)
    features = torch.as_tensor(rng.normal(size=(num_states, 3)))
    w = torch.as_tensor(rng.normal(size=3))
    reward = features @ w
    p0 = torch.as_tensor(rng.dirichlet(np.ones(num_states)))
    log_pi, _ = mi.backward_pass(reward, next_state, prob, horizon, backup)
    visits = mi.forward_pass(log_pi, next_state, prob, p0)
    assert visits.shape == (horizon, num_states)
    expected = brute_visits_maxent(dense(next_state, prob), reward.numpy(), p0.numpy(), horizon)
    np.testing.assert_allclose(visits.sum(0).numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(visits.sum().item(), horizon, atol=1e-9)  # H states per trajectory


def test_notes_backward_pass_is_the_exact_conditional_on_stochastic_dynamics():
    """On stochastic P, notes 000's π_0(a|s_0) = Z_a / Z_s is the exact marginal of a_0 under exp(Σ r) Π P (the
    optimistic model), and notes 001's soft backup gives another policy (the GOTCHA in the docstring)."""
    num_states, num_actions, horizon = 3, 2, 4
    next_state, prob = random_mdp(num_states, num_actions, False, 5)
    reward = torch.tensor([1.5, -1.0, 0.3])
    t = dense(next_state, prob)
    log_pi, _ = mi.backward_pass(reward, next_state, prob, horizon, "ziebart")
    for s0 in range(num_states):
        marginal = np.zeros(num_actions)
        for states, actions, p in trajectories(t, s0, horizon):
            marginal[actions[0]] += p * math.exp(sum(float(reward[s]) for s in states))
        np.testing.assert_allclose(log_pi[0, s0].exp().numpy(), marginal / marginal.sum(), atol=1e-9)
    soft_pi, _ = mi.backward_pass(reward, next_state, prob, horizon, "soft")
    assert (soft_pi.exp() - log_pi.exp()).abs().max() > 1e-3


@pytest.mark.parametrize("backup", ["ziebart", "soft"])
def test_forward_pass_equals_enumeration_of_the_policy_on_stochastic_dynamics(backup):
    num_states, num_actions, horizon = 3, 2, 4
    next_state, prob = random_mdp(num_states, num_actions, False, 7)
    reward = torch.tensor([0.2, -0.7, 1.1])
    p0 = torch.tensor([0.5, 0.3, 0.2])
    log_pi, _ = mi.backward_pass(reward, next_state, prob, horizon, backup)
    visits = mi.forward_pass(log_pi, next_state, prob, p0).sum(0)
    expected = brute_visits_policy(dense(next_state, prob), log_pi.numpy(), p0.numpy(), horizon)
    np.testing.assert_allclose(visits.numpy(), expected, atol=1e-9)


def demos_on(next_state, num_demos, horizon, rng) -> tuple:
    """Arbitrary trajectories that the (deterministic) dynamics allow: states (m, H), actions (m, H−1)."""
    num_states, num_actions, _ = next_state.shape
    states = np.zeros((num_demos, horizon), dtype=np.int64)
    actions = rng.integers(num_actions, size=(num_demos, horizon - 1))
    states[:, 0] = rng.integers(num_states, size=num_demos)
    for t in range(horizon - 1):
        states[:, t + 1] = next_state[states[:, t], actions[:, t], 0].numpy()
    return torch.as_tensor(states), torch.as_tensor(actions)


@pytest.mark.parametrize("backup", ["ziebart", "soft"])
@pytest.mark.parametrize("reward_on", ["state", "transition"])
def test_gradient_equals_finite_differences_of_the_log_likelihood(backup, reward_on):
    """μ̃ − Σ_s D(s) x(s) (D from the demos' start states) = ∂L/∂w by central differences, L the demos' log-likelihood;
    with features of transitions x(s, a, s'), μ̃ − Σ ρ(s, a, k) x(s, a, s'_k) from the demos' and the model's flows."""
    num_states, num_actions, horizon, d = 6, 3, 7, 4
    next_state, prob = random_mdp(num_states, num_actions, True, 3)
    rng = np.random.default_rng(4)
    features = torch.as_tensor(rng.normal(size=(num_states, d) if reward_on == "state"
                                          else (num_states, num_actions, 1, d)))
    states, actions = demos_on(next_state, 9, horizon, rng)
    alive = torch.ones_like(actions, dtype=torch.bool)

    def likelihood(w):
        log_pi, _ = mi.backward_pass(features @ w, next_state, prob, horizon, backup)
        return mi.demo_log_likelihood(log_pi, states, actions, alive).item()

    w = torch.as_tensor(rng.normal(size=d))
    log_pi, _ = mi.backward_pass(features @ w, next_state, prob, horizon, backup)
    start = mi.demo_visitation(states[:, :1], num_states)
    visits_t = mi.forward_pass(log_pi, next_state, prob, start)
    if reward_on == "state":
        grad = mi.maxent_gradient(mi.demo_visitation(states, num_states), visits_t.sum(0), features)
    else:
        grad = mi.maxent_gradient(mi.demo_flows(states, actions, next_state, prob),
                                  mi.expected_flows(log_pi, visits_t, prob), features)
    eps = 1e-6
    numeric = [(likelihood(w + eps * e) - likelihood(w - eps * e)) / (2 * eps) for e in torch.eye(d)]
    np.testing.assert_allclose(grad.numpy(), numeric, rtol=1e-6, atol=1e-7)


def test_demo_likelihood_is_the_trajectory_likelihood_of_the_notes_on_deterministic_dynamics():
    """Σ_t log π_t(a_t|s_t) = wᵀμ_τ − log Z(s_0), Z(s_0) = Σ over τ from s_0 of exp(wᵀμ_τ) (H − 1 actions)."""
    num_states, num_actions, horizon = 4, 2, 5
    next_state, prob = random_mdp(num_states, num_actions, True, 8)
    reward = torch.tensor([0.4, -1.2, 0.9, 0.0])
    states, actions = demos_on(next_state, 1, horizon, np.random.default_rng(9))
    log_pi, log_zs = mi.backward_pass(reward, next_state, prob, horizon)
    loglik = mi.demo_log_likelihood(log_pi, states, actions, torch.ones_like(actions, dtype=torch.bool)).item()
    s0 = int(states[0, 0])
    z = sum(p * math.exp(sum(float(reward[s]) for s in st)) for st, _, p in trajectories(dense(next_state, prob), s0, horizon))
    np.testing.assert_allclose(loglik, float(reward[states[0]].sum()) - math.log(z), atol=1e-9)
    # log Z_{s,H}(s_0) of the backward pass counts one more (free) action: log Z + log |A|
    np.testing.assert_allclose(log_zs[horizon, s0].item(), math.log(z) + math.log(num_actions), atol=1e-9)


def test_surrogate_autodiff_equals_the_feature_matching_gradient():
    """[S5]: autodiff of Σ_s (D̃(s) − D(s)) r_θ(s) with r = Xw gives exactly μ̃ − Σ_s D(s) x(s)."""
    rng = np.random.default_rng(0)
    features = torch.as_tensor(rng.normal(size=(5, 3)))
    demo_visits, visits = torch.as_tensor(rng.random(5)), torch.as_tensor(rng.random(5))
    w = torch.zeros(3, requires_grad=True)
    ((demo_visits - visits) * (features @ w)).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), mi.maxent_gradient(demo_visits, visits, features).numpy(), atol=1e-12)
    np.testing.assert_allclose(mi.maxent_gradient(demo_visits, visits, features).numpy(),
                               sum((demo_visits[s] - visits[s]).item() * features[s].numpy() for s in range(5)), atol=1e-12)


def test_backward_pass_in_log_space_survives_long_horizons():
    """e^{Σ r} over 2,000 steps of reward 5 is e^{10000}: the log-space passes stay finite and normalised."""
    next_state, prob = random_mdp(5, 3, False, 1)
    reward = torch.full((5,), 5.0)
    reward[0] = -5.0
    for backup in ("ziebart", "soft"):
        log_pi, log_zs = mi.backward_pass(reward, next_state, prob, 2000, backup)
        assert torch.isfinite(log_pi).all() and torch.isfinite(log_zs).all()
        np.testing.assert_allclose(log_pi.exp().sum(-1).numpy(), 1.0, atol=1e-9)
        visits = mi.forward_pass(log_pi, next_state, prob, torch.full((5,), 0.2))
        np.testing.assert_allclose(visits.sum(1).numpy(), 1.0, atol=1e-9)


def test_value_iteration_equals_the_best_action_sequence_on_deterministic_dynamics():
    num_states, num_actions, horizon = 4, 3, 5
    next_state, prob = random_mdp(num_states, num_actions, True, 11)
    reward = torch.tensor([0.3, -0.5, 1.0, 0.1])
    policy, value = mi.value_iteration(reward, next_state, prob, horizon)
    t = dense(next_state, prob)
    for s0 in range(num_states):
        best = max(sum(float(reward[s]) for s in st) for st, _, _ in trajectories(t, s0, horizon))
        np.testing.assert_allclose(value[s0].item(), best, atol=1e-12)
    # and the policy earns it (policy_return, started in s0)
    for s0 in range(num_states):
        start = torch.nn.functional.one_hot(torch.tensor(s0), num_states).double()
        np.testing.assert_allclose(mi.policy_return(policy, reward, next_state, prob, start), value[s0].item(), atol=1e-12)


def test_policy_return_equals_enumeration_on_stochastic_dynamics():
    num_states, num_actions, horizon = 3, 2, 4
    next_state, prob = random_mdp(num_states, num_actions, False, 13)
    reward = torch.tensor([1.0, -2.0, 0.5])
    p0 = torch.tensor([0.2, 0.3, 0.5])
    policy = torch.as_tensor(np.random.default_rng(1).integers(num_actions, size=(horizon, num_states)))
    log_pi = torch.log(torch.nn.functional.one_hot(policy, num_actions).double())
    visits = brute_visits_policy(dense(next_state, prob), log_pi.numpy(), p0.numpy(), horizon)
    np.testing.assert_allclose(mi.policy_return(policy, reward, next_state, prob, p0), visits @ reward.numpy(), atol=1e-12)


def test_reward_correlation_is_pearson():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=20), rng.normal(size=20)
    np.testing.assert_allclose(mi.reward_correlation(torch.as_tensor(a), torch.as_tensor(b)), np.corrcoef(a, b)[0, 1], atol=1e-12)
    assert math.isnan(mi.reward_correlation(torch.zeros(4), torch.as_tensor(b[:4])))


def test_frozenlake_model_terminal_states_lead_to_exit_and_rewards_are_per_state():
    env = gym.make("FrozenLake-v1")
    mdp = mi.tabular_model(env, "FrozenLake-v1")
    exit_state = 16
    np.testing.assert_allclose(mdp["prob"].sum(-1), 1.0)
    assert sorted(np.flatnonzero(mdp["absorbing"])) == [5, 7, 11, 12, 15, exit_state]  # holes, goal, exit
    assert (mdp["next_state"][mdp["absorbing"], :, 0] == exit_state).all()
    expected = np.zeros(17)
    expected[15] = 1.0
    np.testing.assert_array_equal(mdp["reward"], expected)
    assert mdp["p0"][0] == 1.0


def test_exact_return_matches_the_env_itself():
    """The model (with its exit state) reproduces the env: the exact return of the expert on FrozenLake equals the mean
    env return of 4,000 episodes of it within 4 standard errors."""
    env = gym.make("FrozenLake-v1")
    mdp = mi.tabular_model(env, "FrozenLake-v1")
    next_state, prob = torch.as_tensor(mdp["next_state"]), torch.as_tensor(mdp["prob"])
    reward, p0 = torch.as_tensor(mdp["reward"]), torch.as_tensor(mdp["p0"])
    horizon = 101
    policy, _ = mi.value_iteration(reward, next_state, prob, horizon)
    exact = mi.policy_return(policy, reward, next_state, prob, p0)
    *_, returns = mi.collect_demos(env, policy.numpy(), list(range(4000)), horizon, 16)
    assert abs(returns.mean() - exact) < 4 * returns.std() / math.sqrt(len(returns))
    assert 0.7 < exact < 0.8  # the optimal 4×4 slippery lake succeeds about 74% of the time


@pytest.mark.parametrize("env_id,needle", [("Taxi-v4", "depends on the transition"),
                                           ("CliffWalking-v1", "depends on the transition")])
def test_envs_with_transition_rewards_are_refused(env_id, needle):
    with pytest.raises(mi.UserError, match=needle):
        mi.tabular_model(gym.make(env_id), env_id)


def test_gridworld_model():
    env = mi.GridWorld(4, slip=0.5)
    mdp = mi.tabular_model(env, "gridworld")
    np.testing.assert_allclose(mdp["prob"].sum(-1), 1.0)
    assert not mdp["absorbing"][:16].any()
    # corner 0, action 'up' (1): stays with 1 − slip + slip·(stay, up, left)/5, moves right or down with slip/5 each
    t = dense(torch.as_tensor(mdp["next_state"]), torch.as_tensor(mdp["prob"]))
    np.testing.assert_allclose(t[0, 1, [0, 1, 4]], [0.5 + 0.3, 0.1, 0.1])
    assert mdp["reward"][15] == 1.0 and (mdp["reward"][mdp["p0"] > 0] == 0).all()


# ── Max-margin feature matching and the projection method ────────────────────────────────────────────────────────
def test_feature_expectations_equal_enumeration_of_every_trajectory():
    """μ(π) = E_π[Σ_t x(s_t)] of a stochastic non-stationary policy on stochastic dynamics, by enumeration."""
    num_states, num_actions, horizon = 3, 2, 4
    next_state, prob = random_mdp(num_states, num_actions, False, 21)
    rng = np.random.default_rng(3)
    log_pi = torch.log(torch.as_tensor(rng.dirichlet(np.ones(num_actions), size=(horizon, num_states))))
    p0 = torch.tensor([0.5, 0.0, 0.5])
    features = torch.as_tensor(rng.normal(size=(num_states, 2)))
    mu, visits = mi.feature_expectations(log_pi, next_state, prob, p0, features)
    t = dense(next_state, prob)
    brute = np.zeros(2)
    for s0 in (0, 2):
        for states, actions, p in trajectories(t, s0, horizon):
            w = 0.5 * p * math.prod(math.exp(log_pi[i, states[i], actions[i]]) for i in range(horizon - 1))
            brute += w * sum(features[s].numpy() for s in states)
    np.testing.assert_allclose(mu.numpy(), brute, atol=1e-12)
    np.testing.assert_allclose(visits.sum().item(), horizon, atol=1e-12)


def test_a_policys_return_is_w_dot_mu_and_feature_matching_bounds_the_return_gap():
    """Notes 000: V^π = wᵀμ(π) for a linear reward, and ‖μ(π) − μ(π*)‖₁ ≤ ε ⇒ |wᵀμ(π) − wᵀμ(π*)| ≤ ε for ‖w‖_∞ ≤ 1,
    on the gridworld with one-hot features (w = R is the true reward, ‖R‖_∞ = 1)."""
    env = mi.GridWorld(5, slip=0.2)
    mdp = mi.tabular_model(env, "gridworld")
    next_state, prob = torch.as_tensor(mdp["next_state"]), torch.as_tensor(mdp["prob"])
    features = torch.as_tensor(mi.state_features("onehot", env, "gridworld"))  # (S+1, S)
    reward, p0 = torch.as_tensor(mdp["reward"]), torch.as_tensor(mdp["p0"])
    rng = np.random.default_rng(0)
    policies = [torch.as_tensor(rng.integers(5, size=(8, 26))) for _ in range(2)]
    mus = []
    for policy in policies:
        log_pi = torch.log(torch.nn.functional.one_hot(policy, 5).double())
        mu, _ = mi.feature_expectations(log_pi, next_state, prob, p0, features)
        np.testing.assert_allclose(float(reward[:25] @ mu), mi.policy_return(policy, reward, next_state, prob, p0),
                                   atol=1e-12)
        mus.append(mu)
    eps = float((mus[0] - mus[1]).abs().sum())
    for w in rng.uniform(-1, 1, size=(2000, 25)):
        assert abs(float(torch.as_tensor(w) @ (mus[0] - mus[1]))) <= eps + 1e-12
    # the bound is tight: w = sign(μ(π_1) − μ(π_2)) reaches it
    np.testing.assert_allclose(float(torch.sign(mus[0] - mus[1]) @ (mus[0] - mus[1])), eps, atol=1e-12)


@pytest.mark.parametrize("at_most", [False, True])
def test_simplex_projection_is_the_closest_point(at_most):
    rng = np.random.default_rng(5)
    for _ in range(20):
        v = torch.as_tensor(rng.normal(size=4) * 2)
        x = mi.project_simplex(v, 1.5, at_most)
        assert (x >= 0).all() and (x.sum() <= 1.5 + 1e-12 if at_most else abs(float(x.sum()) - 1.5) < 1e-12)
        # no feasible point is closer (random feasible points, and the vertices)
        points = rng.dirichlet(np.ones(4), size=5000) * 1.5 * (rng.uniform(size=(5000, 1)) if at_most else 1)
        assert float((x - v).norm()) <= np.linalg.norm(points - v.numpy(), axis=1).min() + 1e-12


def margin_objective(w, deltas, margins, c):
    return 0.5 * float(w @ w) + c * max(0.0, float((margins - deltas @ w).max()))


@pytest.mark.parametrize("c", [0.3, 100.0])
def test_max_margin_weights_equal_brute_force_on_a_tiny_problem(c):
    """½‖w‖² + C max(0, max_j D_j − wᵀΔ_j) over a fine grid of w ∈ R², against the dual solver's answer."""
    deltas = torch.tensor([[1.0, 0.2], [0.3, 1.0], [-0.5, 0.8]])
    margins = torch.tensor([1.0, 0.5, 0.8])
    w, zeta, alpha = mi.max_margin_weights(deltas, margins, c)
    grid = torch.linspace(-3, 3, 1201)
    ww = torch.stack(torch.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2)  # (N, 2)
    brute = 0.5 * (ww * ww).sum(1) + c * (margins[None, :] - ww @ deltas.T).max(1).values.clamp(min=0)
    best = int(brute.argmin())
    assert margin_objective(w, deltas, margins, c) <= float(brute[best]) + 1e-9
    np.testing.assert_allclose(w.numpy(), ww[best].numpy(), atol=0.01)  # (the grid's step is 0.005)
    assert zeta == pytest.approx(max(0.0, float((margins - deltas @ w).max())))
    assert (alpha >= 0).all() and float(alpha.sum()) <= c + 1e-12


def test_max_margin_weights_close_the_duality_gap():
    """Primal ½‖w‖² + Cζ equals the dual Σ α_j D_j − ½‖Σ α_j Δ_j‖² at the answer (which proves both optimal), on
    random problems in 30 dimensions with 25 constraints, hard and soft."""
    rng = np.random.default_rng(7)
    for c in (0.05, 1.0, 1e3):
        deltas = torch.as_tensor(rng.normal(size=(25, 30)))
        margins = torch.as_tensor(rng.uniform(0.5, 2.0, size=25))
        w, zeta, alpha = mi.max_margin_weights(deltas, margins, c)
        primal = 0.5 * float(w @ w) + c * zeta
        dual = float(alpha @ margins) - 0.5 * float((deltas.T @ alpha) @ (deltas.T @ alpha))
        assert primal - dual <= 1e-7 * max(1.0, primal), (c, primal, dual)
        # the exact step on the answer's face (its non-zero α_j, Σα = C or free) gives the answer back
        polished = mi.polish_face(deltas @ deltas.T, margins, c, True, alpha > 0)
        assert polished is not None and torch.allclose(polished, alpha, atol=1e-6 * max(1.0, c)), c


def test_projection_step_is_the_closest_point_of_the_segment():
    rng = np.random.default_rng(9)
    for _ in range(20):
        mu_bar, mu_new, demo = (torch.as_tensor(rng.normal(size=3)) for _ in range(3))
        got = mi.project_onto_segment(mu_bar, mu_new, demo)
        direction = mu_new - mu_bar  # got = μ̄ + c (μ(π_i) − μ̄) with c in [0, 1]: a mixture of the two
        c = float((got - mu_bar) @ direction / (direction @ direction))
        assert -1e-12 <= c <= 1 + 1e-12 and torch.allclose(got, mu_bar + c * direction, atol=1e-12)
        cs = torch.linspace(0, 1, 100001, dtype=torch.float64)[:, None]
        segment = mu_bar + cs * (mu_new - mu_bar)
        assert float((got - demo).norm()) <= float((segment - demo).norm(dim=1).min()) + 1e-12


def test_mixture_weights_find_the_closest_point_of_the_hull():
    """Three policies' μ in the plane, μ̃ outside their triangle and nearer the origin: the closest point of the
    triangle (weights summing to 1, not at most 1), by brute force."""
    mus = torch.tensor([[1.0, 1.0], [3.0, 1.0], [1.0, 2.0]])
    demo = torch.tensor([0.5, 0.8])
    lam = mi.mixture_weights(mus, demo)
    assert (lam >= 0).all() and abs(float(lam.sum()) - 1) < 1e-12
    points = torch.as_tensor(np.random.default_rng(1).dirichlet(np.ones(3), size=200000)) @ mus
    assert float((lam @ mus - demo).norm()) <= float((points - demo).norm(dim=1).min()) + 1e-12


def test_visit_distance_counts_the_visits_spent_elsewhere():
    """D(π, π*) = ½ Σ_s |D^π(s) − D̃(s)|: two paths of H = 4 states that share their first two states differ in 2
    visits; a policy against itself, 0; half of the time elsewhere for 2 of 4 steps, 1."""
    expert = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0, 0.0])  # visits of s0 s1 s2 s3
    other = torch.tensor([1.0, 1.0, 0.0, 0.0, 1.0, 1.0])   # s0 s1 s4 s5
    assert float(mi.visit_distance(other, expert)) == 2.0
    assert float(mi.visit_distance(expert, expert)) == 0.0
    assert float(mi.visit_distance(0.5 * (expert + other), expert)) == 1.0


# ── Rewards on actions and transitions: r(s, a, s') ──────────────────────────────────────────────────────────────
def transition_return(reward_sak, next_state, states, actions) -> float:
    """Σ_{t<H−1} r(s_t, a_t, s_{t+1}) of one trajectory (the listed k of each successor)."""
    total = 0.0
    for t, a in enumerate(actions):
        k = int(np.flatnonzero(next_state[states[t], a].numpy() == states[t + 1])[0])
        total += float(reward_sak[states[t], a, k])
    return total


def brute_flows(t, next_state, weight_of, p0, horizon) -> np.ndarray:
    """ρ(s, a, k) = E[Σ_{t<H−1} 1[s_t, a_t, s_{t+1} = s, a, s'_k]] under trajectory weights weight_of(states, actions, p)
    normalised per start state, mixed over s_0 ∼ p0, by enumeration."""
    flows = np.zeros(next_state.shape)
    for s0 in np.flatnonzero(p0):
        paths = list(trajectories(t, int(s0), horizon))
        weights = np.array([weight_of(st, ac, p) for st, ac, p in paths])
        weights /= weights.sum()
        for (states, actions, _), w in zip(paths, weights):
            for i, a in enumerate(actions):
                k = int(np.flatnonzero(next_state[states[i], a].numpy() == states[i + 1])[0])
                flows[states[i], a, k] += p0[s0] * w
    return flows


@pytest.mark.parametrize("backup", ["ziebart", "soft"])
@pytest.mark.parametrize("seed", [0, 1])
def test_transition_reward_passes_equal_enumeration_on_deterministic_dynamics(backup, seed):
    """forward(backward(r)) with r(s, a, s'): the expected transitions ρ equal those of P(τ) ∝ exp(Σ_t r(s_t, a_t,
    s_{t+1})) Π P by enumeration of every trajectory (H − 1 moves, the last action unpaid)."""
    num_states, num_actions, horizon = 4, 3, 5
    next_state, prob = random_mdp(num_states, num_actions, True, seed)
    rng = np.random.default_rng(seed + 20)
    reward = torch.as_tensor(rng.normal(size=(num_states, num_actions, 1)))
    p0 = torch.as_tensor(rng.dirichlet(np.ones(num_states)))
    log_pi, _ = mi.backward_pass(reward, next_state, prob, horizon, backup)
    visits = mi.forward_pass(log_pi, next_state, prob, p0)
    flows = mi.expected_flows(log_pi, visits, prob)
    t = dense(next_state, prob)
    expected = brute_flows(t, next_state, lambda st, ac, p: p * math.exp(transition_return(reward, next_state, st, ac)),
                           p0.numpy(), horizon)
    np.testing.assert_allclose(flows.numpy(), expected, atol=1e-9)
    np.testing.assert_allclose(flows.sum().item(), horizon - 1, atol=1e-9)


def test_transition_reward_notes_backward_pass_is_the_exact_conditional_on_stochastic_dynamics():
    """Z_a(s,a) = Σ_s' P(s'|s,a) e^{r(s,a,s')} Z_s(s'): its π_0 is the exact marginal of a_0 under
    exp(Σ r(s_t, a_t, s_{t+1})) Π P, on a dense stochastic MDP where each successor pays differently."""
    num_states, num_actions, horizon = 3, 2, 4
    next_state, prob = random_mdp(num_states, num_actions, False, 15)
    reward = torch.as_tensor(np.random.default_rng(16).normal(size=(num_states, num_actions, num_states)))
    t = dense(next_state, prob)
    log_pi, _ = mi.backward_pass(reward, next_state, prob, horizon, "ziebart")
    for s0 in range(num_states):
        marginal = np.zeros(num_actions)
        for states, actions, p in trajectories(t, s0, horizon):
            marginal[actions[0]] += p * math.exp(transition_return(reward, next_state, states, actions))
        np.testing.assert_allclose(log_pi[0, s0].exp().numpy(), marginal / marginal.sum(), atol=1e-9)


@pytest.mark.parametrize("backup", ["ziebart", "soft"])
def test_transition_flows_equal_enumeration_of_the_policy_on_stochastic_dynamics(backup):
    num_states, num_actions, horizon = 3, 2, 4
    next_state, prob = random_mdp(num_states, num_actions, False, 17)
    reward = torch.as_tensor(np.random.default_rng(18).normal(size=(num_states, num_actions, num_states)))
    p0 = torch.tensor([0.5, 0.3, 0.2])
    log_pi, _ = mi.backward_pass(reward, next_state, prob, horizon, backup)
    flows = mi.expected_flows(log_pi, mi.forward_pass(log_pi, next_state, prob, p0), prob)
    pi = log_pi.exp().numpy()
    expected = brute_flows(dense(next_state, prob), next_state,
                           lambda st, ac, p: p * math.prod(pi[i, st[i], ac[i]] for i in range(horizon - 1)),
                           p0.numpy(), horizon)
    np.testing.assert_allclose(flows.numpy(), expected, atol=1e-9)


def test_transition_reward_value_iteration_and_return_equal_enumeration():
    """Deterministic: V_0(s_0) = the best Σ_t r(s_t, a_t, s_{t+1}) over every action sequence; stochastic: the exact
    return of a policy = its enumerated expectation."""
    num_states, num_actions, horizon = 4, 3, 5
    next_state, prob = random_mdp(num_states, num_actions, True, 19)
    reward = torch.as_tensor(np.random.default_rng(20).normal(size=(num_states, num_actions, 1)))
    policy, value = mi.value_iteration(reward, next_state, prob, horizon)
    t = dense(next_state, prob)
    for s0 in range(num_states):
        best = max(transition_return(reward, next_state, st, ac) for st, ac, _ in trajectories(t, s0, horizon))
        np.testing.assert_allclose(value[s0].item(), best, atol=1e-12)
        start = torch.nn.functional.one_hot(torch.tensor(s0), num_states).double()
        np.testing.assert_allclose(mi.policy_return(policy, reward, next_state, prob, start), best, atol=1e-12)
    next_state, prob = random_mdp(3, 2, False, 21)
    reward = torch.as_tensor(np.random.default_rng(22).normal(size=(3, 2, 3)))
    p0 = torch.tensor([0.2, 0.3, 0.5])
    policy = torch.as_tensor(np.random.default_rng(23).integers(2, size=(4, 3)))
    t = dense(next_state, prob)
    expected = sum(p0[s0].item() * p * transition_return(reward, next_state, st, ac)
                   for s0 in range(3) for st, ac, p in trajectories(t, s0, 4)
                   if all(ac[i] == int(policy[i, st[i]]) for i in range(3)))
    np.testing.assert_allclose(mi.policy_return(policy, reward, next_state, prob, p0), expected, atol=1e-12)


def test_demo_flows_count_each_transition_at_its_listed_successor():
    """(s, a, s') → k with next_state[s, a, k] = s' and P > 0 (the first such k); averaged over the demos."""
    next_state = torch.tensor([[[1, 2], [0, 0]], [[2, 2], [1, 0]], [[0, 1], [2, 2]]])  # (3, 2, 2)
    prob = torch.tensor([[[0.5, 0.5], [1.0, 0.0]], [[1.0, 0.0], [0.3, 0.7]], [[0.6, 0.4], [1.0, 0.0]]],
                        dtype=torch.float64)
    states = torch.tensor([[0, 2, 1, 0], [0, 1, 2, 2]])
    actions = torch.tensor([[0, 0, 1], [0, 0, 1]])
    flows = mi.demo_flows(states, actions, next_state, prob)
    expected = np.zeros((3, 2, 2))
    expected[0, 0, 1] += 0.5  # 0 -a0-> 2 (k = 1)
    expected[2, 0, 1] += 0.5  # 2 -a0-> 1 (k = 1)
    expected[1, 1, 1] += 0.5  # 1 -a1-> 0 (k = 1)
    expected[0, 0, 0] += 0.5  # 0 -a0-> 1 (k = 0)
    expected[1, 0, 0] += 0.5  # 1 -a0-> 2 (k = 0, the first listed)
    expected[2, 1, 0] += 0.5  # 2 -a1-> 2 (k = 0)
    np.testing.assert_allclose(flows.numpy(), expected, atol=1e-12)


def test_taxi_model_pays_on_the_transition_and_its_exact_return_matches_the_env():
    """Taxi-v4 with --reward-on transition: r(s, a, s') read from P (−1 a step, −10 an illegal pick-up or drop-off,
    +20 the delivery); the expert's exact return equals its mean return over 2,000 episodes in the env itself."""
    env = gym.make("Taxi-v4")
    with pytest.raises(mi.UserError, match="--reward-on transition"):
        mi.tabular_model(env, "Taxi-v4")
    mdp = mi.tabular_model(env, "Taxi-v4", "transition")
    assert set(np.unique(mdp["reward"])) == {-10.0, -1.0, 0.0, 20.0}
    next_state, prob = torch.as_tensor(mdp["next_state"]), torch.as_tensor(mdp["prob"])
    reward, p0 = torch.as_tensor(mdp["reward"]), torch.as_tensor(mdp["p0"])
    policy, _ = mi.value_iteration(reward, next_state, prob, 201)
    exact = mi.policy_return(policy, reward, next_state, prob, p0)
    _, _, _, returns = mi.collect_demos(env, policy.numpy(), list(range(2000)), 201, mdp["num_states"])
    assert abs(returns.mean() - exact) < 4 * returns.std() / math.sqrt(2000)
    assert 7 < exact < 9


@pytest.mark.parametrize("reward_on", ["state-action", "transition"])
def test_reward_features_one_hot_and_coordinates(reward_on):
    """One-hot: one feature per (s, a) or per transition the env can make, zero on terminal states and padding;
    coords: [row, col, one-hot a] (+ [row', col'] of s')."""
    env = gym.make("FrozenLake-v1")
    mdp = mi.tabular_model(env, "FrozenLake-v1", reward_on)
    onehot = mi.reward_features("onehot", reward_on, env, "FrozenLake-v1", mdp)
    live = (mdp["prob"] > 0) & ~mdp["absorbing"][:, None, None]
    assert onehot.shape[:3] == mdp["prob"].shape
    assert np.all(onehot.sum(-1)[live] == 1) and np.all(onehot[~live] == 0)
    if reward_on == "transition":
        assert onehot.shape[-1] == live.sum()  # every live (s, a, k) its own feature
        assert len(np.unique(onehot.argmax(-1)[live])) == live.sum()
    else:  # the same feature for every successor of one (s, a), and different (s, a) apart
        idx = onehot.argmax(-1)
        assert np.all((idx[:, :, 0:1] == idx)[live]) and len(np.unique(idx[live])) == live.any(-1).sum()
    coords = mi.reward_features("coords", reward_on, env, "FrozenLake-v1", mdp)
    assert coords.shape[-1] == (2 + 4 + 2 if reward_on == "transition" else 2 + 4)
    s, a, k = np.argwhere(live)[5]
    row, col = divmod(s, 4)
    np.testing.assert_allclose(coords[s, a, k, :6], [row / 3, col / 3] + list(np.eye(4)[a]))
