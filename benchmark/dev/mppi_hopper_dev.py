"""Development runs of mppi.py's Hopper planner: one episode, one variant of the shaped cost, printed every 50 steps.

docs/mppi.md's "development episodes" (the planner's noise from numpy seed 0, one rollout thread), each
`python benchmark/dev/mppi_hopper_dev.py` with:
    --v 2.5 --wv 3 --wh 50 --dead 30 --steps 1000                 # 1,980, 1000 steps
    --v 2.0 --wv 3 --wh 50 --dead 30 --steps 1000                 # 1,829, 1000 steps
    --v 2.5 --wv 3 --wh 50 --dead 30 --steps 1000 --seed 10001    # 562, falls at 270
    --v 3.0 --wv 3 --wh 50 --dead 30 --steps 1000                 # 1,148, falls at 464
    --v 2.0 --wv 3 --steps 1000                                   # height weight 10: 1,029, falls at 438
    --v 2.5 --steps 1000                                          # height weight 10: 598, falls at 276
    --v 2.0 --wv 3 --K 128 --steps 1000                           # height weight 10: 730, falls at 265
    --v 2.0 --wv 3 --zmin 0.85 --steps 1000                       # height weight 10: 807, falls at 329
    --v 2.5 --wv 3 --wh 50 --dead 100 --steps 1000 --seed 10001   # careful: ~1 per step
--v, --wv, --wh, --wr, --wc, --dead: speed target and the weights of planning_reward_hopper; --knots, --K, --H, --sigma,
--lam: the planner. It is mppi.py's knot planner and planning_reward_hopper with the weights as arguments, in its
own copy written before mppi.py had them (the numbers above come from this copy: its noise comes from numpy seed
0, mppi.py's from --seed + 1, and its interpolation is computed differently, so mppi.py's episodes differ).

Session 13 (episode length = the step it fell at + 1, or 1000; all with --wh 50 --steps 1000):
    --v 1.5 --wv 10 --dead 30 --seed 10001                                     # 2,081, 1000 steps
    --v 1.5 --wv 10 --dead 30                                                  # 436, 203 steps
    --v 2.0 --wv 10 --dead 30 --seed 10001                                     # 501, 191 steps
    --v 2.5 --wv 3 --dead 30 --H 150 --knots 5 --seed 10001                    # 1,415, 645 steps
  --exact 1: the plan is H actions and only the noise is n points, interpolated (plan + S·ε), so sample 0 is the
  exact rest of the last plan and the shift drops u_0 (the knot plan's shift re-reads the spline one step later,
  which moves its corners: sample 0 is then not what was planned). Alone it changes little:
    --exact 1 --v 2.5 --wv 3 --dead 30                                         # 685, 214 steps
    --exact 1 --v 2.5 --wv 3 --dead 30 --seed 10001                            # 816, 329 steps
    same + --lump 300 (a fall anywhere in the horizon costs 300 more)          # 530, 255; 10001: 823, 328
    same + --knots 8 / --knots 12                                              # 806, 287 / 569, 198
    same + --sigma 0.2 / --sigmin 0.05 (σ spread 0.05–0.5 over the K samples)  # 623, 299 / 514, 204
    same + --dead 60                                                           # 500, 222
    same + --thmax 0.12 (plan as if |θ| ≥ 0.12 were a fall)                    # 279, 119
    same + --K 16 --iters 4                                                    # 756, 231
    same + --K 32 --iters 4 (twice the rollouts per step: ~0.9 s)              # 2,829, 906 steps
    same + --K 32 --iters 4 --seed 10001 / --seed 10002                        # 944, 438 / 681, 269
    same + --K 32 --iters 4 --v 1.5 --wv 10 / and --seed 10001                 # 320, 143 / 505, 215
    same + --fresh 16 (16 of the 64 samples drawn around zero, σ = --rsigma)   # 469, 168
  and, for comparison, the knot planner above from reset 10002:
    --v 2.5 --wv 3 --dead 30 --seed 10002                                      # 1,390, 647 steps
  --every 25 prints fall_in: for the heaviest sample of each of the last 12 steps, the steps until it falls (−1:
  it lives the whole horizon). In the falling episodes it counts down, one per step, for 50–100 steps before the
  fall: every sample found falls, and hardly any falls later than the last plan did. --probe T stops at step T
  and searches from that state with CEM (15 rounds of 1000 sequences, refitted to the 50 that live longest; 4, 10
  and 25 points):
    --exact 1 --sigmin 0.05 --v 2.5 --wv 3 --dead 30 --every 25 --probe 112    # lives all 100 steps (round 0)
    same with --probe 125 / 140 / 175                                          # at most 86 / 70 / 29 steps
  (at 125 with 4 and 10 points only; without --probe the episode falls at step 203, its length 204.) So from ~0.6 s
  before the fall no action sequence avoids it, while 13 steps earlier a wide search finds one that lives the
  horizon: the planner loses the way out while the fall is still near the end of its look-ahead, and K = 64 around
  the plan does not find it again. --exact 1 --rescue 8 (up to 8 more rounds of K samples, σ = --rsigma, while every
  sample falls) needed all 8 rounds at almost every step from the start (~8 s per step) and was stopped at step 25;
  --exact 1 --H 200 --knots 6 stood still (~2 s per step) and was stopped at step 150.

Session 14: --tail n extends the look-ahead for free: after the H simulated steps, n more steps in which z and θ
move on at their last velocities, and a crossing of the fall limits there costs --dead per step, as a fall inside
the horizon does (a crude terminal value). One episode per reset (--seed 10000 / 10001 / 10002), --wh 50 --steps 1000:
    --v 2.5 --wv 3 --dead 30 --tail 50       # 1,191, 620 steps / 1,110, 845 / 1,621, 829    (mean 1,307)
    --v 1.5 --wv 10 --dead 30 --tail 50      # 1,831, 1000 / 343, 153 / 704, 353              (mean 959)
    --v 2.0 --wv 3 --dead 30 --tail 50       # 1,505, 990 / 567, 234 / 985, 1000             (mean 1,019)
  Without it, the first line's weights got 1,980 / 562 / 1,390 (mean 1,311, 639 steps on average): with it the
  episodes last longer (765 steps on average) for the same mean return, still fall, and at the lower targets the
  hopper often stands still for long stretches (985 over 1000 steps). Not a fix.

Session 15 (all --v 2.5 --wv 3 --wh 50 --dead 30 --steps 1000 unless said; "return, steps" per reset seed):
  --integ euler plans on a copy of the model stepped by MuJoCo's Euler integrator instead of Hopper's RK4: ~4× faster,
  and from the reset state under 64 random 5-point action curves the torso height differs from RK4's by 0.003 (median;
  90th percentile 0.007) after 50 steps, 0.008 (0.035) after 100 (--integ-check prints both).
  That buys more samples per second, but not a planner that stays up:
    --integ euler --K 64          # 10000: 983, 467; 10001: 259, 150; 10002: 465, 183; 10003: 662, 274;
                                  # 10004: 828, 318; 10005: 1,725, 695 (0.13–0.15 s per step)
    --integ euler --K 256         # 10000: 1,180, 548; 10001: 2,059, 789; 10003: 550, 209 (0.5–0.6 s per step)
    same with --v 2.0             # 10000: 138, 81; 10001: 1,695, 1000
    --integ euler --K 64 --lam 10 # 10000: 438, 176; 10002: 763, 341; 10003: 489, 239; 10004: 1,433, 612
  RK4, K = 64 (the preset), for comparison (the first three are the runs above):
                                  # 10000: 1,980, 1000; 10001: 562, 270; 10002: 1,390, 647; 10003: 831, 416;
                                  # 10004: 1,796, 687; 10005: 458, 171 (mean 1,170; Euler's six: 820)
  Euler's model error costs more than it saves: with the same K it did worse from 5 of the 6 resets.
  A terminal value from the planner's own episodes (POLO's idea, one round, Monte-Carlo targets): 20 episodes of
  --integ euler --K 64 --record F from resets 20000–20019 (7,331 states; returns 261–1,822, one lived 1000 steps),
  V fitted by `python benchmark/dev/hopper_value_fit.py --steps 1000 --out V.npz F...` (γ = 0.98, held-out error 0.34 of
  the targets' variance), then --integ euler --K 64 --value V.npz (R += V(s_H), or −dead/(1−γ) for a sample that fell):
    10000: 799, 296; 10001: 381, 157; 10002: 924, 605; 10003: 480, 177; 10004: 674, 485; 10005: 1,342, 1000
  Mean 767 against 820 without it (the Euler K = 64 line). With the RK4 model (--K 64 --value V.npz, no --integ):
    10000: 648, 296; 10001: 401, 166; 10002: 1,179, 1000; 10003: 348, 167; 10004: 1,415, 1000; 10005: 586, 266
  Mean 763 against the preset's 1,170; the two that lived 1000 steps mostly stood still (1.2–1.4 per step, 1 of it
  the alive bonus). It made the hopper slower, not steadier. The heights at the falls (with --every 10: 10001, RK4,
  K = 64: z 1.14, 1.06, 0.90, 0.68 over its last 30 steps at θ 0.04–0.18, ẋ 2.2–2.4) show the torso sinking while it
  runs on; --wr 30 (angle weight 30, not 3) fell sooner, at step 191.
"""
import argparse
import copy
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))  # the repository root
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
p.add_argument("--dead", type=float, default=10.); p.add_argument("--lamrel", type=float, default=0.)
p.add_argument("--zmin", type=float, default=0.7); p.add_argument("--thmax", type=float, default=0.2)
# session 13's options: see the docstring
p.add_argument("--exact", type=int, default=0); p.add_argument("--lump", type=float, default=0.)
p.add_argument("--sigmin", type=float, default=0.); p.add_argument("--probe", type=int, default=-1)
p.add_argument("--rescue", type=int, default=0); p.add_argument("--rsigma", type=float, default=0.7)
p.add_argument("--every", type=int, default=50); p.add_argument("--fresh", type=int, default=0)
p.add_argument("--tail", type=int, default=0)
p.add_argument("--record", default="")  # session 15: save each step's observation and shaped reward (npz)
p.add_argument("--value", default="")  # session 15: a terminal value V(s_H) fitted by benchmark/dev/hopper_value_fit.py
# session 15: the integrator of the planner's copy of the model
p.add_argument("--integ", default="rk4", choices=["rk4", "euler", "implicitfast"])
p.add_argument("--integ-check", action="store_true")  # session 15: compare it with RK4 and exit
a = p.parse_args()
env = gym.make("Hopper-v4"); inner = env.unwrapped
model, data, fs = inner.model, inner.data, inner.frame_skip
spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
state = np.zeros(mujoco.mj_stateSize(model, spec))
pmodel = copy.deepcopy(model)  # the planner's model: Hopper's own (RK4) unless --integ says otherwise
pmodel.opt.integrator = {"rk4": mujoco.mjtIntegrator.mjINT_RK4, "euler": mujoco.mjtIntegrator.mjINT_EULER,
                         "implicitfast": mujoco.mjtIntegrator.mjINT_IMPLICITFAST}[a.integ]
