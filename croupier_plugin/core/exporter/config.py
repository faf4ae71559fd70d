"""The exporter's own configuration: where it listens, and how it logs in to
each HPC front-end.

Credentials never reach the exporter over HTTP. They come from this file
(``hosts``: one ``credentials`` mapping per front-end, the same fields as an
InfrastructureInterface's) or from Vault (``vault``: a Vault node's settings,
with the JWT in a file); a registration only names host, port and user.
"""

from __future__ import annotations

import logging
import math
import os
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Optional

import yaml

from ..errors import ConfigError, CroupierError
from ..transport import SshSettings
from ..vault import VAULT_PROPERTIES, VaultSettings

log = logging.getLogger('croupier.exporter')

CONFIG_KEYS = ('listen', 'port', 'state_file', 'cache_seconds', 'command_timeout',
               'scrape_timeout', 'token', 'token_file', 'hosts', 'vault')
# besides a Vault node's properties: the JWT from a file, and how the host keys
# of front-ends found through Vault are checked
VAULT_EXTRA_KEYS = ('jwt_file', 'known_hosts', 'host_key_check')
DEFAULT_PORT = 9110
# the numbers of a hosts entry (the transport takes them as they are)
_HOST_NUMBERS = {'connect_timeout': (0.1, 3600.0), 'reconnect_timeout': (0.1, 86400.0),
                 'max_sessions': (1, 64)}
# a token shorter than this is guessable
MIN_TOKEN_LENGTH = 16


class CredentialsNotFound(CroupierError):
    """The exporter has no way to log in to a registered front-end."""


class SecretFile:
    """A secret kept in a file and read again whenever the file changes (its
    modification time, size or inode), so that a rotated JWT or token is
    picked up without a restart. ``check(text)`` refuses a bad content."""

    def __init__(self, prop: str, path: str,
                 check: Callable[[str], None] | None = None) -> None:
        self.prop = prop
        self.path = os.path.expanduser(path)
        self._check = check
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._value = ''
        self.value()        # an unreadable file is refused at start, not at first use

    def __repr__(self) -> str:
        return f'SecretFile({self.prop}={self.path!r})'

    def value(self) -> str:
        """The file's content (stripped), read again if the file changed."""
        with self._lock:
            try:
                st = os.stat(self.path)
                stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
                if stamp != self._stamp:
                    if stat.S_ISDIR(st.st_mode):
                        raise IsADirectoryError(21, 'Is a directory')
                    with open(self.path) as fh:
                        text = fh.read().strip()
                    if self._check is not None:
                        self._check(text)
                    self._value, self._stamp = text, stamp
            except OSError as exc:
                raise ConfigError(self.prop, self.path,
                                  f'cannot be read: {exc.strerror}') from None
            return self._value


