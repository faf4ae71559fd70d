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

HEAD = """tosca_definitions_version: cloudify_dsl_1_5
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


CONTAINED_IN = """    relationships:
      - {type: interface_contained_in, target: vm}
"""
VM = """  vm:
    type: cloudify.nodes.Compute
    properties: {{ip: {ip}, agent_config: {{install_method: none}}}}
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
    ('host_key not a string', blueprint(
        credentials="{host: h, user: u, password: pw, host_key: [ssh-ed25519, AAAA]}"),
     "node 'hpc', property 'credentials.host_key' = ['ssh-ed25519', 'AAAA']"),
    ('host_key_check not a boolean', blueprint(
        credentials="{host: h, user: u, password: pw, host_key_check: maybe}"),
     "node 'hpc', property 'credentials.host_key_check' = 'maybe'"),
    ('negative timeout', blueprint(
        credentials="{host: h, user: u, password: pw, connect_timeout: -1}"),
     "node 'hpc', property 'credentials.connect_timeout' = -1"),
    ('fractional max_sessions', blueprint(
        credentials="{host: h, user: u, password: pw, max_sessions: 0.5}"),
     "node 'hpc', property 'credentials.max_sessions' = 0.5"),
    ('reconnect timeout not a number', blueprint(
        credentials="{host: h, user: u, password: pw, reconnect_timeout: .nan}"),
     "node 'hpc', property 'credentials.reconnect_timeout' = nan"),
    ('a key pasted as the key file', blueprint(
        credentials="{host: h, user: u, private_key_file: \"-----BEGIN OPENSSH PRIVATE KEY-----"
                    "\\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU\\n-----END OPENSSH PRIVATE KEY-----\"}"),
     "node 'hpc', property 'credentials.private_key_file' = '<hidden: "),
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
    ('exporter timeout not a number', blueprint(
        extra_interface=MONITORED,
        more=EXPORTER.format(props="{address: 'http://127.0.0.1:9110', timeout: .nan}")),
     "node 'exp', property 'timeout' = nan: must be a finite number"),
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
    ('GridFTP transfer from a web source', blueprint(more=dataflow(protocol='GridFTP')),
     "node 'move', property 'from_source' = 'src': GRIDFTP reads a FileDataSource on an "
     "infrastructure with SSH credentials"),
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
    ('publish path climbing out with ..', blueprint(
        job='{commands: [run]}').replace("      job_options: {commands: [run]}\n",
                                         "      job_options: {commands: [run]}\n"
                                         "      publish: [out.txt, 'x/..']\n"),
     "node 'job1', property 'publish[1]' = 'x/..': holds '..'"),
    ('password in a data endpoint', blueprint(more=dataflow(
        web_endpoint='https://u:pw@web.example.org/files')),
     "node 'web', property 'endpoint' = 'https://<hidden>@web.example.org/files': must not "
     "hold a user or password"),
    ('web resource that leaves the target folder', blueprint(more=dataflow(
        source_props="{resource: '/data/..%2F..%2F.bashrc'}", target_props='{filepath: in/}')),
     "node 'move', property 'from_source' = 'src': its resource '/data/..%2F..%2F.bashrc': "
     "its last part decodes to '../../.bashrc'"),
    ('job input that is not data', blueprint().replace(
        "      - {type: task_managed_by_interface, target: hpc}\n",
        "      - {type: task_managed_by_interface, target: hpc}\n"
        "      - {type: input, target: hpc}\n"),
     "node 'job1': input target 'hpc' is not a data source"),
]



# -- every property of the interface and job node types, bad in every way -------

JOB_LINE = "      job_options: {commands: [run]}\n"


def job_props(lines, job='{commands: [run]}', job_type='croupier.nodes.Job', config=None):
    """A blueprint whose job1 also has the job-level property ``lines``."""
    text = blueprint(job=job, job_type=job_type,
                     **({'config': config} if config else {}))
    return text.replace(f"      job_options: {job}\n", f"      job_options: {job}\n{lines}")


def opt(case, options, prop, shown, **kw):
    """A job_options row: job1's options ``options`` refused naming ``prop`` = ``shown``."""
    return Row(case, blueprint(job=options, **kw),
               f"node 'job1', property 'job_options.{prop}' = {shown}")


def iface(case, lines, prop, shown, **kw):
    """An interface row: hpc's extra property lines refused naming ``prop`` = ``shown``."""
    return Row(case, blueprint(extra_interface=lines, **kw),
               f"node 'hpc', property '{prop}' = {shown}")


def monitoring(case, options, prop, shown):
    """An interface row whose monitoring_options are ``options``."""
    return iface(case, f"      monitoring_options: {options}\n",
                 f'monitoring_options.{prop}', shown)


def parser(case, text, node, prop, shown):
    """Refused by Cloudify's parser (plugin.yaml types the property)."""
    return Row(case, text, f"Property type validation failed in '{node}': property '{prop}' "
                           f"type is")


def accepted(case, text, why, inputs=()):
    return Row(case, text, accepted=why, inputs=inputs)


def with_input(case, name, value, job, expected, accept=''):
    """The bad value comes through an input (`-i NAME=VALUE`): inputs bypass the
    parser's ASCII-only rule for blueprint text, so unicode reaches Croupier."""
    text = f"inputs:\n  {name}: {{}}\n" + blueprint(job=job)
    return Row(case, text, expected, accept, (f'{name}={value}',))


PYCOMPSS = dict(config='{infrastructure_interface: PYCOMPSS}',
                job_type='croupier.nodes.PyCOMPSsJob')
SINGULARITY = dict(job_type='croupier.nodes.SingularityJob')
LONG = 'x' * 5000

