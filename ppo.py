"""Proximal Policy Optimization (PPO) with GAE(γ, λ), for discrete and continuous actions.

Papers: Schulman, Wolski, Dhariwal, Radford, Klimov, "Proximal Policy Optimization Algorithms" (2017);
Schulman, Moritz, Levine, Jordan, Abbeel, "High-Dimensional Continuous Control Using Generalized
Advantage Estimation" (ICLR 2016). Lecture notes: ../shared/seeds 000 (PPO, GAE) and 002 (policy
gradient, importance weights, clipping).

PPO improves π_θ a little on each batch of its own data, keeping the new policy close to the old one
either by clipping the probability ratio ρ_t(θ) = π_θ(a_t|s_t) / π_θk(a_t|s_t) or by an adaptive
KL penalty β_k·KL[π_θk, π_θ]; both objectives are here (`--objective clip|kl`).

Pseudocode (the step tags appear in the training loop below):
    for k = 0, 1, 2, ...
        [S1] collect T steps in each of N envs with π_θk (an episode may end mid-batch)
        [S2] V(s_t) for every visited state; δ_t = r_t + γ V(s_{t+1}) − V(s_t);
             Â_t = Σ_{l=0}^{T−t−1} (γλ)^l δ_{t+l} (truncated GAE), returns R̂_t = Â_t + V(s_t)
        [S3] for E epochs over shuffled minibatches: maximise L^CLIP (or L^KLPEN), fit V to R̂_t
        [S4] log; with the KL objective, double or halve β against the KL target

Run:
    python ppo.py --env Hopper-v4          # the env's preset (PRESETS, beside Args): here 1M steps, CleanRL's settings
    python ppo.py --env CartPole-v1        # 100k steps; any flag given by hand overrides the preset
    python ppo.py --env Pendulum-v1 --preset none    # the plain Args defaults
What a working run reaches: Hopper-v4 ≈ 3,200 at 1M steps, CartPole-v1 500 within 100k, Pendulum-v1 ≈ −145
within 100k (docs/ppo.md, with the command behind each number).

Gymnasium 1.x, done right:
  - vector envs autoreset in SAME_STEP mode: the step that ends an episode returns the first observation
    of the next one and puts the true last observation in infos["final_obs"]; we keep both, so no fake
    transition s_last -> s_0 ever enters the batch;
  - a time limit (`truncated`) bootstraps from V(final observation); a true end (`terminated`) does not
    (CleanRL's ppo_continuous_action.py ends the advantage at a time limit as if the task had ended);
  - every finished episode's return and length are logged (counted by hand, not via wrappers);
  - the observation-normalisation statistics are saved with the model and baked into exported experts
    (CleanRL saves the networks alone, so its reloaded Hopper policies score ~4: its issues #425, #532).

Deviations from the paper: none in the objectives. The "implementation details" of the MuJoCo setup
(observation and reward normalisation, value clipping, gradient clipping, LR annealing, orthogonal
init, Adam ε) come from OpenAI baselines' ppo2, not from the paper; each is marked TRICK: below.
"""


# ── Imports ────────────────────────────────────────────────────────────────────────────────────────
from __future__ import annotations  # (a type in a signature may be defined further down)

import contextlib
import copy
import dataclasses
import hashlib
import importlib.util
import json
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
import torch.distributed as dist
import torch.nn as nn
import tyro
from torch.utils.tensorboard import SummaryWriter


# ── Hyperparameters (Args) ─────────────────────────────────────────────────────────────────────────
@dataclass


class Args:
    # --- common to every script (CONTRIBUTING.md) ---
    env: str = "Hopper-v4"
    """gymnasium environment id, e.g. Hopper-v4, CartPole-v1, Pendulum-v1"""
    exp_name: str = "ppo"
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
    """write <run dir>/model.pt (networks + observation-normalisation statistics)"""
    runs_dir: str = "runs"
    """parent folder of the run directories"""
    eval_episodes: int = 10
    """episodes of the final deterministic (mean-action) evaluation"""
    eval_seed: int = 10_000
    """evaluation episode i is reset with seed eval_seed + i (away from the training seeds)"""

    # --- saving and reusing ---
    checkpoint: Optional[str] = None
    """skip training: load this model.pt, evaluate it (and export it with --save-expert)"""
    save_expert: Optional[str] = None
    """write an expert to this folder: policy.pt2 (torch.export) and demos.npz"""
    expert_episodes: int = 25
    """episodes of demonstrations written to demos.npz"""
    expert_seed: int = 20_000
    """demonstration episode i is reset with seed expert_seed + i"""
    expert_demos: Literal["stochastic", "deterministic"] = "stochastic"
    """demos.npz from the policy as trained (actions sampled from π_θ, a demonstrator with noise, as D4RL's and
    imitation's datasets are) or from policy.pt2 (the mean action: the states repeat from episode to episode)"""
    checkpoint_every: int = 100_000
    """write <run dir>/checkpoint.pt (all that --resume needs) every this many env steps; 0: only on Ctrl-C/SIGTERM"""
    resume: Optional[str] = None
    """continue the run in this run directory from its checkpoint.pt, with its own arguments"""

    # --- PPO (defaults: CleanRL ppo_continuous_action.py = OpenAI baselines' MuJoCo settings) ---
    objective: Literal["clip", "kl"] = "clip"
    """clip: L^CLIP with ε = clip_coef; kl: L^KLPEN with adaptive β (PPO paper, Sec. 3 and 4)"""
    num_envs: int = 1
    """N: parallel environments"""
    vector_env: Literal["sync", "async"] = "sync"
    """sync: the N envs step one after another in this process; async: each in a process of its own (gymnasium's
    AsyncVectorEnv), the same numbers, faster where an env step costs more than passing its arrays between processes"""
    num_steps: int = 2048
    """T: steps per environment per rollout; batch size = N·T"""
    learning_rate: float = 3e-4
    """Adam step size (PPO paper, Table 3)"""
    anneal_lr: bool = True
    """decay the learning rate linearly to 0 over training"""
    gamma: float = 0.99
    """γ: discount factor"""
    gae_lambda: float = 0.95
    """λ of GAE(γ, λ): 0 gives the one-step TD advantage, 1 the Monte-Carlo one"""
    num_minibatches: int = 32
    """minibatches per epoch; minibatch size = N·T / num_minibatches"""
    update_epochs: int = 10
    """E: passes over each batch"""
    norm_adv: bool = True
    """normalise Â to zero mean and unit std within each minibatch"""
    clip_coef: float = 0.2
    """ε: clipping range of the ratio ρ_t(θ) (and of the value update when clip_vloss)"""
    clip_vloss: bool = True
    """clip the value update around the old prediction, as baselines' ppo2 does"""
    ent_coef: float = 0.0
    """weight of the entropy bonus"""
    vf_coef: float = 0.5
    """c_v: weight of the value loss ½·E[(V − R̂)²], so the squared error itself weighs c_v/2"""
    max_grad_norm: float = 0.5
    """clip the global gradient norm to this"""
    target_kl: Optional[float] = None
    """stop the epochs of an update early when the approximate KL exceeds this (off by default)"""
    kl_target: float = 0.01
    """d_targ: KL the adaptive penalty aims for (PPO paper, Sec. 4; 0.01 is in its sweep)"""
    kl_beta: float = 1.0
    """β_0: initial KL penalty coefficient (PPO paper: "the initial value is not important")"""
    kl_tolerance: float = 1.5
    """β changes only when the KL is outside [d_targ / tol, d_targ · tol] (PPO paper: 1.5)"""
    kl_factor: float = 2.0
    """β is multiplied or divided by this (PPO paper: 2)"""
    norm_obs: bool = True
    """normalise observations with running mean and variance"""
    clip_obs: float = 10.0
    """clip normalised observations to ±clip_obs"""
    norm_reward: bool = True
    """divide rewards by the running std of the discounted return"""
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
    preset: str = "auto"
    """auto: this env's entry in PRESETS (v4 and v5 share one); none: these Args defaults; or a PRESETS key.
    Flags given on the command line always win over the preset"""
    compile: bool = False
    """torch.compile the minibatch losses: ~20% faster updates on a CPU after ~30 s of compiling (needs a C++ compiler); no net gain measured on 200k-step runs"""


