"""mppi.py controls: seeded runs reach the stated returns with the defaults.

- Pendulum-v1, true model (its equations of motion): every 200-step episode ≥ −400 (a swing-up and hold).
- InvertedPendulum-v4, true model (mujoco.rollout, K = 30, H = 5 and the LQR terminal value): balanced for 1000 of
  1000 steps in each of 3 episodes; with --no-terminal-value the same planner drops the pole within 500 steps.
- Pendulum-v1, learned model (an ensemble fitted to 2,000 collected steps, no simulator in the planner): ≥ −400 mean.
About 3 min on a 2-core CPU, most of it the learned model's data collection and fits.
"""
import mppi


def test_pendulum_true_model_swings_up_every_episode(tmp_path):
    summary = mppi.main(mppi.Args(env="Pendulum-v1", seed=1, eval_episodes=5, runs_dir=str(tmp_path)))
    assert min(summary["eval_returns"]) >= -400, summary["eval_returns"]


def test_inverted_pendulum_true_model_balances_1000_steps(tmp_path):
    summary = mppi.main(mppi.Args(env="InvertedPendulum-v4", seed=1, eval_episodes=3, runs_dir=str(tmp_path)))
    assert summary["eval_returns"] == [1000.0] * 3


def test_inverted_pendulum_falls_without_the_terminal_value(tmp_path):
    # the same K = 30, H = 5 on the running reward alone: the terminal value is what keeps the pole up
    summary = mppi.main(mppi.Args(env="InvertedPendulum-v4", seed=1, eval_episodes=1, terminal_value=False,
                                  runs_dir=str(tmp_path)))
    assert summary["eval_returns"][0] < 500, summary["eval_returns"]


def test_pendulum_learned_model_swings_up_from_2000_steps_of_data(tmp_path):
    summary = mppi.main(mppi.Args(env="Pendulum-v1", model="learned", seed=1, total_timesteps=2_000, eval_episodes=3,
                                  runs_dir=str(tmp_path)))
    assert summary["env_steps"] == 2_000
    assert summary["eval_return_mean"] >= -400, summary["eval_returns"]
