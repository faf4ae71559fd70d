"""Data objects without a host: protocol names, data access infrastructure
properties, paths, the lent-key agent's answers, folder copies and how transfers
are tied to jobs."""

import os
import struct

import paramiko
import pytest

from croupier_plugin import edge
from croupier_plugin.core import blueprint
from croupier_plugin.core.data import (DataInfrastructure, DataSource, LocalFiles,
                                       Publication, Transfer, TransferError, copy_tree,
                                       home_relative, protocol, publish_path_problem,
                                       rsync_local_path, shell_path, web_file_name)
from croupier_plugin.core.errors import ConfigError
from croupier_plugin.core.transport import LocalTransport, agent
from croupier_plugin.workflows import wire_transfers


@pytest.mark.parametrize('given, name', [('HTTP', 'HTTP'), ('RSync', 'RSYNC'), ('rsync', 'RSYNC'),
                                         ('sftp', 'SFTP')])
def test_protocol_names_are_read_in_any_case(given, name):
    assert protocol('transfer_protocol', given) == name


@pytest.mark.parametrize('given', ['GridFTP', 'GRIDFTP', 'grid-ftp'])
def test_gridftp_may_be_listed_and_used(given):
    assert protocol('supported_protocols[0]', given) == 'GRIDFTP'
    assert protocol('transfer_protocol', given) == 'GRIDFTP'


@pytest.mark.parametrize('given', ['CKANAPI', 'ckan-api'])
def test_ckanapi_may_be_listed_and_used(given):
    assert protocol('supported_protocols[0]', given) == 'CKANAPI'
    assert protocol('transfer_protocol', given) == 'CKANAPI'


@pytest.mark.parametrize('given', ['FTP', 'scp', 'HTTP S'])
def test_an_unknown_protocol_is_refused_naming_the_known_ones(given):
    with pytest.raises(ConfigError) as err:
        protocol('transfer_protocol', given)
    assert str(err.value) == (f"property 'transfer_protocol' = {given!r}: must be one of "
                              f"HTTP, RSYNC, SFTP, GRIDFTP, CKANAPI")


def test_data_infrastructure_properties():
    web = DataInfrastructure.from_properties('web', {'endpoint': 'https://data.example.org:8443/'})
    assert web.web_base == 'https://data.example.org:8443' and web.ssh is None
    assert web.host == 'data.example.org'
    files = DataInfrastructure.from_properties('files', {
        'endpoint': 'files.example.org', 'internet_access': True,
        'supported_protocols': ['RSync', 'GridFTP'],
        'credentials': {'user': 'u', 'password': 'pw', 'port': 2200}})
    assert files.web_base is None and files.internet_access
    assert (files.ssh.host, files.ssh.port, files.ssh.user) == ('files.example.org', 2200, 'u')
    assert files.supports('RSYNC') and not files.supports('SFTP')


@pytest.mark.parametrize('props, expected', [
    ({'endpoint': 'a b'}, "node 'd', property 'endpoint' = 'a b'"),
    ({'endpoint': 'h', 'internet_access': 'yes'}, "node 'd', property 'internet_access' = 'yes'"),
    ({'endpoint': 'h', 'supported_protocols': 'FTP'},
     "node 'd', property 'supported_protocols[0]' = 'FTP'"),
    ({'endpoint': 'h', 'colour': 'red'}, "node 'd', property 'colour' = 'red'"),
    ({'endpoint': 'h', 'credentials': {'user': 'u'}}, "node 'd', property 'credentials' = "),
])
def test_bad_data_infrastructure_properties_are_named(props, expected):
    with pytest.raises(ConfigError) as err:
        DataInfrastructure.from_properties('d', props)
    assert str(err.value).startswith(expected)


def test_workdir_placeholder_needs_a_working_directory():
    infra = DataInfrastructure('d', 'h')
    assert infra.resolve('~/plain') == '~/plain'
    with pytest.raises(ConfigError) as err:
        infra.resolve('${workdir}/in.txt')
    assert "property 'filepath' = '${workdir}/in.txt'" in str(err.value)
    infra.workdir = '/home/u/run_1'
    assert infra.resolve('${workdir}/in.txt') == '/home/u/run_1/in.txt'


@pytest.mark.parametrize('path, rel, quoted', [
    ('~/a b', 'a b', '"$HOME"/\'a b\''), ('$HOME/x', 'x', '"$HOME"/x'), ('~', '.', '"$HOME"'),
    ('/abs/$(rm)', '/abs/$(rm)', "'/abs/$(rm)'"), ('rel;x', 'rel;x', "'rel;x'")])
