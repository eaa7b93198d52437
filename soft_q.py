"""Soft Q-learning: reinforcement learning as inference, solved by a "soft" Bellman backup, three ways.

Papers: Haarnoja, Tang, Abbeel, Levine, "Reinforcement learning with deep energy-based policies" (ICML 2017); Levine,
"Reinforcement learning and control as probabilistic inference: tutorial and review" (arXiv:1805.00909, 2018).
Lecture notes: ../shared/seeds 001 (optimality variables O_t; the ELBO equals max-entropy RL; optimising it by
dynamic programming gives the soft Bellman recursion; "go from max to softmax"; why: no premature collapse of
exploration).

Maximising the ELBO of the optimality variables is maximising the expected return plus the policy's entropy:
    max_q E_q[ Σ_t r(s_t, a_t) + α·H(q(·|s_t)) ]
and dynamic programming from the last step backwards gives (notes 001, "Let's make it recursive"; α = 1 there):
    Q_t(s_t, a_t) = r(s_t, a_t) + γ·E_{s_{t+1}∼p}[ V_{t+1}(s_{t+1}) ]                (Bellman update)
    V_t(s_t)      = α·log ∫ exp(Q_t(s_t, a)/α) da                                  (soft-max)
    q(a_t|s_t)    = exp((Q_t(s_t, a_t) − V_t(s_t))/α)                               (the Boltzmann policy)
As α → 0 the soft-max becomes max_a Q and q the greedy policy: ordinary Q-learning. As α grows, q spreads over every
action in proportion to exp(Q/α), so exploration does not collapse onto the first action that looked good.

The three ways (chosen by the environment's spaces):
  tabular     a known model (FrozenLake-v1: env.unwrapped.P): the recursion above exactly, by soft value iteration
              over a horizon H; `--alpha` near 0 reproduces hard value iteration (the summary reports the gap).
  discrete    Box observations, Discrete actions (CartPole-v1, Acrobot-v1): a Q-network trained on the exact soft
              backup V(s') = α·logsumexp_a' Q_target(s', a')/α, acting by sampling softmax(Q/α); replay buffer and
              target network as in DQN.
  continuous  Box actions (Pendulum-v1, MuJoCo): the integral over actions has no closed form, so
              [paper eq. 10] V(s') ≈ α·log E_{a'∼q_a'}[exp(Q(s', a')/α) / q_a'(a')] with a uniform proposal q_a' on
              [−1, 1]^D, and actions come from an amortised sampler a = f_φ(ξ; s), ξ ∼ N(0, I), trained by Stein
              variational gradient descent to draw from exp(Q/α) [paper eq. 13–14].

Pseudocode (continuous; the discrete way is the same without [S3b]; the step tags appear in the training loop below):
    for t = 1, 2, ...
        [S1] a_t = f_φ(ξ; s_t) (or a_t ∼ softmax(Q(s_t, ·)/α)), step the env, store (s_t, a_t, r_t, s_{t+1}) in D
        [S2] sample a minibatch from D; soft value of s' by the exact logsumexp or by importance sampling
        [S3a] Q_θ ← one Adam step on ½·E[(Q_θ(s, a) − (r + γ(1 − done)·V̂(s')))²]
        [S3b] f_φ ← one Adam step along the SVGD direction pushed through the sampler (surrogate loss)
        θ̄ ← τθ + (1 − τ)θ̄ (Polyak averaging; τ = 1 every N steps is a periodic copy)
        [S4] log: policy entropy (discrete), soft value, TD error

Run:
    python soft_q.py                                           # CartPole-v1 (discrete way), 100k steps
    python soft_q.py --env FrozenLake-v1 --alpha 1e-4 --gamma 1  # tabular: soft VI = hard VI (0.744)
    python soft_q.py --env Pendulum-v1 --total-timesteps 30000  # continuous: SVGD sampler
What a working run reaches: CartPole-v1 500 within 100k steps, Pendulum-v1 −112 within 30k (docs/soft_q.md, with
the command behind each number).

Deviations from the paper:
  - As the released code (haarnoja/softqlearning): the soft value's uniform proposal uses value_particles samples
    and adds D·log 2, the log of the uniform density's inverse on [−1, 1]^D; the SVGD particles are split in two
    halves, the first giving the score ∇ log p, the second moved by the kernel (see `svgd_direction`).
  - DEVIATION (the sampler's target, as in the released code): the score of Q/α + Σ_d log(1 − a_d²) and the
    kernel are taken in action space, so the sampler converges to exp(Q/α)·Π_d(1 − a_d²), the Boltzmann policy
    times a barrier prior, not to the exp(Q/α) whose soft value V is estimated (see `svgd_log_target`).
  - DEVIATION: the target network follows θ by Polyak averaging, θ̄ ← 0.005·θ + 0.995·θ̄ every step (SAC's
    rule), and both step sizes decay linearly to 0. The released code copies θ every 1000 steps at a constant step
    size; with that (copies every 500) the CartPole greedy policy ended at 133–500 depending on the seed and the
    budget, and with Polyak averaging alone one seed in three fell from 500 to 192 at the end of 100k steps: the
    oscillation of off-policy Q-learning, probably forgetting how failure looks once D holds only successes.
    `--tau 1 --target-update-interval 1000 --no-anneal-lr` restores the released code's rule.
"""


# ── Imports ────────────────────────────────────────────────────────────────────────────────────────
from __future__ import annotations  # (a type in a signature may be defined further down)

import copy
import dataclasses
import importlib.util
import json
import math
import os
import pickle
import random
import signal
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from typing import Optional

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import tyro
from torch.utils.tensorboard import SummaryWriter


# ── Hyperparameters (Args) ─────────────────────────────────────────────────────────────────────────
@dataclass


class Args:
    # --- common to every script (CONTRIBUTING.md) ---
    env: str = "CartPole-v1"
    """gymnasium environment id: tabular (FrozenLake-v1), discrete actions (CartPole-v1, Acrobot-v1) or continuous
    actions (Pendulum-v1, Hopper-v4)"""
    exp_name: str = "soft_q"
    """name of this experiment; part of the run directory name"""
    seed: int = 1
    """seed of python, numpy, torch and the environment"""
    total_timesteps: int = 100_000
    """environment steps to train for (the tabular way plans on the model and takes none)"""
    cuda: bool = True
    """update on the GPU when one is available (acting runs on the CPU)"""
    torch_deterministic: bool = True
    """make cuDNN deterministic"""
    torch_threads: int = 1
    """CPU threads for torch; 1 is fastest for small MLPs"""
    capture_video: bool = False
    """record the final evaluation episodes to <run dir>/videos (needs moviepy)"""
    save_model: bool = True
    """write <run dir>/model.pt"""
    runs_dir: str = "runs"
    """parent folder of the run directories"""
    eval_episodes: int = 10
    """episodes of the final deterministic evaluation (argmax_a Q, or the sampler at ξ = 0)"""
    eval_seed: int = 10_000
    """evaluation episode i is reset with seed eval_seed + i (away from the training seeds)"""
    checkpoint: Optional[str] = None
    """skip training: load this model.pt written by soft_q.py and evaluate it"""
    checkpoint_every: int = 100_000
    """write <run dir>/checkpoint.pt (all that --resume needs, the replay buffer included) every this many env steps;
    0: only on Ctrl-C/SIGTERM"""
    resume: Optional[str] = None
    """continue the run in this run directory from its checkpoint.pt, with its own arguments"""

    # --- the soft backup ---
    alpha: Optional[float] = None
    """α, the temperature: the weight of the entropy; α → 0 is hard Q-learning (default: --tabular-alpha,
    --discrete-alpha or --continuous-alpha by the env's spaces)"""
    tabular_alpha: float = 0.01
    """α of the tabular way when --alpha is left out (FrozenLake's return is 0 or 1)"""
    discrete_alpha: float = 0.1
    """α of the discrete way when --alpha is left out (CartPole pays 1 per step)"""
    continuous_alpha: float = 0.2
    """α of the continuous way when --alpha is left out (the released code's reward scale r_s stands for 1/α)"""
    gamma: float = 0.99
    """γ, the discount"""
    horizon: Optional[int] = None
    """tabular: H, the steps of the soft value iteration (default: the env's time limit)"""

    # --- learning (discrete and continuous ways) ---
    buffer_size: int = 100_000
    """replay buffer capacity, in transitions"""
    batch_size: int = 64
    """transitions per gradient step"""
    learning_starts: int = 1000
    """steps of uniformly random actions before the first gradient step"""
    train_frequency: int = 1
    """env steps per gradient step"""
    learning_rate: float = 1e-3
    """Adam step size of Q_θ"""
    policy_learning_rate: float = 1e-3
    """Adam step size of the sampler f_φ (continuous)"""
    anneal_lr: bool = True
    """decay both step sizes linearly to 0 over training"""
    target_update_interval: int = 1
    """gradient steps between updates θ̄ ← τθ + (1 − τ)θ̄ of the target network"""
    tau: float = 0.005
    """τ of the target update: a small τ every step is Polyak averaging (SAC); τ = 1 every 1000 steps copies θ, as
    the released code and DQN do"""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """hidden ReLU layers of Q_θ and f_φ"""
    value_particles: int = 16
    """continuous: M, uniform samples a' per s' in the importance-sampled soft value (released code: 16)"""
    svgd_particles: int = 16
    """continuous: K, sampler particles per state for SVGD, split in two halves (released code: 16)"""
    norm_obs: bool = False
    """normalise observations with running mean and variance"""
    clip_obs: float = 10.0
    """clip normalised observations to ±clip_obs"""


