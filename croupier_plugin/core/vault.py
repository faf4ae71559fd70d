"""Credentials from HashiCorp Vault (or OpenBao), fetched with the user's JWT.

Convention (each part configurable on the Vault node): JWT login at the auth
mount ``jwt`` with role = the ``user`` property; the SSH credentials of a host
are the KV v2 secret ``secret/croupier/<user>/<host>``, whose keys are named
like the ``credentials`` properties. The Vault token is revoked as soon as
the secret was read. Nothing here logs or raises a secret.
"""

import contextlib
import logging
import re
import threading
from dataclasses import dataclass, field

import hvac
import requests

from . import site
from .errors import ConfigError, CroupierError

log = logging.getLogger('croupier.vault')

VAULT_PROPERTIES = ('jwt', 'user', 'address', 'auth_mount', 'role', 'kv_mount',
                    'path_template', 'kv_version', 'timeout', 'verify', 'token', 'cubbyhole')


class VaultError(CroupierError):
    """Vault could not give the credentials: the message says which step failed."""


@dataclass(frozen=True)
class VaultSettings:
    address: str
    user: str
    jwt: str = field(default='', repr=False)
    auth_mount: str = 'jwt'
    role: str = ''
    kv_mount: str = 'secret'
    path_template: str = 'croupier/{user}/{host}'
    kv_version: int = 2
    timeout: float = 10.0
    verify: bool = True

    @classmethod
    def from_properties(cls, props, prefix=''):
        props = dict(props or {})
        for key in props:
            if key not in VAULT_PROPERTIES:
                raise ConfigError(f'{prefix}{key}', props[key],
                                  f'is not a known Vault property ({", ".join(VAULT_PROPERTIES)})')
        if props.get('token') or props.get('cubbyhole'):
            raise ConfigError(f'{prefix}token', '<hidden>', 'a raw Vault token is not accepted; '
                                                           'give the user\'s jwt')
        address = props.get('address') or ''
        if address == '':
            # the node gives none: the site's (VAULT_ADDR or its configuration file)
            address = site.load().get('vault_address') or ''
            if not address:
                raise ConfigError(f'{prefix}address', props.get('address'),
                                  f'is required (e.g. https://vault:8200): give it on the '
                                  f'node, or {site.where_to_set("vault_address")}')
        if not isinstance(address, str) or not address.strip():
            raise ConfigError(f'{prefix}address', address, 'is required (e.g. https://vault:8200)')
        address = address.strip()
        if not re.match(r'^https?://', address):
            address = 'https://' + address
        user = props.get('user') or ''
        if not isinstance(user, str) or not re.fullmatch(r'[A-Za-z0-9_.@\-]+', user):
            raise ConfigError(f'{prefix}user', user, 'must be the Vault user name '
                                                     '(letters, digits, . _ - @)')
        jwt = props.get('jwt') or ''
        if not isinstance(jwt, str) or jwt.count('.') != 2:
            raise ConfigError(f'{prefix}jwt', '<hidden>', 'must be a JSON Web Token '
                                                          '(header.payload.signature)')
        kv_version = props.get('kv_version', 2)
        if kv_version not in (1, 2):
            raise ConfigError(f'{prefix}kv_version', kv_version, 'must be 1 or 2')
        template = props.get('path_template') or cls.path_template
        if '{host}' not in template:
            raise ConfigError(f'{prefix}path_template', template, 'must contain {host}')
        return cls(address=address, user=user, jwt=jwt,
                   auth_mount=props.get('auth_mount') or 'jwt',
                   role=props.get('role') or '', kv_mount=props.get('kv_mount') or 'secret',
                   path_template=template, kv_version=kv_version,
                   timeout=float(props.get('timeout') or 10),
                   verify=bool(props.get('verify', True)))

    def secret_path(self, host):
        # the host as a path element: no scheme, port separator or slashes
        clean = re.sub(r'^[a-z]+://', '', host).replace('/', '_').replace(':', '_')
        return self.path_template.format(user=self.user, host=clean)

    def _scrub(self, text):
        text = str(text)
        if self.jwt:
            text = text.replace(self.jwt, '<jwt>')
        return text

    @contextlib.contextmanager
    def _call(self, what, missing, refused, refusals=(hvac.exceptions.Forbidden,)):
        """Vault's errors during ``what`` as VaultErrors that say which step failed
        (``missing``: no such path; ``refused``: one of ``refusals``, followed by
        Vault's reason). Vault's messages never hold the request; the JWT is
        scrubbed all the same."""
        try:
            yield
        except refusals as exc:
            raise VaultError(f'Vault at {self.address} {refused}: '
                             f'{self._scrub(_reason(exc))}') from None
        except hvac.exceptions.InvalidPath:
            raise VaultError(f'Vault at {self.address} {missing}') from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise VaultError(f'Vault at {self.address} is unreachable: '
                             f'{type(exc).__name__}') from None
        except hvac.exceptions.VaultError as exc:
            raise VaultError(f'Vault at {self.address}: {what} failed: '
                             f'{self._scrub(_reason(exc))}') from None

    def login(self):
        """An authenticated hvac client (its token revoked by ``logout``)."""
        client = hvac.Client(url=self.address, timeout=self.timeout, verify=self.verify)
        role = self.role or self.user
        with self._call('login', missing=f'has no JWT auth method at {self.auth_mount!r}',
                        refused=f'refused the JWT login (auth mount {self.auth_mount!r}, '
                                f'role {role!r})',
                        refusals=(hvac.exceptions.InvalidRequest, hvac.exceptions.Forbidden,
                                  hvac.exceptions.Unauthorized)):
            client.auth.jwt.jwt_login(role=role, jwt=self.jwt, path=self.auth_mount)
        return client

    @staticmethod
    def logout(client):
        try:
            client.auth.token.revoke_self()
        except (hvac.exceptions.VaultError, requests.RequestException) as exc:
            log.warning('could not revoke the Vault token: %s', type(exc).__name__)

    def read(self, client, host):
        path = self.secret_path(host)
        where = f'{self.kv_mount}/{path}'
        with self._call(f'reading {where}', missing=f'has no secret at {where}',
                        refused=f'denied reading {where}'):
            if self.kv_version == 2:
                data = client.secrets.kv.v2.read_secret_version(
                    path=path, mount_point=self.kv_mount,
                    raise_on_deleted_version=True)['data']['data']
            else:
                data = client.secrets.kv.v1.read_secret(path=path,
                                                        mount_point=self.kv_mount)['data']
        if not isinstance(data, dict):
            raise VaultError(f'Vault secret {where} is not a mapping')
        return dict(data)

    def write(self, client, host, data):
        path = self.secret_path(host)
        where = f'{self.kv_mount}/{path}'
        with self._call(f'writing {where}', missing=f'has no KV engine at {self.kv_mount!r}',
                        refused=f'denied writing {where}'):
            if self.kv_version == 2:
                client.secrets.kv.v2.create_or_update_secret(path=path, secret=data,
                                                             mount_point=self.kv_mount)
            else:
                client.secrets.kv.v1.create_or_update_secret(path=path, secret=data,
                                                             mount_point=self.kv_mount)
        return where


