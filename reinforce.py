"""REINFORCE: the score-function policy gradient, with reward-to-go and baselines, for discrete and continuous actions.

Paper: Williams, "Simple statistical gradient-following algorithms for connectionist reinforcement learning"
(Machine Learning, 1992). Lecture notes: ../shared/seeds 003 (the REINFORCE algorithm, Gaussian policies,
reward-to-go, the average-return baseline, the "pseudo-loss" with autodiff) and 002 (the derivation, the
value-function baseline and the advantage).

The objective is the expected return of a trajectory τ = (s_1, a_1, ..., s_T, a_T) sampled by running π_θ:
    J(θ) = E_{τ∼π_θ}[ r(τ) ],   r(τ) = Σ_t r(s_t, a_t).
With the identity π_θ(τ)·∇_θ log π_θ(τ) = ∇_θ π_θ(τ), and log π_θ(τ) = Σ_t log π_θ(a_t|s_t) + (terms without θ):
    ∇_θ J(θ) = E_τ[ (Σ_t ∇_θ log π_θ(a_t|s_t)) · r(τ) ]
             ≈ (1/N) Σ_i Σ_t ∇_θ log π_θ(a_{i,t}|s_{i,t}) · ψ_{i,t}
where ψ is, from the crudest to the best (each is an argument below, so you can switch it on and see):
    ψ_{i,t} = r(τ_i)                       total return (notes 003, "REINFORCE algorithm")       --returns total
    ψ_{i,t} = Q̂_{i,t} = Σ_{t'≥t} γ^{t'−t} r_{i,t'}   reward-to-go: the past cannot be changed by a_t  --returns reward_to_go
    ψ_{i,t} = Q̂_{i,t} − b                  minus the average return (an unbiased baseline)        --baseline average
    ψ_{i,t} = Q̂_{i,t} − V_φ(s_{i,t})       minus a learned value: the advantage estimate Â         --baseline value
With γ = 1 and no normalisation all of them have the same expectation, ∇_θ J (a baseline that does not depend on
a_t adds zero in expectation); they differ in variance, which is what makes the difference in practice
(`python benchmark/bench_reinforce_ablation.py` measures both). With γ < 1, "total" is the discounted return
Σ_t γ^t r_t (its estimator is unbiased for the discounted objective) while reward-to-go is not exactly the gradient
of either objective (GOTCHA in `reward_to_go`).

Pseudocode (the step tags appear in the training loop below):
    for k = 0, 1, 2, ...
        [S1] run π_θ for whole episodes until the batch holds at least `batch_steps` steps (N episodes),
             or for exactly `batch_episodes` episodes
        [S2] ψ_{i,t} for every step (total return or reward-to-go, minus the baseline, optionally normalised)
        [S3] one gradient step on the pseudo-loss  L̃(θ) = −(1/N) Σ_i Σ_t log π_θ(a_{i,t}|s_{i,t}) · ψ_{i,t}
             (ψ held constant); with --baseline value, fit V_φ to Q̂ by regression (after the policy step)
        [S4] log

Run:
    python reinforce.py                                  # CartPole-v1 (150k steps), the full variant
    python reinforce.py --returns total --baseline none --no-norm-adv   # the notes' first algorithm
    python reinforce.py --env InvertedPendulum-v4 --total-timesteps 200000
    python reinforce.py --env Hopper-v4 --total-timesteps 1000000
What a working run reaches: CartPole-v1 ≥ 475 after ~38k steps with the defaults; Hopper-v4 987 ± 381 at 1M
steps, unstable (docs/reinforce.md, with the command behind each number).

Deviations from the notes:
  - DEVIATION: the average-return baseline leaves the trajectory itself out (b_i = mean over the other
    trajectories); the notes' b = (1/N) Σ_j r(τ_j) includes τ_i and so shrinks the expected gradient by the
    factor (1 − 1/N). With reward-to-go it is the average reward-to-go at the same step t (see
    `average_baseline`).
  - Adam instead of plain gradient ascent θ ← θ + α∇J (the notes: "adaptive step size rules like ADAM can
    be OK-ish"); a discount γ (γ = 1 is the notes' undiscounted sum); observation normalisation (a TRICK).
"""


# ── Imports ────────────────────────────────────────────────────────────────────────────────────────
from __future__ import annotations  # (a type in a signature may be defined further down)

import copy
import dataclasses
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
import torch.nn as nn
import tyro
from torch.utils.tensorboard import SummaryWriter


# ── Hyperparameters (Args) ─────────────────────────────────────────────────────────────────────────
@dataclass