CASES += [
    # config
    Row('scheduler as a list', blueprint(config='{infrastructure_interface: [SLURM]}'),
        "node 'hpc', property 'config.infrastructure_interface' = ['SLURM']"),
    Row('scheduler with a newline', blueprint(config='{infrastructure_interface: "SLURM\\n"}'),
        "node 'hpc', property 'config.infrastructure_interface' = 'SLURM\\n'"),
    accepted('scheduler in lower case', blueprint(config='{infrastructure_interface: slurm}'),
             'scheduler names are case-insensitive, as in the original Croupier'),
    Row('config not a mapping', blueprint(config='[SLURM]'),
        "Property type validation failed in 'hpc': property 'config' type is"),
    Row('transport a number', blueprint(config='{infrastructure_interface: SLURM, transport: 5}'),
        "node 'hpc', property 'config.transport' = 5"),
    Row('transport with a newline',
        blueprint(config='{infrastructure_interface: SLURM, transport: "ssh\\n"}'),
        "node 'hpc', property 'config.transport' = 'ssh\\n'"),
    Row('module with a newline',
        blueprint(config='{infrastructure_interface: SLURM, modules: ["gcc\\n"]}'),
        "node 'hpc', property 'config.modules[0]' = 'gcc\\n'"),
    Row('module with a newline in the middle',
        blueprint(config='{infrastructure_interface: SLURM, modules: ["gcc\\nid"]}'),
        "node 'hpc', property 'config.modules[0]' = 'gcc\\nid'"),
    Row('modules a mapping', blueprint(config='{infrastructure_interface: SLURM, modules: {a: b}}'),
        "node 'hpc', property 'config.modules' = {'a': 'b'}"),
    Row('interface partition with a newline',
        blueprint(config='{infrastructure_interface: SLURM, partition: "debug\\n"}'),
        "node 'hpc', property 'config.partition' = 'debug\\n'"),
    Row('interface partition very long',
        blueprint(config=f'{{infrastructure_interface: SLURM, partition: {LONG}}}'),
        "node 'hpc', property 'config.partition' = 'xxxxxxxx"),
    accepted('interface partition a number',
             blueprint(config='{infrastructure_interface: SLURM, partition: 5}'),
             'a partition may be named by digits; it is written as 5'),
    Row('country_tz a list', blueprint(config='{infrastructure_interface: SLURM, country_tz: [1]}'),
        "node 'hpc', property 'config.country_tz' = [1]"),
    # credentials (their numbers and words are checked by the transport's settings)
    Row('port NaN', blueprint(credentials='{host: h, user: u, password: pw, port: .nan}'),
        "node 'hpc', property 'credentials.port' = nan"),
    Row('port fractional', blueprint(credentials='{host: h, user: u, password: pw, port: 2.5}'),
        "node 'hpc', property 'credentials.port' = 2.5"),
    Row('port a boolean', blueprint(credentials='{host: h, user: u, password: pw, port: true}'),
        "node 'hpc', property 'credentials.port' = True"),
    # (the transport shows a value with a line break only as <hidden ...>: it may be a key)
    Row('host with a newline', blueprint(credentials='{host: "h\\n", user: u, password: pw}'),
        "node 'hpc', property 'credentials.host' = "),
    Row('user a list', blueprint(credentials='{host: h, user: [a], password: pw}'),
        "node 'hpc', property 'credentials.user' = ['a']"),
    Row('login_shell not a boolean',
        blueprint(credentials='{host: h, user: u, password: pw, login_shell: maybe}'),
        "node 'hpc', property 'credentials.login_shell' = 'maybe'"),
    Row('zero sessions', blueprint(credentials='{host: h, user: u, password: pw, max_sessions: 0}'),
        "node 'hpc', property 'credentials.max_sessions' = 0"),
    Row('sessions fractional',
        blueprint(credentials='{host: h, user: u, password: pw, max_sessions: 2.5}'),
        "node 'hpc', property 'credentials.max_sessions' = 2.5"),
    Row('sessions NaN',
        blueprint(credentials='{host: h, user: u, password: pw, max_sessions: .nan}'),
        "node 'hpc', property 'credentials.max_sessions' = nan"),
    Row('connect timeout NaN',
        blueprint(credentials='{host: h, user: u, password: pw, connect_timeout: .nan}'),
        "node 'hpc', property 'credentials.connect_timeout' = nan"),
    Row('connect timeout inf',
        blueprint(credentials='{host: h, user: u, password: pw, connect_timeout: .inf}'),
        "node 'hpc', property 'credentials.connect_timeout' = inf"),
    Row('reconnect timeout NaN',
        blueprint(credentials='{host: h, user: u, password: pw, reconnect_timeout: .nan}'),
        "node 'hpc', property 'credentials.reconnect_timeout' = nan"),
    Row('credentials not a mapping', blueprint(credentials='[a]'),
        "Property type validation failed in 'hpc': property 'credentials' type is"),
    # job_prefix, base_dir, workdir_prefix, skip_cleanup
    iface('job prefix with a newline', '      job_prefix: "cr\\n"\n', 'job_prefix', "'cr\\n'"),
    iface('job prefix a list', '      job_prefix: [a]\n', 'job_prefix', "['a']"),
    iface('job prefix very long', f'      job_prefix: {LONG}\n', 'job_prefix', "'xxxxx"),
    accepted('empty base_dir', blueprint(extra_interface="      base_dir: ''\n"),
             'an empty base_dir is the default, $HOME'),
    iface('base_dir with a newline in the middle', '      base_dir: "/a\\nb"\n', 'base_dir',
          "'/a\\nb'"),
    iface('base_dir a list', '      base_dir: [a]\n', 'base_dir', "['a']"),
    iface('workdir prefix with a slash', '      workdir_prefix: a/b\n', 'workdir_prefix', "'a/b'"),
    iface('workdir prefix with a newline', '      workdir_prefix: "w\\n"\n', 'workdir_prefix',
          "'w\\n'"),
    iface('workdir prefix very long', f'      workdir_prefix: {LONG}\n', 'workdir_prefix',
          "'xxxxx"),
    accepted('interface simulate', blueprint(extra_interface='      simulate: true\n'),
             'a dry run: nothing is sent to the cluster'),
    Row('interface simulate a word', blueprint(extra_interface='      simulate: "yes"\n'),
        "Property type validation failed in 'hpc': property 'simulate' type is"),
    accepted('interface recurring workflow', blueprint(
        extra_interface='      recurring_workflow: true\n'),
        'croupier_configure gives each recurrence its working directory before run_jobs'),
    parser('interface recurring workflow not a boolean', blueprint(
        extra_interface='      recurring_workflow: maybe\n'), 'hpc', 'recurring_workflow',
        'maybe'),
    Row('interface internet_access not a boolean',
        blueprint(extra_interface='      internet_access: maybe\n'),
        "Property type validation failed in 'hpc': property 'internet_access' type is"),
    iface('interface supported_prtocols a number', '      supported_prtocols: 5\n',
          'supported_prtocols', '5'),
    iface('interface accounting user a list',
          '      accounting_options: {reporting_user: [a]}\n',
          'accounting_options.reporting_user', "['a']"),
    accepted('interface accounting user',
             blueprint(extra_interface='      accounting_options: {reporting_user: acc}\n'),
             'each job\'s accounting figures are kept, with the reporting user'),
    iface('interface accounting user on two lines',
          '      accounting_options: {reporting_user: "a\\nb"}\n',
          'accounting_options.reporting_user', "'a\\nb'"),
    Row('interface accounting on a SHELL interface', blueprint(
        config='{infrastructure_interface: SHELL}',
        extra_interface='      accounting_options: {reporting_user: acc}\n'),
        "node 'hpc', property 'accounting_options' = {'reporting_user': 'acc'}"),
    iface('interface agent installed', '      agent_config: {install_method: remote}\n',
          'agent_config.install_method', "'remote'"),
    accepted('reservation deletion path', blueprint(
        config='{infrastructure_interface: SLURM, reservation_deletion_path: /x}'),
        'run on the front-end with each reservation\'s name once run_jobs ended'),
    Row('reservation deletion path with a newline', blueprint(
        config='{infrastructure_interface: SLURM, reservation_deletion_path: "/x\\n/y"}'),
        "node 'hpc', property 'config.reservation_deletion_path' = '/x\\n/y'"),
    Row('country_tz not a time zone', blueprint(
        config='{infrastructure_interface: SLURM, country_tz: Mars/Olympus}'),
        "node 'hpc', property 'config.country_tz' = 'Mars/Olympus'"),
    accepted('country_tz a time zone', blueprint(
        config='{infrastructure_interface: SLURM, country_tz: Europe/Madrid}'),
        'the date of a recurrent reservation\'s name is taken in it'),
    Row('recurrent_reservation not a boolean', blueprint(
        job='{commands: [run], reservation: r, recurrent_reservation: maybe}'),
        "node 'job1', property 'job_options.recurrent_reservation' = 'maybe'"),
    accepted('deployment label', blueprint(
        extra_interface='      monitoring_options: {deployment_label: x}\n'),
        'the exporter labels the interface\'s job metrics with it (deployment="x")'),
    accepted('contained in a Compute with an ip, no credentials.host', blueprint(
        credentials='{user: u, password: pw}', extra_interface=CONTAINED_IN,
        more=VM.format(ip='10.0.0.5')),
        'the front-end is the Compute node\'s ip (interface_contained_in)'),
    Row('contained in a Compute whose ip is not a host', blueprint(
        credentials='{user: u, password: pw}', extra_interface=CONTAINED_IN,
        more=VM.format(ip="'a b'")), "node 'hpc', property 'credentials.host' = 'a b'"),
    monitoring('deployment label with a quote', '{deployment_label: "a\'b"}',
               'deployment_label', '"a\'b"'),
    accepted('only_jobs true', blueprint(
        extra_interface='      monitoring_options: {only_jobs: true}\n'),
        'the exporter collects no partition metrics for the interface'),
    parser('only_jobs not a boolean', blueprint(
        extra_interface='      monitoring_options: {only_jobs: maybe}\n'),
        'hpc', 'monitoring_options.only_jobs', 'maybe'),
    Row('interface skip_cleanup not a boolean',
        blueprint(extra_interface='      skip_cleanup: maybe\n'),
        "Property type validation failed in 'hpc': property 'skip_cleanup' type is"),
    # monitoring_options
    monitoring('monitor period NaN', '{monitor_period: .nan}', 'monitor_period', 'nan'),
    monitoring('monitor period inf', '{monitor_period: .inf}', 'monitor_period', 'inf'),
    monitoring('monitor period tiny', '{monitor_period: 1.0e-9}', 'monitor_period', '1e-09'),
    monitoring('monitor period fractional below a second', '{monitor_period: 0.5}',
               'monitor_period', '0.5'),
    monitoring('monitor period negative', '{monitor_period: -15}', 'monitor_period', '-15'),
    monitoring('monitor period over a day', '{monitor_period: 86401}', 'monitor_period',
               '86401'),
    monitoring('monitor period huge', '{monitor_period: 1.0e+308}', 'monitor_period', '1e+308'),
    monitoring('monitor period a string', "{monitor_period: '15'}", 'monitor_period', "'15'"),
    monitoring('monitor period a boolean', '{monitor_period: true}', 'monitor_period', 'True'),
    accepted('monitor period fractional above a second',
             blueprint(extra_interface='      monitoring_options: {monitor_period: 2.5}\n'),
             'a period need not be whole seconds, only at least one'),
    monitoring('grace NaN', '{unknown_grace: .nan}', 'unknown_grace', 'nan'),
    monitoring('grace inf', '{unknown_grace: .inf}', 'unknown_grace', 'inf'),
    monitoring('grace negative', '{unknown_grace: -1}', 'unknown_grace', '-1'),
    monitoring('grace a boolean', '{unknown_grace: false}', 'unknown_grace', 'False'),
    accepted('grace zero', blueprint(extra_interface='      monitoring_options: '
                                                     '{unknown_grace: 0}\n'),
             'zero fails a job the scheduler does not know at once: a choice, not a mistake'),
    Row('monitor interface with a newline', blueprint(
        config='{infrastructure_interface: PYCOMPSS}', job='{app_file: a.py}',
        job_type='croupier.nodes.PyCOMPSsJob',
        extra_interface='      monitoring_options: {monitor_interface: "SLURM\\n"}\n'),
        "node 'hpc', property 'monitoring_options.monitor_interface' = 'SLURM\\n'"),
    monitoring('hpc_label with a newline', '{hpc_label: "x\\n"}', 'hpc_label', "'x\\n'"),
    monitoring('hpc_label very long', f'{{hpc_label: {LONG}}}', 'hpc_label', "'xxxx"),
    Row('monitoring options not a mapping',
        blueprint(extra_interface='      monitoring_options: 5\n'),
        "Property type validation failed in 'hpc': property 'monitoring_options' type is"),

    # job_options: counts
    opt('nodes NaN', '{commands: [run], nodes: .nan}', 'nodes', 'nan'),
    opt('nodes inf', '{commands: [run], nodes: .inf}', 'nodes', 'inf'),
    opt('nodes fractional', '{commands: [run], nodes: 2.5}', 'nodes', '2.5'),
    opt('nodes a whole float', '{commands: [run], nodes: 2.0}', 'nodes', '2.0'),
    opt('nodes a boolean', '{commands: [run], nodes: true}', 'nodes', 'True'),
    opt('nodes huge', '{commands: [run], nodes: 1000000000000}', 'nodes', '1000000000000'),
    opt('nodes with a newline', '{commands: [run], nodes: "2\\n"}', 'nodes', "'2\\n'"),
    opt('tasks NaN', '{commands: [run], tasks: .nan}', 'tasks', 'nan'),
    opt('tasks negative', '{commands: [run], ntasks: -4}', 'ntasks', '-4'),
    opt('tasks_per_node zero', '{commands: [run], tasks_per_node: 0}', 'tasks_per_node', '0'),
    opt('tasks_per_node inf', '{commands: [run], tasks_per_node: .inf}', 'tasks_per_node',
        'inf'),
    opt('cpus_per_task fractional', '{commands: [run], cpus_per_task: 1.5}', 'cpus_per_task',
        '1.5'),
    opt('cpus_per_task huge', '{commands: [run], cpus_per_task: 99999999999}',
        'cpus_per_task', '99999999999'),
    opt('scale NaN', '{commands: [run], scale: .nan}', 'scale', 'nan'),
    opt('scale zero', '{commands: [run], scale: 0}', 'scale', '0'),
    opt('scale_max_in_parallel zero', '{commands: [run], scale: 4, scale_max_in_parallel: 0}',
        'scale_max_in_parallel', '0'),
    opt('scale_max_in_parallel fractional',
        '{commands: [run], scale: 4, scale_max_in_parallel: 1.5}', 'scale_max_in_parallel',
        '1.5'),
    opt('repeat NaN', '{commands: [run], repeat: .nan}', 'repeat', 'nan'),
    opt('repeat over the array limit', '{commands: [run], repeat: 1001}', 'repeat', '1001'),
    # job_options: times and sizes
    opt('max_time NaN', '{commands: [run], max_time: .nan}', 'max_time', 'nan'),
    opt('max_time inf', '{commands: [run], max_time: .inf}', 'max_time', 'inf'),
    opt('max_time fractional', '{commands: [run], max_time: 1.5}', 'max_time', '1.5'),
    opt('max_time negative', '{commands: [run], max_time: -5}', 'max_time', '-5'),
    opt('max_time zero', '{commands: [run], max_time: 0}', 'max_time', '0'),
    opt('max_time huge', '{commands: [run], max_time: 999999999}', 'max_time', '999999999'),
    opt('max_time with a newline', '{commands: [run], max_time: "10\\n"}', 'max_time',
        "'10\\n'"),
    opt('memory with a newline', '{commands: [run], memory: "4G\\n"}', 'memory', "'4G\\n'"),
    opt('memory negative', '{commands: [run], mem: -1}', 'mem', '-1'),
    opt('memory fractional', '{commands: [run], memory: 1.5G}', 'memory', "'1.5G'"),
    opt('memory huge', '{commands: [run], memory: 999999999999999999999}', 'memory',
        '999999999999999999999'),
    accepted('memory zero', blueprint(job='{commands: [run], memory: 0}'),
             "SLURM's --mem=0 asks for all of a node's memory"),
    opt('cpu_memory with a newline in the middle', '{commands: [run], cpu_memory: "1\\nG"}',
        'cpu_memory', "'1\\nG'"),
    # job_options: words that go into directives
    opt('partition with a newline at the end', '{commands: [run], partition: "debug\\n"}',
        'partition', "'debug\\n'"),
    opt('partition with a newline in the middle', '{commands: [run], queue: "a\\n#SBATCH x"}',
        'queue', "'a\\n#SBATCH x'"),
    opt('partition very long', f'{{commands: [run], partition: {LONG}}}', 'partition',
        "'xxxxx"),
    opt('partition a list', '{commands: [run], partition: [a]}', 'partition', "['a']"),
    opt('account with a newline', '{commands: [run], account: "proj\\n"}', 'account',
        "'proj\\n'"),
    opt('qos with a space', "{commands: [run], qos: 'high prio'}", 'qos', "'high prio'"),
    opt('reservation with a newline', '{commands: [run], reservation: "r\\n"}', 'reservation',
        "'r\\n'"),
    opt('mail_user with a newline', '{commands: [run], mail_user: "a@b.c\\n"}', 'mail_user',
        "'a@b.c\\n'"),
    opt('mail_type with a newline', '{commands: [run], mail_type: "END\\n"}', 'mail_type',
        "'END\\n'"),
    opt('mail_type a number', '{commands: [run], mail_type: 5}', 'mail_type', '5'),
    opt('stdout_file with a newline at the end', '{commands: [run], stdout_file: "o.txt\\n"}',
        'stdout_file', "'o.txt\\n'"),
    opt('stderr_file with a space', "{commands: [run], stderr_file: 'e file'}", 'stderr_file',
        "'e file'"),
    opt('array with a newline', '{commands: [run], array: "0-3\\n"}', 'array', "'0-3\\n'"),
    opt('extra directive with a newline', '{commands: [run], extra_directives: ["--x\\n"]}',
        'extra_directives[0]', "'--x\\n'"),
    # job_options: the job's shell text, script and environment
    opt('commands a mapping', '{commands: {a: b}}', 'commands', "{'a': 'b'}"),
    accepted('command with a newline in the middle', blueprint(job='{commands: ["a\\nb"]}'),
             'commands are shell text: a newline separates commands as in a script'),
    accepted('very long command', blueprint(job=f'{{commands: [{LONG}]}}'),
             'a long command is uploaded in the job script by SFTP, never on a command line'),
    opt('script with a newline', '{script: "run.sh\\n"}', 'script', "'run.sh\\n'"),
    opt('script a number', '{script: 5}', 'script', '5'),
    opt('remote_script with a newline', '{remote_script: "r.sh\\n"}', 'remote_script',
        "'r.sh\\n'"),
    opt('time NaN', '{commands: [run], time: .nan}', 'time', 'nan'),
    opt('mem_per_cpu huge', '{commands: [run], mem_per_cpu: 99999999999999999T}',
        'mem_per_cpu', "'99999999999999999T'"),
    opt('environment a list of numbers', '{commands: [run], environment: [1]}',
        'environment[0]', '1'),
    opt('args with a mapping', '{script: run.sh, args: [{a: b}]}', 'args[0]', "{'a': 'b'}"),
    opt('post a mapping', '{commands: [run], post: {a: b}}', 'post', "{'a': 'b'}"),
    opt('local_script with a newline', '{local_script: "a\\nb.sh"}', 'local_script',
        "'a\\nb.sh'"),
    opt('argument a mapping', '{script: run.sh, arguments: [{a: b}]}', 'arguments[0]',
        "{'a': 'b'}"),
    opt('env name with a newline', '{commands: [run], env: {"A\\n": x}}', 'env.A\n',
        "'A\\n'"),
    opt('env value a mapping', '{commands: [run], env: {A: {b: c}}}', 'env.A', "{'b': 'c'}"),
    opt('env a number', '{commands: [run], env: 5}', 'env', '5'),
    accepted('env value with a newline', blueprint(job='{commands: [run], env: {A: "x\\ny"}}'),
             'env values are quoted for the shell; a newline is part of the value'),
    opt('job module with a newline', '{commands: [run], modules: ["gcc\\n"]}', 'modules[0]',
        "'gcc\\n'"),
    accepted('pre with a newline in the middle',
             blueprint(job='{commands: [run], pre: ["a\\nb"]}'),
             'pre and post are shell text, like commands'),
    # job_options: factories
    opt('sweep start NaN', '{commands: [run], parameter_sweep: [{name: N, start: .nan, end: 2}]}',
        'parameter_sweep[0].start', 'nan'),
    opt('sweep end inf', '{commands: [run], parameter_sweep: [{name: N, start: 1, end: .inf}]}',
        'parameter_sweep[0].end', 'inf'),
    opt('sweep step huge',
        '{commands: [run], parameter_sweep: [{name: N, start: 1, end: 2, step: 1.0e+300}]}',
        'parameter_sweep[0].step', '1e+300'),
    opt('sweep step tiny',
        '{commands: [run], parameter_sweep: [{name: N, start: 0, end: 1, step: 1.0e-20}]}',
        'parameter_sweep[0]', "{'name': 'N'"),
    opt('sweep step zero',
        '{commands: [run], parameter_sweep: [{name: N, start: 1, end: 2, step: 0}]}',
        'parameter_sweep[0].step', '0'),
    opt('sweep name with a newline',
        '{commands: [run], parameter_sweep: [{name: "N\\n", start: 1, end: 2}]}',
        'parameter_sweep[0].name', "'N\\n'"),
    opt('zip with no values', '{commands: [run], zip: [{name: N, values: []}]}',
        'zip[0].values', '[]'),
    # SingularityJob
    opt('image with a newline', '{commands: [run], image: "x.sif\\n"}', 'image', "'x.sif\\n'",
        **SINGULARITY),
    opt('image a list', '{commands: [run], image: [x]}', 'image', "['x']", **SINGULARITY),
    opt('home with a newline', '{commands: [run], image: i, home: "/h\\n"}', 'home', "'/h\\n'",
        **SINGULARITY),
    opt('volume with a newline', '{commands: [run], image: i, volumes: ["/a\\n"]}',
        'volumes[0]', "'/a\\n'", **SINGULARITY),
    opt('launcher a number', '{commands: [run], image: i, launcher: 5}', 'launcher', '5',
        **SINGULARITY),

    # job-level properties
    Row('max_retries NaN', job_props('      max_retries: .nan\n'),
        "node 'job1', property 'max_retries' = nan"),
    Row('max_retries negative', job_props('      max_retries: -1\n'),
        "node 'job1', property 'max_retries' = -1"),
    Row('max_retries fractional', job_props('      max_retries: 2.5\n'),
        "node 'job1', property 'max_retries' = 2.5"),
    Row('max_retries a boolean', job_props('      max_retries: true\n'),
        "node 'job1', property 'max_retries' = True"),
    Row('max_retries huge', job_props('      max_retries: 1000000\n'),
        "node 'job1', property 'max_retries' = 1000000"),
    Row('retry_on an unknown state', job_props('      retry_on: [SOMETIMES]\n'),
        "node 'job1', property 'retry_on' = ['SOMETIMES']"),
    Row('retry_on a number', job_props('      retry_on: [1]\n'),
        "node 'job1', property 'retry_on' = [1]"),
    Row('max_time_in_queue NaN', job_props('      max_time_in_queue: .nan\n'),
        "node 'job1', property 'max_time_in_queue' = nan"),
    Row('max_time_in_queue inf', job_props('      max_time_in_queue: .inf\n'),
        "node 'job1', property 'max_time_in_queue' = inf"),
    Row('max_time_in_queue a boolean', job_props('      max_time_in_queue: false\n'),
        "node 'job1', property 'max_time_in_queue' = False"),
    Row('max_time_in_queue negative', job_props('      max_time_in_queue: -5\n'),
        "node 'job1', property 'max_time_in_queue' = -5"),
    Row('max_time_in_queue in words', job_props('      max_time_in_queue: soon\n'),
        "node 'job1', property 'max_time_in_queue' = 'soon'"),
    accepted('max_time_in_queue zero', job_props('      max_time_in_queue: 0\n'),
             'zero (like empty) means no limit'),
    Row('label value a mapping', job_props('      labels: {a: {b: c}}\n'),
        "node 'job1', property 'labels.a' = {'b': 'c'}"),
    Row('label without a value', job_props('      labels: [novalue]\n'),
        "node 'job1', property 'labels' = ['novalue']"),
    Row('label key with a newline', job_props('      labels: {"k\\n": v}\n'),
        "node 'job1', property 'labels.k\n' = 'v'"),
    Row('label value with a newline', job_props('      labels: {k: "v\\n"}\n'),
        "node 'job1', property 'labels.k' = 'v\\n'"),
    Row('publish an empty path', job_props("      publish: ['']\n"),
        "node 'job1', property 'publish' = ['']"),
    Row('publish a path with a newline', job_props('      publish: ["a\\nb"]\n'),
        "node 'job1', property 'publish' = ['a\\nb']"),
    Row('publish the parent folder', job_props("      publish: ['..']\n"),
        "node 'job1', property 'publish' = ['..']"),
    Row('deployment not a mapping', job_props('      deployment: abc\n'),
        "node 'job1', property 'deployment' = 'abc'"),
    Row('deployment unknown key', job_props('      deployment: {boot: a.sh}\n'),
        "node 'job1', property 'deployment.boot' = 'a.sh'"),
    Row('deployment script a list', job_props('      deployment: {bootstrap: [a.sh]}\n'),
        "node 'job1', property 'deployment.bootstrap' = ['a.sh']"),
    Row('deployment script with a newline', job_props('      deployment: {revert: "r.sh\\n"}\n'),
        "node 'job1', property 'deployment.revert' = 'r.sh\\n'"),
    Row('deployment inputs a mapping', job_props('      deployment: {inputs: {a: b}}\n'),
        "node 'job1', property 'deployment.inputs' = {'a': 'b'}"),
    Row('deployment hpc_execution not a boolean',
        job_props('      deployment: {hpc_execution: maybe}\n'),
        "node 'job1', property 'deployment.hpc_execution' = 'maybe'"),
    Row('job skip_cleanup not a boolean', job_props('      skip_cleanup: 3\n'),
        "Property type validation failed in 'job1': property 'skip_cleanup' type is"),

    # PyCOMPSsJob
    opt('app_file with a newline', '{app_file: "a.py\\n"}', 'app_file', "'a.py\\n'", **PYCOMPSS),
    opt('app_file a list', '{app_file: [a.py]}', 'app_file', "['a.py']", **PYCOMPSS),
    opt('app_name with a newline in the middle', '{app_file: a.py, app_name: "a\\nb"}',
        'app_name', "'a\\nb'", **PYCOMPSS),
    opt('app_source a mapping', '{app_file: a.py, app_source: {a: b}}', 'app_source',
        "{'a': 'b'}", **PYCOMPSS),
    opt('app_args a mapping inside', '{app_file: a.py, app_args: [{a: b}]}', 'app_args[0]',
        "{'a': 'b'}", **PYCOMPSS),
    opt('PyCOMPSs env name bad', "{app_file: a.py, env: {'1X': v}}", 'env.1X', "'1X'",
        **PYCOMPSS),
    opt('PyCOMPSs module with a newline', '{app_file: a.py, modules: ["COMPSs\\n"]}',
        'modules[0]', "'COMPSs\\n'", **PYCOMPSS),
    opt('pre_script with a newline', '{app_file: a.py, pre_script: ["a\\nb"]}', 'pre_script[0]',
        "'a\\nb'", **PYCOMPSS),
    opt('compss_args not a mapping', '{app_file: a.py, compss_args: x}', 'compss_args', "'x'",
        **PYCOMPSS),
    opt('num_nodes NaN', '{app_file: a.py, compss_args: {num_nodes: .nan}}',
        'compss_args.num_nodes', 'nan', **PYCOMPSS),
    opt('num_nodes zero', '{app_file: a.py, compss_args: {num_nodes: 0}}',
        'compss_args.num_nodes', '0', **PYCOMPSS),
    opt('num_nodes fractional', '{app_file: a.py, compss_args: {num_nodes: 2.5}}',
        'compss_args.num_nodes', '2.5', **PYCOMPSS),
    opt('num_nodes huge', '{app_file: a.py, compss_args: {num_nodes: 1000000000000}}',
        'compss_args.num_nodes', '1000000000000', **PYCOMPSS),
    opt('exec_time inf', '{app_file: a.py, compss_args: {exec_time: .inf}}',
        'compss_args.exec_time', 'inf', **PYCOMPSS),
    opt('master_port out of range', '{app_file: a.py, compss_args: {master_port: 70000}}',
        'compss_args.master_port', '70000', **PYCOMPSS),
    opt('compss qos with a newline', '{app_file: a.py, compss_args: {qos: "debug\\n"}}',
        'compss_args.qos', "'debug\\n'", **PYCOMPSS),
    opt('compss log_level unknown', '{app_file: a.py, compss_args: {log_level: loud}}',
        'compss_args.log_level', "'loud'", **PYCOMPSS),

    # YAML anchors and aliases
    accepted('options shared through an anchor', blueprint(
        job='&opts {commands: [run], nodes: 2}',
        more="  job2:\n    type: croupier.nodes.Job\n    properties:\n"
             "      job_options: *opts\n    relationships:\n"
             "      - {type: task_managed_by_interface, target: hpc}\n"),
        'anchors and aliases are plain YAML: the alias is the same mapping'),
    accepted('options merged from an anchor', blueprint(
        job='&opts {commands: [run], nodes: 2}',
        more="  job2:\n    type: croupier.nodes.Job\n    properties:\n"
             "      job_options: {<<: *opts, nodes: 3}\n    relationships:\n"
             "      - {type: task_managed_by_interface, target: hpc}\n"),
        'a merge key is plain YAML too'),
    Row('alias of the wrong mapping', blueprint(config='&c {infrastructure_interface: SLURM}',
                                               job='*c'),
        "node 'job1', property 'job_options.infrastructure_interface' = 'SLURM'"),
    Row('undefined alias', blueprint(job='*nothing'),
        'line 14, column 20: found undefined alias'),
    Row('a NUL in the blueprint', blueprint(job='{commands: [run]}') + '\0\n',
        'blueprint.yaml: not YAML'),
    Row('not YAML at all', HEAD + '  hpc: [\n', 'did not find expected node content'),
    Row('non-ASCII in the blueprint', blueprint(job="{commands: [run], partition: 'débug'}"),
        'illegal characters in line: 13'),

    # inputs
    with_input('unicode partition through an input', 'p', 'débug',
               '{commands: [run], partition: {get_input: p}}',
               "node 'job1', property 'job_options.partition' = 'débug'"),
    with_input('partition with a newline through an input', 'p', '"debug\\n"',
               '{commands: [run], partition: {get_input: p}}',
               "node 'job1', property 'job_options.partition' = 'debug\\n'"),
    with_input('NaN nodes through an input', 'n', '.nan',
               '{commands: [run], nodes: {get_input: n}}',
               "node 'job1', property 'job_options.nodes' = nan"),
    with_input('unicode command through an input', 'c', 'échó',
               '{commands: [{get_input: c}]}', '',
               'commands are quoted shell text; any character may appear in them'),
    with_input('input that is not YAML', 'c', '[a', '{commands: [{get_input: c}]}',
               "input c: line 2, column 1: did not find expected ',' or ']'"),
    Row('input not declared', blueprint(), "Unknown inputs ['nosuch'] specified",
        inputs=('nosuch=1',)),
    Row('required input missing',
        "inputs:\n  cmd: {type: string}\n" + blueprint(job='{commands: [{get_input: cmd}]}'),
        "Required inputs ['cmd'] were not specified"),
    Row('get_input of an undeclared input', blueprint(job='{commands: [{get_input: cmd}]}'),
        "get_input function references an unknown input 'cmd'"),
    Row('input of the wrong declared type',
        "inputs:\n  n: {type: integer}\n" + blueprint(job='{commands: [run], '
                                                         'nodes: {get_input: n}}'),
        "Property type validation failed in 'n': the defined type is 'integer'",
        inputs=('n=abc',)),
    Row('inputs file holding a list', blueprint(), 'list.yaml must hold a mapping',
        inputs=('{tmp}/list.yaml',)),
    Row('input neither a file nor a pair', blueprint(),
        "inputs: 'justaword' is neither a file nor NAME=VALUE", inputs=('justaword',)),
]

