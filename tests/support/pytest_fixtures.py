"""pytest_fixtures — the `receiver` fixtures other suites import: `from pytest_fixtures import receiver, receiver_factory`."""
from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from otlp_receiver import Receiver  # noqa: E402


@pytest.fixture
def receiver():
    """A started Receiver (plain HTTP, 127.0.0.1, random port), stopped after the test."""
    r = Receiver().start()
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture
def receiver_factory():
    """make(**Receiver kwargs) -> a started Receiver (e.g. cors=True, tls=True); all stopped after the test."""
    made: list[Receiver] = []

    def make(**kw) -> Receiver:
        r = Receiver(**kw).start()
        made.append(r)
        return r

    try:
        yield make
    finally:
        for r in made:
            r.stop()
