"""MPPI: model-predictive control as Monte-Carlo posterior inference, with the true simulator or a learned model.

Papers: Williams, Aldrich, Theodorou, "Model Predictive Path Integral Control: From Theory to Parallel Computation"
(J. Guidance, Control, and Dynamics 2017); Williams et al., "Information Theoretic MPC for Model-Based Reinforcement
Learning" (ICRA 2017), Algorithm 2; the learned ensemble follows Chua et al., "Deep Reinforcement Learning in a Handful
of Trials using Probabilistic Dynamics Models" (PETS, NeurIPS 2018). Lecture notes: ../shared/seeds 001 ("Model Learning
via Maximum Likelihood", "Equivalence between posterior inference and MPPI").

With optimality variables p(O_t | s_t, a_t) = exp(r(s_t, a_t)), the best next action is a posterior (notes 001):
    p̂(a_t | s_t, O_{t:T} = 1) ∝ E_{a ~ p(a|s), s' ~ p̂(s'|s, a)} [ exp( Σ_t r(s_t, a_t) ) ]
"Taking a bunch of samples through the model, choose actions proportional to exp(sum of rewards)", and "keep repeating
with the updated action prior". MPPI is exactly that: the action prior is a Gaussian around the current plan U; K
sampled action sequences are rolled through the model p̂; each is weighted by exp(R/λ), λ a temperature (the notes use
λ = 1); the new plan is the weighted average. Only its first action is executed, then the plan shifts by one step and
is reused as the next prior (warm start), and everything repeats at the next state.

Pseudocode (the step tags appear in the control loop below):
    U = (u_0, ..., u_{H−1}) = 0                                      the plan, the mean of the action prior
    every control step, at state s:
        [S1] (learned model) every --refit-every steps: fit p̂ by maximum likelihood on all transitions so far
        repeat --iterations times:
            [S2] V^k = clip(U + ε^k), ε^k ~ N(0, σ²I), k = 1..K−1, ε^0 = 0 (the plan itself);
                 R^k = Σ_t r(s_t^k, V_t^k) along s_{t+1}^k ~ p̂(·|s_t^k, V_t^k)
            [S3] w^k = exp(R^k/λ) / Σ_j exp(R^j/λ);  U ← Σ_k w^k V^k
        [S4] execute u_0; U ← (u_1, ..., u_{H−1}, u_{H−1}); log ESS = 1/Σ_k (w^k)², planning time, model error
With --knots n > 0 (Hopper's preset: 4) U is n control points and the H actions are their linear interpolation: ε^k
is drawn on the points, and the shift reads the plan one step later (interpolation_matrices).

Two models (--model):
  true:    the simulator itself. Pendulum-v1: its equations of motion, written out below and vectorised over the K
           samples in numpy (checked against env.step in tests/test_mppi_math.py). MuJoCo envs: the env's physics state is copied
           (mj_getState) and the K sequences are rolled out with mujoco.rollout on --rollout-threads threads; one
           gymnasium step is the same action repeated frame_skip times, bit for bit (tests/test_mppi_math.py). MuJoCo
           returns states, not rewards, so each env's reward is recomputed from them (planning_reward_* below).
  learned: an ensemble of E networks, each a Gaussian p̂(Δs, r | s, a), fitted by maximum likelihood to the
           transitions collected so far (random actions first, then MPPI on the model itself), refitted as data
           grows; the K samples are split among the members (PETS's "TS∞": a sample keeps its member for the whole
           horizon), on the GPU when there is one.

Run:
    python mppi.py                                        # Pendulum-v1, true model: swing-up, 10 episodes
    python mppi.py --env InvertedPendulum-v4              # MuJoCo, mujoco.rollout
    python mppi.py --model learned                        # Pendulum-v1 from collected data, no simulator in the planner
    python mppi.py --env Hopper-v4 --eval-episodes 1      # shaped planning reward, 4 control points over 100 steps
What a run reaches: Pendulum-v1 −125 at ~1 ms per control step (true model) and −139 from 2,000 steps of data
(learned); InvertedPendulum-v4 1000; Hopper-v4 misses its target (docs/mppi.md, with the command behind each number).

Deviations from the papers:
  - SIMPLIFICATION: the weights use the return alone, exp(R/λ), as the notes do; the information-theoretic MPC
    (Williams et al. 2017, ICRA, Algorithm 2) adds a control-cost term γ·Σ_t u_tᵀΣ⁻¹ε_t to each sample's cost, a
    pull towards the current plan.
  - TRICK (ours): sample 0 is the plan itself (ε^0 = 0); see mppi_plan.
  - TRICK: InvertedPendulum's returns end with a terminal value, the LQR cost-to-go of the simulator's linearisation
    (Williams et al. 2017 have a terminal cost φ; ours is capped so that it never favours a fall). It lets H = 5 and
    K = 30 do what H = 15 and K = 200 did, at ~20× less simulation; see terminal_value_inverted_pendulum.
  - The planning reward of a MuJoCo env is shaped, not the env's own: InvertedPendulum's is flat (1 per step alive),
    and with Hopper's the planner dives forward and falls (--hopper-reward env); planning_reward_* document each.
  - TRICK (MuJoCo MPC's spline plans): Hopper's plan is 4 control points over H = 100 steps, linearly interpolated;
    see interpolation_matrices.
  - DEVIATION: the noise is clipped with the actions to the action bounds (the executed sequence is the clipped one,
    so the average is over what the model actually ran).
"""


# ── Imports ────────────────────────────────────────────────────────────────────────────────────────
from __future__ import annotations  # (a type in a signature may be defined further down)

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
import mujoco
import mujoco.rollout
import numpy as np
import torch
import torch.nn as nn
import tyro
from torch.utils.tensorboard import SummaryWriter


# ── Hyperparameters (Args) ─────────────────────────────────────────────────────────────────────────
@dataclass


