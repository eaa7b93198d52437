"""Throw-away GCL prototype (not the deliverable): gail.py's pieces + gcl.py's math, Pendulum, segments of L steps."""
import sys, time, copy, collections, numpy as np, torch, warnings
warnings.filterwarnings("ignore")
sys.path.insert(0, "/work/main"); sys.path.insert(1, "/work/gcl")
import gail, gcl, gymnasium as gym
torch.set_num_threads(1)
L = int(sys.argv[1]) if len(sys.argv) > 1 else 50
KMIX = int(sys.argv[2]) if len(sys.argv) > 2 else 5
IRL_STEPS = int(sys.argv[3]) if len(sys.argv) > 3 else 5
TOTAL = int(sys.argv[4]) if len(sys.argv) > 4 else 300_000
ENT = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
args = gail.Args(env="Pendulum-v1", num_envs=4, num_steps=512, gamma=0.9, learning_rate=1e-3, num_minibatches=16,
                 total_timesteps=TOTAL, ent_coef=ENT)
gail.seed_everything(1)
env = gail.make_env(args.env); obs_dim, act_dim, _ = gail.check_spaces(env, args.env)
low, high = env.action_space.low, env.action_space.high
low_t, high_t = torch.as_tensor(low), torch.as_tensor(high)
demos = gail.load_demos("/work/main/experts/Pendulum-v1/demos.npz", args.env, obs_dim, act_dim, False)
demo_obs = demos["observations"].reshape(-1, 200, obs_dim); demo_act = demos["actions"].reshape(-1, 200, act_dim)
# demo segments: (n_seg, L, ·)
demo_obs_seg = demo_obs[:, :200 // L * L].reshape(-1, L, obs_dim); demo_act_seg = demo_act[:, :200 // L * L].reshape(-1, L, act_dim)
print("expert return", demos["episode_returns"].mean(), "demo segments", len(demo_obs_seg))
agent = gail.Agent(obs_dim, act_dim, False, args.hidden_size)
reward_net = gail.Discriminator(obs_dim, act_dim, 100)
flat = gail.flatten_parameters(agent)
opt = torch.optim.Adam([flat], lr=args.learning_rate, eps=1e-5)
ropt = torch.optim.Adam(reward_net.parameters(), lr=float(__import__('os').environ.get('RLR', '1e-3')), weight_decay=float(__import__('os').environ.get('WD', '0')))
T, N = args.num_steps, args.num_envs; B = T * N
envs = gym.vector.SyncVectorEnv([lambda: gail.make_env(args.env) for _ in range(N)], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
obs_rms = gail.RunningMeanStd((obs_dim,)); ret_rms = gail.RunningMeanStd(()); disc_ret = np.zeros(N)
raw, _ = envs.reset(seed=1); obs_rms.update(raw); obs = gail.normalize_obs(raw, obs_rms, 10.0)
rng = np.random.default_rng(1); ep_t = np.zeros(N, int); ep_ret = np.zeros(N); train_returns = []
past_actors = collections.deque(maxlen=KMIX)
DEMOQ = __import__('os').environ.get('DEMOQ')
if DEMOQ:  # p̂_demo: a Gaussian BC policy fitted to the demos, on raw observations scaled by the demos' own statistics
    d_o = torch.from_numpy(demo_obs.reshape(-1, obs_dim)).float(); d_a = torch.from_numpy(demo_act.reshape(-1, act_dim)).float()
    mu_o, sd_o = d_o.mean(0), d_o.std(0) + 1e-6
    bc = gail.mlp(obs_dim, 64, act_dim, 0.01); bc_logstd = torch.nn.Parameter(torch.zeros(act_dim))
    bopt = torch.optim.Adam(list(bc.parameters()) + [bc_logstd], lr=1e-3)
    for _ in range(3000):
        i = torch.randint(len(d_o), (256,)); l = -gail.gaussian_log_prob(d_a[i], bc((d_o[i] - mu_o) / sd_o), bc_logstd).mean()
        bopt.zero_grad(); l.backward(); bopt.step()
    print("BC nll", l.item(), "std", bc_logstd.exp().detach().numpy())
t0 = time.time(); step = 0
for it in range(1, TOTAL // B + 1):
    opt.param_groups[0]["lr"] = (1 - (it - 1) / (TOTAL // B)) * args.learning_rate
    actor_np = gail.numpy_weights(agent.actor); std = torch.exp(agent.log_std).detach().numpy()
    ob_buf = np.zeros((T, N, obs_dim), np.float32); nob_buf = np.zeros_like(ob_buf); raw_buf = np.zeros_like(ob_buf)
    a_buf = np.zeros((T, N, act_dim), np.float32); term = np.zeros((T, N), np.float32); done_b = np.zeros((T, N), np.float32)
    tin = np.zeros((T, N), int)
    for t in range(T):
        step += N; ob_buf[t] = obs; raw_buf[t] = raw; tin[t] = ep_t
        a = gail.numpy_mlp(actor_np, obs) + std * rng.standard_normal((N, act_dim)).astype(np.float32); a_buf[t] = a
        raw, r, te, tr, info = envs.step(np.clip(a, low, high)); d = te | tr
        ep_ret += r; ep_t += 1; term[t], done_b[t] = te, d
        obs_rms.update(raw); obs = gail.normalize_obs(raw, obs_rms, 10.0); nob_buf[t] = obs
        for i in np.flatnonzero(d):
            nob_buf[t, i] = gail.normalize_obs(info["final_obs"][i], obs_rms, 10.0); train_returns.append(ep_ret[i]); ep_ret[i] = 0; ep_t[i] = 0
    b_obs = torch.from_numpy(ob_buf.reshape(B, obs_dim)); b_act = torch.from_numpy(a_buf.reshape(B, act_dim))
    # policy segments: L consecutive steps of one env starting at an episode time multiple of L
    segs = [(t, i) for i in range(N) for t in range(T - L + 1) if tin[t, i] % L == 0 and tin[t + L - 1, i] == tin[t, i] + L - 1]
    idx = torch.tensor([[ (t + k) * N + i for k in range(L)] for t, i in segs])  # (S, L) into the flat batch
    past_actors.append(copy.deepcopy(agent.actor)); log_std_hist = getattr(sys.modules[__name__], "lsh", collections.deque(maxlen=KMIX)); lsh = log_std_hist; lsh.append(agent.log_std.detach().clone())
    d_obs_n = torch.from_numpy(gail.normalize_obs(demo_obs_seg.reshape(-1, obs_dim), obs_rms, 10.0)).float()
    d_act = torch.from_numpy(demo_act_seg.reshape(-1, act_dim)).float()
    with torch.no_grad():
        def seg_logq(o, a, nseg, o_raw=None):  # log of the mixture over past policies of Π_t π(a_t|s_t), per segment
            per = []
            for actor, ls in zip(past_actors, lsh):
                lp = gail.gaussian_log_prob(a, actor(o), ls).reshape(nseg, L).sum(1); per.append(lp)
            lq = gcl.mixture_log_density(torch.stack(per))
            if DEMOQ:  # ½ (policy mixture) + ½ p̂_demo
                lbc = gail.gaussian_log_prob(a, bc((o_raw - mu_o) / sd_o), bc_logstd).reshape(nseg, L).sum(1)
                lq = gcl.mixture_log_density(torch.stack([lq, lbc]))
            return lq
        logq_pol = seg_logq(b_obs[idx.reshape(-1)], b_act[idx.reshape(-1)], len(segs), torch.from_numpy(raw_buf.reshape(B, obs_dim))[idx.reshape(-1)])
        logq_demo = seg_logq(d_obs_n, d_act, len(demo_obs_seg), torch.from_numpy(demo_obs_seg.reshape(-1, obs_dim)).float())
    x_pol = gail.discriminator_input(b_obs[idx.reshape(-1)], b_act[idx.reshape(-1)], False, act_dim, low_t, high_t)
    x_demo = gail.discriminator_input(d_obs_n, d_act, False, act_dim, low_t, high_t)
    for _ in range(IRL_STEPS):
        dsel = torch.randint(len(demo_obs_seg), (len(segs),))
        R_pol = reward_net(x_pol).reshape(len(segs), L).sum(1)
        R_demo_all = reward_net(x_demo).reshape(len(demo_obs_seg), L).sum(1)
        R_demo = R_demo_all[dsel]
        if __import__('os').environ.get('NODEMO'): R_bg, lq = R_pol, logq_pol
        else: R_bg = torch.cat([R_pol, R_demo]); lq = torch.cat([logq_pol, logq_demo[dsel]])
        loss = gcl.ioc_loss(R_demo, R_bg, lq)
        ropt.zero_grad(); loss.backward(); ropt.step()
    ess = gcl.effective_sample_size((R_bg - lq).detach())
    with torch.no_grad():
        learned = reward_net(gail.discriminator_input(b_obs, b_act, False, act_dim, low_t, high_t)).numpy().reshape(T, N)
    g, disc_ret = gail.discounted_returns(learned, done_b, disc_ret, args.gamma); ret_rms.update(g.reshape(-1))
    rew = np.clip(learned / np.sqrt(ret_rms.var + 1e-8), -10, 10).astype(np.float32)
    with torch.no_grad():
        v = agent.value(b_obs); nv = agent.value(torch.from_numpy(nob_buf.reshape(B, obs_dim))); lp_old = agent.log_prob(agent.actor(b_obs), b_act)
    adv = gail.compute_gae(rew, v.numpy().reshape(T, N), nv.numpy().reshape(T, N), term, done_b, args.gamma, args.gae_lambda)
    ret = adv + v.numpy().reshape(T, N); b_adv = torch.from_numpy(adv.reshape(B)); b_ret = torch.from_numpy(ret.reshape(B))
    for ep in range(args.update_epochs):
        perm = torch.randperm(B)
        for s in range(0, B, B // args.num_minibatches):
            mb = perm[s:s + B // args.num_minibatches]
            pg, vl, ent, kl, cf = gail.ppo_losses(agent, b_obs[mb], b_act[mb], lp_old[mb], b_adv[mb], v[mb], b_ret[mb], 0.2, True, True)
            l = pg + 0.5 * vl - args.ent_coef * ent; flat.grad.zero_(); l.backward(); torch.nn.utils.clip_grad_norm_([flat], 0.5); opt.step()
    if it % 10 == 0:
        print(f"step {step:,} true return {np.mean(train_returns[-20:]):.0f} ioc {loss.item():.2f} ESS {ess:.1f}/{len(R_bg)} Rdemo {R_demo.mean().item():.1f} Rpol {R_pol.mean().item():.1f} {time.time()-t0:.0f}s", flush=True)
ev = gail.evaluate(agent, obs_rms, args, False, low, high)
print("eval", ev.mean(), ev.std())
