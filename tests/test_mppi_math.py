"""mppi.py's equations against closed forms and the simulators themselves: the weights are softmax(R/λ) and pick the
best sample as λ → 0; the update on a 1-D quadratic matches the Gaussian posterior in closed form; the Pendulum and
MuJoCo true models return what env.step does; the learned model's likelihood and batched ensemble."""
import math

import gymnasium as gym
import mujoco
import numpy as np
import pytest
import torch

import mppi


@pytest.fixture(autouse=True)
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def test_weights_are_softmax_of_returns_over_temperature():
    returns = np.array([-3.0, 0.5, 2.0, -10.0, 1.9])
    for lam in (0.1, 1.0, 7.0):
        w = mppi.mppi_weights(returns, lam)
        expected = torch.softmax(torch.as_tensor(returns) / lam, dim=0).numpy()
        assert w == pytest.approx(expected, rel=1e-12)
        by_hand = np.array([math.exp(r / lam) for r in returns])
        assert w == pytest.approx(by_hand / by_hand.sum(), rel=1e-12)


def test_weights_stay_finite_where_exp_would_overflow_or_vanish():
    # exp(−1000) is 0 and exp(1000) is inf in float64: the max-subtracted form gives the same softmax
    w = mppi.mppi_weights(np.array([-1000.0, -1001.0, -1003.0]), 1.0)
    e = np.exp([0.0, -1.0, -3.0])
    assert np.all(np.isfinite(w)) and w == pytest.approx(e / e.sum(), rel=1e-12)
    assert np.all(np.isfinite(mppi.mppi_weights(np.array([1000.0, 900.0]), 0.01)))


def test_small_temperature_selects_the_best_sample():
    rng = np.random.default_rng(0)
    actions = rng.standard_normal((50, 7, 2))  # (K, H, A)
    returns = rng.standard_normal(50)
    w = mppi.mppi_weights(returns, 1e-6)
    best = int(np.argmax(returns))
    assert w[best] == pytest.approx(1.0) and mppi.effective_sample_size(w) == pytest.approx(1.0)
    assert mppi.mppi_update(actions, w) == pytest.approx(actions[best])
    # and a large temperature averages them all: the plan is the plain mean, the ESS is K
    w = mppi.mppi_weights(returns, 1e9)
    assert mppi.mppi_update(actions, w) == pytest.approx(actions.mean(0))
    assert mppi.effective_sample_size(w) == pytest.approx(50)


def test_update_is_the_weighted_average_by_brute_force():
    rng = np.random.default_rng(1)
    actions, w = rng.standard_normal((6, 4, 3)), rng.dirichlet(np.ones(6))
    brute = sum(w[k] * actions[k] for k in range(6))
    assert mppi.mppi_update(actions, w) == pytest.approx(brute, rel=1e-12)


def test_one_dimensional_quadratic_matches_the_closed_form_posterior():
    """Prior v ~ N(u, σ²), return R(v) = −a(v − c)²: the posterior ∝ N(v; u, σ²)·exp(R(v)/λ) is Gaussian with
    precision 1/σ² + 2a/λ and mean (u/σ² + 2ac/λ) / (1/σ² + 2a/λ); MPPI's weighted average estimates that mean."""
    u, sigma, a, c, lam = 0.3, 0.8, 2.0, 1.5, 0.5
    closed_form = (u / sigma ** 2 + 2 * a * c / lam) / (1 / sigma ** 2 + 2 * a / lam)
    rng = np.random.default_rng(2)

    def plan_after(iterations: int) -> float:
        plan, _ = mppi.mppi_plan(np.full((1, 1), u), lambda v: -a * (v[:, 0, 0] - c) ** 2, rng, np.array([sigma]),
                                 np.array([-np.inf]), np.array([np.inf]), num_samples=400_000, iterations=iterations,
                                 temperature=lam)
        return plan[0, 0]

    # the posterior's std is 1/sqrt(precision) ≈ 0.24; with ESS ≈ 0.3·K samples the estimate's std is ~5e-4
    once = plan_after(1)
    assert once == pytest.approx(closed_form, abs=3e-3)
    assert once != pytest.approx(u, abs=0.1)  # it moved: the prior mean alone would fail
    # iterating the update with the new plan as the prior moves towards the maximiser c, each round a new posterior
    three = plan_after(3)
    mean = u
    for _ in range(3):
        mean = (mean / sigma ** 2 + 2 * a * c / lam) / (1 / sigma ** 2 + 2 * a / lam)
    assert three == pytest.approx(mean, abs=3e-3)


