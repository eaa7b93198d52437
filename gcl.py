"""Guided cost learning (GCL): sample-based MaxEnt IRL with an importance-sampled partition function.

Paper: Finn, Levine, Abbeel, "Guided Cost Learning: Deep Inverse Optimal Control via Policy Optimization" (ICML 2016),
Algorithm 1 (the loop) and Algorithm 2 (the cost update). Lecture notes: ../shared/seeds 001 ("IRLv3/IRLv4":
non-linear MaxEnt IRL that improves the policy a little per reward update and corrects with importance weights).

The MaxEnt model of the demonstrations: a trajectory's probability grows exponentially with its learned return,
    p_θ(τ) = p(τ) exp(R_θ(τ)) / Z(θ),   R_θ(τ) = Σ_t r_θ(s_t, a_t),   Z(θ) = Σ_τ p(τ) exp(R_θ(τ)),
where p(τ) = ρ_0(s_0) Π_t P(s_{t+1} | s_t, a_t) is the dynamics alone. IRL fits θ by maximum likelihood:
    L(θ) = E_demo[R_θ(τ)] − log Z(θ),    ∇L = E_demo[∇R_θ(τ)] − E_{τ ~ p_θ}[∇R_θ(τ)]
("push up along the experts, push down along the soft-optimal policy"). Z sums over every trajectory and the
dynamics are unknown, so GCL estimates it by importance sampling from trajectories of the policy it is training,
q(τ) = p(τ) Π_t π(a_t | s_t); the dynamics cancel in the weights:
    Z = E_q[ p(τ) exp(R_θ(τ)) / q(τ) ] ≈ (1/M) Σ_j exp(R_θ(τ_j)) / Π_t π(a_t^j | s_t^j).
Autodiff of log Ẑ gives Σ_j w̃_j ∇R_θ(τ_j) with the self-normalised weights w̃ = softmax(R_θ(τ_j) − log q(τ_j)): the
importance-sampled E_{p_θ}[∇R_θ]. The closer q is to p_θ, the better the estimate, so the policy is improved against
r_θ at every iteration, a few steps only (the notes' "IRLv4": no RL to convergence inside the IRL loop). The policy that
makes the estimate exact is the MaxEnt optimum of r_θ, the soft-optimal policy: hence the entropy bonus of its updates.

Pseudocode (Finn et al., Algorithms 1 and 2; the step tags appear in the training loop below):
    for k = 1, 2, ...
        [S1] collect T steps with π_k (the environment's reward is recorded, never learned from)
        [S2] the background set: the batches of the last K policies; its density q = (1/K) Σ_κ q_κ, the mixture
             of those policies (Algorithm 2, "uniform mixture over the sampling distributions so far")
             repeat --irl-steps times: a minibatch of demo segments, all background segments,
             θ ← θ − α ∇_θ [ −(1/N) Σ_i R_θ(τ_i^demo) + log (1/M) Σ_j exp(R_θ(τ_j) − log q(τ_j)) ]
        [S3] reward r_θ(s_t, a_t) from the updated network, GAE(γ, λ), and a PPO update of π with an entropy bonus
        [S4] log: the weights' effective sample size, r_θ on the demos and on the policy's pairs, the true return

Run:
    python gcl.py --env Hopper-v4                    # from the shipped expert's 25 demonstrations
    python gcl.py --env Pendulum-v1 --total-timesteps 300000 --num-envs 4 --num-steps 512 --gamma 0.9 \
        --learning-rate 1e-3 --num-minibatches 16 --lcr-coef 1
    python gcl.py --env Pendulum-v1 ... --segment-length 10     # weights over 10-step segments (see DEVIATION)
What a working run reaches: Pendulum-v1 −138 within 300k steps (earlier expert −146, random −1,091); the Hopper-v4 table
is in docs/gcl.md, with the command behind each number.

Deviations from the paper, each measured with the Pendulum command above without --lcr-coef and with
--reward-shift none (seed 1, 300k steps: −236), as they were made in that order. (These numbers were measured
before the background set stored copies of its batches, when on a CPU every stored batch was the newest one; they
have not been re-run since: docs/gcl.md.)
  - DEVIATION (segments, not whole trajectories): the weights are over segments of --segment-length consecutive steps
    (1 by default), not whole episodes. R_θ − log q of a segment is a sum of L terms, so the spread of the log-weights
    grows with L and one segment soon carries all the weight. --segment-length 50: ESS 1.0 of 184 from 50k steps on,
    r_θ on the demos growing from 3 to 28 per step, final −666 ± 564; --segment-length 10: ESS 1.5–11 of 1,008, final
    −1,405 (the policy got worse than random); single steps: ESS 20–2,300 of 10,240, −236. With
    L = 1, log Ẑ is the contrastive estimate of the per-step partition function, the discriminator of GAN-GCL (Finn,
    Christiano et al. 2016) and of AIRL (Fu et al. 2018) written as an importance-sampling estimate.
  - DEVIATION (the demos in the background): Algorithm 2 adds the demo batch to the background set. Scored under the
    policy mixture alone, the demos are unlikely under an early policy, so their weights are huge and log Ẑ is theirs:
    the gradient then pushes up every demo and down one demo, never the policy's own samples (in a prototype the ESS
    fell to 1 and r_θ diverged). --demos-in-background adds them and weights every background segment under the pooled
    density (K·q + p̂_demo)/(K + 1) of the set actually drawn, p̂_demo a Gaussian behaviour-cloning fit to the demos
    (GAN-GCL's). Off by default: with the earlier weighting (demos under ½q + ½p̂, samples under q) it learned (−218 at
    150k–200k steps) and then degraded to −718 at 300k; the pooled weighting has not been benchmarked.
  - DEVIATION: the policy's entropy bonus --ent-coef 0.01 multiplies the entropy against rewards scaled to unit
    return std (--norm-reward), not the MaxEnt temperature 1 of r_θ's own units. Seeds 1–3: −236, −135, −123; with
    --ent-coef 0: −177, −480, −148.
  - DEVIATION: PPO (ppo.py's clipped update, commented) with an entropy bonus instead of guided policy search with
    time-varying linear-Gaussian controllers: the policy is a neural network trained from samples, as in GAN-GCL,
    AIRL and gail.py.
  - The paper's cost regularisers are "lcr" (local constancy, the squared second difference of r_θ along each
    trajectory, --lcr-coef) and "mono" (the demos' cost decreasing along each demo). lcr helps on Pendulum: with
    --reward-shift batch-min, seeds 1–3 end at −278, −444, −278 without it and −114, −124, −227 with --lcr-coef 1. It
    is 0 by default because the Hopper benchmark was run without it. SIMPLIFICATION: mono assumes the demos move
    towards a goal and end there; locomotion and Pendulum's balancing do not, so it is left out.
"""


# ── Imports ────────────────────────────────────────────────────────────────────────────────────────
from __future__ import annotations  # (a type in a signature may be defined further down)

