"""ppo.py's per-environment presets: what `python ppo.py --env X` runs, and that flags given by hand always win."""
import dataclasses
import json
import os

import gymnasium as gym
import pytest

import ppo
from cli_helpers import error_line, only_run_dir, run_script

FIELDS = {f.name: f.default for f in dataclasses.fields(ppo.Args)}
COVERED = ["CartPole-v1", "Acrobot-v1", "Pendulum-v1", "MountainCarContinuous-v0", "InvertedPendulum-v4",
           "InvertedDoublePendulum-v4", "Reacher-v4", "Swimmer-v4", "Hopper-v4", "Walker2d-v4", "HalfCheetah-v4",
           "Ant-v4", "Humanoid-v4"]


@pytest.mark.parametrize("env_id", COVERED)
def test_every_covered_env_has_a_preset_that_passes_the_argument_checks(env_id):
    args = ppo.parse_args(["--env", env_id])
    assert args.preset == env_id.split("-v")[0] and args.preset in ppo.PRESETS
    assert gym.spec(env_id) is not None
    ppo.check_args(args)  # (minibatches divide the batch, the budget holds one batch, ...)
    for key, value in ppo.PRESETS[args.preset]["args"].items():
        assert getattr(args, key) == value


def test_presets_name_real_fields_and_a_source():
    for name, preset in ppo.PRESETS.items():
        assert set(preset["args"]) <= set(FIELDS), name
        assert preset["source"] and "total_timesteps" in preset["args"], name


def test_v4_and_v5_share_a_preset_and_a_flag_always_wins():
    v4, v5 = ppo.parse_args(["--env", "HalfCheetah-v4"]), ppo.parse_args(["--env", "HalfCheetah-v5"])
    assert dataclasses.replace(v4, env="x") == dataclasses.replace(v5, env="x")
    assert v4.activation == "relu" and v4.hidden_size == 256
    # a flag given by hand wins, even one set to the plain default that the preset changes
    mine = ppo.parse_args(["--env", "HalfCheetah-v4", "--learning-rate", "3e-4", "--hidden-size", "64"])
    assert mine.learning_rate == 3e-4 and mine.hidden_size == 64 and mine.activation == "relu"
    assert mine.preset == "HalfCheetah"


def test_preset_none_and_an_env_without_a_preset_run_the_defaults():
    plain = ppo.parse_args(["--env", "Pendulum-v1", "--preset", "none"])
    assert plain.gamma == FIELDS["gamma"] and plain.total_timesteps == FIELDS["total_timesteps"]
    other = ppo.Args(env="Count-v0")
    assert ppo.resolve_preset(other) is None and other.preset == "none"
    named = ppo.parse_args(["--env", "Pendulum-v1", "--preset", "CartPole"])  # any preset, by name
    assert named.num_envs == 4 and named.ent_coef == 0.01


def test_from_python_fields_left_at_their_default_take_the_preset():
    args = ppo.Args(env="Pendulum-v1", num_envs=2)
    assert ppo.resolve_preset(args) == "Pendulum"
    assert args.gamma == 0.9 and args.num_envs == 2 and args.preset == "Pendulum"
    assert ppo.resolve_preset(args) == "Pendulum" and args.gamma == 0.9  # (applied once)


def test_the_command_line_says_which_preset_and_records_it(tmp_path):
    result = run_script("ppo.py", "--env", "Pendulum-v1", "--total-timesteps", "2048", "--eval-episodes", "1",
                        "--runs-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert first.startswith("ppo.py: preset 'Pendulum' for Pendulum-v1 (") and "--preset none" in first
    with open(os.path.join(only_run_dir(tmp_path), "args.json")) as f:
        stored = json.load(f)
    assert stored["preset"] == "Pendulum" and stored["gamma"] == 0.9 and stored["total_timesteps"] == 2048


def test_an_unknown_preset_is_one_line():
    line = error_line(run_script("ppo.py", "--env", "Pendulum-v1", "--preset", "Pendullum"), "ppo.py")
    assert "no such preset" in line and "Pendulum" in line


def test_a_resumed_run_keeps_its_preset(tmp_path):
    args = ppo.parse_args(["--env", "Pendulum-v1", "--total-timesteps", "2048", "--num-steps", "256",
                           "--eval-episodes", "1", "--runs-dir", str(tmp_path)])
    run_dir_args = dataclasses.asdict(args)
    assert run_dir_args["preset"] == "Pendulum"
    parsed = ppo.parse_args(["--resume", str(tmp_path / "somewhere")])
    assert parsed.preset == FIELDS["preset"]  # nothing applied on top of a resumed run's own args.json


@pytest.mark.parametrize("script,argv", [
    ("ppo.py", ["--env", "Pendulum-v1", "--preset", "none"]),  # no preset applies
    ("ppo.py", ["--env", "Pendulum-v1"]),  # the preset applies
    ("gail.py", ["--env", "Hopper-v4"]),  # gail.py has no Hopper preset
    ("gail.py", ["--env", "HalfCheetah-v4"]),
])
def test_help_prints_the_help_whether_or_not_a_preset_applies(tmp_path, script, argv):
    # (a tiny budget and a scratch runs dir: where --help were dropped, the run that starts instead ends at once)
    result = run_script(script, *argv, "--total-timesteps", "2048", "--runs-dir", str(tmp_path), "--help")
    assert result.returncode == 0 and "--init-log-std" in result.stdout and "--preset" in result.stdout
    assert os.listdir(tmp_path) == []
