"""The job spec in parts (resources, attributes, array, container) read from
one table, and the values of one submission given to submit, not kept in it."""

import dataclasses
import os
import time

import pytest

from croupier_plugin.core.cluster import Cluster
from croupier_plugin.core.model import OPTIONS, JobSpec
from croupier_plugin.core.schedulers import ShellScheduler, SlurmScheduler
from croupier_plugin.core.transport.local import LocalTransport


def test_options_are_stored_in_their_parts() -> None:
    spec = JobSpec.from_options('j', {'commands': ['x'], 'nodes': 2, 'time': '10',
                                      'queue': 'debug', 'env': {'A': 1}, 'scale': 3,
                                      'mem': '4gb'})
    assert (spec.resources.nodes, spec.resources.max_time, spec.resources.partition,
            spec.resources.memory) == (2, 600, 'debug', '4G')
    assert spec.attributes.commands == ['x'] and spec.attributes.env == {'A': '1'}
    assert spec.job_array.indices == '0-2' and spec.container is None
    # the flat names read the parts
    assert (spec.nodes, spec.array, spec.commands) == (2, '0-2', ['x'])


def test_a_container_is_its_own_part() -> None:
    spec = JobSpec.from_options('j', {'commands': ['x'], 'image': 'i.sif', 'volumes': '/a:/b',
                                      'launcher': 'srun'}, container=True)
    assert spec.container is not None
    assert (spec.container.image, spec.container.volumes, spec.container.launcher) == \
        ('i.sif', ['/a:/b'], 'srun')


def test_every_job_option_has_a_row_or_is_read_across_options() -> None:
    across = {'scale', 'scale_max_in_parallel', *JobSpec.FACTORIES}
    for target in set(JobSpec.OPTION_ALIASES.values()):
        assert target in OPTIONS or target in across, target
    parts = {f.name for f in dataclasses.fields(JobSpec)}
    for part, field_name, _parser in OPTIONS.values():
        assert part in parts
        assert field_name in {f.name for f in dataclasses.fields(
            type(getattr(JobSpec.from_options('j', {'commands': ['x'], 'image': 'i'},
                                              container=True), part)))}


def test_a_submission_token_is_no_spec_field_but_a_render_argument() -> None:
    names = {f.name for f in dataclasses.fields(JobSpec)}
    assert not names & {'submit_token', 'local_script_data'}
    spec = JobSpec.from_options('j', {'commands': ['x']})
    with pytest.raises(TypeError):
        JobSpec('j', submit_token='abc')
    assert '#SBATCH --comment=croupier:abc' in SlurmScheduler().render_script(spec, 'abc')
    assert '--comment' not in SlurmScheduler().render_script(spec)


def test_blueprint_script_bytes_are_a_submit_argument(tmp_path) -> None:
    """The bytes go next to the job by the transport, and the job runs them."""
    home = tmp_path / 'home'
    workdir = tmp_path / 'work'
    home.mkdir()
    workdir.mkdir()
    cluster = Cluster('local', LocalTransport(env=dict(os.environ, HOME=str(home))),
                      ShellScheduler())
    spec = JobSpec.from_options('blue', {'local_script': 'scripts/run.sh', 'args': ['a b']})
    job = cluster.submit(spec, str(workdir), script_data=b'echo "got $1"\n')
    assert (workdir / 'run.sh').read_bytes() == b'echo "got $1"\n'
    assert spec.script is None      # the spec given is not changed
    rc = home / '.croupier' / 'jobs' / f'{job.job_id}.rc'
    deadline = time.monotonic() + 20
    while not rc.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rc.read_text().strip() == '0'
    assert job.stdout is not None
    with open(job.stdout, encoding='utf-8') as fh:
        assert fh.read() == 'got a b\n'
