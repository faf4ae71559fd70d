"""Fixtures for the portal's tests (the helpers are in portal_bed.py)."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from portal_bed import Portal  # noqa: E402


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Each phase's report kept on the test, so fixtures know whether it failed."""
    outcome = yield
    setattr(item, f'report_{outcome.get_result().when}', outcome.get_result())


@pytest.fixture
def portal(tmp_path):
    """A running portal with an empty catalogue, stopped after the test."""
    server = Portal(str(tmp_path)).start()
    yield server
    server.stop()


@pytest.fixture(scope='module')
def shared_portal(tmp_path_factory):
    """One running portal for a module's tests."""
    server = Portal(str(tmp_path_factory.mktemp('portal'))).start()
    yield server
    server.stop()


@pytest.fixture
def bed_inputs(bed):
    """The slurm-app's inputs that reach the bed's SLURM over SSH."""
    return {'hpc_host': bed['host'], 'hpc_port': bed['port'], 'hpc_user': bed['user'],
            'hpc_private_key_file': bed['keys']['ed25519'],
            'hpc_known_hosts': bed['known_hosts']}
