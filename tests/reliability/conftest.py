"""conftest — the reliability suites' shared helpers, from tests/support: program paths, clean environments and
runs (procs.py), the receiver fixtures (pytest_fixtures.py), the figures summary (figures.py)."""
from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))

from figures import FIGURES_PATH, SOAK, figures, pytest_sessionfinish, pytest_terminal_summary  # noqa: E402,F401
from procs import BASE_ENV, BUILD, GEM_HOME, PROGRAMS, PY, Run, clean_env, program, run, run_python, run_ruby  # noqa: E402,F401
from pytest_fixtures import receiver, receiver_factory  # noqa: E402,F401