# Per-environment presets (STYLE: beside Args). `python ppo.py --env X` trains X with X's entry; flags given on the
# command line win, and `--preset none` runs the Args defaults above (CleanRL's ppo_continuous_action.py settings).
# GOTCHA, translating Stable-Baselines3 / rl-baselines3-zoo settings: their `batch_size` is our minibatch size
# (num_minibatches = num_envs·num_steps / batch_size); their value loss is the plain mean squared error, ours has a ½
# (so vf_coef doubles); they clip no value update and keep the learning rate constant; `normalize: true` is our
# norm_obs + norm_reward; policy_kwargs' net_arch, activation_fn, ortho_init and log_std_init are hidden_size,
# activation, ortho_init and init_log_std.
ZOO = "rl-baselines3-zoo hyperparams/ppo.yml"


MUJOCO_DEFAULTS = "CleanRL ppo_continuous_action.py (= these Args defaults)"


PRESETS = {
    # ── classic control
    "CartPole": dict(source="CleanRL ppo.py's classic-control settings (experts/README.md's CartPole-v1 recipe)",
                     args=dict(total_timesteps=100_000, num_envs=4, num_steps=128, num_minibatches=4, update_epochs=4,
                               ent_coef=0.01, learning_rate=2.5e-4)),
    "Acrobot": dict(source="CleanRL ppo.py's classic-control settings (benchmark/results/ppo/ppo_acrobot_100k.json)",
                    args=dict(total_timesteps=100_000, num_envs=4, num_steps=128, num_minibatches=4, update_epochs=4,
                              ent_coef=0.01, learning_rate=2.5e-4)),
    "Pendulum": dict(source="our runs: experts/README.md's Pendulum-v1 recipe at 100k steps, evaluation −151 ± 7 over "
                            "seeds 1–3 (benchmark/results/ppo/ppo_preset_pendulum_100k.json; rl-baselines3-zoo's γ 0.9, lr 1e-3)",
                     args=dict(total_timesteps=100_000, num_envs=4, num_steps=512, num_minibatches=16, gamma=0.9,
                               learning_rate=1e-3)),
    "MountainCarContinuous": dict(
        # GOTCHA: solved (eval ≥ 90) on 1 seed of 3 (91.0; −79.0 and −3.1 on seeds 2 and 3): the zoo's entry explores
        # with gSDE (state-dependent noise), which ppo.py does not have; plain Gaussian noise at σ = e^−3.29 finds the
        # flag only sometimes, and otherwise learns to stand still to save the action cost.
        source=f"{ZOO} MountainCarContinuous-v0 without gSDE (a small initial σ, γ 0.9999, 20k steps); "
               f"solves 1 seed of 3",
        args=dict(total_timesteps=20_000, num_steps=8, num_minibatches=1, update_epochs=10, gamma=0.9999,
                  gae_lambda=0.9, learning_rate=7.77e-5, anneal_lr=False, ent_coef=0.00429, clip_coef=0.1,
                  clip_vloss=False, max_grad_norm=5.0, vf_coef=0.38, ortho_init=False, init_log_std=-3.29)),
    # ── MuJoCo
    "InvertedPendulum": dict(source=MUJOCO_DEFAULTS, args=dict(total_timesteps=1_000_000)),
    "InvertedDoublePendulum": dict(
        source=f"{ZOO} InvertedDoublePendulum-v3",
        args=dict(total_timesteps=1_000_000, num_steps=128, num_minibatches=1, update_epochs=10, gamma=0.98,
                  gae_lambda=0.8, learning_rate=1.55454e-4, anneal_lr=False, ent_coef=1.05057e-6, clip_coef=0.4,
                  clip_vloss=False, max_grad_norm=0.5, vf_coef=1.391858)),
    "Reacher": dict(
        source=f"{ZOO} Reacher-v2",
        args=dict(total_timesteps=1_000_000, num_steps=512, num_minibatches=16, update_epochs=5, gamma=0.9,
                  gae_lambda=1.0, learning_rate=1.04019e-4, anneal_lr=False, ent_coef=7.52585e-8, clip_coef=0.3,
                  clip_vloss=False, max_grad_norm=0.9, vf_coef=1.900736)),
    "Swimmer": dict(
        # GOTCHA: with the zoo's γ = 0.9999 (and λ 0.95) two seeds of three stay in the slow-gait optimum (194 ± 71 at
        # 1M); γ = 0.999, λ = 0.98 gives 345 ± 11 (docs/ppo.md's Swimmer sweep, benchmark/bench_ppo_swimmer_sweep.sh).
        source=f"{ZOO} Swimmer-v3 (Stable-Baselines3's PPO defaults) with our sweep's γ = 0.999 and λ = 0.98",
        args=dict(total_timesteps=1_000_000, gamma=0.999, gae_lambda=0.98, anneal_lr=False, clip_vloss=False,
                  vf_coef=1.0)),
    "Hopper": dict(source=f"{MUJOCO_DEFAULTS}: 3,205 ± 531 at 1M over 3 seeds (docs/ppo.md), above the zoo's "
                          f"tuned 2,410",
                   args=dict(total_timesteps=1_000_000)),
    "Walker2d": dict(
        source=f"{ZOO} Walker2d-v3",
        args=dict(total_timesteps=1_000_000, num_steps=512, num_minibatches=16, update_epochs=20, gamma=0.99,
                  gae_lambda=0.95, learning_rate=5.05041e-5, anneal_lr=False, ent_coef=5.85045e-4, clip_coef=0.1,
                  clip_vloss=False, max_grad_norm=1.0, vf_coef=1.743846)),
    "HalfCheetah": dict(
        source=f"{ZOO} HalfCheetah-v3",
        args=dict(total_timesteps=1_000_000, num_steps=512, num_minibatches=8, update_epochs=20, gamma=0.98,
                  gae_lambda=0.92, learning_rate=2.0633e-5, anneal_lr=False, ent_coef=4.01762e-4, clip_coef=0.1,
                  clip_vloss=False, max_grad_norm=0.8, vf_coef=1.16192, hidden_size=256, activation="relu",
                  ortho_init=False, init_log_std=-2.0)),
    "Ant": dict(source=f"{MUJOCO_DEFAULTS} (the zoo runs Ant-v3 on its library's defaults too)",
                args=dict(total_timesteps=1_000_000)),
    "Humanoid": dict(
        source=f"{ZOO} Humanoid-v3 (its budget: 10M steps)",
        args=dict(total_timesteps=10_000_000, num_steps=512, num_minibatches=2, update_epochs=5, gamma=0.95,
                  gae_lambda=0.9, learning_rate=3.56987e-5, anneal_lr=False, ent_coef=2.38306e-3, clip_coef=0.3,
                  clip_vloss=False, max_grad_norm=2.0, vf_coef=0.863784, hidden_size=256, activation="relu",
                  ortho_init=False, init_log_std=-2.0)),
}


# ── Networks ───────────────────────────────────────────────────────────────────────────────────────
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


