"""The original Croupier's interface settings that Croupier acts on, end to end on the
bed's SLURM: interface_contained_in (the front-end is the Compute node's ip, also for
the exporter), config.country_tz with a recurrent reservation and
config.reservation_deletion_path. (recurring_workflow with croupier_configure:
test_original_workflows.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from croupier_plugin import runner
from croupier_plugin.core.exporter import ExporterClient, ExporterConfig, ExporterService

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from exporter_bed import TOKEN, exporter_config  # noqa: E402

pytestmark = pytest.mark.bed

HEAD = """tosca_definitions_version: cloudify_dsl_1_5
imports:
  - http://cloudify.co/spec/cloudify/7.0.5/types.yaml
  - plugin:croupier
inputs:
  hpc_port: {}
  hpc_user: {}
  hpc_private_key_file: {}
  hpc_known_hosts: {}
node_templates:
"""

# the front-end's login without its host: the host comes from the Compute node
CREDENTIALS = """      credentials:
        port: {get_input: hpc_port}
        user: {get_input: hpc_user}
        private_key_file: {get_input: hpc_private_key_file}
        known_hosts: {get_input: hpc_known_hosts}
"""


def write(tmp_path, text: str) -> str:
    """The blueprint ``text`` written to a file of ``tmp_path``; its path."""
    path = tmp_path / 'blueprint.yaml'
    path.write_text(text)
    return str(path)


def login_inputs(bed: dict) -> dict:
    """The blueprint's inputs: the bed's login, no host."""
    return {'hpc_port': bed['port'], 'hpc_user': bed['user'],
            'hpc_private_key_file': bed['keys']['ed25519'],
            'hpc_known_hosts': bed['known_hosts']}


def contained_blueprint(ip: str, exporter: str = '') -> str:
    """A SLURM interface contained in a Compute node whose ip is ``ip``, and one job;
    with ``exporter`` (an address), monitored by it with the original's labels."""
    monitored = f"""  exp:
    type: croupier.nodes.HPCExporter
    properties: {{address: '{exporter}'}}
""" if exporter else ''
    link = "      - {type: interface_monitored_by, target: exp}\n" if exporter else ''
    return HEAD + monitored + f"""  vm:
    type: cloudify.nodes.Compute
    properties:
      ip: '{ip}'
      agent_config: {{install_method: none}}
  hpc:
    type: croupier.nodes.InfrastructureInterface
    properties:
      config: {{infrastructure_interface: SLURM}}
{CREDENTIALS}      monitoring_options: {{monitor_period: 1, deployment_label: covid19, only_jobs: true}}
    relationships:
      - {{type: interface_contained_in, target: vm}}
{link}  hello:
    type: croupier.nodes.Job
    properties:
      job_options: {{commands: ['hostname > where.txt'], max_time: '00:01:00'}}
    relationships:
      - {{type: task_managed_by_interface, target: hpc}}
"""


@pytest.fixture
def exporter(bed):
    """An exporter on loopback that logs in to the bed."""
    service = ExporterService(ExporterConfig.from_mapping(exporter_config(bed))).start()
    yield service
    service.stop()


def test_interface_contained_in_a_compute_node_reaches_its_ip(bed, ssh, tmp_path, exporter,
                                                              monkeypatch):
    """No credentials.host: install, run_jobs and uninstall reach the front-end at the
    Compute node's ip, and the exporter is told that host (with the interface's
    deployment_label and only_jobs)."""
    monkeypatch.setenv('CROUPIER_EXPORTER_TOKEN', TOKEN)
    env = runner.init_env(write(tmp_path, contained_blueprint(bed['host'], exporter.address)),
                          login_inputs(bed), name='contained')
    runner.execute(env, 'install')
    [reg] = ExporterClient(exporter.address, token=TOKEN).registrations()
    assert (reg['host'], reg['port'], reg['deployment_label'], reg['only_jobs']) == \
        (bed['host'], bed['port'], 'covid19', True)
    props = {i.node_id: i.runtime_properties for i in env.storage.get_node_instances()}
    workdir = props['hpc']['workdir']
    assert props['hpc']['contained_host'] == bed['host']
    assert ssh.run(f'test -d {workdir}').exit_code == 0
    runner.execute(env, 'run_jobs')
    hello = {i.node_id: i for i in env.storage.get_node_instances()}['hello']
    assert hello.runtime_properties['state'] == 'COMPLETED'
    assert ssh.read_file(f'{workdir}/where.txt').decode().strip()
    runner.execute(env, 'uninstall')
    assert ssh.run(f'test -e {workdir}').exit_code == 1