# -- the HPCExporter and the data nodes, bad in every way --------------------------

def exporter_row(case, props, prop, shown):
    """An HPCExporter row: node exp with ``props`` refused naming ``prop`` = ``shown``."""
    return Row(case, blueprint(extra_interface=MONITORED, more=EXPORTER.format(props=props)),
               f"node 'exp', property '{prop}' = {shown}")


EXP = "address: 'http://127.0.0.1:9110'"

CASES += [
    exporter_row('exporter address a list', '{address: [a]}', 'address', "['a']"),
    exporter_row('exporter address with a newline', '{address: "http://127.0.0.1:9110\\n"}',
                 'address', "'http://127.0.0.1:9110\\n'"),
    exporter_row('exporter address not http', "{address: 'ftp://127.0.0.1:9110'}", 'address',
                 "'ftp://127.0.0.1:9110'"),
    exporter_row('exporter address port not a number',
                 "{hpc_exporter_address: 'http://127.0.0.1:notaport'}", 'hpc_exporter_address',
                 "'http://127.0.0.1:notaport'"),
    exporter_row('exporter addresses that differ',
                 "{address: 'http://127.0.0.1:9110', hpc_exporter_address: 'http://127.0.0.2:9110'}",
                 'hpc_exporter_address', "'http://127.0.0.2:9110'"),
    exporter_row('exporter timeout zero', f'{{{EXP}, timeout: 0}}', 'timeout', '0'),
    exporter_row('exporter timeout negative', f'{{{EXP}, timeout: -1}}', 'timeout', '-1'),
    exporter_row('exporter timeout inf', f'{{{EXP}, timeout: .inf}}', 'timeout', 'inf'),
    exporter_row('exporter timeout a boolean', f'{{{EXP}, timeout: true}}', 'timeout', 'True'),
    exporter_row('exporter timeout huge', f'{{{EXP}, timeout: 1e9}}', 'timeout', "'1e9'"),
    exporter_row('exporter token with a space', f"{{{EXP}, token: 'a b'}}", 'token', "'<hidden>'"),
    exporter_row('exporter token a list', f'{{{EXP}, token: [1]}}', 'token', "'<hidden>'"),
    exporter_row('exporter token file missing', f'{{{EXP}, token_file: /nonexistent/tok}}',
                 'token_file', "'/nonexistent/tok'"),
    accepted('exporter grafana registry address',
             blueprint(extra_interface=MONITORED, more=EXPORTER.format(
                 props=f"{{{EXP}, grafana_registry_address: 'http://g:3000'}}")),
             'the original Croupier registered Grafana dashboards there; Croupier registers '
             'none (Grafana reads Prometheus) and says so in plugin.yaml and the README'),
    Row('data endpoint a list', blueprint(more=dataflow(web_endpoint="[a]").replace(
        "endpoint: '[a]'", 'endpoint: [a]')), "node 'web', property 'endpoint' = ['a']"),
    Row('data endpoint with a newline', blueprint(more=dataflow().replace(
        "endpoint: 'http://web.example.org'", 'endpoint: "http://web.example.org\\n"')),
        "node 'web', property 'endpoint' = 'http://web.example.org\\n'"),
    parser('data internet_access not a boolean',
           blueprint(more=dataflow(store_extra="      internet_access: 'yes'\n")),
           'store', 'internet_access', "'yes'"),
    parser('data credentials not a mapping', blueprint(more=dataflow(store_credentials='[a]')),
           'store', 'credentials', '[a]'),
    accepted('data supported_protocols one name',
             blueprint(more=dataflow(store_extra="      supported_protocols: SFTP\n")),
             'one protocol written without a list is taken as a list of one'),
    Row('data supported_protocols a mapping',
        blueprint(more=dataflow(store_extra="      supported_protocols: {a: b}\n")),
        "node 'store', property 'supported_protocols' = {'a': 'b'}"),
    Row('filepath a list', blueprint(more=dataflow(target_props='{filepath: [a]}')),
        "node 'dst', property 'filepath' = ['a']"),
    Row('filepath with a newline', blueprint(more=dataflow(target_props='{filepath: "d\\n.txt"}')),
        "node 'dst', property 'filepath' = 'd\\n.txt'"),
    Row('web resource empty', blueprint(more=dataflow(source_props="{resource: ''}")),
        "node 'src', property 'resource' = ''"),
    Row('web resource with a newline',
        blueprint(more=dataflow(source_props='{resource: "/d\\n.txt"}')),
        "node 'src', property 'resource' = '/d\\n.txt'"),
    Row('web resource a list', blueprint(more=dataflow(source_props='{resource: [a]}')),
        "node 'src', property 'resource' = ['a']"),
    Row('transfer protocol empty', blueprint(more=dataflow(protocol="''")),
        "node 'move', property 'transfer_protocol' = ''"),
    Row('transfer protocol a list', blueprint(more=dataflow(protocol='[HTTP]')),
        "node 'move', property 'transfer_protocol' = ['HTTP']"),
    Row('transfer protocol with a newline', blueprint(more=dataflow(protocol='"HTTP\\n"')),
        "node 'move', property 'transfer_protocol' = 'HTTP\\n'"),
    accepted('transfer protocol in lower case', blueprint(more=dataflow(protocol='http')),
             'protocol names are read in any case, as the README says'),
]