def test_paths_for_sftp_and_the_shell(path, rel, quoted):
    assert home_relative(path) == rel
    assert shell_path(path) == quoted


def _string(data):
    return struct.pack('>I', len(data)) + data


def _bound_session(host_key, session_id):
    """An agent connection bound, as OpenSSH's ssh binds it, to ``session_id``
    of a session with the host holding ``host_key``."""
    session = agent.AgentSession(None, None)
    bind = bytes([agent.EXTENSION]) + _string(agent.SESSION_BIND.encode()) + \
        _string(host_key.asbytes()) + _string(session_id) + \
        _string(host_key.sign_ssh_data(session_id).asbytes()) + b'\0'
    assert agent.answer(session, {}, bind) == bytes([agent.SUCCESS])
    return session


def _login(session_id, user, key, algorithm):
    """The data an SSH client signs to log in with ``key`` (RFC 4252, section 7)."""
    return _string(session_id) + bytes([50]) + _string(user.encode()) + \
        _string(b'ssh-connection') + _string(b'publickey') + b'\1' + \
        _string(algorithm.encode()) + _string(key.asbytes())


@pytest.mark.parametrize('key_class, flags, algorithm', [
    (paramiko.Ed25519Key, 0, 'ssh-ed25519'),
    (paramiko.RSAKey, agent.RSA_SHA2_256, 'rsa-sha2-256'),
    (paramiko.RSAKey, agent.RSA_SHA2_512, 'rsa-sha2-512'),
    (paramiko.ECDSAKey, 0, 'ecdsa-sha2-nistp256')])
def test_the_agent_lists_its_keys_and_signs_with_them(key_class, flags, algorithm, tmp_path):
    if key_class is paramiko.Ed25519Key:
        path = tmp_path / 'k'
        os.system(f"ssh-keygen -q -t ed25519 -N '' -f {path}")
        key = paramiko.Ed25519Key.from_private_key_file(str(path))
    else:
        key = key_class.generate(2048) if key_class is paramiko.RSAKey else key_class.generate()
    host_key = paramiko.ECDSAKey.generate()
    session_id = os.urandom(32)
    keys = {(key.asbytes(), host_key.asbytes(), 'u'): key}
    session = _bound_session(host_key, session_id)
    listing = paramiko.Message(agent.answer(session, keys, bytes([agent.REQUEST_IDENTITIES])))
    assert listing.get_byte()[0] == agent.IDENTITIES_ANSWER
    assert listing.get_int() == 1 and listing.get_binary() == key.asbytes()
    data = _login(session_id, 'u', key, algorithm)
    request = bytes([agent.SIGN_REQUEST]) + _string(key.asbytes()) + _string(data) + \
        struct.pack('>I', flags)
    reply = paramiko.Message(agent.answer(session, keys, request))
    assert reply.get_byte()[0] == agent.SIGN_RESPONSE
    signature = paramiko.Message(reply.get_binary())
    assert signature.get_text() == algorithm
    signature.rewind()
    public = type(key)(data=key.asbytes())
    assert public.verify_ssh_sig(data, signature)
    assert not public.verify_ssh_sig(b'other data', paramiko.Message(signature.asbytes()))


def test_the_agent_refuses_unknown_keys_and_other_requests():
    other = paramiko.RSAKey.generate(2048)
    host_key = paramiko.ECDSAKey.generate()
    session = _bound_session(host_key, b'session')
    request = bytes([agent.SIGN_REQUEST]) + _string(other.asbytes()) + \
        _string(_login(b'session', 'u', other, 'rsa-sha2-256')) + struct.pack('>I', 0)
    assert agent.answer(session, {}, request) == bytes([agent.FAILURE])
    for kind in (17, 18, 19, 22, 27):      # add, remove, remove all, lock, extension
        assert agent.answer(agent.AgentSession(None, None), {}, bytes([kind]) + b'\0\0\0\0') \
            == bytes([agent.FAILURE])


def test_copy_tree_copies_a_folder_with_modes(tmp_path):
    src = tmp_path / 'src'
    (src / 'sub').mkdir(parents=True)
    (src / 'a.txt').write_text('a')
    (src / 'sub' / 'run').write_text('#!/bin/sh\n')
    os.chmod(src / 'sub' / 'run', 0o750)
    files, size = copy_tree(LocalFiles(), str(src), LocalFiles(), str(tmp_path / 'dst'))
    assert (files, size) == (2, 11)
    assert (tmp_path / 'dst' / 'sub' / 'run').stat().st_mode & 0o777 == 0o750
    assert (tmp_path / 'dst' / 'a.txt').read_text() == 'a'
    copy_tree(LocalFiles(), str(src / 'a.txt'), LocalFiles(), str(tmp_path / 'into') + '/')
    assert (tmp_path / 'into' / 'a.txt').read_text() == 'a'
    with pytest.raises(TransferError) as err:
        copy_tree(LocalFiles(), str(tmp_path / 'nope'), LocalFiles(), str(tmp_path / 'x'))
    assert str(err.value) == f"{tmp_path / 'nope'} does not exist on the orchestrator"


