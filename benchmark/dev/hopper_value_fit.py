"""Development: fit a terminal value V(s) for mppi_hopper_dev.py --value from episodes it recorded (--record).

V(s_t) ≈ Σ_{j≥0} γ^j r_{t+j}, the discounted shaped reward the planner itself collected from s_t on (Monte-Carlo
targets, POLO's idea without its fitted backups); after a fall every later step costs --dead, so the fall's state
gets −dead/(1−γ). An episode that lived its 1000 steps has no known tail: its last 100 steps are dropped and the
rest bootstrapped with the mean of its last 50 rewards as if it went on forever. A tanh MLP (11 → 64 → 64 → 1).
The state s_t is the one after step t and its target starts with that step's reward, which the planner's H-step sum
already holds for s_H: the value counts the last step twice (one step of ~50 in its effective horizon).

    python benchmark/dev/hopper_value_fit.py --out /tmp/value.npz /tmp/rec/*.npz
"""
import argparse
import os
import sys

import numpy as np
import torch

p = argparse.ArgumentParser()
p.add_argument("files", nargs="+"); p.add_argument("--out", required=True)
p.add_argument("--gamma", type=float, default=0.98); p.add_argument("--dead", type=float, default=30.)
p.add_argument("--steps", type=int, default=3000)
a = p.parse_args()
X, Y, groups = [], [], []
for i, f in enumerate(a.files):
    try:
        d = np.load(f)
        obs, r, fell = d["obs"], d["r"], bool(d["fell"])
    except (OSError, ValueError, KeyError) as err:
        sys.exit(f"hopper_value_fit.py: error: {f} is not a file written by mppi_hopper_dev.py --record ({err})")
    # G_t = r_t + γ·G_{t+1}, from the value after the last recorded step: a fall's −dead/(1−γ) (its own r_T = −dead,
    # so G_T = −dead + γ·(−dead/(1−γ)) = −dead/(1−γ) as well), or the bootstrap of an episode that lived
    G, g = np.zeros(len(r)), (-a.dead if fell else r[-50:].mean()) / (1 - a.gamma)
    for t in range(len(r) - 1, -1, -1):
        G[t] = g = r[t] + a.gamma * g
    keep = len(r) if fell else max(len(r) - 100, 0)
    X.append(obs[:keep]); Y.append(G[:keep]); groups += [i] * keep
X, Y, groups = np.concatenate(X), np.concatenate(Y), np.array(groups)
val = groups % 10 == 0  # every tenth episode held out
mu, sd = X.mean(0), X.std(0) + 1e-6
rmu, rsd = Y.mean(), Y.std() + 1e-6
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Linear(11, 64), torch.nn.Tanh(), torch.nn.Linear(64, 64), torch.nn.Tanh(),
                          torch.nn.Linear(64, 1))
opt = torch.optim.Adam(net.parameters(), lr=1e-3)
xt = torch.tensor((X - mu) / sd, dtype=torch.float32); yt = torch.tensor((Y - rmu) / rsd, dtype=torch.float32)
tr, va = torch.tensor(~val), torch.tensor(val)
for it in range(a.steps):
    idx = torch.nonzero(tr)[:, 0][torch.randint(int(tr.sum()), (512,))]
    loss = (net(xt[idx])[:, 0] - yt[idx]).pow(2).mean()
    opt.zero_grad(); loss.backward(); opt.step()
    if it % 500 == 0 or it == a.steps - 1:
        with torch.no_grad():
            vl = (net(xt[va])[:, 0] - yt[va]).pow(2).mean().item() if va.any() else float("nan")
        print(f"{it} train {loss.item():.3f} held-out {vl:.3f} (fraction of the targets' variance)")
W = [m for m in net if isinstance(m, torch.nn.Linear)]
out = dict(mu=mu, sd=sd, rmu=rmu, rsd=rsd, gamma=a.gamma)
for i, m in enumerate(W):
    out[f"W{i}"] = m.weight.detach().numpy().astype(np.float64)
    out[f"b{i}"] = m.bias.detach().numpy().astype(np.float64)
with open(a.out + ".tmp", "wb") as f:  # atomic: an interrupted run leaves no half-written file
    np.savez(f, **out)
os.replace(a.out + ".tmp", a.out)
print(f"{len(Y)} states from {len(a.files)} episodes ({int(val.sum())} held out); "
      f"targets {Y.min():.0f} to {Y.max():.0f}")
