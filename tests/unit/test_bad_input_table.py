"""Bad blueprints and inputs, in one table: each is refused by `croupier validate`
(and at install, before any host is touched) with a message naming node, property
and value, or is accepted on purpose (the row says why). No bad input gives a
traceback.

A row is a ``Row`` (or a plain tuple in ``Row``'s field order): its case name, the
blueprint text, the text the error must hold, and for a value accepted on purpose
the reason (``accepted``) instead of an error text; ``inputs`` are `-i` arguments.
Owners of node types add their rows to ``CASES``.
"""

from typing import NamedTuple

import pytest

from croupier_plugin.cli import main

HEAD = """tosca_definitions_version: cloudify_dsl_1_4
imports:
  - http://cloudify.co/spec/cloudify/7.0.5/types.yaml
  - plugin:croupier
node_templates:
"""


def blueprint(config='{infrastructure_interface: SLURM}',
              credentials='{host: h.example.org, user: u, password: pw}', job='{commands: [run]}',
              extra_interface='', job_type='croupier.nodes.Job', more=''):
    return HEAD + f"""  hpc:
    type: croupier.nodes.InfrastructureInterface
    properties:
      config: {config}
      credentials: {credentials}
{extra_interface}  job1:
    type: {job_type}
    properties:
      job_options: {job}
    relationships:
      - {{type: task_managed_by_interface, target: hpc}}
{more}"""


VAULT = """  vault:
    type: croupier.nodes.Vault
    properties: {props}
"""

EXPORTER = """  exp:
    type: croupier.nodes.HPCExporter
    properties: {props}
"""
MONITORED = """    relationships:
      - {type: interface_monitored_by, target: exp}
"""


def dataflow(protocol='HTTP', web_endpoint='http://web.example.org', store_extra='',
             source_type='croupier.nodes.WebDataSource', source_props='{resource: /d.txt}',
             target_type='croupier.nodes.FileDataSource', target_props='{filepath: d.txt}',
             store_credentials='{user: u, password: pw}', located=True):
    """A web server, a file store, a source on the first and a target on the second,
    a transfer between them and the job reading the target."""
    at_web = "    relationships:\n      - {type: ds_located_at, target: web}\n" if located else ''
    return f"""  web:
    type: croupier.nodes.DataAccessInfrastructure
    properties: {{endpoint: '{web_endpoint}'}}
  store:
    type: croupier.nodes.DataAccessInfrastructure
    properties:
      endpoint: files.example.org
      credentials: {store_credentials}
{store_extra}  src:
    type: {source_type}
    properties: {source_props}
{at_web}  dst:
    type: {target_type}
    properties: {target_props}
    relationships:
      - {{type: ds_located_at, target: store}}
  move:
    type: croupier.nodes.DataTransfer
    properties: {{transfer_protocol: {protocol}}}
    relationships:
      - {{type: from_source, target: src}}
      - {{type: to_target, target: dst}}
"""


class Row(NamedTuple):
    """One bad (or surprising but accepted) input and what Croupier must answer."""
    case: str
    text: str                   # the blueprint
    expected: str = ''          # text the error must hold (refused rows)
    accepted: str = ''          # why the value is accepted on purpose (accepted rows)
    inputs: tuple = ()          # `-i` arguments of `croupier validate`