# ── Algorithm math: small pure functions, one per equation, importable by tests ────────────────────
# Notation (T steps × N envs, flattened to B = T·N for the update; A = action dim or number of actions):
#   code          symbol                      shape
#   obs           s_t (normalised)            (T, N, obs_dim)
#   actions       a_t                         (T, N, A) continuous, (T, N) discrete
#   rewards       r_t (scaled)                (T, N)
#   values        V(s_t)                      (T, N)
#   next_values   V(s_{t+1}), s_{t+1} the true next state (the final obs when an episode ended)  (T, N)
#   terminated    1 if s_{t+1} is terminal (no future reward)        (T, N)
#   dones         1 if the episode ended at t (terminated or truncated)  (T, N)
#   advantages    Â_t = GAE(γ, λ)              (T, N)
#   returns       R̂_t = Â_t + V(s_t), the value target              (T, N)
#   logp_old      log π_θk(a_t|s_t)           (B,)
#   ratio         ρ_t(θ) = π_θ(a_t|s_t) / π_θk(a_t|s_t)             (B,)
#                 (the PPO paper writes r_t(θ); ρ here, because r_t is the reward)
LOG_2PI = float(np.log(2 * np.pi))


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


def ppo_kl_loss(ratio: torch.Tensor, adv: torch.Tensor, kl: torch.Tensor, beta) -> torch.Tensor:
    """−L^KLPEN, to minimise. ratio, adv, kl: (B,) -> scalar."""
    assert ratio.shape == adv.shape == kl.shape
    # L^KLPEN(θ) = E_t[ ρ_t(θ)·Â_t − β·KL[π_θk(·|s_t), π_θ(·|s_t)] ]      (PPO paper, eq. 8)
    return -(ratio * adv - beta * kl).mean()


def adapt_kl_beta(beta: float, kl: float, kl_target: float, tolerance: float, factor: float) -> float:
    """β_{k+1} from the mean KL d of the last update (PPO paper, Sec. 4)."""
    # d < d_targ / 1.5  ->  β ← β / 2   (the policy moved too little: loosen the penalty)
    # d > d_targ × 1.5  ->  β ← β × 2   (it moved too far: tighten it)
    if kl < kl_target / tolerance:
        return beta / factor
    if kl > kl_target * tolerance:
        return beta * factor
    return beta


def ppo_losses(agent: "Agent", obs, actions, logp_old, adv, v_old, returns, out_old, log_std_old,
               kl_beta: torch.Tensor, objective: str, clip_coef: float, clip_vloss: bool, norm_adv: bool):
    """The losses of one minibatch -> (policy loss, value loss, entropy, approx KL, clip fraction).

    Inputs are the minibatch rows of the batch tensors (see the notation table); `kl_beta` is β_k (0-d tensor).
    """
    out = agent.actor(obs)  # logits or μ_θ(s_t), (M, A)
    logp = agent.log_prob(out, actions)
    log_ratio = logp - logp_old
    ratio = log_ratio.exp()  # ρ_t(θ) = exp(log π_θ − log π_θk)
    with torch.no_grad():
        # Diagnostic: KL ≈ E[(r − 1) − log r], an unbiased, always ≥ 0 estimator (J. Schulman,
        # "Approximating KL divergence", 2020). > 0.05 or so: the step was too large.
        approx_kl = ((ratio - 1) - log_ratio).mean()
        clipfrac = ((ratio - 1.0).abs() > clip_coef).float().mean()
    if norm_adv:
        # TRICK: per-minibatch advantage normalisation (baselines' ppo2); the 1e-8 avoids 0/0.
        # GOTCHA (--objective kl): the penalty β·KL is then weighed against standardised advantages, not the
        # paper's raw Â_t, so β (and d_targ's effect) is on the scale of a unit-std Â whatever the task's rewards.
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    if objective == "clip":
        pg_loss = ppo_clip_loss(ratio, adv, clip_coef)
    else:
        pg_loss = ppo_kl_loss(ratio, adv, agent.kl_from(out_old, log_std_old, out), kl_beta)
    v_loss = value_loss(agent.value(obs), v_old, returns, clip_coef if clip_vloss else None)
    return pg_loss, v_loss, agent.entropy(out).mean(), approx_kl, clipfrac


def explained_variance(pred: np.ndarray, target: np.ndarray) -> float:
    """1 − Var[target − pred] / Var[target]: 1 is a perfect critic, ≤ 0 is no better than a constant."""
    var = np.var(target)
    return float("nan") if var == 0 else float(1 - np.var(target - pred) / var)


def normalize_obs(obs: np.ndarray, rms: Optional[RunningMeanStd], clip: float) -> np.ndarray:
    """ŝ = clip((s − μ) / √(σ² + ε), −c, c), as float32; identity without statistics."""
    if rms is None:
        return obs.astype(np.float32)
    # TRICK: observation normalisation (baselines' VecNormalize): MuJoCo observations mix positions and
    # velocities of very different scales; a tanh MLP learns much faster on unit-scale inputs.
    return np.clip((obs - rms.mean) / np.sqrt(rms.var + 1e-8), -clip, clip).astype(np.float32)


