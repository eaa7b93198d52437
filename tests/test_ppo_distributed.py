"""ppo.py under torchrun: the merged normalisers, the all-reduced gradient and a real 2-process run (gloo, CPU).

Each rank steps its own envs and holds its share of every batch. For that to be one PPO run, (1) the observation and
return statistics every rank ends a rollout with must be those of one normaliser that saw all ranks' samples; (2) the
mean of the ranks' minibatch gradients (one all-reduce) must be the gradient of the whole minibatch, advantages
standardised over all of it; (3) the ranks must end with the same parameters, and one run directory.
"""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import ppo
from cli_helpers import ROOT, ctrl_c_after_first_step, only_run_dir


def test_merged_statistics_equal_one_normaliser_over_the_concatenated_data():
    rng = np.random.default_rng(0)
    before = [rng.normal(3.0, 2.0, (50, 4)) for _ in range(3)]  # what the statistics saw before the rollout
    per_rank = [[rng.normal(r, 1.0 + r, (7, 4)) for _ in range(5)] for r in range(3)]  # 3 ranks × 5 steps × 7 envs

    one = ppo.RunningMeanStd((4,))
    for x in before + [x for rank in per_rank for x in rank]:
        one.update(x)

    merged = ppo.RunningMeanStd((4,))
    for x in before:
        merged.update(x)
    moments = []
    for rank in per_rank:  # each rank's own new samples, counted from nothing
        new = ppo.fresh_statistics(merged)
        for x in rank:
            new.update(x)
        moments.append((new.mean, new.var, new.count))
    ppo.merge_moments(merged, moments)
    np.testing.assert_allclose(merged.mean, one.mean, rtol=1e-12)
    np.testing.assert_allclose(merged.var, one.var, rtol=1e-12)
    assert merged.count == pytest.approx(one.count)
    # and the plain float64 mean and variance of all of it (the prior count of 1e-4 aside)
    everything = np.concatenate(before + [x for rank in per_rank for x in rank])
    np.testing.assert_allclose(merged.mean, everything.mean(0), rtol=1e-5)
    np.testing.assert_allclose(merged.var, everything.var(0), rtol=1e-5)


def test_shared_statistics_of_one_process_are_plain_updates():
    ranks = ppo.Ranks(torch.device("cpu"))
    assert ranks.world == 1 or "WORLD_SIZE" in os.environ
    obs_rms, ret_rms, plain = ppo.RunningMeanStd((3,)), ppo.RunningMeanStd(()), ppo.RunningMeanStd((3,))
    shared = ppo.SharedStatistics(ranks, obs_rms, ret_rms)
    x = np.arange(12.0).reshape(4, 3)
    shared.update_obs(x)
    shared.update_ret(np.ones(4))
    shared.end_rollout()
    plain.update(x)
    assert np.array_equal(obs_rms.mean, plain.mean) and np.array_equal(obs_rms.var, plain.var)
    assert ret_rms.count == pytest.approx(4 + 1e-4)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


MB, OBS, ACT = 16, 3, 2  # the whole minibatch: 16 rows, 8 on each of 2 ranks


def minibatch(seed: int = 0) -> tuple:
    g = torch.Generator().manual_seed(seed)
    obs, actions = torch.randn(MB, OBS, generator=g), torch.randn(MB, ACT, generator=g)
    logp_old, adv = torch.randn(MB, generator=g) - 2.0, 3.0 * torch.randn(MB, generator=g) + 1.0
    v_old, returns = torch.randn(MB, generator=g), torch.randn(MB, generator=g)
    return obs, actions, logp_old, adv, v_old, returns


def gradient(agent, rows, adv, norm_adv: bool) -> torch.Tensor:
    """The flat gradient of ppo.py's minibatch loss L = −L^CLIP + c_v·L^V − c_H·H on `rows` of the minibatch."""
    obs, actions, logp_old, _, v_old, returns = (t[rows] for t in minibatch())
    out_old = agent.actor(obs).detach()
    flat = ppo.flatten_parameters(agent)
    pg, v, ent, _, _ = ppo.ppo_losses(agent, obs, actions, logp_old, adv, v_old, returns, out_old,
                                      agent.log_std.detach().clone(), torch.tensor(1.0), "clip", 0.2, True, norm_adv)
    (pg + 0.5 * v - 0.01 * ent).backward()
    return flat.grad.clone()