import collections
import contextlib
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
from typing import Literal, Optional

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
    env: str = "Hopper-v4"
    """gymnasium environment id, e.g. Hopper-v4, CartPole-v1 (its expert demonstrations must exist, see --demos)"""
    exp_name: str = "gcl"
    """name of this experiment; part of the run directory name"""
    seed: int = 1
    """seed of python, numpy, torch and the environments"""
    total_timesteps: int = 1_000_000
    """environment steps to train for (all envs together)"""
    cuda: bool = True
    """train on the GPU when one is available (the rollout's actor runs in numpy on the CPU either way)"""
    torch_deterministic: bool = True
    """make cuDNN deterministic"""
    torch_threads: int = 1
    """CPU threads for torch; 1 is fastest for small MLPs (2 threads on 2 cores measured several times slower)"""
    capture_video: bool = False
    """record the final evaluation episodes to <run dir>/videos (needs moviepy)"""
    save_model: bool = True
    """write <run dir>/model.pt (policy, value and reward networks + observation-normalisation statistics)"""
    runs_dir: str = "runs"
    """parent folder of the run directories"""
    eval_episodes: int = 10
    """episodes of the final deterministic (mean-action) evaluation, on the environment's true reward"""
    eval_seed: int = 10_000
    """evaluation episode i is reset with seed eval_seed + i (the shipped demos start from 20000 + i)"""
    checkpoint: Optional[str] = None
    """skip training: load this model.pt written by gcl.py and evaluate it"""
    checkpoint_every: int = 100_000
    """write <run dir>/checkpoint.pt (all that --resume needs) every this many env steps; 0: only on Ctrl-C/SIGTERM"""
    resume: Optional[str] = None
    """continue the run in this run directory from its checkpoint.pt, with its own arguments"""
    eval_at_steps: tuple[int, ...] = ()
    """also evaluate the deterministic policy (eval_episodes episodes) when training passes each of these step counts,
    e.g. --eval-at-steps 1000000 for the benchmark's 1M column of a 2M run; recorded in summary.json as eval_history"""

    # --- the demonstrations ---
    demos: Optional[str] = None
    """expert demonstrations (a demos.npz, CONTRIBUTING.md); default experts/<env>/demos.npz beside this script"""
    num_demos: int = 25
    """use the first m episodes of the file"""

    # --- the reward network r_θ and its update (Algorithm 2) ---
    reward_hidden_size: int = 100
    """units in each of the two hidden (tanh) layers of r_θ(s, a)"""
    reward_learning_rate: float = 1e-3
    """Adam step size of r_θ"""
    irl_steps: int = 5
    """Adam steps on the IOC loss per iteration (Algorithm 2's inner loop), each on a fresh minibatch of demo segments"""
    segment_length: int = 1
    """L: the importance weights are over segments of L consecutive steps of one episode (DEVIATION in the docstring;
    the paper's whole trajectories make the weights degenerate: one segment carries them all)"""
    num_past_policies: int = 5
    """K: the background set is the batches of the last K policies, its density the mixture of those K policies"""
    demos_in_background: bool = False
    """add the demo minibatch to the background set, every background segment then scored under the pooled density
    (K·q + p̂_demo)/(K + 1) (p̂_demo a BC fit to the demos), as
    Algorithm 2 and GAN-GCL do (DEVIATION in the docstring: off by default)"""
    lcr_coef: float = 0.0
    """weight of the paper's local-constancy regulariser: the mean squared second difference of r_θ along consecutive
    steps of demos and samples (Finn et al. 2016, Sec. 4.3); 0 turns it off"""
    reward_weight_decay: float = 0.0
    """L2 weight decay of r_θ (Adam's weight_decay)"""
    reward_shift: Literal["batch-min", "none"] = "batch-min"
    """the constant the IOC loss leaves free: batch-min subtracts the batch's smallest r_θ, so every step the policy
    takes earns ≥ 0 (a survival bonus, for tasks whose expert lives to the time limit); none keeps r_θ as it is.
    See policy_reward()"""

    # --- PPO, the policy's learner (defaults: ppo.py's MuJoCo settings) ---
    num_envs: int = 1
    """N: parallel environments"""
    vector_env: Literal["sync", "async"] = "sync"
    """sync: the N envs step one after another in this process; async: each in a process of its own (gymnasium's
    AsyncVectorEnv), the same numbers, faster where an env step costs more than passing its arrays between processes"""
    num_steps: int = 2048
    """T: steps per environment per rollout; batch size = N·T"""
    learning_rate: float = 3e-4
    """Adam step size of policy and value networks (PPO paper, Table 3)"""
    anneal_lr: bool = True
    """decay the policy's learning rate linearly to 0 over training"""
    gamma: float = 0.99
    """γ: discount factor"""
    gae_lambda: float = 0.95
    """λ of GAE(γ, λ)"""
    num_minibatches: int = 32
    """minibatches per PPO epoch; minibatch size = N·T / num_minibatches"""
    update_epochs: int = 10
    """E: PPO passes over each batch"""
    norm_adv: bool = True
    """normalise Â to zero mean and unit std within each minibatch"""
    clip_coef: float = 0.2
    """ε: clipping range of the ratio ρ_t(θ) (and of the value update when clip_vloss)"""
    clip_vloss: bool = True
    """clip the value update around the old prediction, as baselines' ppo2 does"""
    ent_coef: float = 0.01
    """λ_H: weight of the policy's entropy bonus: the MaxEnt policy of r_θ is what makes the estimate of Z exact"""
    vf_coef: float = 0.5
    """weight of the value loss"""
    max_grad_norm: float = 0.5
    """clip the global gradient norm of the policy update to this"""
    norm_obs: bool = True
    """normalise observations with running mean and variance, for the policy and r_θ alike"""
    clip_obs: float = 10.0
    """clip normalised observations to ±clip_obs"""
    norm_reward: bool = True
    """divide the learned rewards by the running std of their discounted return (r_θ drifts in scale as it learns)"""
    clip_reward: float = 10.0
    """clip scaled rewards to ±clip_reward"""
    hidden_size: int = 64
    """units in each of the two hidden layers of actor and critic"""
    activation: Literal["tanh", "relu"] = "tanh"
    """the hidden layers' nonlinearity (tanh: baselines' ppo2 and CleanRL; relu: rl-baselines3-zoo's tuned MuJoCo
    runs)"""
    ortho_init: bool = True
    """orthogonal initialisation (gain √2 hidden, 0.01 policy head, 1 value head); off: PyTorch's default init"""
    init_log_std: float = 0.0
    """log σ of the Gaussian policy at the start (0: σ = 1; rl-baselines3-zoo's tuned MuJoCo runs start at −2)"""


# ── Networks ───────────────────────────────────────────────────────────────────────────────────────
# The networks of ppo.py's learner, unchanged (a shared block): skip on a first reading of gcl.py.
# >>> shared: ppo networks
def layer_init(layer: nn.Linear, std: float = np.sqrt(2), bias_const: float = 0.0) -> nn.Linear:
    # TRICK: orthogonal weights with gain √2 for tanh hidden layers, zero biases (baselines' ppo2;
    # "The 37 Implementation Details of PPO", detail 2). The policy head uses gain 0.01 so the first
    # actions are near the mean (≈ 0) for every state; the value head uses gain 1.
    torch.nn.init.orthogonal_(layer.weight, std)
    torch.nn.init.constant_(layer.bias, bias_const)
    return layer


def mlp(in_dim: int, hidden: int, out_dim: int, out_std: float, activation: str = "tanh",
        ortho_init: bool = True) -> nn.Sequential:
    """in_dim -> hidden -> hidden -> out_dim with tanh (or ReLU) activations."""
    init = layer_init if ortho_init else (lambda layer, std=None: layer)  # (PyTorch's default init otherwise)
    act = {"tanh": nn.Tanh, "relu": nn.ReLU}[activation]
    return nn.Sequential(
        init(nn.Linear(in_dim, hidden)), act(),
        init(nn.Linear(hidden, hidden)), act(),
        init(nn.Linear(hidden, out_dim), std=out_std),
    )


def numpy_weights(net: nn.Sequential) -> list:
    """[(Wᵀ, b), ...] of the Linear layers of `net`, as float32 numpy copies on the CPU."""
    return [(m.weight.detach().cpu().numpy().T.copy(), m.bias.detach().cpu().numpy().copy())
            for m in net if isinstance(m, nn.Linear)]


def numpy_mlp(layers: list, x: np.ndarray, activation: str = "tanh") -> np.ndarray:
    """The forward pass of mlp() in numpy: tanh (or ReLU) after every layer but the last. x (B, in) -> (B, out)."""
    for i, (w_t, b) in enumerate(layers):
        x = x @ w_t + b
        if i < len(layers) - 1:
            x = np.tanh(x) if activation == "tanh" else np.maximum(x, 0)
    return x


