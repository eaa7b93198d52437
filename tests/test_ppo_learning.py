"""ppo.py learns: seeded runs reach a stated deterministic evaluation return within a stated budget.

Broken RL code fails silently (it runs, it logs, it does not learn), so these are the tests that matter.
The budgets and thresholds are the project's targets; each run takes well under two minutes on a 2-core CPU.
"""
import ppo

# The CartPole-v1 settings of CleanRL's ppo.py (discrete defaults), kept with our normalisation defaults.
CARTPOLE = dict(env="CartPole-v1", total_timesteps=100_000, num_envs=4, num_steps=128, num_minibatches=4,
                update_epochs=4, ent_coef=0.01, learning_rate=2.5e-4)


def test_cartpole_reaches_475_within_100k_steps(tmp_path):
    summary = ppo.main(ppo.Args(seed=1, runs_dir=str(tmp_path), **CARTPOLE))
    assert summary["env_steps"] <= 100_000
    assert summary["eval_return_mean"] >= 475, summary["eval_returns"]


def test_inverted_pendulum_reaches_950_within_150k_steps(tmp_path):
    # The MuJoCo defaults (1 env × 2048 steps, 10 epochs × 32 minibatches), unchanged.
    summary = ppo.main(ppo.Args(env="InvertedPendulum-v4", seed=1, total_timesteps=150_000, runs_dir=str(tmp_path)))
    assert summary["eval_return_mean"] >= 950, summary["eval_returns"]


def test_kl_penalty_objective_also_learns_cartpole(tmp_path):
    summary = ppo.main(ppo.Args(seed=1, objective="kl", runs_dir=str(tmp_path), **CARTPOLE))
    assert summary["eval_return_mean"] >= 475, summary["eval_returns"]
