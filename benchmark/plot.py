"""Learning curves of a benchmark from its runs' TensorBoard events:

    pip install matplotlib     # only the plots need it
    python benchmark/plot.py ppo_hopper_1m [more names...]

Reads benchmark/runs/<name>/*/events.*, plots charts/episodic_return against env steps (each seed thin,
the mean over seeds on a common grid thick) and writes benchmark/results/<script>/<names>.png (the script of the first
name's runs).
"""
import glob
import os
import sys

import matplotlib
import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def curves(name: str) -> list:
    out = []
    for run in sorted(glob.glob(os.path.join(ROOT, "benchmark", "runs", name, "*", ""))):
        acc = EventAccumulator(run, size_guidance={"scalars": 0})
        acc.Reload()
        events = acc.Scalars("charts/episodic_return")
        out.append((os.path.basename(run.rstrip("/")), np.array([e.step for e in events]), np.array([e.value for e in events])))
    return out


def main() -> None:
    names = sys.argv[1:]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    script = None
    for color, name in zip(plt.rcParams["axes.prop_cycle"].by_key()["color"], names):
        runs = curves(name)
        script = script or runs[0][0].split("__")[1]  # run directories are <env>__<script>__<seed>__<time>
        grid = np.linspace(0, min(steps[-1] for _, steps, _ in runs), 200)
        smoothed = []
        for _, steps, values in runs:
            # mean of the last 100 finished episodes at each step, as the summaries report
            means = np.array([values[max(0, i - 99):i + 1].mean() for i in range(len(values))])
            ax.plot(steps, means, color=color, alpha=0.25, linewidth=1)
            smoothed.append(np.interp(grid, steps, means))
        ax.plot(grid, np.mean(smoothed, axis=0), color=color, linewidth=2, label=f"{name} (mean of {len(runs)} seeds)")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("training return (mean of last 100 episodes)")
    ax.grid(alpha=0.3)
    ax.legend()
    os.makedirs(os.path.join(ROOT, "benchmark", "results", script), exist_ok=True)
    out = os.path.join(ROOT, "benchmark", "results", script, "_".join(names) + ".png")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(out)


if __name__ == "__main__":
    main()
