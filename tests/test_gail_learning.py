"""gail.py learns from the shipped experts: seeded runs reach a stated fraction of the expert's true return within a
stated budget, and the reward form's episode-length bias shows where the docstring says it does.

Measured with seed 1 on one core: CartPole-v1 gets 500 (1.00 of the expert) within 100k steps in ~40 s, with the
reward −log(1 − D); with log D instead the policy learns to drop the pole (8.8). Pendulum-v1 (continuous actions,
fixed-length episodes), seeds 1–3, gets −205, −139 and −139 within 400k steps (~1.3 min each on an idle core): the
median is 1.01 of the way from a random policy (−1,091) to the expert (−146) on the same 10 start states. (Within
300k steps they got −279, −529, −370, and seeds 4–6 −273, −154, −156: median 0.86 of the way over six seeds. Before D
read both sides with one normalisation, seeds 1–6 got −287, −167, −174, −966, −822, −173 at 300k: median 0.91, with
two seeds failing; the budget was raised from 300k when that change moved seeds 1–3 below 0.9.)
"""
import os

import numpy as np
import torch

import gail
from learning_helpers import pendulum_progress


def discriminator_gap(summary: dict, env_id: str) -> float:
    """Mean logit f_ψ = log D − log(1 − D) of the run's final D on the shipped expert's pairs minus on a uniformly
    random policy's pairs (20 episodes, its own seeds): > 0 when D learned that the expert is the positive class.
    An untrained D scores both about alike, and one trained with swapped labels scores the expert lower."""
    args = gail.Args(env=env_id)
    probe = gail.make_env(env_id)
    obs_dim, act_dim, discrete = gail.check_spaces(probe, env_id)
    low, high = (None, None) if discrete else (probe.action_space.low, probe.action_space.high)
    _, disc, obs_rms = gail.load_checkpoint(os.path.join(summary["run_dir"], "model.pt"), args, obs_dim, act_dim,
                                            discrete, torch.device("cpu"))
    probe.action_space.seed(0)
    random_pairs = gail.run_episodes(lambda obs: np.asarray([probe.action_space.sample()]), env_id, 20, seed=50_000)
    with np.load(gail.default_expert_path(env_id, "demos.npz")) as demos:
        expert_pairs = {"observations": demos["observations"], "actions": demos["actions"]}
    low_t = None if discrete else torch.as_tensor(low, dtype=torch.float32)
    high_t = None if discrete else torch.as_tensor(high, dtype=torch.float32)

    def mean_logit(pairs: dict) -> float:
        obs = torch.from_numpy(gail.normalize_obs(pairs["observations"], obs_rms, args.clip_obs))
        x = gail.discriminator_input(obs, torch.as_tensor(pairs["actions"]), discrete, act_dim, low_t, high_t)
        with torch.no_grad():
            return float(disc(x).mean())

    return mean_logit(expert_pairs) - mean_logit(random_pairs)

# The discriminator_gap a trained D must reach, in logits. Measured (seed 1, CartPole settings below) on the shipped
# demos, which are sampled from the expert as trained (12% of its actions are not its most likely one): 0.64 with the
# reward −log(1 − D); with an untrained D (--disc-epochs 0), −0.05, though the policy still reaches 500 on the survival
# bonus; with the loss's labels swapped, −6.99 (and a return of 93). (On the earlier deterministic demos, whose
# expert pairs a random policy's overlap less: 2.65, −0.05 and −0.76, and the threshold was 1.0; with log D 9.18,
# untrained 0.09, swapped −5.24, while the policy dropped the pole either way.) The Pendulum check below
# needs no such help: with an untrained D seeds 1–3 end at −764, −1,102, −1,589 (median −0.01 of the way), with
# swapped labels at −1,464, −1,285, −1,472 (median −0.39).
GAP = 0.3
# ppo.py's CartPole preset, with which its expert was made
CARTPOLE = dict(env="CartPole-v1", seed=1, total_timesteps=100_000, num_envs=4, num_steps=128, num_minibatches=4,
                update_epochs=4, ent_coef=0.01, learning_rate=2.5e-4)


def test_cartpole_reaches_0_9_of_the_expert_within_100k_steps(tmp_path):
    summary = gail.main(gail.Args(**CARTPOLE, runs_dir=str(tmp_path)))
    assert summary["env_steps"] == 100_000 // 512 * 512 and summary["expert_return"] == 500.0  # whole batches of 4 × 128
    assert summary["expert_fraction"] >= 0.9, summary["eval_returns"]
    # CartPole is solved by the survival bonus of a positive reward alone (with an untrained D too), so the return
    # does not show that D learned: its logits must rank the expert's pairs above a random policy's.
    assert discriminator_gap(summary, "CartPole-v1") >= GAP, discriminator_gap(summary, "CartPole-v1")


def test_a_negative_reward_teaches_cartpole_to_end_its_episodes(tmp_path):
    # log D < 0 at every step: the shortest episode collects the least penalty (gail_reward's GOTCHA)
    summary = gail.main(gail.Args(**CARTPOLE, reward_form="negative", runs_dir=str(tmp_path)))
    assert summary["eval_return_mean"] <= 20, summary["eval_returns"]
    # any D with log D < 0 does this; that D learned the expert's pairs all the same is checked here
    assert discriminator_gap(summary, "CartPole-v1") >= GAP, discriminator_gap(summary, "CartPole-v1")


def test_pendulum_gets_0_9_of_the_way_from_random_to_the_expert_within_400k_steps(tmp_path):
    # Pendulum's episodes all last 200 steps, so no reward form has a survival bias to exploit: only imitation
    # helps. Its returns are negative, so the score is (R − R_random) / (R_expert − R_random), all three measured on
    # the same 10 evaluation start states. The median of seeds 1–3: one seed's run depends on the CPU's floating
    # point (seed 1 got −177 on one of our machines, −287 on another), and a seed may fail outright (seed 4: −966).
    scores, returns = [], []
    for seed in (1, 2, 3):
        summary = gail.main(gail.Args(env="Pendulum-v1", seed=seed, total_timesteps=400_000, num_envs=4, num_steps=512,
                                      gamma=0.9, learning_rate=1e-3, num_minibatches=16, runs_dir=str(tmp_path)))
        score, expert_return, random_return = pendulum_progress(gail, summary["eval_return_mean"])
        scores.append(score)
        returns.append(summary["eval_return_mean"])
    assert sorted(scores)[1] >= 0.9, (returns, expert_return, random_return)