@dataclass
class ExporterConfig:
    """The exporter's settings, checked (``from_mapping``) before it starts."""
    listen: str = '127.0.0.1'
    port: int = DEFAULT_PORT
    state_file: Optional[str] = None
    cache_seconds: float = 1.0
    command_timeout: float = 60.0
    scrape_timeout: float = 5.0
    token: Optional[str] = field(default=None, repr=False)
    token_file: Optional[SecretFile] = None
    hosts: list[SshSettings] = field(default_factory=list)
    vault: Optional[VaultSettings] = None
    jwt_file: Optional[SecretFile] = None
    vault_ssh_defaults: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str) -> 'ExporterConfig':
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
    def from_mapping(cls, data: Any) -> 'ExporterConfig':
        """The configuration from its mapping; ConfigError names the bad setting."""
        if not isinstance(data, dict):
            raise ConfigError('exporter configuration', type(data).__name__,
                              'must be a mapping')
        for key in data:
            if key not in CONFIG_KEYS:
                raise ConfigError(key, data[key] if key not in ('vault', 'hosts', 'token')
                                  else '...',
                                  f'is not a known exporter setting ({", ".join(CONFIG_KEYS)})')
        listen = data.get('listen', '127.0.0.1')
        if not isinstance(listen, str) or not listen.strip() or any(c.isspace() for c in listen):
            raise ConfigError('listen', listen, 'must be an address to listen on, '
                                                'e.g. 127.0.0.1')
        port = data.get('port', DEFAULT_PORT)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port < 65536:
            raise ConfigError('port', port, 'must be a TCP port number (0 picks a free one)')
        state_file = _state_file(data.get('state_file') or None)
        cache = _number('cache_seconds', data.get('cache_seconds', 1.0), 0.0, 3600.0)
        timeout = _number('command_timeout', data.get('command_timeout', 60.0), 0.1, 3600.0)
        scrape = _number('scrape_timeout', data.get('scrape_timeout', 5.0), 0.1, 300.0)
        hosts = data.get('hosts') or []
        if not isinstance(hosts, list):
            raise ConfigError('hosts', '...', 'must be a list of credentials mappings')
        settings = []
        for i, entry in enumerate(hosts):
            if isinstance(entry, dict):
                for key, (low, high) in _HOST_NUMBERS.items():
                    if key in entry:
                        _number(f'hosts[{i}].{key}', entry[key], low, high)
            settings.append(SshSettings.from_credentials(entry, prefix=f'hosts[{i}]'))
        vault: VaultSettings | None
        jwt_file: SecretFile | None
        defaults: dict[str, Any]
        vault, jwt_file, defaults = None, None, {}
        if data.get('vault') is not None:
            vault, jwt_file, defaults = _vault(data['vault'])
        if not settings and vault is None:
            raise ConfigError('hosts', hosts, 'the exporter needs credentials: give hosts '
                                              '(credentials per front-end) or vault')
        token, token_file = _token(data)
        return cls(listen=listen.strip(), port=port, state_file=state_file,
                   cache_seconds=cache, command_timeout=timeout, scrape_timeout=scrape,
                   token=token, token_file=token_file, hosts=settings,
                   vault=vault, jwt_file=jwt_file, vault_ssh_defaults=defaults)

    def current_token(self) -> str:
        """The token the registration API asks for (the token file read again
        when it changed)."""
        return self.token_file.value() if self.token_file is not None else (self.token or '')

    def credentials_for(self, host: str, port: int, user: str) -> SshSettings:
        """SshSettings for ``user`` on ``host``:``port``: the ``hosts`` entry
        naming them, else the secret Vault holds for the host, read anew at
        each call (rotated secrets are seen at the next connection)."""
        key = (host, int(port), user)
        for entry in self.hosts:
            if (entry.host, entry.port, entry.user) == key:
                return entry
        if self.vault is None:
            raise CredentialsNotFound(
                f'the exporter has no credentials for {user}@{host}:{port}: add it to '
                f'the hosts of its configuration')
        return self._from_vault(host, int(port), user)

    def vault_settings(self) -> VaultSettings:
        """The Vault settings with the JWT as the JWT file holds it now."""
        # asked for only when the configuration has vault (and jwt_file comes with it)
        assert self.vault is not None
        if self.jwt_file is None:
            return self.vault
        return replace(self.vault, jwt=self.jwt_file.value())

    def _from_vault(self, host: str, port: int, user: str) -> SshSettings:
        try:
            vault = self.vault_settings()
            client = vault.login()
            try:
                secret = vault.read(client, host)
            finally:
                vault.logout(client)
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


