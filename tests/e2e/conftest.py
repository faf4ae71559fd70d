import pytest


@pytest.fixture
def bed_inputs(bed):
    return {'hpc_host': bed['host'], 'hpc_port': bed['port'], 'hpc_user': bed['user'],
            'hpc_private_key_file': bed['keys']['ed25519'],
            'hpc_known_hosts': bed['known_hosts']}


@pytest.fixture(autouse=True)
def fresh_cancel_flag():
    # the local engine keeps a cancel request in module state
    from cloudify.workflows import workflow_api
    workflow_api.cancel_request = False
    workflow_api.kill_request = False
    yield
    workflow_api.cancel_request = False
    workflow_api.kill_request = False