# -- GridFTP and HPC workspaces ----------------------------------------------------


def grid_store(credentials: str = '{user: u, password: pw}', extra: str = '') -> str:
    """The dataflow's store as a GridFTPDataAccessInfrastructure, a GRIDFTP transfer
    from a file on it (``credentials`` and ``extra`` property lines its own)."""
    return dataflow(protocol='GRIDFTP', source_type='croupier.nodes.FileDataSource',
                    source_props='{filepath: a.txt}', store_credentials=credentials,
                    store_extra=extra).replace(
        '  store:\n    type: croupier.nodes.DataAccessInfrastructure',
        '  store:\n    type: croupier.nodes.GridFTPDataAccessInfrastructure').replace(
        'relationships:\n      - {type: ds_located_at, target: web}',
        'relationships:\n      - {type: ds_located_at, target: store}')


def workspace_target(props: str) -> str:
    """The dataflow's target as an HPCDataSource with ``props``."""
    return dataflow(target_type='croupier.nodes.HPCDataSource', target_props=props)


CASES += [
    accepted('GridFTP transfer between files', blueprint(more=grid_store(
        extra="      ssh_endpoint: 'files.example.org:2222'\n"
              "      workspace_basepath: /scratch/ws\n")),
             'GRIDFTP moves a file or folder with globus-url-copy over sshftp://'),
    Row('GridFTP certificate', blueprint(more=grid_store(
        '{user: u, password: pw, cert: /home/u/.globus/usercert.pem}')),
        "node 'store', property 'credentials.cert' = '<hidden>': GridFTP X.509 certificates "
        "are not supported"),
    Row('GridFTP certificate password', blueprint(more=grid_store(
        '{user: u, password: pw, cert_password: s3cret}')),
        "node 'store', property 'credentials.cert_password' = '<hidden>'"),
    Row('GridFTP ssh_endpoint with a user', blueprint(more=grid_store(
        extra="      ssh_endpoint: 'u@files.example.org'\n")),
        "node 'store', property 'ssh_endpoint' = 'u@files.example.org'"),
    Row('GridFTP ssh_endpoint port not a number', blueprint(more=grid_store(
        extra="      ssh_endpoint: 'files.example.org:ssh'\n")),
        "node 'store', property 'ssh_endpoint' = 'files.example.org:ssh'"),
    Row('workspace_basepath relative', blueprint(more=grid_store(
        extra="      workspace_basepath: scratch/ws\n")),
        "node 'store', property 'workspace_basepath' = 'scratch/ws': must be an absolute path"),
    accepted('HPC workspace', blueprint(more=workspace_target(
        '{filepath: in/, workspace: {name: run-1.a_b, create: true, lifetime: 7}}')),
        'the workspace is made at install (ws_allocate, else a folder) and filepath is '
        'inside it'),
    accepted('HPCDataSource without a workspace',
             blueprint(more=workspace_target('{filepath: d.txt}')),
             'without a workspace an HPCDataSource is a FileDataSource'),
    Row('workspace name with a space', blueprint(more=workspace_target(
        '{filepath: d.txt, workspace: {name: "a b", create: true}}')),
        "node 'dst', property 'workspace.name' = 'a b'"),
    Row('workspace name starting with a dash', blueprint(more=workspace_target(
        '{filepath: d.txt, workspace: {name: "-x", create: true}}')),
        "node 'dst', property 'workspace.name' = '-x'"),
    Row('workspace without a name', blueprint(more=workspace_target(
        '{filepath: d.txt, workspace: {create: true}}')),
        "node 'dst', property 'workspace.name' = None: is required"),
    Row('workspace lifetime zero', blueprint(more=workspace_target(
        '{filepath: d.txt, workspace: {name: w, lifetime: 0}}')),
        "node 'dst', property 'workspace.lifetime' = 0"),
    Row('workspace lifetime huge', blueprint(more=workspace_target(
        '{filepath: d.txt, workspace: {name: w, lifetime: 100000}}')),
        "node 'dst', property 'workspace.lifetime' = 100000"),
    Row('workspace filepath absolute', blueprint(more=workspace_target(
        '{filepath: /scratch/d.txt, workspace: {name: w}}')),
        "node 'dst', property 'filepath' = '/scratch/d.txt': is relative to the workspace"),
    Row('workspace filepath leaving it', blueprint(more=workspace_target(
        '{filepath: ../d.txt, workspace: {name: w}}')),
        "node 'dst', property 'filepath' = '../d.txt'"),
]