# ── Training loop [S1 collect -> S2 targets -> S3 update -> S4 log] ────────────────────────────────
def main(args: Args) -> dict:
    """Train (or load --checkpoint, or continue --resume), evaluate, save; returns the summary in summary.json."""
    resumed = None  # the checkpoint.pt of the run that --resume continues
    if args.resume is not None:
        args, resumed = resume_args(args, "ppo.py")
    preset = resolve_preset(args)
    check_args(args)
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")
    # Under torchrun, this process is rank r of W, each stepping its own envs (Ranks, in the plumbing); otherwise W = 1
    # and nothing below changes. Rank 0 alone prints, logs and writes.
    ranks = Ranks(device, args.checkpoint is not None)
    if ranks.world > 1 and device.type == "cuda":
        device = torch.device("cuda", ranks.local_rank)
    if preset is not None and ranks.rank == 0:
        print(f"ppo.py: preset '{preset}' for {args.env} ({PRESETS[preset]['source']}); flags given on the command "
              f"line override it, --preset none runs the plain defaults", flush=True)
    elif (args.resume is None and args.checkpoint is None and args.env.split("-v")[0] not in PRESETS
          and ranks.rank == 0):
        print(f"ppo.py: note: no preset for {args.env}: running on the Args defaults (CleanRL's MuJoCo settings)",
              flush=True)
    # Create the output folders first, so that a bad path fails now and not after an hour of training.
    for folder in filter(None, (args.runs_dir, args.save_expert)):
        make_output_folder(folder)
    if args.capture_video and "DISPLAY" not in os.environ:
        # GOTCHA: MuJoCo renders through GLFW by default, which needs a screen; headless machines use EGL.
        os.environ.setdefault("MUJOCO_GL", "egl")
    seed_everything(args.seed, args.torch_deterministic)
    torch.set_num_threads(args.torch_threads)

    probe = make_env(args.env)
    obs_dim, act_dim, discrete = check_spaces(probe, args.env)
    low, high = (None, None) if discrete else (probe.action_space.low, probe.action_space.high)
    probe.close()

    agent = Agent(obs_dim, act_dim, discrete, args.hidden_size, args.activation, args.ortho_init,
                  args.init_log_std).to(device)
    obs_rms = RunningMeanStd((obs_dim,)) if args.norm_obs else None
    if args.checkpoint is not None:  # (before the run directory exists, so a bad file leaves no empty run behind)
        agent, obs_rms = load_checkpoint(args.checkpoint, args, obs_dim, act_dim, discrete, device)

    if resumed is None and ranks.rank == 0:
        run_dir = os.path.join(args.runs_dir, f"{args.env}__{args.exp_name}__{args.seed}__{int(time.time())}")
        os.makedirs(run_dir, exist_ok=True)
        # (with --checkpoint, hidden_size and clip_obs are the checkpoint's: args.json records what this run used)
        atomic_write_text(os.path.join(run_dir, "args.json"), json.dumps(dataclasses.asdict(args), indent=2))
    else:
        run_dir = args.resume
    run_dir = ranks.gather(run_dir)[0]  # (rank 0's: one run directory, which rank 0 alone writes)
    # purge_step: TensorBoard drops what an interrupted run logged after its checkpoint, so the curves join up
    writer = (SummaryWriter(run_dir, purge_step=None if resumed is None else resumed["global_step"] + 1)
              if ranks.rank == 0 else NoWriter())
    if resumed is None:
        writer.add_text("hyperparameters",
                        "|param|value|\n|-|-|\n" + "\n".join(f"|{k}|{v}|" for k, v in vars(args).items()))
    train_returns: list = []
    global_step, start_time = 0, time.time()

    if args.checkpoint is not None:  # --checkpoint: evaluate the saved model; nothing to train
        train_time = time.time() - start_time
        summary = finish(args, run_dir, writer, agent, obs_rms, discrete, low, high,
                         global_step, train_time, train_returns)
        writer.close()
        return summary

    # TRICK: Adam ε = 1e-5 instead of 1e-8 (baselines' ppo2; detail 3 of "The 37 Implementation Details").
    flat_params = flatten_parameters(agent)
    ranks.broadcast_(flat_params.data)  # (every rank starts from rank 0's θ, φ)
    optimizer = torch.optim.Adam([flat_params], lr=args.learning_rate, eps=1e-5, fused=True)
    T, N, W = args.num_steps, args.num_envs, ranks.world
    batch_size = T * N  # this rank's batch; the update's batch is W·N·T, each rank holding its N·T
    minibatch_size = batch_size // args.num_minibatches  # this rank's share of a minibatch of W·minibatch_size
    num_iterations = args.total_timesteps // (W * batch_size)

    # GOTCHA: SAME_STEP autoreset (gymnasium's default is NEXT_STEP, where the step after an episode's end
    # only resets that env: its action is ignored and the transition s_last -> s_0 is fake).
    envs = make_vector_env(args.env, N, args.vector_env)
    # TRICK: reward scaling (baselines' VecNormalize): divide r_t by the running std of the discounted
    # return G_t = γ·G_{t−1} + r_t, so the value targets have a similar scale on every task.
    ret_rms, discounted_return = RunningMeanStd(()), np.zeros(N)
    noise_rng = np.random.default_rng(args.seed if ranks.rank == 0 else [args.seed, ranks.rank])
    # Under torchrun, each rank's normalisers see its own envs during a rollout; after it, every rank folds all ranks'
    # new samples into the statistics the rollout started from, in rank order: the same numbers everywhere, equal to
    # one normaliser that saw every rank's samples (merge_moments).
    shared_stats = SharedStatistics(ranks, obs_rms, ret_rms)
    loss_fn = torch.compile(ppo_losses) if args.compile else ppo_losses
    kl_beta = args.kl_beta

    # Rollout storage, (T, N, ...): numpy on the CPU, moved to `device` once per update.
    obs_buf = np.zeros((T, N, obs_dim), np.float32)
    next_obs_buf = np.zeros((T, N, obs_dim), np.float32)
    act_buf = np.zeros((T, N) if discrete else (T, N, act_dim), np.int64 if discrete else np.float32)
    rew_buf, term_buf, done_buf = (np.zeros((T, N), np.float32) for _ in range(3))
    ep_return, ep_length = np.zeros(N), np.zeros(N, np.int64)

    raw_obs, _ = envs.reset(seed=args.seed + ranks.rank * N)  # (env i of rank r: seed + r·N + i)
    if obs_rms is not None:
        shared_stats.update_obs(raw_obs)
    obs = normalize_obs(raw_obs, obs_rms, args.clip_obs)
    start_iteration = 1
    if resumed is not None:  # --resume: put back everything the loop carries from one iteration to the next
        mine = ranks.own_part(resumed)  # (under torchrun, this rank's envs, generators and episodes)
        set_rng_states(mine["rng"])
        agent.load_state_dict(resumed["agent"])
        optimizer.load_state_dict(resumed["optimizer"])
        for rms, saved in ((obs_rms, resumed["obs_rms"]), (ret_rms, resumed["ret_rms"])):
            if rms is not None:
                vars(rms).update(saved)
        shared_stats.start_rollout()
        noise_rng, kl_beta, obs = mine["noise_rng"], resumed["kl_beta"], mine["obs"]
        discounted_return = mine["discounted_return"]
        ep_return, ep_length = mine["ep_return"], mine["ep_length"]
        global_step, train_returns = resumed["global_step"], resumed["train_returns"]
        start_iteration, start_time = resumed["iteration"] + 1, time.time() - resumed["train_time"]
        envs.set_attr("saved_state", list(mine["envs"]))  # (each env its own: AsyncVectorEnv's are in other
        envs.call("restore_saved_state")                  # processes, reached only through calls by name)

    # (contextlib.closing: the envs, and an async run's worker processes, close however the loop ends)
    with StopSignals() as stop, contextlib.closing(envs):  # Ctrl-C or SIGTERM: finish this iteration, checkpoint, stop
        for iteration in range(start_iteration, num_iterations + 1):
            if args.anneal_lr:
                # TRICK: linear learning-rate decay to 0 (baselines' ppo2; PPO paper, Table 3 "×α, annealed").
                optimizer.param_groups[0]["lr"] = (1.0 - (iteration - 1.0) / num_iterations) * args.learning_rate
            # TRICK: during the rollout the actor runs in numpy on a copy of its weights: a small MLP at batch N
            # costs several times less in numpy than through torch's module machinery (docs/ppo.md, "Speed"), and
            # the copy never leaves the CPU, so a GPU run pays no host<->device transfer per env step. θ is fixed
            # until [S3].
            actor_np = numpy_weights(agent.actor)
            std = None if discrete else torch.exp(agent.log_std).detach().cpu().numpy()  # σ, (A,)

            # [S1] collect T steps in each of the N envs with π_θk.
            finished = []  # the returns of the episodes that end in this rollout
            for t in range(T):
                global_step += W * N
                obs_buf[t] = obs
                # a_t ~ π_θ(·|s_t), the policy's sample: the actor's output on s_t (from its numpy copy, the same
                # numbers as the torch network), then a draw from the distribution it parametrises:
                out = numpy_mlp(actor_np, obs, args.activation)  # logits or μ_θ(s_t), (N, A)
                if discrete:
                    action = gumbel_max_sample(out, noise_rng.random(out.shape))  # a_t ~ softmax(logits)
                    env_action = action
                else:
                    # a_t = μ_θ(s_t) + σ ⊙ ε, ε ~ N(0, I)
                    action = out + std * noise_rng.standard_normal(out.shape, dtype=np.float32)
                    # GOTCHA: the env gets the action clipped to its bounds, but the batch keeps the sampled one,
                    # because log π_θ must be of the action the Gaussian actually drew.
                    env_action = np.clip(action, low, high)
                act_buf[t] = action

                raw_next_obs, reward, terminated, truncated, infos = envs.step(env_action)
                done = terminated | truncated

                ep_return += reward
                ep_length += 1
                if args.norm_reward:
                    discounted_return = args.gamma * discounted_return + reward
                    shared_stats.update_ret(discounted_return)
                    reward = np.clip(reward / np.sqrt(ret_rms.var + 1e-8), -args.clip_reward, args.clip_reward)
                rew_buf[t], term_buf[t], done_buf[t] = reward, terminated, done

                if obs_rms is not None:
                    shared_stats.update_obs(raw_next_obs)
                obs = normalize_obs(raw_next_obs, obs_rms, args.clip_obs)
                next_obs_buf[t] = obs  # s_{t+1}, unless an episode ended:
                for i in np.flatnonzero(done):
                    # The true s_{t+1}: where an episode ended, the vector env already returned the first observation
                    # of the next episode and put the last one of this episode in infos["final_obs"].
                    next_obs_buf[t, i] = normalize_obs(infos["final_obs"][i], obs_rms, args.clip_obs)
                    finished.append(float(ep_return[i]))
                    writer.add_scalar("charts/episodic_return", ep_return[i], global_step)
                    writer.add_scalar("charts/episodic_length", ep_length[i], global_step)
                    ep_return[i], ep_length[i], discounted_return[i] = 0.0, 0, 0.0
            train_returns.extend(r for part in ranks.gather(finished) for r in part)  # (every rank's, in rank order)
            shared_stats.end_rollout()

            # [S2] targets. TRICK: V(s_t), V(s_{t+1}) and log π_θk(a_t|s_t) in three batched forward passes after
            # the rollout instead of one per step: θ does not change during the rollout, so they are the same numbers.
            b_obs = torch.from_numpy(obs_buf.reshape(batch_size, obs_dim)).to(device)
            b_actions = torch.from_numpy(act_buf.reshape((batch_size,) if discrete else (batch_size, act_dim))).to(device)
            with torch.no_grad():
                b_values = agent.value(b_obs)  # (B,)
                next_values = agent.value(torch.from_numpy(next_obs_buf.reshape(batch_size, obs_dim)).to(device))
                b_out_old = agent.actor(b_obs)  # logits or μ of π_θk, (B, A): for the KL objective and diagnostics
                b_logp_old = agent.log_prob(b_out_old, b_actions)  # (B,)
            log_std_old = agent.log_std.detach().clone()
            values_np = b_values.cpu().numpy().reshape(T, N)
            advantages = compute_gae(rew_buf, values_np, next_values.cpu().numpy().reshape(T, N),
                                     term_buf, done_buf, args.gamma, args.gae_lambda)
            returns = advantages + values_np  # R̂_t = Â_t + V(s_t), the critic's regression target
            b_adv = torch.from_numpy(advantages.reshape(batch_size)).to(device)
            b_returns = torch.from_numpy(returns.reshape(batch_size)).to(device)

            # [S3] E epochs of minibatch updates of θ (actor) and φ (critic), on minibatches of the batch B.
            clipfracs, approx_kl = [], torch.zeros((), device=device)
            beta = torch.tensor(kl_beta, device=device)  # β_k as a tensor: torch.compile would recompile for each float
            for epoch in range(args.update_epochs):
                perm = torch.randperm(batch_size, device=device)
                if W > 1 and args.norm_adv:  # (ppo_losses would standardise each rank's share alone)
                    adv_moments = minibatch_moments_across_ranks(b_adv, perm, minibatch_size, ranks)  # (M, 2)
                for k, start in enumerate(range(0, batch_size, minibatch_size)):
                    mb = perm[start:start + minibatch_size]
                    mb_adv = b_adv[mb]
                    if W > 1 and args.norm_adv:  # Â standardised over the whole minibatch, every rank's share
                        mb_adv = (mb_adv - adv_moments[k, 0]) / (adv_moments[k, 1] + 1e-8)
                    pg_loss, v_loss, entropy, approx_kl, clipfrac = loss_fn(
                        agent, b_obs[mb], b_actions[mb], b_logp_old[mb], mb_adv, b_values[mb], b_returns[mb],
                        b_out_old[mb], log_std_old, beta, args.objective,
                        args.clip_coef, args.clip_vloss, args.norm_adv and W == 1)
                    clipfracs.append(clipfrac)
                    # One optimiser for both nets: L = −L^policy + c_v·L^V − c_H·H
                    # GOTCHA: L^V = ½·E[(V − R̂)²] already has its ½ (value_loss), so with c_v = 0.5 the squared
                    # error weighs 0.25 (as in CleanRL and baselines' ppo2, whose vf_coef 0.5 multiplies a ½-loss too)
                    loss = pg_loss + args.vf_coef * v_loss - args.ent_coef * entropy

                    flat_params.grad.zero_()  # zeroes every parameter's .grad (they are views of it)
                    loss.backward()
                    # Under torchrun: the mean of the ranks' gradients, one all-reduce of the flat buffer = the
                    # gradient of the whole minibatch's loss (each rank's loss is the mean over its equal share).
                    ranks.mean_(flat_params.grad)
                    # TRICK: global gradient-norm clipping at 0.5 (baselines' ppo2): g ← g · min(1, c / ‖g‖₂).
                    nn.utils.clip_grad_norm_([flat_params], args.max_grad_norm)
                    optimizer.step()
                if args.target_kl is not None and ranks.mean_(approx_kl.detach().clone()).item() > args.target_kl:
                    break  # (the ranks' mean: every rank stops at the same epoch)

            # [S4] log. For the KL objective, adapt β to the mean KL[π_θk ‖ π_θk+1] over the whole batch.
            with torch.no_grad():
                mean_kl = ranks.mean_(agent.kl_from(b_out_old, log_std_old, agent.actor(b_obs)).mean()).item()
            if args.objective == "kl":
                kl_beta = adapt_kl_beta(kl_beta, mean_kl, args.kl_target, args.kl_tolerance, args.kl_factor)
                writer.add_scalar("losses/kl_beta", kl_beta, global_step)
            sps = int(global_step / (time.time() - start_time))
            writer.add_scalar("charts/learning_rate", optimizer.param_groups[0]["lr"], global_step)
            writer.add_scalar("charts/SPS", sps, global_step)
            writer.add_scalar("losses/value_loss", v_loss.item(), global_step)
            writer.add_scalar("losses/policy_loss", pg_loss.item(), global_step)
            writer.add_scalar("losses/entropy", entropy.item(), global_step)
            writer.add_scalar("losses/approx_kl", approx_kl.item(), global_step)
            writer.add_scalar("losses/kl", mean_kl, global_step)  # exact KL of the whole update
            writer.add_scalar("losses/clipfrac", torch.stack(clipfracs).mean().item(), global_step)
            writer.add_scalar("losses/explained_variance", explained_variance(values_np, returns), global_step)
            if not discrete:
                writer.add_scalar("charts/action_std", float(np.mean(std)), global_step)
            recent = train_returns[-100:]
            if ranks.rank == 0:
                print(f"step {global_step:>9,}  return(last {len(recent)}) "
                      f"{np.mean(recent) if recent else float('nan'):9.1f}  SPS {sps:,}", flush=True)

            # Safe point. A non-finite loss, parameter or statistic stops the run before it can reach a checkpoint.
            check_finite(run_dir, global_step, **{"the policy loss": pg_loss, "the value loss": v_loss,
                                                  "the parameters": flat_params, "the rewards": rew_buf},
                         **({} if obs_rms is None else {"the observation statistics": obs_rms.var}))
            stopping = ranks.any(stop.received is not None)  # (a signal to one rank stops them all, at this point)
            if stopping or checkpoint_due(global_step - W * batch_size, global_step, args.checkpoint_every):
                own = {"rng": rng_states(), "noise_rng": noise_rng, "obs": obs, "ep_return": ep_return,
                       "ep_length": ep_length, "discounted_return": discounted_return,
                       "envs": list(envs.call("saved_state_now"))}
                state = {
                    "script": "ppo.py", "iteration": iteration, "global_step": global_step,
                    "train_time": time.time() - start_time, "agent": agent.state_dict(),
                    "optimizer": optimizer.state_dict(), "obs_rms": None if obs_rms is None else vars(obs_rms),
                    "ret_rms": vars(ret_rms), "kl_beta": kl_beta, "train_returns": train_returns,
                    **ranks.parts(own)}
                if ranks.rank == 0:
                    save_training_state(run_dir, state)
            if stopping:
                writer.close()
                ranks.close()
                line = stop_line("ppo.py", stop.received or "a signal to another rank", global_step, run_dir)
                if W > 1:  # (the same number of processes again: the checkpoint holds each rank's envs)
                    line = line.replace("python ppo.py", f"torchrun --nproc-per-node {W} ppo.py")
                raise Interrupted(line if ranks.rank == 0 else "")  # (rank 0 alone says it)

    train_time = time.time() - start_time
    ranks.check_same(parameters=flat_params, return_statistics=ret_rms.var,  # (a difference is a bug, not noise)
                     **({} if obs_rms is None else {"observation_statistics": np.r_[obs_rms.mean, obs_rms.var]}))
    summary = {}
    if ranks.rank == 0:  # rank 0 alone evaluates and saves; the others wait for it in close()
        summary = finish(args, run_dir, writer, agent, obs_rms, discrete, low, high,
                         global_step, train_time, train_returns)
    writer.close()
    ranks.close()
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


