"""Behaviour cloning: imitation as supervised learning of the expert's actions, for discrete and continuous actions.

Papers: Pomerleau, "ALVINN" (NIPS 1989); the compounding-error analysis in Ross & Bagnell, "Efficient reductions for
imitation learning" (AISTATS 2010) and Ross, Gordon, Bagnell, "A reduction of imitation learning and structured
prediction to no-regret online learning" (AISTATS 2011). Lecture notes: ../shared/seeds 004 ("Behavioral cloning":
the MSE loss of a deterministic policy, the log-likelihood loss of a stochastic one, "use a validation set to avoid
overfitting") and 000 (behaviour cloning, and why its errors compound, ∝ εT²).

The data are the expert's demonstrations: m trajectories of pairs (s_t^(i), a_t^(i)), a_t^(i) ∼ π*(·|s_t^(i)).
No reward is used and the environment is never touched during training. The policy is fitted by regression:
    deterministic π_θ(s):          L(θ) = (1/m) Σ_i Σ_t ‖a_t^(i) − π_θ(s_t^(i))‖²          (notes 004)    --loss mse
    stochastic π_θ(a|s):           L(θ) = −(1/m) Σ_i Σ_t log π_θ(a_t^(i) | s_t^(i))        (notes 004)    --loss nll
(a Gaussian N(μ_θ(s), σ_θ(s)²) for continuous actions; for discrete actions the log-likelihood of a categorical
π_θ(·|s) = softmax(logits_θ(s)) is the cross-entropy of a classifier.)
GOTCHA: the notes print the MSE loss with a leading minus sign; a loss to minimise is the positive sum of squares.

Why it can fail (notes 000): training states come from the expert, s_t ∼ D_π*, but the learner is run on its own,
s_t ∼ D_π_θ. A mistake takes it to states the expert never visited, where its error is larger, and so on: with a
per-step mistake probability ε, the expected number of mistakes over T steps grows like ε·(T + (T−1) + ... + 1) ∝ εT²
instead of εT. dagger.py fixes the data, not the learner; `python benchmark/bench_imitation.py` measures both.

Pseudocode (the step tags appear in the training loop below):
    [S1] load the first --num-demos expert episodes; hold out --val-fraction of them (whole episodes) for validation
    [S2] observation normalisation from the training states (fixed afterwards, baked into the saved policy)
    [S3] for k = 1..train_steps: one Adam step on L(θ) over a minibatch of training pairs;
         every val_every steps: L on the validation episodes, keep the θ with the lowest one
    [S4] log train and validation losses; at the end, restore the best θ and evaluate it in the environment

Run:
    python bc.py                                   # Hopper-v4 from the 25 shipped demos (about 1 min on a CPU)
    python bc.py --env CartPole-v1 --num-demos 2   # discrete actions: cross-entropy
    python bc.py --env Hopper-v4 --loss nll        # a Gaussian policy fitted by maximum likelihood
    python bc.py --env Walker2d-v4 --demos path/to/demos.npz
What a working run reaches: Hopper-v4 from 25 demos, a normalised score of 1.17 (0 a random policy, 1 the noisy
demonstrator, 1.19 the expert's own deterministic policy; docs/imitation.md, with the command behind each number).

Deviations from the notes:
  - SIMPLIFICATION: the losses average over the sampled pairs of a minibatch (the notes sum over t and average over
    trajectories: the same minimiser, another step size).
  - TRICK: observation normalisation with the training set's mean and variance, standard for MLPs.
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
    # --- common to every script (CONTRIBUTING.md); BC takes no environment steps, so it has no --total-timesteps ---
    env: str = "Hopper-v4"
    """gymnasium environment id whose expert demonstrations to clone, e.g. Hopper-v4, CartPole-v1"""
    exp_name: str = "bc"
    """name of this experiment; part of the run directory name"""
    seed: int = 1
    """seed of python, numpy, torch, the validation split and the minibatches"""
    cuda: bool = True
    """train on the GPU when one is available"""
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
    """episodes of the final deterministic evaluation (most likely action, or the mean action)"""
    eval_seed: int = 10_000
    """evaluation episode i is reset with seed eval_seed + i (the shipped demos start from 20000 + i)"""
    checkpoint: Optional[str] = None
    """skip training: load this model.pt written by bc.py and evaluate it"""
    checkpoint_every: int = 10_000
    """write <run dir>/checkpoint.pt (all that --resume needs) every this many training steps;
    0: only on Ctrl-C/SIGTERM"""
    resume: Optional[str] = None
    """continue the run in this run directory from its checkpoint.pt, with its own arguments"""

    # --- the data ---
    demos: Optional[str] = None
    """demonstrations (a demos.npz in the format of CONTRIBUTING.md); default experts/<env>/demos.npz beside this script"""
    num_demos: int = 25
    """m: use the first m episodes of the file (training and validation together)"""
    subsample: int = 1
    """keep every k-th pair of each demonstration, from a random offset (Ho & Ermon 2016 keep every 20th): fewer
    labels from the same number of trajectories"""
    val_fraction: float = 0.2
    """fraction of the m episodes held out, as whole episodes, to pick the best θ (notes 004); 0 keeps the last θ"""

    # --- the loss and its optimisation ---
    loss: Literal["auto", "mse", "nll"] = "auto"
    """mse: deterministic π_θ(s); nll: Gaussian π_θ(a|s) by maximum likelihood; auto: mse, or cross-entropy (the nll
    of a categorical policy) for discrete actions (notes 004)"""
    train_steps: int = 20_000
    """Adam steps on minibatches"""
    batch_size: int = 256
    """pairs (s, a) per minibatch"""
    learning_rate: float = 0.001
    """Adam step size"""
    weight_decay: float = 0.0
    """L2 penalty on the weights (AdamW's decoupled form); another guard against overfitting few demos"""
    val_every: int = 500
    """compute the validation loss every this many steps"""
    hidden_size: int = 256
    """units in each of the two hidden (ReLU) layers"""
    log_std_min: float = -5.0
    """lower bound of log σ_θ(s) (--loss nll): a deterministic expert drives σ → 0 and the loss → −∞ without it"""
    log_std_max: float = 2.0
    """upper bound of log σ_θ(s) (--loss nll)"""
    norm_obs: bool = True
    """standardise observations with the training states' mean and variance (fixed, baked into the saved policy)"""
    obs_std_min: float = 0.1
    """floor on the standard deviation used to standardise each observation dimension (see GOTCHA in [S2])"""
    clip_obs: float = 10.0
    """clip normalised observations to ±clip_obs (states far from the demonstrations stay in range)"""


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
# Notation (B pairs of a minibatch; A = action dim or number of actions):
#   code          symbol                                   shape
#   obs           s_t^(i) (normalised)                     (B, obs_dim)
#   actions       a_t^(i), the expert's action              (B, A) continuous, (B,) discrete
#   pred          π_θ(s) or μ_θ(s)                          (B, A)
#   logits        logits_θ(s) of a categorical π_θ(·|s)     (B, A)
#   log_std       log σ_θ(s), bounded                       (B, A)
#   lengths       T_i, the length of demo episode i         (m,)
#   val_mask      True where a step belongs to a validation episode   (Σ T_i,)
LOG_2PI = float(np.log(2 * np.pi))


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


def validation_split(lengths: np.ndarray, num_val: int, rng: np.random.Generator) -> np.ndarray:
    """Hold out num_val whole episodes, chosen at random; lengths (m,) -> val_mask (Σ T_i,) bool.

    GOTCHA: split episodes, not steps. Consecutive states of one episode are nearly equal, so a random split of
    steps puts a near-copy of every validation pair in the training set, and the validation loss stops measuring
    how the policy does on a trajectory it has not seen.
    """
    episode_is_val = np.zeros(len(lengths), bool)  # (m,)
    episode_is_val[rng.choice(len(lengths), size=num_val, replace=False)] = True
    return np.repeat(episode_is_val, lengths)


def subsample_mask(lengths: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Keep every k-th step of each episode, starting from a random offset o_i < k; lengths (m,) -> keep (Σ T_i,) bool."""
    offsets = np.repeat(rng.integers(0, k, size=len(lengths)), lengths)  # (Σ T_i,) o_i of each step's episode
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)  # (Σ T_i,) the index where each step's episode starts
    t = np.arange(int(lengths.sum())) - starts  # (Σ T_i,) time step within the episode
    # GOTCHA: a fresh offset per episode; with o = 0 everywhere, a periodic gait would show the same phase every time.
    return t % k == offsets


def normalize_obs(obs: np.ndarray, rms: Optional[RunningMeanStd], clip: float) -> np.ndarray:
    """ŝ = clip((s − μ) / √(σ² + ε), −c, c), as float32; identity without statistics."""
    if rms is None:
        return obs.astype(np.float32)
    return np.clip((obs - rms.mean) / np.sqrt(rms.var + 1e-8), -clip, clip).astype(np.float32)


# ── Training loop [S1 demos -> S2 normalisation -> S3 Adam steps -> S4 log, pick the best] ─────────
def main(args: Args) -> dict:
    """Train (or load --checkpoint), evaluate, save; returns the summary written to summary.json."""
    resumed = None  # the checkpoint.pt of the run that --resume continues
    if args.resume is not None:
        args, resumed = resume_args(args, "bc.py")
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
    env.close()
    if discrete and args.loss == "mse":
        raise UserError(f"{args.env} has discrete actions: --loss mse needs continuous ones (use --loss nll, the "
                        f"cross-entropy)")
    loss_kind = "mse" if args.loss == "auto" and not discrete else "nll" if args.loss == "auto" else args.loss
    gaussian = loss_kind == "nll" and not discrete
    demos_path = args.demos or default_expert_path(args.env, "demos.npz")
    if args.checkpoint is None:
        demos = load_demos(demos_path, args.env, obs_dim, act_dim, discrete)  # before any folder is made
        lengths = demos["episode_lengths"][:args.num_demos]
        if args.num_demos <= len(demos["episode_lengths"]) and args.subsample > int(lengths.min()):
            # (every k-th pair from an offset o < k: an episode shorter than k could keep none)
            raise UserError(f"--subsample {args.subsample} is longer than the shortest of the {args.num_demos} demos "
                            f"({int(lengths.min())} steps): take --subsample {int(lengths.min())} or less")
        kept = int(lengths.sum()) // args.subsample  # about this many pairs, validation ones included
        if args.batch_size > kept:
            # (allowed: minibatches draw with replacement, as the benchmark's 50-label runs do with batches of 256)
            print(f"note: --batch-size {args.batch_size} is larger than the ~{kept} pairs of the {args.num_demos} "
                  f"demos: each minibatch draws pairs with replacement, and a step costs as much as the batch",
                  flush=True)

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
    extra = {}

    if args.checkpoint is not None:  # --checkpoint: evaluate the saved model; nothing to train
        train_time = time.time() - start_time
        summary = finish(args, run_dir, writer, policy_net, obs_rms, discrete, low, high, train_time, extra)
        writer.close()
        return summary

    # [S1] the first m episodes, split into training and validation episodes.
    lengths = demos["episode_lengths"]
    if args.num_demos > len(lengths):
        raise UserError(f"--num-demos {args.num_demos}: '{demos_path}' holds only {len(lengths)} episodes")
    lengths = lengths[:args.num_demos]  # (m,)
    n = int(lengths.sum())  # Σ T_i pairs
    raw_obs, actions = demos["observations"][:n], demos["actions"][:n]  # (n, obs_dim), (n,) or (n, A)
    num_val = int(round(args.val_fraction * args.num_demos))
    if args.val_fraction > 0:
        num_val = min(max(num_val, 1), args.num_demos - 1)  # at least one episode on each side
    split_rng = np.random.default_rng(args.seed)
    val_mask = validation_split(lengths, num_val, split_rng)  # (n,)
    keep = subsample_mask(lengths, args.subsample, split_rng)  # (n,) the pairs whose labels we use
    raw_obs, actions, val_mask = raw_obs[keep], actions[keep], val_mask[keep]

    # [S2] normalisation statistics of the training states only (the validation episodes stay unseen).
    obs_rms = None
    if args.norm_obs:
        obs_rms = RunningMeanStd((obs_dim,))
        obs_rms.update(raw_obs[~val_mask].astype(np.float64))
        # GOTCHA: a good expert keeps some state variables almost constant (InvertedPendulum's pole angle varies by
        # 0.001 rad over its demos). Dividing by that σ magnifies the learner's first small deviation 1000-fold,
        # off the edge of the training data (and past ±clip_obs), and the clone falls at once: 28 of 1000 from
        # 25 demos and 5,000 steps. A floor σ ≥ obs_std_min bounds the magnification: with it, 4 demos give 1000
        # (tests/test_imitation_learning.py); 25 demos still gave 235 at 5,000 steps, with the lowest validation
        # loss of all, because a low loss on the expert's states does not keep the clone on them (dagger.py).
        obs_rms.var = np.maximum(obs_rms.var, args.obs_std_min ** 2)
    obs = normalize_obs(raw_obs, obs_rms, args.clip_obs)
    to_tensor = lambda x: torch.as_tensor(x, device=device)  # noqa: E731
    train_obs, train_act = to_tensor(obs[~val_mask]), to_tensor(actions[~val_mask])
    val_obs, val_act = to_tensor(obs[val_mask]), to_tensor(actions[val_mask])
    print(f"{args.env}: {args.num_demos} demos ({len(raw_obs):,} pairs): {args.num_demos - num_val} episodes to train on, "
          f"{num_val} to validate on; loss {'cross-entropy' if discrete else loss_kind}", flush=True)

    policy_net = Policy(obs_dim, act_dim, args.hidden_size, gaussian).to(device)
    optimizer = torch.optim.AdamW(policy_net.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay)
    batch_gen = torch.Generator(device=device).manual_seed(args.seed)

    def loss_fn(o: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """The loss of --loss on pairs (o, a)."""
        out, raw_log_std = policy_net(o)
        if discrete:
            return categorical_nll(out, a)
        if gaussian:
            return gaussian_nll(out, bounded_log_std(raw_log_std, args.log_std_min, args.log_std_max), a)
        return mse_loss(out, a)

    best = {"val_loss": float("inf"), "step": 0, "state": copy.deepcopy(policy_net.state_dict())}
    # (the dataset is not in checkpoint.pt: --resume rebuilds it from the same demos.npz, and checks that it is)
    fingerprint = [len(raw_obs), float(np.sum(raw_obs, dtype=np.float64)), float(np.sum(actions, dtype=np.float64))]
    start_step = 1
    if resumed is not None:  # --resume: put back everything the loop carries from one step to the next
        if resumed["dataset"] != fingerprint:
            raise UserError(f"cannot resume: the demonstrations in '{demos_path}' changed since the run started")
        set_rng_states(resumed["rng"])
        policy_net.load_state_dict(resumed["policy_net"])
        optimizer.load_state_dict(resumed["optimizer"])
        batch_gen.set_state(resumed["batch_gen"])
        best, start_step = resumed["best"], resumed["global_step"] + 1
        start_time = time.time() - resumed["train_time"]

    with StopSignals() as stop:  # Ctrl-C or SIGTERM: finish this step, write checkpoint.pt, stop
        for step in range(start_step, args.train_steps + 1):
            # [S3] one Adam step on L(θ) over a minibatch drawn uniformly from the training pairs.
            idx = torch.randint(len(train_obs), (args.batch_size,), device=device, generator=batch_gen)  # (B,)
            loss = loss_fn(train_obs[idx], train_act[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

            if step % args.val_every == 0 or step == args.train_steps:
                # [S4] "use a validation set to avoid overfitting" (notes 004): keep the θ with the lowest loss on
                # the held-out episodes. A validation loss that rises while the training loss falls is overfitting.
                writer.add_scalar("losses/train_loss", loss.item(), step)
                check_finite(run_dir, step, **{"the training loss": loss, "the policy": policy_net})
                if num_val:
                    with torch.no_grad():
                        val_loss = loss_fn(val_obs, val_act).item()
                        out, _ = policy_net(val_obs)
                        # The fraction of validation states where the clone's action differs from the expert's
                        # (discrete), or its squared distance to it (continuous): comparable between mse and nll.
                        gap = (out.argmax(-1) != val_act).float().mean() if discrete else (out - val_act).pow(2).sum(-1).mean()
                    writer.add_scalar("losses/val_loss", val_loss, step)
                    writer.add_scalar("losses/val_action_error", gap.item(), step)
                    if val_loss < best["val_loss"]:
                        best = {"val_loss": val_loss, "step": step, "state": copy.deepcopy(policy_net.state_dict())}
                    print(f"step {step:>7,}  train loss {loss.item():9.5f}  val loss {val_loss:9.5f}  "
                          f"best {best['val_loss']:9.5f} (step {best['step']:,})", flush=True)
                else:
                    print(f"step {step:>7,}  train loss {loss.item():9.5f}", flush=True)

            # Safe point, after step `step`.
            if stop.received or checkpoint_due(step - 1, step, args.checkpoint_every):
                check_finite(run_dir, step, **{"the training loss": loss, "the policy": policy_net})
                save_training_state(run_dir, {
                    "script": "bc.py", "global_step": step, "train_time": time.time() - start_time,
                    "policy_net": policy_net.state_dict(), "optimizer": optimizer.state_dict(),
                    "batch_gen": batch_gen.get_state(), "best": best, "dataset": fingerprint})
            if stop.received:
                writer.close()
                raise Interrupted(stop_line("bc.py", stop.received, step, run_dir))
    if num_val:
        policy_net.load_state_dict(best["state"])  # the θ the validation set picked
    extra = {"num_demos": args.num_demos, "train_pairs": int((~val_mask).sum()), "val_pairs": int(val_mask.sum()),
             "expert_labels": len(raw_obs), "best_val_loss": best["val_loss"] if num_val else None,
             "best_step": best["step"] if num_val else args.train_steps}

    train_time = time.time() - start_time
    summary = finish(args, run_dir, writer, policy_net, obs_rms, discrete, low, high, train_time, extra)
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
           discrete: bool, low, high, train_time: float, extra: dict) -> dict:
    """model.pt, then the final deterministic evaluation, summary.json."""
    # model.pt first: a failure in the evaluation (a missing video codec, an env error) must not lose the training
    if args.save_model and args.checkpoint is None:
        atomic_torch_save({
            "script": "bc.py", "env": args.env, "args": dataclasses.asdict(args),
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
        writer.add_scalar("eval/return", float(eval_returns.mean()), args.train_steps)


    # The expert's return on its demonstrations, from the file's metadata: the yardstick of the "fraction of expert".
    expert_return = None
    demos_path = args.demos or default_expert_path(args.env, "demos.npz")
    if os.path.isfile(demos_path):
        expert_return = demos_metadata(demos_path).get("return_mean")
    summary = {
        "script": "bc.py", "env": args.env, "seed": args.seed, "env_steps": 0,  # BC never steps the env to train
        "wall_time_s": round(train_time, 1), "sps": 0,
        "eval_episodes": len(eval_returns),
        "eval_return_mean": float(eval_returns.mean()) if len(eval_returns) else None,
        "eval_return_std": float(eval_returns.std()) if len(eval_returns) else None,
        "eval_returns": [float(r) for r in eval_returns],
        "train_return_last100": None,  # no training episodes
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
        (args.num_demos >= 1, "--num-demos must be at least 1"),
        (0 <= args.val_fraction < 1, "--val-fraction must be in [0, 1)"),
        (args.val_fraction == 0 or args.num_demos >= 2,
         "--num-demos 1 leaves no episode to validate on: give at least 2 demos, or --val-fraction 0"),
        (args.subsample >= 1, "--subsample must be at least 1 (1 keeps every pair)"),
        (args.train_steps >= 1 and args.batch_size >= 1 and args.val_every >= 1,
         "--train-steps, --batch-size and --val-every must be at least 1"),
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
        raise UserError(f"cannot read checkpoint '{path}' as a model.pt written by bc.py: "
                        f"{str(err).strip().splitlines()[0][:200]}") from None
    if not isinstance(ckpt, dict) or ckpt.get("script") != "bc.py":
        raise UserError(f"'{path}' is not a model.pt written by bc.py")
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
        sys.exit(f"bc.py: error: {err}")
    except Interrupted as err:
        print(err, file=sys.stderr)
        sys.exit(130)
    except KeyboardInterrupt:
        print("bc.py: interrupted; the run directory keeps its last checkpoint.pt, if one was written",
              file=sys.stderr)
        sys.exit(130)
