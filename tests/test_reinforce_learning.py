"""reinforce.py learns: seeded runs reach a stated deterministic evaluation return within a stated budget.

The defaults are the full variant (reward-to-go, learned value baseline, normalised advantages), with one set of
hyperparameters for both tasks. Budgets and thresholds are the project's targets (CartPole ≥ 475 within ≤ 150k steps,
InvertedPendulum ≥ 900); the runs take about 10 s and 40 s on a 2-core CPU.
"""
import reinforce


def test_cartpole_reaches_475_within_60k_steps(tmp_path):
    summary = reinforce.main(reinforce.Args(env="CartPole-v1", seed=1, total_timesteps=60_000, runs_dir=str(tmp_path)))
    assert summary["env_steps"] < 60_000 + 500  # whole episodes: the last batch ends < one episode past the budget
    assert summary["eval_return_mean"] >= 475, summary["eval_returns"]


def test_inverted_pendulum_reaches_900_within_200k_steps(tmp_path):
    summary = reinforce.main(reinforce.Args(env="InvertedPendulum-v4", seed=1, total_timesteps=200_000,
                                            runs_dir=str(tmp_path)))
    assert summary["env_steps"] < 200_000 + 1000
    assert summary["eval_return_mean"] >= 900, summary["eval_returns"]
