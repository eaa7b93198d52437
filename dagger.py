"""DAgger (dataset aggregation): imitation that asks the expert to label the states the learner itself visits.

Paper: Ross, Gordon, Bagnell, "A reduction of imitation learning and structured prediction to no-regret online
learning" (AISTATS 2011), Algorithm 3.1. Lecture notes: ../shared/seeds 000 ("DAGGER: Dataset Aggregation", after
"Problem: compounding errors").

Behaviour cloning (bc.py) trains on states from the expert's distribution, s ∼ D_π*, and is then run on its own,
s ∼ D_π̂: each mistake leads to states it never saw, and its errors compound (∝ εT² over T steps, notes 000).
DAgger gathers training states where the learner goes and asks the expert what it would have done there. The
notes' pseudocode, which the training loop below follows line for line:
    Initialize D ← ∅.
    Initialize π̂_1 to any policy in Π.                                     (an untrained network)
    for i = 1 to N do
        Let π_i = β_i π* + (1 − β_i) π̂_i.                                    [S1]
        Sample T-step trajectories using π_i.                                [S1]
        Get dataset D_i = {(s, π*(s))} of visited states by π_i              [S2]
            and actions given by expert.
        Aggregate datasets: D ← D ∪ D_i.                                     [S2]
        Train classifier π̂_{i+1} on D.                                      [S3]
    end for
    Return best π̂_i on validation.                                          [S4]
β_i is the probability that π_i executes the expert's action at a step (the learner's otherwise): β_1 = 1 makes
round 1 plain behaviour cloning data; β_i → 0 lets the learner's own mistakes shape the data. Ross et al. found
the simplest schedule, β_i = 1 for i = 1 and 0 after, to work best (--beta-schedule indicator); β_i = p^(i−1)
is their other choice (--beta-schedule exponential).

"Best on validation": the score of π̂_i is its disagreement with the expert on the states of round i, which it was
not trained on (it was trained before they were collected). With β_i = 0 these are its own states, so the score is
the quantity DAgger's guarantee is about: the learner's error under its own state distribution. No reward is used
to learn or to choose; the environment's return is logged only to show what happens.

Run:
    python dagger.py                                  # Hopper-v4 with its shipped expert
    python dagger.py --env CartPole-v1 --rounds 4     # discrete actions
    python dagger.py --env Walker2d-v4 --beta-schedule exponential --beta-p 0.5
What a working run reaches: Hopper-v4, a normalised score of 1.19 with ~20k labels, the expert's own policy (0 a random
policy, 1 the noisy demonstrator; docs/imitation.md); on InvertedPendulum-v4 it fixes the fall of behaviour cloning
from one demo (docs/dagger.md, with the command behind each number).

Deviations from the paper:
  - SIMPLIFICATION: π̂_{i+1} starts from π̂_i's weights and takes train_steps more Adam steps on D (warm start),
    instead of a fresh fit on D each round; the data are what DAgger changes, the optimiser only needs to follow.
  - The observation normalisation is computed once, from round 1's states, and fixed afterwards.
  - The learner is the network of bc.py (same losses, same minibatch training), so the two compare directly.
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
    # --- common to every script (CONTRIBUTING.md); the budget is --rounds x --episodes-per-round, not a step count ---
    env: str = "Hopper-v4"
    """gymnasium environment id, e.g. Hopper-v4, CartPole-v1 (its expert must exist, see --expert)"""
    exp_name: str = "dagger"
    """name of this experiment; part of the run directory name"""
    seed: int = 1
    """seed of python, numpy, torch, the environment, the β-mixture and the minibatches"""
    cuda: bool = True
    """train on the GPU when one is available (roll-outs run on the CPU)"""
    torch_deterministic: bool = True
    """make cuDNN deterministic"""
    torch_threads: int = 1
    """CPU threads for torch; 1 is fastest for small MLPs"""
    capture_video: bool = False
    """record the final evaluation episodes to <run dir>/videos (needs moviepy)"""
    save_model: bool = True
    """write <run dir>/model.pt (policy network + observation-normalisation statistics)"""
    runs_dir: str = "runs"
    """parent folder of the run directories"""
    eval_episodes: int = 10
    """episodes of the final deterministic evaluation of the returned policy"""
    eval_seed: int = 10_000
    """evaluation episode i is reset with seed eval_seed + i (away from the training seeds)"""
    checkpoint: Optional[str] = None
    """skip training: load this model.pt written by dagger.py and evaluate it"""
    checkpoint_every: int = 1
    """write <run dir>/checkpoint.pt (all that --resume needs, the aggregated dataset included) every this many
    rounds; 0: only on Ctrl-C/SIGTERM"""
    resume: Optional[str] = None
    """continue the run in this run directory from its checkpoint.pt, with its own arguments"""

    # --- the expert and the rounds ---
    expert: Optional[str] = None
    """π*: a policy.pt2 (torch.export) to query for labels; default experts/<env>/policy.pt2 beside this script"""
    rounds: int = 10
    """N: rounds of roll-out, labelling, aggregation and training"""
    episodes_per_round: int = 2
    """trajectories sampled with π_i in each round (each runs to the end of its episode: T is the env's limit)"""
    subsample: int = 1
    """keep every k-th visited state of each trajectory (from a random offset) in D_i, as bc.py --subsample does
    with the demonstrations: labels are what the expert is asked for, and this makes them fewer"""
    beta_schedule: Literal["indicator", "exponential"] = "indicator"
    """β_i, the probability of executing the expert's action: indicator β_i = 1 if i = 1 else 0 (Ross et al. 2011,
    Sec. 3); exponential β_i = p^(i−1)"""
    beta_p: float = 0.5
    """p of the exponential schedule"""

    # --- the learner (bc.py's) ---
    loss: Literal["auto", "mse", "nll"] = "auto"
    """mse: deterministic π̂(s); nll: Gaussian π̂(a|s) by maximum likelihood; auto: mse, or cross-entropy for discrete
    actions (as in bc.py)"""
    train_steps: int = 4_000
    """Adam steps on minibatches of D after each round ("train classifier π̂_{i+1} on D")"""
    batch_size: int = 256
    """pairs (s, π*(s)) per minibatch"""
    learning_rate: float = 0.001
    """Adam step size"""
    weight_decay: float = 0.0
    """L2 penalty on the weights (AdamW's decoupled form)"""
    hidden_size: int = 256
    """units in each of the two hidden (ReLU) layers"""
    log_std_min: float = -5.0
    """lower bound of log σ_θ(s) (--loss nll)"""
    log_std_max: float = 2.0
    """upper bound of log σ_θ(s) (--loss nll)"""
    norm_obs: bool = True
    """standardise observations with the training states' mean and variance (fixed, baked into the saved policy)"""
    obs_std_min: float = 0.1
    """floor on the standard deviation used to standardise each observation dimension (see GOTCHA in [S2])"""
    clip_obs: float = 10.0
    """clip normalised observations to ±clip_obs (the learner's early states can be far from the expert's)"""


# ── Networks ───────────────────────────────────────────────────────────────────────────────────────
# >>> shared: imitation policy
class Policy(nn.Module):
    """π_θ: an MLP obs_dim -> hidden -> hidden -> A with ReLU activations.

    `actor` outputs the action π_θ(s) (mse), the mean μ_θ(s) of a Gaussian (nll), or the logits of a categorical.
    For the Gaussian, `log_std_head` reads the same hidden features and outputs log σ_θ(s): the spread may depend
    on the state (wide where the demonstrations disagree, narrow where they agree).
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: int, gaussian: bool):
        super().__init__()
        self.actor = nn.Sequential(
            nn.Linear(obs_dim, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, act_dim),
        )
        self.log_std_head = nn.Linear(hidden, act_dim) if gaussian else None

    def forward(self, obs: torch.Tensor) -> tuple:
        """obs (B, obs_dim) -> (out (B, A), raw log σ (B, A) or None)"""
        h = self.actor[:-1](obs)  # (B, hidden), the features before the last layer
        return self.actor[-1](h), None if self.log_std_head is None else self.log_std_head(h)
# <<< shared: imitation policy


# ── Algorithm math: small pure functions, one per equation, importable by tests ────────────────────

# Notation (round i; B pairs of a minibatch; A = action dim or number of actions):
#   code              symbol                                              shape
#   beta              β_i, the probability of executing the expert's action   scalar
#   expert_actions    π*(s_t), the label of every visited state              (T, A) continuous, (T,) discrete
#   learner_actions   π̂_i(s_t)                                             (T, A) or (T,)
#   u                 u_t ∼ U(0, 1), one per step                           (T,)
#   D_obs, D_act      the aggregated dataset D = ∪_i D_i                     (|D|, obs_dim), (|D|, A) or (|D|,)
LOG_2PI = float(np.log(2 * np.pi))


def beta_schedule(i: int, kind: str, p: float) -> float:
    """β_i for round i = 1, 2, ... (Ross et al. 2011, Sec. 3)."""
    if kind == "indicator":
        # β_i = I(i = 1): round 1 rolls out the expert (behaviour cloning's data), later rounds the learner alone.
        return 1.0 if i == 1 else 0.0
    # β_i = p^(i−1): the expert's share of control decays geometrically.
    return p ** (i - 1)


def mix_actions(expert_actions: np.ndarray, learner_actions: np.ndarray, beta: float, u: np.ndarray) -> tuple:
    """π_i = β_i π* + (1 − β_i) π̂_i, per step: the expert's action where u_t < β, the learner's elsewhere.

    Returns (actions, from_expert (T,) bool). Shapes (T, A) or (T,), and u (T,).
    The mixture is over which policy acts at each step (a stochastic policy even if π* and π̂_i are deterministic);
    the label of the step is π*(s_t) either way.
    """
    assert expert_actions.shape == learner_actions.shape and u.shape == expert_actions.shape[:1]
    from_expert = u < beta  # (T,)
    mask = from_expert.reshape((-1,) + (1,) * (expert_actions.ndim - 1))  # (T, 1) for (T, A) actions
    return np.where(mask, expert_actions, learner_actions), from_expert


def disagreement(learner_actions: np.ndarray, expert_actions: np.ndarray, discrete: bool) -> float:
    """The learner's error against the expert on a set of states: the fraction of different actions (discrete),
    or the mean ‖π̂(s) − π*(s)‖² (continuous, the mse loss). (T, A) or (T,) -> scalar."""
    assert learner_actions.shape == expert_actions.shape
    if discrete:
        return float(np.mean(learner_actions != expert_actions))
    return float(np.mean(np.sum(np.square(learner_actions - expert_actions), axis=-1)))


# >>> shared: imitation losses
def mse_loss(pred: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Deterministic policy (notes 004): mean over the batch of ‖a − π_θ(s)‖². (B, A), (B, A) -> scalar."""
    assert pred.shape == actions.shape  # (B, A) − (B,) would broadcast to (B, B)
    # L(θ) = (1/B) Σ_b ‖a_b − π_θ(s_b)‖²
    return (actions - pred).pow(2).sum(-1).mean()


def bounded_log_std(raw: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """log σ = lo + ½(hi − lo)(tanh(raw) + 1) ∈ (lo, hi): a smooth clamp that keeps a gradient everywhere."""
    # TRICK (SAC implementations, e.g. CleanRL's sac_continuous_action.py): bound log σ with a tanh. A hard clamp
    # has zero gradient outside the range, so a σ that hits the floor could never come back.
    return lo + 0.5 * (hi - lo) * (torch.tanh(raw) + 1)


def gaussian_nll(mu: torch.Tensor, log_std: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Stochastic policy (notes 004): −(1/B) Σ_b log N(a_b; μ_θ(s_b), diag σ_θ(s_b)²). (B, A) x3 -> scalar."""
    assert mu.shape == log_std.shape == actions.shape
    # −log π_θ(a|s) = Σ_j [ ½((a_j − μ_j)/σ_j)² + log σ_j + ½ log 2π ]
    # GOTCHA: the first term is the MSE divided by σ²: where σ_θ(s) is small, errors cost more. The optimum σ_j² is
    # the expected squared error at s, so the fit becomes a weighted regression that trusts the confident states.
    z = (actions - mu) * torch.exp(-log_std)
    return (0.5 * z.pow(2) + log_std + 0.5 * LOG_2PI).sum(-1).mean()


def categorical_nll(logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Discrete policy: −(1/B) Σ_b log softmax(logits_θ(s_b))_{a_b}, the cross-entropy. (B, A), (B,) -> scalar."""
    assert logits.ndim == 2 and actions.shape == logits.shape[:1]
    # −log π_θ(a|s) = −logits_a + log Σ_b' exp(logits_b')
    return -torch.log_softmax(logits, dim=-1).gather(-1, actions.long().unsqueeze(-1)).squeeze(-1).mean()
# <<< shared: imitation losses


def normalize_obs(obs: np.ndarray, rms: Optional[RunningMeanStd], clip: float) -> np.ndarray:
    """ŝ = clip((s − μ) / √(σ² + ε), −c, c), as float32; identity without statistics."""
    if rms is None:
        return obs.astype(np.float32)
    return np.clip((obs - rms.mean) / np.sqrt(rms.var + 1e-8), -clip, clip).astype(np.float32)


# ── Training loop [S1 roll out π_i -> S2 label, aggregate -> S3 train π̂_{i+1} -> S4 pick the best] ───
def main(args: Args) -> dict:
    """Train (or load --checkpoint), evaluate, save; returns the summary written to summary.json."""
    resumed = None  # the checkpoint.pt of the run that --resume continues
    if args.resume is not None:
        args, resumed = resume_args(args, "dagger.py")
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
    if discrete and args.loss == "mse":
        raise UserError(f"{args.env} has discrete actions: --loss mse needs continuous ones (use --loss nll, the "
                        f"cross-entropy)")
    loss_kind = "mse" if args.loss == "auto" and not discrete else "nll" if args.loss == "auto" else args.loss
    gaussian = loss_kind == "nll" and not discrete
    expert_path = args.expert or default_expert_path(args.env, "policy.pt2")
    if args.checkpoint is None:
        expert = load_expert_policy(expert_path, args.env, obs_dim, act_dim, discrete)  # before any folder is made

    if args.checkpoint is not None:  # (before the run directory exists, so a bad file leaves no empty run behind)
        # (load_checkpoint takes the network sizes and clip_obs from the file: args.json records what this run used)
        policy_net, obs_rms = load_checkpoint(args.checkpoint, args, obs_dim, act_dim, discrete, device)

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
    extra, global_step, train_returns = {}, 0, []

    if args.checkpoint is not None:  # --checkpoint: evaluate the saved model; nothing to train
        env.close()
        train_time = time.time() - start_time
        summary = finish(args, run_dir, writer, policy_net, obs_rms, discrete, low, high, global_step, train_time,
                         train_returns, extra)
        writer.close()
        return summary

    policy_net = Policy(obs_dim, act_dim, args.hidden_size, gaussian).to(device)  # π̂_1: "any policy in Π"
    optimizer = torch.optim.AdamW(policy_net.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay)
    batch_gen = torch.Generator(device=device).manual_seed(args.seed)
    mix_rng = np.random.default_rng(args.seed)  # the u_t of the β-mixture
    obs_rms = None  # with --norm-obs, fixed from round 1's states
    d_obs, d_act = [], []  # D = ∪_i D_i: raw states and the expert's labels, round by round
    rounds, best, labels_so_far = [], {"score": float("inf"), "round": None, "state": None}, 0
    raw_obs, _ = env.reset(seed=args.seed)  # later resets continue the env's own seeded generator

    def learner_act(o: np.ndarray) -> np.ndarray:
        """π̂_i(s) for raw observations (B, obs_dim): the deterministic action, as the evaluation runs it."""
        with torch.no_grad():
            out, _ = policy_net(torch.as_tensor(normalize_obs(o, obs_rms, args.clip_obs), device=device))
            out = out.cpu().numpy()
        return out.argmax(-1) if discrete else np.clip(out, low, high)

    # Rounds 1..N each end by training π̂_{i+1}; one more roll-out (round N + 1) only scores π̂_{N+1}.
    start_round = 1
    if resumed is not None:  # --resume: put back everything the loop carries from one round to the next
        set_rng_states(resumed["rng"])
        policy_net.load_state_dict(resumed["policy_net"])
        optimizer.load_state_dict(resumed["optimizer"])
        batch_gen.set_state(resumed["batch_gen"])
        if resumed["obs_rms"] is not None:
            obs_rms = RunningMeanStd((obs_dim,))
            vars(obs_rms).update(resumed["obs_rms"])
        mix_rng, d_obs, d_act = resumed["mix_rng"], resumed["d_obs"], resumed["d_act"]
        rounds, best, labels_so_far = resumed["rounds"], resumed["best"], resumed["labels_so_far"]
        global_step, train_returns = resumed["global_step"], resumed["train_returns"]
        env.close()
        env, raw_obs = set_env_state(resumed["env"]), resumed["raw_obs"]
        start_round, start_time = resumed["round"] + 1, time.time() - resumed["train_time"]

    with StopSignals() as stop:  # Ctrl-C or SIGTERM: finish this round, write checkpoint.pt, stop
        for i in range(start_round, args.rounds + 2):
            beta = beta_schedule(i, args.beta_schedule, args.beta_p)
            # [S1] Sample trajectories with π_i = β_i π* + (1 − β_i) π̂_i, to the end of each episode.
            # Every visited state is labelled with the expert's action, whoever acted.
            states, labels, learner_labels, from_expert, episode_returns = [], [], [], [], []
            for _ in range(args.episodes_per_round):
                done, ep_return, t = False, 0.0, 0
                offset = mix_rng.integers(args.subsample)  # with --subsample k, D_i keeps steps t ≡ offset (mod k)
                while not done:
                    s = np.asarray(raw_obs, np.float32)[None]  # (1, obs_dim)
                    with torch.no_grad():
                        a_star = expert(torch.from_numpy(s)).numpy()  # π*(s_t), (1, A) or (1,)
                    # β_1 = 1 in both schedules: round 1 is the expert's alone, and π̂_1 (untrained) is never asked.
                    a_hat = learner_act(s) if i > 1 else a_star  # π̂_i(s_t)
                    action, by_expert = mix_actions(a_star, a_hat, beta, mix_rng.random(1))
                    raw_obs, reward, terminated, truncated, _ = env.step(action[0])
                    done = terminated or truncated
                    if t % args.subsample == offset:
                        states.append(s[0])
                        labels.append(a_star[0])
                        learner_labels.append(a_hat[0])
                    from_expert.append(by_expert[0])
                    ep_return, t, global_step = ep_return + float(reward), t + 1, global_step + 1
                episode_returns.append(ep_return)
                train_returns.append(ep_return)
                writer.add_scalar("charts/episodic_return", ep_return, global_step)
                raw_obs, _ = env.reset()
            # (T_i, obs_dim), (T_i, A) or (T_i,); T_i can be 0 when --subsample skips every step of short episodes
            states = np.asarray(states, np.float32).reshape(-1, obs_dim)
            labels = np.asarray(labels).reshape((-1,) if discrete else (-1, act_dim))
            learner_labels = np.asarray(learner_labels).reshape(labels.shape)
            labels_so_far += len(states)

            # [S4, first half] "Return best π̂_i on validation": the score of π̂_i is its disagreement with π* on the
            # states of round i, which it has not been trained on (it was fitted before they existed). With β_i = 0
            # they are π̂_i's own states, the distribution DAgger's guarantee is about. (With β_i > 0 some steps are
            # the expert's, and the score is optimistic.)
            score = None
            if i > 1 and len(states):
                score = disagreement(learner_labels, labels, discrete)
                if score < best["score"]:
                    best = {"score": score, "round": i, "state": copy.deepcopy(policy_net.state_dict())}
            record = {
                "round": i, "beta": beta, "new_labels": len(states), "expert_labels": labels_so_far,
                # the fraction of steps where the expert acted: ≈ β_i
                "expert_action_fraction": float(np.mean(from_expert)),
                # π̂_i on the states of round i, before any training on them (None for the untrained π̂_1)
                "disagreement": score,
                # the environment's return of π_i (π̂_i's own when β_i = 0); logged, never used to learn or choose
                "rollout_return": float(np.mean(episode_returns)),
            }
            writer.add_scalar("charts/beta", beta, labels_so_far)
            writer.add_scalar("charts/expert_action_fraction", record["expert_action_fraction"], labels_so_far)
            writer.add_scalar("charts/round_return", record["rollout_return"], labels_so_far)
            if score is not None:
                # Disagreement on the learner's own states: what DAgger drives down. If it stays high while the
                # training loss is low, the learner cannot represent the expert on the states it reaches.
                writer.add_scalar("losses/disagreement", score, labels_so_far)
            print(f"round {i:>3}  β {beta:.3f}  labels {labels_so_far:>8,}  return of π_{i} {record['rollout_return']:9.1f}  "
                  f"disagreement of π̂_{i} {'      -' if score is None else f'{score:.5f}'}", flush=True)
            if i == args.rounds + 1:
                rounds.append(record)
                break  # the validation roll-out of π̂_{N+1}: its labels are not trained on

            # [S2] D_i = {(s, π*(s))}; aggregate D ← D ∪ D_i.
            d_obs.append(states)
            d_act.append(labels)
            if i == 1 and args.norm_obs:
                # The input normalisation of the network, from round 1's states; fixed from here on (a network whose
                # inputs were rescaled between rounds would have to relearn).
                obs_rms = RunningMeanStd((obs_dim,))
                obs_rms.update(states.astype(np.float64))
                # GOTCHA: as in bc.py, a floor on σ: the expert keeps some variables nearly constant, and dividing by
                # their tiny σ would magnify the learner's deviations a thousandfold.
                obs_rms.var = np.maximum(obs_rms.var, args.obs_std_min ** 2)
            D_obs = torch.as_tensor(normalize_obs(np.concatenate(d_obs), obs_rms, args.clip_obs), device=device)
            D_act = torch.as_tensor(np.concatenate(d_act), device=device)
            if len(D_obs) == 0:
                raise UserError(f"--subsample {args.subsample} kept no state of round 1's episodes; use a smaller one")

            # [S3] Train π̂_{i+1} on D: train_steps Adam steps on minibatches drawn uniformly from all of D.
            for _ in range(args.train_steps):
                idx = torch.randint(len(D_obs), (args.batch_size,), device=device, generator=batch_gen)  # (B,)
                out, raw_log_std = policy_net(D_obs[idx])
                if discrete:
                    loss = categorical_nll(out, D_act[idx])
                elif gaussian:
                    loss = gaussian_nll(out, bounded_log_std(raw_log_std, args.log_std_min, args.log_std_max), D_act[idx])
                else:
                    loss = mse_loss(out, D_act[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            # [S4] log: the dataset grows by the states of round i.
            record.update(dataset_size=len(D_obs), train_loss=loss.item())
            rounds.append(record)
            writer.add_scalar("charts/dataset_size", len(D_obs), i)
            writer.add_scalar("losses/train_loss", loss.item(), labels_so_far)

            # Safe point, after round i (between episodes: the env has just been reset).
            check_finite(run_dir, global_step, **{"the training loss": loss, "the policy": policy_net})
            if stop.received or checkpoint_due(i - 1, i, args.checkpoint_every):
                save_training_state(run_dir, {
                    "script": "dagger.py", "round": i, "global_step": global_step,
                    "train_time": time.time() - start_time, "policy_net": policy_net.state_dict(),
                    "optimizer": optimizer.state_dict(), "batch_gen": batch_gen.get_state(),
                    "obs_rms": None if obs_rms is None else vars(obs_rms), "mix_rng": mix_rng,
                    "d_obs": d_obs, "d_act": d_act, "rounds": rounds, "best": best, "labels_so_far": labels_so_far,
                    "train_returns": train_returns, "env": env_state(env), "raw_obs": raw_obs})
            if stop.received:
                writer.close()
                raise Interrupted(stop_line("dagger.py", stop.received, global_step, run_dir))

    if best["state"] is not None:  # (None only if every validation round kept no state)
        policy_net.load_state_dict(best["state"])  # the best π̂_i on validation
        print(f"returning π̂_{best['round']} (the lowest disagreement on its own states, {best['score']:.5f})")
    extra = {"rounds": rounds, "best_round": best["round"], "expert_labels": len(D_obs),
             "validation_labels": rounds[-1]["new_labels"]}

    env.close()

    train_time = time.time() - start_time
    summary = finish(args, run_dir, writer, policy_net, obs_rms, discrete, low, high, global_step, train_time,
                     train_returns, extra)
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


def finish(args: Args, run_dir: str, writer: SummaryWriter, policy_net: Policy, obs_rms: Optional[RunningMeanStd],
           discrete: bool, low, high, global_step: int, train_time: float, train_returns: list, extra: dict) -> dict:
    """model.pt, then the final deterministic evaluation, summary.json."""
    # model.pt first: a failure in the evaluation (a missing video codec, an env error) must not lose the training
    if args.save_model and args.checkpoint is None:
        atomic_torch_save({
            "script": "dagger.py", "env": args.env, "args": dataclasses.asdict(args),
            "policy": {k: v.detach().cpu().clone() for k, v in policy_net.state_dict().items()},
            # tensors, not numpy arrays, so that torch.load(weights_only=True) can read the file without unpickling code
            "obs_rms": None if obs_rms is None else {"mean": torch.from_numpy(obs_rms.mean),
                                                     "var": torch.from_numpy(obs_rms.var),
                                                     "count": float(obs_rms.count)},
        }, os.path.join(run_dir, "model.pt"))
        remove_checkpoint(run_dir)
    policy = DeterministicPolicy(policy_net.actor, obs_rms, args.clip_obs, discrete, low, high)
    video_dir = os.path.join(run_dir, "videos") if args.capture_video else None
    evaluation = run_episodes(torch_policy(policy), args.env, args.eval_episodes, args.eval_seed, video_dir)
    eval_returns = evaluation["episode_returns"]
    if len(eval_returns):
        writer.add_scalar("eval/return", float(eval_returns.mean()), global_step)


    # The expert's return on its demonstrations (the demos.npz beside policy.pt2): the yardstick of "fraction of
    # expert".
    expert_return = None
    demos_path = os.path.join(os.path.dirname(args.expert or default_expert_path(args.env, "policy.pt2")), "demos.npz")
    if os.path.isfile(demos_path):
        expert_return = demos_metadata(demos_path).get("return_mean")
    summary = {
        "script": "dagger.py", "env": args.env, "seed": args.seed, "env_steps": global_step,
        "wall_time_s": round(train_time, 1), "sps": round(global_step / train_time) if global_step else 0,
        "eval_episodes": len(eval_returns),
        "eval_return_mean": float(eval_returns.mean()) if len(eval_returns) else None,
        "eval_return_std": float(eval_returns.std()) if len(eval_returns) else None,
        "eval_returns": [float(r) for r in eval_returns],
        "train_return_last100": float(np.mean(train_returns[-100:])) if train_returns else None,
        "checkpoint": args.checkpoint, "run_dir": run_dir,
        "expert_return": expert_return,
        # eval return / expert return; only meaningful when returns are positive (not for Pendulum's costs)
        "expert_fraction": (float(eval_returns.mean()) / expert_return
                            if len(eval_returns) and expert_return and expert_return > 0 else None),
        # 0 = a uniform random policy, 1 = the demonstrator, on the same evaluation seeds
        "normalized_score": normalized_score(eval_returns, demos_path, args.eval_seed),
        **extra,
    }
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
    rules = [
        (args.rounds >= 1 and args.episodes_per_round >= 1, "--rounds and --episodes-per-round must be at least 1"),
        (args.subsample >= 1, "--subsample must be at least 1 (1 keeps every visited state)"),
        (0 <= args.beta_p <= 1, "--beta-p must be in [0, 1] (it is a probability)"),
        (args.train_steps >= 1 and args.batch_size >= 1, "--train-steps and --batch-size must be at least 1"),
        (args.learning_rate > 0 and args.weight_decay >= 0, "--learning-rate must be positive, --weight-decay >= 0"),
        (args.log_std_min < args.log_std_max, "--log-std-min must be below --log-std-max"),
        (args.eval_episodes >= 0, "--eval-episodes must be >= 0"),
        (args.hidden_size >= 1 and args.torch_threads >= 1, "--hidden-size and --torch-threads must be at least 1"),
        (args.clip_obs > 0, "--clip-obs must be positive"),
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
    """Rebuild the policy and observation statistics from a model.pt written by this script."""
    if not os.path.isfile(path):
        raise UserError(f"checkpoint '{path}' does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        # (torch's message runs to several lines; its first says what failed)
        raise UserError(f"cannot read checkpoint '{path}' as a model.pt written by dagger.py: "
                        f"{str(err).strip().splitlines()[0][:200]}") from None
    if not isinstance(ckpt, dict) or ckpt.get("script") != "dagger.py":
        raise UserError(f"'{path}' is not a model.pt written by dagger.py")
    if ckpt["env"] != args.env:
        raise UserError(f"checkpoint '{path}' was trained on {ckpt['env']}, not {args.env} (pass --env {ckpt['env']})")
    for key in ("hidden_size", "clip_obs", "loss"):
        setattr(args, key, ckpt["args"][key])
    policy_net = Policy(obs_dim, act_dim, args.hidden_size, "log_std_head.weight" in ckpt["policy"]).to(device)
    policy_net.load_state_dict(ckpt["policy"])
    obs_rms = None
    if ckpt["obs_rms"] is not None:
        obs_rms = RunningMeanStd((obs_dim,))
        obs_rms.mean, obs_rms.var = ckpt["obs_rms"]["mean"].numpy(), ckpt["obs_rms"]["var"].numpy()
        obs_rms.count = ckpt["obs_rms"]["count"]
    return policy_net, obs_rms


if __name__ == "__main__":
    try:
        main(tyro.cli(Args))
    except UserError as err:
        sys.exit(f"dagger.py: error: {err}")
    except Interrupted as err:
        print(err, file=sys.stderr)
        sys.exit(130)
    except KeyboardInterrupt:
        print("dagger.py: interrupted; the run directory keeps its last checkpoint.pt, if one was written",
              file=sys.stderr)
        sys.exit(130)
