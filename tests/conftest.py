"""Shared test setup: the top-level scripts are importable as modules (`import ppo`) and run quietly."""
import os
import sys
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
# Gymnasium warns on every make("*-v4") that v5 exists; the project uses v4 on purpose (comparable results).
warnings.filterwarnings("ignore", message=".*is out of date.*")