def finish(args: Args, run_dir: str, writer: SummaryWriter, agent: Agent, obs_rms: Optional[RunningMeanStd],
           discrete: bool, low, high, global_step: int, train_time: float, train_returns: list) -> dict:
    """model.pt, then the final deterministic evaluation, the optional expert, summary.json."""
    # model.pt first: a failure in the evaluation (a missing video codec, an env error) must not lose the training
    if args.save_model and args.checkpoint is None:
        atomic_torch_save({
            "script": "ppo.py", "env": args.env, "args": dataclasses.asdict(args),
            "agent": {k: v.detach().cpu().clone() for k, v in agent.state_dict().items()},
            # tensors, not numpy arrays, so that torch.load(weights_only=True) can read the file without unpickling code
            "obs_rms": None if obs_rms is None else {"mean": torch.from_numpy(obs_rms.mean),
                                                     "var": torch.from_numpy(obs_rms.var),
                                                     "count": float(obs_rms.count)},
        }, os.path.join(run_dir, "model.pt"))
        remove_checkpoint(run_dir)
    policy = DeterministicPolicy(agent.actor, obs_rms, args.clip_obs, discrete, low, high)
    video_dir = os.path.join(run_dir, "videos") if args.capture_video else None
    evaluation = run_episodes(torch_policy(policy), args.env, args.eval_episodes, args.eval_seed, video_dir)
    eval_returns = evaluation["episode_returns"]
    if len(eval_returns):
        writer.add_scalar("eval/return", float(eval_returns.mean()), global_step)

    if args.save_expert is not None:
        save_expert(args, policy, agent.actor[0].in_features, agent.log_std)

    summary = {
        "script": "ppo.py", "env": args.env, "seed": args.seed, "env_steps": global_step,
        "wall_time_s": round(train_time, 1), "sps": round(global_step / train_time) if global_step else 0,
        "eval_episodes": len(eval_returns),
        "eval_return_mean": float(eval_returns.mean()) if len(eval_returns) else None,
        "eval_return_std": float(eval_returns.std()) if len(eval_returns) else None,
        "eval_returns": [float(r) for r in eval_returns],
        "train_return_last100": float(np.mean(train_returns[-100:])) if train_returns else None,
        "checkpoint": args.checkpoint, "run_dir": run_dir,
    }
    atomic_write_text(os.path.join(run_dir, "summary.json"), json.dumps(summary, indent=2))
    if len(eval_returns):
        print(f"eval: {summary['eval_return_mean']:.1f} ± {summary['eval_return_std']:.1f} over {len(eval_returns)} "
              f"episodes; run directory {run_dir}")
    return summary


