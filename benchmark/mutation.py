"""Mutation check: does the fast suite catch the one-line slips a copy of these scripts is likely to carry?

Each mutant below is one realistic edit of one line of one script (a swapped flag, a dropped line, a sign, γ for γλ,
min for max, a density of the wrong set, ...). For each, this tool copies the project into a temporary folder, makes
that edit there, and runs the script's fast tests alone: tests/test_<script>_math.py, _cli.py and _bookkeeping.py
(not the learning tests, and not test_design.py, whose shared-block check would "kill" an edit of a shared block
without saying anything about behaviour). A mutant is killed when those tests fail; one that survives is a line the
suite does not guard. The unmutated copy must pass the same tests first.

    python benchmark/mutation.py                 # every mutant, two at a time; prints the kill table
    python benchmark/mutation.py --script ppo    # one script's mutants
    python benchmark/mutation.py --list          # the mutants, without running anything

Results are kept in benchmark/results/tests/mutation.json, keyed by a hash of the mutated script and of the tests that
ran, so an interrupted run resumes and an unchanged mutant is not run again (--fresh forgets them).
Run by hand, not in CI: each mutant costs one run of a script's fast tests (seconds to a minute on 2 cores).
"""
import argparse
import concurrent.futures
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmark", "results", "tests", "mutation.json")
TIMEOUT_S = 900

