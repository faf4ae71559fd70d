"""A blueprint whose interface gets its SSH key only from Vault (the bed's OpenBao),
running a job on the bed's SLURM; then every log, event and stored property is
searched for the secrets involved."""

import os
import subprocess
import sys

import paramiko
import pytest

from croupier_plugin.core.transport import SshSettings
from croupier_plugin.core.transport.ssh import SshConnection

pytestmark = pytest.mark.bed

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def croupier(env, *args, **kw):
    return subprocess.run([sys.executable, '-m', 'croupier_plugin.cli', *args],
                          capture_output=True, text=True, env=env, timeout=180, **kw)


def all_text_under(path):
    chunks = []
    for folder, _, files in os.walk(path):
        for name in files:
            with open(os.path.join(folder, name), 'rb') as fh:
                chunks.append(fh.read().decode('utf-8', 'replace'))
    return '\n'.join(chunks)


def test_key_only_from_vault_and_no_secret_anywhere(bed, vault_bed, tmp_path):
    with open(bed['keys']['ed25519']) as fh:
        private_key = fh.read()
    # a distinctive password (wrong on purpose: the key is what logs in)
    password = 'Pw-Distinctive-7f3a9c'
    vault_bed.put(bed['host'], {'user': bed['user'], 'port': bed['port'],
                                'private_key': private_key, 'password': password})
    jwt = vault_bed.token()
    home = tmp_path / 'home'
    env = dict(os.environ, CROUPIER_HOME=str(home), CROUPIER_LOG_LEVEL='DEBUG')
    inputs = [f'-ivault_address={vault_bed.address}', '-ivault_user=alice', f'-ijwt={jwt}',
              f"-ihpc_host={bed['host']}", f"-iknown_hosts={bed['known_hosts']}"]
    bp = os.path.join(ROOT, 'tests', 'blueprints', 'slurm-vault.yaml')
    outputs = []
    for args in (['install', bp, 'vaulted', *inputs, '-v'], ['execute', 'vaulted', '-v'],
                 ['status', 'vaulted']):
        result = croupier(env, *args)
        outputs += [result.stdout, result.stderr]
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert ' COMPLETED ' in outputs[-2]
    stored = all_text_under(home)               # every stored property and plan
    assert 'job_id' in stored                   # (the search below looks at real content)
    key_body = ''.join(private_key.strip().splitlines()[1:-1])
    key_lines = [line for line in private_key.splitlines()[1:-1] if len(line) > 20]
    for text in outputs + [stored]:
        assert password not in text
        assert key_body not in text and not any(line in text for line in key_lines)
    # the JWT is a blueprint input: it is in the stored plan (as every input is) but in
    # no log, event or runtime property
    for text in outputs:
        assert jwt not in text
    for folder, _, files in os.walk(home):
        for name in files:
            if 'node-instances' in folder:
                with open(os.path.join(folder, name)) as fh:
                    assert jwt not in fh.read()
    result = croupier(env, 'uninstall', 'vaulted', '-v')
    assert result.returncode == 0
    assert password not in result.stdout + result.stderr
    assert jwt not in result.stdout + result.stderr