# ── Environment model ──────────────────────────────────────────────────────────────────────────────
def tabular_model(env: gym.Env, env_id: str) -> dict:
    """The MDP as successor lists, from P[s][a] = [(prob, next_state, reward, terminated), ...].

    next_state[s, a, k] with probability prob[s, a, k], paying reward[s, a, k] and ending the episode where
    done[s, a, k] (k < K, padded with probability 0). Rewards belong to transitions, as gymnasium gives them.
    """
    unwrapped = env.unwrapped
    if not hasattr(unwrapped, "P") or not isinstance(env.action_space, gym.spaces.Discrete):
        raise UserError(f"{env_id} has discrete observations but no tabular model (env.unwrapped.P) to plan on")
    if not hasattr(unwrapped, "initial_state_distrib"):
        raise UserError(f"{env_id} does not expose its start distribution (env.unwrapped.initial_state_distrib)")
    num_states, num_actions = int(env.observation_space.n), int(env.action_space.n)
    width = max(len(unwrapped.P[s][a]) for s in range(num_states) for a in range(num_actions))
    next_state = np.zeros((num_states, num_actions, width), np.int64)  # (S, A, K)
    prob, reward = np.zeros((num_states, num_actions, width)), np.zeros((num_states, num_actions, width))
    done = np.ones((num_states, num_actions, width), bool)  # padding: probability 0 and done, so it adds nothing
    for s in range(num_states):
        for a in range(num_actions):
            for k, (p, s2, r, terminated) in enumerate(unwrapped.P[s][a]):
                next_state[s, a, k], prob[s, a, k], reward[s, a, k], done[s, a, k] = s2, p, r, terminated
    return {"next_state": next_state, "prob": prob, "reward": reward, "done": done}


# ── Networks ───────────────────────────────────────────────────────────────────────────────────────
def relu_mlp(in_dim: int, hidden: tuple, out_dim: int) -> nn.Sequential:
    """in_dim -> hidden[0] -> ... -> out_dim with ReLU activations (PyTorch's default initialisation)."""
    layers, last = [], in_dim
    for size in hidden:
        layers += [nn.Linear(last, size), nn.ReLU()]
        last = size
    layers.append(nn.Linear(last, out_dim))
    return nn.Sequential(*layers)


class QNetwork(nn.Module):
    """Q_θ: discrete actions: s -> Q(s, ·) (B, A); continuous: (s, a) -> Q(s, a) (B,)."""

    def __init__(self, obs_dim: int, act_dim: int, discrete: bool, hidden: tuple):
        super().__init__()
        self.discrete = discrete
        self.net = relu_mlp(obs_dim if discrete else obs_dim + act_dim, hidden, act_dim if discrete else 1)

    def forward(self, obs: torch.Tensor, actions: Optional[torch.Tensor] = None) -> torch.Tensor:
        if self.discrete:
            return self.net(obs)  # (B, A)
        return self.net(torch.cat([obs, actions], -1)).squeeze(-1)  # (..., obs_dim + act_dim) -> (...)