def test_plan_shifts_by_one_and_repeats_the_last_action():
    """--knots 0: a control point per step, S = I and the warm start drops u_0 and repeats the last action."""
    plan = np.arange(8.0).reshape(4, 2)
    spline, shift = mppi.interpolation_matrices(4, 0)
    assert np.array_equal(spline, np.eye(4))
    assert (shift @ plan).tolist() == [[2, 3], [4, 5], [6, 7], [6, 7]]


def test_knots_interpolate_linearly_and_shift_by_one_step():
    """4 points over H = 10 steps sit at τ = 0, 3, 6, 9; the actions are the straight lines between them, and the
    shifted points are the old plan read one step later, so that S·(T·P) = the old actions from step 1 on."""
    points = np.array([[0.0, 1.0], [3.0, -2.0], [-3.0, 4.0], [6.0, 0.0]])
    spline, shift = mppi.interpolation_matrices(10, 4)
    actions = spline @ points
    for d in range(2):  # against np.interp of each action dimension on the knots' steps
        assert actions[:, d] == pytest.approx(np.interp(np.arange(10), [0, 3, 6, 9], points[:, d]), abs=1e-12)
    assert actions[0].tolist() == points[0].tolist()  # u_0 = P_0: the executed action is the first point
    shifted = spline @ (shift @ points)
    # the knots of the shifted plan sit on the old plan's line at τ_j + 1 (the last one stays at H − 1)
    assert (shift @ points) == pytest.approx(np.stack([np.interp([1, 4, 7, 9], [0, 3, 6, 9], points[:, d])
                                                       for d in range(2)], axis=1), abs=1e-12)
    assert shifted[0] == pytest.approx(actions[1], abs=1e-12)
    # more knots than steps: one per step, as --knots 0
    assert np.array_equal(mppi.interpolation_matrices(3, 8)[0], np.eye(3))


def test_mppi_on_knots_is_the_average_of_the_interpolated_samples():
    """Averaging the control points with the weights averages the interpolated action sequences (S is linear)."""
    rng = np.random.default_rng(7)
    spline, _ = mppi.interpolation_matrices(12, 3)
    seen = {}

    def returns_fn(actions):
        seen["actions"] = actions
        return -np.square(actions - 0.3).sum(axis=(1, 2))
    plan, weights = mppi.mppi_plan(np.zeros((3, 2)), returns_fn, rng, np.array([0.5, 0.5]), np.full(2, -1.0),
                                   np.full(2, 1.0), num_samples=50, iterations=1, temperature=2.0, spline=spline)
    assert seen["actions"].shape == (50, 12, 2)
    assert np.all(np.abs(seen["actions"]) <= 1.0)  # clipped points, interpolated, stay within the bounds
    assert spline @ plan == pytest.approx(np.tensordot(weights, seen["actions"], axes=1), abs=1e-12)


def test_pendulum_model_equals_env_step():
    env = gym.make("Pendulum-v1")
    env.reset(seed=3)
    inner = env.unwrapped
    rng = np.random.default_rng(3)
    actions = rng.uniform(-2.5, 2.5, (5, 12, 1))  # beyond the torque limit too: the model clips as the env does
    theta, theta_dot = inner.state
    returns = mppi.pendulum_rollout_returns(theta, theta_dot, actions, inner.g, inner.m, inner.l, inner.dt,
                                            inner.max_speed, inner.max_torque)
    start = inner.state.copy()
    for k in range(5):
        inner.state = start.copy()
        total = sum(env.step(actions[k, t].astype(np.float32))[1] for t in range(12))
        # (env.step casts the action to float32; that is the only difference)
        assert returns[k] == pytest.approx(total, rel=1e-5)
    # the true model reads the env's own state: the same numbers through mppi.true_model
    inner.state = start.copy()
    assert mppi.true_model(env, "Pendulum-v1", 1)(actions) == pytest.approx(returns, rel=1e-12)


