"""Measure the variance of reinforce.py's gradient estimators on the same policy and the same trajectories.

    python benchmark/bench_reinforce_variance.py                    # CartPole-v1, ~2 min on one core

For each stage (a policy trained by reinforce.py's defaults for `--stages` steps; the first stage is one batch,
so it is close to the initial policy), the script freezes π_θ (and its observation normalisation and V_φ), samples
`--batches` independent batches of whole episodes (each ≥ batch_steps steps, as in training), and computes on every
batch the estimate ĝ of ∇_θ J of each estimator, all from the same trajectories:

    total              ψ = r(τ)                    (notes 003's first REINFORCE)
    reward_to_go       ψ = Q̂_t
    rtg + average      ψ = Q̂_t − leave-one-out average reward-to-go at step t
    rtg + value        ψ = Q̂_t − V_φ(s_t), V_φ the critic trained with the policy
    rtg + value + norm the same, standardised over the batch (the default of reinforce.py)

and reports tr Cov[ĝ] (the summed variance over all policy parameters), ‖E ĝ‖², and their ratio, the relative
variance: the number of batches you would need to average for the noise to equal the signal. The ratio is free of
the estimator's scale, so the normalised estimator (whose scale differs) compares fairly. Results go to
benchmark/results/reinforce/reinforce_variance.json and docs/reinforce.md's table row(s) are printed.
"""
import argparse
import json
import os
import shlex
import sys
import tempfile

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import reinforce  # noqa: E402  (a benchmark may import the script it measures)

ESTIMATORS = ["total", "reward_to_go", "rtg + average", "rtg + value", "rtg + value + norm"]


def sample_batch(env, actor_np, std, obs_rms, args, rng, discrete, low, high):
    """Whole episodes of the frozen policy until ≥ batch_steps steps: obs (B, d), actions, rewards, dones, lengths."""
    obs_l, act_l, rew_l, done_l, lengths = [], [], [], [], []
    while len(rew_l) < args.batch_steps:
        raw, _ = env.reset(seed=int(rng.integers(2**31)))
        done, n = False, 0
        while not done:
            obs = reinforce.normalize_obs(np.asarray(raw)[None], obs_rms, args.clip_obs)
            out = reinforce.numpy_mlp(actor_np, obs)
            if discrete:
                action = reinforce.gumbel_max_sample(out, rng.random(out.shape))[0]
                env_action = action
            else:
                action = (out + std * rng.standard_normal(out.shape).astype(np.float32))[0]
                env_action = np.clip(action, low, high)
            raw, reward, terminated, truncated, _ = env.step(env_action)
            done = terminated or truncated
            obs_l.append(obs[0]), act_l.append(action), rew_l.append(float(reward)), done_l.append(float(done))
            n += 1
        lengths.append(n)
    return (np.stack(obs_l), np.asarray(act_l), np.asarray(rew_l), np.asarray(done_l), np.asarray(lengths))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--stages", type=int, nargs="+", default=[2000, 10000, 30000],
                        help="training steps of the policies measured (reinforce.py defaults, seed --seed)")
    parser.add_argument("--batches", type=int, default=100, help="independent batches per stage")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--name", default="reinforce_variance")
    opts = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(opts.seed)
    result = {"env": opts.env, "batches": opts.batches, "seed": opts.seed,
              "command": "python benchmark/bench_reinforce_variance.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
              "stages": []}

    for stage in opts.stages:
        with tempfile.TemporaryDirectory() as tmp:
            args = reinforce.Args(env=opts.env, seed=opts.seed, total_timesteps=stage, eval_episodes=0, runs_dir=tmp)
            trained = reinforce.main(args)
            env = reinforce.make_env(opts.env)
            obs_dim, act_dim, discrete = reinforce.check_spaces(env, opts.env)
            agent, obs_rms = reinforce.load_checkpoint(os.path.join(trained["run_dir"], "model.pt"), args,
                                                       obs_dim, act_dim, discrete, torch.device("cpu"))
        low, high = (None, None) if discrete else (env.action_space.low, env.action_space.high)
        actor_np = reinforce.numpy_weights(agent.actor)
        std = None if discrete else torch.exp(agent.log_std).detach().numpy()
        params = list(agent.actor.parameters()) + ([] if discrete else [agent.log_std])
        grads = {name: [] for name in ESTIMATORS}
        batch_returns = []
        for _ in range(opts.batches):
            obs, actions, rewards, dones, lengths = sample_batch(env, actor_np, std, obs_rms, args, rng,
                                                                 discrete, low, high)
            batch_returns.append(rewards.sum() / len(lengths))
            rtg = reinforce.reward_to_go(rewards, dones, args.gamma)
            with torch.no_grad():
                v = agent.value(torch.from_numpy(obs)).numpy().astype(np.float64)
            psis = {
                "total": reinforce.total_return(rtg, lengths),
                "reward_to_go": rtg,
                "rtg + average": rtg - reinforce.average_baseline(rtg, lengths, per_step=True),
                "rtg + value": rtg - v,
                "rtg + value + norm": reinforce.normalize(rtg - v),
            }
            logp = agent.log_prob(torch.from_numpy(obs), torch.from_numpy(actions))
            for name, psi in psis.items():
                loss = reinforce.pseudo_loss(logp, torch.as_tensor(psi, dtype=torch.float32), len(lengths))
                g = torch.autograd.grad(loss, params, retain_graph=True)
                grads[name].append(-torch.cat([x.reshape(-1) for x in g]).numpy())  # ĝ = −∇L̃
        env.close()
        rows = {}
        for name, gs in grads.items():
            gs = np.asarray(gs, np.float64)  # (batches, parameters)
            mean = gs.mean(0)
            trace_cov = float(gs.var(0, ddof=1).sum())
            # ‖E ĝ‖² estimated without the noise's upward bias: E‖ḡ‖² = ‖E ĝ‖² + tr Cov / M
            signal = float(mean @ mean - trace_cov / len(gs))
            rows[name] = {"trace_cov": trace_cov, "mean_norm_sq": signal,
                          "relative_variance": trace_cov / signal if signal > 0 else None}
        reference = np.asarray(grads["rtg + value"]).mean(0)
        for name in ESTIMATORS:
            m = np.asarray(grads[name]).mean(0)
            rows[name]["cosine_to_rtg_value_mean"] = float(m @ reference / (np.linalg.norm(m) * np.linalg.norm(reference)))
        result["stages"].append({"training_steps": trained["env_steps"], "mean_episode_return": float(np.mean(batch_returns)),
                                 "estimators": rows})
        print(f"\nstage: policy after {trained['env_steps']:,} training steps, episodes return {np.mean(batch_returns):.1f}")
        print("| estimator | tr Cov[ĝ] | ‖E ĝ‖² | relative variance | cos(E ĝ, E ĝ_rtg+value) |")
        print("| --- | --- | --- | --- | --- |")
        for name, row in rows.items():
            rel = "n/a" if row["relative_variance"] is None else f"{row['relative_variance']:.3g}"
            print(f"| {name} | {row['trace_cov']:.4g} | {row['mean_norm_sq']:.4g} | {rel} | {row['cosine_to_rtg_value_mean']:.2f} |")

    out = os.path.join(ROOT, "benchmark", "results", "reinforce", f"{opts.name}.json")
    with open(out + ".tmp", "w") as f:
        json.dump(result, f, indent=2)
    os.replace(out + ".tmp", out)
    print(f"\nwritten {os.path.relpath(out, ROOT)}")


if __name__ == "__main__":
    main()
