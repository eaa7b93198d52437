"""awr.py learns: seeded runs reach a stated deterministic evaluation return within a stated budget.

CartPole-v1 ≥ 475 online within 100k steps, with the defaults; offline (MARWIL), with no environment step taken to
train, ≥ 0.75 of the expert's return from two expert episodes mixed with 1,000 random ones. The runs take about 3 min
on a 2-core CPU.
"""
import awr


def test_cartpole_reaches_475_within_100k_steps(tmp_path):
    summary = awr.main(awr.Args(env="CartPole-v1", seed=1, total_timesteps=100_000, runs_dir=str(tmp_path)))
    assert summary["env_steps"] < 100_000 + 2048  # whole iterations of --samples-per-iter
    assert summary["eval_return_mean"] >= 475, summary["eval_returns"]


def test_offline_from_two_demos_among_1000_random_episodes_reaches_0_75_of_the_expert(tmp_path):
    """MARWIL where the weighting matters: two expert episodes among 1,000 random ones (seed 1: 0.95 of the
    demonstrator's 500 over 20 episodes). Cloning the same data (β = 1e9, every weight 1) gets 0.04; inverted weights
    exp(−A/β) imitate the random episodes. On pure expert demos any weighting is cloning, so such data could not tell
    them apart. (The shipped demos are sampled from the expert as trained: 12% of its CartPole actions are not the
    most likely one, and one such episode among 100 random ones gives 0.67, cloning 0.09.)"""
    summary = awr.main(awr.Args(env="CartPole-v1", seed=1, offline=True, num_demos=2, random_episodes=1000,
                                eval_episodes=20, runs_dir=str(tmp_path)))
    assert summary["env_steps"] == 0
    assert summary["expert_fraction"] >= 0.75, summary["eval_returns"]