# ── Plumbing (skip on a first reading): errors, argument checks, env making, normalisers, ──────────
#    seeding, atomic writes, checkpoints and resume, parallel envs and torchrun, loading and export
# >>> shared: presets
def preset_for(args: "Args") -> Optional[str]:
    """The PRESETS key that --preset selects for args.env: the env's family name for auto (None if it has none)."""
    if args.preset != "auto":
        return None if args.preset == "none" else args.preset
    family = args.env.split("-v")[0]
    return family if family in PRESETS else None


def parse_args(argv: Optional[list] = None) -> "Args":
    """The command line, with the env's preset as the defaults: a flag given on the command line always wins.

    (tyro parses twice: once for --env and --preset, then again with the preset's values as the defaults, so that
    --help after --env X also shows X's values.) From Python, main(Args(...)) resolves the preset itself:
    there, a field left at its Args default takes the preset's value (see resolve_preset).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    first = tyro.cli(Args, args=[a for a in argv if a not in ("-h", "--help")])  # (--help: after the preset)
    name = preset_for(first)
    if first.resume is not None or first.checkpoint is not None or name not in PRESETS:
        # (--resume runs the stored arguments; main() explains an unknown preset name; parsed again for --help)
        return tyro.cli(Args, args=argv)
    args = tyro.cli(Args, args=argv, default=dataclasses.replace(Args(), **PRESETS[name]["args"]))
    args.preset = name
    args.preset_resolved = True  # (an attribute, not a field: main() must not apply the preset a second time)
    return args


def resolve_preset(args: "Args") -> Optional[str]:
    """Apply the preset --preset selects to `args` (fields still at their Args default take its values; parse_args
    has already applied it to a command line) and record its name in args.preset; returns the name or None."""
    if args.resume is not None or args.checkpoint is not None:
        return None
    name = preset_for(args)
    if name is not None and name not in PRESETS:
        raise UserError(f"--preset {args.preset}: no such preset; choose auto, none or one of {', '.join(PRESETS)}")
    if name is not None and not getattr(args, "preset_resolved", False):
        for field in dataclasses.fields(Args):
            if field.name in PRESETS[name]["args"] and getattr(args, field.name) == field.default:
                setattr(args, field.name, PRESETS[name]["args"][field.name])
    args.preset, args.preset_resolved = name or "none", True
    return name
# <<< shared: presets


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
        (args.update_epochs >= 1, "--update-epochs must be at least 1"),
        (args.learning_rate > 0, "--learning-rate must be positive"),
        (0 <= args.gamma <= 1, "--gamma must be in [0, 1]"),
        (0 <= args.gae_lambda <= 1, "--gae-lambda must be in [0, 1]"),
        (args.clip_coef > 0, "--clip-coef must be positive"),
        (args.max_grad_norm > 0, "--max-grad-norm must be positive"),
        (args.ent_coef >= 0 and args.vf_coef > 0, "--ent-coef must be >= 0 and --vf-coef positive"),
        (args.kl_target > 0 and args.kl_beta > 0, "--kl-target and --kl-beta must be positive"),
        (args.kl_tolerance > 1 and args.kl_factor > 1, "--kl-tolerance and --kl-factor must be greater than 1"),
        (args.target_kl is None or args.target_kl > 0, "--target-kl must be positive"),
        (args.eval_episodes >= 0 and args.expert_episodes >= 1, "--eval-episodes must be >= 0 and --expert-episodes >= 1"),
        (args.hidden_size >= 1 and args.torch_threads >= 1, "--hidden-size and --torch-threads must be at least 1"),
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


# torchrun: several processes, one run (Ranks, minibatch_moments_across_ranks, merge_moments, SharedStatistics).
class Ranks:
    """This process's place in a torchrun job, and the few collectives PPO needs; without torchrun (no WORLD_SIZE in
    the environment, or WORLD_SIZE=1) world = 1 and every method returns its input or does nothing.

    `torchrun --nproc-per-node W ppo.py ...`: rank r steps its own N envs (seeds seed + r·N + i) and holds N·T of each
    batch of W·N·T; every minibatch's gradient is the mean over the ranks (one all-reduce of the flat buffer, gloo on a
    CPU, nccl on GPUs); rank 0 alone writes the run directory, logs, evaluates and saves.
    """

    def __init__(self, device: torch.device, evaluate_only: bool = False):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank, self.local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
        if self.world > 1 and evaluate_only:
            raise UserError("--checkpoint evaluates a saved model: run it without torchrun")
        if self.world > 1 and not dist.is_initialized():
            if device.type == "cuda":
                torch.cuda.set_device(self.local_rank)  # (nccl's object collectives use the current device)
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")

    def mean_(self, tensor: torch.Tensor) -> torch.Tensor:
        """In place: the mean of `tensor` over the ranks."""
        return self.sum_(tensor).div_(self.world)

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """In place: the sum of `tensor` over the ranks."""
        if self.world > 1:
            dist.all_reduce(tensor)
        return tensor

    def broadcast_(self, tensor: torch.Tensor) -> torch.Tensor:
        """In place: rank 0's `tensor` on every rank."""
        if self.world > 1:
            dist.broadcast(tensor, src=0)
        return tensor

    def gather(self, obj) -> list:
        """[rank 0's obj, rank 1's, ...] on every rank (any picklable object)."""
        if self.world == 1:
            return [obj]
        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def any(self, flag: bool) -> bool:
        return any(self.gather(bool(flag)))

    def parts(self, own: dict) -> dict:
        """What a checkpoint holds of each rank's own state: the fields themselves for one process, else
        {"ranks": [rank 0's, rank 1's, ...], "world_size": W}."""
        return own if self.world == 1 else {"ranks": self.gather(own), "world_size": self.world}

    def own_part(self, checkpoint: dict) -> dict:
        """This rank's own state from a checkpoint written by parts(), which must come from as many processes."""
        written = checkpoint.get("world_size", 1)
        if written != self.world:
            raise UserError(f"this checkpoint was written by {written} process(es); resume it with as many "
                            f"({'torchrun --nproc-per-node ' + str(written) if written > 1 else 'without torchrun'})")
        return checkpoint if self.world == 1 else checkpoint["ranks"][self.rank]

    def check_same(self, **values) -> None:
        """Every rank must hold the same parameters and statistics at the end: the all-reduced updates and the merged
        normalisers keep them equal, so a difference is a bug."""
        if self.world > 1:
            for name, value in values.items():
                array = value.detach().cpu().numpy() if torch.is_tensor(value) else np.asarray(value)
                if len(set(self.gather(hashlib.sha256(array.tobytes()).hexdigest()))) != 1:
                    raise RuntimeError(f"the ranks' {name} differ at the end of training")

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.barrier()  # (every rank leaves together: rank 0 last finished its evaluation)
            dist.destroy_process_group()


