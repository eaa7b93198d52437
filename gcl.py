"""Guided cost learning: sample-based MaxEnt IRL with an importance-sampled partition function. WORK IN PROGRESS.

Paper: Finn, Levine, Abbeel, "Guided Cost Learning: Deep Inverse Optimal Control via Policy Optimization" (ICML 2016),
Algorithm 2 (non-linear IOC with stochastic patterns). Lecture notes: ../shared/seeds 001 ("IRLv3/IRLv4").

Only the algorithm's math is here so far (see GCL_WIP.md for the plan of the rest). The MaxEnt model of the demos:
    p_θ(τ) = p(τ) exp(R_θ(τ)) / Z(θ),   R_θ(τ) = Σ_t r_θ(s_t, a_t),   Z(θ) = Σ_τ p(τ) exp(R_θ(τ))
where p(τ) = ρ_0(s_0) Π_t P(s_{t+1} | s_t, a_t) is the dynamics alone. The IRL objective is the demos' log-likelihood,
    L(θ) = E_demo[R_θ(τ)] − log Z(θ),   ∇L = E_demo[∇R_θ] − E_{p_θ}[∇R_θ]
("push up along the experts, push down along the soft-optimal policy"). Z is a sum over every trajectory: GCL
estimates it from background trajectories τ_j ~ q drawn by a policy (mixed with the demos), whose density is
q(τ) = p(τ) Π_t π(a_t | s_t). The unknown dynamics cancel in the weights:
    Z = E_q[p(τ) exp(R_θ(τ)) / q(τ)] ≈ (1/M) Σ_j exp(R_θ(τ_j)) / Π_t π(a_t^j | s_t^j)
and autodiff of log Ẑ gives Σ_j w̃_j ∇R_θ(τ_j) with self-normalised weights w̃ = softmax(R_θ − log π(τ)), the
importance-sampled E_{p_θ}[∇R_θ].
"""
import math

import torch


# ── Algorithm math: small pure functions, one per equation, importable by tests ─────────────────────
# Notation (M background trajectories, k sampling policies so far):
#   code         symbol                                              shape
#   returns_bg   R_θ(τ_j) = Σ_t r_θ(s_t^j, a_t^j)                     (M,)
#   log_q        log q(τ_j) without the dynamics: Σ_t log π(a_t^j|s_t^j)  (M,)
#   log_w        log w_j = R_θ(τ_j) − log q(τ_j)                       (M,)
def mixture_log_density(log_q_per_policy: torch.Tensor) -> torch.Tensor:
    """log (1/k Σ_κ q_κ(τ_j)): (k, M) -> (M,). Algorithm 2's background density is the average of every sampling
    policy used so far (and the demos are scored under it too), so that a trajectory likely under any of them does not
    get a huge weight from one policy that makes it unlikely."""
    return torch.logsumexp(log_q_per_policy, dim=0) - math.log(log_q_per_policy.shape[0])


def log_partition_estimate(returns_bg: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """log Ẑ = log (1/M) Σ_j exp(R_θ(τ_j) − log q(τ_j)): (M,), (M,) -> scalar.

    GOTCHA: R and log q are sums over whole trajectories: exp of either overflows or underflows float32 long before a
    1,000-step episode ends. log-sum-exp subtracts the largest log-weight first, so the biggest term is exp(0) = 1.
    """
    log_w = returns_bg - log_q
    return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])


def ioc_loss(returns_demo: torch.Tensor, returns_bg: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """−L(θ) = −(1/N Σ_demo R_θ(τ_i) − log Ẑ): minimised by the reward's optimiser."""
    return -(returns_demo.mean() - log_partition_estimate(returns_bg, log_q))


def effective_sample_size(log_w: torch.Tensor) -> float:
    """ESS = (Σ w)² / Σ w² of the importance weights, from their logs, in [1, M]: near 1, one background trajectory
    carries log Ẑ and its gradient, and the estimate is noise."""
    return float(torch.exp(2 * torch.logsumexp(log_w, 0) - torch.logsumexp(2 * log_w, 0)))
