"""awr.py learns: seeded runs reach a stated deterministic evaluation return within a stated budget.

Budgets and thresholds are the issue's: CartPole-v1 ≥ 475 online (here within 100k steps, with the defaults), and
offline (MARWIL) from the shipped CartPole expert demos ≥ 0.9 of the expert's return, with no environment step
taken to train. The runs take about 2 min and 30 s on a 2-core CPU.
"""
import awr


def test_cartpole_reaches_475_within_100k_steps(tmp_path):
    summary = awr.main(awr.Args(env="CartPole-v1", seed=1, total_timesteps=100_000, runs_dir=str(tmp_path)))
    assert summary["env_steps"] < 100_000 + 2048  # whole iterations of --samples-per-iter
    assert summary["eval_return_mean"] >= 475, summary["eval_returns"]


def test_offline_from_the_cartpole_expert_demos_reaches_0_9_of_the_expert(tmp_path):
    summary = awr.main(awr.Args(env="CartPole-v1", seed=1, offline=True, offline_iterations=10, runs_dir=str(tmp_path)))
    assert summary["env_steps"] == 0
    assert summary["expert_fraction"] >= 0.9, summary["eval_returns"]