def minibatch_moments_across_ranks(adv: torch.Tensor, perm: torch.Tensor, minibatch_size: int,
                                   ranks: Ranks) -> torch.Tensor:
    """(M, 2): the mean and std of Â over each of this epoch's M minibatches, every rank's share of it, what
    ppo_losses' per-minibatch normalisation computes for one process that holds the whole minibatch. One all-reduce
    per epoch of each share's Σ Â, Σ Â² and count (float64), not one gather per minibatch: on 2 cores a collective
    costs about as much as a minibatch update (docs/running.md)."""
    shares = [adv[perm[start:start + minibatch_size]].double() for start in range(0, len(perm), minibatch_size)]
    sums = torch.stack([torch.stack([a.sum(), a.square().sum(), a.new_tensor(float(len(a)))]) for a in shares])
    ranks.sum_(sums)  # (M, 3)
    mean = sums[:, 0] / sums[:, 2]
    std = ((sums[:, 1] - sums[:, 2] * mean.square()).clamp_min(0.0) / (sums[:, 2] - 1.0)).sqrt()  # (unbiased, as .std())
    return torch.stack([mean, std], dim=1).to(adv.dtype)


def merge_moments(rms: "RunningMeanStd", moments: list) -> None:
    """Fold batches given as (mean, var, count) into rms, one after another: Chan et al.'s parallel formula, as
    RunningMeanStd.update applies it to one batch. Folding every rank's batch gives what one normaliser that saw
    them all would hold (up to rounding)."""
    for mean, var, count in moments:
        if count == 0:
            continue
        total = rms.count + count
        delta = mean - rms.mean
        rms.mean = rms.mean + delta * count / total
        rms.var = (rms.var * rms.count + var * count + np.square(delta) * rms.count * count / total) / total
        rms.count = total


class SharedStatistics:
    """The observation and return normalisers under torchrun: updated by each rank's own samples during a rollout
    (update_obs, update_ret), then, at its end (end_rollout), set on every rank to the statistics the rollout began
    with plus every rank's new samples, merged in rank order. With one process, plain updates."""

    def __init__(self, ranks: Ranks, obs_rms: Optional["RunningMeanStd"], ret_rms: "RunningMeanStd"):
        self.ranks, self.pairs = ranks, [(rms, None, None) for rms in (obs_rms, ret_rms) if rms is not None]
        self.start_rollout()

    def start_rollout(self) -> None:
        """Remember the current statistics and start counting this rollout's samples afresh."""
        if self.ranks.world > 1:
            self.pairs = [(rms, dict(vars(rms)), fresh_statistics(rms)) for rms, _, _ in self.pairs]

    def update_obs(self, x: np.ndarray) -> None:
        self._update(0, x)

    def update_ret(self, x: np.ndarray) -> None:
        self._update(len(self.pairs) - 1, x)

    def _update(self, i: int, x: np.ndarray) -> None:
        rms, _, new = self.pairs[i]
        rms.update(x)
        if new is not None:
            new.update(x)

    def end_rollout(self) -> None:
        if self.ranks.world == 1:
            return
        for rms, start, new in self.pairs:
            vars(rms).update(start)
            merge_moments(rms, self.ranks.gather((new.mean, new.var, new.count)))
        self.start_rollout()


def fresh_statistics(like: "RunningMeanStd") -> "RunningMeanStd":
    """A RunningMeanStd of like's shape that has seen nothing (count 0, no prior): its first update is that batch's."""
    new = RunningMeanStd(like.mean.shape)
    new.count = 0.0
    return new


class NoWriter:
    """What ranks other than 0 log to: nothing."""

    def add_scalar(self, *args, **kwargs) -> None:
        pass

    def add_text(self, *args, **kwargs) -> None:
        pass

    def close(self) -> None:
        pass


