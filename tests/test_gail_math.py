"""gail.py's equations against hand-computed values and brute force: the discriminator's loss and its gradient, the
three reward forms, D's entropy, the gradient penalty against finite differences, D's input, and the running
discounted return that scales the rewards."""
import math

import numpy as np
import pytest
import torch

import gail


@pytest.fixture(autouse=True)
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


def test_discriminator_loss_by_hand():
    # D = σ(f): expert logits 0 and 2 (D = ½, 0.881), policy logits −1 and 3 (D = 0.269, 0.953)
    fe, fp = [0.0, 2.0], [-1.0, 3.0]
    want = (-np.mean([math.log(sigmoid(f)) for f in fe])            # −E_E[log D]
            - np.mean([math.log(1 - sigmoid(f)) for f in fp]))      # −E_π[log(1 − D)]
    got = gail.discriminator_loss(torch.tensor(fe), torch.tensor(fp))
    assert float(got) == pytest.approx(want, rel=1e-12)
    # at D = ½ everywhere (the equilibrium) the loss is 2·log 2
    assert float(gail.discriminator_loss(torch.zeros(5), torch.zeros(7))) == pytest.approx(2 * math.log(2), rel=1e-12)


def test_discriminator_loss_pushes_up_expert_and_down_policy():
    fe, fp = torch.tensor([0.3, -0.2], requires_grad=True), torch.tensor([0.5, 1.0], requires_grad=True)
    gail.discriminator_loss(fe, fp).backward()
    # d/df of −log σ(f) is −(1 − σ(f)) < 0: descending raises the expert's logits; d/df of −log(1 − σ(f)) is σ(f) > 0
    np.testing.assert_allclose(fe.grad.numpy(), [-(1 - sigmoid(0.3)) / 2, -(1 - sigmoid(-0.2)) / 2], rtol=1e-12)
    np.testing.assert_allclose(fp.grad.numpy(), [sigmoid(0.5) / 2, sigmoid(1.0) / 2], rtol=1e-12)


def test_discriminator_loss_stays_finite_where_sigma_saturates():
    loss = gail.discriminator_loss(torch.tensor([-200.0], dtype=torch.float32), torch.tensor([200.0], dtype=torch.float32))
    assert float(loss) == pytest.approx(400.0, rel=1e-6)  # softplus(200) + softplus(200), not inf


@pytest.mark.parametrize("f", [-30.0, -2.0, -0.3, 0.0, 0.7, 4.0, 30.0])
def test_reward_forms_by_hand(f):
    d = sigmoid(f)
    logits = torch.tensor([f])
    positive = float(gail.gail_reward(logits, "positive"))
    negative = float(gail.gail_reward(logits, "negative"))
    logit = float(gail.gail_reward(logits, "logit"))
    if abs(f) < 20:  # where the naive formulas are still accurate in float64
        assert positive == pytest.approx(-math.log(1 - d), rel=1e-9)
        assert negative == pytest.approx(math.log(d), rel=1e-9)
        assert logit == pytest.approx(math.log(d) - math.log(1 - d), rel=1e-9)
    # the signs that give the episode-length bias: always > 0, always < 0, and the difference of the two
    assert positive > 0 > negative
    assert logit == pytest.approx(positive + negative, rel=1e-12, abs=1e-12)


def test_bernoulli_entropy_by_hand():
    for f in [-5.0, -0.4, 0.0, 1.3, 8.0]:
        d = sigmoid(f)
        want = -d * math.log(d) - (1 - d) * math.log(1 - d)
        assert float(gail.bernoulli_entropy(torch.tensor([f]))) == pytest.approx(want, rel=1e-10)
    assert float(gail.bernoulli_entropy(torch.tensor([0.0]))) == pytest.approx(math.log(2), rel=1e-12)  # the maximum


