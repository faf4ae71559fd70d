"""The exporter's own configuration: where it listens, and how it logs in to
each HPC front-end.

Credentials never reach the exporter over HTTP. They come from this file
(``hosts``: one ``credentials`` mapping per front-end, the same fields as an
InfrastructureInterface's) or from Vault (``vault``: a Vault node's settings,
with the JWT in a file); a registration only names host, port and user.
"""

import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Optional

import yaml

from ..errors import ConfigError, CroupierError
from ..transport import SshSettings
from ..vault import VAULT_PROPERTIES, VaultSettings, fetch_credentials

log = logging.getLogger('croupier.exporter')

CONFIG_KEYS = ('listen', 'port', 'state_file', 'cache_seconds', 'command_timeout', 'hosts',
               'vault')
# besides a Vault node's properties: the JWT from a file, and how the host keys
# of front-ends found through Vault are checked
VAULT_EXTRA_KEYS = ('jwt_file', 'known_hosts', 'host_key_check')
DEFAULT_PORT = 9110


class CredentialsNotFound(CroupierError):
    """The exporter has no way to log in to a registered front-end."""


@dataclass
class ExporterConfig:
    listen: str = '127.0.0.1'
    port: int = DEFAULT_PORT
    state_file: Optional[str] = None
    cache_seconds: float = 1.0
    command_timeout: float = 60.0
    hosts: list = field(default_factory=list)
    vault: Optional[VaultSettings] = None
    vault_ssh_defaults: dict = field(default_factory=dict)
    _resolved: dict = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def load(cls, path):
        """The configuration in the YAML file at ``path``."""
        try:
            with open(path) as fh:
                data = yaml.safe_load(fh)
        except OSError as exc:
            raise ConfigError('--config', path, f'cannot be read: {exc.strerror}') from None
        except yaml.YAMLError as exc:
            raise ConfigError('--config', path, f'is not valid YAML: {exc}') from None
        return cls.from_mapping(data if data is not None else {})

    @classmethod
    def from_mapping(cls, data):
        if not isinstance(data, dict):
            raise ConfigError('exporter configuration', type(data).__name__,
                              'must be a mapping')
        for key in data:
            if key not in CONFIG_KEYS:
                raise ConfigError(key, data[key] if key not in ('vault', 'hosts') else '...',
                                  f'is not a known exporter setting ({", ".join(CONFIG_KEYS)})')
        listen = data.get('listen', '127.0.0.1')
        if not isinstance(listen, str) or not listen.strip() or any(c.isspace() for c in listen):
            raise ConfigError('listen', listen, 'must be an address to listen on, '
                                                'e.g. 127.0.0.1')
        port = data.get('port', DEFAULT_PORT)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port < 65536:
            raise ConfigError('port', port, 'must be a TCP port number (0 picks a free one)')
        state_file = data.get('state_file') or None
        if state_file is not None and not isinstance(state_file, str):
            raise ConfigError('state_file', state_file, 'must be a file path')
        cache = _number('cache_seconds', data.get('cache_seconds', 1.0), zero=True)
        timeout = _number('command_timeout', data.get('command_timeout', 60.0))
        hosts = data.get('hosts') or []
        if not isinstance(hosts, list):
            raise ConfigError('hosts', '...', 'must be a list of credentials mappings')
        settings = []
        for i, entry in enumerate(hosts):
            settings.append(SshSettings.from_credentials(entry, prefix=f'hosts[{i}]'))
        vault, defaults = None, {}
        if data.get('vault') is not None:
            vault, defaults = _vault(data['vault'])
        if not settings and vault is None:
            raise ConfigError('hosts', hosts, 'the exporter needs credentials: give hosts '
                                              '(credentials per front-end) or vault')
        return cls(listen=listen.strip(), port=port, state_file=state_file,
                   cache_seconds=cache, command_timeout=timeout, hosts=settings,
                   vault=vault, vault_ssh_defaults=defaults)

    def credentials_for(self, host, port, user):
        """SshSettings for ``user`` on ``host``:``port``: the ``hosts`` entry
        naming them, else the secret Vault holds for the host."""
        key = (host, int(port), user)
        with self._lock:
            if key in self._resolved:
                return self._resolved[key]
        for entry in self.hosts:
            if (entry.host, entry.port, entry.user) == key:
                found = entry
                break
        else:
            if self.vault is None:
                raise CredentialsNotFound(
                    f'the exporter has no credentials for {user}@{host}:{port}: add it to '
                    f'the hosts of its configuration')
            found = self._from_vault(host, int(port), user)
        with self._lock:
            self._resolved[key] = found
        return found

    def _from_vault(self, host, port, user):
        try:
            secret = fetch_credentials(self.vault, host)
        except CroupierError as exc:
            raise CredentialsNotFound(f'the exporter has no credentials for '
                                      f'{user}@{host}:{port}: {exc}') from None
        creds = {k: v for k, v in secret.items() if k in SshSettings.CREDENTIAL_KEYS}
        creds.update(self.vault_ssh_defaults)
        # the front-end is the one registered; Vault gives the way in
        creds.update(host=host, port=port)
        creds.pop('ssh_port', None)
        creds.setdefault('user', user)
        if creds.get('user') != user:
            raise CredentialsNotFound(f'the Vault secret for {host} is for user '
                                      f'{creds.get("user")!r}, not {user!r}')
        creds.pop('username', None)
        try:
            return SshSettings.from_credentials(creds, prefix=f'Vault secret for {host}')
        except ConfigError as exc:
            raise CredentialsNotFound(f'the exporter cannot use the Vault secret for '
                                      f'{host}: {exc}') from None


def _vault(data):
    if not isinstance(data, dict):
        raise ConfigError('vault', '...', 'must be a mapping of Vault settings')
    props = {}
    defaults = {}
    for key, value in data.items():
        if key in VAULT_EXTRA_KEYS:
            continue
        if key not in VAULT_PROPERTIES:
            raise ConfigError(f'vault.{key}', value if key != 'jwt' else '<hidden>',
                              f'is not a known Vault setting '
                              f'({", ".join(VAULT_PROPERTIES + VAULT_EXTRA_KEYS)})')
        props[key] = value
    if data.get('jwt_file'):
        path = os.path.expanduser(str(data['jwt_file']))
        try:
            with open(path) as fh:
                props['jwt'] = fh.read().strip()
        except OSError as exc:
            raise ConfigError('vault.jwt_file', data['jwt_file'],
                              f'cannot be read: {exc.strerror}') from None
    settings = VaultSettings.from_properties(props, prefix='vault.')
    if data.get('known_hosts'):
        defaults['known_hosts'] = str(data['known_hosts'])
    if 'host_key_check' in data:
        if not isinstance(data['host_key_check'], bool):
            raise ConfigError('vault.host_key_check', data['host_key_check'],
                              'must be true or false')
        defaults['host_key_check'] = data['host_key_check']
    return settings, defaults


def _number(prop, value, zero=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or \
            (value == 0 and not zero):
        raise ConfigError(prop, value, 'must be a positive number of seconds')
    return float(value)