def load_checkpoint(path: str, args: Args, obs_dim: int, act_dim: int, discrete: bool, device: torch.device):
    """Rebuild the agent and observation statistics from a model.pt written by this script."""
    if not os.path.isfile(path):
        raise UserError(f"checkpoint '{path}' does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        # (torch's message runs to several lines; its first says what failed)
        raise UserError(f"cannot read checkpoint '{path}' as a model.pt written by ppo.py: "
                        f"{str(err).strip().splitlines()[0][:200]}") from None
    # (checkpoints from before the "script" key was written are ppo.py's: it was the only script)
    if not isinstance(ckpt, dict) or "agent" not in ckpt or ckpt.get("script", "ppo.py") != "ppo.py":
        raise UserError(f"'{path}' is not a model.pt written by ppo.py")
    if ckpt["env"] != args.env:
        raise UserError(f"checkpoint '{path}' was trained on {ckpt['env']}, not {args.env} (pass --env {ckpt['env']})")
    args.hidden_size, args.clip_obs = ckpt["args"]["hidden_size"], ckpt["args"]["clip_obs"]
    args.activation = ckpt["args"].get("activation", "tanh")  # (older model.pt files predate the field: tanh)
    args.trained_with = ckpt["args"]  # (an attribute, not a field: the expert's metadata gives the training command)
    agent = Agent(obs_dim, act_dim, discrete, args.hidden_size, args.activation).to(device)
    agent.load_state_dict(ckpt["agent"])
    obs_rms = None
    if ckpt["obs_rms"] is not None:
        obs_rms = RunningMeanStd((obs_dim,))
        obs_rms.mean, obs_rms.var = ckpt["obs_rms"]["mean"].numpy(), ckpt["obs_rms"]["var"].numpy()
        obs_rms.count = ckpt["obs_rms"]["count"]
    return agent, obs_rms


def command_line(args: Args) -> str:
    """The command that gives these arguments: `python ppo.py --env ID` and every field not at its default (the
    defaults being the env's preset where the run used the one --preset auto picks)."""
    name = args.preset if args.preset in PRESETS else None
    auto = dataclasses.replace(args, preset="auto")
    defaults = dataclasses.replace(Args(), **PRESETS[name]["args"]) if name else Args()
    parts = ["python ppo.py", f"--env {args.env}"]
    for field in dataclasses.fields(Args):
        value, flag = getattr(args, field.name), "--" + field.name.replace("_", "-")
        if field.name == "env" or value == getattr(defaults, field.name):
            continue
        if field.name == "preset" and preset_for(auto) == value:
            continue  # (the preset --preset auto picks for this env)
        if isinstance(value, bool):
            parts.append(flag if value else "--no-" + flag[2:])
        else:
            parts.append(f"{flag} {value}")
    return " ".join(parts)


def training_command(args: Args) -> str:
    """The one command that trains and exports this expert. With --checkpoint, the model's training arguments (kept in
    model.pt) plus this export's: training is deterministic on a CPU, so that command gives the same expert."""
    trained = getattr(args, "trained_with", None)
    if trained is None:
        return command_line(args)
    fields = {f.name for f in dataclasses.fields(Args)}
    where = ("exp_name", "runs_dir", "checkpoint_every", "capture_video", "cuda")  # (nothing the expert depends on)
    train = dataclasses.replace(Args(), **{k: v for k, v in trained.items() if k in fields and k not in where})
    # the export's own settings: its evaluation seeds and episodes set the references
    train = dataclasses.replace(train, checkpoint=None, resume=None, save_expert=args.save_expert,
                                expert_episodes=args.expert_episodes, expert_seed=args.expert_seed,
                                expert_demos=args.expert_demos, eval_seed=args.eval_seed,
                                eval_episodes=args.eval_episodes)
    return command_line(train)


def uniform_random_policy(action_space: gym.Space, seed: int):
    """The random policy of normalised scores: actions uniform on the action space, from a seeded generator."""
    rng = np.random.default_rng(seed)
    if isinstance(action_space, gym.spaces.Discrete):
        return lambda obs: rng.integers(action_space.n, size=len(obs))
    low, high = action_space.low.astype(np.float32), action_space.high.astype(np.float32)
    return lambda obs: rng.uniform(low, high, size=(len(obs),) + low.shape).astype(np.float32)


def sampling_policy(policy: DeterministicPolicy, log_std: torch.Tensor, seed: int):
    """The policy as trained: a ~ π_θ(·|s), N(μ_θ(s), σ²) clipped to the bounds (what the env executes) or a draw
    from the categorical; a numpy callable like torch_policy's, its draws from a generator seeded with `seed`."""
    gen, std = torch.Generator().manual_seed(seed), log_std.detach().cpu().exp()

    def act(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = policy.actor_output(torch.from_numpy(obs))  # logits or μ_θ(s), (B, A)
            if policy.discrete:
                return torch.multinomial(torch.softmax(out, dim=-1), 1, generator=gen).squeeze(-1).numpy()
            action = out + std * torch.randn(out.shape, generator=gen)
            return torch.maximum(torch.minimum(action, policy.high), policy.low).numpy()
    return act


REFERENCE_EPISODES = 50  # episodes of each reference return (random policy, demonstrator) in an expert's metadata


def save_expert(args: Args, policy: DeterministicPolicy, obs_dim: int, log_std: torch.Tensor) -> None:
    """DIR/policy.pt2: the deterministic policy via torch.export; DIR/demos.npz: the demonstrator's episodes and the
    returns that normalise scores (CONTRIBUTING.md).

    The demonstrator is the policy as trained (--expert-demos stochastic) or policy.pt2 itself (deterministic). The
    metadata's "reference" holds the returns of a uniform random policy and of the demonstrator on the evaluation
    seeds (episode i from reset(seed=eval_seed + i)): an imitator's normalised score is
    (R − R_random) / (R_expert − R_random) on those same seeds.
    """
    os.makedirs(args.save_expert, exist_ok=True)
    # GOTCHA: export with a batch of 2 and Dim.AUTO; a batch of 1 specialises the batch dimension to 1.
    exported = torch.export.export(policy, (torch.zeros(2, obs_dim),),
                                   dynamic_shapes={"obs": {0: torch.export.Dim.AUTO}})
    path, demos_path = os.path.join(args.save_expert, "policy.pt2"), os.path.join(args.save_expert, "demos.npz")
    tmp_policy = os.path.join(args.save_expert, f".policy.tmp{os.getpid()}.pt2")
    staged = os.path.join(args.save_expert, f".demos.staged{os.getpid()}.npz")
    try:
        torch.export.save(exported, tmp_policy)
        # The deterministic demonstrations come from the exported program itself, so they are exactly what a user of
        # policy.pt2 gets.
        deterministic = torch_policy(torch.export.load(tmp_policy).module())

        def demonstrator(seed: int):
            return deterministic if args.expert_demos == "deterministic" else sampling_policy(policy, log_std, seed)
        demos = run_episodes(demonstrator(args.expert_seed), args.env, args.expert_episodes, args.expert_seed)
        returns = demos["episode_returns"]
        n_ref = max(args.eval_episodes, REFERENCE_EPISODES)
        with make_env(args.env) as env:
            action_space = env.action_space
        reference = {
            "eval_seed": args.eval_seed, "episodes": n_ref,
            "random_returns": run_episodes(uniform_random_policy(action_space, args.eval_seed), args.env, n_ref,
                                           args.eval_seed)["episode_returns"].tolist(),
            "expert_returns": run_episodes(demonstrator(args.eval_seed), args.env, n_ref,
                                           args.eval_seed)["episode_returns"].tolist(),
            # policy.pt2's own (DAgger's labeller; the same as expert_returns for deterministic demos)
            "policy_returns": run_episodes(deterministic, args.env, n_ref, args.eval_seed)["episode_returns"].tolist(),
        }
        metadata = {
            "env_id": args.env, "script": "ppo.py", "seed": args.seed, "command": training_command(args),
            "demonstrator": args.expert_demos,
            "return_mean": float(returns.mean()), "return_std": float(returns.std()),
            "episodes": len(returns), "obs_dim": obs_dim,
            "action_space": "discrete" if policy.discrete else "continuous",
            "reference": reference,
            "versions": {"gymnasium": gym.__version__, "torch": torch.__version__, "numpy": np.__version__},
        }
        if args.checkpoint is not None:
            metadata["exported_by"] = command_line(args)
        atomic_savez(staged, metadata=np.array(json.dumps(metadata)), **demos)
        # Both files are complete before either replaces the old expert, so an interrupted export never leaves a
        # new policy beside old demonstrations (short of a crash between these two renames).
        os.replace(tmp_policy, path)
        os.replace(staged, demos_path)
    finally:  # an export stopped by an error or Ctrl-C leaves no temporary file behind
        for leftover in (tmp_policy, staged):
            if os.path.exists(leftover):
                os.remove(leftover)
    random_mean, expert_mean = np.mean(reference["random_returns"]), np.mean(reference["expert_returns"])
    print(f"expert: {path} and demos.npz ({len(returns)} {args.expert_demos} episodes, return {returns.mean():.1f} ± "
          f"{returns.std():.1f}); on the evaluation seeds: demonstrator {expert_mean:.1f}, random {random_mean:.1f}")


def leave(code: int) -> None:
    """Exit with `code`. GOTCHA: under torchrun, skip the interpreter's finalisation: gloo's threads can still hold
    tensors then, and tearing them down aborts the process (SIGABRT) after a run that ended well (seen here on about
    one 2-process run in five; pytorch/pytorch PR 179291 describes it). Every file of the run is closed by now."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    try:
        main(parse_args())
        leave(0)
    except UserError as err:
        sys.exit(f"ppo.py: error: {err}")
    except Interrupted as err:
        if str(err):
            print(err, file=sys.stderr)
        leave(130)
    except KeyboardInterrupt:
        print("ppo.py: interrupted; the run directory keeps its last checkpoint.pt, if one was written",
              file=sys.stderr)
        sys.exit(130)