# (case, blueprint text, text the error must hold[, accepted, inputs])
CASES = [
    ('unknown scheduler', blueprint(config='{infrastructure_interface: LSF}'),
     "node 'hpc', property 'config.infrastructure_interface' = 'LSF'"),
    ('empty scheduler', blueprint(config="{infrastructure_interface: ''}"),
     "node 'hpc', property 'config.infrastructure_interface' = ''"),
    # (refused by Cloudify's own parser, whose message names node and property)
    ('unknown config field', blueprint(config='{infrastructure_interface: SLURM, colour: 1}'),
     "'hpc' node 'config.colour' property is not part of"),
    ('unknown transport', blueprint(config='{infrastructure_interface: SLURM, transport: ftp}'),
     "node 'hpc', property 'config.transport' = 'ftp'"),
    ('missing host', blueprint(credentials='{user: u, password: pw}'),
     "node 'hpc', property 'credentials.host' = None"),
    ('missing user', blueprint(credentials='{host: h, password: pw}'),
     "node 'hpc', property 'credentials.user' = None"),
    ('no way to log in', blueprint(credentials='{host: h, user: u}'),
     "node 'hpc', property 'credentials' = "),
    ('port out of range', blueprint(credentials='{host: h, user: u, password: pw, port: 70000}'),
     "node 'hpc', property 'credentials.port' = 70000"),
    ('port not a number', blueprint(credentials='{host: h, user: u, password: pw, port: ssh}'),
     "node 'hpc', property 'credentials.port' = 'ssh'"),
    ('two different ports', blueprint(
        credentials='{host: h, user: u, password: pw, port: 2200, ssh_port: 2222}'),
     "node 'hpc', property 'credentials.ssh_port' = 2222"),
    ('host with a space', blueprint(credentials="{host: 'a b', user: u, password: pw}"),
     "node 'hpc', property 'credentials.host' = 'a b'"),
    ('not a private key', blueprint(credentials="{host: h, user: u, private_key: 'hello'}"),
     "node 'hpc', property 'credentials.private_key' = '<hidden>'"),
    ('missing key file', blueprint(
        credentials="{host: h, user: u, private_key_file: /nonexistent/key}"),
     "node 'hpc', property 'credentials.private_key_file' = '/nonexistent/key'"),
    ('bad pinned host key', blueprint(
        credentials="{host: h, user: u, password: pw, host_key: 'ssh-ed25519 nope'}"),
     "node 'hpc', property 'credentials.host_key' = 'ssh-ed25519 nope'"),
    ('host_key_check not a boolean', blueprint(
        credentials="{host: h, user: u, password: pw, host_key_check: maybe}"),
     "node 'hpc', property 'credentials.host_key_check' = 'maybe'"),
    ('negative timeout', blueprint(
        credentials="{host: h, user: u, password: pw, connect_timeout: -1}"),
     "node 'hpc', property 'credentials.connect_timeout' = -1"),
    ('monitor period zero', blueprint(
        extra_interface='      monitoring_options: {monitor_period: 0}\n'),
     "node 'hpc', property 'monitoring_options.monitor_period' = 0"),
    ('unknown monitoring option', blueprint(
        extra_interface='      monitoring_options: {period: 5}\n'),
     "'hpc' node 'monitoring_options.period' property is not part of"),
    ('job prefix with a space', blueprint(extra_interface="      job_prefix: 'a b'\n"),
     "node 'hpc', property 'job_prefix' = 'a b'"),
    ('negative nodes', blueprint(job='{commands: [run], nodes: -2}'),
     "node 'job1', property 'job_options.nodes' = -2"),
    ('nodes not a number', blueprint(job='{commands: [run], nodes: many}'),
     "node 'job1', property 'job_options.nodes' = 'many'"),
    ('zero tasks', blueprint(job='{commands: [run], tasks: 0}'),
     "node 'job1', property 'job_options.tasks' = 0"),
    ('malformed max_time', blueprint(job="{commands: [run], max_time: '1:2:3:4'}"),
     "node 'job1', property 'job_options.max_time' = '1:2:3:4'"),
    ('max_time in words', blueprint(job="{commands: [run], max_time: 'ten minutes'}"),
     "node 'job1', property 'job_options.max_time' = 'ten minutes'"),
    ('bad memory', blueprint(job='{commands: [run], memory: lots}'),
     "node 'job1', property 'job_options.memory' = 'lots'"),
    ('unknown job option', blueprint(job='{commands: [run], colour: red}'),
     "node 'job1', property 'job_options.colour' = 'red'"),
    ('partition with shell text', blueprint(job="{commands: [run], partition: 'x;rm'}"),
     "node 'job1', property 'job_options.partition' = 'x;rm'"),
    ('unknown mail type', blueprint(job='{commands: [run], mail_type: SOMETIMES}'),
     "node 'job1', property 'job_options.mail_type' = 'SOMETIMES'"),
    ('bad array range', blueprint(job="{commands: [run], array: '1-'}"),
     "node 'job1', property 'job_options.array' = '1-'"),
    ('bad env name', blueprint(job="{commands: [run], env: {'1X': v}}"),
     "node 'job1', property 'job_options.env.1X' = '1X'"),
    ('command not a string', blueprint(job='{commands: [true]}'),
     "node 'job1', property 'job_options.commands[0]' = True"),
    ('neither commands nor script', blueprint(job='{nodes: 1}'),
     "node 'job1', property 'job_options' = {'nodes': 1}"),
    ('commands and script', blueprint(job='{commands: [run], script: run.sh}'),
     "node 'job1', property 'job_options.script' = 'run.sh'"),
    ('arguments without a script', blueprint(job='{commands: [run], arguments: [a]}'),
     "node 'job1', property 'job_options.arguments' = ['a']"),
    ('output path on two lines', blueprint(job='{commands: [run], stdout_file: "a\\nb"}'),
     "node 'job1', property 'job_options.stdout_file' = 'a\\nb'"),
    ('job_options not a mapping', blueprint(job='[run]'),
     "node 'job1', property 'job_options' = ['run']"),
    ('container option on a plain job', blueprint(job='{commands: [run], image: x.sif}'),
     "node 'job1', property 'job_options.image' = 'x.sif'"),
    ('SingularityJob without image', blueprint(job='{commands: [run]}',
                                                job_type='croupier.nodes.SingularityJob'),
     "node 'job1', property 'job_options.image' = None"),
    ('bad launcher', blueprint(job='{commands: [run], image: i, launcher: aprun}',
                               job_type='croupier.nodes.SingularityJob'),
     "node 'job1', property 'job_options.launcher' = 'aprun'"),
    ('PBS has no qos', blueprint(config='{infrastructure_interface: PBS}',
                                 job='{commands: [run], qos: normal}'),
     "node 'job1', property 'job_options.qos' = 'normal'"),
    ('PyCOMPSsJob without app_file', blueprint(
        config='{infrastructure_interface: PYCOMPSS}', job='{app_name: a}',
        job_type='croupier.nodes.PyCOMPSsJob'),
     "node 'job1', property 'job_options.app_file' = None"),
    ('unknown compss option', blueprint(
        config='{infrastructure_interface: PYCOMPSS}',
        job='{app_file: a.py, compss_args: {num_nodez: 2}}',
        job_type='croupier.nodes.PyCOMPSsJob'),
     "node 'job1', property 'job_options.compss_args.num_nodez' = 2"),
    ('PyCOMPSsJob on SLURM', blueprint(job='{app_file: a.py}',
                                      job_type='croupier.nodes.PyCOMPSsJob'),
     "node 'job1': cannot run on interface 'hpc' (SLURM)"),
    ('PYCOMPSS monitored by SHELL', blueprint(
        config='{infrastructure_interface: PYCOMPSS}', job='{app_file: a.py}',
        job_type='croupier.nodes.PyCOMPSsJob',
        extra_interface='      monitoring_options: {monitor_interface: SHELL}\n'),
     "node 'hpc', property 'monitoring_options.monitor_interface' = 'SHELL'"),
    ('dependency on a non-job', blueprint(
        more="  other:\n    type: croupier.nodes.Job\n    properties:\n"
             "      job_options: {commands: [run]}\n    relationships:\n"
             "      - {type: task_managed_by_interface, target: hpc}\n"
             "      - {type: job_depends_on, target: hpc}\n"),
     "node 'other': job_depends_on target 'hpc' is not a croupier.nodes.Job"),
    ('Vault without address', blueprint(
        more=VAULT.format(props="{jwt: a.b.c, user: alice, address: ''}")).replace(
        "      credentials: {host: h.example.org, user: u, password: pw}\n",
        "      credentials: {host: h.example.org}\n    relationships:\n"
        "      - {type: retrieve_credentials_from_vault, target: vault}\n"),
     "node 'vault', property 'address' = ''"),
    ('Vault with a malformed JWT', blueprint(
        more=VAULT.format(props="{jwt: nope, user: alice, address: v.example.org}")).replace(
        "      credentials: {host: h.example.org, user: u, password: pw}\n",
        "      credentials: {host: h.example.org}\n    relationships:\n"
        "      - {type: retrieve_credentials_from_vault, target: vault}\n"),
     "node 'vault', property 'jwt' = '<hidden>'"),
    ('exporter without address', blueprint(
        extra_interface=MONITORED, more=EXPORTER.format(props='{}')),
     "node 'exp', property 'address' = '': is required"),
    ('exporter address with a password', blueprint(
        extra_interface=MONITORED,
        more=EXPORTER.format(props="{hpc_exporter_address: 'http://u:pw@x:9110'}")),
     "node 'exp', property 'hpc_exporter_address' = 'http://<hidden>@x:9110'"),
    ('monitored by a Vault', blueprint(
        extra_interface=MONITORED.replace('exp', 'vault'),
        more=VAULT.format(props="{jwt: a.b.c, user: alice, address: v.example.org}")),
     "node 'hpc': interface_monitored_by target 'vault' is not a croupier.nodes.HPCExporter"),
    ('local interface monitored', blueprint(
        config='{infrastructure_interface: SHELL, transport: local}', credentials='{}',
        extra_interface=MONITORED, more=EXPORTER.format(props='{address: 127.0.0.1:9110}')),
     "node 'hpc', property 'config.transport' = 'local'"),
    ('bad hpc_label', blueprint(
        extra_interface="      monitoring_options: {hpc_label: 'a;b'}\n"),
     "node 'hpc', property 'monitoring_options.hpc_label' = 'a;b'"),
    ('GridFTP transfer', blueprint(more=dataflow(protocol='GridFTP')),
     "node 'move', property 'transfer_protocol' = 'GridFTP': GridFTP transfers are not "
     "supported by Croupier"),
    ('unknown transfer protocol', blueprint(more=dataflow(protocol='FTP')),
     "node 'move', property 'transfer_protocol' = 'FTP': must be one of HTTP, RSYNC, SFTP"),
    ('data infrastructure without endpoint', blueprint(more=dataflow(web_endpoint='')),
     "node 'web', property 'endpoint' = ''"),
    ('unknown supported protocol', blueprint(more=dataflow(
        store_extra="      supported_protocols: [Carrier-Pigeon]\n")),
     "node 'store', property 'supported_protocols[0]' = 'Carrier-Pigeon'"),
    ('protocol the store does not serve', blueprint(more=dataflow(
        protocol='SFTP', source_type='croupier.nodes.FileDataSource',
        source_props='{filepath: a.txt}', web_endpoint='files2.example.org',
        store_extra="      supported_protocols: [RSync]\n").replace(
        "properties: {endpoint: 'files2.example.org'}",
        "properties: {endpoint: 'files2.example.org', credentials: {user: v, password: pw}}")),
     "node 'move', property 'transfer_protocol' = 'SFTP': 'store' supports only RSYNC"),
    ('data source without location', blueprint(more=dataflow(located=False)),
     "node 'src': a data source needs exactly one ds_located_at relationship"),
    ('empty filepath', blueprint(more=dataflow(target_props="{filepath: ''}")),
     "node 'dst', property 'filepath' = ''"),
    ('HTTP from a host without a web endpoint', blueprint(more=dataflow(
        web_endpoint='plain-host.example.org')),
     "node 'move', property 'from_source' = 'src': HTTP needs an http(s) endpoint"),
    ('HTTP into a web source', blueprint(more=dataflow(
        target_type='croupier.nodes.WebDataSource', target_props='{resource: /x}')),
     "node 'move', property 'to_target' = 'dst'"),
    ('RSYNC to a host with only a password', blueprint(more=dataflow(
        protocol='RSYNC', source_type='croupier.nodes.FileDataSource',
        source_props='{filepath: a.txt}', web_endpoint='files2.example.org').replace(
        "properties: {endpoint: 'files2.example.org'}",
        "properties: {endpoint: 'files2.example.org', internet_access: true,\n"
        "                 credentials: {user: v, password: pw}}")),
     "node 'move', property 'transfer_protocol' = 'RSYNC': RSYNC between 'web' and 'store' "
     "logs in to 'store' with its private key"),
    ('unreadable key on a data infrastructure', blueprint(more=dataflow(
        store_credentials='{user: u, private_key_file: /nonexistent/key}')),
     "node 'store', property 'credentials.private_key_file' = '/nonexistent/key'"),
    ('publish not a list of paths', blueprint(
        job='{commands: [run]}').replace("      job_options: {commands: [run]}\n",
                                         "      job_options: {commands: [run]}\n"
                                         "      publish: [{a: b}]\n"),
     "node 'job1', property 'publish' = [{'a': 'b'}]"),
    ('job input that is not data', blueprint().replace(
        "      - {type: task_managed_by_interface, target: hpc}\n",
        "      - {type: task_managed_by_interface, target: hpc}\n"
        "      - {type: input, target: hpc}\n"),
     "node 'job1': input target 'hpc' is not a data source"),
]