class Args:
    # --- common to every script (CONTRIBUTING.md); with --model true nothing is trained: the budget is the episodes ---
    env: str = "Pendulum-v1"
    """gymnasium environment id: Pendulum-v1, InvertedPendulum-v4, Hopper-v4 (true model), or any Box env (learned)"""
    model: Literal["true", "learned"] = "true"
    """the model MPPI plans with: the simulator itself, or an ensemble fitted to collected transitions"""
    exp_name: str = "mppi"
    """name of this experiment; part of the run directory name"""
    seed: int = 1
    """seed of python, numpy, torch, the environments and the planner's noise"""
    total_timesteps: int = 2_000
    """--model learned: environment steps of data collection before the final evaluation (ignored by --model true)"""
    cuda: bool = True
    """plan with the learned model on the GPU when one is available (the true models run on the CPU)"""
    torch_deterministic: bool = True
    """make cuDNN deterministic"""
    torch_threads: int = 1
    """CPU threads for torch; 1 is fastest for small MLPs"""
    capture_video: bool = False
    """record the evaluation episodes to <run dir>/videos (needs moviepy)"""
    save_model: bool = True
    """write <run dir>/model.pt (the planner's settings and, with --model learned, the ensemble)"""
    runs_dir: str = "runs"
    """parent folder of the run directories"""
    eval_episodes: int = 10
    """episodes controlled by the planner at the end (with --model true, the whole run)"""
    eval_seed: int = 10_000
    """evaluation episode i is reset with seed eval_seed + i"""
    checkpoint: Optional[str] = None
    """skip data collection: load this model.pt written by mppi.py and evaluate the planner it holds"""
    checkpoint_every: int = 200
    """write <run dir>/checkpoint.pt (all that --resume needs) every this many env steps of --model learned (the true
    model has nothing to train); 0: only on Ctrl-C/SIGTERM"""
    resume: Optional[str] = None
    """continue the run in this run directory from its checkpoint.pt, with its own arguments"""

    # --- MPPI (None: the env's setting in PRESETS below) ---
    num_samples: Optional[int] = None
    """K: sampled action sequences per iteration (Pendulum 100, InvertedPendulum 30, Hopper 64)"""
    horizon: Optional[int] = None
    """H: steps of each sampled sequence, the plan's length (Pendulum 15, InvertedPendulum 5, Hopper 100)"""
    temperature: Optional[float] = None
    """λ: weights exp(R/λ); λ → 0 keeps only the best sample, λ → ∞ averages all (the notes: λ = 1)"""
    noise_std: Optional[float] = None
    """σ of the action prior N(U, σ²I), as a fraction of half the action range ((high − low)/2) (Pendulum 1.0,
    InvertedPendulum 0.3, Hopper 0.5)"""
    knots: Optional[int] = None
    """n: control points of the plan, linearly interpolated over the H steps; the noise is drawn on them and the
    average taken over them (0: every step is its own control point, the notes' MPPI) (Hopper 4, others 0)"""
    iterations: int = 1
    """sample-and-average rounds per control step, each around the plan the last one made"""
    hopper_reward: Literal["shaped", "env"] = "shaped"
    """Hopper, true model: plan on the shaped reward (planning_reward_hopper) or on the env's own, which falls"""
    terminal_value: bool = True
    """InvertedPendulum, true model: end each sampled return with the LQR cost-to-go (terminal_value_inverted_pendulum);
    --no-terminal-value plans on the running reward alone"""
    rollout_threads: int = 0
    """threads of mujoco.rollout (true model, MuJoCo envs); 0: one per CPU core"""

    # --- learned model (PETS-style ensemble) ---
    ensemble_size: int = 5
    """E: networks in the ensemble (Chua et al. 2018: 5)"""
    model_hidden_size: int = 200
    """units in each of the model networks' three hidden (SiLU) layers (Chua et al. 2018: 200, 3 or 4 layers)"""
    model_learning_rate: float = 1e-3
    """Adam step size of the model"""
    model_epochs: int = 25
    """passes over the data at each refit"""
    model_batch_size: int = 256
    """transitions per minibatch"""
    random_steps: int = 200
    """the first environment steps take uniformly random actions (the model knows nothing yet)"""
    refit_every: int = 200
    """environment steps between refits of the model on all data so far"""
    holdout_fraction: float = 0.1
    """fraction of transitions held out of fitting to report the model's one-step error"""


# Per-env planner settings, used where the command line leaves K, H, λ or σ out (None), chosen by the runs behind the
# docs/mppi.md's table; an env not listed (--model learned on any Box env) gets Pendulum's.
PRESETS = {
    "Pendulum": dict(num_samples=100, horizon=15, temperature=1.0, noise_std=1.0, knots=0),
    "InvertedPendulum": dict(num_samples=30, horizon=5, temperature=1.0, noise_std=0.3, knots=0),
    "Hopper": dict(num_samples=64, horizon=100, temperature=1.0, noise_std=0.5, knots=4),
}


def fill_presets(args: Args) -> None:
    """Set every MPPI setting the user left out (None) to the env's preset."""
    for key, value in PRESETS.get(args.env.split("-")[0], PRESETS["Pendulum"]).items():
        if getattr(args, key) is None:
            setattr(args, key, value)


# ── Networks ───────────────────────────────────────────────────────────────────────────────────────
class Ensemble(nn.Module):
    """E Gaussian networks p̂_e(Δs, r | s, a) = N(μ_e, diag σ_e²), evaluated together as batched matrix products.

    Input: (s normalised, a scaled to [−1, 1]); output per member: mean and log-variance of y = (Δs normalised, r
    normalised), (E, B, D_y) each. Weights are (E, in, out) tensors so that one torch.baddbmm runs all E members.
    """

    def __init__(self, num_members: int, in_dim: int, out_dim: int, hidden: int):
        super().__init__()
        sizes = [in_dim, hidden, hidden, hidden, 2 * out_dim]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            w = torch.empty(num_members, fan_in, fan_out)
            for e in range(num_members):
                nn.init.xavier_uniform_(w[e].T)  # (out, in) view, the layout nn.Linear initialises
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(torch.zeros(num_members, 1, fan_out)))
        # TRICK (Chua et al. 2018, appendix A.1): soft bounds on the log-variance, learned, so that σ² neither
        # collapses to 0 on the training data nor explodes off it.
        self.max_logvar = nn.Parameter(torch.full((1, 1, out_dim), 0.5))
        self.min_logvar = nn.Parameter(torch.full((1, 1, out_dim), -10.0))

    def forward(self, x: torch.Tensor) -> tuple:
        """x (E, B, in) -> (μ (E, B, out), log σ² (E, B, out))"""
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(b, x, w)  # b + x @ w, per member
            if i < len(self.weights) - 1:
                x = nn.functional.silu(x)
        mean, logvar = x.chunk(2, dim=-1)
        logvar = self.max_logvar - nn.functional.softplus(self.max_logvar - logvar)
        logvar = self.min_logvar + nn.functional.softplus(logvar - self.min_logvar)
        return mean, logvar


# ── Algorithm math: small pure functions, one per equation, importable by tests ────────────────────
# Notation (K samples, H steps, A action dims, S state dims, E ensemble members):
#   code      symbol                                  shape
#   plan      U = (u_0, ..., u_{H−1}), the prior's mean     (H, A)
#   eps       ε^k ~ N(0, σ²I)                          (K, H, A)
#   actions   V^k = clip(U + ε^k)                      (K, H, A)
#   returns   R^k = Σ_t r(s_t^k, V_t^k)                (K,)
#   weights   w^k = softmax(R/λ)^k                     (K,)
#   ess       1 / Σ_k (w^k)²  ∈ [1, K]                 scalar
def mppi_weights(returns: np.ndarray, temperature: float) -> np.ndarray:
    """w^k = exp(R^k/λ) / Σ_j exp(R^j/λ): (K,) -> (K,), the Monte-Carlo posterior of notes 001 with temperature λ.

    GOTCHA: exp(R/λ) overflows (or underflows to 0/0) as soon as |R|/λ passes ~700: a Pendulum return of −1,000 at
    λ = 1 gives exp(−1000) = 0 for every sample. Subtract the max first: w = exp((R − max R)/λ) / Σ exp((R − max R)/λ),
    the same numbers, and the best sample always gets exp(0) = 1 before normalising.
    """
    z = (returns - returns.max()) / temperature
    w = np.exp(z)
    return w / w.sum()


