"""Maximum-entropy inverse reinforcement learning on a known MDP: Ziebart's backward and forward passes, exactly;
beside it, the IRL it was invented to fix: max-margin feature matching and Abbeel & Ng's projection method.

Paper: Ziebart, Maas, Bagnell, Dey, "Maximum Entropy Inverse Reinforcement Learning" (AAAI 2008). Lecture notes:
../shared/seeds 000 ("Max Entropy Inverse RL": feature counts, the backward pass Z_a / Z_s, the local action
probabilities, the forward pass for the state visitation D, the gradient μ̃ − Σ_s D(s) x(s)) and 001 (the same
model from control as inference, the soft Bellman backup, and non-linear rewards: "replace w with θ and use autodiff").

The problem: an expert acts well under a reward R(s) we cannot see; we see m demonstrations τ_1..τ_m and the
dynamics P(s'|s, a). Find a reward r_θ(s) = wᵀx(s) (or a network) under which the expert's behaviour is likely.
MaxEnt IRL's model of behaviour: among all distributions over H-state trajectories that match the demos' feature
counts, the one of maximum entropy, which is the exponential family (notes 000)
    P(τ | w) = exp(wᵀμ_τ) Π_t P(s_{t+1}|s_t, a_t) / Z(w),       μ_τ = Σ_{t=0}^{H−1} x(s_t)
and w maximises the demos' log-likelihood L(w) = (1/m) Σ_j log P(τ_j | w), whose gradient is
    ∇L(w) = μ̃ − Σ_τ P(τ|w) μ_τ = μ̃ − Σ_s D(s) x(s),            μ̃ = (1/m) Σ_j μ_{τ_j}
with D(s) the expected number of visits to s under P(τ | w). D comes from two dynamic-programming passes over the
known MDP (notes 000), no sampling at all:

Pseudocode (the step tags appear in the training loop below):
    [S1] expert demonstrations: value iteration under the true reward R gives the optimal policy; run it in the env
    [S2] the demos' visitation D̃(s) = (1/m) Σ_j Σ_t 1[s_t^j = s], so that μ̃ = Σ_s D̃(s) x(s)
    repeat for --iterations:
      [S3] backward pass: Z_{s,0} = 1;  for k = 1..H:  Z_{a,k}(s,a) = Σ_s' P(s'|s,a) e^{r(s)} Z_{s,k−1}(s'),
                                                       Z_{s,k}(s) = Σ_a Z_{a,k}(s,a)
           local action probabilities  π_t(a|s) = Z_{a,H−t}(s,a) / Z_{s,H−t}(s)
           (default --backup soft: log Z_{a,k} = r(s) + Σ_s' P(s'|s,a) log Z_{s,k−1}(s'), notes 001; GOTCHA below)
      [S4] forward pass: D_0(s) = P(s_0 = s);  D_{t+1}(s') = Σ_s Σ_a D_t(s) π_t(a|s) P(s'|s,a);  D(s) = Σ_t D_t(s)
      [S5] gradient step on θ along μ̃ − Σ_s D(s) x(s) (for a network: autodiff of Σ_s (D̃(s) − D(s)) r_θ(s))
      [S6] log the demos' NLL, the expected value difference (EVD) and the reward correlation; a picture of r_θ
    finally: the MaxEnt-optimal policy under r_θ (the π_t of [S3], most likely action), its exact return under R
             and its return in the env; also the hard-max optimal policy under r_θ (value iteration), for comparison

--method max-margin (notes 001, "IRL v1 – max margin feature matching") and --method projection (Abbeel & Ng 2004,
notes 000's feature matching) compare policies through their feature expectations μ(π) = E_π[Σ_t x(s_t)], since
V^π = wᵀμ(π) under a linear reward. [S1], [S2] and [S6] as above (μ̃ = Σ_s D̃(s) x(s)); π_0 a random policy; then
    repeat for --iterations (or until nothing changes, --tolerance):
      [S7] max-margin: w = argmin_{w, ζ ≥ 0} ½‖w‖² + Cζ  s.t.  wᵀμ̃ ≥ wᵀμ(π_j) + D(π_j, π*) − ζ  for j = 0..i−1
           projection: w = μ̃ − μ̄_{i−1}, stop when ‖w‖₂ ≤ tolerance
      [S8] π_i ← the optimal policy for r_w(s) = wᵀx(s) (value iteration)
      [S9] μ(π_i) exactly (a forward pass) and its gap D(π_i, π*) join the set; projection moves μ̄ to the point of
           the segment [μ̄_{i−1}, μ(π_i)] closest to μ̃
    finally: max-margin answers w and the optimal policy under r_w; projection the mixture of π_0..π_i whose
             Σ_j λ_j μ(π_j) is closest to μ̃ (one policy drawn per episode)

--reward-on state-action | transition: r(s, a) or r(s, a, s') instead of r(s) (Taxi-v4 pays −10 for an illegal
drop-off; CliffWalking-v1 −100 for a step into the cliff). The derivation holds unchanged (notes 001's backup with the
reward inside the expectation over s'): [S3] log Z_{a,k}(s,a) = E_{s'}[r(s,a,s') + log Z_{s,k−1}(s')], the last action
unpaid; [S2] and [S4] count transitions instead of states, ρ̃(s,a,s') from the demos and ρ(s,a,s') =
Σ_{t<H−1} D_t(s) π_t(a|s) P(s'|s,a) from the model; [S5] steps along Σ (ρ̃ − ρ) x(s,a,s').

Run:
    python maxent_irl.py                                   # the built-in 10×10 gridworld (seconds on a CPU)
    python maxent_irl.py --env FrozenLake-v1               # gymnasium's slippery lake, from env.unwrapped.P
    python maxent_irl.py --features coords --reward-model mlp   # a network reward on (row, col) features
    python maxent_irl.py --method max-margin               # notes 001's IRL v1 on the same demos
    python maxent_irl.py --env FrozenLake-v1 --expert-noise 0.3 --method max-margin   # ... where it breaks
    python maxent_irl.py --env Taxi-v4 --reward-on transition   # a reward on (s, a, s'): 1.000 of the expert
What a working run reaches: 1.000 of the expert's true return on the gridworld and 0.99 on FrozenLake-v1, in
seconds (docs/maxent_irl.md, with the command behind each number).

Deviations from the paper and the notes:
  - DEVIATION: Ziebart runs the backward pass N times and acts with the last, stationary π(a|s). Here the horizon H is
    finite and the policy is π_t (one per step, from Z_{·,H−t}): with it the forward pass gives the exact visitation
    of P(τ|w) (tests/test_maxent_irl_math.py checks it against enumeration of every trajectory).
  - DEVIATION: P(s_0) in [S4] is the demos' empirical start distribution, which makes μ̃ − Σ D x the exact gradient
    of the demos' log-likelihood given their start states; the evaluation uses the env's true start distribution.
  - TRICK: both passes run in log space (logsumexp), so that e^{Σ r} over long horizons neither overflows nor underflows.
  - SIMPLIFICATION: Adam on −L instead of the paper's exponentiated gradient: the same fixed points, fewer step-size
    worries when features change scale.
  - GOTCHA: on stochastic dynamics P(τ|w) ∝ e^{R(τ)} Π P is only an approximation of behaviour (the "≈" in notes
    000): notes 000's backward pass lets the trajectory "choose its luck", log Z_a = r + log E_{s'}[e^{log Z_s'}]
    (optimistic). On FrozenLake, where each action slips to one of three cells, every action then has a lucky outcome
    and π_t stays near uniform whatever the reward: --backup ziebart learns nothing there (docs/maxent_irl.md). The default,
    --backup soft, is notes 001's soft Bellman backup, Q = r + E_{s'}[V], V = log Σ_a e^Q (maximum causal entropy,
    Ziebart 2010): the expectation over s' moves outside the log. On deterministic dynamics the two are identical
    (one s' per action), which is where the tests compare them with enumeration.
  - DEVIATION (max-margin): ½‖w‖² + Cζ instead of the notes' ‖w‖₂ + Cζ, the SVM form with an exact dual. Both trade
    the same two convex quantities, so as C runs over (0, ∞) they reach the same answers (at different C).
  - DEVIATION (max-margin, projection): μ(π) sums x(s_t) over the H states undiscounted, from the demos' start states,
    as MaxEnt's visitation does here; the notes' μ is discounted (γ^t D_t) over an infinite horizon.
  - DEVIATION (max-margin): the notes leave D(π, π*) open ("bigger for more different policies"); --margin visits
    takes the number of the H state visits that π spends elsewhere than the demos, ½ Σ_s |D^π(s) − D̃(s)|.
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
import numpy as np
import torch
import torch.nn as nn
import tyro
from torch.utils.tensorboard import SummaryWriter


# ── Hyperparameters (Args) ─────────────────────────────────────────────────────────────────────────
@dataclass


class Args:
    # --- common to every script (CONTRIBUTING.md); IRL on a known MDP takes no environment steps to train, so it has
    # no --total-timesteps (its budget is --iterations), and no --capture-video (the reward picture is logged instead)
    env: str = "gridworld"
    """'gridworld' (built in, below) or a gymnasium tabular id whose model is env.unwrapped.P: FrozenLake-v1,
    FrozenLake8x8-v1"""
    exp_name: str = "maxent_irl"
    """name of this experiment; part of the run directory name"""
    seed: int = 1
    """seed of python, numpy, torch, the demonstrations and the evaluation"""
    cuda: bool = True
    """run the passes on the GPU when one is available"""
    torch_deterministic: bool = True
    """make cuDNN deterministic"""
    torch_threads: int = 1
    """CPU threads for torch"""
    save_model: bool = True
    """write <run dir>/model.pt (the learned reward and the optimal policy under it)"""
    runs_dir: str = "runs"
    """parent folder of the run directories"""
    eval_episodes: int = 100
    """episodes of the final evaluation in the env of the optimal policy under the learned reward"""
    eval_seed: int = 10_000
    """evaluation episode i is reset with seed eval_seed + i"""
    checkpoint: Optional[str] = None
    """skip learning: load the reward from this model.pt written by maxent_irl.py, plan under it and evaluate"""
    checkpoint_every: int = 100
    """write <run dir>/checkpoint.pt (all that --resume needs) every this many iterations; 0: only on Ctrl-C/SIGTERM"""
    resume: Optional[str] = None
    """continue the run in this run directory from its checkpoint.pt, with its own arguments"""

    # --- the MDP ---
    grid_size: int = 10
    """side N of the built-in gridworld (N×N states)"""
    slip: float = 0.0
    """gridworld: probability that a move goes in a uniformly random direction instead (0: deterministic)"""
    horizon: Optional[int] = None
    """H, states per trajectory (H − 1 actions); default 2N for the gridworld, the env's time limit + 1 otherwise"""
    num_demos: int = 200
    """m: expert demonstrations (FrozenLake-v1 needs about 200: docs/maxent_irl.md)"""

    expert_noise: float = 0.0
    """probability that a demonstration step takes a uniformly random action instead of the expert's: a noisily
    optimal demonstrator (notes 001's second issue with max-margin); 0 for the optimal expert"""

    # --- the method ---
    method: Literal["maxent", "max-margin", "projection"] = "maxent"
    """maxent: Ziebart's MaxEnt IRL (notes 000, 001); max-margin: notes 001's IRL v1, structured max-margin feature
    matching with slack; projection: Abbeel & Ng's (2004) projection method, whose answer is a mixture of policies"""
    margin: Literal["visits", "uniform"] = "visits"
    """max-margin's gap D(π, π*): 'visits', how many of the H state visits π spends elsewhere than the demos (notes
    001's "bigger for more different policies"), or 'uniform', 1 for every π (notes 001's plain IRL v1)"""
    slack_c: float = 10.0
    """C, max-margin's price of the slack ζ (min ½‖w‖² + Cζ); large C: a hard margin where one exists"""
    tolerance: float = 1e-4
    """max-margin and projection stop early: max-margin when the new policy breaks no constraint by more than this,
    projection when ‖μ̃ − μ̄‖₂ (Abbeel & Ng's t) falls below it"""

    # --- the reward model and its optimisation ---
    reward_on: Literal["state", "state-action", "transition"] = "state"
    """what the learned reward depends on: r(s) (notes 000), r(s, a), or r(s, a, s') (Taxi-v4 pays on the action,
    e.g. −10 for an illegal drop-off); the features below are extended to actions and next states"""
    features: Literal["onehot", "coords"] = "onehot"
    """x(s): a one-hot vector per state (a reward table), or the (row, column) of the cell scaled to [0, 1]; with
    --reward-on state-action one-hot (s, a) or [x(s), one-hot a]; with transition one-hot (s, a, s') over the
    transitions the env can make, or [x(s), one-hot a, x(s')]"""
    reward_model: Literal["linear", "mlp"] = "linear"
    """r_θ(s) = wᵀx(s) (notes 000), or an MLP r_θ(x(s)) trained through autodiff (notes 001)"""
    hidden_size: int = 64
    """units in each of the two hidden layers of --reward-model mlp"""
    backup: Literal["soft", "ziebart"] = "soft"
    """backward pass: notes 001's soft Bellman backup log Z_a = r + Σ_s' P log Z_s' (maximum causal entropy), or
    notes 000's log Z_a = r + log Σ_s' P e^{log Z_s'} as printed (Ziebart 2008); the same on deterministic dynamics,
    and only the soft one fits stochastic dynamics (FrozenLake: GOTCHA in the docstring)"""
    iterations: int = 200
    """maxent: gradient steps on θ, each with one backward and one forward pass; max-margin and projection: rounds,
    each adding one policy (at most; they stop early, see --tolerance)"""
    learning_rate: float = 0.1
    """Adam step size on θ (maxent only)"""
    log_every: int = 10
    """compute the EVD and log the reward picture every this many iterations"""


