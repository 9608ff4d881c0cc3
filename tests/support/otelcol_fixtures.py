"""otelcol_fixtures — pytest fixtures for the real Collector: `from otelcol_fixtures import collector, collector_factory`."""
from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from otelcol import Collector  # noqa: E402


@pytest.fixture(scope="module")
def collector():
    """One started Collector (default settings) shared by a module's tests; use mark()/received(since=)."""
    c = Collector().start()
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def collector_factory():
    """make(**Collector kwargs) -> a started Collector; all closed after the test."""
    made: list[Collector] = []

    def make(**kw) -> Collector:
        c = Collector(**kw)
        made.append(c)
        return c.start()

    try:
        yield make
    finally:
        for c in made:
            c.close()
