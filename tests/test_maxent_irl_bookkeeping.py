"""maxent_irl.py's loop, checked through spies on its own functions: the demos are the expert's time-indexed policy
run in the env, the forward pass starts from the demos' own start states, and each step climbs the likelihood
(the expected visits move towards the demos' visits)."""
import gymnasium as gym
import numpy as np
import torch

import maxent_irl


def test_demos_follow_the_time_indexed_policy_and_pad_after_the_end():
    """collect_demos on a 1×4 corridor (FrozenLake without ice, goal at the end): a policy that says "left" at even t
    and "right" at odd t must be followed step by step, a_t = π_t(s_t); after the goal the trajectory stays in the
    exit state, not alive."""
    env = gym.make("FrozenLake-v1", desc=["SFFG"], is_slippery=False)
    horizon, num_states, exit_state = 8, 4, 4
    policy = np.zeros((horizon, num_states + 1), np.int64)
    policy[0::2] = 2  # right
    policy[1::2] = 0  # left
    policy[4:] = 2  # from t = 4 on: right to the goal
    states, actions, alive, returns = maxent_irl.collect_demos(env, policy, [0], horizon, exit_state)
    # s: 0 -right-> 1 -left-> 0 -right-> 1 -left-> 0 -right-> 1 -right-> 2 -right-> 3 (goal, terminated)
    np.testing.assert_array_equal(states[0], [0, 1, 0, 1, 0, 1, 2, 3])
    np.testing.assert_array_equal(actions[0], [2, 0, 2, 0, 2, 2, 2])
    assert alive[0].all() and returns[0] == 1.0
    states, actions, alive, returns = maxent_irl.collect_demos(env, np.full((horizon + 2, 5), 2), [0], horizon + 2,
                                                               exit_state)
    np.testing.assert_array_equal(states[0], [0, 1, 2, 3] + [exit_state] * 6)  # the goal at t = 3, then the exit
    np.testing.assert_array_equal(alive[0], [True] * 3 + [False] * 6)


def test_the_forward_pass_starts_from_the_demos_starts_and_the_updates_match_the_visits(tmp_path, monkeypatch):
    seen = {"demo": [], "forward": []}
    real_demo, real_forward = maxent_irl.demo_visitation, maxent_irl.forward_pass

    def demo_spy(demo_states, num_states):
        out = real_demo(demo_states, num_states)
        seen["demo"].append((demo_states.clone(), out.clone()))
        return out

    def forward_spy(log_pi, next_state, prob, start):
        out = real_forward(log_pi, next_state, prob, start)
        if torch.isfinite(log_pi).all():  # [S4]'s soft policy (policy_return scores deterministic ones: log 0 = −inf)
            seen["forward"].append((start.clone(), out.sum(0).clone()))
        return out

    monkeypatch.setattr(maxent_irl, "demo_visitation", demo_spy)
    monkeypatch.setattr(maxent_irl, "forward_pass", forward_spy)
    maxent_irl.main(maxent_irl.Args(grid_size=5, num_demos=50, iterations=30, eval_episodes=2, log_every=100,
                                    runs_dir=str(tmp_path)))
    (demo_states, demo_visits), (first_states, demo_start) = seen["demo"][:2]
    torch.testing.assert_close(first_states, demo_states[:, :1])  # the second call: the demos' s_0 alone
    expected_start = torch.bincount(demo_states[:, 0], minlength=len(demo_start)).double() / len(demo_states)
    torch.testing.assert_close(demo_start, expected_start)
    assert len(seen["forward"]) >= 30
    starts = [start for start, _ in seen["forward"][:30]]
    assert all(torch.equal(s, demo_start) for s in starts)  # every iteration's forward pass starts there
    # ascent on the likelihood: the expected visits approach the demos' (the feature-matching gap shrinks)
    gaps = [float((demo_visits - visits).abs().sum()) for _, visits in seen["forward"][:30]]
    assert gaps[-1] < 0.5 * gaps[0], gaps


def test_max_margin_solves_over_every_policy_found_so_far(tmp_path, monkeypatch):
    """Round i's margin problem holds the constraints of π_0..π_{i−1}, in order: Δ_j = μ̃ − μ(π_j) and D_j exactly as
    policy_features computed them when π_j joined the set (and the same μ̃ throughout)."""
    added, solved = [], []
    real_add, real_solve = maxent_irl.add_policy, maxent_irl.max_margin_weights

    def add(found, policy, mu, margin):
        added.append((mu.clone(), margin.clone()))
        return real_add(found, policy, mu, margin)

    def solve(deltas, margins, slack_c, init=None):
        solved.append((deltas.clone(), margins.clone()))
        if init is not None:  # warm start: the last round's α, and 0 for the new constraint
            assert len(init) == len(margins) and float(init[-1]) == 0.0
        return real_solve(deltas, margins, slack_c, init)

    monkeypatch.setattr(maxent_irl, "add_policy", add)
    monkeypatch.setattr(maxent_irl, "max_margin_weights", solve)
    maxent_irl.main(maxent_irl.Args(method="max-margin", grid_size=5, slack_c=1e6, iterations=6, num_demos=10,
                                    eval_episodes=0, save_model=False, runs_dir=str(tmp_path)))
    assert len(solved) >= 2
    demo_mu = solved[0][0][0] + added[0][0]  # μ̃ = Δ_0 + μ(π_0)
    for i, (deltas, margins) in enumerate(solved):
        assert deltas.shape[0] == margins.shape[0] == i + 1  # π_0 (random) and one more per round
        for j in range(i + 1):
            assert torch.allclose(deltas[j], demo_mu - added[j][0], atol=1e-12)
            assert float(margins[j]) == float(added[j][1])


def test_projection_feeds_each_projection_back_and_closes_in(tmp_path, monkeypatch):
    """Abbeel & Ng's μ̄: each round projects from the previous round's μ̄, and ‖μ̃ − μ̄‖ never grows."""
    calls = []
    real = maxent_irl.project_onto_segment

    def spy(mu_bar, mu_new, demo_mu):
        calls.append((mu_bar.clone(), real(mu_bar, mu_new, demo_mu), demo_mu))
        return calls[-1][1]

    monkeypatch.setattr(maxent_irl, "project_onto_segment", spy)
    maxent_irl.main(maxent_irl.Args(method="projection", grid_size=5, tolerance=0.0, iterations=12, num_demos=10,
                                    eval_episodes=0, save_model=False, runs_dir=str(tmp_path)))
    assert len(calls) == 12
    for (_, out, _), (nxt, _, _) in zip(calls, calls[1:]):
        assert torch.equal(nxt, out)
    distances = [float((demo - out).norm()) for _, out, demo in calls]
    assert all(b <= a + 1e-12 for a, b in zip(distances, distances[1:]))
    assert distances[-1] < float((calls[0][2] - calls[0][0]).norm())  # it moved