def rank_gradient(rank: int, port: int, queue) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", RANK=str(rank))
    torch.manual_seed(0)
    agent = ppo.Agent(OBS, ACT, False, 8, init_log_std=-0.5)
    ranks = ppo.Ranks(torch.device("cpu"))
    rows = torch.arange(rank * MB // 2, (rank + 1) * MB // 2)
    # as the training loop does under torchrun: the whole minibatch's moments, then this rank's share standardised
    share = minibatch()[3][rows]
    moments = ppo.minibatch_moments_across_ranks(share, torch.arange(MB // 2), MB // 2, ranks)  # (1, 2)
    adv = (share - moments[0, 0]) / (moments[0, 1] + 1e-8)
    grad = gradient(agent, rows, adv, norm_adv=False)
    ranks.mean_(grad)  # the loop's all-reduce of the flat gradient buffer
    queue.put((rank, grad.numpy()))
    ranks.close()
    queue.close()
    queue.join_thread()  # (the result is sent: now leave without the interpreter's finalisation, as ppo.leave does)
    os._exit(0)


def test_the_all_reduced_gradient_is_the_gradient_of_the_whole_minibatch():
    torch.manual_seed(0)
    agent = ppo.Agent(OBS, ACT, False, 8, init_log_std=-0.5)
    whole = gradient(agent, torch.arange(MB), minibatch()[3], norm_adv=True)  # one process, the whole minibatch
    ctx = mp.get_context("spawn")
    queue, port = ctx.Queue(), free_port()
    procs = [ctx.Process(target=rank_gradient, args=(r, port, queue)) for r in range(2)]
    for p in procs:
        p.start()
    grads = dict(queue.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    np.testing.assert_array_equal(grads[0], grads[1])  # the same update on every rank
    np.testing.assert_allclose(grads[0], whole.numpy(), rtol=1e-5, atol=1e-7)
    # and not what each rank's half alone would give (the check has teeth)
    half = gradient(agent, torch.arange(MB // 2), minibatch()[3][:MB // 2], norm_adv=True).numpy()
    assert not np.allclose(half, whole.numpy(), rtol=1e-3)


def torchrun(*argv) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(free_port()), os.path.join(ROOT, "ppo.py"), *argv]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_a_two_process_run_ends_with_one_run_directory_and_the_same_parameters(tmp_path):
    # (ppo.py checks at the end that every rank holds the same parameters, and fails otherwise)
    result = torchrun("--env", "Pendulum-v1", "--total-timesteps", "2048", "--num-envs", "2", "--num-steps", "128",
                      "--num-minibatches", "4", "--update-epochs", "2", "--eval-episodes", "2",
                      "--runs-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = only_run_dir(tmp_path)
    assert {"args.json", "model.pt", "summary.json"} <= set(os.listdir(run_dir))
    with open(os.path.join(run_dir, "summary.json")) as f:
        summary = json.load(f)
    assert summary["env_steps"] == 2048  # every rank's steps: 2 ranks × 2 envs × 128 steps × 4 iterations
    lines = result.stdout.splitlines()
    assert sum(line.startswith("step ") for line in lines) == 4  # rank 0 alone prints
    assert sum(line.startswith("eval: ") for line in lines) == 1


def test_a_two_process_run_stopped_by_ctrl_c_resumes_to_the_same_model_bit_for_bit(tmp_path):
    """Ctrl-C reaches torchrun and both ranks; they stop at the same safe point and rank 0 writes one checkpoint.pt
    holding each rank's envs and generators. Resumed with torchrun, the run ends with the model of a run never stopped.
    """
    argv = ["--env", "Pendulum-v1", "--total-timesteps", "8192", "--num-steps", "256", "--num-minibatches", "4",
            "--update-epochs", "2", "--eval-episodes", "2"]
    whole = torchrun(*argv, "--runs-dir", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr[-3000:]

    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(free_port()), os.path.join(ROOT, "ppo.py"), *argv, "--runs-dir", str(tmp_path / "split")]
    code, err = ctrl_c_after_first_step(cmd, env)
    assert code != 0 and err.count("ppo.py: stopped by SIGINT at step") == 1, err  # rank 0 alone says it
    assert "resume with: torchrun --nproc-per-node 2 ppo.py --resume" in err
    run_dir = only_run_dir(tmp_path / "split")
    assert "checkpoint.pt" in os.listdir(run_dir) and "model.pt" not in os.listdir(run_dir)

    alone = subprocess.run([sys.executable, os.path.join(ROOT, "ppo.py"), "--resume", run_dir], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=120)
    assert alone.returncode != 0 and "written by 2 process(es); resume it with as many" in alone.stderr
    resumed = torchrun("--resume", run_dir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = torch.load(os.path.join(only_run_dir(tmp_path / "whole"), "model.pt"), weights_only=True)
    b = torch.load(os.path.join(run_dir, "model.pt"), weights_only=True)
    assert all(torch.equal(a["agent"][k], b["agent"][k]) for k in a["agent"])
    assert all(torch.equal(a["obs_rms"][k], b["obs_rms"][k]) for k in ("mean", "var"))