def ckan_flow(dataset_props="{endpoint: 'http://ckan.example.org', "
                            "credentials: {auth-header: tok-s3cret}, "
                            "dataset_info: {name: results}}",
              resource_props='{resource: {name: out.csv}}', protocol='CKANAPI',
              publish=True, located='cat'):
    """A CKAN dataset with one resource, a file store, and a transfer between the
    resource and a file there: publishing the file (``publish``) or fetching it."""
    ends = ('out', 'res') if publish else ('res', 'out')
    return f"""  cat:
    type: croupier.nodes.CKAN_dataset
    properties: {dataset_props}
  res:
    type: croupier.nodes.CKAN_resource
    properties: {resource_props}
    relationships:
      - {{type: ds_located_at, target: {located}}}
  store:
    type: croupier.nodes.DataAccessInfrastructure
    properties:
      endpoint: files.example.org
      credentials: {{user: u, password: pw}}
  out:
    type: croupier.nodes.FileDataSource
    properties: {{filepath: out.csv}}
    relationships:
      - {{type: ds_located_at, target: store}}
  move:
    type: croupier.nodes.DataTransfer
    properties: {{transfer_protocol: {protocol}}}
    relationships:
      - {{type: from_source, target: {ends[0]}}}
      - {{type: to_target, target: {ends[1]}}}
"""