class Agent(nn.Module):
    """Separate actor and critic networks.

    Discrete actions: the actor outputs logits of a categorical π_θ(·|s).
    Continuous actions: the actor outputs the mean μ_θ(s) of a Gaussian with a state-independent,
    learned log-std (a free parameter vector, as in the PPO paper's MuJoCo experiments).
    """

    def __init__(self, obs_dim: int, act_dim: int, discrete: bool, hidden: int, activation: str = "tanh",
                 ortho_init: bool = True, init_log_std: float = 0.0):
        super().__init__()
        self.discrete = discrete
        self.critic = mlp(obs_dim, hidden, 1, out_std=1.0, activation=activation, ortho_init=ortho_init)
        self.actor = mlp(obs_dim, hidden, act_dim, out_std=0.01, activation=activation, ortho_init=ortho_init)
        # log σ, shape (act_dim,); unused (and untrained) for discrete actions, kept so that checkpoints
        # of both kinds have the same keys.
        self.log_std = nn.Parameter(torch.full((act_dim,), init_log_std), requires_grad=not discrete)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """V_φ(s): (B, obs_dim) -> (B,)"""
        return self.critic(obs).squeeze(-1)

    def log_prob(self, out: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """log π_θ(a|s) from the actor output `out` (logits or μ, (B, A)) -> (B,)"""
        if self.discrete:
            return categorical_log_prob(out, actions)
        return gaussian_log_prob(actions, out, self.log_std)

    def entropy(self, out: torch.Tensor) -> torch.Tensor:
        """H[π_θ(·|s)] -> (B,)"""
        if self.discrete:
            return categorical_entropy(out)
        return gaussian_entropy(self.log_std).expand(out.shape[0])

    def kl_from(self, out_old: torch.Tensor, log_std_old: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """KL[π_θk(·|s) ‖ π_θ(·|s)] per state -> (B,), the direction of the PPO paper's L^KLPEN."""
        if self.discrete:
            return categorical_kl(out_old, out)
        return gaussian_kl(out_old, log_std_old, out, self.log_std)


def flatten_parameters(module: nn.Module) -> nn.Parameter:
    """Move every trainable parameter (and its .grad) into one flat buffer; return that buffer.

    TRICK (speed): the networks' 13 tensors become views of one vector, so Adam and the gradient clipping run
    one fused kernel on one tensor instead of a Python loop over 13 small ones (the saving is measured in
    docs/ppo.md, "Speed"; the result is bit-for-bit the same). Autograd still writes each layer's gradient into its
    view.
    """
    params = [p for p in module.parameters() if p.requires_grad]
    flat = nn.Parameter(torch.cat([p.detach().reshape(-1) for p in params]))
    flat.grad = torch.zeros_like(flat)
    offset = 0
    for p in params:
        n = p.numel()
        p.data = flat.data[offset:offset + n].view_as(p)
        p.grad = flat.grad[offset:offset + n].view_as(p)
        offset += n
    return flat
# <<< shared: ppo networks


class RewardNet(nn.Module):
    """r_θ(s, a), the learned reward (the paper's cost is −r_θ).

    Input: the normalised observation and the action as the environment executed it, scaled to [−1, 1] (continuous)
    or one-hot (discrete): (B, obs_dim + A) -> (B,). Two tanh layers, as gail.py's discriminator.
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: int):
        super().__init__()
        self.net = mlp(obs_dim + act_dim, hidden, 1, out_std=1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


# ── Algorithm math: small pure functions, one per equation, importable by tests ────────────────────
# Notation (T steps × N envs, flattened to B = T·N for the updates; A = action dim or number of actions; L the segment
# length; K the number of past policies in the background):
#   code           symbol                                              shape
#   obs            s_t (normalised)                                     (T, N, obs_dim)
#   actions        a_t, as sampled by π_k                               (T, N, A) continuous, (T, N) discrete
#   x              (s, a) as r_θ sees them                               (M, obs_dim + A)
#   returns_demo   R_θ(τ_i) = Σ_{t in segment} r_θ(s_t, a_t), demo segments     (N_d,)
#   returns_bg     R_θ(τ_j), background segments                        (M_b,)
#   log_q          log q(τ_j) without the dynamics: log (1/K) Σ_κ Π_t π_κ(a_t|s_t)   (M_b,)
#   log_w          log w_j = R_θ(τ_j) − log q(τ_j), the importance log-weights      (M_b,)
#   rewards        r_θ(s_t, a_t), the policy's reward (learned), never the env's    (T, N)
#   advantages     Â_t = GAE(γ, λ) of the learned rewards               (T, N)
#   logp_old       log π_k(a_t|s_t)                                     (B,)
#   ratio          ρ_t(θ) = π_θ(a_t|s_t) / π_k(a_t|s_t)   (B,)  (the PPO paper's r_t(θ); r_t is the reward here)
LOG_2PI = float(np.log(2 * np.pi))


def reward_input(obs: torch.Tensor, actions: torch.Tensor, discrete: bool, act_dim: int,
                 low: Optional[torch.Tensor], high: Optional[torch.Tensor]) -> torch.Tensor:
    """x = (s, a) as r_θ sees it: obs (M, obs_dim) normalised; actions (M,) int or (M, A) -> (M, obs_dim + A).

    Continuous: clip(a, low, high) rescaled to [−1, 1], the action the environment executed: the expert's actions are
    within bounds, and an out-of-bounds value would tell demos from samples for nothing. Discrete: one-hot.
    """
    if discrete:
        a = torch.nn.functional.one_hot(actions.long(), act_dim).to(obs.dtype)
    else:
        # ã = 2·(clip(a, low, high) − low) / (high − low) − 1
        a = 2 * (torch.maximum(torch.minimum(actions, high), low) - low) / (high - low) - 1
    return torch.cat([obs, a], dim=-1)


def mixture_log_density(log_q_per_policy: torch.Tensor) -> torch.Tensor:
    """log (1/K Σ_κ q_κ(τ_j)): (K, M) -> (M,). Algorithm 2's background density is the average of the sampling
    policies whose batches are in the background set, so that a segment likely under any of them does not get a huge
    weight from one policy that makes it unlikely."""
    return torch.logsumexp(log_q_per_policy, dim=0) - math.log(log_q_per_policy.shape[0])


def background_log_density(log_q_per_policy: torch.Tensor, log_p_demo: Optional[torch.Tensor]) -> torch.Tensor:
    """log of the density the background set was drawn from, at each of its segments: (K, M), (M,) or None -> (M,).

    The batches of K policies alone: q = (1/K) Σ_κ q_κ (mixture_log_density). With --demos-in-background the set is
    K policy batches and one demo batch of the same size, a sample of the pooled mixture
        q_pool = (Σ_κ q_κ + p̂_demo) / (K + 1) = (K·q + p̂_demo) / (K + 1),
    and every background segment, a policy's or a demo, must be weighted under q_pool: Ẑ = (1/M) Σ_j exp(R_j)/q_pool(τ_j)
    is then an unbiased estimate of Z. (Weighting the policy segments by 1/q and the demos by 1/(½q + ½p̂) gives no
    density the set was drawn from: log Ẑ came out 0.04–0.09 too high on a 1-D problem with log Z = 0; test_gcl_math.)
    """
    if log_p_demo is None:
        return mixture_log_density(log_q_per_policy)
    return mixture_log_density(torch.cat([log_q_per_policy, log_p_demo[None]]))


def log_partition_estimate(returns_bg: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """log Ẑ = log (1/M) Σ_j exp(R_θ(τ_j) − log q(τ_j)): (M,), (M,) -> scalar.

    GOTCHA: R and log q are sums over segments: exp of either overflows or underflows float32 long before a
    1,000-step episode ends (Σ log π over a Hopper episode is in the thousands). log-sum-exp subtracts the largest
    log-weight first, so the biggest term is exp(0) = 1.
    """
    log_w = returns_bg - log_q
    return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])


def ioc_loss(returns_demo: torch.Tensor, returns_bg: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """−L(θ) = −(1/N Σ_demo R_θ(τ_i) − log Ẑ): minimised by the reward's optimiser.

    Its gradient, −(1/N) Σ_i ∇R_θ(τ_i) + Σ_j w̃_j ∇R_θ(τ_j) with w̃ = softmax(log w), pushes r_θ up along the demos and
    down along the background samples in proportion to their weights: the notes' "push up along the experts, push
    down along the soft-optimal policy", with the background standing in for the soft-optimal policy.
    """
    return -(returns_demo.mean() - log_partition_estimate(returns_bg, log_q))


def effective_sample_size(log_w: torch.Tensor) -> float:
    """ESS = (Σ w)² / Σ w² of the importance weights, from their logs, in [1, M]: near 1, one background segment
    carries log Ẑ and its gradient, and the estimate is noise."""
    return float(torch.exp(2 * torch.logsumexp(log_w, 0) - torch.logsumexp(2 * log_w, 0)))


def local_constancy_penalty(r: torch.Tensor) -> torch.Tensor:
    """The paper's lcr regulariser (Finn et al. 2016, Sec. 4.3): mean of ((r_{t+1} − r_t) − (r_t − r_{t−1}))² along
    runs of consecutive steps; r (W, 3) holds W windows of 3 consecutive steps -> scalar. It penalises a reward that
    jumps from step to step, which the importance weights cannot see but the policy's gradient does."""
    return (r[:, 2] - 2 * r[:, 1] + r[:, 0]).pow(2).mean()


def policy_reward(r: np.ndarray, shift: str) -> np.ndarray:
    """The policy's reward from r_θ over one batch: (T, N) -> (T, N).

    GOTCHA: the IOC loss does not change when a constant c is added to r_θ (E_demo[R + cL] − log Ẑ − cL), so IRL
    leaves c free, and it drifts; yet in an env whose episodes can end early, c decides whether living longer pays.
    Measured on Hopper-v4 with none: r_θ on the policy's pairs drifted to −11 per step within 50k steps, and the
    policy learned to fall (true return 58 and dropping). batch-min: r − min(r), so every step earns ≥ 0, a
    survival bonus as gail.py's default reward, right where the expert lives to the time limit (Hopper, Walker2d);
    Pendulum's episodes all last 200 steps and do not care. Kostrikov et al. 2019 (absorbing states) is the
    principled fix that learns the reward of ending instead.
    """
    if shift == "batch-min":
        return r - r.min()
    return r


def rollout_segments(step_in_episode: np.ndarray, length: int) -> np.ndarray:
    """Flat indices t·N + i of the segments of `length` consecutive steps of one episode in a (T, N) rollout.

    step_in_episode (T, N): the time index of each step within its episode (0 at a reset). A segment starts at an
    episode time that is a multiple of `length` (the demos are cut at the same times) and must not cross an episode's
    end or the rollout's. -> (S, length) int64.
    """
    T, N = step_in_episode.shape
    starts = [(t, i) for t in range(T - length + 1) for i in range(N)
              if step_in_episode[t, i] % length == 0 and step_in_episode[t + length - 1, i] == step_in_episode[t, i] + length - 1]
    return np.asarray([[(t + k) * N + i for k in range(length)] for t, i in starts], np.int64).reshape(-1, length)


def episode_segments(lengths: np.ndarray, length: int) -> np.ndarray:
    """Flat indices into concatenated episodes of the whole segments of `length` steps, from each episode's start;
    lengths (m,) -> (S, length) int64 (an episode's last T_i mod length steps are left out)."""
    starts = np.cumsum(lengths) - lengths
    rows = [s + k * length + np.arange(length) for s, n in zip(starts, lengths) for k in range(int(n) // length)]
    return np.asarray(rows, np.int64).reshape(-1, length)


# ppo.py's distributions, GAE and clipped losses, unchanged (a shared block): skip on a first reading of gcl.py.
# >>> shared: ppo learner math
def gaussian_log_prob(a: torch.Tensor, mu: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """Diagonal Gaussian: a, mu (B, A); log_std (A,) or (B, A) -> (B,)"""
    # log π(a|s) = Σ_i [ −½ ((a_i − μ_i)/σ_i)² − log σ_i − ½ log 2π ]
    z = (a - mu) * torch.exp(-log_std)
    return (-0.5 * z.pow(2) - log_std - 0.5 * LOG_2PI).sum(-1)


def gaussian_entropy(log_std: torch.Tensor) -> torch.Tensor:
    """(A,) -> scalar"""
    # H = Σ_i [ log σ_i + ½ log 2πe ]
    return (log_std + 0.5 * (LOG_2PI + 1)).sum(-1)


def gaussian_kl(mu0: torch.Tensor, log_std0: torch.Tensor, mu1: torch.Tensor, log_std1: torch.Tensor) -> torch.Tensor:
    """KL[N(μ0, σ0²) ‖ N(μ1, σ1²)] summed over action dims -> (B,)"""
    # KL = Σ_i [ log σ1/σ0 + (σ0² + (μ0 − μ1)²) / (2σ1²) − ½ ]
    var0, var1 = torch.exp(2 * log_std0), torch.exp(2 * log_std1)
    return (log_std1 - log_std0 + (var0 + (mu0 - mu1).pow(2)) / (2 * var1) - 0.5).sum(-1)


def categorical_log_prob(logits: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """logits (B, A), a (B,) integer -> (B,)"""
    # log π(a|s) = logits_a − log Σ_b exp(logits_b)
    return torch.log_softmax(logits, dim=-1).gather(-1, a.long().unsqueeze(-1)).squeeze(-1)


def categorical_entropy(logits: torch.Tensor) -> torch.Tensor:
    """(B, A) -> (B,)"""
    # H = −Σ_a π(a|s) log π(a|s)
    logp = torch.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(-1)


def categorical_kl(logits0: torch.Tensor, logits1: torch.Tensor) -> torch.Tensor:
    """KL[π0 ‖ π1] -> (B,)"""
    # KL = Σ_a π0(a) (log π0(a) − log π1(a))
    logp0, logp1 = torch.log_softmax(logits0, dim=-1), torch.log_softmax(logits1, dim=-1)
    return (logp0.exp() * (logp0 - logp1)).sum(-1)


def gumbel_max_sample(logits: np.ndarray, u: np.ndarray) -> np.ndarray:
    """A sample of softmax(logits) per row from uniform noise u ~ U(0,1); (N, A), (N, A) -> (N,) int64."""
    # TRICK (Gumbel-max): argmax_a(logits_a + g_a) with g_a = −log(−log u_a) is distributed as softmax(logits),
    # two numpy calls per step instead of building a torch distribution.
    return np.argmax(logits - np.log(-np.log(u)), axis=-1)


def compute_gae(rewards: np.ndarray, values: np.ndarray, next_values: np.ndarray, terminated: np.ndarray,
                dones: np.ndarray, gamma: float, lam: float) -> np.ndarray:
    """Truncated GAE(γ, λ) of one rollout; all inputs (T, N) -> advantages (T, N).

    GAE is the (1−λ)-weighted average of the k-step estimators Â_t^(k) = Σ_{l<k} γ^l r_{t+l} + γ^k V(s_{t+k}) − V(s_t),
    which telescopes (notes 000) into Â_t = Σ_l (γλ)^l δ_{t+l}. Computed backwards:
    Â_t = δ_t + γλ·(1 − done_t)·Â_{t+1}, starting from Â_T = 0 — the truncation of the notes,
    Â_t = Σ_{l=0}^{T−t−1} (γλ)^l δ_{t+l}, since the last step bootstraps from V(s_T) through δ_{T−1}.
    """
    assert rewards.shape == values.shape == next_values.shape == terminated.shape == dones.shape
    # δ_t = r_t + γ·(1 − terminated_t)·V(s_{t+1}) − V(s_t)
    # GOTCHA: a time-limit truncation is not terminal: s_{t+1} (the final obs) still has value, so only
    # `terminated` zeroes the bootstrap. Both end the sum, through `dones` below: the next row of the
    # batch belongs to a new episode.
    deltas = rewards + gamma * (1.0 - terminated) * next_values - values
    advantages = np.zeros_like(deltas)
    last = np.zeros_like(deltas[0])  # Â_{t+1}, shape (N,)
    for t in reversed(range(deltas.shape[0])):
        # Â_t = δ_t + γλ·(1 − done_t)·Â_{t+1}
        last = deltas[t] + gamma * lam * (1.0 - dones[t]) * last
        advantages[t] = last
    return advantages


def ppo_clip_loss(ratio: torch.Tensor, adv: torch.Tensor, clip_coef: float) -> torch.Tensor:
    """−L^CLIP, to minimise. ratio, adv: (B,) -> scalar."""
    assert ratio.shape == adv.shape
    # L^CLIP(θ) = E_t[ min( ρ_t(θ)·Â_t, clip(ρ_t(θ), 1−ε, 1+ε)·Â_t ) ]     (PPO paper, eq. 7, where ρ is r)
    # The min makes it a pessimistic bound: once ρ_t leaves [1−ε, 1+ε] in the direction that Â_t rewards
    # (r > 1+ε with Â > 0, r < 1−ε with Â < 0) the clipped term is the minimum, it is constant in θ, and
    # that sample's gradient is exactly zero; moves that make the objective worse are never clipped.
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1 - clip_coef, 1 + clip_coef) * adv
    return -torch.min(unclipped, clipped).mean()


def value_loss(v: torch.Tensor, v_old: torch.Tensor, returns: torch.Tensor, clip_coef: Optional[float]) -> torch.Tensor:
    """½·E[(V_φ(s_t) − R̂_t)²], optionally clipped around the old prediction. All (B,) -> scalar."""
    assert v.shape == v_old.shape == returns.shape
    if clip_coef is None:
        return 0.5 * (v - returns).pow(2).mean()
    # TRICK (baselines' ppo2; not in the paper): V_clip = V_old + clip(V − V_old, −ε, ε),
    # loss = ½·max((V − R̂)², (V_clip − R̂)²), a trust region on the critic like the actor's.
    v_clipped = v_old + torch.clamp(v - v_old, -clip_coef, clip_coef)
    return 0.5 * torch.max((v - returns).pow(2), (v_clipped - returns).pow(2)).mean()
# <<< shared: ppo learner math


def discounted_returns(rewards: np.ndarray, dones: np.ndarray, start: np.ndarray, gamma: float) -> tuple:
    """G_t = γ·G_{t−1}·(1 − done_{t−1}) + r_t along a rollout, continuing from G_{−1} = start; (T, N), (T, N), (N,)
    -> (G (T, N), the G to continue from (N,)). The running return whose std scales the rewards (norm_reward)."""
    out, g = np.zeros_like(rewards), start.copy()
    for t in range(rewards.shape[0]):
        g = gamma * g + rewards[t]
        out[t] = g
        g = g * (1.0 - dones[t])  # a new episode starts from G = 0
    return out, g


def ppo_losses(agent: Agent, obs, actions, logp_old, adv, v_old, returns, clip_coef: float, clip_vloss: bool,
               norm_adv: bool):
    """The PPO losses of one minibatch -> (policy loss, value loss, entropy, approx KL, clip fraction)."""
    out = agent.actor(obs)  # logits or μ_θ(s_t), (M, A)
    logp = agent.log_prob(out, actions)
    log_ratio = logp - logp_old
    ratio = log_ratio.exp()  # ρ_t(θ) = exp(log π_θ − log π_θk)
    with torch.no_grad():
        # Diagnostic: KL ≈ E[(r − 1) − log r] (J. Schulman, "Approximating KL divergence", 2020); > 0.05: steps too
        # large.
        approx_kl = ((ratio - 1) - log_ratio).mean()
        clipfrac = ((ratio - 1.0).abs() > clip_coef).float().mean()
    if norm_adv:
        # TRICK: per-minibatch advantage normalisation (baselines' ppo2); the 1e-8 avoids 0/0.
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    pg_loss = ppo_clip_loss(ratio, adv, clip_coef)
    v_loss = value_loss(agent.value(obs), v_old, returns, clip_coef if clip_vloss else None)
    return pg_loss, v_loss, agent.entropy(out).mean(), approx_kl, clipfrac


def normalize_obs(obs: np.ndarray, rms: Optional[RunningMeanStd], clip: float) -> np.ndarray:
    """ŝ = clip((s − μ) / √(σ² + ε), −c, c), as float32; identity without statistics."""
    if rms is None:
        return obs.astype(np.float32)
    # TRICK: observation normalisation (baselines' VecNormalize), one normaliser for π and r_θ alike.
    return np.clip((obs - rms.mean) / np.sqrt(rms.var + 1e-8), -clip, clip).astype(np.float32)


# ── Training loop [S1 collect -> S2 update r_θ on the background set -> S3 rewards, PPO update -> S4 log] ───
def fit_demo_density(demo_obs: torch.Tensor, demo_actions: torch.Tensor, discrete: bool, act_dim: int, hidden: int,
                     steps: int = 2000, seed: int = 0):
    """p̂_demo(a|s), behaviour cloning by maximum likelihood (--demos-in-background only): a Gaussian with a
    state-independent σ, or a categorical, on the demos' states standardised by their own mean and std.
    Returns log p̂_demo(a|s) as a function of (raw obs, actions) -> (M,)."""
    gen = torch.Generator(device=demo_obs.device).manual_seed(seed)
    mean, std = demo_obs.mean(0), demo_obs.std(0) + 1e-6
    net = mlp(demo_obs.shape[1], hidden, act_dim, out_std=0.01).to(demo_obs.device)
    log_std = nn.Parameter(torch.zeros(act_dim, device=demo_obs.device))
    opt = torch.optim.Adam(list(net.parameters()) + [log_std], lr=1e-3)

    def log_density(obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        out = net((obs - mean) / std)
        return categorical_log_prob(out, actions) if discrete else gaussian_log_prob(actions, out, log_std)

    for _ in range(steps):
        i = torch.randint(len(demo_obs), (256,), generator=gen, device=demo_obs.device)
        loss = -log_density(demo_obs[i], demo_actions[i]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return lambda obs, actions: log_density(obs, actions).detach()


def main(args: Args) -> dict:
    """Train (or load --checkpoint, or continue --resume), evaluate, save; returns the summary in summary.json."""
    resumed = None  # the checkpoint.pt of the run that --resume continues
    if args.resume is not None:
        args, resumed = resume_args(args, "gcl.py")
    check_args(args)
    make_output_folder(args.runs_dir)  # now, so that a bad path fails before training
    if args.capture_video and "DISPLAY" not in os.environ:
        # GOTCHA: MuJoCo renders through GLFW by default, which needs a screen; headless machines use EGL.
        os.environ.setdefault("MUJOCO_GL", "egl")
    seed_everything(args.seed, args.torch_deterministic)
    torch.set_num_threads(args.torch_threads)
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")

    probe = make_env(args.env)
    obs_dim, act_dim, discrete = check_spaces(probe, args.env)
    low, high = (None, None) if discrete else (probe.action_space.low, probe.action_space.high)
    probe.close()
    demos_path = args.demos or default_expert_path(args.env, "demos.npz")
    # (a --checkpoint run needs the demonstrations only for the expert's return, and runs without them)
    demos = None
    if args.checkpoint is None or os.path.isfile(demos_path):
        demos = load_demos(demos_path, args.env, obs_dim, act_dim, discrete)  # before any folder is made
        if args.num_demos > len(demos["episode_lengths"]):
            raise UserError(f"--num-demos {args.num_demos}: '{demos_path}' holds only "
                            f"{len(demos['episode_lengths'])} episodes")
        longest = int(demos["episode_lengths"][:args.num_demos].max())
        if args.checkpoint is None and args.segment_length > longest:
            raise UserError(f"--segment-length {args.segment_length} is longer than every one of the {args.num_demos} "
                            f"demos (the longest has {longest} steps)")
    # The expert's return, what the final evaluation is compared with: the mean over every episode of the file.
    expert_return = None if demos is None else float(demos["episode_returns"].mean())

    agent = Agent(obs_dim, act_dim, discrete, args.hidden_size, args.activation, args.ortho_init,
                  args.init_log_std).to(device)
    reward_net = RewardNet(obs_dim, act_dim, args.reward_hidden_size).to(device)
    obs_rms = RunningMeanStd((obs_dim,)) if args.norm_obs else None
    if args.checkpoint is not None:  # (before the run directory exists, so a bad file leaves no empty run behind)
        # (load_checkpoint takes the network sizes and clip_obs from the file: args.json records what this run used)
        agent, reward_net, obs_rms = load_checkpoint(args.checkpoint, args, obs_dim, act_dim, discrete, device)

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

    train_returns: list = []
    global_step, start_time, extra, eval_history = 0, time.time(), {}, []

    if args.checkpoint is not None:  # --checkpoint: evaluate the saved model; nothing to train
        train_time = time.time() - start_time
        extra = {"num_demos": args.num_demos, "segment_length": args.segment_length, "reward_shift": args.reward_shift} | extra
        summary = finish(args, run_dir, writer, agent, reward_net, obs_rms, discrete, low, high, global_step, train_time,
                         train_returns, expert_return, extra)
        writer.close()
        return summary

    L = args.segment_length
    # The expert's pairs (s, a) of the first m episodes, cut into segments of L steps from each episode's start.
    lengths = demos["episode_lengths"][:args.num_demos]  # (m,)
    n_expert = int(lengths.sum())
    demo_raw_obs = torch.from_numpy(demos["observations"][:n_expert]).to(device)  # (n_E, obs_dim), raw
    demo_actions = torch.from_numpy(demos["actions"][:n_expert]).to(device)  # (n_E,) or (n_E, A)
    demo_segments = torch.from_numpy(episode_segments(lengths, L)).to(device)  # (S_d, L)
    demo_windows = torch.from_numpy(episode_segments(lengths, 3)).to(device)  # (W_d, 3), for --lcr-coef
    print(f"{args.env}: {args.num_demos} demos, {n_expert:,} expert pairs (s, a) in {len(demo_segments):,} "
          f"segments of {L}; expert return {expert_return:.1f}", flush=True)
    low_t = None if discrete else torch.as_tensor(low, dtype=torch.float32, device=device)
    high_t = None if discrete else torch.as_tensor(high, dtype=torch.float32, device=device)
    log_demo_density = None
    if args.demos_in_background:
        log_demo_density = fit_demo_density(demo_raw_obs, demo_actions, discrete, act_dim, args.hidden_size,
                                            seed=args.seed)

    # TRICK: Adam ε = 1e-5 instead of 1e-8 for the policy (baselines' ppo2).
    flat_params = flatten_parameters(agent)
    optimizer = torch.optim.Adam([flat_params], lr=args.learning_rate, eps=1e-5, fused=True)
    reward_optimizer = torch.optim.Adam(reward_net.parameters(), lr=args.reward_learning_rate,
                                        weight_decay=args.reward_weight_decay)
    T, N = args.num_steps, args.num_envs
    batch_size = T * N
    minibatch_size = batch_size // args.num_minibatches
    num_iterations = args.total_timesteps // batch_size

    # GOTCHA: SAME_STEP autoreset (gymnasium's default NEXT_STEP would put a fake s_last -> s_0 step in the batch).
    envs = make_vector_env(args.env, N, args.vector_env)
    ret_rms, discounted_return = RunningMeanStd(()), np.zeros(N)
    noise_rng = np.random.default_rng(args.seed)
    # The background set (Algorithm 2's D_samp): the batches of the last K policies, each with the policy that
    # drew it (its weights, σ and the observation statistics it normalised with), so that every stored segment can
    # be scored under every stored policy.
    background = collections.deque(maxlen=args.num_past_policies)

    # Rollout storage, (T, N, ...): numpy on the CPU, moved to `device` once per update.
    obs_buf = np.zeros((T, N, obs_dim), np.float32)
    raw_obs_buf = np.zeros((T, N, obs_dim), np.float32)  # s_t before normalisation, for r_θ and the old policies
    next_obs_buf = np.zeros((T, N, obs_dim), np.float32)
    act_buf = np.zeros((T, N) if discrete else (T, N, act_dim), np.int64 if discrete else np.float32)
    env_rew_buf, term_buf, done_buf = (np.zeros((T, N), np.float32) for _ in range(3))
    time_buf = np.zeros((T, N), np.int64)  # t within the episode, to cut segments as the demos are cut
    ep_return, ep_length = np.zeros(N), np.zeros(N, np.int64)

    raw_obs, _ = envs.reset(seed=args.seed)
    if obs_rms is not None:
        obs_rms.update(raw_obs)
    obs = normalize_obs(raw_obs, obs_rms, args.clip_obs)

    def normalized(raw: torch.Tensor, mean: Optional[torch.Tensor], var: Optional[torch.Tensor]) -> torch.Tensor:
        """normalize_obs() on a tensor, with given statistics (an older policy's, or this rollout's)."""
        if mean is None:
            return raw
        return torch.clamp((raw - mean) / torch.sqrt(var + 1e-8), -args.clip_obs, args.clip_obs)

    start_iteration = 1
    if resumed is not None:  # --resume: put back everything the loop carries from one iteration to the next
        set_rng_states(resumed["rng"])
        agent.load_state_dict(resumed["agent"])
        reward_net.load_state_dict(resumed["reward_net"])
        optimizer.load_state_dict(resumed["optimizer"])
        reward_optimizer.load_state_dict(resumed["reward_optimizer"])
        for rms, saved in ((obs_rms, resumed["obs_rms"]), (ret_rms, resumed["ret_rms"])):
            if rms is not None:
                vars(rms).update(saved)
        noise_rng, obs, raw_obs = resumed["noise_rng"], resumed["obs"], resumed["raw_obs"]
        discounted_return = resumed["discounted_return"]
        ep_return, ep_length = resumed["ep_return"], resumed["ep_length"]
        global_step, train_returns = resumed["global_step"], resumed["train_returns"]
        extra, eval_history = resumed["extra"], resumed["extra"]["eval_history"]
        background.extend(resumed["background"])
        start_iteration, start_time = resumed["iteration"] + 1, time.time() - resumed["train_time"]
        envs.set_attr("saved_state", list(resumed["envs"]))  # (each env its own: AsyncVectorEnv's are in other
        envs.call("restore_saved_state")                      # processes, reached only through calls by name)

    # (contextlib.closing: the envs, and an async run's worker processes, close however the loop ends)
    with StopSignals() as stop, contextlib.closing(envs):  # Ctrl-C or SIGTERM: finish this iteration, checkpoint, stop
        for iteration in range(start_iteration, num_iterations + 1):
            if args.anneal_lr:
                # TRICK: linear learning-rate decay to 0 of the policy (baselines' ppo2); r_θ keeps its step size.
                optimizer.param_groups[0]["lr"] = (1.0 - (iteration - 1.0) / num_iterations) * args.learning_rate
            # TRICK (ppo.py): the actor runs in numpy on a copy of its weights during the rollout.
            actor_np = numpy_weights(agent.actor)
            std = None if discrete else torch.exp(agent.log_std).detach().cpu().numpy()  # σ, (A,)
            # the normaliser's statistics at this rollout's start: stored with π_k to score it later, and r_θ's input
            stats = (None, None) if obs_rms is None else tuple(
                torch.as_tensor(v, dtype=torch.float32, device=device) for v in (obs_rms.mean, obs_rms.var))

            # [S1] collect T steps in each of the N envs with π_k. The env's reward goes to env_rew_buf, for the logs
            # only: nothing below learns from it.
            for t in range(T):
                global_step += N
                obs_buf[t], raw_obs_buf[t], time_buf[t] = obs, raw_obs, ep_length
                # a_t ~ π_θ(·|s_t), the policy's sample: the actor's output on s_t (from its numpy copy, the same
                # numbers as the torch network), then a draw from the distribution it parametrises:
                out = numpy_mlp(actor_np, obs, args.activation)  # logits or μ(s_t), (N, A)
                if discrete:
                    action = gumbel_max_sample(out, noise_rng.random(out.shape))  # a_t ~ softmax(logits)
                    env_action = action
                else:
                    # a_t = μ(s_t) + σ ⊙ ε, ε ~ N(0, I); the env (and r_θ) get it clipped to the bounds
                    action = out + std * noise_rng.standard_normal(out.shape, dtype=np.float32)
                    env_action = np.clip(action, low, high)
                act_buf[t] = action

                raw_obs, env_reward, terminated, truncated, infos = envs.step(env_action)
                done = terminated | truncated
                ep_return += env_reward
                ep_length += 1
                env_rew_buf[t], term_buf[t], done_buf[t] = env_reward, terminated, done

                if obs_rms is not None:
                    obs_rms.update(raw_obs)
                obs = normalize_obs(raw_obs, obs_rms, args.clip_obs)
                next_obs_buf[t] = obs  # s_{t+1}, unless an episode ended:
                for i in np.flatnonzero(done):
                    # the true last observation of the episode (SAME_STEP autoreset put it in infos["final_obs"])
                    next_obs_buf[t, i] = normalize_obs(infos["final_obs"][i], obs_rms, args.clip_obs)
                    train_returns.append(float(ep_return[i]))
                    writer.add_scalar("charts/episodic_return", ep_return[i], global_step)  # the TRUE return
                    writer.add_scalar("charts/episodic_length", ep_length[i], global_step)
                    ep_return[i], ep_length[i] = 0.0, 0

            b_obs = torch.from_numpy(obs_buf.reshape(batch_size, obs_dim)).to(device)
            b_actions = torch.from_numpy(act_buf.reshape((batch_size,) if discrete else (batch_size, act_dim))).to(device)
            b_raw_obs = torch.from_numpy(raw_obs_buf.reshape(batch_size, obs_dim)).to(device)
            # GOTCHA: copies. torch.from_numpy shares memory with the rollout buffers, and .to(device) is a no-op on a
            # CPU, so without .clone() every stored batch would silently become the next rollout's states and actions.
            background.append({
                "actor": numpy_weights(agent.actor), "log_std": agent.log_std.detach().clone(), "stats": stats,
                "raw_obs": b_raw_obs.clone(), "actions": b_actions.clone(),
                "segments": torch.from_numpy(rollout_segments(time_buf, L)).to(device),  # (S_k, L)
                "windows": torch.from_numpy(rollout_segments(time_buf, 3)).to(device)})  # (W_k, 3)

            # [S2] update θ (Algorithm 2). First log q(τ_j) of every background segment under the mixture of the K
            # stored policies, log (1/K) Σ_κ Π_t π_κ(a_t|s_t), with each policy reading the states as it normalised
            # them. GOTCHA: within a rollout the statistics move a little at every step; a policy is scored with those
            # of its rollout's start, so its own log-probabilities are off by that drift early in training.
            with torch.no_grad():
                def log_q_of(raw: torch.Tensor, actions: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
                    """(M·L rows of raw obs and actions, their (S, L) segments) -> log q_κ per segment, (K, S)."""
                    per_policy = []
                    for p in background:
                        x = normalized(raw, *p["stats"]).cpu().numpy()
                        out = torch.from_numpy(numpy_mlp(p["actor"], x, args.activation)).to(device)
                        logp = categorical_log_prob(out, actions) if discrete else gaussian_log_prob(actions, out, p["log_std"])
                        per_policy.append(logp[segments].sum(-1))  # Σ_t log π_κ(a_t|s_t) over each segment, (S,)
                    return torch.stack(per_policy)  # (K, S)

                def log_p_demo_of(raw: torch.Tensor, actions: torch.Tensor, segments: torch.Tensor):
                    """log p̂_demo per segment (S,), the BC fit's; None without --demos-in-background."""
                    return None if log_demo_density is None else log_demo_density(raw, actions)[segments].sum(-1)

                # log q(τ_j) of every background segment: under the K policies' mixture, or with the demos in the
                # background under the pooled mixture (K·q + p̂)/(K + 1) (background_log_density)
                log_q_bg = torch.cat([background_log_density(log_q_of(b["raw_obs"], b["actions"], b["segments"]),
                                                             log_p_demo_of(b["raw_obs"], b["actions"], b["segments"]))
                                      for b in background])  # (M_b,)
                # x = (s, a) of every background pair and demo as r_θ reads them now: all normalised with the same
                # statistics (this rollout's), so r_θ cannot tell demos from samples by scale alone
                x_bg = torch.cat([reward_input(normalized(b["raw_obs"], *stats), b["actions"], discrete, act_dim, low_t,
                                               high_t)[b["segments"]] for b in background])  # (M_b, L, ·)
                x_demo = reward_input(normalized(demo_raw_obs, *stats), demo_actions, discrete, act_dim, low_t, high_t)
                x_policy = reward_input(normalized(b_raw_obs, *stats), b_actions, discrete, act_dim, low_t, high_t)
                if log_demo_density is not None:
                    # The demos in the background (Algorithm 2), scored under the same pooled density as the policy
                    # segments: a demo segment the policies find unlikely still has a moderate weight if the BC fit
                    # finds it likely.
                    log_q_demo = background_log_density(log_q_of(demo_raw_obs, demo_actions, demo_segments),
                                                        log_p_demo_of(demo_raw_obs, demo_actions, demo_segments))
                x_windows = torch.cat([x_demo[demo_windows], x_policy[background[-1]["windows"]]])
            n_demo_batch = len(background[-1]["segments"])  # as many demo segments as the new batch has
            for _ in range(args.irl_steps):
                pick = torch.randint(len(demo_segments), (n_demo_batch,), device=device)
                # R_θ(τ) = Σ_t r_θ(s_t, a_t) over each segment
                returns_demo = reward_net(x_demo[demo_segments[pick]]).sum(-1)  # (N_d,)
                returns_bg = reward_net(x_bg).sum(-1)  # (M_b,)
                log_q = log_q_bg
                if log_demo_density is not None:
                    returns_bg, log_q = torch.cat([returns_bg, returns_demo]), torch.cat([log_q_bg, log_q_demo[pick]])
                # −L(θ) = −(1/N) Σ_i R_θ(τ_i^demo) + log (1/M) Σ_j exp(R_θ(τ_j) − log q(τ_j))
                ioc = ioc_loss(returns_demo, returns_bg, log_q)
                loss = ioc
                if args.lcr_coef > 0:
                    # TRICK (Finn et al. 2016, Sec. 4.3, "lcr"): a reward that changes smoothly along trajectories
                    loss = loss + args.lcr_coef * local_constancy_penalty(reward_net(x_windows))
                reward_optimizer.zero_grad()
                loss.backward()
                reward_optimizer.step()

            # [S3] rewards r_θ(s_t, a_t) from the updated network, then ppo.py's update on them with an entropy bonus.
            with torch.no_grad():
                r_policy = reward_net(x_policy).cpu().numpy().reshape(T, N)  # r_θ(s_t, a_t), (T, N)
                learned = policy_reward(r_policy, args.reward_shift)  # minus the free constant (policy_reward)
                log_w = reward_net(x_bg).sum(-1) - log_q_bg  # the weights after the update, for the logs
                reward_demo = float(reward_net(x_demo).mean())
            rewards = learned
            if args.norm_reward:
                # TRICK: reward scaling (baselines' VecNormalize): r_t / std(G_t), G_t the running discounted return.
                # The scale of r_θ changes as it learns; the critic's targets stay of order 1.
                returns_g, discounted_return = discounted_returns(learned, done_buf, discounted_return, args.gamma)
                ret_rms.update(returns_g.reshape(-1))
                rewards = np.clip(learned / np.sqrt(ret_rms.var + 1e-8), -args.clip_reward, args.clip_reward)
            with torch.no_grad():
                b_values = agent.value(b_obs)  # (B,)
                next_values = agent.value(torch.from_numpy(next_obs_buf.reshape(batch_size, obs_dim)).to(device))
                b_logp_old = agent.log_prob(agent.actor(b_obs), b_actions)  # (B,)
            values_np = b_values.cpu().numpy().reshape(T, N)
            advantages = compute_gae(rewards.astype(np.float32), values_np, next_values.cpu().numpy().reshape(T, N),
                                     term_buf, done_buf, args.gamma, args.gae_lambda)
            returns = advantages + values_np  # R̂_t = Â_t + V(s_t)
            b_adv = torch.from_numpy(advantages.reshape(batch_size)).to(device)
            b_returns = torch.from_numpy(returns.reshape(batch_size)).to(device)

            clipfracs = []
            for epoch in range(args.update_epochs):
                perm = torch.randperm(batch_size, device=device)
                for start in range(0, batch_size, minibatch_size):
                    mb = perm[start:start + minibatch_size]
                    pg_loss, v_loss, entropy, approx_kl, clipfrac = ppo_losses(
                        agent, b_obs[mb], b_actions[mb], b_logp_old[mb], b_adv[mb], b_values[mb], b_returns[mb],
                        args.clip_coef, args.clip_vloss, args.norm_adv)
                    clipfracs.append(clipfrac)
                    # L = −L^CLIP + c_v·L^V − λ_H·H[π]: the entropy term makes this max-ent RL on r_θ (notes 001)
                    loss = pg_loss + args.vf_coef * v_loss - args.ent_coef * entropy
                    flat_params.grad.zero_()
                    loss.backward()
                    # TRICK: global gradient-norm clipping (baselines' ppo2).
                    nn.utils.clip_grad_norm_([flat_params], args.max_grad_norm)
                    optimizer.step()

            # [S4] log. The ESS of the weights over the M_b background segments: near 1, one segment carries log Ẑ and
            # its gradient (lower --segment-length or --reward-learning-rate); r_θ on the demos well above r_θ on the
            # policy's pairs: the reward still tells them apart, and the policy has something to learn.
            ess = effective_sample_size(log_w)
            reward_policy = float(r_policy.mean())  # before the shift: comparable with reward_demo
            sps = int(global_step / (time.time() - start_time))
            writer.add_scalar("charts/learning_rate", optimizer.param_groups[0]["lr"], global_step)
            writer.add_scalar("charts/SPS", sps, global_step)
            writer.add_scalar("losses/ioc_loss", ioc.item() if args.irl_steps else float("nan"), global_step)
            writer.add_scalar("losses/ess", ess, global_step)
            writer.add_scalar("losses/ess_fraction", ess / len(log_w), global_step)
            writer.add_scalar("losses/reward_demo", reward_demo, global_step)  # mean r_θ per step, before scaling
            writer.add_scalar("losses/reward_policy", reward_policy, global_step)
            writer.add_scalar("losses/value_loss", v_loss.item(), global_step)
            writer.add_scalar("losses/policy_loss", pg_loss.item(), global_step)
            writer.add_scalar("losses/entropy", entropy.item(), global_step)
            writer.add_scalar("losses/approx_kl", approx_kl.item(), global_step)
            writer.add_scalar("losses/clipfrac", torch.stack(clipfracs).mean().item(), global_step)
            if not discrete:
                writer.add_scalar("charts/action_std", float(np.mean(std)), global_step)
            for target in args.eval_at_steps:
                if global_step - batch_size < target <= global_step and args.eval_episodes:
                    # a mid-training evaluation, the same as the final one (deterministic policy, true reward, seeds)
                    returns_now = evaluate(agent, obs_rms, args, discrete, low, high)
                    eval_history.append({"env_steps": global_step, "eval_return_mean": float(returns_now.mean()),
                                         "eval_return_std": float(returns_now.std()),
                                         "expert_fraction": expert_fraction(returns_now, expert_return)})
                    writer.add_scalar("eval/return", float(returns_now.mean()), global_step)
                    print(f"eval at step {global_step:,}: {returns_now.mean():.1f} ± {returns_now.std():.1f}", flush=True)
            recent = train_returns[-100:]
            print(f"step {global_step:>9,}  true return(last {len(recent)}) "
                  f"{np.mean(recent) if recent else float('nan'):9.1f}  ESS {ess:7.1f} of {len(log_w):,}  r_θ demo "
                  f"{reward_demo:7.3f} policy {reward_policy:7.3f}  SPS {sps:,}", flush=True)
            extra = {"ess": ess, "background_segments": len(log_w), "reward_demo": reward_demo,
                     "reward_policy": reward_policy, "expert_pairs": n_expert, "eval_history": eval_history}

            # Safe point. A non-finite loss, parameter or statistic stops the run before it can reach a checkpoint.
            check_finite(run_dir, global_step, **{"the policy loss": pg_loss, "the value loss": v_loss,
                                                  "the policy parameters": flat_params,
                                                  "the reward network": reward_net,
                                                  "the learned rewards": learned},
                         **({} if obs_rms is None else {"the observation statistics": obs_rms.var}))
            if stop.received or checkpoint_due(global_step - batch_size, global_step, args.checkpoint_every):
                save_training_state(run_dir, {
                    "script": "gcl.py", "iteration": iteration, "global_step": global_step,
                    "train_time": time.time() - start_time, "agent": agent.state_dict(),
                    "reward_net": reward_net.state_dict(), "optimizer": optimizer.state_dict(),
                    "reward_optimizer": reward_optimizer.state_dict(),
                    "obs_rms": None if obs_rms is None else vars(obs_rms),
                    "ret_rms": vars(ret_rms), "discounted_return": discounted_return, "noise_rng": noise_rng,
                    "obs": obs, "raw_obs": raw_obs, "ep_return": ep_return, "ep_length": ep_length,
                    "train_returns": train_returns, "extra": extra, "background": list(background),
                    "envs": list(envs.call("saved_state_now"))})
            if stop.received:
                writer.close()
                raise Interrupted(stop_line("gcl.py", stop.received, global_step, run_dir))

    train_time = time.time() - start_time
    extra = {"num_demos": args.num_demos, "segment_length": args.segment_length, "reward_shift": args.reward_shift} | extra
    summary = finish(args, run_dir, writer, agent, reward_net, obs_rms, discrete, low, high, global_step, train_time,
                     train_returns, expert_return, extra)
    writer.close()
    return summary


# ── Evaluation ─────────────────────────────────────────────────────────────────────────────────────
# >>> shared: deterministic policy
class DeterministicPolicy(nn.Module):
    """The policy a user deploys: raw observation -> action, with the observation normalisation baked in.

    Continuous: the actor's output (a Gaussian's mean, or a deterministic policy's action), clipped to the action
    bounds (what the env executes). Discrete: the most likely action. torch.export-able, so that any script can load
    it without our classes: torch.export.load(path).module()(obs) (the experts' policy.pt2 are this module).
    """

    def __init__(self, actor: nn.Module, obs_rms: Optional[RunningMeanStd], clip_obs: float, discrete: bool,
                 low: Optional[np.ndarray], high: Optional[np.ndarray], eps: float = 1e-8):
        super().__init__()
        self.actor = copy.deepcopy(actor).cpu().eval()
        for p in self.actor.parameters():  # own storage: in training, parameters may be views of one flat buffer
            p.data = p.data.clone()
            p.requires_grad_(False)
        self.discrete, self.normalize, self.clip_obs, self.eps = discrete, obs_rms is not None, clip_obs, eps
        if obs_rms is not None:
            self.register_buffer("obs_mean", torch.as_tensor(obs_rms.mean, dtype=torch.float32))
            self.register_buffer("obs_var", torch.as_tensor(obs_rms.var, dtype=torch.float32))
        if not discrete:
            self.register_buffer("low", torch.as_tensor(low, dtype=torch.float32))
            self.register_buffer("high", torch.as_tensor(high, dtype=torch.float32))

    def actor_output(self, obs: torch.Tensor) -> torch.Tensor:
        """The actor on the normalised observation: obs (B, obs_dim) -> logits or the Gaussian's mean μ, (B, A)."""
        x = obs
        if self.normalize:
            x = torch.clamp((obs - self.obs_mean) / torch.sqrt(self.obs_var + self.eps), -self.clip_obs, self.clip_obs)
        return self.actor(x)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """obs (B, obs_dim) float32 -> actions (B, act_dim) float32, or (B,) int64 for discrete."""
        out = self.actor_output(obs)
        if self.discrete:
            return out.argmax(dim=-1)
        return torch.maximum(torch.minimum(out, self.high), self.low)
# <<< shared: deterministic policy


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


def torch_policy(module: nn.Module):
    """Wrap a torch module as the numpy callable run_episodes expects."""
    def act(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(obs)).numpy()
    return act


def evaluate(agent: Agent, obs_rms: Optional[RunningMeanStd], args: Args, discrete: bool, low, high,
             video_dir: Optional[str] = None) -> np.ndarray:
    """The deterministic policy's true returns on eval_episodes episodes from reset(seed=eval_seed + i): (episodes,)."""
    policy = DeterministicPolicy(agent.actor, obs_rms, args.clip_obs, discrete, low, high)
    return run_episodes(torch_policy(policy), args.env, args.eval_episodes, args.eval_seed, video_dir)["episode_returns"]


def expert_fraction(returns: np.ndarray, expert_return: Optional[float]) -> Optional[float]:
    """mean return / the expert's, as gail.py and the `imitation` library report it; None without episodes or
    for an expert whose return is not positive (Pendulum's are negative: compare the returns themselves)."""
    if not len(returns) or expert_return is None or expert_return <= 0:
        return None
    return float(returns.mean()) / expert_return


def finish(args: Args, run_dir: str, writer: SummaryWriter, agent: Agent, reward_net: RewardNet,
           obs_rms: Optional[RunningMeanStd], discrete: bool, low, high, global_step: int, train_time: float,
           train_returns: list, expert_return: Optional[float], extra: dict) -> dict:
    """model.pt, then the final deterministic evaluation on the true reward, summary.json."""
    # model.pt first: a failure in the evaluation (a missing video codec, an env error) must not lose the training
    if args.save_model and args.checkpoint is None:
        atomic_torch_save({
            "script": "gcl.py", "env": args.env, "args": dataclasses.asdict(args),
            "agent": {k: v.detach().cpu().clone() for k, v in agent.state_dict().items()},
            "reward_net": {k: v.detach().cpu().clone() for k, v in reward_net.state_dict().items()},
            # tensors, not numpy arrays, so that torch.load(weights_only=True) can read the file without unpickling code
            "obs_rms": None if obs_rms is None else {"mean": torch.from_numpy(obs_rms.mean),
                                                     "var": torch.from_numpy(obs_rms.var),
                                                     "count": float(obs_rms.count)},
        }, os.path.join(run_dir, "model.pt"))
        remove_checkpoint(run_dir)
    video_dir = os.path.join(run_dir, "videos") if args.capture_video else None
    eval_returns = evaluate(agent, obs_rms, args, discrete, low, high, video_dir)
    if len(eval_returns):
        writer.add_scalar("eval/return", float(eval_returns.mean()), global_step)


    summary = {
        "script": "gcl.py", "env": args.env, "seed": args.seed, "env_steps": global_step,
        "wall_time_s": round(train_time, 1), "sps": round(global_step / train_time) if global_step else 0,
        "eval_episodes": len(eval_returns),
        "eval_return_mean": float(eval_returns.mean()) if len(eval_returns) else None,
        "eval_return_std": float(eval_returns.std()) if len(eval_returns) else None,
        "eval_returns": [float(r) for r in eval_returns],
        "train_return_last100": float(np.mean(train_returns[-100:])) if train_returns else None,
        "checkpoint": args.checkpoint, "run_dir": run_dir,
        "expert_return": expert_return, "expert_fraction": expert_fraction(eval_returns, expert_return),
        # 0 = a uniform random policy, 1 = the demonstrator, on the same evaluation seeds
        "normalized_score": normalized_score(eval_returns, args.demos or default_expert_path(args.env, "demos.npz"),
                                             args.eval_seed),
    } | extra
    atomic_write_text(os.path.join(run_dir, "summary.json"), json.dumps(summary, indent=2))
    if summary["expert_fraction"] is not None:
        print(f"fraction of the expert's return ({expert_return:.1f}): {summary['expert_fraction']:.3f}")
    if summary["normalized_score"] is not None:
        print(f"normalised score (random policy 0, demonstrator 1): {summary['normalized_score']:.3f}")
    if len(eval_returns):
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
    batch_size = args.num_envs * args.num_steps
    rules = [
        (args.num_demos >= 1, "--num-demos must be at least 1"),
        (args.num_envs >= 1, "--num-envs must be at least 1"),
        (args.num_steps >= 1, "--num-steps must be at least 1"),
        (args.num_minibatches >= 1 and batch_size % args.num_minibatches == 0,
         f"--num-minibatches ({args.num_minibatches}) must divide the batch size num_envs × num_steps = {batch_size}"),
        (args.checkpoint_every >= 0, "--checkpoint-every must be >= 0 (0: checkpoints only on Ctrl-C or SIGTERM)"),
        (not args.norm_adv or batch_size // max(args.num_minibatches, 1) >= 2,
         "--norm-adv needs minibatches of at least 2 samples (num_envs × num_steps / num_minibatches); "
         "use fewer --num-minibatches or --no-norm-adv"),
        (args.checkpoint is not None or args.total_timesteps >= batch_size,
         f"--total-timesteps ({args.total_timesteps}) is smaller than one batch (num_envs × num_steps = {batch_size})"),
        (1 <= args.segment_length <= args.num_steps,
         f"--segment-length must be between 1 and --num-steps ({args.num_steps}): a segment lies within one rollout"),
        (args.num_past_policies >= 1, "--num-past-policies must be at least 1 (1: the current policy's batch only)"),
        (args.update_epochs >= 1 and args.irl_steps >= 0, "--update-epochs must be at least 1, --irl-steps >= 0"),
        (args.learning_rate > 0 and args.reward_learning_rate > 0,
         "--learning-rate and --reward-learning-rate must be positive"),
        (min(args.lcr_coef, args.reward_weight_decay, args.ent_coef) >= 0,
         "--lcr-coef, --reward-weight-decay and --ent-coef must be >= 0"),
        (0 <= args.gamma <= 1, "--gamma must be in [0, 1]"),
        (0 <= args.gae_lambda <= 1, "--gae-lambda must be in [0, 1]"),
        (args.clip_coef > 0, "--clip-coef must be positive"),
        (args.max_grad_norm > 0, "--max-grad-norm must be positive"),
        (args.ent_coef >= 0 and args.vf_coef > 0, "--ent-coef must be >= 0 and --vf-coef positive"),
        (args.eval_episodes >= 0, "--eval-episodes must be >= 0"),
        (all(0 < n < args.total_timesteps for n in args.eval_at_steps),
         "--eval-at-steps takes step counts between 0 and --total-timesteps (the final evaluation always runs)"),
        (min(args.hidden_size, args.reward_hidden_size, args.torch_threads) >= 1,
         "--hidden-size, --reward-hidden-size and --torch-threads must be at least 1"),
        (args.clip_obs > 0 and args.clip_reward > 0, "--clip-obs and --clip-reward must be positive"),
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


# >>> shared: experts
DEMO_KEYS = ("observations", "actions", "rewards", "next_observations", "terminations", "truncations",
             "episode_returns", "episode_lengths", "metadata")


def default_expert_path(env_id: str, filename: str) -> str:
    """experts/<env_id>/<filename> beside this script, where the shipped experts live (CONTRIBUTING.md)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "experts", env_id, filename)


def expert_hint(env_id: str) -> str:
    return f"make one with: python ppo.py --env {env_id} --save-expert experts/{env_id}"


def demos_metadata(path: str) -> dict:
    """The metadata dict of a demos.npz (its env id, return, command); {} if it has none."""
    try:
        with np.load(path) as data:
            return json.loads(str(data["metadata"])) if "metadata" in data.files else {}
    except Exception as err:  # empty, truncated, not a zip, bad JSON
        reason = str(err).strip().splitlines()[0][:120] if str(err).strip() else type(err).__name__
        raise UserError(f"'{path}' is not a demos.npz written by ppo.py --save-expert ({reason})") from None


def normalized_score(returns: np.ndarray, demos_path: str, eval_seed: int) -> Optional[float]:
    """(R − R_random) / (R_expert − R_random): 0 for a uniform random policy, 1 for the demonstrator (D4RL's and
    imitation's score). Both references come from the expert's metadata, measured by ppo.py --save-expert on the
    evaluation seeds: over these very episodes when this evaluation's seeds are among them (the defaults), else over
    all of them. None without episodes or reference returns (an expert from before they were recorded)."""
    reference = demos_metadata(demos_path).get("reference") if os.path.isfile(demos_path) else None
    if not len(returns) or not reference:
        return None
    try:
        same = reference["eval_seed"] == eval_seed and len(returns) <= reference["episodes"]
        n = len(returns) if same else int(reference["episodes"])
        random_return = float(np.mean(np.asarray(reference["random_returns"][:n], dtype=float)))
        expert_return = float(np.mean(np.asarray(reference["expert_returns"][:n], dtype=float)))
    except (KeyError, TypeError, ValueError) as err:  # (a hand-edited file: the run's results stand without it)
        print(f"note: the references in '{demos_path}' are unreadable ({type(err).__name__}: {err}): no normalised "
              f"score", flush=True)
        return None
    if not expert_return > random_return:
        return None
    return (float(np.mean(returns)) - random_return) / (expert_return - random_return)


def load_demos(path: str, env_id: str, obs_dim: int, act_dim: int, discrete: bool) -> dict:
    """Read a demos.npz and check it belongs to env_id and fits its spaces; {key: array} plus "metadata" (dict)."""
    if not os.path.isfile(path):
        raise UserError(f"no expert demonstrations at '{path}'; {expert_hint(env_id)}")
    try:
        with np.load(path) as data:
            demos = {key: data[key] for key in DEMO_KEYS}
        demos["metadata"] = json.loads(str(demos["metadata"]))
    except Exception as err:  # not a zip, a missing key, bad JSON: all mean "not a demos.npz"
        raise UserError(f"'{path}' is not a demos.npz written by ppo.py --save-expert "
                        f"({str(err).strip().splitlines()[0][:120] if str(err).strip() else type(err).__name__}); "
                        f"{expert_hint(env_id)}") from None
    meta, obs, actions = demos["metadata"], demos["observations"], demos["actions"]
    if meta.get("env_id") != env_id:
        raise UserError(f"'{path}' holds demonstrations of {meta.get('env_id')}, not {env_id}; {expert_hint(env_id)}")
    want_actions = (len(obs),) if discrete else (len(obs), act_dim)
    if obs.ndim != 2 or obs.shape[1] != obs_dim or actions.shape != want_actions:
        raise UserError(f"'{path}' has observations {obs.shape[1:]} and actions {actions.shape[1:]}, but {env_id} has "
                        f"({obs_dim},) and {want_actions[1:]}; {expert_hint(env_id)}")
    if int(demos["episode_lengths"].sum()) != len(obs):
        raise UserError(f"'{path}': the episode lengths add up to {int(demos['episode_lengths'].sum())} steps, "
                        f"but it holds {len(obs)}; {expert_hint(env_id)}")
    for key in ("observations", "actions", "rewards", "next_observations"):
        if demos[key].dtype.kind == "f" and not np.isfinite(demos[key]).all():
            raise UserError(f"'{path}' has non-finite values (NaN or inf) in its {key}; {expert_hint(env_id)}")
    return demos


def load_expert_policy(path: str, env_id: str, obs_dim: int, act_dim: int, discrete: bool) -> nn.Module:
    """Load a policy.pt2 (torch.export) and check it on a batch of zero observations; returns the callable module.

    The program does not record its env, so the demos.npz beside it (when there is one) vouches for it, and the
    shapes of what it returns must fit env_id's action space.
    """
    if not os.path.isfile(path):
        raise UserError(f"no expert policy at '{path}'; {expert_hint(env_id)}")
    beside = os.path.join(os.path.dirname(path), "demos.npz")
    if os.path.isfile(beside):
        other = demos_metadata(beside).get("env_id")
        if other is not None and other != env_id:
            raise UserError(f"'{path}' is the expert of {other} (says {beside}), not of {env_id}; "
                            f"{expert_hint(env_id)}")
    try:
        policy = torch.export.load(path).module()
        with torch.no_grad():
            out = policy(torch.zeros(2, obs_dim))  # (2, A) or (2,)
    except Exception as err:
        raise UserError(f"cannot use '{path}' as the expert of {env_id} (observations ({obs_dim},)): "
                        f"{str(err).strip().splitlines()[0][:160]}; {expert_hint(env_id)}") from None
    fits = (out.shape == (2,) and not out.is_floating_point()) if discrete else out.shape == (2, act_dim)
    if not fits:
        raise UserError(f"'{path}' returns actions of shape {tuple(out.shape[1:])} {out.dtype}, which do not fit "
                        f"{env_id}'s action space; {expert_hint(env_id)}")
    return policy
# <<< shared: experts


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


# >>> shared: vector envs
def make_vector_env(env_id: str, n: int, kind: str) -> gym.vector.VectorEnv:
    """N copies of make_env(env_id), each a ResumableEnv, stepped in this process (sync) or each in its own (async),
    with SAME_STEP autoreset (the GOTCHA where main() makes them)."""
    if kind == "sync":
        return gym.vector.SyncVectorEnv([lambda: ResumableEnv(make_env(env_id)) for _ in range(n)],
                                        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)

    def in_worker() -> gym.Env:
        # GOTCHA: Ctrl-C reaches the whole process group; a worker that died of it would leave the main process,
        # which stops at a safe point and writes its checkpoint, with no envs to save.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        return ResumableEnv(make_env(env_id))
    return gym.vector.AsyncVectorEnv([in_worker] * n, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)


class ResumableEnv(gym.Wrapper):
    """An env whose state can be saved and put back by name, as AsyncVectorEnv reaches an env in its worker process:
    envs.call("saved_state_now") gives each env's env_state; envs.set_attr("saved_state", states), then
    envs.call("restore_saved_state"), puts them back (the wrapped env replaced by the unpickled one)."""

    def saved_state_now(self) -> Optional[bytes]:
        return env_state(self.env)

    def restore_saved_state(self) -> None:
        self.env = set_env_state(self.saved_state)
        del self.saved_state
# <<< shared: vector envs


def load_checkpoint(path: str, args: Args, obs_dim: int, act_dim: int, discrete: bool, device: torch.device):
    """Rebuild the agent, the reward network and the observation statistics from a model.pt written by this script."""
    if not os.path.isfile(path):
        raise UserError(f"checkpoint '{path}' does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        # (torch's message runs to several lines; its first says what failed)
        raise UserError(f"cannot read checkpoint '{path}' as a model.pt written by gcl.py: "
                        f"{str(err).strip().splitlines()[0][:200]}") from None
    if not isinstance(ckpt, dict) or ckpt.get("script") != "gcl.py":
        raise UserError(f"'{path}' is not a model.pt written by gcl.py")
    if ckpt["env"] != args.env:
        raise UserError(f"checkpoint '{path}' was trained on {ckpt['env']}, not {args.env} (pass --env {ckpt['env']})")
    for key in ("hidden_size", "reward_hidden_size", "clip_obs"):
        setattr(args, key, ckpt["args"][key])
    args.activation = ckpt["args"].get("activation", "tanh")  # (older model.pt files predate the field: tanh)
    agent = Agent(obs_dim, act_dim, discrete, args.hidden_size, args.activation).to(device)
    agent.load_state_dict(ckpt["agent"])
    reward_net = RewardNet(obs_dim, act_dim, args.reward_hidden_size).to(device)
    reward_net.load_state_dict(ckpt["reward_net"])
    obs_rms = None
    if ckpt["obs_rms"] is not None:
        obs_rms = RunningMeanStd((obs_dim,))
        obs_rms.mean, obs_rms.var = ckpt["obs_rms"]["mean"].numpy(), ckpt["obs_rms"]["var"].numpy()
        obs_rms.count = ckpt["obs_rms"]["count"]
    return agent, reward_net, obs_rms


if __name__ == "__main__":
    try:
        main(tyro.cli(Args))
    except UserError as err:
        sys.exit(f"gcl.py: error: {err}")
    except Interrupted as err:
        print(err, file=sys.stderr)
        sys.exit(130)
    except KeyboardInterrupt:
        print("gcl.py: interrupted; the run directory keeps its last checkpoint.pt, if one was written",
              file=sys.stderr)
        sys.exit(130)
