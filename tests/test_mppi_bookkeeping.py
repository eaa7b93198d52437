"""mppi.py --model learned: the data the model is fitted on, checked through spies on mppi.py's own functions.

Every transition is assigned to the training or the held-out set once, when it is collected: across refits a
transition never changes side, the held-out error is measured on held-out transitions only, and no held-out
transition ever reaches the likelihood the ensemble is trained on. The stored transitions are the env's own
(s, a, r, s'), s' the true next state.
"""
import numpy as np
import torch

import mppi


def test_held_out_transitions_stay_held_out_and_are_never_trained_on(tmp_path, monkeypatch):
    seen = {"fits": [], "targets": []}
    real_fit, real_nll = mppi.fit_model, mppi.gaussian_nll

    def fit_spy(ensemble, optimizer, data, args, *rest):
        seen["fits"].append({k: np.array(v) for k, v in data.items()})
        seen["targets"].append([])
        return real_fit(ensemble, optimizer, data, args, *rest)

    def nll_spy(mean, logvar, target):
        seen["targets"][-1].append(target.detach().reshape(-1, target.shape[-1]).clone())
        return real_nll(mean, logvar, target)

    monkeypatch.setattr(mppi, "fit_model", fit_spy)
    monkeypatch.setattr(mppi, "gaussian_nll", nll_spy)
    mppi.main(mppi.Args(env="Pendulum-v1", model="learned", total_timesteps=120, random_steps=40, refit_every=40,
                        model_epochs=2, ensemble_size=2, model_hidden_size=16, num_samples=10, eval_episodes=0,
                        holdout_fraction=0.3, runs_dir=str(tmp_path)))
    fits = seen["fits"]
    assert [len(f["obs"]) for f in fits] == [40, 80, 120]
    for earlier, later in zip(fits, fits[1:]):  # a transition keeps its side
        np.testing.assert_array_equal(later["holdout"][:len(earlier["holdout"])], earlier["holdout"])
    last = fits[-1]
    assert 0.15 < last["holdout"].mean() < 0.45
    # the stored s' of each step is the s of the next (Pendulum has no episode end within 120 steps)
    np.testing.assert_array_equal(last["next_obs"][:-1], last["obs"][1:])
    # no held-out transition's target (Δs, r) in any training minibatch of any refit (targets are standardised with
    # each refit's statistics: compare in the raw units the data carry)
    for fit, targets in zip(fits, seen["targets"]):
        y = np.concatenate([fit["next_obs"] - fit["obs"], fit["rew"]], axis=1)
        train = ~fit["holdout"]
        mean, std = y[train].mean(0), y[train].std(0) + 1e-6
        trained = torch.cat(targets).numpy() * std + mean  # back to raw units, (rows, S + 1)
        held = y[fit["holdout"]]
        distance = np.abs(trained[:, None, :] - held[None, :, :]).max(-1)  # (rows, held)
        assert distance.min() > 1e-4  # no trained row is a held-out transition
        assert np.abs(trained[:, None, :] - y[train][None]).max(-1).min(1).max() < 1e-3  # all are training rows


def test_input_statistics_are_the_training_transitions(tmp_path, monkeypatch):
    """The model's input and target standardisation comes from the training transitions alone."""
    seen = []
    real_fit = mppi.fit_model

    def fit_spy(ensemble, optimizer, data, args, *rest):
        stats, mse = real_fit(ensemble, optimizer, data, args, *rest)
        seen.append(({k: np.array(v) for k, v in data.items()}, {k: v.numpy() for k, v in stats.items()}))
        return stats, mse

    monkeypatch.setattr(mppi, "fit_model", fit_spy)
    mppi.main(mppi.Args(env="Pendulum-v1", model="learned", total_timesteps=60, random_steps=60, refit_every=60,
                        model_epochs=1, ensemble_size=2, model_hidden_size=8, num_samples=10, eval_episodes=0,
                        holdout_fraction=0.4, runs_dir=str(tmp_path)))
    ((data, stats),) = seen
    train = ~data["holdout"]
    np.testing.assert_allclose(stats["obs_mean"], data["obs"][train].mean(0), rtol=1e-5)
    np.testing.assert_allclose(stats["obs_std"], data["obs"][train].std(0) + 1e-6, rtol=1e-5)
    y = np.concatenate([data["next_obs"] - data["obs"], data["rew"]], axis=1)
    np.testing.assert_allclose(stats["y_mean"], y[train].mean(0), rtol=1e-4, atol=1e-6)


def test_the_plan_is_shifted_after_each_step_and_reset_with_each_episode(tmp_path, monkeypatch):
    """[S4]: the next step's prior is (u_1, ..., u_{H−1}, u_{H−1}) of the plan just made (one control point per step on
    Pendulum); every evaluation episode starts from U = 0."""
    calls = []
    real_plan = mppi.mppi_plan

    def plan_spy(plan, *rest, **kw):
        out = real_plan(plan, *rest, **kw)
        calls.append((plan.copy(), out[0].copy()))
        return out

    monkeypatch.setattr(mppi, "mppi_plan", plan_spy)
    summary = mppi.main(mppi.Args(env="Pendulum-v1", eval_episodes=2, num_samples=10, runs_dir=str(tmp_path)))
    assert len(calls) == 2 * 200
    for t, ((_, made), (prior, _)) in enumerate(zip(calls, calls[1:])):
        if t + 1 == 200:  # a new episode
            np.testing.assert_array_equal(prior, np.zeros_like(prior))
        else:
            np.testing.assert_allclose(prior, np.concatenate([made[1:], made[-1:]]), rtol=1e-12)
    assert summary["eval_episodes"] == 2
