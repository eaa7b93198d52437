"""Print the table of experts/README.md from each expert's demos.npz metadata:  python experts/summarize.py"""
import glob
import json
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
print("| env | demos (25 episodes) | ending early | on the 50 evaluation seeds: random · demonstrator · policy.pt2 "
      "| size | command |")
print("| --- | --- | --- | --- | --- | --- |")
for path in sorted(glob.glob(os.path.join(HERE, "*", "demos.npz"))):
    folder = os.path.dirname(path)
    with np.load(path) as demos:
        meta = json.loads(str(demos["metadata"]))
        early = int((demos["terminations"]).sum())  # episodes that end before the time limit
    ref = meta["reference"]
    size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder)) / 1024
    print(f"| {meta['env_id']} | {meta['demonstrator']}: {meta['return_mean']:.1f} ± {meta['return_std']:.1f} "
          f"| {early} of {meta['episodes']} | {np.mean(ref['random_returns']):.1f} · {np.mean(ref['expert_returns']):.1f}"
          f" · {np.mean(ref['policy_returns']):.1f} | {size / 1024:.1f} MB | `{meta['command']}` |")