# (script, id, what the slip is, the exact text in the script, what it becomes). The text must occur exactly once.
MUTANTS = [
    # ── ppo.py
    ("ppo", "gae-dones-as-terminated", "time limits treated as terminal: done_buf passed where term_buf goes",
     "term_buf, done_buf, args.gamma, args.gae_lambda)", "done_buf, done_buf, args.gamma, args.gae_lambda)"),
    ("ppo", "gae-terminated-as-dones", "the advantage sum runs on across episode ends: term_buf passed as dones",
     "term_buf, done_buf, args.gamma, args.gae_lambda)", "term_buf, term_buf, args.gamma, args.gae_lambda)"),
    ("ppo", "final-obs-dropped", "the line that stores infos['final_obs'] deleted: bootstrap from the next episode's s_0",
     "next_obs_buf[t, i] = normalize_obs(infos[\"final_obs\"][i], obs_rms, args.clip_obs)", "pass"),
    ("ppo", "gradient-not-all-reduced", "under torchrun, each rank steps on its own minibatch gradient",
     "                    ranks.mean_(flat_params.grad)\n", "                    pass\n"),
    ("ppo", "statistics-not-merged", "under torchrun, each rank keeps its own observation and return statistics",
     "merge_moments(rms, self.ranks.gather((new.mean, new.var, new.count)))",
     "merge_moments(rms, [(new.mean, new.var, new.count)])"),
    ("ppo", "advantages-standardised-per-rank", "under torchrun, Â standardised over this rank's share alone",
     "    ranks.sum_(sums)  # (M, 3)\n", "    pass\n"),
    ("ppo", "resume-rank-0-state-everywhere", "torchrun --resume gives every rank rank 0's envs and generators",
     'checkpoint["ranks"][self.rank]', 'checkpoint["ranks"][0]'),
    ("ppo", "async-next-step-autoreset", "--vector-env async made with gymnasium's default NEXT_STEP autoreset",
     "AsyncVectorEnv([in_worker] * n, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)",
     "AsyncVectorEnv([in_worker] * n, autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP)"),
    ("ppo", "final-obs-unnormalised", "the final observation stored raw, not normalised",
     "next_obs_buf[t, i] = normalize_obs(infos[\"final_obs\"][i], obs_rms, args.clip_obs)",
     "next_obs_buf[t, i] = infos[\"final_obs\"][i]"),
    ("ppo", "gae-gamma-for-gamma-lambda", "GAE recursion with γ instead of γλ",
     "last = deltas[t] + gamma * lam * (1.0 - dones[t]) * last", "last = deltas[t] + gamma * (1.0 - dones[t]) * last"),
    ("ppo", "returns-without-values", "value target R̂ = Â instead of Â + V",
     "returns = advantages + values_np  # R̂_t", "returns = advantages  # R̂_t"),
    ("ppo", "clip-min-to-max", "L^CLIP with max instead of min", "return -torch.min(unclipped, clipped).mean()",
     "return -torch.max(unclipped, clipped).mean()"),
    ("ppo", "ratio-inverted", "r_t = π_θk/π_θ", "log_ratio = logp - logp_old", "log_ratio = logp_old - logp"),
    ("ppo", "vclip-max-to-min", "clipped value loss with min instead of max",
     "return 0.5 * torch.max((v - returns).pow(2), (v_clipped - returns).pow(2)).mean()",
     "return 0.5 * torch.min((v - returns).pow(2), (v_clipped - returns).pow(2)).mean()"),
    ("ppo", "kl-beta-direction", "adaptive β moves the wrong way when the KL is too small",
     "        return beta / factor\n    if kl > kl_target * tolerance:", "        return beta * factor\n    if kl > kl_target * tolerance:"),
    ("ppo", "entropy-sign", "entropy bonus subtracted from the objective",
     "loss = pg_loss + args.vf_coef * v_loss - args.ent_coef * entropy", "loss = pg_loss + args.vf_coef * v_loss + args.ent_coef * entropy"),
    ("ppo", "discounted-return-not-reset", "reward scaling's running return not reset at an episode end",
     "ep_return[i], ep_length[i], discounted_return[i] = 0.0, 0, 0.0", "ep_return[i], ep_length[i] = 0.0, 0"),
    ("ppo", "episode-return-not-reset", "the logged training return runs on across episodes",
     "ep_return[i], ep_length[i], discounted_return[i] = 0.0, 0, 0.0", "ep_length[i], discounted_return[i] = 0, 0.0"),
    ("ppo", "obs-rms-not-updated", "the observation statistics never see the rollout",
     "                if obs_rms is not None:\n                    shared_stats.update_obs(raw_next_obs)\n",
     "                if obs_rms is not None:\n                    pass\n"),
    ("ppo", "eval-without-sqrt", "the deployed policy divides by σ² instead of σ",
     "x = torch.clamp((obs - self.obs_mean) / torch.sqrt(self.obs_var + self.eps), -self.clip_obs, self.clip_obs)",
     "x = torch.clamp((obs - self.obs_mean) / (self.obs_var + self.eps), -self.clip_obs, self.clip_obs)"),
    ("ppo", "stored-action-clipped", "the batch keeps the clipped action instead of the sampled one",
     "act_buf[t] = action\n\n                raw_next_obs, reward,", "act_buf[t] = env_action\n\n                raw_next_obs, reward,"),
    ("ppo", "reward-scaled-by-var", "rewards divided by the return variance instead of its std",
     "reward = np.clip(reward / np.sqrt(ret_rms.var + 1e-8), -args.clip_reward, args.clip_reward)",
     "reward = np.clip(reward / (ret_rms.var + 1e-8), -args.clip_reward, args.clip_reward)"),
    ("ppo", "delta-bootstrap-on-dones", "δ_t zeroes the bootstrap at time limits too (in compute_gae)",
     "deltas = rewards + gamma * (1.0 - terminated) * next_values - values",
     "deltas = rewards + gamma * (1.0 - dones) * next_values - values"),
    # ── gail.py
    ("gail", "gae-dones-as-terminated", "time limits treated as terminal in the policy's GAE",
     "term_buf, done_buf, args.gamma, args.gae_lambda)", "done_buf, done_buf, args.gamma, args.gae_lambda)"),
    ("gail", "final-obs-dropped", "the final observation not stored: bootstrap from the next episode's s_0",
     "next_obs_buf[t, i] = normalize_obs(infos[\"final_obs\"][i], obs_rms, args.clip_obs)", "pass"),
    ("gail", "labels-swapped", "D trained with the policy as the positive class",
     "d_loss = discriminator_loss(logits_e, logits_p)", "d_loss = discriminator_loss(logits_p, logits_e)"),
    ("gail", "reward-of-expert-pairs", "the policy's reward computed on the expert's pairs",
     "learned = gail_reward(logits_p, args.reward_form)", "learned = gail_reward(logits_e, args.reward_form)"),
    ("gail", "d-sees-per-step-normalisation", "D reads the policy's states as normalised at their own step",
     "x_policy = discriminator_input(policy_obs, b_actions,", "x_policy = discriminator_input(b_obs, b_actions,"),
    ("gail", "positive-reward-sign", "−log(1 − D) written as log(1 − D)",
     "        return nn.functional.softplus(logits)\n", "        return -nn.functional.softplus(logits)\n"),
    ("gail", "disc-loss-sign", "D's loss pushes the policy's pairs up",
     "nn.functional.softplus(-logits_expert).mean() + nn.functional.softplus(logits_policy).mean()",
     "nn.functional.softplus(-logits_expert).mean() + nn.functional.softplus(-logits_policy).mean()"),
    ("gail", "gp-interpolation", "the gradient penalty's x̂ not between the two sets",
     "x_hat = (eps * x_expert + (1 - eps) * x_policy)", "x_hat = (eps * x_expert + eps * x_policy)"),
    ("gail", "reward-scaled-by-var", "learned rewards divided by the return variance instead of its std",
     "rewards = np.clip(learned / np.sqrt(ret_rms.var + 1e-8), -args.clip_reward, args.clip_reward)",
     "rewards = np.clip(learned / (ret_rms.var + 1e-8), -args.clip_reward, args.clip_reward)"),
    ("gail", "stored-action-clipped", "the batch keeps the clipped action, so log π is of the wrong action",
     "                act_buf[t] = action\n", "                act_buf[t] = env_action\n"),
    # ── awr.py
    ("awr", "terminated-or-truncated", "a time limit stored as a termination: no bootstrap at the cut",
     "(raw_obs, action, reward, next_raw, terminated, terminated or truncated)",
     "(raw_obs, action, reward, next_raw, terminated or truncated, terminated or truncated)"),
    ("awr", "next-obs-is-obs", "s_t stored where s_{t+1} goes",
     "(raw_obs, action, reward, next_raw, terminated, terminated or truncated)",
     "(raw_obs, action, reward, raw_obs, terminated, terminated or truncated)"),
    ("awr", "stored-action-clipped", "D keeps the executed (clipped, rescaled) action instead of the draw",
     "(raw_obs, action, reward, next_raw, terminated, terminated or truncated)",
     "(raw_obs, env_action, reward, next_raw, terminated, terminated or truncated)"),
    ("awr", "inverted-weights", "w = exp(−A/β)", "weights = awr_weights(adv, args.beta, args.weight_clip)",
     "weights = awr_weights(-adv, args.beta, args.weight_clip)"),
    ("awr", "buffer-keeps-oldest", "D (by sample) keeps its oldest samples instead of the most recent",
     "else max(0, len(buf[\"ends\"]) - args.buffer_size))", "else 0)"),
    ("awr", "buffer-of-episodes-never-trimmed", "D (of whole episodes) never drops an episode",
     "first = (whole_episodes_start(buf[\"ends\"], args.buffer_size) if args.whole_episodes",
     "first = (0 if args.whole_episodes"),
    ("awr", "episodes-last-states-left-out", "the statistics miss each episode's last state",
     "return np.insert(obs, last + 1, next_obs[last], axis=0)", "return obs"),
    ("awr", "statistics-update-before-the-fits", "π learns with statistics newer than it acted with",
     "                    if steps_before == 0:\n                        obs_rms.update(fresh_states)\n"
     "                        fresh_states = None",
     "                    obs_rms.update(fresh_states)\n                    fresh_states = None"),
    ("awr", "sgd-steps-not-scaled", "whole-episode iterations take the fixed number of SGD steps",
     "step_scale = 1.0 if args.offline else new_steps / args.samples_per_iter", "step_scale = 1.0"),
    ("awr", "end-of-buffer-not-cut", "the last sample of D continues into the first (no cut at D's end)",
     "            ends[-1] = True  #", "            pass  #"),
    ("awr", "td-lambda-weights-swapped", "R_t = r_t + γ[λV + (1 − λ)R_{t+1}]",
     "following = r[t] + gamma * ((1.0 - lam) * v_next + lam * following)",
     "following = r[t] + gamma * (lam * v_next + (1.0 - lam) * following)"),
    ("awr", "weight-clip-not-in-log-space", "min(A/β, w_max) before the exp: the clip becomes e^w_max",
     "np.minimum(adv / beta, math.log(w_max))", "np.minimum(adv / beta, w_max)"),
    ("awr", "advantage-without-baseline", "AWR weights the return, not R − V",
     "adv = returns - values if args.weighting == \"advantage\" else returns",
     "adv = returns if args.weighting == \"advantage\" else returns"),
    ("awr", "standardise-by-variance", "advantages divided by their variance, not their std",
     "return (x - x.mean()) / (x.std() + 1e-5)", "return (x - x.mean()) / (x.var() + 1e-5)"),
    # ── gcl.py
    ("gcl", "gae-dones-as-terminated", "time limits treated as terminal in the policy's GAE",
     "term_buf, done_buf, args.gamma, args.gae_lambda)", "done_buf, done_buf, args.gamma, args.gae_lambda)"),
    ("gcl", "final-obs-dropped", "the final observation not stored: bootstrap from the next episode's s_0",
     "next_obs_buf[t, i] = normalize_obs(infos[\"final_obs\"][i], obs_rms, args.clip_obs)", "pass"),
    ("gcl", "background-not-copied", "the background set keeps views of the rollout buffers",
     "\"raw_obs\": b_raw_obs.clone(), \"actions\": b_actions.clone(),", "\"raw_obs\": b_raw_obs, \"actions\": b_actions,"),
    ("gcl", "old-policy-current-stats", "a stored policy scored with this rollout's statistics instead of its own",
     "x = normalized(raw, *p[\"stats\"]).cpu().numpy()", "x = normalized(raw, *stats).cpu().numpy()"),
    ("gcl", "importance-weight-sign", "w = exp(R + log q) instead of exp(R − log q)",
     "log_w = returns_bg - log_q", "log_w = returns_bg + log_q"),
    ("gcl", "mixture-without-1-over-k", "the mixture density Σ_κ q_κ instead of (1/K) Σ_κ q_κ",
     "return torch.logsumexp(log_q_per_policy, dim=0) - math.log(log_q_per_policy.shape[0])",
     "return torch.logsumexp(log_q_per_policy, dim=0)"),
    ("gcl", "ioc-loss-sign", "the IOC loss pushes the demos' reward down",
     "return -(returns_demo.mean() - log_partition_estimate(returns_bg, log_q))",
     "return (returns_demo.mean() - log_partition_estimate(returns_bg, log_q))"),
    ("gcl", "reward-shift-max", "r − max(r) instead of r − min(r): every step a penalty",
     "        return r - r.min()", "        return r - r.max()"),
    # ── reinforce.py
    ("reinforce", "rtg-not-reset", "reward-to-go runs on across episode ends",
     "running = rewards[t] + gamma * (1.0 - dones[t]) * running", "running = rewards[t] + gamma * running"),
    ("reinforce", "loss-over-steps", "the pseudo-loss divided by the steps instead of the episodes N",
     "return -(logp * weights).sum() / num_episodes", "return -(logp * weights).sum() / len(logp)"),
    ("reinforce", "loss-sign", "gradient descent on J", "return -(logp * weights).sum() / num_episodes",
     "return (logp * weights).sum() / num_episodes"),
    ("reinforce", "bootstrap-terminated-too", "--bootstrap-truncated also bootstraps terminated episodes",
     "trunc_list.append(truncated and not terminated)", "trunc_list.append(True)"),
    ("reinforce", "baseline-added", "ψ + b instead of ψ − b", "weights = psi - baseline  # (B,)",
     "weights = psi + baseline  # (B,)"),
    ("reinforce", "average-baseline-includes-self", "the average baseline includes the episode itself",
     "    sums = (padded * counts).sum(0)[None, :] - padded * counts", "    sums = (padded * counts).sum(0)[None, :]"),
    ("reinforce", "total-return-last-step", "the total return read at each episode's last step",
     "return np.repeat(rtg[starts], lengths)", "return np.repeat(rtg[np.cumsum(lengths) - 1], lengths)"),
    # ── soft_q.py
    ("soft_q", "terminated-or-truncated", "a time limit stored as terminal in the replay buffer",
     "buf_rew[i], buf_next[i], buf_term[i] = raw_obs, action, reward, next_raw, terminated",
     "buf_rew[i], buf_next[i], buf_term[i] = raw_obs, action, reward, next_raw, terminated or truncated"),
    ("soft_q", "next-is-obs", "s stored where s' goes", "buf_rew[i], buf_next[i], buf_term[i] = raw_obs, action, reward, next_raw, terminated",
     "buf_rew[i], buf_next[i], buf_term[i] = raw_obs, action, reward, raw_obs, terminated"),
    ("soft_q", "target-bootstraps-terminal", "y = r + γV(s') even after a termination",
     "return rewards + gamma * (1.0 - terminations) * next_soft_v", "return rewards + gamma * next_soft_v"),
    ("soft_q", "soft-value-without-alpha", "V = log Σ exp(Q/α) without the α in front",
     "return alpha * torch.logsumexp(q_values / alpha, dim=-1)", "return torch.logsumexp(q_values / alpha, dim=-1)"),
    ("soft_q", "uniform-density-term", "the uniform proposal's density left out of the importance-sampled V",
     "- math.log(m) + act_dim * math.log(2.0))", "- math.log(m))"),
    ("soft_q", "svgd-surrogate-sign", "the sampler moved against the SVGD direction",
     "return -(moved * direction.detach()).sum(-1).mean(), direction", "return (moved * direction.detach()).sum(-1).mean(), direction"),
    ("soft_q", "svgd-score-through-fixed", "no detach: the score's particles are the moved ones",
     "fixed = particles[:, :half].detach().requires_grad_(True)", "fixed = particles[:, half:].detach().requires_grad_(True)"),
    ("soft_q", "squash-term-sign", "the barrier term pushes particles onto the bounds",
     "return q_values / alpha + torch.log(1 - actions.pow(2) + 1e-6).sum(-1)",
     "return q_values / alpha - torch.log(1 - actions.pow(2) + 1e-6).sum(-1)"),
    # ── dagger.py
    ("dagger", "learner-labels", "D labelled with the learner's action instead of the expert's",
     "                        labels.append(a_star[0])", "                        labels.append(a_hat[0])"),
    ("dagger", "no-aggregation", "D replaced by the newest round instead of aggregated",
     "            d_obs.append(states)\n            d_act.append(labels)",
     "            d_obs[:] = [states]\n            d_act[:] = [labels]"),
    ("dagger", "mixture-direction", "the learner acts with probability β", "from_expert = u < beta  # (T,)",
     "from_expert = u >= beta  # (T,)"),
    ("dagger", "beta-1-round-2", "the indicator schedule keeps the expert in round 2",
     "        return 1.0 if i == 1 else 0.0", "        return 1.0 if i <= 2 else 0.0"),
    ("dagger", "validation-round-trained", "the last (validation) round's states trained on",
     "            if i == args.rounds + 1:\n", "            if i == args.rounds + 2:\n"),
    ("dagger", "exponential-schedule", "β_i = p^i instead of p^(i−1)", "    return p ** (i - 1)", "    return p ** i"),
    # ── bc.py
    ("bc", "stats-from-all-episodes", "the normalisation statistics include the validation episodes",
     "obs_rms.update(raw_obs[~val_mask].astype(np.float64))", "obs_rms.update(raw_obs.astype(np.float64))"),
    ("bc", "train-on-validation", "the training pairs include the validation episodes",
     "train_obs, train_act = to_tensor(obs[~val_mask]), to_tensor(actions[~val_mask])",
     "train_obs, train_act = to_tensor(obs), to_tensor(actions)"),
    ("bc", "split-steps-not-episodes", "validation pairs drawn per step, not per episode",
     "    return np.repeat(episode_is_val, lengths)",
     "    return rng.permutation(np.repeat(episode_is_val, lengths))"),
    ("bc", "keep-worst-validation", "the θ with the highest validation loss kept",
     "if val_loss < best[\"val_loss\"]:", "if val_loss > best[\"val_loss\"] or best[\"step\"] == 0:"),
    ("bc", "last-theta-not-best", "the last θ saved instead of the best on validation",
     "        policy_net.load_state_dict(best[\"state\"])  #", "        pass  #"),
    ("bc", "mse-mean-over-dims", "the MSE averaged over action dimensions instead of summed",
     "return (actions - pred).pow(2).sum(-1).mean()", "return (actions - pred).pow(2).mean()"),
    ("bc", "nll-without-log-std", "the Gaussian NLL without its log σ term",
     "return (0.5 * z.pow(2) + log_std + 0.5 * LOG_2PI).sum(-1).mean()", "return (0.5 * z.pow(2) + 0.5 * LOG_2PI).sum(-1).mean()"),
    # ── mppi.py
    ("mppi", "weights-without-max", "softmax(R/λ) without subtracting the max: overflows",
     "    z = (returns - returns.max()) / temperature", "    z = returns / temperature"),
    ("mppi", "weights-sign", "w ∝ exp(−R/λ): the worst sample wins", "    z = (returns - returns.max()) / temperature",
     "    z = (returns.min() - returns) / temperature"),
    ("mppi", "no-warm-start-shift", "the plan is not shifted after executing u_0",
     "            plan = shift @ plan\n", "            plan = plan\n"),
    ("mppi", "target-not-delta", "the model regresses s' instead of Δs = s' − s",
     "y = np.concatenate([data[\"next_obs\"] - data[\"obs\"], data[\"rew\"]], axis=1)",
     "y = np.concatenate([data[\"next_obs\"], data[\"rew\"]], axis=1)"),
    ("mppi", "input-stats-from-holdout", "the statistics of the inputs from every transition, the held-out ones too",
     "\"obs_mean\": x_obs[train].mean(0)", "\"obs_mean\": x_obs.mean(0)"),
    ("mppi", "nll-without-logvar", "the Gaussian NLL without its log-variance term",
     "return 0.5 * ((target - mean).pow(2) * torch.exp(-logvar) + logvar).sum(-1).mean()",
     "return 0.5 * ((target - mean).pow(2) * torch.exp(-logvar)).sum(-1).mean()"),
    # ── maxent_irl.py
    ("maxent_irl", "gradient-sign", "descent on the likelihood", "            (-surrogate).backward()  # ascent on L",
     "            surrogate.backward()  # ascent on L"),
    ("maxent_irl", "start-from-all-visits", "the forward pass starts from the demos' visitation, not their starts",
     "demo_start = demo_visitation(demo_states[:, :1], num_states)", "demo_start = demo_visitation(demo_states, num_states)"),
    ("maxent_irl", "visitation-not-averaged", "D̃ summed over demos instead of averaged",
     "    return torch.bincount(demo_states.reshape(-1), minlength=num_states).to(torch.float64) / m",
     "    return torch.bincount(demo_states.reshape(-1), minlength=num_states).to(torch.float64)"),
    ("maxent_irl", "forward-pass-without-policy", "the forward pass ignores π_t (uniform actions)",
     "mass = visits[-1][:, None, None] * log_pi[t].exp()[:, :, None] * prob",
     "mass = visits[-1][:, None, None] / log_pi.shape[-1] * prob"),
    ("maxent_irl", "forward-pass-stale-visits", "D_{t+1} from D_0 instead of D_t",
     "mass = visits[-1][:, None, None] * log_pi[t].exp()[:, :, None] * prob",
     "mass = visits[0][:, None, None] * log_pi[t].exp()[:, :, None] * prob"),
    ("maxent_irl", "demo-policy-time-index", "the expert acts with π_{t+1} instead of π_t",
     "            a = int(policy[t, s])", "            a = int(policy[min(t + 1, len(policy) - 1), s])"),
    ("maxent_irl", "margin-not-halved", "D(π, π*) counts each differing visit twice",
     "    return 0.5 * (visits - demo_visits).abs().sum()", "    return (visits - demo_visits).abs().sum()"),
    ("maxent_irl", "projection-onto-line", "μ̄ leaves the segment (no longer a mixture of the policies found)",
     "min(max(float(direction @ (demo_mu - mu_bar)) / length2, 0.0), 1.0)", "float(direction @ (demo_mu - mu_bar)) / length2"),
    ("maxent_irl", "projection-mu-bar-frozen", "μ̄ is never updated",
     "                            found[\"mu_bar\"] = project_onto_segment(found[\"mu_bar\"], mu, demo_mu)",
     "                            pass"),
    ("maxent_irl", "margin-last-constraint-only", "the margin problem forgets all but the newest policy",
     "max_margin_weights(demo_mu - mus, margins, args.slack_c,",
     "max_margin_weights(demo_mu - mus[-1:], margins[-1:], args.slack_c,"),
    ("maxent_irl", "mixture-weights-below-one", "the mixture's weights may sum to less than 1",
     "(mus * demo_mu).sum(-1), 1.0, at_most=False)", "(mus * demo_mu).sum(-1), 1.0, at_most=True)"),
    ("maxent_irl", "margin-dual-uncapped", "the slack's price C is ignored (a hard margin always)",
     "alpha = solve_simplex_qp(gram, margins, slack_c, at_most=True, init=init)",
     "alpha = solve_simplex_qp(gram, margins, 1e12, at_most=True, init=init)"),
    # ── more, each guarded by a bookkeeping test
    ("ppo", "no-gradient-clipping", "the global-norm clip left out",
     "                    nn.utils.clip_grad_norm_([flat_params], args.max_grad_norm)\n", "                    pass\n"),
    ("ppo", "anneal-off-by-one", "the first iteration already at a reduced step size",
     "(1.0 - (iteration - 1.0) / num_iterations) * args.learning_rate", "(1.0 - iteration / num_iterations) * args.learning_rate"),
    ("ppo", "same-minibatch-every-time", "every minibatch is the first slice of the permutation",
     "mb = perm[start:start + minibatch_size]", "mb = perm[:minibatch_size]"),
    # ── the experts' demonstrator and the normalised score
    ("ppo", "demos-not-sampled", "the stochastic demonstrator plays its mean action",
     "action = out + std * torch.randn(out.shape, generator=gen)", "action = out + 0 * torch.randn(out.shape, generator=gen)"),
    ("ppo", "demos-unclipped", "sampled actions recorded beyond the action bounds",
     "return torch.maximum(torch.minimum(action, policy.high), policy.low).numpy()", "return action.numpy()"),
    ("ppo", "random-reference-on-demo-seeds", "the random policy's reference drawn from the demonstration seeds",
     "uniform_random_policy(action_space, args.eval_seed)", "uniform_random_policy(action_space, args.expert_seed)"),
    ("bc", "score-over-all-references", "the score's references always averaged over every stored episode",
     "n = len(returns) if same else int(reference[\"episodes\"])", "n = int(reference[\"episodes\"])"),
    ("gail", "d-never-stepped", "D's optimiser step left out", "                    disc_optimizer.step()\n",
     "                    pass\n"),
    ("awr", "obs-stats-never-freeze", "the observation statistics keep updating past --obs-norm-samples",
     "if obs_rms is not None and args.obs_norm_update == \"iteration\" and steps_before < args.obs_norm_samples:",
     "if obs_rms is not None and args.obs_norm_update == \"iteration\":"),
    ("awr", "step-stats-never-freeze", "--obs-norm-update step: the statistics keep updating past --obs-norm-samples",
     "args.obs_norm_update == \"step\" and global_step < args.obs_norm_samples:",
     "args.obs_norm_update == \"step\":"),
    ("dagger", "disagreement-with-itself", "the learner's labels recorded as the expert's: every score 0",
     "                        learner_labels.append(a_hat[0])", "                        learner_labels.append(a_star[0])"),
]


