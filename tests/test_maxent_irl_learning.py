"""maxent_irl.py learns: on the built-in gridworld and on FrozenLake-v1, the MaxEnt-optimal policy under the learned
reward earns ≥ 0.99 of the expert's true return (EVD ≈ 0), both computed exactly from the known model.

Budgets: 100 iterations (one backward and one forward pass each), 200 demonstrations; seconds on a CPU.
"""
import pytest

import maxent_irl


@pytest.mark.parametrize("env_id,extra", [
    ("gridworld", {}),                                                     # one-hot features, linear reward
    ("gridworld", {"features": "coords", "reward_model": "mlp"}),          # a network reward on (row, col), notes 001
    ("FrozenLake-v1", {}),                                                 # slippery: the soft backup
])
def test_learned_reward_recovers_the_experts_return(tmp_path, env_id, extra):
    summary = maxent_irl.main(maxent_irl.Args(env=env_id, iterations=100, eval_episodes=0, runs_dir=str(tmp_path), **extra))
    assert summary["expert_fraction"] >= 0.99, summary
    # the demos' likelihood rose while learning (feature matching is its gradient)
    assert summary["history"][-1]["nll"] < summary["history"][0]["nll"]


def test_linear_reward_on_coordinates_cannot_express_the_lava(tmp_path):
    """The limit of the features, not of the algorithm: a plane in (row, col) cannot say "avoid the middle column", and
    the policy it induces walks through lava. (A check that the metrics can say "IRL failed".)"""
    summary = maxent_irl.main(maxent_irl.Args(env="gridworld", iterations=100, eval_episodes=0, features="coords",
                                              save_model=False, runs_dir=str(tmp_path)))
    assert summary["expert_fraction"] < 0.95