class Args:
    # --- common to every script (CONTRIBUTING.md) ---
    env: str = "CartPole-v1"
    """gymnasium environment id, e.g. CartPole-v1, InvertedPendulum-v4, Hopper-v4"""
    exp_name: str = "reinforce"
    """name of this experiment; part of the run directory name"""
    seed: int = 1
    """seed of python, numpy, torch and the environment"""
    total_timesteps: int = 150_000
    """environment steps to train for (whole episodes: training ends after the episode that reaches it)"""
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
    """skip training: load this model.pt written by reinforce.py and evaluate it"""
    checkpoint_every: int = 100_000
    """write <run dir>/checkpoint.pt (all that --resume needs) at the first batch end after every this many env steps;
    0: only on Ctrl-C/SIGTERM"""
    resume: Optional[str] = None
    """continue the run in this run directory from its checkpoint.pt, with its own arguments"""

    # --- the estimator (notes 003 and 002): each variance-reduction step is a switch ---
    returns: Literal["total", "reward_to_go"] = "reward_to_go"
    """ψ before the baseline: total return r(τ) at every step (notes 003, REINFORCE) or reward-to-go Q̂_t"""
    baseline: Literal["none", "average", "value"] = "value"
    """b: none; average (leave-one-out average return, notes 003); value (a learned V_φ(s), notes 002)"""
    norm_adv: bool = True
    """standardise ψ to zero mean and unit std over the batch (a per-batch rescaling of the step)"""
    gamma: float = 0.99
    """γ: discount of the reward-to-go (1 gives the notes' undiscounted sums)"""

    # --- sampling and optimisation ---
    batch_steps: int = 2000
    """each batch holds whole episodes, at least this many steps in all (the notes' N trajectories; N then varies
    with the episodes' lengths, which biases (1/N)·Σ slightly: see --batch-episodes)"""
    batch_episodes: Optional[int] = None
    """each batch holds exactly this many whole episodes instead (--batch-steps is then unused): N fixed, so the
    estimate (1/N)·Σ_i is exactly unbiased"""
    learning_rate: float = 0.003
    """Adam step size of the policy (one step per batch, as in the notes' θ ← θ + α∇J)"""
    value_learning_rate: float = 0.01
    """Adam step size of V_φ (--baseline value)"""
    value_steps: int = 50
    """full-batch Adam steps fitting V_φ to the batch's Q̂ after each policy step (Spinning Up's VPG: 80)"""
    bootstrap_truncated: bool = False
    """where a time limit cut an episode, add γ^(T−t)·V_φ(s_T) to Q̂_t (needs --baseline value); see GOTCHA in [S2]"""
    hidden_size: int = 64
    """units in each of the two hidden layers of the policy and value networks"""
    init_log_std: float = 0.0
    """initial log σ of the Gaussian policy (continuous actions)"""
    norm_obs: bool = True
    """normalise observations with running mean and variance"""
    clip_obs: float = 10.0
    """clip normalised observations to ±clip_obs"""
    target_return: Optional[float] = None
    """stop once the mean return of the last target_window training episodes reaches this (summary: steps_to_target)"""
    target_window: int = 10
    """episodes averaged for --target-return"""


# ── Networks ───────────────────────────────────────────────────────────────────────────────────────
def layer_init(layer: nn.Linear, std: float = np.sqrt(2), bias_const: float = 0.0) -> nn.Linear:
    # TRICK: orthogonal weights with gain √2 for tanh hidden layers, zero biases (OpenAI baselines). The policy
    # head uses gain 0.01, so π_θ starts close to uniform (discrete) or centred on 0 (continuous) in every state.
    torch.nn.init.orthogonal_(layer.weight, std)
    torch.nn.init.constant_(layer.bias, bias_const)
    return layer


def mlp(in_dim: int, hidden: int, out_dim: int, out_std: float) -> nn.Sequential:
    """in_dim -> hidden -> hidden -> out_dim with tanh activations."""
    return nn.Sequential(
        layer_init(nn.Linear(in_dim, hidden)), nn.Tanh(),
        layer_init(nn.Linear(hidden, hidden)), nn.Tanh(),
        layer_init(nn.Linear(hidden, out_dim), std=out_std),
    )


def numpy_weights(net: nn.Sequential) -> list:
    """[(Wᵀ, b), ...] of the Linear layers of `net`, as float32 numpy copies on the CPU."""
    return [(m.weight.detach().cpu().numpy().T.copy(), m.bias.detach().cpu().numpy().copy())
            for m in net if isinstance(m, nn.Linear)]


