"""awr.py's data collection and its buffer, checked on the toy env of known answers (tests/toy_envs.py).

Spies on awr.py's own functions record what [S1]–[S3] hand to the math: which samples the buffer D holds (the most
recent ones), which are terminal and where a stretch ends (a time limit, the end of D), from which state each
TD(λ) target bootstraps, and which advantages become the weights. V is replaced by a known function of the
observation, V(s) = s[0] + 3·s[1].
"""
import numpy as np
import torch

import awr
import toy_envs
from toy_envs import stream

S, BUFFER = 10, 25  # 10 samples per iteration (not a whole number of episodes); D keeps the 25 most recent


def known_value(obs: torch.Tensor) -> torch.Tensor:
    return obs[:, 0] + 3 * obs[:, 1]


def run(tmp_path, monkeypatch, iterations=3, **overrides) -> dict:
    seen = {"targets": [], "weights": []}
    real_td, real_weights = awr.td_lambda_returns, awr.awr_weights

    def td_spy(rewards, next_values, terminations, ends, gamma, lam):
        out = real_td(rewards, next_values, terminations, ends, gamma, lam)
        seen["targets"].append(dict(rewards=np.array(rewards), next_values=np.array(next_values),
                                    terminations=np.array(terminations), ends=np.array(ends), gamma=gamma, lam=lam,
                                    returns=out.copy()))
        return out

    def weights_spy(adv, beta, w_max):
        out = real_weights(adv, beta, w_max)
        seen["weights"].append(dict(adv=np.array(adv), beta=beta, w_max=w_max, weights=out.copy()))
        return out

    monkeypatch.setattr(awr, "td_lambda_returns", td_spy)
    monkeypatch.setattr(awr, "awr_weights", weights_spy)
    monkeypatch.setattr(awr.Agent, "value", lambda self, obs: known_value(obs) + 0 * self.critic(obs).squeeze(-1))
    kwargs = dict(env="Count-v0", samples_per_iter=S, total_timesteps=iterations * S, buffer_size=BUFFER,
                  value_steps=2, policy_steps=2, batch_size=8, norm_obs=False, eval_episodes=1,
                  runs_dir=str(tmp_path), gamma=0.9, td_lambda=0.8, beta=0.7, weight_clip=5.0)
    kwargs.update(overrides)
    seen["summary"] = awr.main(awr.Args(**kwargs))
    return seen


def test_buffer_terminal_flags_stretch_ends_and_bootstrap_states(tmp_path, monkeypatch):
    seen = run(tmp_path, monkeypatch)
    assert len(seen["targets"]) == 6  # before V's fit and after it, in each of 3 iterations
    for it in range(3):
        collected = S * (it + 1)
        s = stream(collected)
        keep = slice(max(0, collected - BUFFER), collected)  # D: the BUFFER most recent samples, in order
        ends = (s["terminated"] | s["truncated"])[keep].copy()
        ends[-1] = True  # D ends there: the episode in progress bootstraps from V(s_{t+1}) for now
        for call in seen["targets"][2 * it:2 * it + 2]:
            np.testing.assert_array_equal(call["rewards"], s["reward"][keep])
            np.testing.assert_array_equal(call["terminations"], s["terminated"][keep])
            np.testing.assert_array_equal(call["ends"], ends)
            # V(s_{t+1}) of the true next state: a terminal or time-limit step's own last observation
            np.testing.assert_allclose(call["next_values"], s["next_obs"][keep, 0] + 3 * s["next_obs"][keep, 1])
            assert call["gamma"] == 0.9 and call["lam"] == 0.8


def test_weights_are_of_the_standardised_advantage_of_the_refitted_targets(tmp_path, monkeypatch):
    """A = R^λ − V(s) with the targets recomputed after V's fit, standardised over D; w = min(exp(A/β), w_max)."""
    seen = run(tmp_path, monkeypatch)
    for it, call in enumerate(seen["weights"]):
        collected = S * (it + 1)
        s = stream(collected)
        keep = slice(max(0, collected - BUFFER), collected)
        values = s["obs"][keep, 0] + 3 * s["obs"][keep, 1]
        adv = seen["targets"][2 * it + 1]["returns"] - values
        np.testing.assert_allclose(call["adv"], (adv - adv.mean()) / (adv.std() + 1e-5), rtol=1e-6, atol=1e-6)
        assert call["beta"] == 0.7 and call["w_max"] == 5.0


def test_rwr_weights_the_return_itself(tmp_path, monkeypatch):
    seen = run(tmp_path, monkeypatch, iterations=1, weighting="reward", norm_adv=False)
    np.testing.assert_allclose(seen["weights"][0]["adv"], seen["targets"][1]["returns"])


def test_the_env_gets_the_action_rescaled_and_clipped_and_d_keeps_the_draw(tmp_path, monkeypatch):
    """D holds ã as the Gaussian drew it (|ã| > 1 happens with σ = 1); the env executes clip(centre + half·ã)."""
    executed = []
    real_step = toy_envs.CountEnv.step

    def step_spy(self, action):
        executed.append(np.array(action))
        return real_step(self, action)

    monkeypatch.setattr(toy_envs.CountEnv, "step", step_spy)
    drawn = []
    real_log_prob = awr.gaussian_log_prob

    def log_prob_spy(a, mu, log_std):
        drawn.append(a.clone())
        return real_log_prob(a, mu, log_std)

    monkeypatch.setattr(awr, "gaussian_log_prob", log_prob_spy)
    seen = run(tmp_path, monkeypatch, iterations=1, action_std=1.0)
    drawn = torch.cat(drawn)
    assert (drawn.abs() > 1).any()  # the draws, not their clips
    executed = np.concatenate(executed[:S])
    assert executed.min() >= -1 and executed.max() <= 1 and np.isclose(np.abs(executed), 1).any()
    assert seen["summary"]["env_steps"] == S


def test_observation_statistics_come_from_the_first_obs_norm_samples_states_then_freeze(tmp_path, monkeypatch):
    """--obs-norm-samples 15: the statistics are those of the first 15 states acted on (reset ones included), then
    fixed (released code); D's states are normalised afresh with the current statistics at every iteration."""
    normalized_buffers = []
    real_norm = awr.normalize_obs

    def norm_spy(obs, rms, clip):
        out = real_norm(obs, rms, clip)
        if len(obs) > 1:  # D's s and s' in [S2]; acting normalises one state at a time
            normalized_buffers.append((np.array(obs), out.copy()))
        return out

    monkeypatch.setattr(awr, "normalize_obs", norm_spy)
    run(tmp_path, monkeypatch, norm_obs=True, obs_norm_samples=15, clip_obs=1e6)
    acted = stream(3 * S)["obs"]
    for it in range(3):
        stats = toy_envs.reference_running_stats([acted[:min(S * (it + 1), 15)]])[-1]
        for raw, got in normalized_buffers[2 * it:2 * it + 2]:
            np.testing.assert_allclose(got, toy_envs.normalized(raw, stats), rtol=1e-4, atol=1e-5)
