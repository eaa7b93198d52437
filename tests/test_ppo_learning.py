"""ppo.py learns: seeded runs reach a stated deterministic evaluation return within a stated budget.

Broken RL code fails silently (it runs, it logs, it does not learn), so these are the tests that matter.
The budgets and thresholds are the project's targets; each run takes well under two minutes on a 2-core CPU.
The preset tests pass nothing but --env and --seed, as a new user would: the env's entry in ppo.PRESETS decides.
"""
import ppo


def preset_run(tmp_path, env_id: str, *flags) -> dict:
    """`python ppo.py --env ENV --seed 1 [flags]`, parsed as the command line is (the preset, then the flags)."""
    return ppo.main(ppo.parse_args(["--env", env_id, "--seed", "1", "--runs-dir", str(tmp_path), *flags]))


def test_cartpole_preset_reaches_475_within_100k_steps(tmp_path):
    summary = preset_run(tmp_path, "CartPole-v1")
    assert summary["env_steps"] <= 100_000
    assert summary["eval_return_mean"] >= 475, summary["eval_returns"]


def test_pendulum_preset_reaches_minus_250(tmp_path):
    summary = preset_run(tmp_path, "Pendulum-v1")
    assert summary["env_steps"] <= 100_000
    assert summary["eval_return_mean"] >= -250, summary["eval_returns"]


def test_acrobot_preset_reaches_minus_100(tmp_path):
    summary = preset_run(tmp_path, "Acrobot-v1")
    assert summary["env_steps"] <= 100_000
    assert summary["eval_return_mean"] >= -100, summary["eval_returns"]


def test_inverted_pendulum_reaches_950_within_150k_steps(tmp_path):
    # The MuJoCo defaults (1 env × 2048 steps, 10 epochs × 32 minibatches), unchanged: the preset with a shorter budget.
    summary = preset_run(tmp_path, "InvertedPendulum-v4", "--total-timesteps", "150000")
    assert summary["eval_return_mean"] >= 950, summary["eval_returns"]


def test_kl_penalty_objective_also_learns_cartpole(tmp_path):
    summary = preset_run(tmp_path, "CartPole-v1", "--objective", "kl")
    assert summary["eval_return_mean"] >= 475, summary["eval_returns"]