def test_one_gymnasium_step_is_frame_skip_rollout_steps_bit_for_bit():
    import mujoco.rollout
    for env_id in ("InvertedPendulum-v4", "Hopper-v4"):
        env = mppi.make_env(env_id)
        env.reset(seed=4)
        inner = env.unwrapped
        model, data, fs = inner.model, inner.data, inner.frame_skip
        spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
        state = np.zeros(mujoco.mj_stateSize(model, spec))
        mujoco.mj_getState(model, data, state, spec)
        actions = np.random.default_rng(4).uniform(-0.5, 0.5, (1, 6, model.nu)).astype(np.float32).astype(np.float64)
        states, _ = mujoco.rollout.rollout(model, [mujoco.MjData(model)], state[None], np.repeat(actions, fs, axis=1))
        after = states[0, fs - 1::fs]
        for t in range(6):
            obs = env.step(actions[0, t].astype(np.float32))[0]
            qpos, qvel = after[t, 1:1 + model.nq], after[t, 1 + model.nq:1 + model.nq + model.nv]
            assert np.array_equal(data.qpos, qpos) and np.array_equal(data.qvel, qvel)


def test_hopper_env_reward_is_the_env_reward():
    """--hopper-reward env: the true model's return of a sequence equals the sum of env.step's rewards while the
    hopper is healthy, and stops where the env terminates."""
    env = mppi.make_env("Hopper-v4")
    env.reset(seed=5)
    returns_fn = mppi.true_model(env, "Hopper-v4", 1, hopper_reward="env")
    rng = np.random.default_rng(5)
    actions = rng.uniform(-1, 1, (3, 40, 3)).astype(np.float32).astype(np.float64)
    predicted = returns_fn(actions)
    inner = env.unwrapped
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    start = np.zeros(mujoco.mj_stateSize(inner.model, spec))
    mujoco.mj_getState(inner.model, inner.data, start, spec)
    terminated_somewhere = False
    for k in range(3):
        mujoco.mj_setState(inner.model, inner.data, start, spec)
        total = 0.0
        for t in range(40):
            _, reward, terminated, _, _ = env.step(actions[k, t].astype(np.float32))
            if terminated:  # the env pays this step's reward, the planner's alive mask does not
                terminated_somewhere = True
                break
            total += reward
        assert predicted[k] == pytest.approx(total, rel=1e-9, abs=1e-9)
    assert terminated_somewhere  # random actions for 40 steps make it fall: the mask was exercised


def test_inverted_pendulum_planning_reward_stops_at_the_fall():
    qpos, qvel = np.zeros((1, 5, 2)), np.zeros((1, 5, 2))
    qpos[0, :, 1] = [0.0, 0.1, 0.19, 0.3, 0.0]  # the pole falls at step 3 (|θ| > 0.2) and a later 0 does not count
    qpos[0, 2, 0], qvel[0, 2, 0] = 0.95, 2.0  # and at step 2 the cart is near the end of its rail, fast
    r, alive = mppi.planning_reward_inverted_pendulum(qpos, qvel, np.zeros((1, 5, 1)))
    assert alive.tolist() == [[1, 1, 1, 0, 0]]
    # upright and centred pays the most (2), tilted less; a step alive is never worth less than a fall (0)
    assert r[0, 0] == 2.0 and r[0, 0] > r[0, 1] > r[0, 2] >= 0
    assert r[0, 1] == pytest.approx(2 - (0.1 / 0.2) ** 2)


