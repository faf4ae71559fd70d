"""The site-wide known_hosts file (site configuration) is trusted by the SSH
transport, on the bed's real sshd: without it an interface that pins no host
key is refused; with it, it connects."""

import pytest

from croupier_plugin import edge
from croupier_plugin.core.errors import HostKeyError
from croupier_plugin.core.transport import close_all

pytestmark = pytest.mark.bed


def test_the_site_known_hosts_file_is_used(bed, tmp_path, monkeypatch):
    # a home with no ~/.ssh/known_hosts: only the site's file can know the bed's key
    monkeypatch.setenv('HOME', str(tmp_path))
    for variable in ('CROUPIER_CONFIG', 'CROUPIER_KNOWN_HOSTS'):
        monkeypatch.delenv(variable, raising=False)
    props = {'config': {'infrastructure_interface': 'SLURM'},
             'credentials': {'host': bed['host'], 'port': bed['port'], 'user': bed['user'],
                             'private_key_file': bed['keys']['ed25519']}}
    close_all()     # a pooled connection would skip the host key check
    with pytest.raises(HostKeyError, match='is unknown'):
        edge.interface_settings('hpc', props).make_transport().run('true')
    close_all()
    config = tmp_path / 'config.yaml'
    config.write_text(f"known_hosts: {bed['known_hosts']}\n")
    monkeypatch.setenv('CROUPIER_CONFIG', str(config))
    try:
        result = edge.interface_settings('hpc', props).make_transport().run('echo reached')
        assert result.exit_code == 0 and result.stdout.strip() == 'reached'
    finally:
        close_all()
