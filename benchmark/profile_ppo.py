"""Where one PPO iteration on Hopper-v4 spends its time, piece by piece (microseconds per call):

    python benchmark/profile_ppo.py

One iteration with the MuJoCo defaults is 2,048 env steps (each: a policy forward at batch 1 and a
simulator step) and 10 × 32 = 320 minibatch updates of 64 samples. The figures explain the choices in
ppo.py: the rollout's actor runs in numpy, the parameters live in one flat buffer for Adam and the
gradient clipping, and --compile fuses the minibatch losses. Run it on an idle machine.
"""
import os
import sys
import time
import warnings

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
warnings.filterwarnings("ignore")
import ppo  # noqa: E402

torch.set_num_threads(1)


def per_call_us(fn, n: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    rows = []
    env = ppo.make_env("Hopper-v4")
    env.reset(seed=0)
    zero = np.zeros(3, np.float32)

    def env_step():
        _, _, terminated, truncated, _ = env.step(zero)
        if terminated or truncated:
            env.reset()
    rows.append(("gymnasium Hopper-v4 env.step", per_call_us(env_step, 5000), 2048))

    agent = ppo.Agent(11, 3, discrete=False, hidden=64)
    x = np.zeros((1, 11), np.float32)

    def torch_actor():
        with torch.no_grad():
            return agent.actor(torch.from_numpy(x)).numpy()
    weights = ppo.numpy_weights(agent.actor)
    rows.append(("actor forward, torch, batch 1", per_call_us(torch_actor, 5000), 0))
    rows.append(("actor forward, numpy (ppo.py's rollout)", per_call_us(lambda: ppo.numpy_mlp(weights, x), 5000), 2048))
    rms = ppo.RunningMeanStd((11,))
    rows.append(("RunningMeanStd.update, batch 1", per_call_us(lambda: rms.update(x.astype(np.float64)), 5000), 2048))

    B, M = 2048, 64
    obs, act = torch.randn(B, 11), torch.randn(B, 3)
    logp_old, adv, v_old, ret = (torch.randn(B) for _ in range(4))

    def updater(flat: bool, compiled: bool):
        model = ppo.Agent(11, 3, discrete=False, hidden=64)
        if flat:
            params = [ppo.flatten_parameters(model)]
            opt = torch.optim.Adam(params, lr=3e-4, eps=1e-5, fused=True)
        else:
            params = list(model.parameters())
            opt = torch.optim.Adam(params, lr=3e-4, eps=1e-5)
        loss_fn = torch.compile(ppo.ppo_losses) if compiled else ppo.ppo_losses
        beta, out_old = torch.tensor(1.0), torch.zeros(B, 3)

        def step():
            mb = torch.randint(0, B, (M,))
            pg, v, ent, _, _ = loss_fn(model, obs[mb], act[mb], logp_old[mb], adv[mb], v_old[mb], ret[mb], out_old[mb],
                                       model.log_std.detach(), beta, "clip", 0.2, True, True)
            opt.zero_grad(set_to_none=not flat)
            (pg + 0.5 * v).backward()
            nn.utils.clip_grad_norm_(params, 0.5)
            opt.step()
        return step
    rows.append(("minibatch update, per-tensor Adam (CleanRL's way)", per_call_us(updater(False, False), 1000), 0))
    rows.append(("minibatch update, flat parameters + fused Adam (default)", per_call_us(updater(True, False), 1000), 320))
    rows.append(("minibatch update, flat + fused + --compile", per_call_us(updater(True, True), 1000), 0))

    print("| piece | µs per call | calls per iteration in ppo.py | ms per iteration |")
    print("| --- | --- | --- | --- |")
    for name, us, calls in rows:
        print(f"| {name} | {us:,.0f} | {calls or '—'} | {us * calls / 1000:,.0f} |" if calls else f"| {name} | {us:,.0f} | — | — |")


if __name__ == "__main__":
    main()