def test_lqr_value_matrix_is_the_least_cost_of_the_linear_system():
    # scalar: the Riccati fixed point p = q + a²p − (abp)²/(r + b²p) is a root of b²p² + (r − a²r − qb²)p − qr = 0
    a, b, q, r = 1.1, 0.5, 2.0, 0.3
    P = mppi.lqr_value_matrix(np.array([[a]]), np.array([[b]]), np.array([[q]]), np.array([[r]]))
    c1, c0 = r - a * a * r - q * b * b, -q * r
    assert P[0, 0] == pytest.approx((-c1 + math.sqrt(c1 * c1 - 4 * b * b * c0)) / (2 * b * b), rel=1e-9)
    # 4-D, unstable A: sᵀPs is the cost Σ_t s_tᵀQs_t + u_tᵀRu_t of the gain L it implies, summed step by step, and
    # no other gain costs less
    rng = np.random.default_rng(0)
    A, B = np.eye(4) + 0.1 * rng.standard_normal((4, 4)), rng.standard_normal((4, 2))
    Q, R = np.diag([1.0, 2.0, 0.5, 0.1]), 0.2 * np.eye(2)
    P = mppi.lqr_value_matrix(A, B, Q, R)
    L = np.linalg.solve(R + B.T @ P @ B, B.T @ P @ A)

    def cost(gain, s):
        total = 0.0
        for _ in range(3000):
            u = -gain @ s
            total, s = total + s @ Q @ s + u @ R @ u, A @ s + B @ u
        return total
    for s0 in rng.standard_normal((3, 4)):
        assert cost(L, s0) == pytest.approx(s0 @ P @ s0, rel=1e-8)
        for _ in range(5):
            assert cost(L + 0.05 * rng.standard_normal(L.shape), s0) > s0 @ P @ s0


def test_linearized_step_predicts_a_small_perturbation_of_the_env():
    env = mppi.make_env("InvertedPendulum-v4")
    env.reset(seed=0)
    inner = env.unwrapped
    model, data = inner.model, inner.data
    A, B = mppi.linearize_step(model, inner.frame_skip, np.zeros(4), np.zeros(1))
    assert A.shape == (4, 4) and B.shape == (4, 1)

    def env_step(s, u):  # the env itself, from state s, one step with action u (exact in float32)
        inner.set_state(s[:2], s[2:])
        env.step(u.astype(np.float32))
        return np.concatenate([data.qpos, data.qvel])
    # the upright at rest is not quite an equilibrium (the pole's capsule leans 0.001 in 0.6): f(0, 0) ≠ 0
    rest = env_step(np.zeros(4), np.zeros(1))
    assert 0 < np.max(np.abs(rest)) < 0.01
    for scale in (1e-2, 1e-3):
        ds, du = scale * np.array([0.3, -0.5, 0.2, 0.4]), np.array([scale])
        error = env_step(ds, du) - rest - (A @ ds + B @ du)
        assert np.max(np.abs(error)) < 0.5 * scale ** 2  # what is left is second order


def test_inverted_pendulum_true_model_adds_the_terminal_value_to_sequences_still_up():
    env = mppi.make_env("InvertedPendulum-v4")
    env.reset(seed=6)
    inner = env.unwrapped
    returns_fn = mppi.true_model(env, "InvertedPendulum-v4", 1)
    A, B = mppi.linearize_step(inner.model, inner.frame_skip, np.zeros(4), np.zeros(1))
    P = mppi.lqr_value_matrix(A, B, np.diag(mppi.IP_STATE_WEIGHTS), mppi.IP_ACTION_WEIGHT * np.eye(1))
    # a gentle push balances for 5 steps, a hard one drops the pole within them
    actions = np.stack([np.full((5, 1), 0.2), np.full((5, 1), 3.0)]).astype(np.float32).astype(np.float64)
    predicted = returns_fn(actions)
    start_qpos, start_qvel = inner.data.qpos.copy(), inner.data.qvel.copy()
    for k, still_up in ((0, True), (1, False)):
        inner.set_state(start_qpos, start_qvel)
        qpos, qvel = [], []
        for t in range(5):
            env.step(actions[k, t].astype(np.float32))
            qpos.append(inner.data.qpos.copy()), qvel.append(inner.data.qvel.copy())
        qpos, qvel = np.array(qpos)[None], np.array(qvel)[None]
        r, alive = mppi.planning_reward_inverted_pendulum(qpos, qvel, actions[k:k + 1])
        assert bool(alive[0, -1]) == still_up
        value = mppi.terminal_value_inverted_pendulum(qpos[:, -1], qvel[:, -1], P)[0] if still_up else 0.0
        assert predicted[k] == pytest.approx((r * alive).sum() + value, rel=1e-9)
    # the terminal value: F at the upright at rest, lower away from it, never below 0 (a fall's)
    s = np.array([[0.0, 0.0], [0.1, 0.05], [0.9, 0.19]])
    v = mppi.terminal_value_inverted_pendulum(s, np.zeros((3, 2)), P)
    assert v[0] == mppi.IP_TERMINAL_CAP and v[0] > v[1] > v[2] >= 0.0