datas = [mujoco.MjData(pmodel) for _ in range(a.threads)]
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
    states, _ = mujoco.rollout.rollout(pmodel, datas, state[None], controls)
    after = states[:, fs - 1::fs]
    qpos, qvel = after[..., 1:1 + nq], after[..., 1 + nq:1 + nq + nv]
    x_before = np.concatenate([np.full((len(actions), 1), data.qpos[0]), qpos[:, :-1, 0]], axis=1)
    r_env, alive = M.hopper_env_reward(qpos, qvel, actions, x_before, inner.dt)
    if a.zmin != 0.7 or a.thmax != 0.2:
        alive = np.cumprod((qpos[..., 1] > a.zmin) & (np.abs(qpos[..., 2]) < a.thmax), axis=1)
    global LAST_ALIVE; LAST_ALIVE = alive
    if a.cost == "env":
        return (r_env * alive).sum(1)
    z, th, vx = qpos[..., 1], qpos[..., 2], qvel[..., 0]
    c = a.wc * np.square(actions).sum(-1) + a.wh * (z - a.h) ** 2 + a.wr * th ** 2 + a.wv * (vx - a.v) ** 2
    if a.cost == "mjpc":
        R = (-c * alive - a.dead * (1 - alive)).sum(1) - a.lump * (1 - alive[:, -1])
        if a.tail:  # --tail n: n more steps, z and θ extrapolated at their last velocities; a crossing counts as a fall
            s_dt = np.arange(1, a.tail + 1) * inner.dt
            z_x = z[:, -1:] + qvel[:, -1, 1:2] * s_dt
            th_x = th[:, -1:] + qvel[:, -1, 2:3] * s_dt
            alive_x = np.cumprod((z_x > a.zmin) & (np.abs(th_x) < a.thmax), axis=1) * alive[:, -1:]
            R = R - a.dead * (1 - alive_x).sum(1)
        if a.value:  # R += V(s_H) for a sample alive at the end, the fallen value −dead/(1−γ) for one that fell
            s_H = np.concatenate([qpos[:, -1, 1:], np.clip(qvel[:, -1], -10, 10)], axis=1)
            R = R + np.where(alive[:, -1] > 0, value_of(s_H), -a.dead / (1 - VAL["gamma"]))
        return R
    if a.cost == "mjpc_noterm":
        return (-c).sum(1)