def test_copies_never_carry_setuid_setgid_or_sticky_bits(tmp_path):
    src = tmp_path / 'src'
    src.mkdir()
    for name, mode in (('suid', 0o4755), ('sgid', 0o2775), ('sticky', 0o1777), ('plain', 0o640)):
        (src / name).write_text(name)
        os.chmod(src / name, mode)
    copy_tree(LocalFiles(), str(src), LocalFiles(), str(tmp_path / 'copy'))
    modes = {p.name: p.stat().st_mode & 0o7777 for p in (tmp_path / 'copy').iterdir()}
    assert modes == {'suid': 0o755, 'sgid': 0o775, 'sticky': 0o777, 'plain': 0o640}
    # a private side (a results folder): folders 0700, no file writable by others
    copy_tree(LocalFiles(), str(src), LocalFiles(private=True), str(tmp_path / 'res' / 'job'))
    modes = {p.name: p.stat().st_mode & 0o7777 for p in (tmp_path / 'res' / 'job').iterdir()}
    assert modes == {'suid': 0o755, 'sgid': 0o755, 'sticky': 0o755, 'plain': 0o640}
    assert (tmp_path / 'res').stat().st_mode & 0o777 == 0o700
    assert (tmp_path / 'res' / 'job').stat().st_mode & 0o777 == 0o700


def test_a_link_loop_in_a_copied_folder_is_not_followed(tmp_path):
    src = tmp_path / 'src' / 'a'
    src.mkdir(parents=True)
    (src / 'f.txt').write_text('f')
    os.symlink('..', src / 'up')            # a/up -> src, which holds a
    (tmp_path / 'elsewhere').mkdir()
    (tmp_path / 'elsewhere' / 'e.txt').write_text('e')
    os.symlink(tmp_path / 'elsewhere', tmp_path / 'src' / 'side')
    with pytest.raises(TransferError) as err:
        copy_tree(LocalFiles(), str(tmp_path / 'src'), LocalFiles(), str(tmp_path / 'dst'))
    assert str(err.value) == f"{tmp_path / 'src' / 'a' / 'up'} on the orchestrator links to " \
                             f"{tmp_path / 'src'}, a folder it is in: a loop, not followed"
    # a link to a folder outside the copy is no loop: followed
    os.unlink(src / 'up')
    assert copy_tree(LocalFiles(), str(tmp_path / 'src'), LocalFiles(),
                     str(tmp_path / 'dst')) == (2, 2)
    assert (tmp_path / 'dst' / 'side' / 'e.txt').read_text() == 'e'


def test_copies_that_follow_no_link_leave_links_out_or_refuse_one(tmp_path):
    src = tmp_path / 'src'
    src.mkdir()
    (src / 'f.txt').write_text('f')
    os.symlink('/etc', src / 'etc')
    os.symlink('.', src / 'loop')
    skipped = []
    assert copy_tree(LocalFiles(), str(src), LocalFiles(), str(tmp_path / 'dst'),
                     follow_links=False, skipped=skipped) == (1, 1)
    assert skipped == [str(src / 'etc'), str(src / 'loop')]
    assert sorted(os.listdir(tmp_path / 'dst')) == ['f.txt']
    with pytest.raises(TransferError) as err:
        copy_tree(LocalFiles(), str(src / 'etc'), LocalFiles(), str(tmp_path / 'x'),
                  follow_links=False)
    assert 'is a symbolic link, and links are not followed here' in str(err.value)


def local_publication(tmp_path, paths, folder):
    workdir = tmp_path / 'work'
    workdir.mkdir(exist_ok=True)
    return Publication('job1', lambda: (LocalTransport(), str(workdir)), paths, str(folder)), \
        workdir