# ── Environment model ──────────────────────────────────────────────────────────────────────────────
def tabular_model(env: gym.Env, env_id: str, reward_on: str = "state") -> dict:
    """The MDP as tensors, from P[s][a] = [(prob, next_state, reward, terminated), ...].

    GOTCHA: gymnasium's rewards belong to transitions (FrozenLake pays 1 on entering the goal); MaxEnt IRL's R(s)
    belongs to states. They agree when every transition into s' pays the same, R(s') (true of FrozenLake and the
    gridworld); with reward_on="state" an env whose reward depends on the action or the origin (Taxi, CliffWalking) is
    refused. With "state-action" or "transition" the true reward is the env's own r(s, a, s'), reward[s, a, k] (S+1,
    A, K), and the model's return Σ_{t<H−1} r(s_t, a_t, s_{t+1}) equals the env's whatever the start.
    GOTCHA: a terminated episode has no more rewards, but the trajectories here all have H states. So one extra
    absorbing state, "exit" (index S), follows every terminal state, with reward 0 and zero features: the model's
    return Σ_{t<H} R(s_t) then equals the env's return of an episode of H − 1 steps (the start cells pay 0).
    Successors are lists, not an S×A×S matrix: next_state[s, a, k] with probability prob[s, a, k] (k < K, padded with
    probability 0). The sums over s' in the passes are sums over k; a 100×100 grid needs 10⁴·5·5 entries, not 10⁴·5·10⁴.
    """
    unwrapped = env.unwrapped
    num_states, num_actions = int(env.observation_space.n), int(env.action_space.n)
    entered_reward, terminal = {}, np.zeros(num_states + 1, dtype=bool)
    width = max(len(unwrapped.P[s][a]) for s in range(num_states) for a in range(num_actions))
    next_state = np.full((num_states + 1, num_actions, width), num_states, dtype=np.int64)  # (S+1, A, K) padded: exit
    prob = np.zeros((num_states + 1, num_actions, width))  # (S+1, A, K)
    for s in range(num_states):
        for a in range(num_actions):
            for k, (p, s2, r, done) in enumerate(unwrapped.P[s][a]):
                next_state[s, a, k], prob[s, a, k] = s2, p
                terminal[s2] |= bool(done) and p > 0
    transition_reward = np.zeros((num_states + 1, num_actions, width))  # (S+1, A, K) r(s, a, s'_k)
    for s in np.flatnonzero(~terminal[:num_states]):  # (what a terminal state's own P says is never used: it is over)
        for a in range(num_actions):
            for k, (p, s2, r, _) in enumerate(unwrapped.P[s][a]):
                transition_reward[s, a, k] = r
                # R(s) exists only if every transition into s' pays the same
                if reward_on == "state" and p > 0 and entered_reward.setdefault(s2, r) != r:
                    raise UserError(f"{env_id}'s reward depends on the transition, not only on the state entered "
                                    f"(state {s2} pays both {entered_reward[s2]} and {r}): use --reward-on "
                                    f"transition (or state-action)")
    # Terminal states (and exit itself) move to exit whatever the action.
    absorbing = terminal.copy()
    absorbing[num_states] = True
    next_state[absorbing], prob[absorbing] = num_states, 0.0
    prob[absorbing, :, 0] = 1.0
    reward = np.zeros(num_states + 1)  # (S+1,) R(s) = the reward of entering s; exit pays 0
    for s2, r in entered_reward.items():
        reward[s2] = r
    if not hasattr(unwrapped, "initial_state_distrib"):
        raise UserError(f"{env_id} does not expose its start distribution (env.unwrapped.initial_state_distrib)")
    p0 = np.append(np.asarray(unwrapped.initial_state_distrib, dtype=np.float64), 0.0)  # (S+1,)
    if reward_on == "state" and np.any(reward[p0 > 0] != 0):
        raise UserError(f"{env_id} can start in a state that pays a reward; the return would differ from the env's")
    return {"next_state": next_state, "prob": prob, "reward": reward if reward_on == "state" else transition_reward,
            "p0": p0, "absorbing": absorbing, "num_states": num_states, "num_actions": num_actions}


def state_features(kind: str, env: gym.Env, env_id: str) -> np.ndarray:
    """x(s), (S+1, d): one-hot, or (row, col)/(side − 1); the exit state's row is all zeros (its reward is 0).
    (reward_features extends them to actions and transitions.)"""
    num_states = int(env.observation_space.n)
    if kind == "onehot":
        features = np.eye(num_states + 1)[:, :num_states]  # (S+1, S)
    else:
        nrow, ncol = getattr(env.unwrapped, "nrow", None), getattr(env.unwrapped, "ncol", None)
        if nrow is None or nrow * ncol != num_states:
            raise UserError(f"{env_id} is not a grid with nrow × ncol states: use --features onehot")
        rows, cols = np.divmod(np.arange(num_states), ncol)
        features = np.stack([rows / max(nrow - 1, 1), cols / max(ncol - 1, 1)], axis=1)  # (S, 2)
        features = np.vstack([features, np.zeros((1, 2))])  # (S+1, 2)
    return features