if a.value:
    VAL = dict(np.load(a.value))
def value_of(s):  # the fitted MLP, in numpy: (K, 11) -> (K,)
    h = (s - VAL["mu"]) / VAL["sd"]
    for i in range(3):
        h = h @ VAL[f"W{i}"].T + VAL[f"b{i}"]
        if i < 2: h = np.tanh(h)
    return h[:, 0] * VAL["rsd"] + VAL["rmu"]
if a.integ_check:  # RK4 (Hopper's) against the planner's --integ model: time and torso-height gap, 64 random curves
    obs, _ = env.reset(seed=0); mujoco.mj_getState(model, data, state, spec)
    pts, t_all = np.random.default_rng(0).uniform(-1, 1, (64, 5, 3)), np.arange(100 * fs)
    u = np.stack([np.stack([np.interp(t_all, np.linspace(0, 100 * fs - 1, 5), pts[k, :, d]) for d in range(3)], 1)
                  for k in range(64)])
    out = {}
    for name, m in (("rk4", model), (a.integ, pmodel)):
        d = [mujoco.MjData(m)]
        for _ in range(3): t0 = time.time(); out[name] = mujoco.rollout.rollout(m, d, state[None], u)[0]
        print(f"{name}: {time.time() - t0:.3f} s for 64 sequences of 100 steps")
    gap = np.abs(out[a.integ] - out["rk4"])[:, fs - 1::fs, 2]  # |Δz| after each env step (state: time, qpos, ...)
    for T in (10, 25, 50, 100):
        g = gap[:, T - 1]
        print(f"after {T} steps: |Δz| median {np.median(g):.4f}, 90th pct {np.percentile(g, 90):.3f}")
    sys.exit()