@pytest.mark.parametrize('results', ['a file', 'a link loop'])
def test_a_results_folder_that_cannot_be_made_fails_the_publication_clearly(tmp_path, results):
    where = tmp_path / 'results'
    if results == 'a file':
        where.write_text('not a folder')
    else:
        os.symlink(where, where)
    publication, workdir = local_publication(tmp_path, ['out.txt'], where / 'job1')
    (workdir / 'out.txt').write_text('x')
    with pytest.raises(TransferError) as err:
        publication.run()
    assert str(err.value) == f"publishing the outputs of job 'job1' failed: {where} exists " \
                             f"and is not a folder"


def test_an_os_error_while_publishing_is_the_publication_s_failure(tmp_path):
    publication, workdir = local_publication(tmp_path, ['out.txt'], tmp_path / 'res' / 'job1')
    (workdir / 'out.txt').write_text('x')
    (tmp_path / 'res' / 'job1' / 'out.txt' / 'kept').mkdir(parents=True)
    with pytest.raises(TransferError) as err:
        publication.run()
    assert str(err.value).startswith(f"publishing the outputs of job 'job1' into "
                                     f"{tmp_path / 'res' / 'job1'} failed: [Errno 21] Is a "
                                     f"directory: ")
    assert os.listdir(tmp_path / 'res' / 'job1') == ['out.txt']


def test_publication_refuses_links_on_the_way_and_leaves_links_in_folders_out(tmp_path):
    publication, workdir = local_publication(tmp_path, ['out'], tmp_path / 'res' / 'job1')
    (workdir / 'out').mkdir()
    (workdir / 'out' / 'r.txt').write_text('r')
    os.symlink('/etc/passwd', workdir / 'out' / 'passwd')
    done = publication.run()
    assert done.endswith(f"1 symbolic link(s) left out: {workdir / 'out' / 'passwd'}")
    assert sorted(os.listdir(tmp_path / 'res' / 'job1' / 'out')) == ['r.txt']
    os.symlink('/etc', workdir / 'conf')
    for path in ('conf', 'conf/passwd', './conf/ssh/'):
        publication.paths = [path]
        with pytest.raises(TransferError) as err:
            publication.run()
        assert f"{workdir / 'conf'} on the orchestrator is a symbolic link" in str(err.value)
    assert sorted(os.listdir(tmp_path / 'res' / 'job1')) == ['out']


@pytest.mark.parametrize('path, problem', [
    ('x/..', "holds '..'"), ('../secret', "holds '..'"), ('/abs/../etc/', "holds '..'"),
    ('out/.', 'names no file or folder'), ('/', 'names no file or folder'),
    ('out/', None), ('./out.txt', None), ('/scratch/run/out', None), ('..data', None),
])
def test_publish_paths_stay_inside_the_results_folder(path, problem):
    assert (publish_path_problem(path) or '').startswith(problem or '')
    assert (publish_path_problem(path) is None) == (problem is None)
    if problem:
        with pytest.raises(edge.NonRecoverableError) as err:
            edge.not_recoverable(blueprint.publish_paths)('job1', {'publish': ['ok.txt', path]})
        # '/' is refused by the earlier, general check, which names the whole list
        assert "node 'job1', property 'publish" in str(err.value)
        assert repr(path) in str(err.value)


@pytest.mark.parametrize('endpoint, shown', [
    ('https://u:s3cret@data.example.org/files', 'https://<hidden>@data.example.org/files'),
    ('u:s3cret@files.example.org', '<hidden>@files.example.org'),
    ('http://u:s3cret@host/a b', 'http://<hidden>@host/a b'),
    ('http://user@host:8080', 'http://<hidden>@host:8080'),
])
def test_a_user_or_password_in_an_endpoint_is_refused_and_not_shown(endpoint, shown):
    with pytest.raises(ConfigError) as err:
        DataInfrastructure.from_properties('store', {'endpoint': endpoint})
    text = str(err.value)
    assert text.startswith(f"node 'store', property 'endpoint' = {shown!r}: must not hold a "
                           f"user or password"), text
    assert 's3cret' not in text and 's3cret' not in repr(err.value.value)
    if '://' not in endpoint:
        return          # as a web resource, a path on the web server
    web = DataInfrastructure.from_properties('web', {'endpoint': 'http://web.example.org'})
    with pytest.raises(ConfigError) as err:
        DataSource.from_properties('src', 'web', {'resource': endpoint}, web)
    assert f"node 'src', property 'resource' = {shown!r}" in str(err.value)
    assert 's3cret' not in str(err.value)
    # an '@' in a path is no user
    assert DataInfrastructure.from_properties('s', {'endpoint': 'http://h/a@b'}).host == 'h'


