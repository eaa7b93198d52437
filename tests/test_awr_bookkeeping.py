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
                  whole_episodes=False, value_steps=2, policy_steps=2, batch_size=8, norm_obs=False, eval_episodes=1,
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


def executed_actions(monkeypatch) -> list:
    """The list every action Count-v0 executes is appended to, from now on."""
    executed = []
    real_step = toy_envs.CountEnv.step

    def step_spy(self, action):
        executed.append(np.array(action))
        return real_step(self, action)

    monkeypatch.setattr(toy_envs.CountEnv, "step", step_spy)
    return executed


def test_the_env_gets_the_action_rescaled_and_clipped_and_d_keeps_the_draw(tmp_path, monkeypatch):
    """D holds ã as the Gaussian drew it (|ã| > 1 happens with σ = 1); the env executes clip(centre + half·ã)."""
    executed = executed_actions(monkeypatch)
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


def test_step_statistics_come_from_the_first_obs_norm_samples_states_then_freeze(tmp_path, monkeypatch):
    """--obs-norm-update step --obs-norm-samples 15: the statistics are those of the first 15 states acted on (reset
    ones included), then fixed; D's states are normalised afresh with the current statistics at every iteration."""
    normalized_buffers = []
    real_norm = awr.normalize_obs

    def norm_spy(obs, rms, clip, std_floor):
        out = real_norm(obs, rms, clip, std_floor)
        if len(obs) > 1:  # D's s and s' in [S2]; acting normalises one state at a time
            normalized_buffers.append((np.array(obs), out.copy()))
        return out

    monkeypatch.setattr(awr, "normalize_obs", norm_spy)
    run(tmp_path, monkeypatch, norm_obs=True, obs_norm_update="step", obs_norm_samples=15, obs_std_floor=0.5)
    acted = stream(3 * S)["obs"]
    for it in range(3):
        stats = toy_envs.reference_running_stats([acted[:min(S * (it + 1), 15)]])[-1]
        for raw, got in normalized_buffers[2 * it:2 * it + 2]:
            np.testing.assert_allclose(got, floored(raw, stats, 0.5), rtol=1e-5, atol=1e-5)


def floored(x: np.ndarray, stats: tuple, floor: float) -> np.ndarray:
    """(x − μ)/max(σ, floor) with stats = (μ, σ²); Count-v0's constant third entry has σ ≪ 0.5, so a floor of 0.5
    matters there and nowhere else."""
    return (x - stats[0]) / np.maximum(np.sqrt(stats[1]), floor)


# With --whole-episodes, Count-v0's episodes (3 steps, 5 steps, alternately; they end after steps 3, 8, 11, 16, 19,
# 24, 27, 32, 35) cut the iterations of at least S = 10 steps at 11, 24 and 35 steps.
WHOLE_ENDS = (11, 24, 35)


def test_whole_episodes_iterations_buffer_and_scaled_steps(tmp_path, monkeypatch):
    """Each iteration runs to the end of the episode in progress; D keeps the most recent whole episodes that fit in
    BUFFER samples; V and π take ⌈steps·(new samples)/S⌉ minibatch steps."""
    asked = []
    real_minibatches = awr.minibatch_indices

    def minibatch_spy(n, batch_size, steps, generator):
        asked.append((n, steps))
        return real_minibatches(n, batch_size, steps, generator)

    monkeypatch.setattr(awr, "minibatch_indices", minibatch_spy)
    seen = run(tmp_path, monkeypatch, whole_episodes=True, value_steps=2, policy_steps=7)
    assert seen["summary"]["env_steps"] == WHOLE_ENDS[-1]
    s = stream(WHOLE_ENDS[-1])
    kept = [slice(0, 11), slice(0, 24), slice(11, 35)]  # 35 − 25 = 10 falls inside the episode [8, 11): keep from 11
    for it, keep in enumerate(kept):
        call = seen["targets"][2 * it]
        np.testing.assert_array_equal(call["rewards"], s["reward"][keep])
        np.testing.assert_array_equal(call["ends"], (s["terminated"] | s["truncated"])[keep])
        assert call["ends"][-1]  # D ends with a whole episode
    new = np.diff((0,) + WHOLE_ENDS)  # 11, 13, 11 new samples
    lengths = [k.stop - k.start for k in kept]
    assert asked == [x for n, m in zip(lengths, new) for x in ((n, -(-2 * m // S)), (n, -(-7 * m // S)))]


def test_whole_episodes_start_by_hand():
    ends = np.array([0, 0, 1, 0, 1, 0, 0, 0, 1], bool)  # episodes [0, 3), [3, 5), [5, 9)
    assert awr.whole_episodes_start(ends, 9) == 0
    assert awr.whole_episodes_start(ends, 6) == 3  # [3, 9): 6 samples
    assert awr.whole_episodes_start(ends, 5) == 5
    assert awr.whole_episodes_start(ends, 2) == 5  # the last episode is kept whole even when longer


def test_episode_states_add_each_episodes_last_state():
    s = stream(11)
    states = awr.episode_states(s["obs"], s["next_obs"], s["terminated"] | s["truncated"])
    np.testing.assert_array_equal(states, np.concatenate([toy_envs.episode(k)["obs"] for k in range(3)]))


def test_iteration_statistics_fold_in_after_the_fits_and_pi_acts_with_what_it_learns_with(tmp_path, monkeypatch):
    """--obs-norm-update iteration (with whole episodes): iteration 1 acts on raw states (no statistics yet), then
    takes in its 14 states (11 steps + 3 episodes' last states) before its fits; iteration 2 acts and fits with
    those, then takes in its own; iteration 3 begins at step 24 ≥ --obs-norm-samples 15, so nothing more: iteration 4
    (steps 35 to 48) acts and fits with what iteration 3 had."""
    acting, buffers = [], []
    real_norm = awr.normalize_obs

    def norm_spy(obs, rms, clip, std_floor):
        out = real_norm(obs, rms, clip, std_floor)
        (buffers if len(obs) > 1 else acting).append((np.array(obs), out.copy()))
        return out

    monkeypatch.setattr(awr, "normalize_obs", norm_spy)
    run(tmp_path, monkeypatch, iterations=4, whole_episodes=True, norm_obs=True, obs_norm_update="iteration",
        obs_norm_samples=15, obs_std_floor=0.5)
    ends = WHOLE_ENDS + (48,)
    visited = [np.concatenate([toy_envs.episode(k)["obs"] for k in ks]) for ks in ((0, 1, 2), (3, 4, 5))]
    first, both = toy_envs.reference_running_stats(visited)
    assert len(visited[0]) == 14 and len(acting) == ends[-1]
    for i, (raw, got) in enumerate(acting):
        it = np.searchsorted(ends, i, side="right")  # 0-based iteration of acting step i
        want = raw if it == 0 else floored(raw, first if it == 1 else both, 0.5)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    for it, stats in enumerate((first, first, both, both)):
        for raw, got in buffers[2 * it:2 * it + 2]:
            np.testing.assert_allclose(got, floored(raw, stats, 0.5), rtol=1e-5, atol=1e-5)


def test_no_clip_actions_gives_the_env_the_draw(tmp_path, monkeypatch):
    executed = executed_actions(monkeypatch)
    run(tmp_path, monkeypatch, iterations=1, action_std=1.0, clip_actions=False)
    assert np.abs(np.concatenate(executed[:S])).max() > 1