# CKAN catalogues (CKAN_dataset, CKAN_resource, CKANAPI transfers)
CASES += [
    accepted('CKAN publish', blueprint(more=ckan_flow()),
             'a job\'s file published as a resource of a CKAN dataset'),
    accepted('CKAN fetch of a public resource', blueprint(more=ckan_flow(
        dataset_props="{endpoint: 'https://ckan.example.org', dataset_info: {name: inputs}}",
        publish=False)), 'a public dataset is read without an API token'),
    Row('CKAN endpoint not http', blueprint(more=ckan_flow(
        dataset_props="{endpoint: ckan.example.org, dataset_info: {name: results}}")),
        "node 'cat', property 'endpoint' = 'ckan.example.org'"),
    Row('CKAN dataset without a name', blueprint(more=ckan_flow(
        dataset_props="{endpoint: 'http://ckan.example.org', dataset_info: {title: T}}")),
        "node 'cat', property 'dataset_info.name' = None"),
    Row('CKAN dataset name with capitals', blueprint(more=ckan_flow(
        dataset_props="{endpoint: 'http://ckan.example.org', dataset_info: {name: My Data}}")),
        "node 'cat', property 'dataset_info.name' = 'My Data'"),
    Row('CKAN token with a space', blueprint(more=ckan_flow(
        dataset_props="{endpoint: 'http://ckan.example.org', "
                      "credentials: {auth-header: 'tok s3cret'}, dataset_info: {name: r1}}")),
        "node 'cat', property 'credentials.auth-header' = '<hidden>'"),
    Row('CKAN SSH login given', blueprint(more=ckan_flow(
        dataset_props="{endpoint: 'http://ckan.example.org', "
                      "credentials: {user: u, password: pw}, dataset_info: {name: r1}}")),
        "node 'cat', property 'credentials.user' = 'u'"),
    Row('CKAN token header label', blueprint(more=ckan_flow(
        dataset_props="{endpoint: 'http://ckan.example.org', credentials: "
                      "{auth-header: tok-s3cret, auth-header-label: X-Token}, "
                      "dataset_info: {name: r1}}")),
        "node 'cat', property 'credentials.auth-header-label' = 'X-Token'"),
    Row('CKAN internet access', blueprint(more=ckan_flow(
        dataset_props="{endpoint: 'http://ckan.example.org', internet_access: true, "
                      "dataset_info: {name: r1}}")),
        "node 'cat', property 'internet_access' = True"),
    Row('CKAN resource without a name', blueprint(more=ckan_flow(
        resource_props='{resource: {format: CSV}}')),
        "node 'res', property 'resource.name' = None"),
    Row('CKAN publish without a token', blueprint(more=ckan_flow(
        dataset_props="{endpoint: 'http://ckan.example.org', dataset_info: {name: r1}}")),
        "node 'move', property 'to_target' = 'res': publishing to catalogue 'cat' needs"),
    Row('CKAN resource moved with HTTP', blueprint(more=ckan_flow(protocol='HTTP',
                                                                  publish=False)),
        "node 'move', property 'from_source' = 'res': a CKAN_resource is moved with CKANAPI"),
    Row('CKAN resource located at a file store', blueprint(more=ckan_flow(located='store')),
        "node 'res': ds_located_at 'store': a CKAN_resource is located at a CKAN_dataset"),
]


