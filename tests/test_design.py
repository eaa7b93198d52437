"""Design rules that keep the ten scripts honest (CONTRIBUTING.md, "Tests").

1. A top-level script imports only the standard library and the declared packages, never a file of this
   project, so that it can be copied alone.
2. Blocks marked `# >>> shared: NAME` ... `# <<< shared: NAME` are byte-identical in every script that
   carries them, so a fix made in one copy must be made in all.
"""
import ast
import pathlib
import re

import pytest
import sys
from collections import defaultdict

ROOT = pathlib.Path(__file__).resolve().parent.parent
ALLOWED = {"torch", "gymnasium", "mujoco", "tyro", "numpy", "tensorboard"}
SCRIPTS = sorted(p for p in ROOT.glob("*.py"))
BEGIN = re.compile(r"^# >>> shared: (.+)$")
END = re.compile(r"^# <<< shared: (.+)$")


def foreign_imports(source: str) -> list:
    """Top-level module names imported by `source` that are neither stdlib nor allowed; relative imports too."""
    bad = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = ["." * node.level + (node.module or "")] if node.level else [node.module or ""]
        else:
            continue
        for name in names:
            root = name.split(".")[0]
            if name.startswith(".") or (root not in ALLOWED and root not in sys.stdlib_module_names):
                bad.append(name)
    return bad


def shared_blocks(source: str, origin: str) -> dict:
    """{name: text} of the marked blocks; raises on unbalanced or nested markers."""
    blocks, current, lines = {}, None, []
    for number, line in enumerate(source.splitlines(), 1):
        begin, end = BEGIN.match(line), END.match(line)
        if begin:
            assert current is None, f"{origin}:{number}: shared block '{begin[1]}' opens inside '{current}'"
            current, lines = begin[1], []
        elif end:
            assert current == end[1], f"{origin}:{number}: '<<< shared: {end[1]}' closes '{current}'"
            assert current not in blocks, f"{origin}: shared block '{current}' appears twice"
            blocks[current], current = "\n".join(lines), None
        elif current is not None:
            lines.append(line)
    assert current is None, f"{origin}: shared block '{current}' is never closed"
    return blocks


def mismatched_blocks(sources: dict) -> list:
    """[(block name, [files])] of every shared block whose copies differ."""
    copies = defaultdict(dict)
    for origin, source in sources.items():
        for name, text in shared_blocks(source, origin).items():
            copies[name][origin] = text
    return [(name, sorted(c)) for name, c in copies.items() if len(set(c.values())) > 1]


def test_there_are_scripts():
    assert "ppo.py" in {p.name for p in SCRIPTS}


def test_scripts_import_only_declared_packages():
    offenders = {p.name: foreign_imports(p.read_text()) for p in SCRIPTS}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_import_checker_catches_project_and_undeclared_imports():
    assert foreign_imports("import ppo\nfrom . import x\nimport scipy\nimport os, json\nimport torch.nn") == ["ppo", ".", "scipy"]


def test_shared_blocks_are_identical_across_scripts():
    sources = {p.name: p.read_text() for p in SCRIPTS}
    assert mismatched_blocks(sources) == []


def test_shared_block_checker_catches_a_divergent_copy():
    a = "x = 1\n# >>> shared: seeding\ndef f():\n    return 1\n# <<< shared: seeding\n"
    b = a.replace("return 1", "return 2")
    assert mismatched_blocks({"a.py": a, "c.py": a}) == []
    assert mismatched_blocks({"a.py": a, "b.py": b}) == [("seeding", ["a.py", "b.py"])]


def test_ppo_carries_the_shared_blocks():
    names = set(shared_blocks((ROOT / "ppo.py").read_text(), "ppo.py"))
    assert {"seeding", "make_env", "atomic writes", "run_episodes", "RunningMeanStd"} <= names


def loop_section(source: str) -> tuple:
    """(the training loop's banner, the code under it up to the next banner)."""
    lines = source.split("\n")
    start = next(i for i, l in enumerate(lines) if l.startswith("# ── Training loop ["))
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("# ── "))
    return lines[start], "\n".join(lines[start + 1:end])


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_the_loop_banner_lists_the_docstrings_step_tags_and_the_loop_carries_them(script):
    """Each script's own steps: the [S1]..[Sn] of its docstring's pseudocode are the tags in its training-loop banner,
    and each appears at its place in the loop (awr's [S3] as [S3a] and [S3b])."""
    source = (ROOT / script).read_text()
    docstring = ast.get_docstring(ast.parse(source))
    doc_tags = set(re.findall(r"\[(S\d[a-z]?)\]", docstring))
    banner, loop = loop_section(source)
    banner_tags = set(re.findall(r"\b(S\d[a-z]?)\b", banner))
    assert doc_tags and banner_tags == doc_tags, (script, banner, doc_tags)
    loop_tags = set(re.findall(r"\[(S\d[a-z]?)[\],]", loop))
    for tag in doc_tags:
        assert any(t.startswith(tag) for t in loop_tags), (script, tag, loop_tags)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_the_training_loop_comes_before_the_plumbing_and_in_the_first_half(script):
    lines = (ROOT / script).read_text().split("\n")
    banners = [l.split("── ")[1].split(" ")[0] for l in lines if l.startswith("# ── ")]
    order = ["Imports", "Hyperparameters", "Environment", "Networks", "Algorithm", "Training", "Evaluation", "Plumbing"]
    assert [b for b in order if b in banners] == banners, banners
    main_at = next(i for i, l in enumerate(lines) if l.startswith("def main("))
    assert main_at < len(lines) / 2, (script, main_at, len(lines))
