"""Shared by the learning tests of the imitation scripts: how far a run got from a random policy to the expert."""
import numpy as np
import torch


def pendulum_progress(script, eval_return: float) -> tuple:
    """(R − R_random) / (R_expert − R_random) on Pendulum-v1, the expert (the shipped policy) and the random policy
    (uniform torques) measured with `script`'s own run_episodes on the same 10 start states as a run's evaluation
    (eval seed 10,000). Returns (score, R_expert, R_random).

    Pendulum's returns are negative, so "a fraction of the expert's return" is taken as this fraction of the way."""
    expert = torch.export.load(script.default_expert_path("Pendulum-v1", "policy.pt2")).module()
    returns = lambda policy: script.run_episodes(policy, "Pendulum-v1", 10, 10_000)["episode_returns"].mean()  # noqa: E731
    expert_return = returns(script.torch_policy(expert))
    rng = np.random.default_rng(0)
    random_policy = lambda obs: rng.uniform(-2, 2, size=(1, 1)).astype(np.float32)  # noqa: E731
    random_return = returns(random_policy)
    return (eval_return - random_return) / (expert_return - random_return), expert_return, random_return