ROWS = [Row(*case) for case in CASES]


def test_every_row_either_names_an_error_or_says_why_it_is_accepted():
    for row in ROWS:
        assert bool(row.expected) != bool(row.accepted), row.case
    assert len({row.case for row in ROWS}) == len(ROWS), 'case names must be unique'


def test_every_property_of_the_interface_and_job_types_has_a_row():
    """Each property of plugin.yaml's InfrastructureInterface, Job, SingularityJob
    and PyCOMPSsJob, each config and monitoring field and each job option
    spelling is refused by name in some row, or accepted on purpose in one."""
    import os
    import yaml
    from croupier_plugin.core.infrastructure import CONFIG_KEYS, MONITORING_KEYS
    from croupier_plugin.core.model import JobSpec
    from croupier_plugin.core.schedulers.pycompss import PycompssJob
    import croupier_plugin
    path = os.path.join(os.path.dirname(croupier_plugin.__file__), 'resources', 'plugin.yaml')
    with open(path) as fh:
        types = yaml.safe_load(fh)['node_types']
    names = [prop for name in ('InfrastructureInterface', 'Job', 'SingularityJob', 'PyCOMPSsJob')
             for prop in types[f'croupier.nodes.{name}'].get('properties') or {}]
    names += [f'config.{key}' for key in CONFIG_KEYS]
    names += [f'monitoring_options.{key}' for key in MONITORING_KEYS]
    names += [f'job_options.{key}' for key in (*JobSpec.OPTION_ALIASES, *PycompssJob.OPTION_KEYS)]

    def covered(name):
        return any(f"property '{name}" in row.expected or
                   (row.accepted and f"{name.split('.')[-1]}:" in row.text) for row in ROWS)
    assert [name for name in names if not covered(name)] == []