def test_gaussian_nll_against_torch_distributions():
    torch.manual_seed(0)
    mean, logvar, target = torch.randn(3, 5, 4), torch.randn(3, 5, 4), torch.randn(3, 5, 4)
    normal = torch.distributions.Normal(mean, torch.exp(0.5 * logvar))
    # −log N summed over the D dims, averaged over members and batch, minus the constant ½·D·log 2π
    expected = -normal.log_prob(target).sum(-1).mean() - 0.5 * 4 * math.log(2 * math.pi)
    assert float(mppi.gaussian_nll(mean, logvar, target)) == pytest.approx(float(expected), rel=1e-12)


def test_ensemble_members_are_independent_networks():
    torch.manual_seed(1)
    ens = mppi.Ensemble(3, in_dim=4, out_dim=2, hidden=8)
    x = torch.randn(3, 6, 4)
    mean, logvar = ens(x)
    for e in range(3):  # member e alone, written as a plain loop of matrix products
        h = x[e]
        for i, (w, b) in enumerate(zip(ens.weights, ens.biases)):
            h = h @ w[e] + b[e]
            h = torch.nn.functional.silu(h) if i < len(ens.weights) - 1 else h
        torch.testing.assert_close(mean[e], h[:, :2], rtol=1e-10, atol=1e-12)
    assert torch.all(logvar <= ens.max_logvar) and torch.all(logvar >= ens.min_logvar)


def test_hopper_shaped_reward_by_hand():
    """r = −[0.1‖a‖² + 50(z − 1.25)² + 3θ² + 3(ẋ − 2.5)²] while alive, −30 per step from the fall on."""
    qpos, qvel = np.zeros((1, 3, 6)), np.zeros((1, 3, 6))
    qpos[0, :, 1] = [1.25, 1.05, 0.6]  # torso height z; the last step is below the env's 0.7: fallen
    qpos[0, :, 2] = [0.0, 0.1, 0.0]  # torso angle θ
    qvel[0, :, 0] = [2.5, 1.5, 0.0]  # forward speed ẋ
    actions = np.zeros((1, 3, 3))
    actions[0, 0] = [1.0, -1.0, 0.5]
    _, alive = mppi.hopper_env_reward(qpos, qvel, actions, np.zeros((1, 3)), 0.008)
    assert alive.tolist() == [[1, 1, 0]]
    r = mppi.planning_reward_hopper(qpos, qvel, actions, alive)
    expected = [-0.1 * 2.25, -(50 * 0.2 ** 2 + 3 * 0.1 ** 2 + 3 * 1.0 ** 2), -30.0]
    assert r[0] == pytest.approx(expected, abs=1e-12)


def test_hopper_true_model_plans_on_the_shaped_reward():
    """The default true model's return is Σ_t planning_reward_hopper along the rolled-out states, −30 per step from
    the fall on (random actions from reset seed 6 make both sequences fall, at steps 18 and 14)."""
    env = mppi.make_env("Hopper-v4")
    env.reset(seed=6)
    actions = np.random.default_rng(6).uniform(-1, 1, (2, 30, 3)).astype(np.float32).astype(np.float64)
    inner = env.unwrapped
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    start = np.zeros(mujoco.mj_stateSize(inner.model, spec))
    mujoco.mj_getState(inner.model, inner.data, start, spec)
    predicted = mppi.true_model(env, "Hopper-v4", 1)(actions)
    for k in range(2):
        mujoco.mj_setState(inner.model, inner.data, start, spec)
        total, alive = 0.0, True
        for t in range(30):
            env.step(actions[k, t].astype(np.float32))
            q, v = inner.data.qpos, inner.data.qvel
            alive = alive and bool(inner.is_healthy)
            cost = (0.1 * np.square(actions[k, t]).sum() + 50 * (q[1] - 1.25) ** 2 + 3 * q[2] ** 2
                    + 3 * (v[0] - 2.5) ** 2)
            total += -cost if alive else -30.0
        assert not alive  # the fall was exercised
        assert predicted[k] == pytest.approx(total, rel=1e-9)
