"""bc.py's equations against references: torch.distributions, loops, closed forms; and its expert-file checks.

dagger.py carries the same losses and expert loading (shared blocks, byte-identical: tests/test_design.py), so
these tests cover both scripts.
"""
import json
import os
import shutil

import numpy as np
import pytest
import torch

import bc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPERTS = os.path.join(ROOT, "experts")


def test_mse_loss_is_the_mean_squared_distance():
    g = torch.Generator().manual_seed(0)
    pred, actions = torch.randn(7, 3, generator=g), torch.randn(7, 3, generator=g)
    loop = sum(sum((actions[b, j] - pred[b, j]) ** 2 for j in range(3)) for b in range(7)) / 7
    assert bc.mse_loss(pred, actions).item() == pytest.approx(loop.item(), rel=1e-6)


def test_mse_loss_refuses_shapes_that_would_broadcast():
    with pytest.raises(AssertionError):
        bc.mse_loss(torch.zeros(5, 1), torch.zeros(5))


def test_gaussian_nll_equals_torch_distributions():
    g = torch.Generator().manual_seed(1)
    mu, log_std, a = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    reference = -torch.distributions.Normal(mu, log_std.exp()).log_prob(a).sum(-1).mean()
    assert bc.gaussian_nll(mu, log_std, a).item() == pytest.approx(reference.item(), rel=1e-6)