def reward_features(kind: str, reward_on: str, env: gym.Env, env_id: str, mdp: dict) -> np.ndarray:
    """The features the reward is linear in (or the input of its network), one row per reward entry:
        state:         x(s)                                          (S+1, d)
        state-action:  one-hot (s, a), or [x(s), one-hot a]          (S+1, A, K, d), the same for every k
        transition:    one-hot (s, a, s'_k) over the listed transitions, or [x(s), one-hot a, x(s')]   (S+1, A, K, d)
    Zero on absorbing states (terminal and exit: nothing is paid after the end) and on the padding (probability 0)."""
    x = state_features(kind, env, env_id)  # (S+1, d_x)
    if reward_on == "state":
        return x
    next_state, prob, absorbing = mdp["next_state"], mdp["prob"], mdp["absorbing"]
    num_states, num_actions, width = next_state.shape
    live = (prob > 0) & ~absorbing[:, None, None]  # (S+1, A, K) the entries a reward can be paid on
    if kind == "onehot":
        if reward_on == "state-action":
            features = np.zeros((num_states, num_actions, width, (num_states - 1) * num_actions))
            rows = np.arange((num_states - 1) * num_actions).reshape(num_states - 1, num_actions)  # (S, A) index
            features[:-1] = np.eye((num_states - 1) * num_actions)[rows][:, :, None, :]
        else:
            entries = np.flatnonzero(live)  # one feature per transition the env can make
            features = np.zeros((live.size, len(entries)))
            features[entries, np.arange(len(entries))] = 1.0
            features = features.reshape(num_states, num_actions, width, len(entries))
    else:
        actions = np.broadcast_to(np.eye(num_actions)[None, :, None, :], (num_states, num_actions, width, num_actions))
        parts = [np.broadcast_to(x[:, None, None, :], (num_states, num_actions, width, x.shape[1])), actions]
        if reward_on == "transition":
            parts.append(x[next_state])  # (S+1, A, K, d_x) x(s')
        features = np.concatenate(parts, axis=-1)
    return features * live[..., None]


# ── Networks ───────────────────────────────────────────────────────────────────────────────────────
class RewardModel(nn.Module):
    """r_θ for every reward entry at once: wᵀx (notes 000) or an MLP of x (notes 001), x from reward_features; held
    at 0 where nothing is paid (exit; with transitions also terminal states and padding): r_θ(s) (S+1,), or
    r_θ(s, a, s'_k) (S+1, A, K) with --reward-on state-action or transition."""

    def __init__(self, features: torch.Tensor, kind: str, hidden_size: int, real: Optional[torch.Tensor] = None):
        super().__init__()
        # (not saved in model.pt: rebuilt from the arguments, and a one-hot table over transitions is large)
        self.register_buffer("features", features, persistent=False)  # (S+1, d) or (S+1, A, K, d)
        if real is None:  # r(s): every state but exit
            real = torch.arange(len(features), device=features.device) < len(features) - 1
        self.register_buffer("real", real.to(features.dtype), persistent=False)  # features.shape[:-1]
        d = features.shape[-1]
        if kind == "linear":
            # w = 0: every trajectory equally likely, the maximum-entropy start.
            self.net = nn.Linear(d, 1, bias=False)
            nn.init.zeros_(self.net.weight)
        else:
            self.net = nn.Sequential(nn.Linear(d, hidden_size), nn.Tanh(), nn.Linear(hidden_size, hidden_size), nn.Tanh(),
                                     nn.Linear(hidden_size, 1))

    def forward(self) -> torch.Tensor:
        return self.net(self.features).squeeze(-1) * self.real  # (S+1,)


# ── Algorithm math: small pure functions, one per equation, importable by tests ────────────────────
# Notation (notes 000; S counts the exit state, K the successors listed per (s, a)):
#   reward        r(s) = wᵀx(s)                                (S,)       --reward-on state
#                 r(s, a, s'_k) = wᵀx(s, a, s'_k)              (S, A, K)  --reward-on state-action, transition
#   next_state    s' listed for (s, a)                         (S, A, K)  int
#   prob          P(s'|s, a) of each listed s'                 (S, A, K)
#   log_zs        log Z_{s,k}(s), k = 0..H                     (H+1, S)
#   log_pi        log π_t(a|s), t = 0..H−1                     (H, S, A)
#   visits        D_t(s), t = 0..H−1                           (H, S)     D(s) = Σ_t D_t(s)
#   demo_states   s_t^j of the m demos                         (m, H)     int
#   flows         ρ(s, a, k) = Σ_{t<H−1} D_t(s) π_t(a|s) P(s'_k|s, a), the expected transitions   (S, A, K)
# With a reward on transitions, a trajectory of H states is paid Σ_{t=0}^{H−2} r(s_t, a_t, s_{t+1}) (H − 1 moves);
# with a reward on states, Σ_{t=0}^{H−1} r(s_t). The two agree for r(s, a, s') = r(s') when r(s_0) = 0.
def backward_pass(reward: torch.Tensor, next_state: torch.Tensor, prob: torch.Tensor, horizon: int,
                  backup: str = "ziebart") -> tuple:
    """Notes 000, steps 1-3, in log space: returns (log_pi (H, S, A), log_zs (H+1, S)).

    With `backup="soft"`, notes 001's soft Bellman backup (expectation outside the log) replaces step 2's sum.
    A reward on transitions (S, A, K) moves inside the sum over s': Z_{a,k}(s,a) = Σ_s' P(s'|s,a) e^{r(s,a,s')}
    Z_{s,k−1}(s'), and the last action (k = 1) is paid nothing: its move would leave the horizon.
    """
    num_states, num_actions, _ = next_state.shape
    assert reward.shape in ((num_states,), next_state.shape) and prob.shape == next_state.shape
    log_prob = torch.log(prob)  # (S, A, K), −inf on padding
    # 1. Z_{s,0} = 1
    log_zs = [torch.zeros(num_states, dtype=reward.dtype, device=reward.device)]  # log Z_{s,k}, k = 0..H
    log_za = []  # log Z_{a,k}, k = 1..H
    for k in range(1, horizon + 1):
        nxt = log_zs[-1][next_state]  # (S, A, K) log Z_{s,k−1}(s') of each listed successor
        if reward.dim() == 3:  # r(s, a, s'): Q_t(s,a) = E_{s'}[r(s,a,s') + V_{t+1}(s')] (soft), or its log-mean-exp
            paid = (reward + nxt) if k > 1 else torch.zeros_like(nxt)  # (S, A, K)
            za = (prob * paid).sum(-1) if backup == "soft" else torch.logsumexp(log_prob + paid, dim=-1)  # (S, A)
        elif backup == "ziebart":
            # 2. Z_{a,k}(s,a) = Σ_s' P(s'|s,a) e^{r(s)} Z_{s,k−1}(s')
            #    log Z_{a,k} = r(s) + logsumexp_s'(log P(s'|s,a) + log Z_{s,k−1}(s'))
            za = reward[:, None] + torch.logsumexp(log_prob + nxt, dim=-1)  # (S, A)
        else:
            # notes 001: Q_t(s,a) = r(s) + E_{s'∼P(·|s,a)}[V_{t+1}(s')], with V = log Z_s (the padding's P = 0 adds 0)
            za = reward[:, None] + (prob * nxt).sum(-1)  # (S, A)
        log_za.append(za)
        # 2. Z_{s,k}(s) = Σ_a Z_{a,k}(s,a)   (notes 001: V_t(s) = log Σ_a exp Q_t(s,a), the soft maximum)
        log_zs.append(torch.logsumexp(za, dim=-1))  # (S,)
    log_zs = torch.stack(log_zs)  # (H+1, S)
    # 3. P(a|s) = Z_a / Z_s, with H − t steps to go at time t: π_t = Z_{a,H−t} / Z_{s,H−t}
    log_pi = torch.stack([log_za[horizon - 1 - t] - log_zs[horizon - t][:, None] for t in range(horizon)])  # (H, S, A)
    return log_pi, log_zs


