"""Development runs of mppi.py's Hopper planner: one episode, one variant of the shaped cost, printed every 50 steps.

The README's "development episodes" (the planner's noise from numpy seed 0, one rollout thread):
    python benchmark/mppi_hopper_dev.py --v 2.5 --wv 3 --wh 50 --dead 30 --steps 1000                # 1,980, 1000 steps
    python benchmark/mppi_hopper_dev.py --v 2.0 --wv 3 --wh 50 --dead 30 --steps 1000                # 1,829, 1000 steps
    python benchmark/mppi_hopper_dev.py --v 2.5 --wv 3 --wh 50 --dead 30 --steps 1000 --seed 10001   # 562, falls at 270
    python benchmark/mppi_hopper_dev.py --v 3.0 --wv 3 --wh 50 --dead 30 --steps 1000                # 1,148, falls at 464
    python benchmark/mppi_hopper_dev.py --v 2.0 --wv 3 --steps 1000                                  # height weight 10: 1,029, falls at 438
    python benchmark/mppi_hopper_dev.py --v 2.5 --steps 1000                                         # height weight 10: 598, falls at 276
    python benchmark/mppi_hopper_dev.py --v 2.0 --wv 3 --K 128 --steps 1000                          # height weight 10: 730, falls at 265
    python benchmark/mppi_hopper_dev.py --v 2.0 --wv 3 --zmin 0.85 --steps 1000                      # height weight 10: 807, falls at 329
    python benchmark/mppi_hopper_dev.py --v 2.5 --wv 3 --wh 50 --dead 100 --steps 1000 --seed 10001  # careful: ~1 per step
--v, --wv, --wh, --wr, --wc, --dead: speed target and the weights of planning_reward_hopper; --knots, --K, --H, --sigma,
--lam: the planner. It is mppi.py's knot planner and planning_reward_hopper with the weights as arguments, in its
own copy written before mppi.py had them (the numbers above come from this copy: its noise comes from numpy seed
0, mppi.py's from --seed + 1, and its interpolation is computed differently, so mppi.py's episodes differ).
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import gymnasium as gym
import mujoco
import mujoco.rollout
import numpy as np

import mppi as M  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--K", type=int, default=64); p.add_argument("--H", type=int, default=100)
p.add_argument("--knots", type=int, default=4); p.add_argument("--sigma", type=float, default=0.5)
p.add_argument("--lam", type=float, default=1.0); p.add_argument("--iters", type=int, default=1)
p.add_argument("--cost", default="mjpc"); p.add_argument("--steps", type=int, default=500)
p.add_argument("--threads", type=int, default=1); p.add_argument("--seed", type=int, default=10000)
p.add_argument("--h", type=float, default=1.25); p.add_argument("--v", type=float, default=1.5)
p.add_argument("--wh", type=float, default=10.); p.add_argument("--wr", type=float, default=3.)
p.add_argument("--wv", type=float, default=1.); p.add_argument("--wc", type=float, default=0.1)
p.add_argument("--dead", type=float, default=10.); p.add_argument("--zmin", type=float, default=0.7); p.add_argument("--thmax", type=float, default=0.2); p.add_argument("--lamrel", type=float, default=0.)
a = p.parse_args()
env = gym.make("Hopper-v4"); inner = env.unwrapped
model, data, fs = inner.model, inner.data, inner.frame_skip
spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
state = np.zeros(mujoco.mj_stateSize(model, spec))
datas = [mujoco.MjData(model) for _ in range(a.threads)]
nq, nv = model.nq, model.nv
low, high = env.action_space.low.astype(np.float64), env.action_space.high.astype(np.float64)
rng = np.random.default_rng(0)
tk = np.linspace(0, a.H - 1, a.knots)
def spline(knots):  # (..., n, A) -> (..., H, A) linear interpolation
    i = np.arange(a.H)
    j = np.clip(np.searchsorted(tk, i, side="right") - 1, 0, a.knots - 2)
    f = (i - tk[j]) / (tk[j + 1] - tk[j])
    return knots[..., j, :] * (1 - f)[:, None] + knots[..., j + 1, :] * f[:, None]
def shift(knots):
    acts = spline(knots)
    t = np.clip(tk + 1, 0, a.H - 1)
    return np.stack([np.array([np.interp(tt, np.arange(a.H), acts[:, d]) for d in range(acts.shape[1])]) for tt in t])
def returns(actions):
    mujoco.mj_getState(model, data, state, spec)
    controls = np.repeat(actions, fs, axis=1)
    states, _ = mujoco.rollout.rollout(model, datas, state[None], controls)
    after = states[:, fs - 1::fs]
    qpos, qvel = after[..., 1:1 + nq], after[..., 1 + nq:1 + nq + nv]
    x_before = np.concatenate([np.full((len(actions), 1), data.qpos[0]), qpos[:, :-1, 0]], axis=1)
    r_env, alive = M.hopper_env_reward(qpos, qvel, actions, x_before, inner.dt)
    if a.zmin != 0.7 or a.thmax != 0.2:
        alive = np.cumprod((qpos[..., 1] > a.zmin) & (np.abs(qpos[..., 2]) < a.thmax), axis=1)
    if a.cost == "env":
        return (r_env * alive).sum(1)
    z, th, vx = qpos[..., 1], qpos[..., 2], qvel[..., 0]
    c = a.wc * np.square(actions).sum(-1) + a.wh * (z - a.h) ** 2 + a.wr * th ** 2 + a.wv * (vx - a.v) ** 2
    if a.cost == "mjpc":
        return (-c * alive - a.dead * (1 - alive)).sum(1)
    if a.cost == "mjpc_noterm":
        return (-c).sum(1)
knots = np.zeros((a.knots, 3))
obs, _ = env.reset(seed=a.seed)
tot, t0, ess = 0.0, time.time(), []
for step in range(a.steps):
    for it in range(a.iters):
        eps = rng.standard_normal((a.K, a.knots, 3)) * a.sigma; eps[0] = 0
        kk = np.clip(knots + eps, low, high)
        R = returns(spline(kk))
        lam = a.lam if a.lamrel == 0 else max(a.lamrel * (R.max() - np.median(R)), 1e-6)
        w = M.mppi_weights(R, lam); ess.append(1 / np.square(w).sum())
        knots = np.tensordot(w, kk, axes=1)
    act = spline(knots)[0]
    knots = shift(knots)
    obs, r, term, trunc, _ = env.step(act.astype(np.float32)); tot += r
    if step % 50 == 0 or term:
        print(f"{step} z={inner.data.qpos[1]:.2f} th={inner.data.qpos[2]:.2f} vx={inner.data.qvel[0]:.2f} "
              f"ret={tot:.0f} ess={np.mean(ess[-50:]):.1f} {time.time()-t0:.0f}s", flush=True)
    if term or trunc: break
print(json.dumps(dict(args=vars(a), steps=step + 1, ret=round(tot, 1), sec=round(time.time() - t0))), flush=True)
