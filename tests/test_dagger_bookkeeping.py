"""dagger.py's rounds, checked on the toy env of known answers (tests/toy_envs.py) with a known expert
(toy_envs.ToyExpert, exported as policy.pt2 beside its demos.npz).

Spies on dagger.py's own functions record what each round hands to the learner: D after round i holds every state
visited in rounds 1..i (aggregation), each labelled with the expert's action π*(s) whoever acted; round 1 is the
expert's alone (β_1 = 1); the validation round N + 1 is never trained on; the learner is trained on D's pairs.
"""
import numpy as np
import pytest
import torch

import dagger
import toy_envs


def run(tmp_path, monkeypatch, env_id="Count-v0", **overrides) -> dict:
    toy_envs.write_expert(str(tmp_path / "expert"), env_id, episodes=2)
    seen = {"datasets": [], "mix": [], "pairs": []}
    real_norm, real_mix = dagger.normalize_obs, dagger.mix_actions
    real_forward = dagger.Policy.forward

    def norm_spy(obs, rms, clip):
        if len(obs) > 1:  # D, normalised for training ([S2]); acting normalises one state at a time
            seen["datasets"].append(np.array(obs))
        return real_norm(obs, rms, clip)

    def mix_spy(expert_actions, learner_actions, beta, u):
        seen["mix"].append((np.array(expert_actions), np.array(learner_actions), beta))
        return real_mix(expert_actions, learner_actions, beta, u)

    def forward_spy(self, x):
        if len(x) > 1:  # a training minibatch of D
            seen["pairs"].append(x.detach().clone())
        return real_forward(self, x)

    monkeypatch.setattr(dagger, "normalize_obs", norm_spy)
    monkeypatch.setattr(dagger, "mix_actions", mix_spy)
    monkeypatch.setattr(dagger.Policy, "forward", forward_spy)
    kwargs = dict(env=env_id, expert=str(tmp_path / "expert" / "policy.pt2"), rounds=3, episodes_per_round=2,
                  train_steps=2, batch_size=16, norm_obs=False, eval_episodes=1, runs_dir=str(tmp_path / "runs"))
    kwargs.update(overrides)
    seen["summary"] = dagger.main(dagger.Args(**kwargs))
    return seen


def expert_labels(obs: np.ndarray, discrete: bool) -> np.ndarray:
    with torch.no_grad():
        return toy_envs.ToyExpert(discrete)(torch.from_numpy(np.asarray(obs, np.float32))).numpy()


@pytest.mark.parametrize("env_id", ["Count-v0", "CountDiscrete-v0"])
def test_d_aggregates_every_visited_state_of_every_training_round(tmp_path, monkeypatch, env_id):
    seen = run(tmp_path, monkeypatch, env_id)
    # rounds 1..3 train (2 episodes each: the env's episodes k = 0, 1 | 2, 3 | 4, 5), round 4 only validates
    assert len(seen["datasets"]) == 3
    for i, d in enumerate(seen["datasets"], start=1):
        visited = np.concatenate([toy_envs.episode(k)["obs"][:-1] for k in range(2 * i)])  # s_t of every step
        np.testing.assert_array_equal(d, visited)
    # the validation round's 2 episodes (k = 6, 7) were run but never entered D
    assert seen["summary"]["validation_labels"] == toy_envs.episode(6)["length"] + toy_envs.episode(7)["length"]
    assert seen["summary"]["expert_labels"] == len(seen["datasets"][-1])


@pytest.mark.parametrize("env_id", ["Count-v0", "CountDiscrete-v0"])
def test_every_label_is_the_expert_s_action_and_round_1_is_the_expert_s_alone(tmp_path, monkeypatch, env_id):
    discrete = env_id == "CountDiscrete-v0"
    seen = run(tmp_path, monkeypatch, env_id)
    steps_round_1 = toy_envs.episode(0)["length"] + toy_envs.episode(1)["length"]
    betas = [beta for _, _, beta in seen["mix"]]
    assert betas[:steps_round_1] == [1.0] * steps_round_1  # β_1 = 1 (indicator schedule)
    assert set(betas[steps_round_1:]) == {0.0}  # β_i = 0 for i > 1
    # the labels the learner is trained on: the expert's action at each state of D (checked through the loss's
    # targets, paired with the minibatch the network was given)
    real_loss = dagger.categorical_nll if discrete else dagger.mse_loss
    targets = []
    monkeypatch.setattr(dagger, "categorical_nll" if discrete else "mse_loss",
                        lambda out, target: targets.append(target.clone()) or real_loss(out, target))
    seen = run(tmp_path / "again", monkeypatch, env_id)
    assert len(targets) == len(seen["pairs"]) == 3 * 2  # 2 Adam steps in each of rounds 1..3
    for obs, target in zip(seen["pairs"], targets):
        np.testing.assert_allclose(target.numpy(), expert_labels(obs.numpy(), discrete), rtol=1e-6)


def test_each_round_is_scored_by_the_learner_s_disagreement_with_the_expert_on_that_round_s_states(tmp_path,
                                                                                                   monkeypatch):
    seen = run(tmp_path, monkeypatch)
    steps = [toy_envs.episode(2 * (i - 1))["length"] + toy_envs.episode(2 * i - 1)["length"] for i in range(1, 5)]
    starts = np.cumsum([0] + steps)
    for i in range(2, 5):  # round 1 is the expert's: no learner to score
        calls = seen["mix"][starts[i - 1]:starts[i]]
        expert = np.concatenate([c[0] for c in calls])
        learner = np.concatenate([c[1] for c in calls])
        record = seen["summary"]["rounds"][i - 1]
        assert record["round"] == i
        assert record["disagreement"] == pytest.approx(dagger.disagreement(learner, expert, False))
        assert record["disagreement"] > 0  # the learner (2 Adam steps) does not match the expert yet
    assert seen["summary"]["rounds"][0]["disagreement"] is None