def test_keys_generate_stores_a_working_key_in_vault(bed, vault_bed, tmp_path, ssh):
    jwt_file = tmp_path / 'jwt'
    jwt_file.write_text(vault_bed.token())
    host = 'keys-test.example.org'
    result = croupier(dict(os.environ), 'keys', 'generate', '--vault-address', vault_bed.address,
                      '--jwt-file', str(jwt_file), '--user', 'alice', '--host', host,
                      '--ssh-user', bed['user'])
    assert result.returncode == 0, result.stderr
    public_line = result.stdout.strip()
    assert public_line.startswith('ssh-ed25519 ') and public_line.endswith(f'alice@{host}')
    assert 'PRIVATE KEY' not in result.stdout + result.stderr
    secret = vault_bed.get(host)
    assert secret['user'] == bed['user']
    assert secret['private_key'].startswith('-----BEGIN OPENSSH PRIVATE KEY-----')
    # the printed public key matches the stored private key, and it logs in
    stored = paramiko.Ed25519Key.from_private_key(__import__('io').StringIO(
        secret['private_key']))
    assert public_line.split()[1] == stored.get_base64()
    ssh.inner.run(f"printf '%s\\n' {__import__('shlex').quote(public_line)} "
                  ">> ~/.ssh/authorized_keys", check=True)
    try:
        conn = SshConnection(SshSettings(host=bed['host'], port=bed['port'], user=secret['user'],
                                         private_key=secret['private_key'],
                                         known_hosts=bed['known_hosts']))
        assert conn.run('whoami', 10, True).stdout.strip() == bed['user']
        conn.close()
    finally:
        ssh.inner.run(f"sed -i '/alice@{host}$/d' ~/.ssh/authorized_keys", check=True)


def vault_data_inputs(bed, vault_bed, jwt, archive):
    return [f'-ivault_address={vault_bed.address}', '-ivault_user=alice', f'-ijwt={jwt}',
            f"-ihpc_host={bed['host']}", f"-ihpc_port={bed['port']}",
            f"-ihpc_user={bed['user']}", f"-ihpc_private_key_file={bed['keys']['ed25519']}",
            f"-iknown_hosts={bed['known_hosts']}", f'-iarchive_path={archive}/result.txt']


def test_data_store_login_only_from_vault_and_no_secret_anywhere(bed, vault_bed, peer_ssh,
                                                                 tmp_path):
    with open(bed['peer']['key']) as fh:
        peer_key = fh.read()
    vault_bed.put(bed['host'], {'user': bed['peer']['user'], 'port': bed['port'],
                                'private_key': peer_key})
    jwt = vault_bed.token()
    home = tmp_path / 'home'
    env = dict(os.environ, CROUPIER_HOME=str(home), CROUPIER_LOG_LEVEL='DEBUG')
    archive = f'vault-archive-{tmp_path.name}'
    bp = os.path.join(ROOT, 'tests', 'blueprints', 'dataflow-vault.yaml')
    outputs = []
    try:
        for args in (['install', bp, 'vaultdata', *vault_data_inputs(bed, vault_bed, jwt, archive),
                      '-v'], ['execute', 'vaultdata', '-v'], ['uninstall', 'vaultdata', '-v']):
            result = croupier(env, *args)
            outputs += [result.stdout, result.stderr]
            assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        # rsync logged in to the store as the account Vault named, with Vault's key
        assert peer_ssh.run(f'cat {archive}/result.txt').stdout == f"made by {bed['user']}\n"
    finally:
        peer_ssh.run(f'rm -rf -- {archive}')
    key_lines = [line for line in peer_key.splitlines()[1:-1] if len(line) > 20]
    stored = all_text_under(home)
    for text in outputs + [stored]:
        assert not any(line in text for line in key_lines)
    for text in outputs:
        assert jwt not in text


def test_data_store_with_a_refused_jwt_fails_the_install_naming_it(bed, vault_bed, tmp_path):
    jwt = vault_bed.token(aud='someone-else')
    env = dict(os.environ, CROUPIER_HOME=str(tmp_path / 'home'))
    bp = os.path.join(ROOT, 'tests', 'blueprints', 'dataflow-vault.yaml')
    result = croupier(env, 'install', bp, 'vaultbad',
                      *vault_data_inputs(bed, vault_bed, jwt, 'unused'))
    try:
        assert result.returncode != 0
        assert "task_failed: Task failed 'croupier_plugin.operations.configure_data_" \
               "infrastructure' -> node 'store': credentials from Vault node 'vault': Vault " \
               "at http://127.0.0.1:8200 refused the JWT login" in result.stdout, \
            result.stdout[-3000:]
        assert 'invalid audience' in result.stdout
        assert jwt not in result.stdout + result.stderr
    finally:
        assert croupier(env, 'uninstall', 'vaultbad').returncode == 0
