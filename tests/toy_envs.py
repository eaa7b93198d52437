"""Tiny deterministic environments with known answers, for the bookkeeping tests of every script that collects data.

`Count-v0` (continuous actions) and `CountDiscrete-v0` (two actions) tell a test exactly where it is:

    observation  s = [t, k, 1]   t = steps taken in this episode, k = episodes begun before it by this env instance
    reward       r = t + 1 + 0.5·k  after the step from t (so every step of a run has its own reward)
    episodes     episode k is TERMINATED when t reaches TERM_AT (k even: 0, 2, 4, ...), and otherwise runs on until
                 the time limit of LIMIT steps TRUNCATES it (k odd), through gymnasium's own TimeLimit wrapper

So in every episode s_0 = [0, k, 1]; an episode's last observation (infos["final_obs"] of a vector env) is
[TERM_AT, k, 1] or [LIMIT, k, 1], never the next episode's [0, k + 1, 1]; and an even episode's return is
Σ_{t<TERM_AT} (t + 1 + 0.5k). The action changes nothing, so any policy sees the same states.

Importing this module registers both ids; a subprocess reaches them as `--env toy_envs:Count-v0` with tests/ on
PYTHONPATH (gymnasium imports the module named before the colon).
"""
import json
import os

import gymnasium as gym
import numpy as np
import torch

TERM_AT = 3  # even episodes end (terminated) after this many steps
LIMIT = 5  # odd episodes are cut (truncated) by the time limit after this many steps


class CountEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, discrete: bool = False, render_mode=None):
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
        self.action_space = gym.spaces.Discrete(2) if discrete else gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.t, self.k = 0, -1

    def _obs(self) -> np.ndarray:
        return np.array([self.t, self.k, 1.0], np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.k = 0, self.k + 1
        return self._obs(), {}

    def step(self, action):
        reward = self.t + 1 + 0.5 * self.k
        self.t += 1
        terminated = self.k % 2 == 0 and self.t == TERM_AT
        return self._obs(), float(reward), bool(terminated), False, {}


def episode(k: int) -> dict:
    """The known answer for episode k: its observations s_0..s_T, rewards, and how it ends."""
    length = TERM_AT if k % 2 == 0 else LIMIT
    obs = np.array([[t, k, 1.0] for t in range(length + 1)], np.float32)
    rewards = np.array([t + 1 + 0.5 * k for t in range(length)])
    return {"obs": obs, "rewards": rewards, "terminated": k % 2 == 0, "length": length}


def stream(steps: int) -> dict:
    """The first `steps` transitions of one env instance, episode after episode, as flat arrays:
    obs s_t, next_obs (the true s_{t+1}: the final observation at an episode's end), reward, terminated, truncated."""
    rows = {"obs": [], "next_obs": [], "reward": [], "terminated": [], "truncated": []}
    k = 0
    while len(rows["reward"]) < steps:
        ep = episode(k)
        for t in range(ep["length"]):
            last = t == ep["length"] - 1
            rows["obs"].append(ep["obs"][t])
            rows["next_obs"].append(ep["obs"][t + 1])
            rows["reward"].append(ep["rewards"][t])
            rows["terminated"].append(last and ep["terminated"])
            rows["truncated"].append(last and not ep["terminated"])
        k += 1
    return {key: np.asarray(v[:steps]) for key, v in rows.items()}


def columns(key: str, T: int, N: int, iteration: int = 0) -> np.ndarray:
    """(T, N) of stream()[key] for rollout `iteration` (0-based) of T steps in each of N envs: every env instance
    runs the same episodes, so each column is the same stream."""
    column = stream(T * (iteration + 1))[key][T * iteration:]
    return np.stack([column] * N, axis=1)


def reference_running_stats(batches: list) -> list:
    """[(mean, var)] after each batch of samples: the statistics of every sample so far together with
    RunningMeanStd's prior (count 1e-4 at mean 0, variance 1), computed in one go from the concatenation rather than
    by the scripts' update formula."""
    out, seen = [], []
    for batch in batches:
        seen.append(np.asarray(batch, np.float64))
        x = np.concatenate(seen)
        n, c0 = len(x), 1e-4
        m, v = x.mean(0), x.var(0)
        out.append((n * m / (c0 + n), (c0 * 1.0 + n * v + np.square(m) * c0 * n / (c0 + n)) / (c0 + n)))
    return out


def normalized(x: np.ndarray, stats: tuple) -> np.ndarray:
    """(x − μ)/√(σ² + 1e-8) with stats = (μ, σ²)."""
    return (x - stats[0]) / np.sqrt(stats[1] + 1e-8)


class ToyExpert(torch.nn.Module):
    """A known expert: a = clip(0.2·t − 0.3, −1, 1) (continuous) or t mod 2 (discrete), t = obs[:, 0]."""

    def __init__(self, discrete: bool):
        super().__init__()
        self.discrete = discrete

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if self.discrete:
            return torch.remainder(obs[:, 0], 2).long()
        return torch.clamp(0.2 * obs[:, :1] - 0.3, -1.0, 1.0)


def write_expert(folder: str, env_id: str, episodes: int = 4) -> dict:
    """folder/policy.pt2 (torch.export of ToyExpert) and folder/demos.npz (its `episodes` episodes from a fresh
    env: k = 0, 1, 2, ..., so lengths 3, 5, 3, 5, ...), in the format of ppo.py --save-expert; returns the demos."""
    import ppo  # the project's own writer of the format (run_episodes, atomic_savez)
    discrete = env_id == "CountDiscrete-v0"
    os.makedirs(folder, exist_ok=True)
    expert = ToyExpert(discrete)
    program = torch.export.export(expert, (torch.zeros(2, 3),), dynamic_shapes={"obs": {0: torch.export.Dim.AUTO}})
    torch.export.save(program, os.path.join(folder, "policy.pt2"))
    demos = ppo.run_episodes(ppo.torch_policy(expert), env_id, episodes, seed=0)
    returns = demos["episode_returns"]
    metadata = {"env_id": env_id, "script": "ppo.py", "seed": 0, "command": "tests/toy_envs.py",
                "return_mean": float(returns.mean()), "return_std": float(returns.std()), "episodes": episodes,
                "obs_dim": 3, "action_space": "discrete" if discrete else "continuous"}
    ppo.atomic_savez(os.path.join(folder, "demos.npz"), metadata=np.array(json.dumps(metadata)), **demos)
    return demos


for _id, _discrete in (("Count-v0", False), ("CountDiscrete-v0", True)):
    if _id not in gym.registry:
        gym.register(_id, entry_point=CountEnv, max_episode_steps=LIMIT, kwargs={"discrete": _discrete})
