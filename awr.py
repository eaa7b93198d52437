"""Advantage-weighted regression (AWR): policy search as weighted maximum likelihood, online and offline (MARWIL),
with reward-weighted regression (RWR) as its ablation, for discrete and continuous actions.

Papers: Peng, Kumar, Zhang, Levine, "Advantage-weighted regression: simple and scalable off-policy reinforcement
learning" (arXiv:1910.00177, 2019); Peters & Schaal, "Reinforcement learning by reward-weighted regression for
operational space control" (ICML 2007); Wang et al., "Exponentially weighted imitation learning for batched
historical data" (MARWIL, NeurIPS 2018). Lecture notes: ../shared/seeds 004 (weighted imitation, RWR, PG = RWR, the
AWR algorithm, its hyperparameters and results table, MARWIL as one offline iteration).

Behaviour cloning fits π to the actions of a dataset by maximum likelihood. Weight each sample by how good it was and
the fitted policy imitates "more strongly what is good in the batch than what is bad" (notes 004):
    π_k = argmax_π  E_{s,a∼D}[ log π(a|s) · w(s, a) ]
    RWR  (--weighting reward):     w = exp(R_{s,a} / β)                   the return that followed a in s
    AWR  (--weighting advantage):  w = exp((R_{s,a} − V_k(s)) / β)         the advantage: better than usual in s?
The paper derives it as the solution of a trust-region policy improvement, max_π E[A(s,a)] s.t. KL(π ‖ μ) ≤ ε, whose
optimum is π*(a|s) ∝ μ(a|s)·exp(A(s,a)/β) (paper eq. 6–9); projecting π* onto the policy class by maximum likelihood
on samples of μ gives the weighted regression. β is the temperature: β → 0 copies only the best action of each state,
β → ∞ is plain behaviour cloning of μ.
Why the advantage and not the return: exp(R/β) grows with how good the *state* is, not the action, so RWR mostly
imitates actions taken from lucky states; V(s) removes that (the paper's ablation, Fig. 4: RWR is far behind).

Pseudocode (notes 004, "Algorithm 1"; the step tags appear in the training loop below):
    D ← ∅
    for k = 1, 2, ...
        [S1] run π_{k−1} for whole episodes, at least `samples_per_iter` steps, and add them to D, which keeps the
             most recent whole episodes within `buffer_size` samples
        [S2] R^D_{s,a} = TD(λ) return of every sample in D, bootstrapped with V_{k−1}
        [S3] V_k ← argmin_V E_{s∼D}[ ‖R^D_{s,a} − V(s)‖² ]                       (value_steps SGD steps)
             recompute R^D with V_k; A = R^D − V_k(s); w = min(exp(A/β), w_max)
             π_k ← argmax_π E_{s,a∼D}[ log π(a|s) · w ]                          (policy_steps SGD steps)
             (both step counts × the iteration's steps / samples_per_iter); the observation statistics take
             in the iteration's states
        [S4] log
    Offline (--offline, MARWIL): D is a fixed dataset (expert demos, optionally mixed with random-policy episodes)
    and [S1] is skipped; the same [S2]–[S3] run --offline-iterations times with no environment interaction.

Run:
    python awr.py                                        # CartPole-v1, 100k steps (~1.5 min on a CPU)
    python awr.py --env Hopper-v4 --total-timesteps 1000000 --learning-rate 1e-4
    python awr.py --env Hopper-v4 --weighting reward     # RWR, the ablation
    python awr.py --offline --env CartPole-v1 --random-episodes 100      # MARWIL from demos mixed with random data
What a working run reaches: CartPole-v1 500 within 100k steps, offline 1.0 of the expert from its demos;
Hopper-v4 2,455 ± 1,115 at 1M steps over 5 seeds, three of them at 3,243–3,306, the level of the released code's
own Hopper runs at 1M (3,264–3,498: its logs 5–7 and 9; logs 0–4 come from an older version of that code, log 8
is a truncated copy of log 9), one stuck at 465 (docs/awr.md, with the command behind each number).

The paper's settings (notes 004, "Experimental setup", and the released code, xbpeng/awr awr_configs.py) are the
defaults, each with its source in Args. Where the code departs from the paper's text:
  - DEVIATION (from the paper, as its released code does): the advantages are standardised over the buffer before
    the exponential and β = 1. The paper's β = 0.05 applies to raw advantages, whose scale depends on the task.
    `--no-norm-adv --beta 0.05` gives the paper's form.
  - DEVIATION (from the notes): the value function's SGD step size is 0.01 (the released code and the paper's
    appendix); the notes print 1e-4.
  - TRICK (released code): the policy's σ is fixed, not learned (0.4 in a [−1, 1]-normalised action space), the value
    network's output is scaled by 1/(1 − γ), observation statistics are frozen after 300k samples, and a penalty
    keeps the Gaussian's mean inside the action bounds. Each is commented where it is computed.
  - As the released code: each iteration collects whole episodes (at least `samples_per_iter` steps) and takes SGD
    steps in proportion; the observation statistics take in each iteration's states once, after its fits, divide by
    max(σ, 0.01) and are not clipped. `--no-whole-episodes` and `--obs-norm-update step` give the simpler choices
    (docs/awr.md#what-matched-the-released-code measures each). The env's actions are clipped to the bounds; the
    released code passes the draw unclipped (`--no-clip-actions`).
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
    env: str = "CartPole-v1"
    """gymnasium environment id, e.g. CartPole-v1, InvertedPendulum-v4, Hopper-v4"""
    exp_name: str = "awr"
    """name of this experiment; part of the run directory name"""
    seed: int = 1
    """seed of python, numpy, torch and the environment"""
    total_timesteps: int = 100_000
    """environment steps to train for (online mode; --offline takes none); with --whole-episodes the last iteration
    finishes its episodes, so a run takes up to one episode more"""
    cuda: bool = True
    """update on the GPU when one is available (the rollout's actor runs in numpy on the CPU either way)"""
    torch_deterministic: bool = True
    """make cuDNN deterministic"""
    torch_threads: int = 1
    """CPU threads for torch; 1 is fastest for small MLPs"""
    capture_video: bool = False
    """record the final evaluation episodes to <run dir>/videos (needs moviepy)"""
    save_model: bool = True
    """write <run dir>/model.pt (networks + observation-normalisation statistics)"""
    runs_dir: str = "runs"
    """parent folder of the run directories"""
    eval_episodes: int = 10
    """episodes of the final deterministic evaluation (most likely action, or the Gaussian's mean)"""
    eval_seed: int = 10_000
    """evaluation episode i is reset with seed eval_seed + i (away from the training seeds)"""
    checkpoint: Optional[str] = None
    """skip training: load this model.pt written by awr.py and evaluate it"""
    checkpoint_every: int = 100_000
    """write <run dir>/checkpoint.pt (all that --resume needs) every this many env steps (offline: iterations);
    0: only on Ctrl-C/SIGTERM"""
    resume: Optional[str] = None
    """continue the run in this run directory from its checkpoint.pt, with its own arguments"""

    # --- the weights (notes 004) ---
    weighting: Literal["advantage", "reward"] = "advantage"
    """w = exp((R − V(s))/β) (advantage: AWR) or exp(R/β) (reward: RWR, the paper's ablation)"""
    beta: float = 1.0
    """β, the temperature of the weights (released code: 1 on standardised advantages; the paper: 0.05 on raw ones)"""
    norm_adv: bool = True
    """standardise A (or R, with --weighting reward) over the buffer before exp(·/β) (released code)"""
    weight_clip: float = 20.0
    """w_max: weights are clipped to min(w, w_max) (notes 004; the paper, Fig. 10: "vital" for stability)"""
    gamma: float = 0.99
    """γ, the discount (paper and released code)"""
    td_lambda: float = 0.95
    """λ of the TD(λ) returns R^D (notes 004)"""

    # --- the data ---
    buffer_size: int = 50_000
    """D keeps the most recent samples, about 25 policies' worth (notes 004: 50k)"""
    samples_per_iter: int = 2048
    """new environment steps per iteration (released code: 2,048; the notes: ~2,000)"""
    whole_episodes: bool = True
    """collect whole episodes, at least samples_per_iter steps, scale the iteration's SGD steps by the steps it took
    over samples_per_iter, and drop whole episodes from D (released code); --no-whole-episodes: exactly
    samples_per_iter steps, the episode in progress continuing into the next iteration, D trimmed by sample"""
    offline: bool = False
    """MARWIL: fit on a fixed dataset (--demos, plus --random-episodes) without stepping the environment to train"""
    demos: Optional[str] = None
    """--offline: a demos.npz (CONTRIBUTING.md format); default experts/<env>/demos.npz beside this script"""
    num_demos: Optional[int] = None
    """--offline: use the first this many episodes of the demos (default all)"""
    random_episodes: int = 0
    """--offline: add this many episodes of a uniformly random policy to the dataset (collected before training)"""
    offline_iterations: int = 20
    """--offline: iterations of [S2]–[S3] on the fixed dataset (value and policy fits, each re-bootstrapped)"""

    # --- optimisation (SGD with momentum, minibatches of 256: notes 004) ---
    learning_rate: Optional[float] = None
    """policy SGD step size; default 5e-5 for continuous actions (notes 004; the released code uses 1e-4 on Hopper,
    2.5e-5 on Walker2d) and 5e-4 for discrete ones (the released code's LunarLander)"""
    discrete_learning_rate: float = 5e-4
    """the policy step size --learning-rate stands for when left out, for discrete actions (released code)"""
    continuous_learning_rate: float = 5e-5
    """the policy step size --learning-rate stands for when left out, for continuous actions (notes 004)"""
    value_learning_rate: float = 0.01
    """value SGD step size (released code and paper appendix; the notes print 1e-4: see the docstring)"""
    momentum: float = 0.9
    """SGD momentum of both networks (notes 004)"""
    batch_size: int = 256
    """samples per minibatch (notes 004)"""
    value_steps: int = 200
    """minibatch steps fitting V per iteration (notes 004)"""
    policy_steps: int = 1000
    """minibatch steps fitting π per iteration (notes 004)"""
    hidden_sizes: tuple[int, ...] = (128, 64)
    """hidden ReLU layers of the policy and value networks (released code)"""
    action_std: float = 0.4
    """σ of the Gaussian policy in the [−1, 1]-normalised action space, fixed (released code: 0.4; 0.2 for Ant)"""
    bound_loss_weight: float = 10.0
    """weight of the penalty on the Gaussian's mean leaving the action bounds (released code)"""
    clip_actions: bool = True
    """the env gets the draw clipped to the action bounds; --no-clip-actions passes it as drawn (released code, whose
    MuJoCo envs clamp it themselves but charge the control cost on the unclipped action)"""
    norm_obs: bool = True
    """normalise observations with running mean and variance"""
    obs_norm_update: Literal["iteration", "step"] = "iteration"
    """when the statistics take in new states: once per iteration, after its fits (the first: before them), from
    every state the iteration visited, each episode's last one included (released code: π acts and then learns with
    the same statistics); or at every env step while collecting"""
    obs_norm_samples: int = 300_000
    """the statistics take in the states of the iterations that begin within this many env steps, then are frozen
    (released code)"""
    obs_std_floor: float = 0.01
    """ŝ = (s − μ) / max(σ, obs_std_floor) per dimension (released code: 0.01)"""
    clip_obs: float = math.inf
    """clip normalised observations to ±clip_obs (released code: inf, no clipping)"""


# ── Networks ───────────────────────────────────────────────────────────────────────────────────────
def relu_mlp(in_dim: int, hidden: tuple, out_dim: int, out_scale: Optional[float]) -> nn.Sequential:
    """in_dim -> hidden[0] -> ... -> out_dim with ReLU activations (released code: [128, 64]).

    TRICK (released code): Xavier-initialised hidden layers; out_scale draws the output layer's weights from
    U(−out_scale, out_scale) with zero biases, so that the first policy is nearly uniform (discrete) or centred on the
    middle of the action range (continuous) in every state. out_scale None: Xavier for the output layer too.
    """
    layers, last = [], in_dim
    for size in hidden:
        layers += [nn.Linear(last, size), nn.ReLU()]
        last = size
    layers.append(nn.Linear(last, out_dim))
    for m in layers:
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    if out_scale is not None:
        nn.init.uniform_(layers[-1].weight, -out_scale, out_scale)
    return nn.Sequential(*layers)


def numpy_weights(net: nn.Sequential) -> list:
    """[(Wᵀ, b), ...] of the Linear layers of `net`, as float32 numpy copies on the CPU."""
    return [(m.weight.detach().cpu().numpy().T.copy(), m.bias.detach().cpu().numpy().copy())
            for m in net if isinstance(m, nn.Linear)]


def numpy_relu_mlp(layers: list, x: np.ndarray) -> np.ndarray:
    """The forward pass of relu_mlp() in numpy: ReLU after every layer but the last. x (B, in) -> (B, out)."""
    for i, (w_t, b) in enumerate(layers):
        x = x @ w_t + b
        if i < len(layers) - 1:
            x = np.maximum(x, 0)
    return x


class Agent(nn.Module):
    """The policy π(a|s) and the value function V(s), separate networks.

    Discrete actions: the actor outputs the logits of a categorical π(·|s).
    Continuous actions: the actor outputs the mean μ(s) of a Gaussian N(μ(s), σ²I) over the action normalised to
    [−1, 1] per dimension, ã = (a − centre)/half_range; σ = action_std is fixed (released code: not trained).
    """

    def __init__(self, obs_dim: int, act_dim: int, discrete: bool, hidden: tuple, gamma: float):
        super().__init__()
        self.discrete = discrete
        self.actor = relu_mlp(obs_dim, hidden, act_dim, out_scale=0.01)  # (released code: actor_init_output_scale)
        self.critic = relu_mlp(obs_dim, hidden, 1, out_scale=None)
        # TRICK (released code, its "val_norm"): V(s) = v_net(s) / (1 − γ). Returns of a γ-discounted task are up to
        # r_max/(1 − γ) = 100·r_max, so the network itself regresses numbers of order r_max, and its loss (in these
        # units) and step size do not depend on γ.
        self.value_scale = 1.0 / (1.0 - gamma)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """V(s): (B, obs_dim) -> (B,)"""
        return self.critic(obs).squeeze(-1) * self.value_scale


# ── Algorithm math: small pure functions, one per equation, importable by tests ────────────────────
# Notation (D: the buffer, B = |D| samples in the order they were collected; A = action dim or number of actions):
#   code          symbol                                              shape
#   obs           s_t (normalised)                                    (B, obs_dim)
#   actions       a_t (ã_t ∈ [−1, 1]-normalised units if continuous)  (B, A) continuous, (B,) discrete
#   rewards       r_t                                                 (B,)
#   next_values   V(s_{t+1}), the value of the state after step t     (B,)
#   terminations  1 where s_{t+1} is terminal (V(s_{t+1}) = 0)        (B,)
#   ends          1 where the sample is the last of its stretch in D: (B,)
#                 the episode ended (terminated or truncated), or D ends there
#   returns       R^D_t, the TD(λ) return                             (B,)
#   adv           A_t = R^D_t − V(s_t)                                (B,)
#   weights       w_t = min(exp(A_t/β), w_max)                        (B,)
#   logp          log π(a_t|s_t)                                      (B,)
LOG_2PI = float(np.log(2 * np.pi))


def gaussian_log_prob(a: torch.Tensor, mu: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """Diagonal Gaussian: a, mu (B, A); log_std (A,) or (B, A) -> (B,)"""
    # log π(a|s) = Σ_i [ −½ ((a_i − μ_i)/σ_i)² − log σ_i − ½ log 2π ]
    z = (a - mu) * torch.exp(-log_std)
    return (-0.5 * z.pow(2) - log_std - 0.5 * LOG_2PI).sum(-1)


def categorical_log_prob(logits: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """logits (B, A), a (B,) integer -> (B,)"""
    # log π(a|s) = logits_a − log Σ_b exp(logits_b)
    return torch.log_softmax(logits, dim=-1).gather(-1, a.long().unsqueeze(-1)).squeeze(-1)


def gumbel_max_sample(logits: np.ndarray, u: np.ndarray) -> np.ndarray:
    """A sample of softmax(logits) per row from uniform noise u ~ U(0,1); (N, A), (N, A) -> (N,) int64."""
    # TRICK (Gumbel-max): argmax_a(logits_a + g_a) with g_a = −log(−log u_a) is distributed as softmax(logits).
    return np.argmax(logits - np.log(-np.log(u)), axis=-1)


def td_lambda_returns(rewards: np.ndarray, next_values: np.ndarray, terminations: np.ndarray, ends: np.ndarray,
                      gamma: float, lam: float) -> np.ndarray:
    """R^λ_t for every sample of stretches of episodes laid end to end; all (B,) -> (B,) float64.

    The λ-return is the (1 − λ)λ^{n−1}-weighted average of the n-step returns
        G^(n)_t = r_t + γ r_{t+1} + ... + γ^{n−1} r_{t+n−1} + γ^n V(s_{t+n}),
    with the weight of every n that would run past the stretch's last step T given to the longest one, G^(T−t+1)_t
    (tests/test_awr_math.py checks this against that sum). It satisfies the recursion computed here (notes 004:
    "TD(λ) with V_{k−1} as bootstrap"; Sutton & Barto eq. 12.18):
        R_t = r_t + γ·[(1 − λ)·V(s_{t+1}) + λ·R_{t+1}]        inside a stretch
        R_T = r_T + γ·V(s_{T+1})                               at its last step (a truncated episode, or the end of D)
    and V(s_{t+1}) = 0 where s_{t+1} is terminal. λ = 1 is the Monte-Carlo return bootstrapped only at the cut;
    λ = 0 the one-step TD target.
    GOTCHA: a time limit (truncation) is not a terminal state. Its V(s_{T+1}) stands for the rewards the episode
    would have gone on to collect; setting it to 0 would teach V that states near the time limit are worth less.
    """
    assert rewards.shape == next_values.shape == terminations.shape == ends.shape and rewards.ndim == 1
    returns = np.zeros(len(rewards), np.float64)  # (B,)
    r, v = rewards.astype(np.float64).tolist(), next_values.astype(np.float64).tolist()
    term, end = terminations.astype(bool).tolist(), ends.astype(bool).tolist()
    following = 0.0  # R_{t+1}
    for t in reversed(range(len(r))):  # (a Python loop over floats: fast enough for a 50k-sample buffer)
        v_next = 0.0 if term[t] else v[t]
        if end[t]:
            following = r[t] + gamma * v_next
        else:
            following = r[t] + gamma * ((1.0 - lam) * v_next + lam * following)
        returns[t] = following
    return returns


def standardize(x: np.ndarray) -> np.ndarray:
    """(x − mean) / (std + 1e-5) over the buffer (the 1e-5 avoids 0/0 when all values are equal; released code)."""
    return (x - x.mean()) / (x.std() + 1e-5)


def awr_weights(adv: np.ndarray, beta: float, w_max: float) -> np.ndarray:
    """w = min(exp(A/β), w_max), computed without overflow; (B,) -> (B,).

    GOTCHA: exp(A/β) overflows float64 once A/β > 709 (and float32 at 88), easy with β = 0.05 on raw returns. Since
    exp is increasing, min(exp(x), w_max) = exp(min(x, log w_max)): clip in log space, then exponentiate.
    """
    return np.exp(np.minimum(adv / beta, math.log(w_max)))


def effective_sample_size(w: np.ndarray) -> float:
    """(Σ w)² / Σ w², in [1, B]: how many samples the weighted fit effectively learns from (B: all equally, as in
    behaviour cloning; near 1: a few samples dominate, β too small)."""
    return float(w.sum() ** 2 / np.square(w).sum())


def weighted_nll(logp: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """−(1/m) Σ log π(a|s)·w: the weighted maximum likelihood of notes 004, to minimise; (m,), (m,) -> scalar.

    With the fixed σ of the Gaussian, −log π = ‖ã − μ(s)‖²/(2σ²) + const: a weighted MSE regression of the actions,
    the notes' RWR loss for a deterministic policy. With all w = 1 it is behaviour cloning.
    """
    assert logp.shape == weights.shape and logp.ndim == 1
    assert not weights.requires_grad, "the weights are numbers: no gradient may flow into V through them"
    return -(logp * weights).mean()


def action_bound_loss(mu: torch.Tensor) -> torch.Tensor:
    """½·mean_b Σ_i (max(μ_i − 1, 0)² + min(μ_i + 1, 0)²): how far the Gaussian's mean is outside [−1, 1]; (B, A) -> ()

    TRICK (released code, its _action_bound_loss): the environment clips actions to the bounds, so a mean outside
    them looks as good as the bound itself, and an unclipped Gaussian can drift there, where all its samples clip to
    the same action and exploration stops. The penalty keeps μ(s) inside.
    """
    violation = torch.clamp(mu - 1, min=0).pow(2) + torch.clamp(mu + 1, max=0).pow(2)  # (B, A)
    return 0.5 * violation.sum(-1).mean()


def value_loss(v: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """½·mean (V(s) − R)², the regression V ← argmin E‖R − V(s)‖² of notes 004; (B,) -> scalar."""
    assert v.shape == targets.shape
    return 0.5 * (v - targets).pow(2).mean()


def explained_variance(pred: np.ndarray, target: np.ndarray) -> float:
    """1 − Var[target − pred] / Var[target]: 1 is a perfect V, ≤ 0 is no better than a constant."""
    var = np.var(target)
    return float("nan") if var == 0 else float(1 - np.var(target - pred) / var)


def normalize_obs(obs: np.ndarray, rms: Optional[RunningMeanStd], clip: float, std_floor: float) -> np.ndarray:
    """ŝ = clip((s − μ) / max(σ, σ_min), −c, c), as float32; identity without statistics."""
    if rms is None:
        return obs.astype(np.float32)
    # TRICK: observation normalisation (the released code's state normaliser): MuJoCo observations mix positions and
    # velocities of very different scales; an MLP learns much faster on unit-scale inputs. The floor σ_min keeps a
    # dimension that has barely moved yet (a joint at rest) from being blown up by a tiny σ.
    return np.clip((obs - rms.mean) / np.maximum(np.sqrt(rms.var), std_floor), -clip, clip).astype(np.float32)


def episode_states(obs: np.ndarray, next_obs: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Every state a stretch of steps visited: each s_t, and s_{T+1} after each episode's last step; (n, obs_dim),
    (n, obs_dim), (n,) -> (n + number of ends, obs_dim), in the order they were visited (released code: a path's
    states)."""
    last = np.flatnonzero(ends)  # steps after which an episode ended
    return np.insert(obs, last + 1, next_obs[last], axis=0)


def whole_episodes_start(ends: np.ndarray, size: int) -> int:
    """The first sample to keep so that D holds at most `size` samples of whole episodes, the most recent ones:
    the start of the oldest episode that fits (the last episode whole, even when it alone is longer); (n,) -> index."""
    starts = np.flatnonzero(np.concatenate([[True], ends[:-1]]))  # where each episode in D begins
    return int(starts[min(np.searchsorted(starts, len(ends) - size), len(starts) - 1)])


def episodes_to_buffer(steps: dict, discrete: bool, centre, half_range) -> dict:
    """Per-step arrays of run_episodes / demos.npz (env actions) -> D's columns (ã in [−1, 1] units if continuous).

    ã = (a − centre)/half_range: the inverse of the map the policy's actions go through on their way to the env.
    """
    return {"obs": steps["observations"].astype(np.float32),
            "actions": (steps["actions"].astype(np.int64) if discrete
                        else ((steps["actions"] - centre) / half_range).astype(np.float32)),
            "rewards": steps["rewards"].astype(np.float64),
            "next_obs": steps["next_observations"].astype(np.float32),
            "terminations": steps["terminations"].astype(bool),
            "ends": (steps["terminations"] | steps["truncations"]).astype(bool)}


def minibatch_indices(n: int, batch_size: int, steps: int, generator: torch.Generator) -> torch.Tensor:
    """(steps, batch_size) indices into n samples: shuffled passes over all n, one after another (released code).

    Every sample is visited once per pass; a minibatch that spans the end of one pass takes the rest from the next.
    """
    passes = -(-steps * batch_size // n)  # ⌈steps·batch/n⌉
    order = torch.cat([torch.randperm(n, generator=generator) for _ in range(passes)])  # (passes·n,)
    return order[: steps * batch_size].view(steps, batch_size)


# ── Training loop [S1 collect -> S2 TD(λ) returns -> S3 fit V, then π -> S4 log] ───────────────────
def main(args: Args) -> dict:
    """Train (or load --checkpoint), evaluate, save; returns the summary written to summary.json."""
    resumed = None  # the checkpoint.pt of the run that --resume continues
    if args.resume is not None:
        args, resumed = resume_args(args, "awr.py")
    check_args(args)
    make_output_folder(args.runs_dir)  # now, so that a bad path fails before training
    if args.capture_video and "DISPLAY" not in os.environ:
        # GOTCHA: MuJoCo renders through GLFW by default, which needs a screen; headless machines use EGL.
        os.environ.setdefault("MUJOCO_GL", "egl")
    seed_everything(args.seed, args.torch_deterministic)
    torch.set_num_threads(args.torch_threads)
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")

    env = make_env(args.env)
    obs_dim, act_dim, discrete = check_spaces(env, args.env)
    low, high = (None, None) if discrete else (env.action_space.low, env.action_space.high)
    if not discrete and not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        raise UserError(f"{args.env} has unbounded actions; AWR's Gaussian lives in the action range normalised to [−1, 1]")
    centre, half_range = (None, None) if discrete else ((high + low) / 2, (high - low) / 2)  # (A,), (A,)
    dataset = None
    if args.offline and args.checkpoint is None:  # read the data before anything is written
        demos_path = args.demos or default_expert_path(args.env, "demos.npz")
        dataset = load_demos(demos_path, args.env, obs_dim, act_dim, discrete)
        if args.num_demos is not None and args.num_demos > len(dataset["episode_lengths"]):
            raise UserError(f"--num-demos {args.num_demos}: '{demos_path}' holds only "
                            f"{len(dataset['episode_lengths'])} episodes")

    agent = Agent(obs_dim, act_dim, discrete, args.hidden_sizes, args.gamma).to(device)
    obs_rms = RunningMeanStd((obs_dim,)) if args.norm_obs else None
    if args.checkpoint is not None:  # (before the run directory exists, so a bad file leaves no empty run behind)
        # (load_checkpoint takes the network sizes and clip_obs from the file: args.json records what this run used)
        agent, obs_rms = load_checkpoint(args.checkpoint, args, obs_dim, act_dim, discrete, device)

    if resumed is None:
        run_dir = os.path.join(args.runs_dir, f"{args.env}__{args.exp_name}__{args.seed}__{int(time.time())}")
        os.makedirs(run_dir, exist_ok=True)
        atomic_write_text(os.path.join(run_dir, "args.json"), json.dumps(dataclasses.asdict(args), indent=2))
    else:
        run_dir = args.resume
    # purge_step: TensorBoard drops what an interrupted run logged after its checkpoint, so the curves join up
    writer = SummaryWriter(run_dir, purge_step=None if resumed is None else resumed["log_step"] + 1)
    if resumed is None:
        writer.add_text("hyperparameters",
                        "|param|value|\n|-|-|\n" + "\n".join(f"|{k}|{v}|" for k, v in vars(args).items()))

    log_std = torch.full((act_dim,), math.log(args.action_std), device=device)  # log σ, (A,), fixed
    train_returns: list = []
    global_step, iteration, extra, start_time = 0, 0, {}, time.time()

    if args.checkpoint is not None:  # --checkpoint: evaluate the saved model; nothing to train
        env.close()
        train_time = time.time() - start_time
        extra["iterations"] = iteration
        summary = finish(args, run_dir, writer, agent, obs_rms, discrete, low, high, global_step, train_time,
                         train_returns, extra)
        writer.close()
        return summary

    if args.learning_rate is None:
        args.learning_rate = args.discrete_learning_rate if discrete else args.continuous_learning_rate
        atomic_write_text(os.path.join(run_dir, "args.json"), json.dumps(dataclasses.asdict(args), indent=2))
    optimizer = torch.optim.SGD(agent.actor.parameters(), lr=args.learning_rate, momentum=args.momentum)
    value_optimizer = torch.optim.SGD(agent.critic.parameters(), lr=args.value_learning_rate, momentum=args.momentum)
    noise_rng = np.random.default_rng(args.seed)
    batch_gen = torch.Generator().manual_seed(args.seed)
    act_shape = (0,) if discrete else (0, act_dim)
    # D, in the order the samples were collected (raw observations: the normalisation may still change).
    buf = {"obs": np.zeros((0, obs_dim), np.float32), "actions": np.zeros(act_shape, np.int64 if discrete else np.float32),
           "rewards": np.zeros(0), "next_obs": np.zeros((0, obs_dim), np.float32),
           "terminations": np.zeros(0, bool), "ends": np.zeros(0, bool)}

    if args.offline:
        # The fixed dataset: the first --num-demos expert episodes, then --random-episodes of a random policy.
        keep = int(dataset["episode_lengths"][: args.num_demos].sum())  # steps of the first m episodes
        parts = [episodes_to_buffer({k: v[:keep] for k, v in dataset.items() if k != "metadata"},
                                    discrete, centre, half_range)]
        demo_returns = dataset["episode_returns"][: args.num_demos]
        if args.random_episodes:
            env.action_space.seed(args.seed)
            # (reset seeds drawn from --seed, so that different seeds do not share most of their episodes)
            first_reset = int(noise_rng.integers(np.iinfo(np.int32).max - args.random_episodes))
            randoms = run_episodes(lambda o: np.asarray([env.action_space.sample()]), args.env,
                                   args.random_episodes, seed=first_reset)
            parts.append(episodes_to_buffer(randoms, discrete, centre, half_range))
            extra["random_return"] = float(randoms["episode_returns"].mean())
        buf = {k: np.concatenate([p[k] for p in parts]) for k in buf}
        if obs_rms is not None:
            obs_rms.update(buf["obs"].astype(np.float64))
        extra.update(dataset_steps=len(buf["rewards"]), demo_episodes=len(demo_returns),
                     demo_return=float(demo_returns.mean()), random_episodes=args.random_episodes)
        print(f"offline dataset: {len(demo_returns)} demos (return {demo_returns.mean():.1f})"
              + (f" + {args.random_episodes} random episodes (return {extra['random_return']:.1f})"
                 if args.random_episodes else "") + f", {len(buf['rewards']):,} samples", flush=True)
    else:
        raw_obs, _ = env.reset(seed=args.seed)  # later resets continue the env's own seeded generator
        ep_return, ep_length = 0.0, 0

    start_iteration = 0
    if resumed is not None:  # --resume: put back everything the loop carries from one iteration to the next
        set_rng_states(resumed["rng"])
        agent.load_state_dict(resumed["agent"])
        optimizer.load_state_dict(resumed["optimizer"])
        value_optimizer.load_state_dict(resumed["value_optimizer"])
        if obs_rms is not None:
            vars(obs_rms).update(resumed["obs_rms"])
        noise_rng, buf, extra = resumed["noise_rng"], resumed["buffer"], resumed["extra"]
        batch_gen.set_state(resumed["batch_gen"])
        global_step, iteration, train_returns = resumed["global_step"], resumed["iteration"], resumed["train_returns"]
        start_iteration, start_time = iteration, time.time() - resumed["train_time"]
        if not args.offline:
            env.close()
            env, raw_obs = set_env_state(resumed["env"]), resumed["raw_obs"]
            ep_return, ep_length = resumed["ep_return"], resumed["ep_length"]

    with StopSignals() as stop:  # Ctrl-C or SIGTERM: finish this iteration, write checkpoint.pt, stop
        while (iteration < args.offline_iterations) if args.offline else (global_step < args.total_timesteps):
            # Safe point, before iteration `iteration + 1` (online, the episode in progress continues after it).
            progress, stride = (iteration, 1) if args.offline else (global_step, args.samples_per_iter)
            if iteration > start_iteration and (stop.received or checkpoint_due(progress - stride, progress,
                                                                                args.checkpoint_every)):
                check_finite(run_dir, progress, **{"the networks": agent},
                             **({} if obs_rms is None else {"the observation statistics": obs_rms.var}))
                save_training_state(run_dir, {
                    "script": "awr.py", "iteration": iteration, "global_step": global_step, "log_step": progress,
                    "train_time": time.time() - start_time, "agent": agent.state_dict(),
                    "optimizer": optimizer.state_dict(), "value_optimizer": value_optimizer.state_dict(),
                    "obs_rms": None if obs_rms is None else vars(obs_rms), "noise_rng": noise_rng,
                    "batch_gen": batch_gen.get_state(), "buffer": buf, "extra": extra, "train_returns": train_returns,
                    **({} if args.offline else {"env": env_state(env), "raw_obs": raw_obs, "ep_return": ep_return,
                                                "ep_length": ep_length})})
                if stop.received:
                    writer.close()
                    raise Interrupted(stop_line("awr.py", stop.received, progress, run_dir))
            iteration += 1
            fresh_states = None  # states for the observation statistics, taken in after this iteration's fits
            if not args.offline:
                # [S1] run π_{k−1} for samples_per_iter steps, then on to the end of the episode in progress
                # (--no-whole-episodes: that episode continues into the next batch instead).
                # TRICK: the actor runs in numpy on a copy of its weights (several times faster per step than a torch
                # module call at batch size 1, as in ppo.py); π is fixed until [S3].
                actor_np = numpy_weights(agent.actor)
                new = {k: [] for k in buf}
                steps_before = global_step
                # (--whole-episodes: on past samples_per_iter until the episode in progress ends; an iteration then
                # always starts with a reset)
                while (global_step - steps_before < args.samples_per_iter
                       or (args.whole_episodes and ep_length > 0)):
                    if obs_rms is not None and args.obs_norm_update == "step" and global_step < args.obs_norm_samples:
                        obs_rms.update(np.asarray(raw_obs, np.float64)[None])
                    # a_t ~ π_θ(·|s_t), the policy's sample: the actor's output on s_t (from its numpy copy, the same
                    # numbers as the torch network), then a draw from the distribution it parametrises:
                    out = numpy_relu_mlp(actor_np, normalize_obs(np.asarray(raw_obs)[None], obs_rms, args.clip_obs,
                                                                 args.obs_std_floor))
                    if discrete:
                        action = gumbel_max_sample(out, noise_rng.random(out.shape))[0]  # a_t ~ softmax(logits)
                        env_action = action
                    else:
                        # ã_t = μ(s_t) + σ·ε, ε ~ N(0, I); the env gets a_t = clip(centre + half_range·ã_t)
                        action = (out + args.action_std * noise_rng.standard_normal(out.shape, dtype=np.float32))[0]
                        # GOTCHA: D keeps the sampled ã_t, not the clipped one: log π must be the density of what the
                        # Gaussian drew.
                        env_action = centre + half_range * action
                        if args.clip_actions:
                            env_action = np.clip(env_action, low, high)
                    next_raw, reward, terminated, truncated, _ = env.step(env_action)
                    for key, value in zip(new, (raw_obs, action, reward, next_raw, terminated, terminated or truncated)):
                        new[key].append(value)
                    global_step += 1
                    ep_return, ep_length = ep_return + float(reward), ep_length + 1
                    raw_obs = next_raw
                    if terminated or truncated:
                        train_returns.append(ep_return)
                        writer.add_scalar("charts/episodic_return", ep_return, global_step)
                        writer.add_scalar("charts/episodic_length", ep_length, global_step)
                        raw_obs, _ = env.reset()
                        ep_return, ep_length = 0.0, 0
                new = {k: np.asarray(new[k], dtype=buf[k].dtype) for k in buf}
                new_steps = len(new["rewards"])  # samples_per_iter, or more with --whole-episodes
                # D ← the buffer_size most recent samples of D ∪ new (--whole-episodes: of whole episodes)
                buf = {k: np.concatenate([buf[k], new[k]]) for k in buf}
                first = (whole_episodes_start(buf["ends"], args.buffer_size) if args.whole_episodes
                         else max(0, len(buf["ends"]) - args.buffer_size))
                buf = {k: v[first:] for k, v in buf.items()}
                # The states this iteration visited, for the statistics (--obs-norm-update iteration): the first
                # iteration's before its fits (there are no statistics yet), the others' after them, so that π
                # learns with the statistics it acted with.
                if obs_rms is not None and args.obs_norm_update == "iteration" and steps_before < args.obs_norm_samples:
                    fresh_states = episode_states(new["obs"], new["next_obs"], new["ends"]).astype(np.float64)
                    if steps_before == 0:
                        obs_rms.update(fresh_states)
                        fresh_states = None

            # (TensorBoard's x axis: env steps online; offline, where no step is taken, the iteration)
            log_step = iteration if args.offline else global_step

            # [S2] R^D: TD(λ) returns of every sample in D, bootstrapped with V_{k−1}.
            obs = torch.from_numpy(normalize_obs(buf["obs"], obs_rms, args.clip_obs, args.obs_std_floor)).to(device)
            next_obs = torch.from_numpy(normalize_obs(buf["next_obs"], obs_rms, args.clip_obs,
                                                      args.obs_std_floor)).to(device)  # (B, obs_dim) each
            actions = torch.from_numpy(buf["actions"]).to(device)  # (B,) or (B, A)
            ends = buf["ends"].copy()
            ends[-1] = True  # D ends here: the episode in progress is bootstrapped with V(s_{t+1}) for now

            def lambda_returns() -> tuple:
                """(R^D (B,), V(s) (B,)) with the current V."""
                with torch.no_grad():
                    v, v_next = agent.value(obs).cpu().numpy(), agent.value(next_obs).cpu().numpy()
                return td_lambda_returns(buf["rewards"], v_next, buf["terminations"], ends,
                                         args.gamma, args.td_lambda), v

            returns, values = lambda_returns()
            n = len(returns)
            # (--whole-episodes: the SGD steps grow with the iteration's samples, as in the released code)
            step_scale = 1.0 if args.offline else new_steps / args.samples_per_iter
            value_steps, policy_steps = math.ceil(args.value_steps * step_scale), math.ceil(args.policy_steps * step_scale)

            # [S3a] V_k ← argmin_V E_D[‖R^D − V(s)‖²], by value_steps SGD steps on minibatches.
            targets = torch.as_tensor(returns, dtype=torch.float32, device=device)  # (B,)
            for idx in minibatch_indices(n, args.batch_size, value_steps, batch_gen).to(device):
                # (the loss in units of the network's output, v_net = V·(1 − γ): see value_scale)
                v_loss = value_loss(agent.value(obs[idx]), targets[idx]) / agent.value_scale ** 2
                value_optimizer.zero_grad()
                v_loss.backward()
                value_optimizer.step()
            writer.add_scalar("losses/value_loss", v_loss.item(), log_step)
            # explained_variance ≤ 0: V predicts nothing of the returns, and the advantages are the returns' noise.
            writer.add_scalar("losses/explained_variance", explained_variance(values, returns), log_step)

            # The weights, with the new V_k (the released code recomputes R^D as well).
            returns, values = lambda_returns()
            # A_t = R^D_t − V_k(s_t)  (AWR);   RWR weights the return itself.
            adv = returns - values if args.weighting == "advantage" else returns
            writer.add_scalar("losses/adv_mean", float(adv.mean()), log_step)
            writer.add_scalar("losses/adv_std", float(adv.std()), log_step)
            if args.norm_adv:
                adv = standardize(adv)
            # w = min(exp(A/β), w_max)
            weights = awr_weights(adv, args.beta, args.weight_clip)  # (B,)
            # clip_fraction near 1: β too small for these advantages; ESS/B near 0: a handful of samples decide π.
            writer.add_scalar("losses/weight_mean", float(weights.mean()), log_step)
            writer.add_scalar("losses/clip_fraction", float((adv / args.beta >= math.log(args.weight_clip)).mean()),
                              log_step)
            writer.add_scalar("losses/ess_fraction", effective_sample_size(weights) / n, log_step)
            b_weights = torch.as_tensor(weights, dtype=torch.float32, device=device)

            # [S3b] π_k ← argmax_π E_D[log π(a|s)·w], by policy_steps SGD steps on minibatches.
            for idx in minibatch_indices(n, args.batch_size, policy_steps, batch_gen).to(device):
                out = agent.actor(obs[idx])  # logits or μ(s), (m, A)
                if discrete:
                    logp = categorical_log_prob(out, actions[idx])
                    loss = weighted_nll(logp, b_weights[idx])
                else:
                    logp = gaussian_log_prob(actions[idx], out, log_std)
                    loss = weighted_nll(logp, b_weights[idx]) + args.bound_loss_weight * action_bound_loss(out)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            writer.add_scalar("losses/policy_loss", loss.item(), log_step)
            check_finite(run_dir, log_step,
                         **{"the value loss": v_loss, "the policy loss": loss, "the networks": agent})

            if fresh_states is not None:
                obs_rms.update(fresh_states)

            # [S4] log.
            writer.add_scalar("charts/iteration", iteration, log_step)
            if args.offline:
                print(f"iteration {iteration:>4}  value loss {v_loss.item():.4f}  ESS {effective_sample_size(weights):,.0f}"
                      f"/{n:,}", flush=True)
                continue
            sps = int(global_step / (time.time() - start_time))
            writer.add_scalar("charts/SPS", sps, log_step)
            recent = train_returns[-100:]
            print(f"step {global_step:>9,}  return(last {len(recent)}) "
                  f"{np.mean(recent) if recent else float('nan'):9.1f}  ESS {effective_sample_size(weights) / n:.2f}  "
                  f"SPS {sps:,}", flush=True)

    env.close()

    train_time = time.time() - start_time
    extra["iterations"] = iteration
    summary = finish(args, run_dir, writer, agent, obs_rms, discrete, low, high, global_step, train_time,
                     train_returns, extra)
    writer.close()
    return summary


# ── Evaluation ─────────────────────────────────────────────────────────────────────────────────────
class DeterministicPolicy(nn.Module):
    """The policy a user deploys: raw observation -> action, with the observation normalisation baked in.

    Continuous: the Gaussian's mean, mapped from [−1, 1] back to the action bounds and clipped to them.
    Discrete: the most likely action.
    """

    def __init__(self, actor: nn.Module, obs_rms: Optional[RunningMeanStd], clip_obs: float, discrete: bool,
                 low: Optional[np.ndarray], high: Optional[np.ndarray], std_floor: float = 0.01):
        super().__init__()
        self.actor = copy.deepcopy(actor).cpu().eval()
        for p in self.actor.parameters():
            p.requires_grad_(False)
        self.discrete, self.normalize, self.clip_obs = discrete, obs_rms is not None, clip_obs
        if obs_rms is not None:
            self.register_buffer("obs_mean", torch.as_tensor(obs_rms.mean, dtype=torch.float32))
            # max(σ, σ_min), as normalize_obs divides by
            self.register_buffer("obs_std", torch.as_tensor(np.maximum(np.sqrt(obs_rms.var), std_floor),
                                                            dtype=torch.float32))
        if not discrete:
            self.register_buffer("low", torch.as_tensor(low, dtype=torch.float32))
            self.register_buffer("high", torch.as_tensor(high, dtype=torch.float32))

    def actor_output(self, obs: torch.Tensor) -> torch.Tensor:
        """The actor on the normalised observation: obs (B, obs_dim) -> logits or the Gaussian's mean μ, (B, A)."""
        x = obs
        if self.normalize:
            x = torch.clamp((obs - self.obs_mean) / self.obs_std, -self.clip_obs, self.clip_obs)
        return self.actor(x)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """obs (B, obs_dim) float32 -> actions (B, act_dim) float32, or (B,) int64 for discrete."""
        out = self.actor_output(obs)
        if self.discrete:
            return out.argmax(dim=-1)
        # a = centre + half_range · μ(s)
        action = (self.high + self.low) / 2 + (self.high - self.low) / 2 * out
        return torch.maximum(torch.minimum(action, self.high), self.low)


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
           discrete: bool, low, high, global_step: int, train_time: float, train_returns: list, extra: dict) -> dict:
    """model.pt, then the final deterministic evaluation, summary.json."""
    # model.pt first: a failure in the evaluation (a missing video codec, an env error) must not lose the training
    if args.save_model and args.checkpoint is None:
        atomic_torch_save({
            "script": "awr.py", "env": args.env, "args": dataclasses.asdict(args),
            "agent": {k: v.detach().cpu().clone() for k, v in agent.state_dict().items()},
            # tensors, not numpy arrays, so that torch.load(weights_only=True) can read the file without unpickling code
            "obs_rms": None if obs_rms is None else {"mean": torch.from_numpy(obs_rms.mean),
                                                     "var": torch.from_numpy(obs_rms.var),
                                                     "count": float(obs_rms.count)},
        }, os.path.join(run_dir, "model.pt"))
        remove_checkpoint(run_dir)
    policy = DeterministicPolicy(agent.actor, obs_rms, args.clip_obs, discrete, low, high, args.obs_std_floor)
    video_dir = os.path.join(run_dir, "videos") if args.capture_video else None
    evaluation = run_episodes(torch_policy(policy), args.env, args.eval_episodes, args.eval_seed, video_dir)
    eval_returns = evaluation["episode_returns"]
    if len(eval_returns):
        writer.add_scalar("eval/return", float(eval_returns.mean()), global_step)


    summary = {
        "script": "awr.py", "env": args.env, "seed": args.seed, "env_steps": global_step,  # 0 offline
        "wall_time_s": round(train_time, 1), "sps": round(global_step / train_time) if global_step else 0,
        "eval_episodes": len(eval_returns),
        "eval_return_mean": float(eval_returns.mean()) if len(eval_returns) else None,
        "eval_return_std": float(eval_returns.std()) if len(eval_returns) else None,
        "eval_returns": [float(r) for r in eval_returns],
        "train_return_last100": float(np.mean(train_returns[-100:])) if train_returns else None,
        "checkpoint": args.checkpoint, "run_dir": run_dir,
        **extra,
    }
    if "demo_return" in extra and len(eval_returns):
        # eval return / the demos' return; only meaningful when returns are positive (not for Pendulum's costs)
        summary["expert_fraction"] = (summary["eval_return_mean"] / extra["demo_return"]
                                      if extra["demo_return"] > 0 else None)
        if summary["expert_fraction"] is not None:
            print(f"fraction of the demos' return ({extra['demo_return']:.1f}): {summary['expert_fraction']:.3f}")
        # 0 = a uniform random policy, 1 = the demonstrator, on the same evaluation seeds
        demos_path = args.demos or default_expert_path(args.env, "demos.npz")
        summary["normalized_score"] = normalized_score(eval_returns, demos_path, args.eval_seed)
        if summary["normalized_score"] is not None:
            print(f"normalised score (random policy 0, demonstrator 1): {summary['normalized_score']:.3f}")
    atomic_write_text(os.path.join(run_dir, "summary.json"), json.dumps(summary, indent=2))
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
    rules = [
        (args.beta > 0, "--beta must be positive"),
        (args.weight_clip > 0, "--weight-clip must be positive"),
        (0 <= args.gamma < 1, "--gamma must be in [0, 1) (the value network's output is scaled by 1/(1 − γ))"),
        (0 <= args.td_lambda <= 1, "--td-lambda must be in [0, 1]"),
        (args.samples_per_iter >= 1 and args.buffer_size >= args.samples_per_iter,
         f"--buffer-size ({args.buffer_size}) must hold at least one iteration's samples (--samples-per-iter "
         f"{args.samples_per_iter} ≥ 1)"),
        (args.offline or args.checkpoint is not None or args.total_timesteps >= args.samples_per_iter,
         f"--total-timesteps ({args.total_timesteps}) is smaller than one iteration (--samples-per-iter "
         f"{args.samples_per_iter})"),
        (args.offline or (args.demos is None and args.num_demos is None and args.random_episodes == 0),
         "--demos, --num-demos and --random-episodes describe the fixed dataset of --offline: add --offline"),
        (args.num_demos is None or args.num_demos >= 1, "--num-demos must be at least 1"),
        (args.random_episodes >= 0, "--random-episodes must be >= 0"),
        (args.offline_iterations >= 1, "--offline-iterations must be at least 1"),
        ((args.learning_rate is None or args.learning_rate > 0) and args.value_learning_rate > 0,
         "--learning-rate and --value-learning-rate must be positive"),
        (0 <= args.momentum < 1, "--momentum must be in [0, 1)"),
        (args.batch_size >= 1 and args.value_steps >= 1 and args.policy_steps >= 1,
         "--batch-size, --value-steps and --policy-steps must be at least 1"),
        (len(args.hidden_sizes) >= 1 and min(args.hidden_sizes) >= 1, "--hidden-sizes needs at least one positive size"),
        (args.action_std > 0, "--action-std must be positive"),
        (args.bound_loss_weight >= 0, "--bound-loss-weight must be >= 0"),
        (args.eval_episodes >= 0, "--eval-episodes must be >= 0"),
        (args.torch_threads >= 1, "--torch-threads must be at least 1"),
        (args.clip_obs > 0, "--clip-obs must be positive (inf: no clipping)"),
        (args.obs_std_floor > 0, "--obs-std-floor must be positive (it is the least σ normalised observations are "
                                 "divided by)"),
        (not args.norm_obs or args.obs_norm_samples >= 1,
         "--obs-norm-samples must be at least 1 (or pass --no-norm-obs to leave observations as they are)"),
    ]
    if args.checkpoint_every < 0:
        raise UserError("--checkpoint-every must be >= 0 (0: checkpoints only on Ctrl-C or SIGTERM)")
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


def load_checkpoint(path: str, args: Args, obs_dim: int, act_dim: int, discrete: bool, device: torch.device):
    """Rebuild the agent and observation statistics from a model.pt written by this script."""
    if not os.path.isfile(path):
        raise UserError(f"checkpoint '{path}' does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        # (torch's message runs to several lines; its first says what failed)
        raise UserError(f"cannot read checkpoint '{path}' as a model.pt written by awr.py: "
                        f"{str(err).strip().splitlines()[0][:200]}") from None
    if not isinstance(ckpt, dict) or ckpt.get("script") != "awr.py":
        raise UserError(f"'{path}' is not a model.pt written by awr.py")
    if ckpt["env"] != args.env:
        raise UserError(f"checkpoint '{path}' was trained on {ckpt['env']}, not {args.env} (pass --env {ckpt['env']})")
    args.hidden_sizes, args.clip_obs, args.gamma = tuple(ckpt["args"]["hidden_sizes"]), ckpt["args"]["clip_obs"], ckpt["args"]["gamma"]
    # (a model.pt from before the floor was an option divided by √(σ² + 1e-8), which a floor of 1e-4 matches closely)
    args.obs_std_floor = ckpt["args"].get("obs_std_floor", 1e-4)
    agent = Agent(obs_dim, act_dim, discrete, args.hidden_sizes, args.gamma).to(device)
    agent.load_state_dict(ckpt["agent"])
    obs_rms = None
    if ckpt["obs_rms"] is not None:
        obs_rms = RunningMeanStd((obs_dim,))
        obs_rms.mean, obs_rms.var = ckpt["obs_rms"]["mean"].numpy(), ckpt["obs_rms"]["var"].numpy()
        obs_rms.count = ckpt["obs_rms"]["count"]
    return agent, obs_rms


if __name__ == "__main__":
    try:
        main(tyro.cli(Args))
    except UserError as err:
        sys.exit(f"awr.py: error: {err}")
    except Interrupted as err:
        print(err, file=sys.stderr)
        sys.exit(130)
    except KeyboardInterrupt:
        print("awr.py: interrupted; the run directory keeps its last checkpoint.pt, if one was written",
              file=sys.stderr)
        sys.exit(130)
