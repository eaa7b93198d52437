"""bc.py's data handling, checked on the toy env of known answers (tests/toy_envs.py) with demos of a known expert.

Spies on bc.py's own functions record what [S1]–[S4] hand to the learner: the validation set is whole episodes,
the normalisation statistics come from the training episodes alone, training minibatches never hold a validation
state, the saved θ is the one with the lowest validation loss, and the deployed policy applies the statistics the
network was trained with.
"""
import os

import numpy as np
import torch

import bc
import toy_envs

EPISODES = 10  # lengths 3, 5, 3, 5, ...: 40 pairs


def run(tmp_path, monkeypatch, **overrides) -> dict:
    demos = toy_envs.write_expert(str(tmp_path / "expert"), "Count-v0", episodes=EPISODES)
    seen = {"val_mask": [], "inputs": [], "demos": demos}
    real_split, real_forward = bc.validation_split, bc.Policy.forward

    def split_spy(lengths, num_val, rng):
        out = real_split(lengths, num_val, rng)
        seen["val_mask"].append(out.copy())
        return out

    def forward_spy(self, x):
        seen["inputs"].append(x.detach().clone())
        return real_forward(self, x)

    monkeypatch.setattr(bc, "validation_split", split_spy)
    monkeypatch.setattr(bc.Policy, "forward", forward_spy)
    kwargs = dict(env="Count-v0", demos=str(tmp_path / "expert" / "demos.npz"), num_demos=EPISODES,
                  val_fraction=0.3, train_steps=40, val_every=10, batch_size=8, learning_rate=3e-3,
                  eval_episodes=1, runs_dir=str(tmp_path / "runs"), obs_std_min=1e-3)
    kwargs.update(overrides)
    seen["summary"] = bc.main(bc.Args(**kwargs))
    seen["model"] = torch.load(os.path.join(seen["summary"]["run_dir"], "model.pt"), weights_only=True)
    return seen


def test_validation_is_whole_episodes_and_the_statistics_are_the_training_episodes(tmp_path, monkeypatch):
    seen = run(tmp_path, monkeypatch)
    (val,) = seen["val_mask"]
    lengths = seen["demos"]["episode_lengths"]
    per_episode = np.split(val, np.cumsum(lengths)[:-1])
    assert all(e.all() or not e.any() for e in per_episode)  # an episode is on one side only
    assert sum(e.all() for e in per_episode) == 3  # 30% of 10 episodes
    raw = seen["demos"]["observations"].astype(np.float64)
    mean, var = toy_envs.reference_running_stats([raw[~val]])[-1]
    np.testing.assert_allclose(seen["model"]["obs_rms"]["mean"].numpy(), mean, rtol=1e-6)
    np.testing.assert_allclose(seen["model"]["obs_rms"]["var"].numpy(), np.maximum(var, 1e-6), rtol=1e-6)


def test_training_minibatches_hold_training_states_only(tmp_path, monkeypatch):
    seen = run(tmp_path, monkeypatch, norm_obs=False)
    (val,) = seen["val_mask"]
    raw = seen["demos"]["observations"]
    val_rows = {tuple(r) for r in raw[val]}
    train_rows = {tuple(r) for r in raw[~val]}
    minibatches = [x for x in seen["inputs"] if len(x) == 8][:40]  # the 40 training steps' minibatches
    assert len(minibatches) == 40
    rows = {tuple(r) for x in minibatches for r in x.numpy()}
    assert rows <= train_rows and not rows & val_rows


def test_the_saved_network_is_the_one_with_the_lowest_validation_loss(tmp_path, monkeypatch):
    """With a step size that makes the validation loss jump about, the lowest is not the last: the saved θ must have
    the lowest of the validation losses logged."""
    val_losses = []
    real_mse = bc.mse_loss

    def mse_spy(pred, actions):
        loss = real_mse(pred, actions)
        if len(actions) != 8:  # the validation set (training minibatches hold 8 pairs)
            val_losses.append(loss.item())
        return loss

    monkeypatch.setattr(bc, "mse_loss", mse_spy)
    seen = run(tmp_path, monkeypatch, learning_rate=0.1)  # validation losses 0.37, 0.055, 0.15, 0.094
    assert len(val_losses) == 4 and min(val_losses) != val_losses[-1], val_losses
    assert seen["summary"]["best_val_loss"] == min(val_losses)
    (val,) = seen["val_mask"]
    rms = bc.RunningMeanStd((3,))
    rms.mean, rms.var = seen["model"]["obs_rms"]["mean"].numpy(), seen["model"]["obs_rms"]["var"].numpy()
    net = bc.Policy(3, 1, bc.Args().hidden_size, False)
    net.load_state_dict(seen["model"]["policy"])
    obs = torch.from_numpy(bc.normalize_obs(seen["demos"]["observations"][val], rms, bc.Args().clip_obs))
    with torch.no_grad():
        out, _ = net(obs)
        loss = real_mse(out, torch.from_numpy(seen["demos"]["actions"][val])).item()
    assert loss == min(val_losses)
    # the deployed policy on raw states = the network on the states normalised as in training, clipped to the bounds
    policy = bc.DeterministicPolicy(net.actor, rms, bc.Args().clip_obs, False, np.array([-1.0]), np.array([1.0]))
    raw = np.array([[0, 0, 1], [2, 3, 1], [4, 7, 1]], np.float32)
    with torch.no_grad():
        deployed = policy(torch.from_numpy(raw)).numpy()
        direct = net(torch.from_numpy(bc.normalize_obs(raw, rms, bc.Args().clip_obs)))[0].clamp(-1, 1).numpy()
    np.testing.assert_allclose(deployed, direct, rtol=1e-4, atol=1e-5)  # float32 vs float64 normalisation
