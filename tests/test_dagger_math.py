"""dagger.py's equations: the β schedules, the β-mixture of expert and learner, the disagreement score."""
import numpy as np
import pytest

import dagger


def test_beta_schedules_follow_ross_et_al():
    assert [dagger.beta_schedule(i, "indicator", 0.5) for i in (1, 2, 3, 10)] == [1.0, 0.0, 0.0, 0.0]
    assert [dagger.beta_schedule(i, "exponential", 0.5) for i in (1, 2, 3, 4)] == [1.0, 0.5, 0.25, 0.125]
    assert dagger.beta_schedule(1, "exponential", 0.0) == 1.0  # round 1 is the expert's in both


@pytest.mark.parametrize("beta", [0.0, 0.3, 0.5, 0.9, 1.0])
def test_mixture_executes_the_experts_action_with_probability_beta(beta):
    n = 20_000
    rng = np.random.default_rng(int(beta * 10))
    expert, learner = np.ones((n, 2)), -np.ones((n, 2))  # distinguishable actions, (T, A)
    actions, from_expert = dagger.mix_actions(expert, learner, beta, rng.random(n))
    # each row is wholly the expert's or wholly the learner's, and from_expert says which
    np.testing.assert_array_equal(actions[from_expert], expert[from_expert])
    np.testing.assert_array_equal(actions[~from_expert], learner[~from_expert])
    # the expert's share is Binomial(n, β)/n: within 4 standard errors of β
    se = np.sqrt(beta * (1 - beta) / n)
    assert abs(from_expert.mean() - beta) <= 4 * se + 1e-12


def test_mixture_of_discrete_actions_and_shape_guard():
    actions, from_expert = dagger.mix_actions(np.array([1, 1, 1]), np.array([0, 0, 0]), 0.5, np.array([0.1, 0.7, 0.4]))
    np.testing.assert_array_equal(actions, [1, 0, 1])
    np.testing.assert_array_equal(from_expert, [True, False, True])
    with pytest.raises(AssertionError):
        dagger.mix_actions(np.zeros((3, 2)), np.zeros((3, 1)), 0.5, np.zeros(3))


def test_disagreement_is_the_error_rate_or_the_mean_squared_distance():
    assert dagger.disagreement(np.array([0, 1, 1, 0]), np.array([0, 1, 0, 1]), discrete=True) == 0.5
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    loop = sum(sum((a[t, j] - b[t, j]) ** 2 for j in range(3)) for t in range(6)) / 6
    assert dagger.disagreement(a, b, discrete=False) == pytest.approx(loop)