def test_gradient_penalty_against_finite_differences():
    torch.manual_seed(0)
    disc = gail.Discriminator(3, 2, 8)
    xe, xp, eps = torch.randn(4, 5), torch.randn(4, 5), torch.rand(4, 1)
    got = gail.gradient_penalty(disc, xe, xp, eps).item()
    x_hat = eps * xe + (1 - eps) * xp
    h, want = 1e-6, 0.0
    for i in range(4):
        grad = np.zeros(5)
        for j in range(5):
            up, down = x_hat[i:i + 1].clone(), x_hat[i:i + 1].clone()
            up[0, j] += h
            down[0, j] -= h
            grad[j] = (disc(up).item() - disc(down).item()) / (2 * h)  # central difference of f_ψ
        want += (np.linalg.norm(grad) - 1) ** 2 / 4
    assert got == pytest.approx(want, rel=1e-6)


def test_gradient_penalty_is_zero_for_a_unit_slope_and_trains_the_discriminator():
    disc = gail.Discriminator(1, 1, 4)
    linear = torch.nn.Sequential(torch.nn.Linear(2, 1))
    with torch.no_grad():  # f(x) = x_0 + b: a linear map with gradient (1, 0), norm exactly 1
        linear[0].weight.copy_(torch.tensor([[1.0, 0.0]]))
    disc.net = linear
    xe, xp = torch.randn(6, 2), torch.randn(6, 2)
    assert gail.gradient_penalty(disc, xe, xp, torch.rand(6, 1)).item() == pytest.approx(0.0, abs=1e-24)
    # and it has a gradient with respect to ψ (create_graph): with slope 2 the penalty pulls the weight down
    linear[0].weight.data.copy_(torch.tensor([[2.0, 0.0]]))
    gail.gradient_penalty(disc, xe, xp, torch.rand(6, 1)).backward()
    assert linear[0].weight.grad[0, 0] == pytest.approx(2 * (2 - 1), rel=1e-12)  # d/dw (|w| − 1)² = 2(w − 1)


def test_discriminator_input_scales_the_executed_action():
    obs = torch.tensor([[0.5, -1.0], [2.0, 0.0]])
    low, high = torch.tensor([-2.0, 0.0]), torch.tensor([2.0, 1.0])
    actions = torch.tensor([[1.0, 0.25], [-7.0, 3.0]])  # the second row is out of bounds: clipped to (−2, 1)
    x = gail.discriminator_input(obs, actions, False, 2, low, high)
    np.testing.assert_allclose(x.numpy(), [[0.5, -1.0, 0.5, -0.5], [2.0, 0.0, -1.0, 1.0]], rtol=1e-12)
    x = gail.discriminator_input(obs, torch.tensor([2, 0]), True, 3, None, None)
    np.testing.assert_allclose(x.numpy(), [[0.5, -1.0, 0, 0, 1], [2.0, 0.0, 1, 0, 0]])


def test_discounted_returns_against_a_loop_over_episodes():
    rng = np.random.default_rng(0)
    T, N, gamma = 9, 3, 0.9
    rewards, dones = rng.normal(size=(T, N)), rng.random((T, N)) < 0.25
    start = rng.normal(size=N)
    got, carry = gail.discounted_returns(rewards, dones.astype(float), start, gamma)
    for i in range(N):
        g = start[i]
        for t in range(T):
            g = gamma * g + rewards[t, i]
            assert got[t, i] == pytest.approx(g, rel=1e-12)
            if dones[t, i]:
                g = 0.0
        assert carry[i] == pytest.approx(g, rel=1e-12, abs=1e-12)


def test_compute_gae_is_ppo_s():
    import ppo
    rng = np.random.default_rng(1)
    T, N = 7, 2
    args = [rng.normal(size=(T, N)) for _ in range(3)] + [(rng.random((T, N)) < 0.2).astype(float) for _ in range(2)]
    args[4] = np.maximum(args[4], args[3])  # terminated implies done
    np.testing.assert_array_equal(gail.compute_gae(*args, 0.99, 0.95), ppo.compute_gae(*args, 0.99, 0.95))