def mutant_key(script: str, mutated: str, tests: list) -> str:
    digest = hashlib.sha256(mutated.encode())
    for path in sorted(tests):
        with open(os.path.join(ROOT, path), "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()[:16]


# Fast test files beyond a script's own three that check its lines: the copies of another script's code (gail.py and
# gcl.py carry ppo.py's learner), and ppo.py's torchrun tests.
ALSO_TESTED_BY = {"gail": ["tests/test_ppo_math.py"], "gcl": ["tests/test_ppo_math.py", "tests/test_gail_math.py"],
                  "ppo": ["tests/test_ppo_distributed.py"]}


def fast_tests(script: str) -> list:
    """The script's fast tests, quickest to fail first: bookkeeping, math, then the command-line runs."""
    names = [f"tests/test_{script}_{kind}.py" for kind in ("bookkeeping", "math")] + ALSO_TESTED_BY.get(script, [])
    names.append(f"tests/test_{script}_cli.py")
    return [n for n in names if os.path.exists(os.path.join(ROOT, n))]


def helper_tests() -> list:
    """Test files every script's tests may import (helpers, toy envs): part of the key too."""
    return [os.path.join("tests", n) for n in sorted(os.listdir(os.path.join(ROOT, "tests")))
            if n.endswith(".py") and not n.startswith("test_")]


def copy_project(dest: str) -> None:
    for name in os.listdir(ROOT):  # the scripts and the top-level files (README.md serves as a non-npz file)
        if os.path.isfile(os.path.join(ROOT, name)):
            shutil.copy2(os.path.join(ROOT, name), dest)
    shutil.copytree(os.path.join(ROOT, "tests"), os.path.join(dest, "tests"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    os.symlink(os.path.join(ROOT, "experts"), os.path.join(dest, "experts"))  # read only by the tests


def run_tests(dest: str, tests: list) -> tuple:
    """(exit code, first failing test or '', seconds)."""
    env = dict(os.environ, PYTHONWARNINGS="ignore", PYTHONDONTWRITEBYTECODE="1")
    start = time.time()
    try:
        result = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                                 "-o", "addopts=", *tests], cwd=dest, env=env, capture_output=True, text=True,
                                timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return -1, "timeout", time.time() - start
    failed = re.findall(r"^FAILED (\S+)", result.stdout, re.M) or re.findall(r"^ERROR (\S+)", result.stdout, re.M)
    return result.returncode, (failed[0] if failed else ""), time.time() - start


def run_mutant(script: str, ident: str, old: str, new: str) -> dict:
    tests = fast_tests(script)
    with tempfile.TemporaryDirectory(prefix=f"mutant-{script}-") as dest:
        copy_project(dest)
        path = os.path.join(dest, f"{script}.py")
        with open(path) as f:
            source = f.read()
        if old is not None:
            source = source.replace(old, new)
            with open(path, "w") as f:
                f.write(source)
        code, failed, seconds = run_tests(dest, tests)
    return {"script": script, "id": ident, "killed": code != 0, "by": failed, "seconds": round(seconds, 1),
            "tests": tests}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--script", help="only this script's mutants (ppo, gail, ...)")
    parser.add_argument("--only", help="only the mutant with this id")
    parser.add_argument("--jobs", type=int, default=2, help="mutants tested side by side (default 2)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--fresh", action="store_true", help="ignore results kept from earlier runs")
    opts = parser.parse_args()

    chosen = [m for m in MUTANTS if (opts.script in (None, m[0])) and (opts.only in (None, m[1]))]
    if not chosen:
        sys.exit("mutation.py: error: no mutant matches --script/--only")
    sources, problems = {}, []
    for script, ident, _, old, _ in chosen:
        if script not in sources:
            with open(os.path.join(ROOT, f"{script}.py")) as f:
                sources[script] = f.read()
        if sources[script].count(old) != 1:
            problems.append(f"{script}/{ident}: its text occurs {sources[script].count(old)} times in {script}.py")
    if problems:
        sys.exit("mutation.py: error: stale mutants (the scripts changed):\n  " + "\n  ".join(problems))
    if opts.list:
        for script, ident, what, _, _ in chosen:
            print(f"{script:<11} {ident:<34} {what}")
        return

    kept = {}
    if os.path.exists(RESULTS) and not opts.fresh:
        with open(RESULTS) as f:
            kept = json.load(f)
    todo = []
    for script, ident, what, old, new in chosen:
        key = mutant_key(script, sources[script].replace(old, new), fast_tests(script) + helper_tests())
        if kept.get(f"{script}/{ident}", {}).get("key") != key:
            todo.append((script, ident, old, new, key))
    # The unmutated scripts must pass their own fast tests, or every mutant would look killed.
    baselines = sorted({t[0] for t in todo})
    with concurrent.futures.ProcessPoolExecutor(max_workers=opts.jobs) as pool:
        for script, result in zip(baselines, pool.map(run_mutant, baselines, baselines, [None] * len(baselines),
                                                      [None] * len(baselines))):
            if result["killed"]:
                sys.exit(f"mutation.py: error: the unmutated {script}.py fails its fast tests ({result['by']})")
            print(f"{script}.py unmutated: fast tests pass in {result['seconds']:.0f} s", flush=True)
        futures = {pool.submit(run_mutant, s, i, o, n): (s, i, k) for s, i, o, n, k in todo}
        for future in concurrent.futures.as_completed(futures):
            script, ident, key = futures[future]
            result = future.result()
            result["key"] = key
            kept[f"{script}/{ident}"] = result
            os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
            tmp = f"{RESULTS}.tmp{os.getpid()}"
            with open(tmp, "w") as f:
                json.dump(dict(sorted(kept.items())), f, indent=1)
            os.replace(tmp, RESULTS)
            print(f"{'killed  ' if result['killed'] else 'SURVIVED'} {script}/{ident}  {result['by']}  "
                  f"({result['seconds']:.0f} s)", flush=True)

    print(f"\n{'script':<11} {'mutant':<34} {'result':<9} killed by")
    survivors = 0
    for script, ident, what, _, _ in chosen:
        row = kept[f"{script}/{ident}"]
        survivors += not row["killed"]
        print(f"{script:<11} {ident:<34} {'killed' if row['killed'] else 'SURVIVED':<9} {row['by']}")
    print(f"\n{len(chosen) - survivors} of {len(chosen)} mutants killed by the fast tests")
    sys.exit(1 if survivors else 0)


if __name__ == "__main__":
    main()