rec_obs, rec_r = [], []
knots = np.zeros((a.knots, 3))
plan = np.zeros((a.H, 3))  # --exact 1: the plan is the H actions themselves
obs, _ = env.reset(seed=a.seed)
tot, t0, ess, fall_in, rescues = 0.0, time.time(), [], [], []
for step in range(a.steps):
    if step == a.probe:  # a large CEM search from here: does any sequence survive the horizon?
        for nk in (4, 10, 25):  # control points of the searched sequences
            tkp, t_all = np.linspace(0, a.H - 1, nk), np.arange(a.H)
            mean, sd = np.zeros((nk, 3)), np.full((nk, 3), 0.7)
            for it in range(15):  # 15 rounds of 1000 sequences, refitted to the 50 best
                pts = np.clip(mean + rng.standard_normal((1000, nk, 3)) * sd, low, high)
                acts = np.stack([np.stack([np.interp(t_all, tkp, pts[k, :, d]) for d in range(3)], 1)
                                 for k in range(1000)])
                if it == 0:  # the planner's own plan is one of the first round's sequences
                    acts[0] = plan if a.exact else spline(knots)
                R = returns(acts); al = LAST_ALIVE.sum(1)
                el = np.argsort(-al * 1000 + R)[:50]  # survival first, then return
                mean, sd = pts[el].mean(0), pts[el].std(0) + 0.02
                print(f"probe knots {nk} iter {it}: best alive {al.max()} of {a.H}, "
                      f"mean of elites {al[el].mean():.0f}", flush=True)
        sys.exit()
    if a.exact:
        for it in range(a.iters):
            eps = rng.standard_normal((a.K, a.knots, 3)) * a.sigma; eps[0] = 0
            if a.sigmin: eps *= np.geomspace(a.sigmin / a.sigma, 1, a.K)[:, None, None]
            cand = np.clip(plan + spline(eps), low, high)
            if a.fresh:  # the last --fresh samples are drawn around zero (σ = --rsigma), not around the plan
                cand[-a.fresh:] = np.clip(spline(rng.standard_normal((a.fresh, a.knots, 3)) * a.rsigma), low, high)
            R = returns(cand); al = LAST_ALIVE
            for r_ in range(a.rescue):  # every sample falls within the horizon: search more, wider, until one lives
                if al[np.argmax(R), -1] == 1: break
                more = np.clip(plan + spline(rng.standard_normal((a.K, a.knots, 3)) * a.rsigma), low, high)
                Rm = returns(more)
                cand, R = np.concatenate([cand, more]), np.concatenate([R, Rm])
                al = np.concatenate([al, LAST_ALIVE])
                rescues.append(1)
            LAST_ALIVE = al
            w = M.mppi_weights(R, a.lam); ess.append(1 / np.square(w).sum())
            plan = np.tensordot(w, cand, axes=1)
        b = int(np.argmax(w))  # the heaviest sample: steps until it falls, −1 if it lives the horizon
        fall_in.append(int(LAST_ALIVE[b].sum()) if LAST_ALIVE[b, -1] == 0 else -1)
        act = plan[0]; plan = np.concatenate([plan[1:], plan[-1:]])
    for it in range(0 if a.exact else a.iters):
        eps = rng.standard_normal((a.K, a.knots, 3)) * a.sigma; eps[0] = 0
        kk = np.clip(knots + eps, low, high)
        R = returns(spline(kk))
        lam = a.lam if a.lamrel == 0 else max(a.lamrel * (R.max() - np.median(R)), 1e-6)
        w = M.mppi_weights(R, lam); ess.append(1 / np.square(w).sum())
        knots = np.tensordot(w, kk, axes=1)
    if not a.exact:
        act = spline(knots)[0]
        knots = shift(knots)
    obs, r, term, trunc, _ = env.step(act.astype(np.float32)); tot += r
    if a.record:  # the shaped reward of the step just taken (−dead if it ended the episode), and the state after it
        q, qv = inner.data.qpos, inner.data.qvel
        c = (a.wc * np.square(act).sum() + a.wh * (q[1] - a.h) ** 2 + a.wr * q[2] ** 2 + a.wv * (qv[0] - a.v) ** 2)
        rec_obs.append(np.concatenate([q[1:], np.clip(qv, -10, 10)])); rec_r.append(-a.dead if term else -c)
    if step % a.every == 0 or term:
        print(f"{step} z={inner.data.qpos[1]:.2f} th={inner.data.qpos[2]:.2f} vx={inner.data.qvel[0]:.2f} "
              f"ret={tot:.0f} ess={np.mean(ess[-50:]):.1f} {time.time()-t0:.0f}s fall_in={fall_in[-12:]} "
              f"rescue rounds {len(rescues)}", flush=True)
    if term or trunc: break
if a.record:
    with open(a.record + ".tmp", "wb") as f:  # atomic: an interrupted run leaves no half-written file
        np.savez(f, obs=np.array(rec_obs), r=np.array(rec_r), fell=bool(term))
    os.replace(a.record + ".tmp", a.record)
print(json.dumps(dict(args=vars(a), steps=step + 1, ret=round(tot, 1), sec=round(time.time() - t0))), flush=True)
