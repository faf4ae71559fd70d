"""The working directory on the bed: made at install, removed at uninstall, and
nothing else is ever removed."""

import shlex

import pytest

from croupier_plugin.core.errors import ConfigError
from croupier_plugin.core.infrastructure import InfrastructureSettings


def _settings(bed, base_dir, prefix=''):
    return InfrastructureSettings.from_properties('hpc', {
        'config': {'infrastructure_interface': 'SLURM'},
        'credentials': {'host': bed['host'], 'port': bed['port'], 'user': bed['user'],
                        'private_key_file': bed['keys']['ed25519'],
                        'known_hosts': bed['known_hosts']},
        'base_dir': base_dir, 'workdir_prefix': prefix})


def _exists(ssh, path):
    return ssh.run(f'test -e {shlex.quote(path)}').exit_code == 0


def test_only_the_directory_create_workdir_made_is_removed(bed, ssh, workdir):
    settings = _settings(bed, workdir, prefix='guard')
    made = settings.create_workdir(ssh, 'dep')
    assert made.startswith(workdir + '/guard_') and _exists(ssh, made)
    # paths the old guard let through: a folder of another shape, the base
    # itself, a way out of it; each must survive
    keep = f'{workdir}/keep/inner'
    ssh.run(f'mkdir -p {shlex.quote(keep)}', check=True)
    for path in (keep, workdir, f'{made}/..', f'{workdir}//keep', 'keep/inner'):
        with pytest.raises(ConfigError) as err:
            settings.remove_workdir(ssh, path)
        assert "property 'workdir'" in str(err.value)
    assert _exists(ssh, keep) and _exists(ssh, made)
    settings.remove_workdir(ssh, made)
    assert not _exists(ssh, made) and _exists(ssh, keep)


def test_a_base_dir_under_the_home_is_resolved_as_create_workdir_resolves_it(bed, ssh,
                                                                               workdir):
    relative = workdir[len(bed['home']) + 1:]
    settings = _settings(bed, f'~/{relative}')
    made = settings.create_workdir(ssh, 'my deployment')
    assert made.startswith(f'{workdir}/my_deployment_')
    settings.remove_workdir(ssh, made)
    assert not _exists(ssh, made)