def test_every_property_of_the_exporter_and_data_types_has_a_row():
    """Each property of plugin.yaml's HPCExporter, DataAccessInfrastructure,
    FileDataSource, WebDataSource and DataTransfer is refused by name in some row, or
    accepted on purpose in one (the Vault node's rows are in test_bad_vault_input.py,
    the original Croupier's own node types in test_original_schema.py)."""
    import os
    import yaml
    import croupier_plugin
    path = os.path.join(os.path.dirname(croupier_plugin.__file__), 'resources', 'plugin.yaml')
    with open(path) as fh:
        types = yaml.safe_load(fh)['node_types']
    names = [prop for name in ('HPCExporter', 'DataAccessInfrastructure', 'FileDataSource',
                               'WebDataSource', 'DataTransfer')
             for prop in types[f'croupier.nodes.{name}'].get('properties') or {}]
    assert len(names) >= 12

    def covered(name):
        return any(f"property '{name}" in row.expected or
                   (row.accepted and f"{name}:" in row.text) for row in ROWS)
    assert [name for name in names if not covered(name)] == []

@pytest.mark.parametrize('row', ROWS, ids=[row.case for row in ROWS])
def test_bad_input_is_refused_naming_node_property_and_value(tmp_path, capsys, row):
    path = tmp_path / 'blueprint.yaml'
    path.write_text(row.text, encoding='utf-8')
    # an inputs file that holds a list, not a mapping, for the row that names it
    (tmp_path / 'list.yaml').write_text('- a\n- b\n')
    args = ['validate', str(path)]
    for item in row.inputs:
        args += ['-i', item.replace('{tmp}', str(tmp_path))]
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
    # every row's jobs point at a real interface: a bad interface is its own problem
    assert 'is not a croupier.nodes.InfrastructureInterface' not in err


def test_the_table_is_long_enough():
    assert len(CASES) >= 200


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
                        "(e.g. https://vault:8200): give it on the node, or set VAULT_ADDR or "
                        "vault_address in the site configuration file ($CROUPIER_CONFIG, "
                        "~/.croupier/config.yaml, /etc/croupier/config.yaml)"], err