def effective_sample_size(weights: np.ndarray) -> float:
    """ESS = 1 / Σ_k (w^k)² (Kish): K for equal weights, 1 when one sample takes all. Near 1: λ is too small (the plan
    follows one lucky sample); near K: λ too large (the plan barely moves from the prior's mean)."""
    return float(1.0 / np.square(weights).sum())


def mppi_update(actions: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """U ← Σ_k w^k V^k: (K, H, A), (K,) -> (H, A), the posterior mean of the action sequence."""
    assert actions.shape[0] == weights.shape[0]
    return np.tensordot(weights, actions, axes=1)


def interpolation_matrices(horizon: int, knots: int) -> tuple:
    """The plan as n control points P (n, A) at steps τ_j = j·(H − 1)/(n − 1), read by linear interpolation:
    -> (S (H, n), T (n, n)), with the H actions U = S·P and the warm start P ← T·P, the plan read one step later.

        S[t] = the weights that interpolate between the knots around step t;  T[j] = the same at step min(τ_j + 1, H − 1)

    knots = 0 (or ≥ H) gives n = H, S = I and T·P = (u_1, ..., u_{H−1}, u_{H−1}): the notes' MPPI, where the executed
    u_0 leaves and the last action repeats. With n ≪ H the noise is a smooth, low-dimensional curve (Hopper: 4 points for
    100 steps): K samples search 4·A numbers instead of 100·A (the spline plans of MuJoCo MPC's predictive sampling,
    Howell et al. 2022, here linear).

    GOTCHA: with n < H the shift is approximate: T·P re-reads the spline one step later at the control points, and
    the line through those values bends at the old τ_j, not at τ_j − 1, so the shifted plan is close to, not exactly,
    the rest of the last one, and sample 0 (ε = 0) is that approximation. Planning all H actions with only the noise
    on the points makes the warm start exact; on Hopper it changed little (benchmark/dev/mppi_hopper_dev.py --exact 1).
    """
    n = horizon if knots == 0 else min(knots, horizon)
    tau = np.linspace(0.0, horizon - 1, n)  # the steps the control points sit at; τ_0 = 0, so u_0 = P_0
    eye = np.eye(n)

    def weights_at(steps: np.ndarray) -> np.ndarray:  # (m,) steps -> (m, n): interpolating each unit vector e_j
        return np.stack([np.interp(steps, tau, eye[j]) for j in range(n)], axis=1)
    return weights_at(np.arange(horizon, dtype=float)), weights_at(np.minimum(tau + 1, horizon - 1))


def angle_normalize(x: np.ndarray) -> np.ndarray:
    """θ wrapped to [−π, π), as gymnasium's Pendulum does."""
    return ((x + np.pi) % (2 * np.pi)) - np.pi


def pendulum_rollout_returns(theta: float, theta_dot: float, actions: np.ndarray, g: float, m: float, l: float,
                             dt: float, max_speed: float, max_torque: float) -> np.ndarray:
    """Pendulum-v1's own equations (gymnasium classic_control/pendulum.py), vectorised over K sequences:
    (θ, θ̇) and actions (K, H, 1) -> returns (K,).

        r_t = −(θ_t² + 0.1·θ̇_t² + 0.001·u_t²)                       (θ wrapped to [−π, π))
        θ̇_{t+1} = clip(θ̇_t + (3g/(2l)·sin θ_t + 3/(m l²)·u_t)·dt, −max_speed, max_speed)
        θ_{t+1} = θ_t + θ̇_{t+1}·dt
    """
    num = actions.shape[0]
    th, thdot, total = np.full(num, theta), np.full(num, theta_dot), np.zeros(num)  # (K,) each
    for t in range(actions.shape[1]):
        u = np.clip(actions[:, t, 0], -max_torque, max_torque)
        total -= angle_normalize(th) ** 2 + 0.1 * thdot ** 2 + 0.001 * u ** 2
        thdot = np.clip(thdot + (3 * g / (2 * l) * np.sin(th) + 3.0 / (m * l ** 2) * u) * dt, -max_speed, max_speed)
        th = th + thdot * dt
    return total


# InvertedPendulum's planning cost c(s) = sᵀ diag(w) s on s = (x, θ, ẋ, θ̇) (x the cart on its ±1 rail, θ the pole):
# (θ/0.2)² + x² + ẋ² + 0.01·θ̇², and the LQR's action weight (below); the terminal value's cap.
IP_STATE_WEIGHTS = np.array([1.0, 1 / 0.2 ** 2, 1.0, 0.01])


IP_ACTION_WEIGHT = 0.01


IP_TERMINAL_CAP = 50.0


def planning_reward_inverted_pendulum(qpos: np.ndarray, qvel: np.ndarray, actions: np.ndarray) -> tuple:
    """InvertedPendulum-v4, from states after each step: qpos, qvel (K, H, 2), actions (K, H, 1) -> (rewards, alive),
    both (K, H).

    The env pays 1 per step while |θ| ≤ 0.2 (qpos[1], the pole's angle). A planner needs more than that: every
    sequence that keeps the pole up for H steps scores the same, so the weights are flat and the plan drifts. The
    planning reward adds a slope towards the same optimum:
        r_t = 1 + (1 − min(c_t, 2)),   c_t = (θ/0.2)² + x² + ẋ² + 0.01·θ̇²      (x = qpos[0]: the cart, rail ±1)
    GOTCHA: a step alive must never be worth less than a fall (0 from then on). With r = 1 − c, a sequence whose
    cart is far out has r < 0 and the planner prefers to drop the pole: clipping c at 2 keeps r ≥ 0.
    The ẋ² weight matters: with 0.1 instead of 1, K = 200, H = 15 (no terminal value) fell at 669 and 141 steps, the
    cart at the end of its rail.
    A sequence stops collecting reward at the step its pole falls.
    """
    theta = qpos[..., 1]
    alive = np.cumprod(np.abs(theta) <= 0.2, axis=1)  # 1 until the first fall, then 0
    cost = np.concatenate([qpos, qvel], axis=-1) ** 2 @ IP_STATE_WEIGHTS  # c_t, (K, H)
    return 2.0 - np.minimum(cost, 2.0), alive


def linearize_step(model, frame_skip: int, x0: np.ndarray, u0: np.ndarray, delta: float = 1e-6) -> tuple:
    """One gymnasium step s' = f(s, u) of a MuJoCo env (frame_skip physics steps, same control), linearised at (x0, u0)
    by central differences: f(x0 + δs, u0 + δu) ≈ f(x0, u0) + A·δs + B·δu with A = ∂f/∂s (n, n), B = ∂f/∂u (n, m),
    s = (qpos, qvel) (models with nq = nv).
    (InvertedPendulum's upright at rest is not quite an equilibrium: its pole's capsule leans 0.001 in 0.6, so
    f(0, 0) ≠ 0 by ~0.002 in θ̇. The LQR below ignores that offset; MPPI corrects for it, planning on the simulator.)

    GOTCHA: mujoco.mjd_transitionFD would do this, but refuses the RK4 integrator that InvertedPendulum uses.
    """
    data, nq = mujoco.MjData(model), model.nq

    def f(x: np.ndarray, u: np.ndarray) -> np.ndarray:
        mujoco.mj_resetData(model, data)
        data.qpos[:], data.qvel[:], data.ctrl[:] = x[:nq], x[nq:], u
        mujoco.mj_step(model, data, nstep=frame_skip)
        return np.concatenate([data.qpos, data.qvel])

    def jacobian(g, z: np.ndarray) -> np.ndarray:
        # ∂g/∂z_i ≈ (g(z + δe_i) − g(z − δe_i)) / 2δ, one column per coordinate
        return np.stack([(g(z + delta * e) - g(z - delta * e)) / (2 * delta) for e in np.eye(len(z))], axis=1)
    return jacobian(lambda x: f(x, u0), x0), jacobian(lambda u: f(x0, u), u0)


def lqr_value_matrix(A: np.ndarray, B: np.ndarray, Q: np.ndarray, R: np.ndarray, max_iters: int = 10_000,
                     tol: float = 1e-10) -> np.ndarray:
    """P of the infinite-horizon LQR: for s' = As + Bu and cost Σ_t s_tᵀQs_t + u_tᵀRu_t, the least cost from s is sᵀPs.

    The Riccati recursion is value iteration on quadratic value functions, started at V = sᵀQs and run to its fixed
    point (the discrete algebraic Riccati equation):
        L = (R + BᵀPB)⁻¹ BᵀPA          the optimal gain, u = −Ls
        P ← Q + Aᵀ P (A − BL)
    """
    P = Q.copy()
    for _ in range(max_iters):
        L = np.linalg.solve(R + B.T @ P @ B, B.T @ P @ A)
        P_next = Q + A.T @ P @ (A - B @ L)
        if np.max(np.abs(P_next - P)) <= tol * max(1.0, np.max(np.abs(P))):
            return P_next
        P = P_next
    raise RuntimeError("the Riccati recursion did not converge: (A, B) is not stabilisable")


def terminal_value_inverted_pendulum(qpos: np.ndarray, qvel: np.ndarray, P: np.ndarray) -> np.ndarray:
    """V(s_H) = F − min(s_HᵀPs_H, F) for the states at the end of the horizon, qpos, qvel (K, 2) -> (K,).

    Williams et al. 2017's cost has a terminal term φ(s_H) beside the running cost. Near the upright the dynamics are
    linear, so the cost still to come after s_H is, under the best controller, the LQR's s_HᵀPs_H (P from the
    simulator's own linearisation, lqr_value_matrix). With it a short horizon sees what a long one would: H = 5 and
    K = 32 balance every episode tried (30 of 30; docs/mppi.md); without it the same K and H fall after ~100
    steps, and K = 32, H = 15 after 50–480 steps.
    GOTCHA: as with the running reward, a pole still up must be worth at least a fallen one (V = 0, see
    mujoco_returns): the cap F keeps V ≥ 0.
    """
    s = np.concatenate([qpos, qvel], axis=-1)  # (K, 4)
    cost_to_go = np.einsum("ki,ij,kj->k", s, P, s)
    return IP_TERMINAL_CAP - np.minimum(cost_to_go, IP_TERMINAL_CAP)


def hopper_env_reward(qpos: np.ndarray, qvel: np.ndarray, actions: np.ndarray, x_before: np.ndarray,
                      dt: float) -> tuple:
    """Hopper-v4's own reward, from states after each step: qpos, qvel (K, H, 6), actions (K, H, 3), x_before (K, H)
    the x position before each step -> (rewards, alive), both (K, H).

        r_t = 1 (healthy) + (x_{t+1} − x_t)/dt − 0.001·‖a_t‖²,  alive while z > 0.7, |angle| < 0.2, |state| < 100
    """
    z, angle = qpos[..., 1], qpos[..., 2]
    state = np.concatenate([qpos[..., 2:], qvel], axis=-1)
    healthy = (z > 0.7) & (np.abs(angle) < 0.2) & np.all(np.abs(state) < 100, axis=-1)
    alive = np.cumprod(healthy, axis=1)
    return 1.0 + (qpos[..., 0] - x_before) / dt - 1e-3 * np.square(actions).sum(-1), alive


# Hopper's shaped planning reward (planning_reward_hopper): the targets and weights of its cost terms
HOPPER_HEIGHT, HOPPER_SPEED = 1.25, 2.5  # torso height z* (its height at reset), forward speed ẋ* (m/s)


HOPPER_WEIGHTS = dict(action=0.1, height=50.0, angle=3.0, speed=3.0)


HOPPER_FALLEN = 30.0  # cost per step after the env would have ended the episode


def planning_reward_hopper(qpos: np.ndarray, qvel: np.ndarray, actions: np.ndarray, alive: np.ndarray) -> np.ndarray:
    """The reward MPPI plans Hopper with: qpos, qvel (K, H, 6), actions (K, H, 3), alive (K, H) from hopper_env_reward
    -> r (K, H). A cost of quadratic residuals, as MuJoCo MPC's planar walker task has them (Howell et al. 2022):

        r_t = −[0.1·‖a_t‖² + 50·(z − 1.25)² + 3·θ² + 3·(ẋ − 2.5)²]   while alive,   −30 after the fall

    Why not the env's own reward (--hopper-reward env): 1 + ẋ per step pays for speed now, and a sample of 0.3–0.8 s
    that dives forward (ẋ → 3.5 while the torso sinks from 1.25 to 0.7) out-earns one that stays up, because no sampled
    sequence lives long enough to see what the dive costs later. It falls after 120–280 steps (return ~300–860) whatever
    K, H, λ, σ or the knots were in earlier development runs; docs/mppi.md's row: 443 ± 54. Here the speed is a target,
    not a payment (ẋ beyond 2.5 costs), the torso's height and angle are held near their standing values at every step,
    where the env only checks them against its limits (z > 0.7, |θ| < 0.2), and a fall costs more per step (30) than any
    upright state usually does (standing still costs 3·2.5² ≈ 19), so dying early rarely pays. The weights are from a
    handful of one-episode development runs (benchmark/dev/mppi_hopper_dev.py): with height weight 10 the torso sank below
    0.7 within 265–438 steps; with 50, two episodes of four lived the 1000 steps (1,829 with ẋ* = 2, 1,980 with 2.5). It
    is not reliable yet: the benchmark's episodes still fall (docs/mppi.md); a fall cost of 100 is too careful (~1 per step).
    Other costs, more samples, a cheaper integrator and a terminal value fitted to the planner's own episodes did not
    make it steadier either (benchmark/dev/mppi_hopper_dev.py's docstring).
    """
    z, angle, speed = qpos[..., 1], qpos[..., 2], qvel[..., 0]
    w = HOPPER_WEIGHTS
    cost = (w["action"] * np.square(actions).sum(-1) + w["height"] * (z - HOPPER_HEIGHT) ** 2
            + w["angle"] * angle ** 2 + w["speed"] * (speed - HOPPER_SPEED) ** 2)
    return np.where(alive > 0, -cost, -HOPPER_FALLEN)


def gaussian_nll(mean: torch.Tensor, logvar: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """−log N(y; μ, diag σ²) up to the constant ½·D·log 2π, averaged over members and batch: (E, B, D) -> scalar.

    The notes' model learning: max E_p[log p̂(s_{t+1}|s_t, a_t) + log p̂(O_t|s_t, a_t)], supervised learning of the
    dynamics and the reward, here with one Gaussian over y = (Δs, r).
        −log N = ½ Σ_d [ (y_d − μ_d)²/σ_d² + log σ_d² ]
    """
    assert mean.shape == logvar.shape == target.shape
    return 0.5 * ((target - mean).pow(2) * torch.exp(-logvar) + logvar).sum(-1).mean()


# ── Training loop [S1 refit the model -> S2 sample -> S3 weight, average -> S4 execute, shift] ─────
def true_model(env: gym.Env, env_id: str, threads: int, terminal_value: bool = True, hopper_reward: str = "shaped"):
    """The simulator as MPPI's model: returns a function (actions (K, H, A)) -> returns (K,) from the env's current
    state, or raises UserError for an env whose reward this file does not recompute."""
    inner = env.unwrapped
    if env_id.startswith("Pendulum-"):
        def pendulum_returns(actions: np.ndarray) -> np.ndarray:
            theta, theta_dot = inner.state  # the env's true state (θ, θ̇), not its observation (cos θ, sin θ, θ̇)
            return pendulum_rollout_returns(theta, theta_dot, actions, inner.g, inner.m, inner.l, inner.dt,
                                            inner.max_speed, inner.max_torque)
        return pendulum_returns
    rewards = {"InvertedPendulum": "inverted_pendulum", "Hopper": "hopper"}
    name = env_id.split("-")[0]
    if name not in rewards or not hasattr(inner, "model"):
        raise UserError(f"--model true knows the simulator of Pendulum-v1, InvertedPendulum-v4 and Hopper-v4, not "
                        f"{env_id} (its reward would have to be recomputed from states); use --model learned")
    model, data, frame_skip = inner.model, inner.data, inner.frame_skip
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    state = np.zeros(mujoco.mj_stateSize(model, spec))  # (1 + nq + nv + ...): time, qpos, qvel, act, ...
    datas = [mujoco.MjData(model) for _ in range(threads or os.cpu_count())]  # one MjData per thread of mujoco.rollout
    nq, nv = model.nq, model.nv
    if name == "InvertedPendulum":
        # the LQR cost-to-go about the upright at rest, for the terminal value (terminal_value_inverted_pendulum)
        A, B = linearize_step(model, frame_skip, np.zeros(nq + nv), np.zeros(model.nu))
        P = lqr_value_matrix(A, B, np.diag(IP_STATE_WEIGHTS), IP_ACTION_WEIGHT * np.eye(model.nu))

    def mujoco_returns(actions: np.ndarray) -> np.ndarray:
        mujoco.mj_getState(model, data, state, spec)  # a copy of the env's physics state, s_t
        # GOTCHA: a gymnasium step is frame_skip physics steps with the same control; MuJoCo's rollout takes one
        # control per physics step, so each action is repeated frame_skip times.
        controls = np.repeat(actions, frame_skip, axis=1)  # (K, H·frame_skip, A)
        states, _ = mujoco.rollout.rollout(model, datas, state[None], controls)  # (K, H·frame_skip, nstate)
        after = states[:, frame_skip - 1::frame_skip]  # the state after each env step, (K, H, nstate)
        qpos, qvel = after[..., 1:1 + nq], after[..., 1 + nq:1 + nq + nv]
        if name == "InvertedPendulum":
            r, alive = planning_reward_inverted_pendulum(qpos, qvel, actions)
            # R^k = Σ_t r_t·alive_t + alive_H·V(s_H): a sequence whose pole fell gets no terminal value
            value = terminal_value_inverted_pendulum(qpos[:, -1], qvel[:, -1], P) if terminal_value else 0.0
            return (r * alive).sum(axis=1) + alive[:, -1] * value
        else:
            x_before = np.concatenate([np.full((len(actions), 1), data.qpos[0]), qpos[:, :-1, 0]], axis=1)  # (K, H)
            r, alive = hopper_env_reward(qpos, qvel, actions, x_before, inner.dt)
            if hopper_reward == "shaped":
                return planning_reward_hopper(qpos, qvel, actions, alive).sum(axis=1)  # (the fall is in it)
        # R^k = Σ_t r_t·alive_t: a sequence collects nothing after the step where its episode would have ended
        return (r * alive).sum(axis=1)
    return mujoco_returns


def mppi_plan(plan: np.ndarray, returns_fn, rng: np.random.Generator, sigma: np.ndarray, low: np.ndarray,
              high: np.ndarray, num_samples: int, iterations: int, temperature: float,
              spline: Optional[np.ndarray] = None) -> tuple:
    """[S2]–[S3] of the docstring at the current state: the updated plan (n, A), and the last round's weights (K,).
    The plan holds n control points, the H actions are spline·plan (interpolation_matrices); spline None: n = H."""
    spline = np.eye(len(plan)) if spline is None else spline  # (H, n)
    for _ in range(iterations):
        # [S2] V^k = clip(U + ε^k), ε^k ~ N(0, σ²I): K sequences drawn from the action prior around the plan
        eps = rng.standard_normal((num_samples, *plan.shape)) * sigma  # (K, n, A)
        # TRICK (ours, measured on InvertedPendulum): sample 0 is the plan itself, ε^0 = 0, so the weights can always
        # keep what the last step planned. With few samples every noisy sequence may be worse than the warm-started
        # plan, and their average then throws a good plan away (InvertedPendulum, K = 32, episodes capped at 300
        # steps: 74 and 168 without it, 300 and 300 with it).
        eps[0] = 0.0
        points = np.clip(plan + eps, low, high)  # (K, n, A), clipped at the control points: ...
        actions = np.einsum("hn,kna->kha", spline, points)  # (K, H, A), ... interpolation keeps them in the bounds
        returns = returns_fn(actions)  # R^k through the model, (K,)
        # [S3] the Monte-Carlo posterior: w^k ∝ exp(R^k/λ), and the plan moves to the weighted average
        weights = mppi_weights(returns, temperature)
        plan = mppi_update(points, weights)  # (S·Σ w^k P^k = Σ w^k S·P^k: averaging points averages the actions)
    return plan, weights


def main(args: Args) -> dict:
    """Plan (and with --model learned, collect data and fit the model first), evaluate, save; returns the summary."""
    resumed = None  # the checkpoint.pt of the run that --resume continues
    if args.resume is not None:
        args, resumed = resume_args(args, "mppi.py")
    fill_presets(args)
    check_args(args)
    make_output_folder(args.runs_dir)  # now, so that a bad path fails before anything runs
    if args.capture_video and "DISPLAY" not in os.environ:
        # GOTCHA: MuJoCo renders through GLFW by default, which needs a screen; headless machines use EGL.
        os.environ.setdefault("MUJOCO_GL", "egl")
    seed_everything(args.seed, args.torch_deterministic)
    torch.set_num_threads(args.torch_threads)
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")

    env = make_env(args.env, render_mode="rgb_array" if args.capture_video else None)
    obs_dim, act_dim, _ = check_spaces(env, args.env, discrete_ok=False)
    low, high = env.action_space.low.astype(np.float64), env.action_space.high.astype(np.float64)
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        raise UserError(f"{args.env} has unbounded actions ({env.action_space}); MPPI needs finite bounds: its noise σ "
                        f"is a fraction of the action range and its samples are clipped to it")
    ckpt = load_checkpoint(args.checkpoint, args) if args.checkpoint is not None else None  # may set K, H, λ, σ, ...
    if args.model == "learned" and args.num_samples % args.ensemble_size:
        raise UserError(f"--num-samples ({args.num_samples}) must be a multiple of --ensemble-size "
                        f"({args.ensemble_size}): each member rolls out an equal share")
    returns_of_true = None
    if args.model == "true":
        returns_of_true = true_model(env, args.env, args.rollout_threads, args.terminal_value, args.hopper_reward)
    sigma = args.noise_std * (high - low) / 2  # σ per action dimension, (A,)
    spline, shift = interpolation_matrices(args.horizon, args.knots)  # (H, n), (n, n); n = H with --knots 0

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
    rng = np.random.default_rng(args.seed)  # the planner's noise
    start_time, global_step, train_returns, extra = time.time(), 0, [], {}
    ensemble, stats = None, None

    if args.model == "learned":
        ensemble = Ensemble(args.ensemble_size, obs_dim + act_dim, obs_dim + 1, args.model_hidden_size).to(device)
        if ckpt is not None:
            ensemble.load_state_dict(ckpt["ensemble"])
            stats = {k: torch.as_tensor(v, device=device) for k, v in ckpt["stats"].items()}
        else:
            optimizer = torch.optim.Adam(ensemble.parameters(), lr=args.model_learning_rate)
            model_rng = torch.Generator(device=device).manual_seed(args.seed)
            data = {k: np.zeros((args.total_timesteps, d), np.float64)
                    for k, d in (("obs", obs_dim), ("act", act_dim), ("rew", 1), ("next_obs", obs_dim))}
            # GOTCHA: each transition is assigned to the training or the held-out set once, as it is collected, and
            # keeps it: a split redrawn at every refit would hold out transitions the carried-over ensemble has
            # already been trained on, and the "held-out" error would flatter the model.
            data["holdout"] = np.random.default_rng(args.seed + 2).random(args.total_timesteps) < args.holdout_fraction
            data["holdout"][0] = False  # (so that the first fit has a transition to train on)
            obs, _ = env.reset(seed=args.seed)
            plan, ep_return, ep_length = np.zeros((len(shift), act_dim)), 0.0, 0
            start_step = 1
            if resumed is not None:  # --resume: put back everything the loop carries from one step to the next
                set_rng_states(resumed["rng"])
                ensemble.load_state_dict(resumed["ensemble"])
                optimizer.load_state_dict(resumed["optimizer"])
                model_rng.set_state(resumed["model_rng"])
                global_step, stats, extra = resumed["global_step"], resumed["stats"], resumed["extra"]
                for key, saved in resumed["data"].items():
                    data[key][:global_step] = saved
                rng, obs, plan = resumed["planner_rng"], resumed["obs"], resumed["plan"]
                ep_return, ep_length = resumed["ep_return"], resumed["ep_length"]
                train_returns = resumed["train_returns"]
                env.close()
                env, start_step = set_env_state(resumed["env"]), global_step + 1
                start_time = time.time() - resumed["train_time"]

            with StopSignals() as stop:  # Ctrl-C or SIGTERM: finish this step, write checkpoint.pt, stop
                for global_step in range(start_step, args.total_timesteps + 1):
                    if global_step <= args.random_steps:
                        action = rng.uniform(low, high)  # the model knows nothing yet
                    else:
                        returns_fn = learned_model(ensemble, stats, obs, args, low, high, model_rng, device)
                        plan, weights = mppi_plan(plan, returns_fn, rng, sigma, low, high, args.num_samples,
                                                  args.iterations, args.temperature, spline)
                        action = plan[0]  # u_0 = P_0 (τ_0 = 0)
                        plan = shift @ plan  # [S4] warm start
                    next_obs, reward, terminated, truncated, _ = env.step(action.astype(np.float32))
                    i = global_step - 1
                    data["obs"][i], data["act"][i], data["rew"][i], data["next_obs"][i] = obs, action, reward, next_obs
                    obs, ep_return, ep_length = next_obs, ep_return + float(reward), ep_length + 1
                    if terminated or truncated:
                        train_returns.append(ep_return)
                        writer.add_scalar("charts/episodic_return", ep_return, global_step)
                        writer.add_scalar("charts/episodic_length", ep_length, global_step)
                        print(f"step {global_step:>7,}  episode return {ep_return:9.1f}", flush=True)
                        obs, _ = env.reset()
                        plan, ep_return, ep_length = np.zeros((len(shift), act_dim)), 0.0, 0
                    # [S1] refit p̂ on every transition so far: after the random steps, then every --refit-every steps
                    if global_step >= args.random_steps and (global_step - args.random_steps) % args.refit_every == 0:
                        n = global_step
                        stats, holdout_mse = fit_model(ensemble, optimizer, {k: v[:n] for k, v in data.items()}, args,
                                                       low, high, model_rng, device)
                        writer.add_scalar("losses/model_holdout_mse", holdout_mse, global_step)
                        check_finite(run_dir, global_step, **{"the model": ensemble})
                        extra["model_holdout_mse"] = holdout_mse

                    # Safe point, after step `global_step`.
                    if stop.received or checkpoint_due(global_step - 1, global_step, args.checkpoint_every):
                        check_finite(run_dir, global_step, **{"the model": ensemble},
                                     **({} if stats is None else {"the model's statistics": stats["y_std"]}))
                        save_training_state(run_dir, {
                            "script": "mppi.py", "global_step": global_step, "train_time": time.time() - start_time,
                            "ensemble": ensemble.state_dict(), "optimizer": optimizer.state_dict(),
                            "model_rng": model_rng.get_state(), "stats": stats, "extra": extra,
                            "data": {k: v[:global_step] for k, v in data.items()}, "planner_rng": rng, "obs": obs,
                            "plan": plan, "ep_return": ep_return, "ep_length": ep_length,
                            "train_returns": train_returns, "env": env_state(env)})
                    if stop.received:
                        writer.close()
                        raise Interrupted(stop_line("mppi.py", stop.received, global_step, run_dir))
            extra["transitions"] = args.total_timesteps

    # model.pt before the evaluation: a failure there (a missing video codec, an env error) must not lose the model
    if args.save_model and args.checkpoint is None:
        atomic_torch_save({
            "script": "mppi.py", "env": args.env, "args": dataclasses.asdict(args),
            "ensemble": None if ensemble is None else {k: v.detach().cpu().clone() for k, v in ensemble.state_dict().items()},
            "stats": None if stats is None else {k: v.detach().cpu().clone() for k, v in stats.items()},
        }, os.path.join(run_dir, "model.pt"))
        remove_checkpoint(run_dir)

    # The evaluation: eval_episodes episodes, each action planned by MPPI on the model from the true current state.
    eval_returns, plan_times, ess_values = [], [], []
    if args.capture_video:
        env = gym.wrappers.RecordVideo(env, os.path.join(run_dir, "videos"), episode_trigger=lambda i: True,
                                       disable_logger=True)
    # fresh generators for the evaluation, so that --checkpoint replays exactly the episodes the run ended with
    rng, model_rng = np.random.default_rng(args.seed + 1), torch.Generator(device=device).manual_seed(args.seed + 1)
    for i in range(args.eval_episodes):
        obs, _ = env.reset(seed=args.eval_seed + i)
        plan, total, done = np.zeros((len(shift), act_dim)), 0.0, False  # U = 0
        while not done:
            t0 = time.perf_counter()
            returns_fn = (returns_of_true if args.model == "true"
                          else learned_model(ensemble, stats, obs, args, low, high, model_rng, device))
            plan, weights = mppi_plan(plan, returns_fn, rng, sigma, low, high, args.num_samples, args.iterations,
                                      args.temperature, spline)
            action = plan[0]
            # [S4] execute u_0; the rest of the plan, shifted, is the next step's prior
            plan = shift @ plan
            plan_times.append(time.perf_counter() - t0)
            ess_values.append(effective_sample_size(weights))
            obs, reward, terminated, truncated, _ = env.step(action.astype(np.float32))
            total, done = total + float(reward), terminated or truncated
        eval_returns.append(total)
        print(f"evaluation episode {i + 1}/{args.eval_episodes}: return {total:.1f}, "
              f"{1000 * np.median(plan_times):.2f} ms per control step so far", flush=True)
    env.close()
    if plan_times:
        # Diagnostics: planning time per control step, and the ESS of the weights (near 1: λ too small)
        extra.update(plan_ms_mean=1000 * float(np.mean(plan_times)), plan_ms_median=1000 * float(np.median(plan_times)),
                     ess_mean=float(np.mean(ess_values)))
        writer.add_scalar("charts/plan_ms", extra["plan_ms_mean"], global_step)
        writer.add_scalar("losses/ess", extra["ess_mean"], global_step)
    train_time = time.time() - start_time
    summary = finish(args, run_dir, writer, np.asarray(eval_returns), ensemble, stats, global_step, train_time,
                     train_returns, extra)
    writer.close()
    return summary


def scale_actions(actions, low, high):
    """a -> 2·(a − low)/(high − low) − 1 ∈ [−1, 1] (numpy or torch)."""
    return 2 * (actions - low) / (high - low) - 1


def fit_model(ensemble: Ensemble, optimizer, data: dict, args: Args, low, high, generator, device) -> tuple:
    """[S1] maximum likelihood: fit every member to y = (Δs, r) given (s, a) on a bootstrap of the training
    transitions; returns the normalisation statistics and the one-step error on the held-out transitions
    (data["holdout"], fixed per transition when it was collected; NaN while none is held out yet)."""
    holdout, train = np.flatnonzero(data["holdout"]), np.flatnonzero(~data["holdout"])
    x_obs, x_act = data["obs"], scale_actions(data["act"], low, high)
    y = np.concatenate([data["next_obs"] - data["obs"], data["rew"]], axis=1)  # (n, S + 1): Δs and r
    # statistics of the training transitions: inputs and targets are standardised (GOTCHA: Pendulum's θ̇ is ±8 while
    # cos θ is ±1, and a reward of −16 next to Δs of 0.01 would dominate an unscaled loss)
    stats = {"obs_mean": x_obs[train].mean(0), "obs_std": x_obs[train].std(0) + 1e-6,
             "y_mean": y[train].mean(0), "y_std": y[train].std(0) + 1e-6}
    stats = {k: torch.as_tensor(v, dtype=torch.float32, device=device) for k, v in stats.items()}
    to = lambda a: torch.as_tensor(a, dtype=torch.float32, device=device)  # noqa: E731
    x = torch.cat([(to(x_obs) - stats["obs_mean"]) / stats["obs_std"], to(x_act)], dim=1)  # (n, S + A)
    y = (to(y) - stats["y_mean"]) / stats["y_std"]  # (n, S + 1)
    train_t = torch.as_tensor(train, device=device)
    num_members, batch = args.ensemble_size, args.model_batch_size
    for _ in range(args.model_epochs):
        # TRICK (Chua et al. 2018): each member sees its own bootstrap resample, so the members disagree where data
        # are thin; drawn afresh every epoch here (SIMPLIFICATION of one fixed bootstrap per member).
        boot = train_t[torch.randint(len(train), (num_members, len(train)), generator=generator, device=device)]
        for start in range(0, len(train), batch):
            idx = boot[:, start:start + batch]  # (E, B)
            mean, logvar = ensemble(x[idx])
            loss = gaussian_nll(mean, logvar, y[idx])
            # TRICK (Chua et al. 2018): a small pull on the log-variance bounds keeps them tight
            loss = loss + 0.01 * (ensemble.max_logvar.sum() - ensemble.min_logvar.sum())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    if len(holdout) == 0:
        return stats, float("nan")
    with torch.no_grad():
        mean, _ = ensemble(x[holdout][None].expand(num_members, -1, -1))
        holdout_mse = float((mean.mean(0) - y[holdout]).pow(2).mean())  # in standardised units: 1 = no better than the mean
    return stats, holdout_mse


def learned_model(ensemble: Ensemble, stats: dict, obs: np.ndarray, args: Args, low, high, generator, device):
    """The ensemble as MPPI's model from observation s: returns a function (actions (K, H, A)) -> returns (K,).

    Sample k rolls through member k mod E, drawing s_{t+1} = s_t + Δs and r from that member's Gaussian at every step
    (PETS's trajectory sampling: a sample keeps its member, so the spread of the K returns shows the model's
    uncertainty as well as the action noise).
    SIMPLIFICATION: the model has no notion of an episode's end; use it on tasks that do not terminate (Pendulum).
    """
    num_members = args.ensemble_size
    low_t, high_t = (torch.as_tensor(v, dtype=torch.float32, device=device) for v in (low, high))

    def returns_fn(actions: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            k, horizon, _ = actions.shape
            a = scale_actions(torch.as_tensor(actions, dtype=torch.float32, device=device), low_t, high_t)
            a = a.reshape(k // num_members, num_members, horizon, -1).transpose(0, 1)  # (E, K/E, H, A), k -> k mod E
            s = torch.as_tensor(obs, dtype=torch.float32, device=device).expand(num_members, k // num_members, -1)
            total = torch.zeros(num_members, k // num_members, device=device)
            for t in range(horizon):
                x = torch.cat([(s - stats["obs_mean"]) / stats["obs_std"], a[:, :, t]], dim=-1)  # (E, K/E, S + A)
                mean, logvar = ensemble(x)
                y = mean + torch.exp(0.5 * logvar) * torch.randn(mean.shape, generator=generator, device=device)
                y = y * stats["y_std"] + stats["y_mean"]  # (E, K/E, S + 1): Δs and r in the env's units
                s, total = s + y[..., :-1], total + y[..., -1]
            return total.transpose(0, 1).reshape(k).cpu().numpy().astype(np.float64)
    return returns_fn


# ── Evaluation ─────────────────────────────────────────────────────────────────────────────────────
def finish(args: Args, run_dir: str, writer: SummaryWriter, eval_returns: np.ndarray, ensemble: Optional[Ensemble],
           stats: Optional[dict], global_step: int, train_time: float, train_returns: list, extra: dict) -> dict:
    """summary.json (model.pt, the planner's settings and the fitted ensemble, is written before the evaluation)."""
    if len(eval_returns):
        writer.add_scalar("eval/return", float(eval_returns.mean()), global_step)
    summary = {
        "script": "mppi.py", "env": args.env, "seed": args.seed, "env_steps": global_step,  # steps of data collected
        "wall_time_s": round(train_time, 1), "sps": round(global_step / train_time) if global_step else 0,
        "eval_episodes": len(eval_returns),
        "eval_return_mean": float(eval_returns.mean()) if len(eval_returns) else None,
        "eval_return_std": float(eval_returns.std()) if len(eval_returns) else None,
        "eval_returns": [float(r) for r in eval_returns],
        "train_return_last100": float(np.mean(train_returns[-100:])) if train_returns else None,
        "checkpoint": args.checkpoint, "run_dir": run_dir,
        "model": args.model, "num_samples": args.num_samples, "horizon": args.horizon,
        "temperature": args.temperature, "noise_std": args.noise_std,
    } | extra
    atomic_write_text(os.path.join(run_dir, "summary.json"), json.dumps(summary, indent=2))
    if len(eval_returns):
        print(f"planning: {summary['plan_ms_median']:.2f} ms per control step (median), ESS {summary['ess_mean']:.1f} "
              f"of K = {args.num_samples}")
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
        (args.num_samples >= 2 and args.horizon >= 1 and args.iterations >= 1,
         "--num-samples must be at least 2 (sample 0 is the plan itself), --horizon and --iterations at least 1"),
        (args.knots >= 0, "--knots must be >= 0 (0: a control point at every step)"),
        (args.temperature > 0, "--temperature must be positive (λ → 0 is argmax: take a small one, e.g. 1e-3)"),
        (args.noise_std > 0, "--noise-std must be positive"),
        (args.rollout_threads >= 0 and args.torch_threads >= 1, "--rollout-threads must be >= 0, --torch-threads >= 1"),
        (args.eval_episodes >= 1 or args.model == "learned", "--eval-episodes must be at least 1 with --model true (they are the run)"),
        (args.eval_episodes >= 0, "--eval-episodes must be >= 0"),
        (args.ensemble_size >= 1 and args.model_hidden_size >= 1, "--ensemble-size and --model-hidden-size must be at least 1"),
        (args.model_learning_rate > 0 and args.model_epochs >= 1 and args.model_batch_size >= 1,
         "--model-learning-rate must be positive, --model-epochs and --model-batch-size at least 1"),
        (args.refit_every >= 1 and args.random_steps >= 1, "--refit-every and --random-steps must be at least 1"),
        (args.model == "true" or args.checkpoint is not None or args.total_timesteps >= args.random_steps,
         f"--total-timesteps ({args.total_timesteps}) must cover the --random-steps ({args.random_steps}) the model is first fitted on"),
        (0 < args.holdout_fraction < 1, "--holdout-fraction must be in (0, 1)"),
        # options that only one env's true model reads: elsewhere they would be silently ignored
        (args.hopper_reward == "shaped" or (args.env.startswith("Hopper-") and args.model == "true"),
         f"--hopper-reward env is for Hopper with --model true (it picks the reward its true model plans on), "
         f"not {args.env} with --model {args.model}"),
        (args.terminal_value or (args.env.startswith("InvertedPendulum-") and args.model == "true"),
         f"--no-terminal-value is for InvertedPendulum with --model true (the only env given a terminal value), "
         f"not {args.env} with --model {args.model}"),
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


PLANNER_KEYS = ("model", "num_samples", "horizon", "temperature", "noise_std", "knots", "iterations",
                "terminal_value", "hopper_reward", "ensemble_size", "model_hidden_size")


def load_checkpoint(path: str, args: Args) -> dict:
    """Read a model.pt written by this script and take its planner settings (and model kind) into args."""
    if not os.path.isfile(path):
        raise UserError(f"checkpoint '{path}' does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        # (torch's message runs to several lines; its first says what failed)
        raise UserError(f"cannot read checkpoint '{path}' as a model.pt written by mppi.py: "
                        f"{str(err).strip().splitlines()[0][:200]}") from None
    if not isinstance(ckpt, dict) or ckpt.get("script") != "mppi.py":
        raise UserError(f"'{path}' is not a model.pt written by mppi.py")
    if ckpt["env"] != args.env:
        raise UserError(f"checkpoint '{path}' was made on {ckpt['env']}, not {args.env} (pass --env {ckpt['env']})")
    for key in PLANNER_KEYS:
        setattr(args, key, ckpt["args"].get(key, getattr(args, key)))  # (a key newer than the checkpoint: as given)
    return ckpt


if __name__ == "__main__":
    try:
        main(tyro.cli(Args))
    except UserError as err:
        sys.exit(f"mppi.py: error: {err}")
    except Interrupted as err:
        print(err, file=sys.stderr)
        sys.exit(130)
    except KeyboardInterrupt:
        print("mppi.py: interrupted; the run directory keeps its last checkpoint.pt, if one was written",
              file=sys.stderr)
        sys.exit(130)
