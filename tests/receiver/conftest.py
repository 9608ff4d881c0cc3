"""conftest — exposes the receiver fixtures to tests/receiver (other suites import pytest_fixtures themselves)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "support"))

from pytest_fixtures import receiver, receiver_factory  # noqa: E402,F401
