"""Faults a run must survive, for every script: a failure in the final evaluation (a missing video codec, an env that
raises) leaves the trained model.pt behind, written before the evaluation started; seeds out of range, --capture-video
without moviepy and an output folder that cannot be written in are refused in one line before anything runs."""
import importlib
import os
import shutil

import numpy as np
import pytest
import torch
import tyro

from cli_helpers import ROOT, error_line, only_run_dir, run_script

# script -> (tiny command line, the function the final evaluation goes through)
TINY = {
    "ppo": (["--env", "CartPole-v1", "--total-timesteps", "256", "--num-envs", "2", "--num-steps", "64",
             "--num-minibatches", "2", "--update-epochs", "1"], "run_episodes"),
    "reinforce": (["--env", "CartPole-v1", "--total-timesteps", "400", "--batch-steps", "200"], "run_episodes"),
    "awr": (["--env", "CartPole-v1", "--total-timesteps", "128", "--samples-per-iter", "128", "--value-steps", "2",
             "--policy-steps", "2", "--batch-size", "32"], "run_episodes"),
    "bc": (["--env", "CartPole-v1", "--num-demos", "3", "--train-steps", "20", "--val-every", "10"], "run_episodes"),
    "dagger": (["--env", "CartPole-v1", "--rounds", "1", "--episodes-per-round", "1", "--train-steps", "10"],
               "run_episodes"),
    "gail": (["--env", "CartPole-v1", "--total-timesteps", "128", "--num-steps", "128", "--num-minibatches", "4",
              "--disc-minibatches", "4", "--update-epochs", "1"], "run_episodes"),
    "gcl": (["--env", "CartPole-v1", "--total-timesteps", "128", "--num-steps", "128", "--num-minibatches", "4",
             "--update-epochs", "1", "--irl-steps", "1"], "run_episodes"),
    "soft_q": (["--env", "CartPole-v1", "--total-timesteps", "200", "--learning-starts", "100", "--batch-size", "16"],
               "run_episodes"),
    "maxent_irl": (["--iterations", "3", "--num-demos", "5"], "collect_demos"),
    "mppi": (["--env", "Pendulum-v1", "--num-samples", "10"], "mppi_plan"),
}


class EvaluationFailed(Exception):
    pass


@pytest.mark.parametrize("name", sorted(TINY))
def test_model_pt_is_written_before_the_final_evaluation(tmp_path, monkeypatch, name):
    script = importlib.import_module(name)
    argv, evaluation = TINY[name]
    args = tyro.cli(script.Args, args=[*argv, "--eval-episodes", "2", "--runs-dir", str(tmp_path)])
    real = getattr(script, evaluation)

    def failing(*a, **k):
        # maxent_irl.py collects its demos with the same function: fail only for the evaluation's seeds
        if evaluation == "collect_demos" and list(a[2])[:1] != [args.eval_seed]:
            return real(*a, **k)
        raise EvaluationFailed("the evaluation failed")

    monkeypatch.setattr(script, evaluation, failing)
    with pytest.raises(EvaluationFailed):
        script.main(args)
    model = os.path.join(only_run_dir(tmp_path), "model.pt")
    assert os.path.isfile(model)
    assert torch.load(model, weights_only=True)["script"] == f"{name}.py"


SCRIPTS = sorted(TINY)


def default_args(script, **overrides):
    args = script.Args()
    for key, value in overrides.items():
        setattr(args, key, value)
    return args


@pytest.mark.parametrize("name", SCRIPTS)
@pytest.mark.parametrize("field,value", [("seed", -1), ("seed", 2**32), ("eval_seed", -5), ("eval_seed", 2**32 - 1)])
def test_seeds_out_of_range_are_refused_before_anything_runs(name, field, value):
    script = importlib.import_module(name)
    with pytest.raises(script.UserError, match="--" + field.replace("_", "-")):
        script.check_args(default_args(script, **{field: value}))


@pytest.mark.parametrize("name", [n for n in SCRIPTS if n != "maxent_irl"])  # (maxent_irl.py records no video)
def test_capture_video_without_moviepy_is_refused_before_training(name, monkeypatch):
    script = importlib.import_module(name)
    real_find_spec = script.importlib.util.find_spec
    monkeypatch.setattr(script.importlib.util, "find_spec",
                        lambda module, *a: None if module == "moviepy" else real_find_spec(module, *a))
    with pytest.raises(script.UserError, match="--capture-video needs moviepy"):
        script.check_args(default_args(script, capture_video=True))