def _reason(exc):
    # hvac's message lists Vault's "errors"; never the request
    errors = getattr(exc, 'errors', None)
    if errors:
        return '; '.join(str(e) for e in errors)
    return str(exc).split(', on ')[0]


_CACHE = {}
_CACHE_LOCK = threading.Lock()


def fetch_credentials(settings, host):
    """The credentials Vault holds for ``host`` (kept in memory for the life of
    the process, so one run logs in once per host)."""
    key = (settings.address, settings.auth_mount, settings.role or settings.user,
           settings.kv_mount, settings.secret_path(host), settings.jwt)
    with _CACHE_LOCK:
        if key in _CACHE:
            return dict(_CACHE[key])
    client = settings.login()
    try:
        data = settings.read(client, host)
    finally:
        settings.logout(client)
    with _CACHE_LOCK:
        _CACHE[key] = data
    log.info('credentials for %s read from Vault at %s (%s)', host, settings.address,
             ', '.join(sorted(data)))
    return dict(data)


def clear_cache():
    with _CACHE_LOCK:
        _CACHE.clear()


def merge_credentials(blueprint, from_vault, defaults=None):
    """Vault's values under the blueprint's: what the blueprint gives wins. A
    blueprint value equal to its plugin.yaml default counts as not given."""
    defaults = defaults or {}
    merged = dict(from_vault)
    for key, value in (blueprint or {}).items():
        given = value not in (None, '') and not (key in defaults and value == defaults[key]
                                                 and key in from_vault)
        if given or key not in merged:
            merged[key] = value
    return merged
