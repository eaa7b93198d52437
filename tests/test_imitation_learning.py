"""bc.py and dagger.py learn from the shipped experts (seeded, a minute or two on 2 CPU cores).

The claim of notes 000 in its smallest form: BC reaches 0.95 of the expert from whole demonstrations, and DAgger
reaches at least as much while asking the expert for fewer labels (its validation roll-out included).
On InvertedPendulum-v4, DAgger's π̂_2 is behaviour cloning of its one expert episode and falls (233 of 1000 with
seed 1); the states of that fall, labelled by the expert, are what π̂_3 needs to balance to the time limit.
"""
import pytest

import bc
import dagger


@pytest.mark.parametrize("env_id,bc_steps", [("CartPole-v1", 2000), ("InvertedPendulum-v4", 5000)])
def test_bc_reaches_the_expert_and_dagger_matches_it_with_fewer_labels(tmp_path, env_id, bc_steps):
    cloned = bc.main(bc.Args(env=env_id, seed=1, num_demos=4, train_steps=bc_steps, eval_episodes=10,
                             runs_dir=str(tmp_path / "bc")))
    assert cloned["expert_fraction"] >= 0.95
    aggregated = dagger.main(dagger.Args(env=env_id, seed=1, rounds=2, episodes_per_round=1, train_steps=2000,
                                         eval_episodes=10, runs_dir=str(tmp_path / "dagger")))
    dagger_labels = aggregated["expert_labels"] + aggregated["validation_labels"]
    assert dagger_labels < cloned["expert_labels"]  # 4 demos: 2,000 (CartPole) and 4,000 (InvertedPendulum) labels
    assert aggregated["expert_fraction"] >= cloned["expert_fraction"]
