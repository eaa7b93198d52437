"""Print the table of experts/README.md from each expert's demos.npz metadata:  python experts/summarize.py"""
import glob
import json
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
print("| env | action space | demo return (25 episodes) | size | command |")
print("| --- | --- | --- | --- | --- |")
for path in sorted(glob.glob(os.path.join(HERE, "*", "demos.npz"))):
    folder = os.path.dirname(path)
    meta = json.loads(str(np.load(path)["metadata"]))
    size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder)) / 1024
    print(f"| {meta['env_id']} | {meta['action_space']} | {meta['return_mean']:.1f} ± {meta['return_std']:.1f} "
          f"| {size:.0f} KB | `{meta['command']}` |")