@pytest.mark.parametrize("name", SCRIPTS)
def test_an_output_folder_where_nothing_can_be_written_is_refused(name):
    script = importlib.import_module(name)
    with pytest.raises(script.UserError, match="cannot write in folder '/sys'"):
        script.make_output_folder("/sys")  # it exists, and no file can be made in it, not even by root


@pytest.mark.parametrize("name", SCRIPTS)
def test_a_bad_seed_on_the_command_line_is_one_line_and_creates_nothing(tmp_path, name):
    result = run_script(f"{name}.py", "--seed", "-1", "--runs-dir", str(tmp_path / "runs"))
    assert "--seed must be in" in error_line(result, f"{name}.py")
    assert not (tmp_path / "runs").exists()


# ── probes of arguments that were silently accepted, or ended in a traceback
@pytest.mark.parametrize("name,argv,needle", [
    ("ppo", ["--ent-coef", "-0.1"], "--ent-coef"),
    ("ppo", ["--vf-coef", "-1"], "--vf-coef"),
    ("gail", ["--ent-coef", "-0.1"], "--ent-coef"),
    ("gail", ["--vf-coef", "0"], "--vf-coef"),
    ("gcl", ["--vf-coef", "-1"], "--vf-coef"),
    ("soft_q", ["--total-timesteps", "0"], "--total-timesteps"),
    ("soft_q", ["--total-timesteps", "500", "--learning-starts", "500"], "--learning-starts"),
    ("awr", ["--obs-norm-samples", "0"], "--obs-norm-samples"),
    ("awr", ["--obs-norm-samples", "-5"], "--obs-norm-samples"),
    ("bc", ["--env", "CartPole-v1", "--subsample", "100000"], "--subsample"),
    # one-sample minibatches: advantage normalisation divides by the std of one number
    ("ppo", ["--env", "CartPole-v1", "--num-envs", "1", "--total-timesteps", "128", "--num-steps", "64",
             "--num-minibatches", "64"],
     "--norm-adv"),
    ("gail", ["--env", "Pendulum-v1", "--num-steps", "1", "--num-minibatches", "1", "--disc-minibatches", "1"],
     "--norm-adv"),
    ("gcl", ["--env", "Pendulum-v1", "--num-steps", "1", "--num-minibatches", "1"], "--norm-adv"),
    ("ppo", ["--checkpoint-every", "-1"], "--checkpoint-every"),
    ("soft_q", ["--checkpoint-every", "-1"], "--checkpoint-every"),
])
def test_nonsensical_arguments_get_one_line(tmp_path, name, argv, needle):
    result = run_script(f"{name}.py", *argv, "--runs-dir", str(tmp_path / "runs"))
    assert needle in error_line(result, f"{name}.py")


@pytest.mark.parametrize("content", [b"", b"garbage, not a zip", b"PK\x03\x04 truncated"])
def test_dagger_with_a_corrupt_demos_file_beside_its_expert_gets_one_line(tmp_path, content):
    shutil.copy(os.path.join(ROOT, "experts", "CartPole-v1", "policy.pt2"), tmp_path / "policy.pt2")
    (tmp_path / "demos.npz").write_bytes(content)
    result = run_script("dagger.py", "--env", "CartPole-v1", "--expert", str(tmp_path / "policy.pt2"),
                        "--runs-dir", str(tmp_path / "runs"))
    assert "is not a demos.npz" in error_line(result, "dagger.py")


@pytest.mark.parametrize("name", ["bc", "awr", "gail", "gcl"])
def test_demonstrations_with_a_nan_are_refused_at_load(tmp_path, name):
    with np.load(os.path.join(ROOT, "experts", "CartPole-v1", "demos.npz")) as data:
        demos = {k: data[k] for k in data.files}
    demos["observations"] = demos["observations"].copy()
    demos["observations"][5, 2] = np.nan
    np.savez(tmp_path / "demos.npz", **demos)
    extra = ["--offline"] if name == "awr" else []
    result = run_script(f"{name}.py", "--env", "CartPole-v1", "--demos", str(tmp_path / "demos.npz"), *extra,
                        "--runs-dir", str(tmp_path / "runs"))
    assert "non-finite" in error_line(result, f"{name}.py")


def test_bc_says_when_its_batch_is_larger_than_the_data(tmp_path):
    result = run_script("bc.py", "--env", "CartPole-v1", "--num-demos", "2", "--batch-size", "5000", "--train-steps", "2",
                        "--val-every", "1", "--eval-episodes", "1", "--runs-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "note: --batch-size 5000 is larger than the ~1000 pairs of the 2 demos" in result.stdout