def croupier(*args: str, home) -> subprocess.CompletedProcess:
    """The ``croupier`` command with its store under ``home``."""
    return subprocess.run([sys.executable, '-m', 'croupier_plugin.cli', *args],
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, CROUPIER_HOME=str(home)))


def input_args(inputs: dict) -> list[str]:
    """``-i NAME=VALUE`` arguments for ``inputs``."""
    return [arg for name, value in inputs.items() for arg in ('-i', f'{name}={value}')]


def test_a_compute_node_without_an_ip_fails_the_install_naming_it(bed, tmp_path):
    """The Compute node gives no ip (and no plugin set one): validation cannot know (a
    cloud plugin may set it at install), the install fails naming the interface's
    credentials.host and the node that should have given it, with no traceback."""
    path = write(tmp_path, contained_blueprint(''))
    done = croupier('run', path, *input_args(login_inputs(bed)), home=tmp_path / 'home')
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "node 'hpc', property 'credentials.host' = None: is required: give it, or an ip " \
           "to node 'vm'" in out
    assert 'Traceback' not in out


RESERVED = """  hpc:
    type: croupier.nodes.InfrastructureInterface
    properties:
      config:
        infrastructure_interface: SLURM
        country_tz: Pacific/Kiritimati
        reservation_deletion_path: {deletion}
      credentials:
        host: {host}
        port: {{get_input: hpc_port}}
        user: {{get_input: hpc_user}}
        private_key_file: {{get_input: hpc_private_key_file}}
        known_hosts: {{get_input: hpc_known_hosts}}
      monitoring_options: {{monitor_period: 1}}
"""
RESERVED_JOB = """  {name}:
    type: croupier.nodes.Job
    properties:
      job_options:
        commands: ['echo "$SLURM_JOB_RESERVATION" > {name}.txt']
        max_time: '00:01:00'
        reservation: '{pattern}'
        recurrent_reservation: true
    relationships:
      - {{type: task_managed_by_interface, target: hpc}}
"""


@pytest.fixture
def reservation(bed):
    """A SLURM reservation for the test user, named as a recurrent reservation of
    today in the interface's time zone (UTC+14, a day ahead of UTC for ten hours
    of each day); the pattern and the name. Deleted at the end by root."""
    tag = uuid.uuid4().hex[:6]
    pattern = f'crt{tag}_%Y%m%d'
    name = datetime.now(ZoneInfo('Pacific/Kiritimati')).strftime(pattern)
    made = subprocess.run(['scontrol', 'create', 'reservation', f'ReservationName={name}',
                           f'Users={bed["user"]}', 'StartTime=now', 'Duration=10',
                           'Nodes=ALL', 'Flags=ignore_jobs'], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    yield pattern, name
    subprocess.run(['scontrol', 'delete', 'reservation', name], capture_output=True)


def test_reservation_named_in_the_interface_time_zone_is_deleted_after_run_jobs(
        bed, ssh, workdir, tmp_path, reservation):
    """Two jobs in a recurrent reservation: its name is the pattern formatted at the
    interface's country_tz (the jobs ran in it: SLURM refuses an unknown
    reservation), and after run_jobs the site's reservation_deletion_path ran once
    on the front-end with that name."""
    pattern, name = reservation
    deletion = f'{workdir}/sresdelete'
    ssh.run(f"printf '#!/bin/sh\\necho \"$# $1\" >> {workdir}/deleted.txt\\n' > {deletion} "
            f"&& chmod 755 {deletion}", check=True)
    text = HEAD + RESERVED.format(deletion=deletion, host=bed['host']) + \
        RESERVED_JOB.format(name='first', pattern=pattern) + \
        RESERVED_JOB.format(name='second', pattern=pattern)
    env = runner.init_env(write(tmp_path, text), login_inputs(bed), name='reserved')
    runner.execute(env, 'install')
    try:
        runner.execute(env, 'run_jobs')
        props = {i.node_id: i.runtime_properties for i in env.storage.get_node_instances()}
        jobdir = props['hpc']['workdir']
        for job in ('first', 'second'):
            assert props[job]['state'] == 'COMPLETED'
            assert ssh.read_file(f'{jobdir}/{job}.txt').decode() == name + '\n'
        assert ssh.read_file(f'{workdir}/deleted.txt').decode() == f'1 {name}\n'
    finally:
        runner.execute(env, 'uninstall')
