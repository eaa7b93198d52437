"""Shared test setup: the top-level scripts are importable as modules (`import ppo`) and run quietly."""
import os
import sys
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
# Gymnasium warns on every make("*-v4") that v5 exists; the project uses v4 on purpose (comparable results).
warnings.filterwarnings("ignore", message=".*is out of date.*")


def pytest_collection_modifyitems(config, items):
    """Tests in test_*_learning.py are marked `learning`: `pytest -m "not learning"` runs the fast layers alone
    (math, bookkeeping, command line, design), the ones benchmark/mutation.py holds to killing every mutant."""
    import pytest
    for item in items:
        if item.path.name.endswith("_learning.py"):
            item.add_marker(pytest.mark.learning)
