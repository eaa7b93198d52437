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
    assert float(log_z_hat) == pytest.approx(float(log_z), abs=0.01)
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