@pytest.mark.parametrize('resource, name', [
    ('/data/numbers.txt', 'numbers.txt'), ('/data/a%20b.txt', 'a b.txt'),
    ('/data/..%2F..%2F.bashrc', None), ('/data/%2E%2E', None), ('/data/..', None),
    ('/data/a%2Fb', None), ('/data/a%00b', None), ('/', None),
])
def test_a_web_file_saved_into_a_folder_stays_in_it(resource, name):
    web = DataInfrastructure('web', 'http://web.example.org')
    store = DataInfrastructure.from_properties('store', {
        'endpoint': 'h', 'credentials': {'user': 'u', 'password': 'pw'}})
    source = DataSource('src', 'web', resource, web)
    transfer = Transfer('get', 'HTTP', source, DataSource('dst', 'file', 'in/', store))
    if name:
        assert web_file_name(source) == name
        transfer.check()
        return
    with pytest.raises(ConfigError) as err:
        web_file_name(source)
    assert str(err.value).startswith(f"node 'src', property 'resource' = {resource!r}: its "
                                     f"last part decodes to ")
    with pytest.raises(ConfigError) as err:
        transfer.check()
    assert str(err.value).startswith(f"node 'get', property 'from_source' = 'src': its "
                                     f"resource {resource!r}")
    # into a named file, the URL's name does not matter
    Transfer('get', 'HTTP', source, DataSource('dst', 'file', 'in/x.txt', store)).check()


@pytest.mark.parametrize('path, quoted', [
    ('run_12:30.log', './run_12:30.log'), ('a b:c/d', "'./a b:c/d'"),
    ('/scratch/x:y', '/scratch/x:y'), ('~/run_12:30.log', '"$HOME"/run_12:30.log'),
])
def test_rsync_reads_no_relative_path_as_a_host(path, quoted):
    assert rsync_local_path(path) == quoted


def view(node_id, type_name, props=None, rels=()):
    return edge.NodeView(node_id, [type_name, 'cloudify.nodes.Root'], props or {},
                         [([rel, 'cloudify.relationships.depends_on'], target)
                          for rel, target in rels])


def test_transfers_are_tied_to_the_jobs_that_need_them():
    creds = {'user': 'u', 'password': 'pw'}
    nodes = [
        view('web', edge.DAI_TYPE, {'endpoint': 'http://web.example.org'}),
        view('hpc', edge.DAI_TYPE, {'endpoint': 'hpc.example.org', 'credentials': creds}),
        view('remote', edge.WEB_SOURCE_TYPE, {'resource': 'in.csv'}, [('ds_located_at', 'web')]),
        view('raw', edge.FILE_SOURCE_TYPE, {'filepath': 'in.csv'}, [('ds_located_at', 'hpc')]),
        view('mid', edge.FILE_SOURCE_TYPE, {'filepath': 'mid.dat'}, [('ds_located_at', 'hpc')]),
        view('mid2', edge.FILE_SOURCE_TYPE, {'filepath': 'b/mid.dat'},
             [('ds_located_at', 'hpc')]),
        view('extra', edge.FILE_SOURCE_TYPE, {'filepath': 'x'}, [('ds_located_at', 'hpc')]),
        view('extra2', edge.FILE_SOURCE_TYPE, {'filepath': 'y'}, [('ds_located_at', 'hpc')]),
        view('get', edge.TRANSFER_TYPE, {'transfer_protocol': 'HTTP'},
             [('from_source', 'remote'), ('to_target', 'raw')]),
        view('hand_over', edge.TRANSFER_TYPE, {'transfer_protocol': 'SFTP'},
             [('from_source', 'mid'), ('to_target', 'mid2')]),
        view('loose', edge.TRANSFER_TYPE, {'transfer_protocol': 'SFTP'},
             [('from_source', 'extra'), ('to_target', 'extra2')]),
        view('first', edge.JOB_TYPE, {}, [('input', 'raw'), ('output', 'mid')]),
        view('second', edge.JOB_TYPE, {}, [('input', 'mid2')]),
        view('third', edge.JOB_TYPE, {}, [('input', 'mid')]),
    ]
    flow = blueprint.build_dataflow({n.id: n for n in nodes})
    assert flow.problems == []
    wiring = wire_transfers(flow)
    names = {job: ([t.name for t in ins], [t.name for t in outs], producers)
             for job, (ins, outs, producers) in wiring.items()}
    # the HTTP fetch before 'first'; the hand-over once, after 'first', and 'second'
    # waits for 'first'; 'third' reads what 'first' writes, so it waits too
    assert names == {'first': (['get'], ['hand_over'], []),
                     'second': ([], [], ['first']),
                     'third': ([], [], ['first'])}