def numpy_mlp(layers: list, x: np.ndarray) -> np.ndarray:
    """The forward pass of mlp() in numpy: tanh after every layer but the last. x (B, in) -> (B, out)."""
    for i, (w_t, b) in enumerate(layers):
        x = x @ w_t + b
        if i < len(layers) - 1:
            x = np.tanh(x)
    return x


class Agent(nn.Module):
    """The policy π_θ and, for --baseline value, the value network V_φ (separate networks).

    Discrete actions: the actor outputs the logits of a categorical π_θ(·|s).
    Continuous actions: the actor outputs the mean f_θ(s) of a Gaussian N(f_θ(s), σ²) whose log σ is a free,
    learned, state-independent vector (notes 003, "Example: Gaussian policies").
    """

    def __init__(self, obs_dim: int, act_dim: int, discrete: bool, hidden: int, init_log_std: float = 0.0):
        super().__init__()
        self.discrete = discrete
        self.actor = mlp(obs_dim, hidden, act_dim, out_std=0.01)
        self.critic = mlp(obs_dim, hidden, 1, out_std=1.0)
        # log σ, (act_dim,); unused and untrained for discrete actions, kept so every checkpoint has the same keys.
        self.log_std = nn.Parameter(torch.full((act_dim,), float(init_log_std)), requires_grad=not discrete)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """V_φ(s): (B, obs_dim) -> (B,)"""
        return self.critic(obs).squeeze(-1)

    def log_prob(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """log π_θ(a|s): (B, obs_dim), (B,) or (B, A) -> (B,)"""
        out = self.actor(obs)
        if self.discrete:
            return categorical_log_prob(out, actions)
        return gaussian_log_prob(actions, out, self.log_std)


# ── Algorithm math: small pure functions, one per equation, importable by tests ────────────────────
# Notation (a batch of N whole episodes laid end to end, B = Σ_i T_i steps; A = action dim or number of actions):
#   code          symbol                                   shape
#   obs           s_{i,t} (normalised)                     (B, obs_dim)
#   actions       a_{i,t}                                  (B, A) continuous, (B,) discrete
#   rewards       r_{i,t} (raw)                            (B,)
#   dones         1 at the last step of each episode      (B,)
#   lengths       T_i                                      (N,)
#   rtg           Q̂_{i,t} = Σ_{t'≥t} γ^{t'−t} r_{i,t'}      (B,)
#   psi           ψ_{i,t}: r(τ_i) or Q̂_{i,t}               (B,)
#   baseline      b_{i,t}: 0, leave-one-out average, or V_φ(s_{i,t})   (B,)
#   weights       the factor of ∇ log π_θ(a_{i,t}|s_{i,t}): ψ − b, maybe normalised   (B,)
#   logp          log π_θ(a_{i,t}|s_{i,t})                 (B,)
LOG_2PI = float(np.log(2 * np.pi))


def gaussian_log_prob(a: torch.Tensor, mu: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """Diagonal Gaussian: a, mu (B, A); log_std (A,) or (B, A) -> (B,)"""
    # log π(a|s) = Σ_i [ −½ ((a_i − μ_i)/σ_i)² − log σ_i − ½ log 2π ]      (notes 003: −½‖f(s) − a‖²_Σ + const)
    # GOTCHA: its gradient is ∇_θ log π = Σ⁻¹(a − f(s))·df/dθ; the slide's "−½ Σ⁻¹(f − a) df/dθ" keeps a ½ that the
    # square cancels. Autograd gets it right either way; tests/test_reinforce_math.py checks it.
    z = (a - mu) * torch.exp(-log_std)
    return (-0.5 * z.pow(2) - log_std - 0.5 * LOG_2PI).sum(-1)


def categorical_log_prob(logits: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """logits (B, A), a (B,) integer -> (B,)"""
    # log π(a|s) = logits_a − log Σ_b exp(logits_b)      (minus the cross-entropy of the notes' pseudocode)
    return torch.log_softmax(logits, dim=-1).gather(-1, a.long().unsqueeze(-1)).squeeze(-1)


def gumbel_max_sample(logits: np.ndarray, u: np.ndarray) -> np.ndarray:
    """A sample of softmax(logits) per row from uniform noise u ~ U(0,1); (N, A), (N, A) -> (N,) int64."""
    # TRICK (Gumbel-max): argmax_a(logits_a + g_a) with g_a = −log(−log u_a) is distributed as softmax(logits).
    return np.argmax(logits - np.log(-np.log(u)), axis=-1)


def reward_to_go(rewards: np.ndarray, dones: np.ndarray, gamma: float,
                 bootstrap: Optional[np.ndarray] = None) -> np.ndarray:
    """Q̂_{i,t} = Σ_{t'=t}^{T_i} γ^{t'−t} r_{i,t'} for every step of episodes laid end to end; (B,) -> (B,).

    `bootstrap` (B,), optional: a value added after the last step of an episode, γ·V(s_T) where a time limit cut
    it (0 elsewhere), so that Q̂_t = Σ_{t'=t}^{T−1} γ^{t'−t} r_{t'} + γ^{T−t}·V(s_T).
    """
    assert rewards.shape == dones.shape and rewards.ndim == 1
    q = np.zeros(rewards.shape, np.float64)  # (B,), float64: long undiscounted sums lose digits in float32
    running = 0.0  # Q̂_{t+1} of the same episode
    for t in reversed(range(len(rewards))):
        # Q̂_t = r_t + γ·(1 − done_t)·Q̂_{t+1}   (+ γ·V(s_T) at a cut episode's last step)
        # "What you do now does not affect the reward of the past" (notes 003): the sum starts at t.
        # GOTCHA: with γ < 1 this weights ∇ log π_θ(a_t|s_t) by Σ_{t'≥t} γ^{t'−t} r_{t'}, without the γ^t in front
        # that the gradient of E[Σ_t γ^t r_t] would have: it is the gradient of neither the discounted nor the
        # undiscounted return exactly, but the usual choice (γ as variance reduction, Thomas 2014, "Bias in
        # natural actor-critic algorithms"). γ = 1 gives the notes' unbiased estimator.
        running = rewards[t] + gamma * (1.0 - dones[t]) * running
        if bootstrap is not None:
            running += bootstrap[t]
        q[t] = running
    return q


def total_return(rtg: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """ψ_{i,t} = r(τ_i) = Q̂_{i,1} (the reward-to-go of the first step) repeated over episode i's steps; (B,) -> (B,)."""
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])  # (N,) index of each episode's first step
    return np.repeat(rtg[starts], lengths)


def average_baseline(psi: np.ndarray, lengths: np.ndarray, per_step: bool) -> np.ndarray:
    """Leave-one-out average baseline b_{i,t}; psi (B,) of N episodes laid end to end -> (B,).

    per_step False (with the total return): b_i = (1/(N−1)) Σ_{j≠i} r(τ_j), the notes' b = (1/N) Σ_j r(τ_j)
    without τ_i itself.
    per_step True (with reward-to-go): b_{i,t} = the mean of Q̂_{j,t} over the other episodes j still running
    at step t. The reward-to-go shrinks towards an episode's end, so a constant b would be too high late in
    every episode; a baseline may depend on t (it must not depend on a_t).
    GOTCHA (why leave one out): b must not depend on τ_i. With b = (1/N) Σ_j r(τ_j),
    E[∇ log π_θ(τ_i)·b] = (1/N)·E[∇ log π_θ(τ_i)·r(τ_i)] ≠ 0, which shrinks the expected gradient by (1 − 1/N).
    Without τ_i, b is independent of τ_i and E[∇ log π_θ(τ_i)·b] = E[∇ log π_θ(τ_i)]·E[b] = 0 (notes 003).
    With one episode there is no other to average: b = 0.
    """
    n, t_max = len(lengths), int(lengths.max())
    alive = np.arange(t_max)[None, :] < lengths[:, None]  # (N, T_max): episode i is running at step t
    padded = np.zeros((n, t_max))  # (N, T_max): ψ_{i,t}, 0 after the episode ended
    padded[alive] = psi  # row-major: episode by episode, as psi is laid out
    counts = alive  # (N, T_max): does ψ_{j,t} enter the average at step t?
    if not per_step:
        counts = np.ones_like(alive)  # every other episode counts, at every t
        padded = np.repeat(padded[:, :1], t_max, axis=1)  # r(τ_j) in every column
    others = counts.sum(0)[None, :] - counts  # (N, T_max): how many other episodes count at (i, t)
    sums = (padded * counts).sum(0)[None, :] - padded * counts  # (N, T_max): Σ_{j≠i} of them
    # b_{i,t} = Σ_{j≠i} ψ_{j,t} / #{j≠i}
    b = np.where(others > 0, sums / np.maximum(others, 1), 0.0)
    return b[alive]  # (B,), laid out as psi


def normalize(x: np.ndarray) -> np.ndarray:
    """(x − mean) / (std + 1e-8) over the batch; the 1e-8 avoids 0/0 when all values are equal."""
    # TRICK (advantage normalisation, OpenAI baselines): the step size no longer depends on the scale of the
    # returns (CartPole's are 0–100, Hopper's thousands). Subtracting the batch mean is one more baseline; dividing
    # by the std rescales the step of each batch differently, so this is not exactly the gradient of J any more.
    return (x - x.mean()) / (x.std() + 1e-8)


def pseudo_loss(logp: torch.Tensor, weights: torch.Tensor, num_episodes: int) -> torch.Tensor:
    """L̃(θ) = −(1/N) Σ_i Σ_t log π_θ(a_{i,t}|s_{i,t}) · ψ_{i,t}, to minimise. logp, weights (B,) -> scalar.

    Why its gradient is the policy gradient: the weights ψ are numbers (no gradient flows through them, so the
    caller passes them detached), hence ∇_θ L̃ = −(1/N) Σ_i Σ_t ∇_θ log π_θ(a_{i,t}|s_{i,t}) · ψ_{i,t}, which is
    exactly −1 × the Monte-Carlo estimate of ∇_θ J (notes 003, "policy gradient with automatic
    differentiation"). It is a weighted maximum likelihood: with all ψ = 1 it is the (negative) log-likelihood of
    the actions taken, as in behaviour cloning; ψ makes good actions more likely and bad ones less.
    GOTCHA: L̃ is not an objective whose value means anything (it is not J and can go up while J improves);
    only its gradient at the current θ does. Log the returns, not this.
    """
    assert logp.shape == weights.shape and logp.ndim == 1
    assert not weights.requires_grad, "ψ must be constants: a gradient through V_φ would change the estimator"
    return -(logp * weights).sum() / num_episodes


def value_loss(v: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """½·mean_t (V_φ(s_t) − Q̂_t)², the regression that fits V_φ(s) ≈ E[Q̂_t | s_t = s] (notes 002). (B,) -> scalar."""
    assert v.shape == targets.shape
    return 0.5 * (v - targets).pow(2).mean()


def explained_variance(pred: np.ndarray, target: np.ndarray) -> float:
    """1 − Var[target − pred] / Var[target]: 1 is a perfect baseline, ≤ 0 is no better than a constant."""
    var = np.var(target)
    return float("nan") if var == 0 else float(1 - np.var(target - pred) / var)


def normalize_obs(obs: np.ndarray, rms: Optional[RunningMeanStd], clip: float) -> np.ndarray:
    """ŝ = clip((s − μ) / √(σ² + ε), −c, c), as float32; identity without statistics."""
    if rms is None:
        return obs.astype(np.float32)
    # TRICK: observation normalisation (baselines' VecNormalize): MuJoCo observations mix positions and
    # velocities of very different scales; a tanh MLP learns much faster on unit-scale inputs.
    return np.clip((obs - rms.mean) / np.sqrt(rms.var + 1e-8), -clip, clip).astype(np.float32)


# ── Training loop [S1 whole episodes -> S2 weights ψ − b -> S3 gradient step -> S4 log] ────────────
def main(args: Args) -> dict:
    """Train (or load --checkpoint), evaluate, save; returns the summary written to summary.json."""
    resumed = None  # the checkpoint.pt of the run that --resume continues
    if args.resume is not None:
        args, resumed = resume_args(args, "reinforce.py")
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

    agent = Agent(obs_dim, act_dim, discrete, args.hidden_size, args.init_log_std).to(device)
    obs_rms = RunningMeanStd((obs_dim,)) if args.norm_obs else None
    if args.checkpoint is not None:  # (before the run directory exists, so a bad file leaves no empty run behind)
        # (load_checkpoint takes hidden_size and clip_obs from the file: args.json records what this run used)
        agent, obs_rms = load_checkpoint(args.checkpoint, args, obs_dim, act_dim, discrete, device)

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
    global_step, steps_to_target, start_time = 0, None, time.time()

    if args.checkpoint is not None:  # --checkpoint: evaluate the saved model; nothing to train
        env.close()
        train_time = time.time() - start_time
        summary = finish(args, run_dir, writer, agent, obs_rms, discrete, low, high,
                         global_step, train_time, train_returns)
        writer.close()
        return summary

    policy_params = list(agent.actor.parameters()) + ([] if discrete else [agent.log_std])  # θ
    optimizer = torch.optim.Adam(policy_params, lr=args.learning_rate)
    value_optimizer = torch.optim.Adam(agent.critic.parameters(), lr=args.value_learning_rate)
    noise_rng = np.random.default_rng(args.seed)
    raw_obs, _ = env.reset(seed=args.seed)  # later resets continue the env's own seeded generator

    if resumed is not None:  # --resume: put back everything the loop carries from one batch to the next
        set_rng_states(resumed["rng"])
        agent.load_state_dict(resumed["agent"])
        optimizer.load_state_dict(resumed["optimizer"])
        value_optimizer.load_state_dict(resumed["value_optimizer"])
        if obs_rms is not None:
            vars(obs_rms).update(resumed["obs_rms"])
        env.close()
        env, noise_rng, raw_obs = set_env_state(resumed["env"]), resumed["noise_rng"], resumed["raw_obs"]
        global_step, train_returns = resumed["global_step"], resumed["train_returns"]
        start_time = time.time() - resumed["train_time"]

    with StopSignals() as stop:  # Ctrl-C or SIGTERM: finish this batch, write checkpoint.pt, stop
        while global_step < args.total_timesteps:
            # TRICK: during the rollout the actor runs in numpy on a copy of its weights (several times faster per
            # step than a torch module call at batch size 1, as in ppo.py); θ is fixed until [S3].
            actor_np = numpy_weights(agent.actor)
            std = None if discrete else torch.exp(agent.log_std).detach().cpu().numpy()  # σ, (A,)

            # [S1] run π_θ for whole episodes until the batch holds at least batch_steps steps (or batch_episodes
            # episodes). Whole episodes, because the estimator sums over complete trajectories τ_i. (Cutting the last
            # one at the batch boundary would need a bootstrap; dropping it would bias the batch towards short
            # episodes.) Starting another episode depends only on the earlier ones, never on its own outcome, so
            # each trajectory in the batch is an ordinary sample of π_θ.
            # GOTCHA (a small bias): the number N of episodes that fill batch_steps depends on their lengths, so
            # (1/N)·Σ_i g_i is not an unbiased estimate of ∇J: the average of N random terms, N random too, weighs
            # the episodes of short-episode batches more. On a small MDP with N ≈ 1.7 it is off by 6+ standard
            # errors (tests/test_reinforce_math.py); it shrinks as N grows (CartPole's 2,000-step batches hold 4 to
            # 100 episodes). --batch-episodes fixes N and removes it, at the price of a batch size in steps that
            # varies with the episodes' lengths.
            obs_list, act_list, rew_list, done_list, trunc_list, final_obs, lengths = [], [], [], [], [], [], []
            # (The last batch stops early, after the episode that reaches total_timesteps.)
            while ((len(rew_list) < args.batch_steps) if args.batch_episodes is None
                   else (len(lengths) < args.batch_episodes)) and global_step < args.total_timesteps:
                ep_return, ep_length, done = 0.0, 0, False
                if obs_rms is not None:
                    obs_rms.update(np.asarray(raw_obs)[None])
                obs = normalize_obs(np.asarray(raw_obs)[None], obs_rms, args.clip_obs)  # (1, obs_dim)
                while not done:
                    # a_t ~ π_θ(·|s_t), the policy's sample: the actor's output on s_t (from its numpy copy, the same
                    # numbers as the torch network), then a draw from the distribution it parametrises:
                    out = numpy_mlp(actor_np, obs)  # logits or f_θ(s_t), (1, A)
                    if discrete:
                        action = gumbel_max_sample(out, noise_rng.random(out.shape))[0]  # a_t ~ softmax(logits)
                        env_action = action
                    else:
                        # a_t = f_θ(s_t) + σ ⊙ ε, ε ~ N(0, I)
                        action = (out + std * noise_rng.standard_normal(out.shape, dtype=np.float32))[0]
                        # GOTCHA: the env executes the action clipped to its bounds, but the batch keeps the sampled
                        # one: log π_θ must be the log-density of what the Gaussian actually drew.
                        env_action = np.clip(action, low, high)
                    raw_obs, reward, terminated, truncated, _ = env.step(env_action)
                    done = terminated or truncated
                    obs_list.append(obs[0])
                    act_list.append(action)
                    rew_list.append(float(reward))
                    done_list.append(done)
                    trunc_list.append(truncated and not terminated)
                    ep_return, ep_length = ep_return + float(reward), ep_length + 1
                    if obs_rms is not None:
                        obs_rms.update(np.asarray(raw_obs)[None])
                    obs = normalize_obs(np.asarray(raw_obs)[None], obs_rms, args.clip_obs)
                final_obs.append(obs[0])  # s_T, for --bootstrap-truncated
                lengths.append(ep_length)
                global_step += ep_length
                train_returns.append(ep_return)
                writer.add_scalar("charts/episodic_return", ep_return, global_step)
                writer.add_scalar("charts/episodic_length", ep_length, global_step)
                raw_obs, _ = env.reset()

            num_episodes = len(lengths)  # N
            lengths = np.asarray(lengths)  # (N,)
            rewards, dones = np.asarray(rew_list), np.asarray(done_list, np.float64)  # (B,), (B,)
            b_obs = torch.from_numpy(np.stack(obs_list)).to(device)  # (B, obs_dim)
            b_actions = torch.from_numpy(np.asarray(act_list)).to(device)  # (B,) or (B, A)

            # [S2] the weights ψ − b of the score functions.
            bootstrap = None
            if args.bootstrap_truncated:
                # GOTCHA (time limits): an episode cut by a time limit (`truncated`) has not ended; its true
                # reward-to-go
                # continues past the cut. By default we still sum the rewards up to the cut: then the estimator is the
                # notes' one, unbiased for the task as it is run (J = E[return of an episode of at most T steps], the
                # number the evaluation reports), but a state-only V_φ cannot tell how close the cut is. With this flag
                # the cut episode's Q̂_t gets γ^(T−t)·V_φ(s_T) added, which estimates the return without the time
                # limit instead (biased where V_φ is wrong).
                with torch.no_grad():
                    v_final = agent.value(torch.from_numpy(np.stack(final_obs)).to(device)).cpu().numpy()  # (N,)
                ends = np.cumsum(lengths) - 1  # (N,) index of each episode's last step
                bootstrap = np.zeros_like(rewards)
                bootstrap[ends] = args.gamma * v_final * np.asarray(trunc_list)[ends]
            rtg = reward_to_go(rewards, dones, args.gamma, bootstrap)  # Q̂_{i,t}, (B,)
            psi = rtg if args.returns == "reward_to_go" else total_return(rtg, lengths)  # (B,)
            if args.baseline == "average":
                baseline = average_baseline(psi, lengths, per_step=args.returns == "reward_to_go")
            elif args.baseline == "value":
                # Â_{i,t} = Q̂_{i,t} − V_φ(s_{i,t}), with the V_φ fitted on earlier batches: fitting it to this batch
                # first would make b depend on this batch's actions.
                with torch.no_grad():
                    baseline = agent.value(b_obs).cpu().numpy().astype(np.float64)  # (B,)
            else:
                baseline = np.zeros_like(psi)
            weights = psi - baseline  # (B,)
            if args.norm_adv:
                weights = normalize(weights)
            b_weights = torch.as_tensor(weights, dtype=torch.float32, device=device)

            # [S3] one step of gradient ascent on J: θ ← θ + α ∇_θ J, as a descent step on the pseudo-loss.
            loss = pseudo_loss(agent.log_prob(b_obs, b_actions), b_weights, num_episodes)
            optimizer.zero_grad()
            loss.backward()
            # Diagnostic: ‖ĝ‖₂, the size of the gradient estimate (it is what the baselines make less noisy).
            grad_norm = torch.sqrt(sum(p.grad.pow(2).sum() for p in policy_params)).item()
            optimizer.step()

            if args.baseline == "value":
                # V_φ ← argmin ½·mean (V_φ(s_{i,t}) − ψ_{i,t})², by value_steps full-batch Adam steps; it is the
                # baseline of the next batch. (ψ is the reward-to-go, or the total return with --returns total: a
                # baseline for ψ must estimate E[ψ | s_t].)
                targets = torch.as_tensor(psi, dtype=torch.float32, device=device)
                for _ in range(args.value_steps):
                    v_loss = value_loss(agent.value(b_obs), targets)
                    value_optimizer.zero_grad()
                    v_loss.backward()
                    value_optimizer.step()
                writer.add_scalar("losses/value_loss", v_loss.item(), global_step)
                # explained_variance ≤ 0: V_φ predicts nothing and the baseline adds variance instead of removing it.
                writer.add_scalar("losses/explained_variance", explained_variance(baseline, psi), global_step)

            # [S4] log.
            sps = int(global_step / (time.time() - start_time))
            recent = train_returns[-100:]
            writer.add_scalar("charts/SPS", sps, global_step)
            writer.add_scalar("charts/episodes_per_batch", num_episodes, global_step)
            writer.add_scalar("losses/policy_loss", loss.item(), global_step)
            writer.add_scalar("losses/grad_norm", grad_norm, global_step)
            if not discrete:
                writer.add_scalar("charts/action_std", float(np.mean(std)), global_step)
            print(f"step {global_step:>9,}  return(last {len(recent)}) {np.mean(recent):9.1f}  "
                  f"episodes {num_episodes:>4}  SPS {sps:,}", flush=True)
            if (args.target_return is not None and len(train_returns) >= args.target_window
                    and np.mean(train_returns[-args.target_window:]) >= args.target_return):
                steps_to_target = global_step
                print(f"target: the last {args.target_window} episodes average ≥ {args.target_return} "
                      f"after {global_step:,} steps", flush=True)
                break

            # Safe point (between batches: every episode is whole, the env has just been reset).
            check_finite(run_dir, global_step, **{"the policy loss": loss, "the networks": agent},
                         **({} if obs_rms is None else {"the observation statistics": obs_rms.var}))
            if stop.received or checkpoint_due(global_step - len(rew_list), global_step, args.checkpoint_every):
                save_training_state(run_dir, {
                    "script": "reinforce.py", "global_step": global_step, "train_time": time.time() - start_time,
                    "agent": agent.state_dict(), "optimizer": optimizer.state_dict(),
                    "value_optimizer": value_optimizer.state_dict(),
                    "obs_rms": None if obs_rms is None else vars(obs_rms), "noise_rng": noise_rng,
                    "env": env_state(env), "raw_obs": raw_obs, "train_returns": train_returns})
            if stop.received:
                writer.close()
                raise Interrupted(stop_line("reinforce.py", stop.received, global_step, run_dir))

    env.close()

    train_time = time.time() - start_time
    summary = finish(args, run_dir, writer, agent, obs_rms, discrete, low, high,
                     global_step, train_time, train_returns)
    if args.target_return is not None:
        summary["steps_to_target"] = steps_to_target
        atomic_write_text(os.path.join(run_dir, "summary.json"), json.dumps(summary, indent=2))
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


def finish(args: Args, run_dir: str, writer: SummaryWriter, agent: Agent, obs_rms: Optional[RunningMeanStd],
           discrete: bool, low, high, global_step: int, train_time: float, train_returns: list) -> dict:
    """model.pt, then the final deterministic evaluation, summary.json."""
    # model.pt first: a failure in the evaluation (a missing video codec, an env error) must not lose the training
    if args.save_model and args.checkpoint is None:
        atomic_torch_save({
            "script": "reinforce.py", "env": args.env, "args": dataclasses.asdict(args),
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


    summary = {
        "script": "reinforce.py", "env": args.env, "seed": args.seed, "env_steps": global_step,
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
        (args.batch_steps >= 1, "--batch-steps must be at least 1"),
        (args.batch_episodes is None or args.batch_episodes >= 1, "--batch-episodes must be at least 1"),
        (args.checkpoint is not None or args.batch_episodes is not None or args.total_timesteps >= args.batch_steps,
         f"--total-timesteps ({args.total_timesteps}) is smaller than one batch (--batch-steps {args.batch_steps})"),
        (args.learning_rate > 0 and args.value_learning_rate > 0, "--learning-rate and --value-learning-rate must be positive"),
        (args.value_steps >= 1, "--value-steps must be at least 1"),
        (0 <= args.gamma <= 1, "--gamma must be in [0, 1]"),
        (not args.bootstrap_truncated or args.baseline == "value",
         "--bootstrap-truncated needs a learned value to bootstrap from: add --baseline value"),
        (args.eval_episodes >= 0, "--eval-episodes must be >= 0"),
        (args.hidden_size >= 1 and args.torch_threads >= 1, "--hidden-size and --torch-threads must be at least 1"),
        (args.clip_obs > 0, "--clip-obs must be positive"),
        (args.target_window >= 1, "--target-window must be at least 1"),
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
        raise UserError(f"cannot read checkpoint '{path}' as a model.pt written by reinforce.py: "
                        f"{str(err).strip().splitlines()[0][:200]}") from None
    if not isinstance(ckpt, dict) or ckpt.get("script") != "reinforce.py":
        raise UserError(f"'{path}' is not a model.pt written by reinforce.py")
    if ckpt["env"] != args.env:
        raise UserError(f"checkpoint '{path}' was trained on {ckpt['env']}, not {args.env} (pass --env {ckpt['env']})")
    args.hidden_size, args.clip_obs = ckpt["args"]["hidden_size"], ckpt["args"]["clip_obs"]
    agent = Agent(obs_dim, act_dim, discrete, args.hidden_size).to(device)
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
        sys.exit(f"reinforce.py: error: {err}")
    except Interrupted as err:
        print(err, file=sys.stderr)
        sys.exit(130)
    except KeyboardInterrupt:
        print("reinforce.py: interrupted; the run directory keeps its last checkpoint.pt, if one was written",
              file=sys.stderr)
        sys.exit(130)