ROWS = [Row(*case) for case in CASES]


def test_every_row_either_names_an_error_or_says_why_it_is_accepted():
    for row in ROWS:
        assert bool(row.expected) != bool(row.accepted), row.case
    assert len({row.case for row in ROWS}) == len(ROWS), 'case names must be unique'


@pytest.mark.parametrize('row', ROWS, ids=[row.case for row in ROWS])
def test_bad_input_is_refused_naming_node_property_and_value(tmp_path, capsys, row):
    path = tmp_path / 'blueprint.yaml'
    path.write_text(row.text, encoding='utf-8')
    args = ['validate', str(path)]
    for item in row.inputs:
        args += ['-i', item]
    # an exception escaping main() would be a traceback for the user: it fails the row
    status = main(args)
    out, err = capsys.readouterr()
    assert 'Traceback' not in out + err
    assert 'pw' not in err.replace('password', '')
    if row.accepted:
        assert status == 0, err
        return
    # 1: refused by Croupier's checks; 2: by Cloudify's blueprint parser
    assert status in (1, 2)
    assert row.expected in err


def test_the_table_is_long_enough():
    assert len(CASES) >= 44


def test_a_broken_vault_is_named_once_and_its_interfaces_jobs_are_not_blamed(tmp_path, capsys):
    """Two interfaces take their login from one Vault node without an address:
    the Vault's own error is the one problem shown, once."""
    text = blueprint(
        credentials='{host: h.example.org}',
        extra_interface="    relationships:\n"
                        "      - {type: retrieve_credentials_from_vault, target: vault}\n",
        more=VAULT.format(props="{jwt: a.b.c, user: alice, address: ''}") + """  hpc2:
    type: croupier.nodes.InfrastructureInterface
    properties:
      config: {infrastructure_interface: SLURM}
      credentials: {host: h2.example.org}
    relationships:
      - {type: retrieve_credentials_from_vault, target: vault}
  job2:
    type: croupier.nodes.Job
    properties:
      job_options: {commands: [run]}
    relationships:
      - {type: task_managed_by_interface, target: hpc2}
""")
    path = tmp_path / 'blueprint.yaml'
    path.write_text(text)
    assert main(['validate', str(path)]) == 1
    err = capsys.readouterr().err
    problems = [line for line in err.splitlines() if line.startswith('error: ')]
    assert problems == ["error: node 'vault', property 'address' = '': is required "
                        "(e.g. https://vault:8200)"], err
