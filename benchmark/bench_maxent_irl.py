"""Benchmark of maxent_irl.py: docs/maxent_irl.md's tables.

    python benchmark/bench_maxent_irl.py                # everything (a few minutes on one CPU core)
    python benchmark/bench_maxent_irl.py --table-only   # reprint the tables from benchmark/results/maxent_irl/maxent_irl.json
    python benchmark/bench_maxent_irl.py --part timing  # rerun part 2 only (on an idle machine), keep part 1

Part 1, demonstrations: EVD and reward correlation against the number m of expert demonstrations, on the built-in
10×10 gridworld (deterministic) and FrozenLake-v1 (slippery), seeds 1-3, 200 iterations, defaults otherwise
(one-hot features, linear reward, --backup soft). EVD is exact (from the known model): the expert's true return minus
that of the MaxEnt-optimal policy under the learned reward; "hard EVD" plans under the same reward by value iteration.
Also FrozenLake-v1 with notes 000's backward pass as printed (--backup ziebart), 200 demos.

Part 2, time per iteration (one backward pass, one forward pass, one gradient step) on N×N gridworlds with H = 2N,
--slip 0.1 (5 successors per state-action), float64, on this machine's CPU with 1 thread (and on CUDA if present):
the passes are tensor operations over (S, A, K), with a Python loop over the H steps only.
Part 3, methods: MaxEnt beside max-margin feature matching (notes 001's IRL v1: --margin visits with C = 10, the
default; --margin uniform, the notes' plain version; C = 10⁶, a hard margin) and Abbeel & Ng's projection method, on
the same demos (200, seeds 1-3) of the gridworld and FrozenLake-v1, from the optimal expert and from a noisily optimal
one (--expert-noise 0.3: a random action 30% of the time), 200 iterations or rounds. EVD and the fraction of the
expert are the answer's (MaxEnt: its MaxEnt-optimal policy; max-margin: the optimal policy under r_w; projection: the
mixture); the feature gap is ‖μ̃ − μ(answer)‖₁ (of H visits, one-hot features).
Part 4, rewards on actions and transitions: Taxi-v4 (pays −10 for an illegal pick-up or drop-off, +20 for the
delivery) and CliffWalking-v1 (−100 for a step into the cliff), which R(s) cannot express, with --reward-on transition
and state-action (one-hot features), beside FrozenLake-v1 with the same settings; 200 demos, seeds 1-3, 200 iterations.
Writes benchmark/results/maxent_irl/maxent_irl.json.
    python benchmark/bench_maxent_irl.py --part methods   # rerun part 3 only, keep the others (also: --part rewards)
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import maxent_irl  # noqa: E402

RESULTS = os.path.join(ROOT, "benchmark", "results", "maxent_irl", "maxent_irl.json")
RUNS = os.path.join(ROOT, "benchmark", "runs", "maxent_irl")
DEMOS = [1, 2, 5, 10, 20, 50, 100, 200]
SEEDS = [1, 2, 3]
ENVS = ["gridworld", "FrozenLake-v1"]
SIZES = [10, 50, 100]


def demos_part() -> list:
    rows = []
    configs = [(env, m, "soft") for env in ENVS for m in DEMOS] + [("FrozenLake-v1", 200, "ziebart")]
    for env, m, backup in configs:
        runs = []
        for seed in SEEDS:
            s = maxent_irl.main(maxent_irl.Args(env=env, num_demos=m, seed=seed, backup=backup, iterations=200,
                                                eval_episodes=0, save_model=False, runs_dir=RUNS, log_every=200))
            runs.append({k: s[k] for k in ("seed", "evd", "evd_hard", "reward_corr", "expert_return",
                                            "learned_policy_return", "expert_fraction")})
        rows.append({"env": env, "num_demos": m, "backup": backup, "runs": runs,
                     "command": f"python maxent_irl.py --env {env} --num-demos {m} --backup {backup} --seed {{1,2,3}}"})
        print(f"{env} m={m} {backup}: EVD {np.mean([r['evd'] for r in runs]):.4f}", flush=True)
    return rows


METHODS = [("maxent", {}), ("max-margin", {}), ("max-margin", {"margin": "uniform"}),
           ("max-margin", {"slack_c": 1e6}), ("projection", {})]


def methods_part() -> list:
    rows = []
    for env in ENVS:
        for noise in (0.0, 0.3):
            for method, extra in METHODS:
                runs = []
                for seed in SEEDS:
                    s = maxent_irl.main(maxent_irl.Args(env=env, seed=seed, method=method, expert_noise=noise,
                                                        iterations=200, eval_episodes=0, save_model=False,
                                                        runs_dir=RUNS, log_every=200, **extra))
                    runs.append({k: s[k] for k in ("seed", "evd", "expert_fraction", "feature_gap", "reward_corr",
                                                    "policies_found", "slack", "wall_time_s", "demo_return_mean",
                                                    "expert_return")})
                flags = " ".join(f"--{k.replace('_', '-')} {v:g}" if isinstance(v, float) else f"--{k} {v}"
                                 for k, v in extra.items())
                rows.append({"env": env, "expert_noise": noise, "method": method, "extra": extra, "runs": runs,
                             "command": f"python maxent_irl.py --env {env} --method {method} {flags} "
                                        f"--expert-noise {noise:g} --seed {{1,2,3}}".replace("  ", " ")})
                print(f"{env} noise {noise} {method} {extra}: EVD {np.mean([r['evd'] for r in runs]):.4f}", flush=True)
    return rows


def rewards_part() -> list:
    rows = []
    for env in ["Taxi-v4", "CliffWalking-v1", "FrozenLake-v1"]:
        for reward_on in ["transition", "state-action"] + (["state"] if env == "FrozenLake-v1" else []):
            runs = []
            for seed in SEEDS:
                s = maxent_irl.main(maxent_irl.Args(env=env, seed=seed, reward_on=reward_on, iterations=200,
                                                    eval_episodes=100, save_model=False, runs_dir=RUNS, log_every=200))
                runs.append({k: s[k] for k in ("seed", "evd", "expert_fraction", "reward_corr", "expert_return",
                                                "learned_policy_return", "eval_return_mean", "wall_time_s")})
            rows.append({"env": env, "reward_on": reward_on, "runs": runs,
                         "command": f"python maxent_irl.py --env {env} --reward-on {reward_on} --seed {{1,2,3}}"})
            print(f"{env} {reward_on}: EVD {np.mean([r['evd'] for r in runs]):.4f}", flush=True)
    return rows


def timing_part(device: str) -> list:
    torch.set_num_threads(1)
    rows = []
    for n in SIZES:
        env = maxent_irl.GridWorld(n, slip=0.1)
        t0 = time.perf_counter()
        mdp = maxent_irl.tabular_model(env, "gridworld")
        build_s = time.perf_counter() - t0
        to = lambda x: torch.as_tensor(x, dtype=torch.float64, device=device)  # noqa: E731
        next_state, prob = torch.as_tensor(mdp["next_state"], device=device), to(mdp["prob"])
        features = to(maxent_irl.state_features("onehot", env, "gridworld"))
        model = maxent_irl.RewardModel(features, "linear", 1).to(device, torch.float64)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
        start, demo_visits = to(mdp["p0"]), to(mdp["p0"]) * 2 * n  # stand-in data: the timing does not depend on it
        horizon, times = 2 * n, []
        for _ in range(6):
            t0 = time.perf_counter()
            reward = model()
            with torch.no_grad():
                log_pi, _ = maxent_irl.backward_pass(reward, next_state, prob, horizon)
                visits = maxent_irl.forward_pass(log_pi, next_state, prob, start).sum(0)
            optimizer.zero_grad()
            (-((demo_visits - visits) * reward).sum()).backward()
            optimizer.step()
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        rows.append({"grid": n, "states": n * n, "horizon": horizon, "successors": int(mdp["next_state"].shape[2]),
                     "device": device, "ms_per_iteration": 1000 * statistics.median(times[1:]),
                     "model_build_s": build_s})
        print(f"{n}×{n} on {device}: {rows[-1]['ms_per_iteration']:.1f} ms per iteration", flush=True)
    return rows


def tables(results: dict) -> None:
    print("\n| env | backup | demos | EVD (MaxEnt policy) | fraction of expert | EVD (hard max) | reward corr. |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for row in results["demos"]:
        runs = row["runs"]
        f = lambda k: f"{np.mean([r[k] for r in runs]):.3f} ± {np.std([r[k] for r in runs]):.3f}"  # noqa: E731
        print(f"| {row['env']} | {row['backup']} | {row['num_demos']} | {f('evd')} | {f('expert_fraction')} | "
              f"{f('evd_hard')} | {f('reward_corr')} |")
    if "methods" in results:
        print("\n| env | demonstrator | method | fraction of expert | EVD | feature gap ‖μ̃ − μ‖₁ | reward corr. | "
              "policies | demos' own fraction |")
        print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for row in results["methods"]:
            runs = row["runs"]
            f = lambda k, d=3: f"{np.mean([r[k] for r in runs]):.{d}f} ± {np.std([r[k] for r in runs]):.{d}f}"  # noqa
            name = row["method"] + "".join(f", {k.replace('_', ' ')} {v:g}" if isinstance(v, float) else f", {v} D"
                                           for k, v in row["extra"].items())
            who = "optimal" if row["expert_noise"] == 0 else f"noisy ({row['expert_noise']:g})"
            demos = np.mean([r["demo_return_mean"] / r["expert_return"] for r in runs])
            policies = "—" if row["method"] == "maxent" else f"{np.mean([r['policies_found'] for r in runs]):.0f}"
            print(f"| {row['env']} | {who} | {name} | {f('expert_fraction')} | {f('evd')} | {f('feature_gap', 2)} | "
                  f"{f('reward_corr')} | {policies} | {demos:.2f} |")
    if "rewards" in results:
        print("\n| env | reward on | expert's return | learned policy's return (exact) | EVD | in the env (100 episodes) "
              "| reward corr. |")
        print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
        for row in results["rewards"]:
            runs = row["runs"]
            f = lambda k, d=3: f"{np.mean([r[k] for r in runs]):.{d}f} ± {np.std([r[k] for r in runs]):.{d}f}"  # noqa
            print(f"| {row['env']} | {row['reward_on']} | {runs[0]['expert_return']:.3f} | "
                  f"{f('learned_policy_return')} | {f('evd')} | {f('eval_return_mean', 2)} | {f('reward_corr')} |")
    print("\n| grid | states | H | device | ms per iteration |")
    print("| --- | ---: | ---: | --- | ---: |")
    for row in results["timing"]:
        print(f"| {row['grid']}×{row['grid']} | {row['states']:,} | {row['horizon']} | {row['device']} | "
              f"{row['ms_per_iteration']:.1f} |")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--table-only", action="store_true")
    parser.add_argument("--part", choices=["all", "demos", "timing", "methods", "rewards"], default="all",
                        help="rerun one part, keeping the other from the results file")
    cli = parser.parse_args()
    if cli.table_only:
        with open(RESULTS) as f:
            tables(json.load(f))
        return
    torch.set_num_threads(1)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    results = {}
    if cli.part != "all":
        with open(RESULTS) as f:
            results = json.load(f)
    if cli.part in ("all", "demos"):
        results["demos"] = demos_part()
    if cli.part in ("all", "methods"):
        results["methods"] = methods_part()
    if cli.part in ("all", "rewards"):
        results["rewards"] = rewards_part()
    if cli.part in ("all", "timing"):
        results["timing"] = [row for d in devices for row in timing_part(d)]
    results.update({"command": "python benchmark/bench_maxent_irl.py", "torch": torch.__version__})
    tmp = RESULTS + ".tmp"
    with open(tmp, "w") as f:
        json.dump(results, f, indent=1)
    os.replace(tmp, RESULTS)
    tables(results)


if __name__ == "__main__":
    main()