def forward_pass(log_pi: torch.Tensor, next_state: torch.Tensor, prob: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
    """Notes 000, steps 4-5: the expected visits D_t(s) (H, S) of π_t rolled through P from D_0 = start.

    GOTCHA: the notes print step 5 with s_i and s_k swapped; the sum runs over the states s and actions a that lead
    *into* s'. Here every (s, a, k) sends its mass D_t(s) π_t(a|s) P(s'|s,a) to s' = next_state[s, a, k].
    """
    horizon, num_states, _ = log_pi.shape
    assert start.shape == (num_states,)
    visits = [start]
    for t in range(horizon - 1):
        # D_{t+1}(s') = Σ_s Σ_a D_t(s) π_t(a|s) P(s'|s,a)
        mass = visits[-1][:, None, None] * log_pi[t].exp()[:, :, None] * prob  # (S, A, K)
        visits.append(torch.zeros_like(start).index_add_(0, next_state.reshape(-1), mass.reshape(-1)))
    return torch.stack(visits)  # (H, S)


def demo_visitation(demo_states: torch.Tensor, num_states: int) -> torch.Tensor:
    """D̃(s) = (1/m) Σ_j Σ_t 1[s_t^j = s], (S,): the demos' feature counts are μ̃ = Σ_s D̃(s) x(s)."""
    m = demo_states.shape[0]
    return torch.bincount(demo_states.reshape(-1), minlength=num_states).to(torch.float64) / m


def expected_flows(log_pi: torch.Tensor, visits: torch.Tensor, prob: torch.Tensor) -> torch.Tensor:
    """ρ(s, a, k) = Σ_{t=0}^{H−2} D_t(s) π_t(a|s) P(s'_k|s, a), (S, A, K): how often, in expectation, each listed
    transition is made in the H − 1 moves; for a reward on transitions it plays the part of D(s) (visits (H, S) from
    forward_pass)."""
    return torch.einsum("ts,tsa,sak->sak", visits[:-1], log_pi[:-1].exp(), prob)


def demo_flows(demo_states: torch.Tensor, demo_actions: torch.Tensor, next_state: torch.Tensor,
               prob: torch.Tensor) -> torch.Tensor:
    """ρ̃(s, a, k) = (1/m) Σ_j Σ_{t<H−1} 1[s_t^j = s, a_t^j = a, s_{t+1}^j = s'_k], (S, A, K): the demos' transitions,
    each at the first listed k with that successor (a successor listed twice gets one reward, r(s, a, s'))."""
    m = demo_states.shape[0]
    num_states, num_actions, width = next_state.shape
    s, a, s2 = demo_states[:, :-1], demo_actions, demo_states[:, 1:]  # (m, H−1) each
    match = (next_state[s, a] == s2[..., None]) & (prob[s, a] > 0)  # (m, H−1, K)
    k = match.int().argmax(-1)  # (m, H−1)
    flat = ((s * num_actions + a) * width + k).reshape(-1)
    counts = torch.bincount(flat, minlength=num_states * num_actions * width).to(torch.float64) / m
    return counts.reshape(num_states, num_actions, width)


def maxent_gradient(demo_visits: torch.Tensor, visits: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """∇L(w) = μ̃ − Σ_s D(s) x(s) = Σ_s (D̃(s) − D(s)) x(s), (d,), with D = Σ_t D_t (notes 000). For a reward on
    transitions, the same with ρ̃ − ρ and x(s, a, s'_k) summed over every (s, a, k)."""
    assert demo_visits.shape == visits.shape == features.shape[:-1]
    return features.reshape(-1, features.shape[-1]).T @ (demo_visits - visits).reshape(-1)


def demo_log_likelihood(log_pi: torch.Tensor, demo_states: torch.Tensor, demo_actions: torch.Tensor,
                        alive: torch.Tensor) -> torch.Tensor:
    """(1/m) Σ_j Σ_t log π_t(a_t^j | s_t^j) over the steps where the demo is still running (alive (m, H−1) bool).

    On deterministic dynamics this is log P(τ_j | s_0^j, w) of the notes (up to the constant log Π P = 0).
    """
    m, horizon = demo_states.shape
    steps = torch.arange(horizon - 1, device=log_pi.device)
    logp = log_pi[steps[None, :], demo_states[:, :-1], demo_actions]  # (m, H−1)
    return (logp * alive).sum() / m


def value_iteration(reward: torch.Tensor, next_state: torch.Tensor, prob: torch.Tensor, horizon: int) -> tuple:
    """The optimal non-stationary policy for H states: V_H = 0, Q_t = r + E[V_{t+1}], V_t = max_a Q_t.

    Returns (policy (H, S) int, value (S,) = V_0). Used for the expert (true R) and to plan under the learned r.
    A reward on transitions (S, A, K): Q_t = E_{s'}[r(s, a, s') + V_{t+1}(s')], and the last action is paid nothing.
    """
    value = torch.zeros(next_state.shape[0], dtype=reward.dtype, device=reward.device)
    policy = []
    for k in range(1, horizon + 1):
        if reward.dim() == 3:
            q = (prob * (reward + value[next_state])).sum(-1) if k > 1 else torch.zeros_like(prob[..., 0])  # (S, A)
        else:
            q = reward[:, None] + (prob * value[next_state]).sum(-1)  # (S, A)
        value, best = q.max(-1)
        policy.append(best)
    return torch.stack(policy[::-1]), value  # policy[t] is the action with H − t states to go


def policy_return(policy: torch.Tensor, reward: torch.Tensor, next_state: torch.Tensor, prob: torch.Tensor,
                  start: torch.Tensor) -> float:
    """E[Σ_{t<H} R(s_t)] (or E[Σ_{t<H−1} r(s_t, a_t, s_{t+1})]) of a deterministic policy (H, S) under the known
    model, exactly (a forward pass)."""
    num_actions = next_state.shape[1]
    log_pi = torch.log(nn.functional.one_hot(policy, num_actions).to(reward.dtype))  # (H, S, A), log 1 or −inf
    visits = forward_pass(log_pi, next_state, prob, start)  # (H, S)
    if reward.dim() == 3:
        return float((expected_flows(log_pi, visits, prob) * reward).sum())
    return float((visits.sum(0) * reward).sum())


def plans_under(reward: torch.Tensor, true_reward: torch.Tensor, next_state: torch.Tensor, prob: torch.Tensor,
                start: torch.Tensor, horizon: int, backup: str) -> dict:
    """The two optimal policies under a learned r_θ, each scored exactly with the true R (the EVD of [S6] and the end).

    maxent: optimal in the sense r_θ was learned in, the maximum-entropy policy q = exp(Q − V) (notes 001), i.e. the
            local action probabilities π_t of the backward pass, acting by the most likely action;
    hard:   value iteration under r_θ, no entropy.
    GOTCHA: the hard one can be much worse where episodes end. The soft model earns an entropy bonus, log Σ_a e^{Q},
    at every step it is still alive; the learned r_θ compensates for it, so it is negative on states where the
    expert merely lingers. Plan under r_θ without the bonus, and ending the episode early (in a hole) looks good:
    FrozenLake-v1, docs/maxent_irl.md.
    """
    log_pi, _ = backward_pass(reward, next_state, prob, horizon, backup)  # (H, S, A)
    plan = log_pi.argmax(-1)  # (H, S)
    hard_plan, _ = value_iteration(reward, next_state, prob, horizon)  # (H, S)
    return {"log_pi": log_pi, "plan": plan, "return": policy_return(plan, true_reward, next_state, prob, start),
            "hard_return": policy_return(hard_plan, true_reward, next_state, prob, start)}


def reward_correlation(learned: torch.Tensor, true: torch.Tensor) -> float:
    """Pearson correlation of the learned and true rewards over the states (nan if either is constant)."""
    a, b = learned - learned.mean(), true - true.mean()
    denominator = float(a.norm() * b.norm())
    return float((a * b).sum()) / denominator if denominator > 0 else float("nan")


def reward_picture(learned: np.ndarray, true: np.ndarray, nrow: int, ncol: int, scale: int) -> np.ndarray:
    """(3, h, w) image: learned reward (left) beside the true reward (right), each scaled to [−1, 1], blue < 0 < red."""
    panels = []
    for r in (learned, true):
        r = r.reshape(nrow, ncol)
        r = r / max(np.abs(r).max(), 1e-12)  # 1e-12: an all-zero reward stays white
        rgb = np.stack([1 - np.clip(-r, 0, 1), 1 - np.abs(r), 1 - np.clip(r, 0, 1)])  # (3, nrow, ncol) white at 0
        panels.append(rgb.repeat(scale, axis=1).repeat(scale, axis=2))
    gap = np.zeros((3, nrow * scale, scale))
    return np.concatenate([panels[0], gap, panels[1]], axis=2).astype(np.float32)


# Max-margin feature matching (notes 001, "IRL v1") and Abbeel & Ng's projection method (notes 000, "feature
# matching"): the same known MDP, the same demos; a reward r_w(s) = wᵀx(s) and policies compared through their
# feature expectations. Notation beyond the table above:
#   mu            μ(π) = E_π[Σ_{t<H} x(s_t)] from the demos' starts        (d,)      μ̃ for the demos themselves
#   deltas        Δ_j = μ̃ − μ(π_j), one row per policy in the set          (k, d)
#   margins       D(π_j, π*), the gap each π_j must leave                   (k,)
def feature_expectations(policy_log_pi: torch.Tensor, next_state: torch.Tensor, prob: torch.Tensor,
                         start: torch.Tensor, features: torch.Tensor) -> tuple:
    """μ(π) = Σ_s D^π(s) x(s), exactly from the model (a forward pass); returns (μ (d,), D^π (S,)).

    The return of π under any linear reward is then V^π = wᵀμ(π) (notes 000): IRL can compare policies through μ
    alone. (Finite horizon H, undiscounted, as the rest of this file; the notes' discounted μ is the same with γ^t D_t.)
    """
    visits = forward_pass(policy_log_pi, next_state, prob, start).sum(0)  # (S,) D^π(s) = Σ_t D_t(s)
    return features.T @ visits, visits


def visit_distance(visits: torch.Tensor, demo_visits: torch.Tensor) -> torch.Tensor:
    """D(π, π*) = ½ Σ_s |D^π(s) − D̃(s)|: of the H state visits, how many π spends elsewhere than the demos do,
    in [0, H]. Notes 001's "bigger for more different policies"; 0 for π = π*."""
    return 0.5 * (visits - demo_visits).abs().sum()


def project_simplex(v: torch.Tensor, total: float, at_most: bool = False) -> torch.Tensor:
    """The closest point to v (k,) in {x ≥ 0, Σ x = total} (or Σ x ≤ total with at_most), by sorting
    (Duchi, Shalev-Shwartz, Singer, Chandra 2008): x = max(v − θ, 0) with θ the one shift that makes Σ x = total."""
    if at_most and v.clamp(min=0).sum() <= total:
        return v.clamp(min=0)
    u, _ = torch.sort(v, descending=True)
    cumulative = torch.cumsum(u, 0) - total
    rank = torch.arange(1, len(v) + 1, dtype=v.dtype, device=v.device)
    rho = int(torch.nonzero(u - cumulative / rank > 0).max())  # the largest k with u_k > (Σ_{i≤k} u_i − total)/k
    return (v - cumulative[rho] / (rho + 1)).clamp(min=0)


def solve_simplex_qp(gram: torch.Tensor, linear: torch.Tensor, total: float, at_most: bool,
                     iterations: int = 100_000, tol: float = 1e-10,
                     init: Optional[torch.Tensor] = None) -> torch.Tensor:
    """argmin_α f(α) = ½ αᵀGα − bᵀα over {α ≥ 0, Σα = total} (or ≤ total), for small k (G is k × k).

    Accelerated projected gradient (FISTA, Beck & Teboulle 2009, restarted when it overshoots) finds which α_j are
    non-zero; every 100 steps the KKT system on that face is solved exactly (polish_face), which ends the search as
    soon as the face is right (projected gradient alone crawls on the ill-conditioned G of a hard margin). Stops when
    the Frank-Wolfe gap ∇fᵀα − min_{feasible v} ∇fᵀv, an upper bound on f(α) − min f, is below tol·max(1, |f(α)|);
    for max_margin_weights that gap is exactly the primal-dual gap. `init`: a starting point (e.g. the last round's α).
    GOTCHA: elementwise products and sums only (matvec below), no BLAS or LAPACK call: those can round differently
    with the memory alignment of their inputs, and a resumed run must find the very same answer, bit for bit.
    """
    def matvec(v: torch.Tensor) -> torch.Tensor:
        return (gram * v).sum(-1)  # G v

    def fw_gap(alpha: torch.Tensor) -> float:
        grad = matvec(alpha) - linear  # ∇f(α)
        # (round-off in ∇f, ~1e-16 of its terms, must not count as a descent direction: times a large total it would
        # keep the gap above tol for ever)
        noise = 1e-12 * (float((gram.abs() * alpha.abs()).sum(-1).max()) + float(linear.abs().max()))
        best_vertex = total * (min(float(grad.min()) + noise, 0.0) if at_most else float(grad.min()))
        objective = float(0.5 * (alpha * matvec(alpha)).sum() - (linear * alpha).sum())
        return (float((grad * alpha).sum()) - best_vertex) / max(1.0, abs(objective))

    step = 1.0 / max(float(gram.abs().sum(-1).max()), 1e-12)  # 1/L, L ≥ λ_max(G) (Gershgorin)
    alpha = project_simplex(torch.zeros_like(linear) if init is None else init, total, at_most)
    y, t = alpha, 1.0
    for i in range(iterations):
        if i % 100 == 0:
            polished = polish_face(gram, linear, total, at_most, alpha > 0)
            if polished is not None and fw_gap(polished) <= tol:
                return polished
            if fw_gap(alpha) <= tol:
                return alpha
        new = project_simplex(y - step * (matvec(y) - linear), total, at_most)
        if float(((y - new) * (new - alpha)).sum()) > 0:  # the momentum points uphill: restart it
            y, t = alpha, 1.0
            continue
        t_new = (1 + (1 + 4 * t * t) ** 0.5) / 2
        y = new + ((t - 1) / t_new) * (new - alpha)
        alpha, t = new, t_new
    return alpha


def polish_face(gram: torch.Tensor, linear: torch.Tensor, total: float, at_most: bool,
                support: torch.Tensor) -> Optional[torch.Tensor]:
    """The minimiser of f on one face of the feasible set, {α_j = 0 off `support`} (and Σα = total unless at_most
    leaves the sum free below it): the KKT equations G_SS α_S + ν·1 = b_S, Σ α_S = total, solved by
    gaussian_elimination. Returns None when the face has no single minimiser (a singular system) or it is not
    feasible (some α_j < 0, or Σα > total)."""
    idx = torch.nonzero(support).flatten()
    if len(idx) == 0:
        return None
    g, b = gram[idx][:, idx], linear[idx]
    n = len(idx)
    for with_sum in ((False, True) if at_most else (True,)):  # (at_most: first the face with the sum constraint idle)
        if with_sum:
            kkt = torch.zeros(n + 1, n + 1, dtype=g.dtype, device=g.device)
            kkt[:n, :n], kkt[:n, n], kkt[n, :n] = g, 1.0, 1.0
            solution = gaussian_elimination(kkt, torch.cat([b, b.new_full((1,), total)]))
        else:
            solution = gaussian_elimination(g, b)
        if solution is None:
            continue
        alpha = torch.zeros_like(linear)
        alpha[idx] = solution[:n]
        if (alpha >= 0).all() and float(alpha.sum()) <= total * (1 + 1e-12):
            return alpha
    return None


def gaussian_elimination(matrix: torch.Tensor, rhs: torch.Tensor) -> Optional[torch.Tensor]:
    """x with M x = rhs by Gaussian elimination with partial pivoting, in elementwise operations (solve_simplex_qp's
    GOTCHA); None when a pivot vanishes (M singular, to 1e-12 of its largest entry)."""
    m = torch.cat([matrix, rhs[:, None]], dim=1).clone()  # (n, n+1) augmented
    n = len(rhs)
    scale = float(matrix.abs().max()) or 1.0
    for col in range(n):
        pivot = col + int(m[col:, col].abs().argmax())
        if abs(float(m[pivot, col])) <= 1e-12 * scale:
            return None
        if pivot != col:
            m[[col, pivot]] = m[[pivot, col]]
        m[col] = m[col] / m[col, col]
        others = torch.arange(n, device=m.device) != col
        m[others] = m[others] - m[others, col:col + 1] * m[col]
    return m[:, n]


def max_margin_weights(deltas: torch.Tensor, margins: torch.Tensor, slack_c: float,
                       init: Optional[torch.Tensor] = None) -> tuple:
    """Notes 001, IRL v1 step 2, as a structured SVM with one slack ζ shared by all constraints:
        min_{w, ζ ≥ 0}  ½‖w‖² + Cζ   s.t.  wᵀμ̃ ≥ wᵀμ(π_j) + D(π_j, π*) − ζ   for every π_j in the set
    solved exactly through its dual (Lagrange multipliers α_j ≥ 0 of the constraints, Σ_j α_j ≤ C from ζ):
        max_α  Σ_j α_j D_j − ½‖Σ_j α_j Δ_j‖²,   w = Σ_j α_j Δ_j,   ζ = max(0, max_j (D_j − wᵀΔ_j)).
    Returns (w (d,), ζ, α (k,)). tests/test_maxent_irl_math.py checks it against brute force and the duality gap.
    TRICK: `init`, the last round's α with a 0 for the new constraint, starts the solver next to the answer.
    """
    gram = (deltas[:, None, :] * deltas[None, :, :]).sum(-1)  # (k, k) Δ_iᵀΔ_j (elementwise: solve_simplex_qp's GOTCHA)
    alpha = solve_simplex_qp(gram, margins, slack_c, at_most=True, init=init)  # (k,)
    w = (alpha[:, None] * deltas).sum(0)  # (d,)
    zeta = float((margins - (deltas * w).sum(-1)).max().clamp(min=0))
    return w, zeta, alpha


def project_onto_segment(mu_bar: torch.Tensor, mu_new: torch.Tensor, demo_mu: torch.Tensor) -> torch.Tensor:
    """Abbeel & Ng (2004) §3.1, the projection step: the point of the segment [μ̄, μ(π_i)] closest to μ̃,
        μ̄ ← μ̄ + c (μ(π_i) − μ̄),   c = (μ(π_i) − μ̄)ᵀ(μ̃ − μ̄) / ‖μ(π_i) − μ̄‖²   (clipped to [0, 1]).
    SIMPLIFICATION: the paper projects onto the line and c stays in [0, 1] when π_i is exactly optimal for w_i; the
    clip keeps μ̄ a mixture of the policies found, whatever the ties in planning."""
    direction = mu_new - mu_bar
    length2 = float(direction @ direction)
    c = 0.0 if length2 == 0 else min(max(float(direction @ (demo_mu - mu_bar)) / length2, 0.0), 1.0)
    return mu_bar + c * direction


def mixture_weights(mus: torch.Tensor, demo_mu: torch.Tensor) -> torch.Tensor:
    """Abbeel & Ng's last step: the mixture λ of the policies found whose feature expectations are closest to μ̃,
        min_λ ‖μ̃ − Σ_j λ_j μ(π_j)‖²  s.t.  λ ≥ 0, Σ_j λ_j = 1      (mus (k, d) → λ (k,)).
    The mixed policy picks π_j with probability λ_j once, at the start of each episode; μ(mixture) = Σ_j λ_j μ(π_j)."""
    return solve_simplex_qp((mus[:, None, :] * mus[None, :, :]).sum(-1), (mus * demo_mu).sum(-1), 1.0, at_most=False)


# ── Training loop [S1 demos -> S2 D̃ -> S3 backward -> S4 forward -> S5 step -> S6 log | S7 w -> S8 plan -> S9 μ] ──
def collect_demos(env: gym.Env, policy: np.ndarray, seeds: list, horizon: int, exit_state: int, noise: float = 0.0,
                  rng: Optional[np.random.Generator] = None) -> tuple:
    """Run a non-stationary policy (H, S) in the env, episode j from reset(seed=seeds[j]):
    states (m, H), actions (m, H−1), alive (m, H−1), env returns (m,). With noise > 0 each step takes a uniformly
    random action with that probability instead (drawn from rng): a noisily optimal demonstrator.

    After the env terminates, the trajectory continues in the exit state (the model's absorbing state); those steps
    are not "alive" (their actions are padding, uniform under every reward).
    """
    num_demos = len(seeds)
    states = np.full((num_demos, horizon), exit_state, dtype=np.int64)
    actions = np.zeros((num_demos, horizon - 1), dtype=np.int64)
    alive = np.zeros((num_demos, horizon - 1), dtype=bool)
    returns = np.zeros(num_demos)
    for j in range(num_demos):
        s, _ = env.reset(seed=int(seeds[j]))
        states[j, 0] = s
        for t in range(horizon - 1):
            a = int(policy[t, s])
            if noise > 0 and rng.random() < noise:
                a = int(rng.integers(env.action_space.n))
            s, r, terminated, truncated, _ = env.step(a)
            actions[j, t], alive[j, t], returns[j] = a, True, returns[j] + r
            states[j, t + 1] = s
            if terminated or truncated:  # main() checks that a time limit cannot cut an episode before H − 1 steps
                break  # the rest stays in exit (after a terminal state, as in the model; after a truncation, unused)
    return states, actions, alive, returns


def policy_features(policy: torch.Tensor, next_state: torch.Tensor, prob: torch.Tensor, start: torch.Tensor,
                    features: torch.Tensor, demo_visits: torch.Tensor, margin_kind: str) -> tuple:
    """Max-margin and projection: a deterministic policy's (H, S) μ(π) and its gap D(π, π*) (--margin)."""
    log_pi = torch.log(nn.functional.one_hot(policy, next_state.shape[1]).to(features.dtype))  # (H, S, A)
    mu, visits = feature_expectations(log_pi, next_state, prob, start, features)
    margin = visit_distance(visits, demo_visits) if margin_kind == "visits" else torch.ones((), dtype=mu.dtype,
                                                                                            device=mu.device)
    return mu, margin


def add_policy(found: dict, policy: torch.Tensor, mu: torch.Tensor, margin: torch.Tensor) -> None:
    """Put π, its μ(π) and D(π, π*) into the set the margin problem of [S7] constrains (and projection mixes)."""
    found["policies"].append(policy)
    found["mus"].append(mu)
    found["margins"].append(margin)


def main(args: Args) -> dict:
    """Learn a reward (or load --checkpoint), plan under it, evaluate, save; returns the summary in summary.json."""
    resumed = None  # the checkpoint.pt of the run that --resume continues
    if args.resume is not None:
        args, resumed = resume_args(args, "maxent_irl.py")
    check_args(args)
    make_output_folder(args.runs_dir)  # now, so that a bad path fails before training
    seed_everything(args.seed, args.torch_deterministic)
    torch.set_num_threads(args.torch_threads)
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")

    ckpt = load_checkpoint(args.checkpoint, args) if args.checkpoint is not None else None
    env = make_tabular_env(args)
    mdp = tabular_model(env, args.env, args.reward_on)
    time_limit = env.spec.max_episode_steps if env.spec is not None else None
    # 2N: the expert crosses the grid (≤ 2N − 2 moves) and stays; a gym env: its own episode length (100 if none)
    horizon = args.horizon or (2 * args.grid_size if args.env == "gridworld" else (time_limit or 100) + 1)
    if time_limit is not None and horizon - 1 > time_limit:
        raise UserError(f"--horizon {horizon} is longer than {args.env}'s time limit + 1 ({time_limit + 1})")
    args.horizon = horizon  # recorded resolved, in args.json and model.pt
    # x(s) (S+1, d), or x(s, a, s'_k) (S+1, A, K, d) with --reward-on state-action or transition; before any folder
    features_np = reward_features(args.features, args.reward_on, env, args.env, mdp)
    # float64 throughout: the passes are cheap, and the tests compare them with enumeration to 1e-6.
    to64 = lambda x: torch.as_tensor(x, dtype=torch.float64, device=device)  # noqa: E731
    next_state, prob = torch.as_tensor(mdp["next_state"], device=device), to64(mdp["prob"])
    true_reward, p0, features = to64(mdp["reward"]), to64(mdp["p0"]), to64(features_np)
    num_states = mdp["num_states"] + 1  # with exit
    on_states = args.reward_on == "state"
    # the reward entries that can be paid (compared with the true reward): every state but exit; or every transition
    # the env can make out of a non-terminal state
    real = (torch.arange(num_states, device=device) < num_states - 1 if on_states
            else (prob > 0) & ~torch.as_tensor(mdp["absorbing"], device=device)[:, None, None])

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
    start_time = time.time()

    # [S1] the expert: optimal for the true R over H states (value iteration), run in the env itself.
    expert_policy, _ = value_iteration(true_reward, next_state, prob, horizon)  # (H, S)
    expert_return = policy_return(expert_policy, true_reward, next_state, prob, p0)
    nrow, ncol = getattr(env.unwrapped, "nrow", None), getattr(env.unwrapped, "ncol", None)
    grid = nrow is not None and nrow * ncol == mdp["num_states"] and on_states  # (a picture of r(s) only)
    scale = max(1, 200 // max(nrow, ncol)) if grid else 1  # pixels per cell: pictures about 200 pixels wide

    reward_model = RewardModel(features, args.reward_model, args.hidden_size, real).to(device, torch.float64)
    if args.checkpoint is not None:  # --checkpoint: plan under the saved reward and evaluate; nothing to learn
        # (model.pt files from before the features left the state dict carry them: only the network's weights count)
        reward_model.load_state_dict({k: v for k, v in ckpt["reward_model"].items() if k.startswith("net.")})
        extra = {}
        train_time = time.time() - start_time
        saved = ckpt.get("mixture")
        mixture = None if saved is None else (saved["policies"].to(device), saved["weights"].to(device))
        answer = output_policies(args, reward_model, next_state, prob, horizon, mixture)
        summary = finish(args, run_dir, writer, env, reward_model, mdp, next_state, prob, true_reward, p0, horizon,
                         expert_return, train_time, extra, answer)
        writer.close()
        return summary

    # GOTCHA: reset seeds drawn from --seed, not seed + j: seeds 1 and 2 would otherwise share all but one demo.
    demo_seeds = np.random.default_rng(args.seed).integers(2**31, size=args.num_demos)
    states_np, actions_np, alive_np, demo_returns = collect_demos(
        env, expert_policy.cpu().numpy(), demo_seeds, horizon, num_states - 1, args.expert_noise,
        np.random.default_rng([args.seed, 1]))
    demo_states, demo_actions = torch.as_tensor(states_np, device=device), torch.as_tensor(actions_np, device=device)
    alive = torch.as_tensor(alive_np, device=device)
    print(f"{args.env}: {mdp['num_states']} states, {mdp['num_actions']} actions, H = {horizon}; expert return "
          f"{expert_return:.3f} (exact), {demo_returns.mean():.3f} over its {args.num_demos} demos", flush=True)
    # [S2] the demos' visitation, and their start distribution for the forward pass (DEVIATION in the docstring).
    #      With a reward on transitions: the demos' transitions ρ̃(s, a, k), so that μ̃ = Σ ρ̃ x(s, a, s'_k).
    demo_visits = (demo_visitation(demo_states, num_states) if on_states
                   else demo_flows(demo_states, demo_actions, next_state, prob))  # (S+1,) or (S+1, A, K)
    demo_start = demo_visitation(demo_states[:, :1], num_states)  # (S+1,)

    optimizer = torch.optim.Adam(reward_model.parameters(), lr=args.learning_rate)
    # max-margin and projection: the policies found so far (H, S) each, their μ(π) and gaps D(π, π*); projection's μ̄
    demo_mu = features.T @ demo_visits if args.method != "maxent" else None  # (d,) μ̃ = Σ_s D̃(s) x(s)
    found = {"policies": [], "mus": [], "margins": [], "mu_bar": None, "zeta": 0.0, "converged": False}
    if args.method != "maxent":
        # π_0: a random policy (notes 001, step 1), an action drawn once for every (t, s) from --seed
        random_policy = torch.as_tensor(np.random.default_rng([args.seed, 2]).integers(mdp["num_actions"],
                                        size=(horizon, num_states)), device=device)  # (H, S+1)
        add_policy(found, random_policy, *policy_features(random_policy, next_state, prob, demo_start, features,
                                                          demo_visits, args.margin))
        found["mu_bar"] = found["mus"][0]  # projection: μ̄_0 = μ(π_0)
    history = []
    start_iteration = 1
    if resumed is not None:  # --resume: put back the reward, its optimiser and the diagnostics so far
        set_rng_states(resumed["rng"])
        reward_model.load_state_dict(resumed["reward_model"])
        optimizer.load_state_dict(resumed["optimizer"])
        history, start_iteration = resumed["history"], resumed["global_step"] + 1
        found = resumed["found"]
        start_time = time.time() - resumed["train_time"]

    with StopSignals() as stop:  # Ctrl-C or SIGTERM: finish this iteration, write checkpoint.pt, stop
        for iteration in range(start_iteration, args.iterations + 1):
            if found["converged"]:
                break
            if args.method == "maxent":
                reward = reward_model()  # (S+1,) r_θ(s)
                # [S3] backward pass on the current reward (no gradient flows through it: [S5] uses D, not autodiff)
                with torch.no_grad():
                    log_pi, _ = backward_pass(reward, next_state, prob, horizon, args.backup)  # (H, S+1, A)
                    # [S4] forward pass: expected visits under π_t (or the expected transitions ρ)
                    visits_t = forward_pass(log_pi, next_state, prob, demo_start)  # (H, S+1) D_t(s)
                    visits = (visits_t.sum(0) if on_states  # (S+1,) D(s) = Σ_t D_t(s)
                              else expected_flows(log_pi, visits_t, prob))  # (S+1, A, K) ρ(s, a, k)
                # [S5] ∇_θ L = Σ_s (D̃(s) − D(s)) ∇_θ r_θ(s): the gradient of the surrogate Σ_s (D̃(s) − D(s)) r_θ(s)
                #      with D held fixed. For r = wᵀx it is μ̃ − Σ_s D(s) x(s) (maxent_gradient), notes 000; for a
                #      network, autodiff carries it into θ, notes 001. "Push up where the expert goes more than the
                #      model does."
                # GOTCHA: it is exactly ∇L on deterministic dynamics (tests). On stochastic ones (FrozenLake) it is the
                #      gradient of the maximum-causal-entropy dual, whose optimum matches the feature counts; the
                #      demos' action log-likelihood is then a diagnostic, and can fall for a while and rise again.
                surrogate = ((demo_visits - visits) * reward).sum()
                optimizer.zero_grad()
                (-surrogate).backward()  # ascent on L
                optimizer.step()
                nll = -float(demo_log_likelihood(log_pi, demo_states, demo_actions, alive))
                gap = float(maxent_gradient(demo_visits, visits, features).abs().sum())
                writer.add_scalar("losses/demo_nll", nll, iteration)
            else:
                with torch.no_grad():
                    mus, margins = torch.stack(found["mus"]), torch.stack(found["margins"])  # (k, d), (k,)
                    # [S7] w from the policies found so far. max-margin (notes 001, step 2):
                    #          min ½‖w‖² + Cζ  s.t.  wᵀμ̃ ≥ wᵀμ(π_j) + D(π_j, π*) − ζ  for j = 0..i−1;
                    #      projection (Abbeel & Ng): w_i = μ̃ − μ̄_{i−1}, t_i = ‖w_i‖₂, done when t_i ≤ tolerance.
                    if args.method == "max-margin":
                        last = found.get("alpha")
                        init = None if last is None else torch.cat([last, last.new_zeros(len(margins) - len(last))])
                        w, found["zeta"], found["alpha"] = max_margin_weights(demo_mu - mus, margins, args.slack_c,
                                                                              init)
                    else:
                        w = demo_mu - found["mu_bar"]
                        found["converged"] = float(w.norm()) <= args.tolerance
                    reward_model.net.weight.copy_(w[None, :])
                    reward = reward_model()  # (S+1,) r_w(s) = wᵀx(s)
                    # [S8] π_i ← the optimal policy for r_w (notes 001, step 3), by value iteration
                    policy, _ = value_iteration(reward, next_state, prob, horizon)  # (H, S+1)
                    # [S9] its μ(π_i) and D(π_i, π*) join the set (step 4). max-margin is done when π_i, the best
                    #      answer to w, already keeps every constraint: wᵀ(μ̃ − μ(π_i)) ≥ D(π_i, π*) − ζ − tolerance
                    #      (the problem of [S7] would not change); projection moves μ̄ towards μ̃.
                    mu, margin = policy_features(policy, next_state, prob, demo_start, features, demo_visits,
                                                 args.margin)
                    if args.method == "max-margin":
                        # (a policy that breaks no constraint would not change the problem of [S7]: done)
                        found["converged"] = float(margin - w @ (demo_mu - mu)) - found["zeta"] <= args.tolerance
                    if not found["converged"]:
                        add_policy(found, policy, mu, margin)
                        if args.method == "projection":
                            found["mu_bar"] = project_onto_segment(found["mu_bar"], mu, demo_mu)
                    gap = float((demo_mu - mu).abs().sum())  # ‖μ̃ − μ(π_i)‖₁
                    nll = float("nan")  # (the policies here are deterministic: the demos' likelihood is 0 or 1)
                writer.add_scalar("losses/margin_slack" if args.method == "max-margin" else "losses/projection_t",
                                  found["zeta"] if args.method == "max-margin" else float(w.norm()), iteration)
                writer.add_scalar("losses/policies_found", len(found["policies"]), iteration)

            # [S6] diagnostics. feature_gap = ‖μ̃ − E[μ]‖₁ → 0 at the optimum (feature matching; max-margin and
            #      projection: of the policy π_i planned this round); nll: the demos' negative log-likelihood per demo,
            #      falls while learning (on deterministic dynamics a rise means the step size is too big; on stochastic
            #      ones see the GOTCHA above); evd: the expert's true return minus that of the MaxEnt-optimal policy
            #      under r_θ (its most likely action; max-margin and projection: of π_i), → 0 when IRL worked;
            #      evd_hard: the same for the hard-max optimal policy (plans_under); reward_corr: correlation of r_θ
            #      and R, can stay low though evd = 0 (many rewards fit the same demos).
            writer.add_scalar("losses/feature_gap", gap, iteration)
            if iteration % args.log_every == 0 or iteration == args.iterations or found["converged"]:
                with torch.no_grad():
                    reward = reward_model()
                    plans = plans_under(reward, true_reward, next_state, prob, p0, horizon, args.backup)
                    evd, evd_hard = expert_return - plans["return"], expert_return - plans["hard_return"]
                    if args.method != "maxent":  # the EVD of this round's π_i, optimal under r_w
                        evd = expert_return - policy_return(policy, true_reward, next_state, prob, p0)
                    corr = reward_correlation(reward[real], true_reward[real])
                writer.add_scalar("losses/evd", evd, iteration)
                writer.add_scalar("losses/evd_hard", evd_hard, iteration)
                writer.add_scalar("losses/reward_corr", corr, iteration)
                if grid:
                    writer.add_image("reward/learned_vs_true", reward_picture(reward[real].cpu().numpy(),
                                     true_reward[real].cpu().numpy(), nrow, ncol, scale), iteration)
                history.append({"iteration": iteration, "nll": nll, "feature_gap": gap, "evd": evd, "evd_hard": evd_hard,
                                "reward_corr": corr})
                print(f"iter {iteration:>5}  demo nll {nll:9.4f}  feature gap {gap:8.4f}  EVD {evd:8.4f} (hard max "
                      f"{evd_hard:7.4f})  reward corr {corr:6.3f}" + ("" if args.method == "maxent" else
                      f"  policies {len(found['policies'])}" + ("  converged" if found["converged"] else "")),
                      flush=True)

            # Safe point, after iteration `iteration` (the demos are drawn again from --seed on --resume).
            check_finite(run_dir, iteration, **{"the reward": reward_model, "the feature gap": gap},
                         **({"the demos' log-likelihood": nll} if args.method == "maxent" else {}))
            if stop.received or checkpoint_due(iteration - 1, iteration, args.checkpoint_every):
                save_training_state(run_dir, {
                    "script": "maxent_irl.py", "global_step": iteration, "train_time": time.time() - start_time,
                    "reward_model": reward_model.state_dict(), "optimizer": optimizer.state_dict(),
                    "history": history, "found": found})
            if stop.received:
                writer.close()
                raise Interrupted(stop_line("maxent_irl.py", stop.received, iteration, run_dir))
    mixture = None
    if args.method == "projection":  # Abbeel & Ng's answer: the mixture of the policies found closest to μ̃
        mixture = (torch.stack(found["policies"]), mixture_weights(torch.stack(found["mus"]), demo_mu))
    learn_time = time.time() - start_time
    extra = {"num_demos": args.num_demos, "horizon": horizon, "demo_return_mean": float(demo_returns.mean()),
             "time_per_iteration_ms": 1000 * learn_time / max(args.iterations, 1), "history": history,
             "policies_found": len(found["policies"]), "converged": found["converged"], "slack": found["zeta"]}
    answer = output_policies(args, reward_model, next_state, prob, horizon, mixture)
    policies, weights = answer
    answer_counts = 0  # the answer's expected visits D(s) (or transitions ρ), from the demos' starts
    for pi, lam in zip(policies, weights):
        log_pi = torch.log(nn.functional.one_hot(pi, mdp["num_actions"]).to(features.dtype))
        visits_t = forward_pass(log_pi, next_state, prob, demo_start)
        answer_counts = answer_counts + float(lam) * (visits_t.sum(0) if on_states
                                                      else expected_flows(log_pi, visits_t, prob))
    # ‖μ̃ − μ(answer)‖₁
    extra["feature_gap"] = float(maxent_gradient(demo_visits, answer_counts, features).abs().sum())

    train_time = time.time() - start_time
    summary = finish(args, run_dir, writer, env, reward_model, mdp, next_state, prob, true_reward, p0, horizon,
                     expert_return, train_time, extra, answer)
    writer.close()
    return summary


# ── Evaluation ─────────────────────────────────────────────────────────────────────────────────────
def output_policies(args: Args, reward_model: RewardModel, next_state: torch.Tensor, prob: torch.Tensor,
                    horizon: int, mixture: Optional[tuple]) -> tuple:
    """The answer of each method as deterministic policies (k, H, S) and the probability of each (k,): maxent, the
    MaxEnt-optimal policy under r_θ (most likely action); max-margin, the optimal policy under r_w; projection, the
    mixture (one policy drawn per episode)."""
    if args.method == "projection":
        return mixture
    with torch.no_grad():
        reward = reward_model()
        if args.method == "maxent":
            plan = backward_pass(reward, next_state, prob, horizon, args.backup)[0].argmax(-1)  # (H, S)
        else:
            plan = value_iteration(reward, next_state, prob, horizon)[0]  # (H, S)
    return plan[None], torch.ones(1, dtype=reward.dtype, device=reward.device)


def finish(args: Args, run_dir: str, writer: SummaryWriter, env: gym.Env, reward_model: RewardModel, mdp: dict,
           next_state: torch.Tensor, prob: torch.Tensor, true_reward: torch.Tensor, p0: torch.Tensor, horizon: int,
           expert_return: float, train_time: float, extra: dict, answer: tuple) -> dict:
    """Score the method's answer (output_policies: policies (k, H, S), weights (k,)) exactly and in the env, save
    model.pt and summary.json."""
    with torch.no_grad():
        reward = reward_model()  # (S+1,) or (S+1, A, K)
        plans = plans_under(reward, true_reward, next_state, prob, p0, horizon, args.backup)
    log_pi, hard_return = plans["log_pi"], plans["hard_return"]
    policies, weights = answer  # (k, H, S), (k,)
    # the answer's exact return: Σ_j λ_j E[Σ_t R(s_t) | π_j] (one policy, λ = 1, but for projection's mixture)
    learned_return = sum(float(lam) * policy_return(pi, true_reward, next_state, prob, p0)
                         for pi, lam in zip(policies, weights))
    plan = policies[int(weights.argmax())]  # (H, S) the one policy (projection: the most likely one of the mixture)
    real = slice(0, mdp["num_states"])
    # model.pt first: a failure in the evaluation must not lose the learned reward
    if args.save_model and args.checkpoint is None:
        atomic_torch_save({
            "script": "maxent_irl.py", "env": args.env, "args": dataclasses.asdict(args),
            "reward_model": {k: v.detach().cpu().clone() for k, v in reward_model.state_dict().items()},
            "reward": reward[real].cpu().clone(),  # r_θ(s) of the env's states (S,), or r_θ(s, a, s'_k) (S, A, K)
            # (with a reward on transitions: s'_k of each entry, (S, A, K), the env's state index or S for "exit")
            "next_state": None if args.reward_on == "state" else next_state[real].cpu().clone(),
            "policy": plan[:, real].cpu().clone(),  # (H, S) int: the action at step t in state s, optimal under r_θ
            "log_pi": log_pi[:, real].cpu().clone(),  # (H, S, A) log π_t(a|s), the MaxEnt policy under r_θ
            "method": args.method,
            # projection's answer: policy j (H, S+1 with the exit state) played with probability weights[j]
            "mixture": None if args.method != "projection" else {"policies": policies.cpu().clone(),
                                                                   "weights": weights.cpu().clone()},
        }, os.path.join(run_dir, "model.pt"))
        remove_checkpoint(run_dir)
    # The same policy in the env itself: its mean return estimates learned_return (exact), within sampling error.
    # (A mixture: episode i plays policy j_i ∼ λ, drawn from --eval-seed.)
    eval_seeds = np.array([args.eval_seed + i for i in range(args.eval_episodes)])
    chosen = np.random.default_rng(args.eval_seed).choice(len(weights), size=len(eval_seeds),
                                                          p=(weights / weights.sum()).cpu().numpy())
    eval_returns = np.zeros(len(eval_seeds))
    for j in np.unique(chosen):
        eval_returns[chosen == j] = collect_demos(env, policies[j].cpu().numpy(), list(eval_seeds[chosen == j]),
                                                  horizon, mdp["num_states"])[3]
    if len(eval_returns):
        writer.add_scalar("eval/return", float(eval_returns.mean()), args.iterations)


    summary = {
        "script": "maxent_irl.py", "env": args.env, "seed": args.seed, "env_steps": 0,  # the model is known
        "wall_time_s": round(train_time, 1), "sps": 0,
        "eval_episodes": len(eval_returns),
        "eval_return_mean": float(eval_returns.mean()) if len(eval_returns) else None,
        "eval_return_std": float(eval_returns.std()) if len(eval_returns) else None,
        "eval_returns": [float(r) for r in eval_returns],
        "train_return_last100": None,  # no training episodes
        "checkpoint": args.checkpoint, "run_dir": run_dir, "method": args.method,
        "expert_return": expert_return,  # exact, from the model
        "learned_policy_return": learned_return,  # exact: the method's answer (output_policies), scored with the true R
        "evd": expert_return - learned_return,
        "evd_hard": expert_return - hard_return,  # the hard-max optimal policy under r_θ (GOTCHA in plans_under)
        "expert_fraction": learned_return / expert_return if expert_return > 0 else None,
        # (over the entries that can be paid: the states, or the transitions the env can make)
        "reward_corr": reward_correlation(reward[reward_model.real.bool()], true_reward[reward_model.real.bool()]),
        **extra,
    }
    atomic_write_text(os.path.join(run_dir, "summary.json"), json.dumps(summary, indent=2))
    answer = {"maxent": "MaxEnt-optimal policy under the learned reward", "max-margin": "optimal policy under the "
              "learned reward", "projection": f"mixture of {len(weights)} policies"}[args.method]
    print(f"{answer}: true return {learned_return:.4f} (exact) vs the expert's "
          f"{expert_return:.4f}; EVD {summary['evd']:.4f} (hard max: {summary['evd_hard']:.4f}); reward correlation "
          f"{summary['reward_corr']:.3f}")
    if len(eval_returns):
        print(f"eval: {summary['eval_return_mean']:.3f} ± {summary['eval_return_std']:.3f} over {len(eval_returns)} "
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
        (args.grid_size >= 2, "--grid-size must be at least 2"),
        (0 <= args.slip <= 1, "--slip must be a probability in [0, 1]"),
        (args.horizon is None or args.horizon >= 2, "--horizon must be at least 2 (states per trajectory)"),
        (args.num_demos >= 1, "--num-demos must be at least 1"),
        (args.iterations >= 0 and args.log_every >= 1, "--iterations must be >= 0 and --log-every >= 1"),
        (args.learning_rate > 0, "--learning-rate must be positive"),
        (args.hidden_size >= 1 and args.torch_threads >= 1, "--hidden-size and --torch-threads must be at least 1"),
        (args.eval_episodes >= 0, "--eval-episodes must be >= 0"),
        (0 <= args.expert_noise <= 1, "--expert-noise must be a probability in [0, 1]"),
        (args.slack_c > 0 and args.tolerance >= 0, "--slack-c must be positive and --tolerance >= 0"),
        (args.method == "maxent" or args.reward_model == "linear",
         f"--method {args.method} learns a linear reward wᵀx(s): use --reward-model linear"),
        (args.method == "maxent" or args.backup == "soft", f"--backup is MaxEnt's; --method {args.method} plans by "
                                                           f"value iteration"),
        (args.method == "maxent" or args.reward_on == "state",
         f"--method {args.method} compares policies by their state visits: use --reward-on state"),
    ]
    if args.checkpoint_every < 0:
        raise UserError("--checkpoint-every must be >= 0 (0: checkpoints only on Ctrl-C or SIGTERM)")
    for ok, message in rules:
        if not ok:
            raise UserError(message)


class GridWorld(gym.Env):
    """An N×N grid with a reward the reader can see, exposing its model the way gymnasium's FrozenLake does.

    The true reward R(s), drawn for N = 10 (G: goal +1, L: lava −1, '.': 0; starts uniform over the '.' cells):
        . . . . . L . . . .
        . . . . . L . . . .
        . . . . . L . . . .        Actions: 0 stay, 1 up, 2 right, 3 down, 4 left; a move off the grid stays.
        . . . . . L . . . .        With probability `slip` the move is a uniformly random one of the five.
        . . . . . L . . . .        The expert goes round the lava wall (its gap is the bottom two rows)
        . . . . . L . . . .        to the goal and stays there; the step reward is R of the cell entered.
        . . . . . L . . . .
        . . . . . L . . . .
        . . . . . . . . . .
        . . . . . . . . . G
    Like FrozenLake: P[s][a] = [(prob, next_state, reward, terminated), ...], initial_state_distrib, nrow, ncol, desc.
    """

    MOVES = [(0, 0), (-1, 0), (0, 1), (1, 0), (0, -1)]  # (drow, dcol) of actions 0..4

    def __init__(self, size: int = 10, slip: float = 0.0):
        self.nrow = self.ncol = size
        desc = np.full((size, size), b".", dtype="S1")
        desc[: max(size - 2, 1), size // 2] = b"L"
        desc[size - 1, size - 1] = b"G"
        self.desc = desc
        reward = {b".": 0.0, b"L": -1.0, b"G": 1.0}
        n, num_actions = size * size, len(self.MOVES)
        self.observation_space, self.action_space = gym.spaces.Discrete(n), gym.spaces.Discrete(num_actions)
        free = (desc == b".").reshape(-1).astype(np.float64)
        self.initial_state_distrib = free / free.sum()

        def move(s: int, a: int) -> int:
            row, col = divmod(s, size)
            dr, dc = self.MOVES[a]
            row, col = min(max(row + dr, 0), size - 1), min(max(col + dc, 0), size - 1)
            return row * size + col

        self.P = {}
        for s in range(n):
            self.P[s] = {}
            for a in range(num_actions):
                outcomes = {}  # next state -> probability (several actions can lead to the same cell)
                for b in range(num_actions):
                    p = (1 - slip) * (a == b) + slip / num_actions
                    if p > 0:
                        s2 = move(s, b)
                        outcomes[s2] = outcomes.get(s2, 0.0) + p
                self.P[s][a] = [(p, s2, reward[desc.reshape(-1)[s2]], False) for s2, p in outcomes.items()]
        self.state = 0

    def reset(self, *, seed: Optional[int] = None, options=None):
        super().reset(seed=seed)
        self.state = int(self.np_random.choice(len(self.initial_state_distrib), p=self.initial_state_distrib))
        return self.state, {}

    def step(self, action):
        outcomes = self.P[self.state][int(action)]
        i = self.np_random.choice(len(outcomes), p=[o[0] for o in outcomes])
        _, self.state, reward, terminated = outcomes[i]
        return self.state, reward, terminated, False, {}


def make_tabular_env(args: Args) -> gym.Env:
    """The built-in gridworld, or a gymnasium env whose unwrapped env exposes its model P (one line if not)."""
    if args.env == "gridworld":
        return GridWorld(args.grid_size, args.slip)
    env = make_env(args.env)
    if not hasattr(env.unwrapped, "P") or not isinstance(env.observation_space, gym.spaces.Discrete):
        raise UserError(f"{args.env} does not expose a tabular model (env.unwrapped.P over a Discrete observation "
                        f"space); maxent_irl.py needs known dynamics: use 'gridworld', FrozenLake-v1 or FrozenLake8x8-v1")
    return env


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


def load_checkpoint(path: str, args: Args) -> dict:
    """Read a model.pt written by this script for the same MDP, features and model; adopt its horizon, backup and
    method (the method decides which policy answers: output_policies)."""
    if not os.path.isfile(path):
        raise UserError(f"checkpoint '{path}' does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise UserError(f"cannot read checkpoint '{path}' as a model.pt written by maxent_irl.py: "
                        f"{str(err).strip().splitlines()[0][:200]}") from None
    if not isinstance(ckpt, dict) or ckpt.get("script") != "maxent_irl.py":
        raise UserError(f"'{path}' is not a model.pt written by maxent_irl.py")
    for key in ("env", "grid_size", "slip", "features", "reward_model", "hidden_size", "reward_on"):
        if ckpt["args"].get(key, "state") != getattr(args, key):  # (model.pt files older than --reward-on: state)
            raise UserError(f"checkpoint '{path}' was made with --{key.replace('_', '-')} {ckpt['args'][key]}, "
                            f"not {getattr(args, key)}")
    args.horizon, args.backup = ckpt["args"]["horizon"], ckpt["args"]["backup"]
    args.method = ckpt["args"].get("method", "maxent")
    return ckpt


if __name__ == "__main__":
    try:
        main(tyro.cli(Args))
    except UserError as err:
        sys.exit(f"maxent_irl.py: error: {err}")
    except Interrupted as err:
        print(err, file=sys.stderr)
        sys.exit(130)
    except KeyboardInterrupt:
        print("maxent_irl.py: interrupted; the run directory keeps its last checkpoint.pt, if one was written",
              file=sys.stderr)
        sys.exit(130)