class Sampler(nn.Module):
    """f_φ(ξ; s) = tanh(MLP([s, ξ])), ξ ∼ N(0, I_D): the amortised SVGD sampler of the paper (Sec. 3.2).

    Its actions lie in (−1, 1)^D; the environment gets them mapped to its bounds. The network learns to turn noise
    into samples of π(a|s) ∝ exp(Q(s, a)/α): a distribution with no density formula, only samples.
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple):
        super().__init__()
        self.act_dim = act_dim
        self.net = relu_mlp(obs_dim + act_dim, hidden, act_dim)

    def forward(self, obs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """obs (B, obs_dim), noise (B, K, D) -> actions (B, K, D) in (−1, 1)"""
        obs = obs.unsqueeze(1).expand(-1, noise.shape[1], -1)  # (B, K, obs_dim)
        return torch.tanh(self.net(torch.cat([obs, noise], -1)))


# ── Algorithm math: small pure functions, one per equation, importable by tests ────────────────────
# Notation (B: minibatch, A: number of actions or action dim D, M: value particles, K: SVGD particles):
#   code          symbol                                          shape
#   q_values      Q(s, ·) for every discrete action               (B, A)
#   soft_v        V(s) = α log Σ_a exp(Q(s, a)/α)                  (B,)
#   log_pi        log q(a|s) = (Q(s, a) − V(s))/α                   (B, A)
#   actions       a ∈ (−1, 1)^D (continuous, normalised)          (B, D), (B, M, D), (B, K, D)
#   targets       y = r + γ(1 − done)·V̂(s')                        (B,)
def soft_value(q_values: torch.Tensor, alpha: float) -> torch.Tensor:
    """V(s) = α·log Σ_a exp(Q(s, a)/α), over the last dim: (..., A) -> (...).

    (notes 001: "V_soft(s_t) ← α log ∫ exp(Q_soft(s_t, a')/α) da'", a sum for discrete actions.)
    GOTCHA: exp(Q/α) overflows for Q/α > 88 in float32 (CartPole's Q ≈ 100 and α = 0.1 give 1000): logsumexp
    subtracts the max first, V = m + α log Σ exp((Q − m)/α) with m = max_a Q.
    α → 0: V → max_a Q (hard Q-learning); α → ∞: V − α log|A| → mean_a Q (tests/test_soft_q_math.py).
    """
    return alpha * torch.logsumexp(q_values / alpha, dim=-1)


def boltzmann_log_probs(q_values: torch.Tensor, alpha: float) -> torch.Tensor:
    """log q(a|s) = (Q(s, a) − V(s))/α, the notes' q(a_t|s_t) = exp(Q_t − V_t) with temperature; (B, A) -> (B, A)."""
    return torch.log_softmax(q_values / alpha, dim=-1)


def soft_value_iteration(next_state: torch.Tensor, prob: torch.Tensor, reward: torch.Tensor, done: torch.Tensor,
                         alpha: float, gamma: float, horizon: int) -> tuple:
    """The notes' recursion on a known MDP, from the last step back: returns (Q (H, S, A), V (H + 1, S)).

        V_H(s) = 0;  for t = H−1 .. 0:
        Q_t(s, a) = Σ_k prob[s,a,k]·( reward[s,a,k] + γ·(1 − done[s,a,k])·V_{t+1}(next_state[s,a,k]) )
        V_t(s)    = α·log Σ_a exp(Q_t(s, a)/α)      (α = 0: V_t(s) = max_a Q_t(s, a), hard value iteration, the limit)
    (with γ = 1 and α = 1 the notes' "For t = T−1 to 1" recursion exactly; the policy at step t is
    q_t(a|s) = exp((Q_t(s, a) − V_t(s))/α)). next_state (S, A, K) int, the rest (S, A, K).
    """
    num_states = next_state.shape[0]
    v = torch.zeros(horizon + 1, num_states, dtype=reward.dtype, device=reward.device)  # (H + 1, S)
    q = torch.zeros(horizon, *next_state.shape[:2], dtype=reward.dtype, device=reward.device)  # (H, S, A)
    for t in reversed(range(horizon)):
        q[t] = (prob * (reward + gamma * (~done) * v[t + 1][next_state])).sum(-1)  # (S, A)
        v[t] = soft_value(q[t], alpha) if alpha > 0 else q[t].max(-1).values
    return q, v


def policy_return(log_pi: torch.Tensor, next_state: torch.Tensor, prob: torch.Tensor, reward: torch.Tensor,
                  done: torch.Tensor, start: torch.Tensor) -> float:
    """The exact expected (undiscounted) return of the non-stationary policy π_t (log_pi (H, S, A)) from start (S,)."""
    dist = start.clone()  # (S,) probability of being in s at step t and still running
    total = 0.0
    for t in range(log_pi.shape[0]):
        p_sa = dist[:, None] * log_pi[t].exp()  # (S, A)
        flow = p_sa[..., None] * prob  # (S, A, K)
        total += float((flow * reward).sum())
        dist = torch.zeros_like(dist).index_add_(0, next_state[~done], flow[~done])
    return total


def soft_q_targets(rewards: torch.Tensor, next_soft_v: torch.Tensor, terminations: torch.Tensor,
                   gamma: float) -> torch.Tensor:
    """y = r + γ·(1 − terminated)·V(s'); (B,) each -> (B,).

    GOTCHA: only a true end (terminated) has V(s') = 0. A time limit (truncated) is not the end of the task, so its
    s' keeps its value; replay buffers that store one `done` flag for both get this wrong.
    """
    assert rewards.shape == next_soft_v.shape == terminations.shape
    return rewards + gamma * (1.0 - terminations) * next_soft_v


def importance_sampled_soft_value(q_uniform: torch.Tensor, alpha: float, act_dim: int) -> torch.Tensor:
    """V(s) ≈ α·log (1/M) Σ_j exp(Q(s, a'_j)/α) / q_a'(a'_j),  a'_j ∼ U[−1, 1]^D, q_a' = 2^{−D}  [paper eq. 10]

    = α·( logsumexp_j Q(s, a'_j)/α − log M + D·log 2 ), from Q at M uniform actions per state: (B, M) -> (B,).
    (released code: the same formula, with α folded into a reward scale.) It is consistent as M → ∞ but biased low
    for finite M (Jensen: E log ≤ log E); the bias shrinks with M.
    """
    m = q_uniform.shape[-1]
    return alpha * (torch.logsumexp(q_uniform / alpha, dim=-1) - math.log(m) + act_dim * math.log(2.0))


def rbf_kernel(xs: torch.Tensor, ys: torch.Tensor) -> tuple:
    """κ(x, y) = exp(−‖x − y‖²/h) with the median heuristic h = median‖x − y‖² / log(K_x + 1)  (paper App. C.1).

    xs (B, Kx, D), ys (B, Ky, D) -> (κ (B, Kx, Ky), ∇_x κ (B, Kx, Ky, D)). The bandwidth is a number per state
    (no gradient), so that on average each particle keeps a few neighbours.
    DEVIATION: log(K_x + 1) where the paper and the released code divide by log K_x, which is 0 for K_x = 1;
    for the default K_x = 8 the bandwidth is 6% smaller.
    """
    diff = xs.unsqueeze(2) - ys.unsqueeze(1)  # (B, Kx, Ky, D)
    dist2 = diff.pow(2).sum(-1)  # (B, Kx, Ky)
    h = dist2.flatten(1).median(dim=1).values.detach() / math.log(xs.shape[1] + 1)  # (B,) (+1: log 1 = 0 for Kx = 1)
    h = h.clamp_min(1e-8)[:, None, None]  # stabiliser: all particles equal
    kappa = torch.exp(-dist2 / h)
    # ∇_x κ(x, y) = −2 (x − y)/h · κ
    grad = -2 * diff / h.unsqueeze(-1) * kappa.unsqueeze(-1)
    return kappa, grad


def svgd_direction(score: torch.Tensor, kappa: torch.Tensor, kappa_grad: torch.Tensor) -> torch.Tensor:
    """Δf(ξ_i; s) = E_j[ κ(a_j, a_i)·∇_{a_j} log p(a_j|s) + ∇_{a_j} κ(a_j, a_i) ]   [paper eq. 13]

    score ∇ log p at the first half's particles a_j (B, Kj, D); kappa (B, Kj, Ki) and its gradient in a_j
    (B, Kj, Ki, D) -> the direction for the second half's particles a_i (B, Ki, D). The first term pulls the particles
    uphill on log p = Q/α; the second pushes them apart (the repulsion that keeps the samples a distribution, not a
    single mode).
    """
    return (kappa.unsqueeze(-1) * score.unsqueeze(2) + kappa_grad).mean(dim=1)


def svgd_log_target(q_values: torch.Tensor, actions: torch.Tensor, alpha: float) -> torch.Tensor:
    """log p(a|s) = Q(s, a)/α + Σ_d log(1 − a_d² + ε), up to a constant: the target whose score moves the particles;
    q_values (B, K), actions (B, K, D) -> (B, K).

    TRICK (released code): the second term keeps the particles off the saturated bounds ±1, where tanh's gradient
    vanishes. DEVIATION (the target): the score and the kernel are both taken in action space, so the particles
    converge to p(a|s) ∝ exp(Q(s, a)/α)·Π_d (1 − a_d²), the Boltzmann policy times a barrier prior that vanishes at
    the bounds (the term would be the change of variables only if SVGD ran on u = atanh a). The soft value V of
    [S2] is that of exp(Q/α) alone, so the sampler is a little more cautious than the policy V assumes
    (tests/test_soft_q_math.py measures the difference on a 1-D Q).
    """
    return q_values / alpha + torch.log(1 - actions.pow(2) + 1e-6).sum(-1)


def svgd_sampler_loss(particles: torch.Tensor, log_p) -> tuple:
    """One amortised SVGD step's surrogate loss [paper eq. 13–14] -> (loss, Δf (B, K/2, D)).

    particles (B, K, D) = f_φ(ξ; s), with the graph back to φ; log_p: actions (B, K/2, D) -> log p(a|s) (B, K/2).
    The first half of the particles gives the score ∇_a log p (held fixed: no gradient reaches φ through it); the
    second half is moved: Δf = svgd_direction at those particles, and the loss −E[Δf·f_φ] (Δf held constant) has
    the gradient −E[Δf·∂f_φ/∂φ], so a descent step on it moves every moved particle along Δf.
    """
    half = particles.shape[1] // 2
    fixed = particles[:, :half].detach().requires_grad_(True)  # (B, K/2, D)
    moved = particles[:, half:]  # (B, K/2, D), with the graph back to φ
    score = torch.autograd.grad(log_p(fixed).sum(), fixed)[0]  # ∇_a log p, (B, K/2, D)
    kappa, kappa_grad = rbf_kernel(fixed.detach(), moved.detach())
    direction = svgd_direction(score, kappa, kappa_grad)  # Δf, (B, K/2, D)
    return -(moved * direction.detach()).sum(-1).mean(), direction


def normalize_obs(obs: np.ndarray, rms: Optional[RunningMeanStd], clip: float) -> np.ndarray:
    """ŝ = clip((s − μ) / √(σ² + ε), −c, c), as float32; identity without statistics."""
    if rms is None:
        return obs.astype(np.float32)
    return np.clip((obs - rms.mean) / np.sqrt(rms.var + 1e-8), -clip, clip).astype(np.float32)


# ── Training loop [S1 act -> S2 soft value -> S3a Q step -> S3b sampler step -> S4 log] ────────────
def main(args: Args) -> dict:
    """Train (or load --checkpoint, or continue --resume), evaluate, save; returns the summary in summary.json."""
    resumed = None  # the checkpoint.pt of the run that --resume continues
    if args.resume is not None:
        args, resumed = resume_args(args, "soft_q.py")
    check_args(args)
    make_output_folder(args.runs_dir)  # now, so that a bad path fails before training
    if args.capture_video and "DISPLAY" not in os.environ:
        # GOTCHA: MuJoCo renders through GLFW by default, which needs a screen; headless machines use EGL.
        os.environ.setdefault("MUJOCO_GL", "egl")
    seed_everything(args.seed, args.torch_deterministic)
    torch.set_num_threads(args.torch_threads)
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")

    env = make_env(args.env)
    if isinstance(env.observation_space, gym.spaces.Discrete):
        mode, mdp = "tabular", tabular_model(env, args.env)
        obs_dim, act_dim, discrete = int(env.observation_space.n), int(env.action_space.n), True
    else:
        obs_dim, act_dim, discrete = check_spaces(env, args.env)
        mode = "discrete" if discrete else "continuous"
    low, high = (None, None) if discrete else (env.action_space.low, env.action_space.high)
    if mode == "continuous" and not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        raise UserError(f"{args.env} has unbounded actions; the sampler's tanh and the uniform proposal need bounds")
    if args.alpha is None:
        args.alpha = {"tabular": args.tabular_alpha, "discrete": args.discrete_alpha, "continuous": args.continuous_alpha}[mode]
    alpha = args.alpha
    q_net = QNetwork(obs_dim, act_dim, discrete, args.hidden_sizes).to(device)
    sampler = None if discrete else Sampler(obs_dim, act_dim, args.hidden_sizes).to(device)
    obs_rms = RunningMeanStd((obs_dim,)) if args.norm_obs else None
    if args.checkpoint is not None and mode != "tabular":  # (before the run directory exists: a bad file leaves none)
        q_net, sampler, obs_rms = load_checkpoint(args.checkpoint, args, mode, obs_dim, act_dim, device)

    if resumed is None:
        run_dir = os.path.join(args.runs_dir, f"{args.env}__{args.exp_name}__{args.seed}__{int(time.time())}")
        os.makedirs(run_dir, exist_ok=True)
        atomic_write_text(os.path.join(run_dir, "args.json"), json.dumps(dataclasses.asdict(args), indent=2))
    else:
        run_dir = args.resume
    # purge_step: TensorBoard drops what an interrupted run logged after its checkpoint, so the curves join up
    writer = SummaryWriter(run_dir, purge_step=None if resumed is None else resumed["global_step"] + 1)
    if resumed is None:
        writer.add_text("hyperparameters",
                        "|param|value|\n|-|-|\n" + "\n".join(f"|{k}|{v}|" for k, v in vars(args).items()))
    start_time, global_step, train_returns, extra = time.time(), 0, [], {"mode": mode}

    if mode == "tabular":
        if args.checkpoint is not None:
            raise UserError("the tabular way plans on the model in well under a second: run it again, no --checkpoint")
        time_limit = env.spec.max_episode_steps if env.spec is not None else None
        args.horizon = args.horizon or time_limit or 100
        to64 = lambda x: torch.as_tensor(x, dtype=torch.float64, device=device)  # noqa: E731
        next_state, done = torch.as_tensor(mdp["next_state"], device=device), torch.as_tensor(mdp["done"], device=device)
        prob, reward = to64(mdp["prob"]), to64(mdp["reward"])
        start = to64(env.unwrapped.initial_state_distrib)
        # The notes' recursion with temperature α, and the same recursion with the hard max (α → 0) for comparison.
        q, v = soft_value_iteration(next_state, prob, reward, done, alpha, args.gamma, args.horizon)
        _, v_hard = soft_value_iteration(next_state, prob, reward, done, 0.0, args.gamma, args.horizon)
        log_pi = boltzmann_log_probs(q, alpha)  # (H, S, A)
        greedy = torch.nn.functional.one_hot(q.argmax(-1), q.shape[-1]).clamp_min(1e-300).log()  # argmax_a Q_t
        extra.update(
            horizon=args.horizon,
            # V_0 − V_0^hard ≥ 0: what the entropy bonus adds (→ 0 as α → 0)
            soft_minus_hard_value=float(((v[0] - v_hard[0]) * start).sum()),
            soft_policy_return=policy_return(log_pi, next_state, prob, reward, done, start),
            greedy_policy_return=policy_return(greedy, next_state, prob, reward, done, start),
            hard_policy_return=float((v_hard[0] * start).sum()) if args.gamma == 1 else None,
            mean_policy_entropy=float(-(log_pi[0].exp() * log_pi[0]).sum(-1).mean()),
        )
        print(f"{args.env}: soft value iteration, α = {alpha}, H = {args.horizon}; exact return of the Boltzmann "
              f"policy {extra['soft_policy_return']:.3f}, of its greedy policy {extra['greedy_policy_return']:.3f}; "
              f"V_soft − V_hard = {extra['soft_minus_hard_value']:.4f}", flush=True)
        writer.add_scalar("losses/soft_value", float((v[0] * start).sum()), 0)
        writer.add_scalar("losses/entropy", extra["mean_policy_entropy"], 0)
        nets = {"q_table": q[0].float().cpu()}
        train_time = time.time() - start_time
        summary = finish(args, run_dir, writer, mode, nets, None, obs_dim, act_dim, low, high, 0, train_time, [], extra)
        writer.close()
        return summary

    if args.checkpoint is not None:  # --checkpoint: evaluate the saved model; nothing to train
        env.close()
        train_time = time.time() - start_time
        nets = {"q_net": q_net.state_dict()} | ({} if sampler is None else {"sampler": sampler.state_dict()})
        summary = finish(args, run_dir, writer, mode, nets, obs_rms, obs_dim, act_dim, low, high, global_step,
                         train_time, train_returns, extra, q_net=q_net, sampler=sampler)
        writer.close()
        return summary

    target_net = copy.deepcopy(q_net)  # Q_θ̄
    q_optimizer = torch.optim.Adam(q_net.parameters(), lr=args.learning_rate)
    if sampler is not None:
        sampler_optimizer = torch.optim.Adam(sampler.parameters(), lr=args.policy_learning_rate)
    rng = np.random.default_rng(args.seed)
    env.action_space.seed(args.seed)
    centre, half_range = (None, None) if discrete else ((high + low) / 2, (high - low) / 2)
    # D: a ring buffer of (s, a, r, s', terminated), raw observations; a in (−1, 1)^D for continuous actions.
    buf_obs = np.zeros((args.buffer_size, obs_dim), np.float32)
    buf_next = np.zeros((args.buffer_size, obs_dim), np.float32)
    buf_act = np.zeros(args.buffer_size, np.int64) if discrete else np.zeros((args.buffer_size, act_dim), np.float32)
    buf_rew, buf_term = np.zeros(args.buffer_size, np.float32), np.zeros(args.buffer_size, np.float32)
    size, updates = 0, 0
    raw_obs, _ = env.reset(seed=args.seed)
    ep_return, ep_length = 0.0, 0
    start_step = 1
    if resumed is not None:  # --resume: put back everything the loop carries from one step to the next
        set_rng_states(resumed["rng"])
        q_net.load_state_dict(resumed["q_net"])
        target_net.load_state_dict(resumed["target_net"])
        q_optimizer.load_state_dict(resumed["q_optimizer"])
        if sampler is not None:
            sampler.load_state_dict(resumed["sampler"])
            sampler_optimizer.load_state_dict(resumed["sampler_optimizer"])
        if obs_rms is not None:
            vars(obs_rms).update(resumed["obs_rms"])
        env.close()
        env, rng, raw_obs = set_env_state(resumed["env"]), resumed["generator"], resumed["raw_obs"]
        ep_return, ep_length = resumed["ep_return"], resumed["ep_length"]
        train_returns = resumed["train_returns"]
        size, updates, global_step = resumed["size"], resumed["updates"], resumed["global_step"]
        for buffer, saved in zip((buf_obs, buf_act, buf_rew, buf_next, buf_term), resumed["buffer"]):
            buffer[:size] = saved
        start_step, start_time = global_step + 1, time.time() - resumed["train_time"]

    with StopSignals() as stop:  # Ctrl-C or SIGTERM: finish this step, write checkpoint.pt, stop
        for global_step in range(start_step, args.total_timesteps + 1):
            # Safe point, before step `global_step`: stop on Ctrl-C/SIGTERM, or a periodic checkpoint.
            if global_step > start_step and (stop.received or checkpoint_due(global_step - 2, global_step - 1,
                                                                              args.checkpoint_every)):
                check_finite(run_dir, global_step - 1, **{"the Q network": q_net},
                             **({} if sampler is None else {"the sampler": sampler}),
                             **({} if obs_rms is None else {"the observation statistics": obs_rms.var}))
                save_training_state(run_dir, {
                    "script": "soft_q.py", "global_step": global_step - 1, "train_time": time.time() - start_time,
                    "q_net": q_net.state_dict(), "target_net": target_net.state_dict(),
                    "q_optimizer": q_optimizer.state_dict(), "obs_rms": None if obs_rms is None else vars(obs_rms),
                    "sampler": None if sampler is None else sampler.state_dict(),
                    "sampler_optimizer": None if sampler is None else sampler_optimizer.state_dict(),
                    "generator": rng, "env": env_state(env), "raw_obs": raw_obs, "ep_return": ep_return,
                    "ep_length": ep_length, "train_returns": train_returns, "size": size, "updates": updates,
                    # the replay buffer D, up to its fill level
                    "buffer": [b[:size] for b in (buf_obs, buf_act, buf_rew, buf_next, buf_term)]})
                if stop.received:
                    writer.close()
                    raise Interrupted(stop_line("soft_q.py", stop.received, global_step - 1, run_dir))
            # [S1] act: uniformly at random before learning_starts, then from the soft policy.
            if obs_rms is not None:
                obs_rms.update(np.asarray(raw_obs, np.float64)[None])
            obs_t = torch.from_numpy(normalize_obs(np.asarray(raw_obs)[None], obs_rms, args.clip_obs)).to(device)
            if global_step <= args.learning_starts:
                action = env.action_space.sample() if discrete else rng.uniform(-1, 1, act_dim).astype(np.float32)
            elif discrete:
                with torch.no_grad():
                    logits = boltzmann_log_probs(q_net(obs_t), alpha)[0].cpu().numpy()  # log q(·|s)
                # a ∼ q(a|s) = softmax(Q(s, ·)/α), by Gumbel-max: argmax_a(log q(a|s) + g_a), g_a = −log(−log u_a)
                action = int(np.argmax(logits - np.log(-np.log(rng.random(act_dim)))))
            else:
                with torch.no_grad():
                    noise = torch.from_numpy(rng.standard_normal((1, 1, act_dim), dtype=np.float32)).to(device)
                    action = sampler(obs_t, noise)[0, 0].cpu().numpy()  # a = f_φ(ξ; s), ξ ∼ N(0, I)
            env_action = action if discrete else centre + half_range * action
            next_raw, reward, terminated, truncated, _ = env.step(env_action)
            i = (global_step - 1) % args.buffer_size
            buf_obs[i], buf_act[i], buf_rew[i], buf_next[i], buf_term[i] = raw_obs, action, reward, next_raw, terminated
            size = min(size + 1, args.buffer_size)
            ep_return, ep_length, raw_obs = ep_return + float(reward), ep_length + 1, next_raw
            if terminated or truncated:
                train_returns.append(ep_return)
                writer.add_scalar("charts/episodic_return", ep_return, global_step)
                writer.add_scalar("charts/episodic_length", ep_length, global_step)
                raw_obs, _ = env.reset()
                ep_return, ep_length = 0.0, 0
            if global_step <= args.learning_starts or global_step % args.train_frequency:
                continue
            if args.anneal_lr:
                # TRICK: linear step-size decay to 0, so that the network at the end of training is not one caught
                # mid-oscillation (off-policy Q-learning on CartPole forgets how to fail once D holds only successes).
                frac = 1.0 - (global_step - 1.0) / args.total_timesteps
                q_optimizer.param_groups[0]["lr"] = frac * args.learning_rate
                if sampler is not None:
                    sampler_optimizer.param_groups[0]["lr"] = frac * args.policy_learning_rate

            # [S2] a minibatch from D and the soft value of its next states, by the target network.
            idx = rng.integers(size, size=args.batch_size)
            b_obs = torch.from_numpy(normalize_obs(buf_obs[idx], obs_rms, args.clip_obs)).to(device)  # (B, obs_dim)
            b_next = torch.from_numpy(normalize_obs(buf_next[idx], obs_rms, args.clip_obs)).to(device)
            b_act, b_rew = torch.from_numpy(buf_act[idx]).to(device), torch.from_numpy(buf_rew[idx]).to(device)
            b_term = torch.from_numpy(buf_term[idx]).to(device)
            with torch.no_grad():
                if discrete:
                    # V(s') = α·log Σ_a' exp(Q_θ̄(s', a')/α): exact, a sum over the actions
                    next_v = soft_value(target_net(b_next), alpha)  # (B,)
                else:
                    # V(s') ≈ α·log (1/M) Σ_j exp(Q_θ̄(s', a'_j)/α)·2^D, a'_j ∼ U[−1, 1]^D   [paper eq. 10]
                    uniform = torch.rand(args.batch_size, args.value_particles, act_dim, device=device) * 2 - 1
                    q_uniform = target_net(b_next.unsqueeze(1).expand(-1, args.value_particles, -1), uniform)  # (B, M)
                    next_v = importance_sampled_soft_value(q_uniform, alpha, act_dim)
                targets = soft_q_targets(b_rew, next_v, b_term, args.gamma)  # (B,)

            # [S3a] Q_θ ← one Adam step on J_Q(θ) = ½·E[(Q_θ(s, a) − y)²]   [paper eq. 11]
            q_pred = q_net(b_obs).gather(-1, b_act[:, None]).squeeze(-1) if discrete else q_net(b_obs, b_act)  # (B,)
            q_loss = 0.5 * (q_pred - targets).pow(2).mean()
            q_optimizer.zero_grad()
            q_loss.backward()
            q_optimizer.step()
            updates += 1

            if sampler is not None:
                # [S3b] f_φ along the SVGD direction [paper eq. 13–14], through the sampler.
                noise = torch.randn(args.batch_size, args.svgd_particles, act_dim, device=device)
                particles = sampler(b_obs, noise)  # a = f_φ(ξ; s), (B, K, D)
                obs_k = b_obs.unsqueeze(1).expand(-1, args.svgd_particles // 2, -1)  # (B, K/2, obs_dim)
                # ∂J/∂φ ∝ E_ξ[Δf(ξ; s)·∂f_φ(ξ; s)/∂φ]  [paper eq. 14]: the gradient of the surrogate −Σ Δf·f_φ with Δf
                # held constant, Δf from the score of log p(a|s) = Q(s, a)/α + Σ_d log(1 − a_d²) (svgd_log_target)
                sampler_loss, direction = svgd_sampler_loss(
                    particles, lambda a: svgd_log_target(q_net(obs_k, a), a, alpha))
                sampler_optimizer.zero_grad()
                sampler_loss.backward()
                sampler_optimizer.step()

            if updates % args.target_update_interval == 0:
                with torch.no_grad():  # θ̄ ← τθ + (1 − τ)θ̄ (τ = 1: a copy)
                    for p_target, p in zip(target_net.parameters(), q_net.parameters()):
                        p_target.lerp_(p, args.tau)

            # [S4] log, every 1000 steps.
            if global_step % 1000 == 0:
                writer.add_scalar("losses/q_loss", q_loss.item(), global_step)
                # |y − Q|: grows without bound when the backup diverges (α too small for the reward scale, or lr)
                td_error = float((targets - q_pred).detach().abs().mean())
                writer.add_scalar("losses/td_error", td_error, global_step)
                check_finite(run_dir, global_step, **{"the Q loss": q_loss, "the Q network": q_net})
                writer.add_scalar("losses/soft_value", float(next_v.mean()), global_step)
                if discrete:
                    with torch.no_grad():
                        log_pi = boltzmann_log_probs(q_net(b_obs), alpha)
                    # entropy of q(·|s): log|A| is uniform; 0 is greedy (exploration has collapsed)
                    writer.add_scalar("losses/entropy", float(-(log_pi.exp() * log_pi).sum(-1).mean()), global_step)
                else:
                    writer.add_scalar("losses/svgd_direction_norm", float(direction.norm(dim=-1).mean()), global_step)
                sps = int(global_step / (time.time() - start_time))
                writer.add_scalar("charts/SPS", sps, global_step)
                recent = train_returns[-10:]
                print(f"step {global_step:>9,}  return(last {len(recent)}) "
                      f"{np.mean(recent) if recent else float('nan'):9.1f}  TD error "
                      f"{td_error:7.3f}  SPS {sps:,}", flush=True)

    env.close()
    train_time = time.time() - start_time
    nets = {"q_net": q_net.state_dict()} | ({} if sampler is None else {"sampler": sampler.state_dict()})
    summary = finish(args, run_dir, writer, mode, nets, obs_rms, obs_dim, act_dim, low, high, global_step,
                     train_time, train_returns, extra, q_net=q_net, sampler=sampler)
    writer.close()
    return summary


# ── Evaluation ─────────────────────────────────────────────────────────────────────────────────────
# >>> shared: run_episodes
def run_episodes(policy, env_id: str, episodes: int, seed: int, video_dir: Optional[str] = None) -> dict:
    """Run `policy` (obs (1, obs_dim) float32 array -> action array (1, ...)) for whole episodes.

    Episode i starts from reset(seed=seed + i), so the same deterministic policy gets the same returns.
    Returns per-step arrays (observations, actions, rewards, next_observations, terminations, truncations)
    and per-episode `episode_returns` and `episode_lengths`.
    """
    env = make_env(env_id, render_mode="rgb_array" if video_dir else None)
    if video_dir:
        env = gym.wrappers.RecordVideo(env, video_dir, episode_trigger=lambda i: True, disable_logger=True)
    steps = {k: [] for k in ("observations", "actions", "rewards", "next_observations", "terminations", "truncations")}
    returns, lengths = [], []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        done, total, length = False, 0.0, 0
        while not done:
            action = policy(np.asarray(obs, np.float32)[None])[0]
            next_obs, reward, terminated, truncated, _ = env.step(action)
            for key, value in zip(steps, (obs, action, reward, next_obs, terminated, truncated)):
                steps[key].append(value)
            obs, total, length, done = next_obs, total + float(reward), length + 1, terminated or truncated
        returns.append(total)
        lengths.append(length)
    env.close()
    out = {k: np.asarray(v) for k, v in steps.items()}
    out["observations"] = out["observations"].astype(np.float32)
    out["next_observations"] = out["next_observations"].astype(np.float32)
    out["episode_returns"], out["episode_lengths"] = np.asarray(returns), np.asarray(lengths)
    return out
# <<< shared: run_episodes


class DeterministicPolicy(nn.Module):
    """The policy a user deploys: raw observation -> action, with the observation normalisation baked in.

    Discrete: argmax_a Q(s, a) (the α → 0 limit of the Boltzmann policy). Continuous: the sampler at ξ = 0, mapped to
    the action bounds. Tabular: argmax_a Q_0(s, a) of the soft value iteration (observation: the state index).
    """

    def __init__(self, mode: str, net: nn.Module, obs_rms: Optional[RunningMeanStd], clip_obs: float, act_dim: int,
                 low, high, eps: float = 1e-8):
        super().__init__()
        self.mode, self.clip_obs, self.eps, self.act_dim = mode, clip_obs, eps, act_dim
        if mode == "tabular":
            self.register_buffer("q_table", net.clone())  # Q_0 (S, A)
        else:
            self.net = copy.deepcopy(net).cpu().eval()
        self.normalize = obs_rms is not None
        if obs_rms is not None:
            self.register_buffer("obs_mean", torch.as_tensor(obs_rms.mean, dtype=torch.float32))
            self.register_buffer("obs_var", torch.as_tensor(obs_rms.var, dtype=torch.float32))
        if mode == "continuous":
            self.register_buffer("low", torch.as_tensor(low, dtype=torch.float32))
            self.register_buffer("high", torch.as_tensor(high, dtype=torch.float32))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if self.mode == "tabular":
            return self.q_table[obs.long()].argmax(-1)
        x = obs
        if self.normalize:
            x = torch.clamp((obs - self.obs_mean) / torch.sqrt(self.obs_var + self.eps), -self.clip_obs, self.clip_obs)
        if self.mode == "discrete":
            return self.net(x).argmax(-1)
        action = self.net(x, torch.zeros(len(x), 1, self.act_dim))[:, 0]  # f_φ(0; s) in (−1, 1)
        return (self.high + self.low) / 2 + (self.high - self.low) / 2 * action


def torch_policy(module: nn.Module):
    """Wrap a torch module as the numpy callable run_episodes expects."""
    def act(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(obs)).numpy()
    return act


def finish(args: Args, run_dir: str, writer: SummaryWriter, mode: str, nets: dict, obs_rms, obs_dim: int, act_dim: int,
           low, high, global_step: int, train_time: float, train_returns: list, extra: dict,
           q_net: Optional[nn.Module] = None, sampler: Optional[nn.Module] = None) -> dict:
    """model.pt, then the final deterministic evaluation, summary.json."""
    # model.pt first: a failure in the evaluation (a missing video codec, an env error) must not lose the training
    if args.save_model and args.checkpoint is None:
        atomic_torch_save({
            "script": "soft_q.py", "env": args.env, "mode": mode, "args": dataclasses.asdict(args),
            "nets": {name: ({k: v.detach().cpu().clone() for k, v in sd.items()} if isinstance(sd, dict) else sd)
                     for name, sd in nets.items()},
            # tensors, not numpy arrays, so that torch.load(weights_only=True) can read the file without unpickling code
            "obs_rms": None if obs_rms is None else {"mean": torch.from_numpy(obs_rms.mean),
                                                     "var": torch.from_numpy(obs_rms.var),
                                                     "count": float(obs_rms.count)},
        }, os.path.join(run_dir, "model.pt"))
        remove_checkpoint(run_dir)
    net = nets["q_table"] if mode == "tabular" else (q_net if mode == "discrete" else sampler)
    policy = DeterministicPolicy(mode, net, obs_rms, args.clip_obs, act_dim, low, high)
    video_dir = os.path.join(run_dir, "videos") if args.capture_video else None
    evaluation = run_episodes(torch_policy(policy), args.env, args.eval_episodes, args.eval_seed, video_dir)
    eval_returns = evaluation["episode_returns"]
    if len(eval_returns):
        writer.add_scalar("eval/return", float(eval_returns.mean()), global_step)
    if mode == "discrete" and args.eval_episodes:
        # The policy soft Q-learning actually learns is the Boltzmann policy q(a|s) = softmax(Q(s, ·)/α), not its
        # greedy limit: evaluate it too, on the same start states. The two can differ when Q's action gaps are
        # comparable to α; in the CartPole runs measured they were close (194 greedy vs 192 sampled, 293 vs 310).
        generator = torch.Generator().manual_seed(args.eval_seed)
        boltzmann_net = copy.deepcopy(q_net).cpu().eval()

        def boltzmann(obs: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                x = torch.from_numpy(normalize_obs(obs, obs_rms, args.clip_obs))
                probs = boltzmann_log_probs(boltzmann_net(x), args.alpha).exp()  # (1, A)
                return torch.multinomial(probs, 1, generator=generator)[:, 0].numpy()
        soft_returns = run_episodes(boltzmann, args.env, args.eval_episodes, args.eval_seed)["episode_returns"]
        extra = extra | {"boltzmann_eval_return_mean": float(soft_returns.mean()),
                         "boltzmann_eval_return_std": float(soft_returns.std())}
        writer.add_scalar("eval/boltzmann_return", float(soft_returns.mean()), global_step)


    summary = {
        "script": "soft_q.py", "env": args.env, "seed": args.seed, "env_steps": global_step,
        "wall_time_s": round(train_time, 1), "sps": round(global_step / train_time) if global_step else 0,
        "eval_episodes": len(eval_returns),
        "eval_return_mean": float(eval_returns.mean()) if len(eval_returns) else None,
        "eval_return_std": float(eval_returns.std()) if len(eval_returns) else None,
        "eval_returns": [float(r) for r in eval_returns],
        "train_return_last100": float(np.mean(train_returns[-100:])) if train_returns else None,
        "checkpoint": args.checkpoint, "run_dir": run_dir,
        "alpha": args.alpha, **extra,
    }
    atomic_write_text(os.path.join(run_dir, "summary.json"), json.dumps(summary, indent=2))
    if len(eval_returns):
        if "boltzmann_eval_return_mean" in summary:
            print(f"Boltzmann policy softmax(Q/α): {summary['boltzmann_eval_return_mean']:.1f} ± "
                  f"{summary['boltzmann_eval_return_std']:.1f} (the deterministic eval below is its greedy limit, argmax Q)")
        print(f"eval: {summary['eval_return_mean']:.1f} ± {summary['eval_return_std']:.1f} over {len(eval_returns)} "
              f"episodes; run directory {run_dir}")
    return summary


# ── Plumbing (skip on a first reading): errors, argument checks, env making, normalisers, ──────────
#    seeding, atomic writes, checkpoints and resume, loading and export
class UserError(Exception):
    """A problem with the user's input: reported as one line, without a traceback."""


# >>> shared: common argument checks
def check_common_args(args) -> None:
    """The arguments every script has, checked before anything is built: each failure is one line naming the flag."""
    if not 0 <= args.seed < 2**32:
        raise UserError(f"--seed must be in [0, 2**32 - 1] (numpy and gymnasium take 32-bit seeds), not {args.seed}")
    episodes = max(getattr(args, "eval_episodes", 1), 1)
    if not 0 <= args.eval_seed <= 2**32 - episodes:
        raise UserError(f"--eval-seed must be in [0, 2**32 - eval_episodes] (episode i is reset with eval_seed + i), "
                        f"not {args.eval_seed}")
    if getattr(args, "capture_video", False) and importlib.util.find_spec("moviepy") is None:
        raise UserError("--capture-video needs moviepy to write the videos: pip install moviepy")


def make_output_folder(folder: str) -> None:
    """Create `folder` and check that a file can be written in it, now rather than after the training."""
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create folder '{folder}': {err.strerror}") from None
    try:
        handle, probe = tempfile.mkstemp(prefix=".write-test", dir=folder)
        os.close(handle)
        os.remove(probe)
    except OSError as err:
        raise UserError(f"cannot write in folder '{folder}': {err.strerror}") from None
# <<< shared: common argument checks


def check_args(args: Args) -> None:
    """Reject nonsensical arguments before anything is built."""
    check_common_args(args)
    rules = [
        (args.alpha is None or args.alpha > 0, "--alpha must be positive (take a small one, e.g. 1e-4, for a near-hard max)"),
        (min(args.tabular_alpha, args.discrete_alpha, args.continuous_alpha) > 0, "the default temperatures must be positive"),
        (0 <= args.gamma <= 1, "--gamma must be in [0, 1]"),
        (args.horizon is None or args.horizon >= 1, "--horizon must be at least 1"),
        (args.buffer_size >= args.batch_size >= 1, "--buffer-size must be at least --batch-size, which must be at least 1"),
        (args.learning_starts >= 0 and args.train_frequency >= 1, "--learning-starts >= 0 and --train-frequency >= 1"),
        (args.learning_rate > 0 and args.policy_learning_rate > 0, "--learning-rate and --policy-learning-rate must be positive"),
        (args.target_update_interval >= 1, "--target-update-interval must be at least 1"),
        (0 < args.tau <= 1, "--tau must be in (0, 1]"),
        (len(args.hidden_sizes) >= 1 and min(args.hidden_sizes) >= 1, "--hidden-sizes needs at least one positive size"),
        (args.value_particles >= 1, "--value-particles must be at least 1"),
        (args.svgd_particles >= 2 and args.svgd_particles % 2 == 0, "--svgd-particles must be even and at least 2"),
        (args.total_timesteps >= 1 and args.eval_episodes >= 0, "--total-timesteps must be >= 1 and --eval-episodes >= 0"),
        (args.checkpoint is not None or args.learning_starts < args.total_timesteps,
         f"--learning-starts ({args.learning_starts}) must be smaller than --total-timesteps ({args.total_timesteps}): "
         f"no update would run (the tabular way ignores both)"),
        (args.torch_threads >= 1, "--torch-threads must be at least 1"),
        (args.clip_obs > 0, "--clip-obs must be positive"),
        (args.checkpoint_every >= 0, "--checkpoint-every must be >= 0 (0: checkpoints only on Ctrl-C or SIGTERM)"),
    ]
    for ok, message in rules:
        if not ok:
            raise UserError(message)


# >>> shared: make_env
def make_env(env_id: str, render_mode: Optional[str] = None) -> gym.Env:
    """gym.make with a one-line error for an unknown id or a missing dependency."""
    try:
        with warnings.catch_warnings():
            # MuJoCo *-v4 ids warn at every make that v5 exists; we use v4 on purpose (comparable published results).
            warnings.filterwarnings("ignore", message=".*is out of date.*")
            return gym.make(env_id, render_mode=render_mode)
    except (gym.error.Error, ImportError) as err:  # NameNotFound, DeprecatedEnv, DependencyNotInstalled, ...
        # (ImportError: e.g. Pusher-v4 refuses mujoco >= 3)
        raise UserError(f"cannot make environment '{env_id}': {err}") from None


def check_spaces(env: gym.Env, env_id: str, discrete_ok: bool = True, continuous_ok: bool = True) -> tuple:
    """Return (obs_dim, act_dim, discrete) or raise UserError for spaces this script does not handle."""
    obs_space, act_space = env.observation_space, env.action_space
    if not (isinstance(obs_space, gym.spaces.Box) and len(obs_space.shape) == 1):
        raise UserError(f"{env_id} has observation space {obs_space}; this script needs a flat Box (vector) "
                        f"observation")
    if isinstance(act_space, gym.spaces.Discrete) and discrete_ok:
        return obs_space.shape[0], int(act_space.n), True
    if isinstance(act_space, gym.spaces.Box) and len(act_space.shape) == 1 and continuous_ok:
        return obs_space.shape[0], act_space.shape[0], False
    kinds = " or ".join(k for k, ok in (("Discrete", discrete_ok), ("1-D Box", continuous_ok)) if ok)
    raise UserError(f"{env_id} has action space {act_space}; this script needs a {kinds} action space")
# <<< shared: make_env


# >>> shared: RunningMeanStd
class RunningMeanStd:
    """Running mean and variance of a stream of arrays (Chan et al. 1979, parallel algorithm), in float64."""

    def __init__(self, shape: tuple = ()):
        self.mean = np.zeros(shape, np.float64)
        self.var = np.ones(shape, np.float64)
        self.count = 1e-4  # stabiliser: a tiny prior count so the first update is well defined

    def update(self, x: np.ndarray) -> None:
        """x: (B, *shape), a batch of new samples."""
        n = x.shape[0]
        # (by hand: np.mean/np.var carry more Python overhead, and this is called at every env step)
        batch_mean = x.sum(axis=0) / n
        batch_var = np.square(x - batch_mean).sum(axis=0) / n
        total = self.count + n
        delta = batch_mean - self.mean
        # μ ← μ + δ·n/(m+n);  M2 ← M2_a + M2_b + δ²·m·n/(m+n)   (m = old count, n = batch count)
        self.mean = self.mean + delta * n / total
        m2 = self.var * self.count + batch_var * n + np.square(delta) * self.count * n / total
        self.var = m2 / total
        self.count = total
# <<< shared: RunningMeanStd


# >>> shared: seeding
def seed_everything(seed: int, torch_deterministic: bool = True) -> None:
    """Seed python, numpy and torch (environments are seeded at reset)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = torch_deterministic
# <<< shared: seeding


# >>> shared: atomic writes
def atomic_write(path: str, write) -> None:
    """Call write(temporary path), then rename it to `path`: a crash or Ctrl-C never leaves half a file, nor the
    temporary one."""
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_text(path: str, text: str) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write(text)
    atomic_write(path, write)


def atomic_torch_save(obj, path: str) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def atomic_savez(path: str, **arrays) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object, so numpy does not append ".npz" to the temporary name
            np.savez_compressed(f, **arrays)
    atomic_write(path, write)
# <<< shared: atomic writes


# >>> shared: checkpoints and resume
class Interrupted(Exception):
    """Raised at a safe point of the training loop after SIGINT or SIGTERM, once checkpoint.pt is written."""


class StopSignals:
    """While active, the first SIGINT (Ctrl-C) or SIGTERM only sets `received`: the training loop finishes its step,
    writes checkpoint.pt and stops. A second signal interrupts at once (the last checkpoint.pt stays as it was)."""

    def __enter__(self):
        self.received, self.previous = None, {}
        try:
            for s in (signal.SIGINT, signal.SIGTERM):
                self.previous[s] = signal.signal(s, self.handle)
        except ValueError:  # not the main thread (main() called from a worker thread): no handlers, no stop
            pass
        return self

    def handle(self, signum, frame) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name

    def __exit__(self, *exc) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)


def checkpoint_due(step_before: int, step_after: int, every: int) -> bool:
    """True when the steps (step_before, step_after] cross a multiple of `every` (never when every = 0)."""
    return every > 0 and step_after // every > step_before // every


def check_finite(run_dir: str, step: int, **values) -> None:
    """Stop with one line naming the first non-finite value (a loss, a network's parameters, a statistic)."""
    for name, value in values.items():
        if isinstance(value, nn.Module):
            finite = all(bool(torch.isfinite(p).all()) for p in value.parameters())
        elif isinstance(value, torch.Tensor):
            finite = bool(torch.isfinite(value).all())
        else:
            finite = bool(np.isfinite(np.asarray(value, np.float64)).all())
        if not finite:
            path = os.path.join(run_dir, "checkpoint.pt")
            kept = (f"the last good checkpoint is {path}" if os.path.isfile(path)
                    else "no checkpoint was written before it (see --checkpoint-every)")
            raise UserError(f"{name} became non-finite (NaN or inf) at step {step:,}; stopped: {kept}. "
                            f"A smaller --learning-rate usually helps")


def rng_states() -> dict:
    """Python's, numpy's and torch's global random states."""
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_states(states: dict) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if states["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def env_state(env: gym.Env):
    """Everything of a live env that resuming needs, as bytes (None for an env that cannot be pickled).

    GOTCHA: pickling keeps a classic-control env whole, but gymnasium re-creates a MuJoCo env from its constructor
    arguments, so its random generator and its MjData (which also holds derived quantities such as body positions
    and contact forces that observations read) travel beside it and are copied back in set_env_state.
    """
    unwrapped = env.unwrapped
    data = getattr(unwrapped, "data", None)
    data = data if type(data).__name__ == "MjData" else None
    spaces = (env.action_space.np_random, env.observation_space.np_random)  # (a re-created MuJoCo env has new spaces)
    try:
        return pickle.dumps((env, unwrapped.np_random, data, *spaces))
    except Exception as err:
        print(f"note: {env.spec.id if env.spec else env} cannot be pickled ({err}), so this run's checkpoint.pt "
              f"cannot be resumed", file=sys.stderr)
        return None


def set_env_state(state: Optional[bytes]) -> gym.Env:
    if state is None:
        raise UserError("cannot resume: the checkpoint holds no environment state (the env could not be pickled)")
    env, np_random, data, action_space_random, observation_space_random = pickle.loads(state)
    env.unwrapped.np_random = np_random
    env.action_space._np_random, env.observation_space._np_random = action_space_random, observation_space_random
    if data is not None:
        import mujoco  # only MuJoCo envs get here
        mujoco.mj_copyData(env.unwrapped.data, env.unwrapped.model, data)
    return env


def save_training_state(run_dir: str, state: dict) -> None:
    """Write run_dir/checkpoint.pt atomically: the caller's state plus the global random states."""
    try:
        atomic_torch_save({**state, "rng": rng_states()}, os.path.join(run_dir, "checkpoint.pt"))
    except OSError as err:  # a full disk, a folder gone: the previous checkpoint.pt, if any, is still whole
        raise UserError(f"cannot write {os.path.join(run_dir, 'checkpoint.pt')}: {err.strerror}") from None


def resume_args(args, script: str):
    """--resume RUN_DIR: the run's own arguments (RUN_DIR/args.json) and its checkpoint.pt, or a one-line error."""
    run_dir = args.resume
    given = [f.name for f in dataclasses.fields(args) if f.name != "resume" and getattr(args, f.name) != f.default]
    if given:
        raise UserError(f"--resume continues a run with the arguments in its args.json; "
                        f"drop --{given[0].replace('_', '-')}")
    path = os.path.join(run_dir, "checkpoint.pt")
    if not os.path.isfile(path):
        done = os.path.isfile(os.path.join(run_dir, "model.pt"))
        raise UserError(f"'{run_dir}' holds a finished run (model.pt), nothing to resume" if done else
                        f"--resume: '{run_dir}' holds no checkpoint.pt "
                        f"(written on Ctrl-C and every --checkpoint-every)")
    try:
        # weights_only=False: the file holds random-generator states and pickled envs. It is this run's own file;
        # torch.load of a file from someone else can run code.
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise UserError(f"cannot resume from '{path}': {(str(err).strip() or type(err).__name__).splitlines()[0][:200]}"
                        ) from None
    if not isinstance(state, dict) or state.get("script") != script:
        raise UserError(f"cannot resume from '{path}': it is not a checkpoint written by {script}")
    try:
        with open(os.path.join(run_dir, "args.json")) as f:
            resumed = dataclasses.replace(type(args)(**json.load(f)), resume=run_dir)
    except Exception as err:
        raise UserError(f"cannot resume from '{run_dir}': its args.json does not fit {script} "
                        f"({(str(err).strip() or type(err).__name__).splitlines()[0][:200]})") from None
    return resumed, state


def remove_checkpoint(run_dir: str) -> None:
    """Once model.pt holds the trained model, the run's checkpoint.pt is stale: remove it (it can be large)."""
    path = os.path.join(run_dir, "checkpoint.pt")
    if os.path.exists(path):
        os.remove(path)


def stop_line(script: str, signal_name: str, step: int, run_dir: str) -> str:
    return f"{script}: stopped by {signal_name} at step {step:,}; resume with: python {script} --resume {run_dir}"
# <<< shared: checkpoints and resume


def load_checkpoint(path: str, args: Args, mode: str, obs_dim: int, act_dim: int, device: torch.device):
    """Rebuild the networks and observation statistics from a model.pt written by this script."""
    if not os.path.isfile(path):
        raise UserError(f"checkpoint '{path}' does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise UserError(f"cannot read checkpoint '{path}' as a model.pt written by soft_q.py: "
                        f"{str(err).strip().splitlines()[0][:200]}") from None
    if not isinstance(ckpt, dict) or ckpt.get("script") != "soft_q.py":
        raise UserError(f"'{path}' is not a model.pt written by soft_q.py")
    if ckpt["env"] != args.env:
        raise UserError(f"checkpoint '{path}' was trained on {ckpt['env']}, not {args.env} (pass --env {ckpt['env']})")
    args.hidden_sizes, args.clip_obs = tuple(ckpt["args"]["hidden_sizes"]), ckpt["args"]["clip_obs"]
    args.alpha = ckpt["args"]["alpha"]  # the Boltzmann policy softmax(Q/α) is the one trained with this α
    q_net = QNetwork(obs_dim, act_dim, mode == "discrete", args.hidden_sizes).to(device)
    q_net.load_state_dict(ckpt["nets"]["q_net"])
    sampler = None
    if mode == "continuous":
        sampler = Sampler(obs_dim, act_dim, args.hidden_sizes).to(device)
        sampler.load_state_dict(ckpt["nets"]["sampler"])
    obs_rms = None
    if ckpt["obs_rms"] is not None:
        obs_rms = RunningMeanStd((obs_dim,))
        obs_rms.mean, obs_rms.var = ckpt["obs_rms"]["mean"].numpy(), ckpt["obs_rms"]["var"].numpy()
        obs_rms.count = ckpt["obs_rms"]["count"]
    return q_net, sampler, obs_rms


if __name__ == "__main__":
    try:
        main(tyro.cli(Args))
    except UserError as err:
        sys.exit(f"soft_q.py: error: {err}")
    except Interrupted as err:
        print(err, file=sys.stderr)
        sys.exit(130)
    except KeyboardInterrupt:
        print("soft_q.py: interrupted; the run directory keeps its last checkpoint.pt, if one was written",
              file=sys.stderr)
        sys.exit(130)
