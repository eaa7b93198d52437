"""soft_q.py learns: seeded runs reach a stated deterministic evaluation return within a stated budget.

The issue's thresholds: CartPole-v1 ≥ 475 (the discrete way: exact soft backup, Boltzmann exploration) and
Pendulum-v1 ≥ −250 (the continuous way: importance-sampled soft value, SVGD sampler), with the defaults. The runs take
about CP_TIME and PEND_TIME on a 2-core CPU.
"""
import soft_q


def test_cartpole_reaches_475_within_CP_STEPS_steps(tmp_path):
    summary = soft_q.main(soft_q.Args(env="CartPole-v1", seed=1, total_timesteps=CP_BUDGET, runs_dir=str(tmp_path)))
    assert summary["mode"] == "discrete" and summary["env_steps"] == CP_BUDGET
    assert summary["eval_return_mean"] >= 475, summary["eval_returns"]


def test_pendulum_reaches_minus_250_within_PEND_STEPS_steps(tmp_path):
    summary = soft_q.main(soft_q.Args(env="Pendulum-v1", seed=1, total_timesteps=PEND_BUDGET, runs_dir=str(tmp_path)))
    assert summary["mode"] == "continuous" and summary["env_steps"] == PEND_BUDGET
    assert summary["eval_return_mean"] >= -250, summary["eval_returns"]