def test_gaussian_nll_is_minimised_by_the_sample_mean_and_variance():
    # A state-free Gaussian fitted by maximum likelihood: μ* = mean, σ*² = (biased) variance, in closed form.
    a = torch.randn(500, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * torch.tensor([0.3, 2.0])
    mu = a.mean(0, keepdim=True).expand_as(a).clone().requires_grad_(True)
    log_std = (0.5 * a.var(0, unbiased=False).log()).expand_as(a).clone().requires_grad_(True)
    bc.gaussian_nll(mu, log_std, a).backward()
    assert mu.grad.sum(0).abs().max() < 1e-10 and log_std.grad.sum(0).abs().max() < 1e-10


def test_categorical_nll_is_the_cross_entropy():
    g = torch.Generator().manual_seed(3)
    logits, actions = torch.randn(9, 5, generator=g), torch.randint(5, (9,), generator=g)
    reference = -torch.distributions.Categorical(logits=logits).log_prob(actions).mean()
    assert bc.categorical_nll(logits, actions).item() == pytest.approx(reference.item(), rel=1e-6)
    assert bc.categorical_nll(logits, actions).item() == pytest.approx(
        torch.nn.functional.cross_entropy(logits, actions).item(), rel=1e-6)


def test_bounded_log_std_stays_in_range_and_keeps_a_gradient():
    raw = torch.linspace(-30, 30, 101, requires_grad=True)
    out = bc.bounded_log_std(raw, -5.0, 2.0)
    assert out.min() >= -5.0 and out.max() <= 2.0 and torch.all(out[1:] >= out[:-1])
    assert bc.bounded_log_std(torch.zeros(1), -5.0, 2.0).item() == pytest.approx(-1.5)  # the middle of the range
    out[50].backward()
    assert raw.grad[50] > 0


def test_validation_split_holds_out_whole_episodes():
    lengths = np.array([5, 3, 8, 2, 6])
    mask = bc.validation_split(lengths, 2, np.random.default_rng(0))
    assert mask.shape == (lengths.sum(),)
    episodes = np.split(mask, np.cumsum(lengths)[:-1])
    assert all(e.all() or not e.any() for e in episodes)  # never half an episode
    assert sum(e.all() for e in episodes) == 2


def test_subsample_mask_keeps_every_kth_step_of_each_episode():
    lengths = np.array([50, 7, 33, 1, 20])
    k = 4
    keep = bc.subsample_mask(lengths, k, np.random.default_rng(0))
    offsets = set()
    for episode in np.split(keep, np.cumsum(lengths)[:-1]):
        kept = np.flatnonzero(episode)
        if len(kept):
            assert kept[0] < k and np.all(np.diff(kept) == k)  # o_i, o_i + k, o_i + 2k, ...
            assert kept[-1] + k >= len(episode)  # to the end of the episode
            offsets.add(kept[0])
    assert len(offsets) > 1  # the offset differs between episodes
    assert bc.subsample_mask(lengths, 1, np.random.default_rng(0)).all()


# ── the expert files: one clear UserError for each way they can be wrong ──────────────────────────────
def demos_of(env_id):
    return os.path.join(EXPERTS, env_id, "demos.npz")


def test_load_demos_accepts_the_shipped_files():
    demos = bc.load_demos(demos_of("InvertedPendulum-v4"), "InvertedPendulum-v4", 4, 1, False)
    assert demos["observations"].shape == (25_000, 4) and demos["metadata"]["env_id"] == "InvertedPendulum-v4"


@pytest.mark.parametrize("path,env_id,dims,needle", [
    ("no/such/demos.npz", "Hopper-v4", (11, 3, False), "no expert demonstrations at"),
    (demos_of("CartPole-v1"), "InvertedPendulum-v4", (4, 1, False), "holds demonstrations of CartPole-v1"),
    (demos_of("Hopper-v4"), "Hopper-v4", (12, 3, False), "has observations (11,)"),
    (demos_of("Hopper-v4"), "Hopper-v4", (11, 2, False), "and actions (3,)"),
])
def test_load_demos_rejects_missing_or_mismatched_files(path, env_id, dims, needle):
    with pytest.raises(bc.UserError) as err:
        bc.load_demos(path, env_id, *dims)
    assert needle in str(err.value)
    assert f"python ppo.py --env {env_id} --save-expert experts/{env_id}" in str(err.value)


def test_load_demos_rejects_a_file_that_is_not_a_demos_npz(tmp_path):
    (tmp_path / "demos.npz").write_text("hello")
    np.savez(tmp_path / "other.npz", observations=np.zeros((3, 4)))
    for name in ("demos.npz", "other.npz"):
        with pytest.raises(bc.UserError) as err:
            bc.load_demos(str(tmp_path / name), "CartPole-v1", 4, 2, True)
        assert "is not a demos.npz written by ppo.py --save-expert" in str(err.value)
        assert "\n" not in str(err.value)


def test_load_demos_rejects_inconsistent_episode_lengths(tmp_path):
    with np.load(demos_of("CartPole-v1")) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["episode_lengths"] = arrays["episode_lengths"] + 1
    np.savez(tmp_path / "demos.npz", **arrays)
    with pytest.raises(bc.UserError, match="episode lengths add up to"):
        bc.load_demos(str(tmp_path / "demos.npz"), "CartPole-v1", 4, 2, True)


def test_load_expert_policy_checks_env_and_shapes(tmp_path):
    cartpole = os.path.join(EXPERTS, "CartPole-v1", "policy.pt2")
    policy = bc.load_expert_policy(cartpole, "CartPole-v1", 4, 2, True)
    assert policy(torch.zeros(3, 4)).shape == (3,)
    with pytest.raises(bc.UserError, match="no expert policy at"):
        bc.load_expert_policy(str(tmp_path / "policy.pt2"), "CartPole-v1", 4, 2, True)
    # the demos.npz beside it names its env
    with pytest.raises(bc.UserError, match="is the expert of CartPole-v1"):
        bc.load_expert_policy(cartpole, "InvertedPendulum-v4", 4, 1, False)
    # alone in a folder, only its shapes can tell: discrete actions for a continuous env, or the wrong obs size
    shutil.copy(cartpole, tmp_path / "policy.pt2")
    with pytest.raises(bc.UserError, match="which do not fit InvertedPendulum-v4's action space"):
        bc.load_expert_policy(str(tmp_path / "policy.pt2"), "InvertedPendulum-v4", 4, 1, False)
    with pytest.raises(bc.UserError, match="cannot use .* as the expert of Hopper-v4"):
        bc.load_expert_policy(str(tmp_path / "policy.pt2"), "Hopper-v4", 11, 3, False)


def test_demos_metadata_reads_the_expert_return():
    meta = bc.demos_metadata(demos_of("Hopper-v4"))
    with np.load(demos_of("Hopper-v4")) as data:
        assert meta == json.loads(str(data["metadata"]))
        assert meta["return_mean"] == pytest.approx(float(data["episode_returns"].mean()))


def test_normalized_score_is_zero_for_random_and_one_for_the_demonstrator(tmp_path):
    """(R − R_random) / (R_expert − R_random), with the references of the same evaluation seeds when they are stored."""
    path = str(tmp_path / "demos.npz")
    reference = {"eval_seed": 100, "episodes": 4, "random_returns": [0.0, 2.0, 4.0, 6.0],
                 "expert_returns": [10.0, 12.0, 20.0, 30.0]}
    np.savez(path, metadata=np.array(json.dumps({"env_id": "X", "reference": reference})))
    returns = np.array([5.0, 7.0])
    # seeds 100 and 101: random 1, expert 11
    assert bc.normalized_score(returns, path, eval_seed=100) == pytest.approx((6.0 - 1.0) / (11.0 - 1.0))
    assert bc.normalized_score(np.array([1.0, 1.0]), path, 100) == 0.0
    assert bc.normalized_score(np.array([11.0, 11.0]), path, 100) == 1.0
    # other seeds, or more episodes than stored: the means over all of them (random 3, expert 18)
    assert bc.normalized_score(returns, path, eval_seed=7) == pytest.approx((6.0 - 3.0) / 15.0)
    assert bc.normalized_score(np.full(5, 6.0), path, eval_seed=100) == pytest.approx(3.0 / 15.0)
    assert bc.normalized_score(np.array([]), path, 100) is None
    for key in reference:  # a hand-edited reference that lacks a key or holds the wrong type: a note, no score
        if key != "eval_seed":  # (another eval_seed only means other seeds: the means over all episodes)
            np.savez(path, metadata=np.array(json.dumps({"env_id": "X", "reference": {**reference, key: "?"}})))
            assert bc.normalized_score(returns, path, 100) is None, key
        broken = {k: v for k, v in reference.items() if k != key}
        np.savez(path, metadata=np.array(json.dumps({"env_id": "X", "reference": broken})))
        assert bc.normalized_score(returns, path, 100) is None, key
    np.savez(path, metadata=np.array(json.dumps({"env_id": "X"})))  # an expert without references
    assert bc.normalized_score(returns, path, 100) is None
    assert bc.normalized_score(returns, str(tmp_path / "missing.npz"), 100) is None


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Hopper-v4"])
def test_shipped_references_give_the_stated_scores(env_id):
    """Each shipped expert's references: the demonstrator scores 1, the random policy 0, and the random returns are
    those of ppo.py's uniform random policy on the evaluation seeds (the first two episodes checked)."""
    import ppo
    path = demos_of(env_id)
    reference = bc.demos_metadata(path)["reference"]
    assert bc.normalized_score(np.array(reference["expert_returns"][:10]), path, reference["eval_seed"]) == 1.0
    assert bc.normalized_score(np.array(reference["random_returns"][:10]), path, reference["eval_seed"]) == 0.0
    space = ppo.make_env(env_id).action_space
    again = ppo.run_episodes(ppo.uniform_random_policy(space, reference["eval_seed"]), env_id, 2,
                             reference["eval_seed"])["episode_returns"]
    assert again.tolist() == reference["random_returns"][:2]
