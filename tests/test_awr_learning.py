"""awr.py learns: seeded runs reach a stated deterministic evaluation return within a stated budget.

CartPole-v1 ≥ 475 online within 100k steps, with the defaults; offline (MARWIL), with no environment step taken to
train, ≥ 0.75 of the expert's return from one expert episode mixed with 100 random ones. The runs take about 3 min
on a 2-core CPU.
"""
import awr


def test_cartpole_reaches_475_within_100k_steps(tmp_path):
    summary = awr.main(awr.Args(env="CartPole-v1", seed=1, total_timesteps=100_000, runs_dir=str(tmp_path)))
    assert summary["env_steps"] < 100_000 + 2048  # whole iterations of --samples-per-iter
    assert summary["eval_return_mean"] >= 475, summary["eval_returns"]


def test_offline_from_one_demo_among_100_random_episodes_reaches_0_75_of_the_expert(tmp_path):
    """MARWIL where the weighting matters: one expert episode among 100 random ones (benchmark/results/awr/
    awr_offline_awr_r100.json, seed 1: 439 over 20 episodes, 0.88 of the expert's 500). Cloning the same data
    (β = 1e9, every weight 1) gets 39 (awr_offline_bc_r100.json); inverted weights exp(−A/β) imitate the random
    episodes. On pure expert demos any weighting is cloning, so such data could not tell them apart."""
    summary = awr.main(awr.Args(env="CartPole-v1", seed=1, offline=True, num_demos=1, random_episodes=100,
                                eval_episodes=20, runs_dir=str(tmp_path)))
    assert summary["env_steps"] == 0
    assert summary["expert_fraction"] >= 0.75, summary["eval_returns"]