def _state_file(value: Any) -> Optional[str]:
    """The registrations file: a file path whose folder the exporter can write."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError('state_file', value, 'must be a file path')
    path = os.path.abspath(os.path.expanduser(value))
    if os.path.isdir(path):
        raise ConfigError('state_file', value, 'is a directory; give a file path such as '
                                               f'{os.path.join(value, "registrations.json")}')
    folder = os.path.dirname(path)
    existing = folder
    while not os.path.isdir(existing):
        parent = os.path.dirname(existing)
        if parent == existing:
            break
        existing = parent
    if not os.access(existing, os.W_OK | os.X_OK) or \
            (os.path.exists(path) and not os.access(path, os.R_OK)):
        raise ConfigError('state_file', value, f'cannot be written ({existing} is not '
                                               f'writable by this user)')
    return path


def _token(data: dict[str, Any]) -> tuple[str | None, SecretFile | None]:
    """(token, SecretFile) from ``token`` or ``token_file``: exactly one is required."""
    token, token_file = data.get('token'), data.get('token_file')
    if token and token_file:
        raise ConfigError('token_file', token_file, 'give token or token_file, not both')
    if token_file:
        if not isinstance(token_file, str):
            raise ConfigError('token_file', token_file, 'must be a file path')
        return None, SecretFile('token_file', token_file, check=_check_token('token_file'))
    if token is None or token == '':
        raise ConfigError('token', '<hidden>' if token else token,
                          'is required: the registration API asks for it (give token or '
                          'token_file; the plugin sends it from the HPCExporter\'s token, '
                          'token_file or CROUPIER_EXPORTER_TOKEN)')
    if not isinstance(token, str):
        raise ConfigError('token', '<hidden>', 'must be a string')
    _check_token('token')(token)
    return token, None


def _check_token(prop: str) -> Callable[[str], None]:
    """A check of a token's text that names ``prop`` and never shows the token."""
    def check(text: str) -> None:
        if len(text) < MIN_TOKEN_LENGTH or any(c.isspace() or not c.isprintable()
                                               for c in text):
            raise ConfigError(prop, '<hidden>', f'must be at least {MIN_TOKEN_LENGTH} '
                                                f'printable characters without spaces')
    return check


def _check_jwt(text: str) -> None:
    if text.count('.') != 2:
        raise ConfigError('vault.jwt_file', '<hidden>', 'must hold a JSON Web Token '
                                                        '(header.payload.signature)')


def _vault(data: Any) -> tuple[VaultSettings, SecretFile | None, dict[str, Any]]:
    """(VaultSettings, SecretFile of the JWT or None, SSH defaults) from ``vault``."""
    if not isinstance(data, dict):
        raise ConfigError('vault', '...', 'must be a mapping of Vault settings')
    props: dict[str, Any] = {}
    defaults: dict[str, Any] = {}
    for key, value in data.items():
        if key in VAULT_EXTRA_KEYS:
            continue
        if key not in VAULT_PROPERTIES:
            raise ConfigError(f'vault.{key}', value if key != 'jwt' else '<hidden>',
                              f'is not a known Vault setting '
                              f'({", ".join(VAULT_PROPERTIES + VAULT_EXTRA_KEYS)})')
        props[key] = value
    if 'timeout' in props:
        _number('vault.timeout', props['timeout'], 0.1, 3600.0)
    jwt_file = None
    if data.get('jwt_file'):
        if not isinstance(data['jwt_file'], str):
            raise ConfigError('vault.jwt_file', data['jwt_file'], 'must be a file path')
        jwt_file = SecretFile('vault.jwt_file', data['jwt_file'], check=_check_jwt)
        props['jwt'] = jwt_file.value()
    settings = VaultSettings.from_properties(props, prefix='vault.')
    if data.get('known_hosts'):
        defaults['known_hosts'] = str(data['known_hosts'])
    if 'host_key_check' in data:
        if not isinstance(data['host_key_check'], bool):
            raise ConfigError('vault.host_key_check', data['host_key_check'],
                              'must be true or false')
        defaults['host_key_check'] = data['host_key_check']
    return settings, jwt_file, defaults


def _number(prop: str, value: Any, low: float, high: float) -> float:
    """``value`` as a float when it is a finite number within [low, high]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value) or not low <= value <= high:
        raise ConfigError(prop, value, f'must be a finite number from {low:g} to {high:g}')
    return float(value)
