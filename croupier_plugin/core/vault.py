"""Credentials from HashiCorp Vault (or OpenBao), fetched with the user's JWT or
with a Vault token the user gives.

Convention (each part configurable on the Vault node): JWT login at the auth
mount ``jwt`` with role = the ``user`` property; the SSH credentials of a host
are the KV v2 secret ``secret/croupier/<user>/<host>``, whose keys are named
like the ``credentials`` properties. The token of a JWT login is revoked as soon
as the secret was read; a token the user gave is used as it is and left alive
(it is theirs). With ``cubbyhole`` the secret is ``cubbyhole/<host>`` of that
token. Nothing here logs or raises a secret.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import math
import os
import re
import string
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

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
    """A Vault node's properties, checked: every value here is safe to hand to hvac."""

    address: str
    user: str
    jwt: str = field(default='', repr=False)
    token: str = field(default='', repr=False)
    cubbyhole: bool = False
    auth_mount: str = 'jwt'
    role: str = ''
    kv_mount: str = 'secret'
    path_template: str = 'croupier/{user}/{host}'
    kv_version: int = 2
    timeout: float = 10.0
    verify: bool | str = True

    @classmethod
    def from_properties(cls, props: Mapping[str, Any] | None, prefix: str = '',
                        node: str | None = None) -> VaultSettings:
        """Check a Vault node's properties (or the exporter's ``vault`` settings, named
        with ``prefix``). ``croupier validate`` and the install both come here, so they
        refuse the same values. Errors name ``node`` (when given), the property and
        the value, never a secret."""
        try:
            return cls._parse(dict(props or {}), prefix, node)
        except ConfigError as exc:
            raise exc.for_node(node) if node else exc from None

    @classmethod
    def _parse(cls, props: dict, prefix: str, node: str | None) -> VaultSettings:
        for key in props:
            if key not in VAULT_PROPERTIES:
                raise ConfigError(f'{prefix}{key}', props[key],
                                  f'is not a known Vault property ({", ".join(VAULT_PROPERTIES)})')
        address = props.get('address') or ''
        if address == '':
            # the node gives none: the site's (VAULT_ADDR or its configuration file)
            address = site.load().get('vault_address') or ''
            if not address:
                raise ConfigError(f'{prefix}address', props.get('address'),
                                  f'is required (e.g. https://vault:8200): give it on the '
                                  f'node, or {site.where_to_set("vault_address")}')
        address = _address(address, f'{prefix}address', node)
        jwt, token, cubbyhole = _login_means(props, prefix)
        user = props.get('user') or ''
        if (user or not cubbyhole) and (not isinstance(user, str)
                                        or not re.fullmatch(r'[A-Za-z0-9_.@\-]+', user)):
            raise ConfigError(f'{prefix}user', user, 'must be the Vault user name '
                                                     '(letters, digits, . _ - @)')
        kv_version = props.get('kv_version', 2)
        # True == 1 in Python: a boolean would silently pick KV version 1
        if type(kv_version) is not int or kv_version not in (1, 2):
            raise ConfigError(f'{prefix}kv_version', kv_version, 'must be 1 or 2')
        template = props.get('path_template') or cls.path_template
        _check_template(template, f'{prefix}path_template')
        verify = _verify(props.get('verify', True), f'{prefix}verify', node)
        for name in ('auth_mount', 'role', 'kv_mount'):
            if not isinstance(props.get(name) or '', str):
                raise ConfigError(f'{prefix}{name}', props[name], 'must be text')
        return cls(address=address, user=user, jwt=jwt, token=token, cubbyhole=cubbyhole,
                   auth_mount=props.get('auth_mount') or 'jwt',
                   role=props.get('role') or '', kv_mount=props.get('kv_mount') or 'secret',
                   path_template=template, kv_version=kv_version,
                   timeout=_timeout(props.get('timeout', 10), f'{prefix}timeout'),
                   verify=verify)

    def secret_path(self, host: str) -> str:
        """Where the secret of ``host`` is: under the KV mount, or in the token's
        cubbyhole (``cubbyhole/<host>``)."""
        # the host as a path element: no scheme, port separator or slashes
        clean = re.sub(r'^[a-z]+://', '', host).replace('/', '_').replace(':', '_')
        if self.cubbyhole:
            return f'cubbyhole/{clean}'
        return self.path_template.format(user=self.user, host=clean)

    def _scrub(self, text: Any) -> str:
        """``text`` with the JWT and the token replaced."""
        text = str(text)
        if self.jwt:
            text = text.replace(self.jwt, '<jwt>')
        if self.token:
            text = text.replace(self.token, '<token>')
        return text

    @contextlib.contextmanager
    def _call(self, what: str, missing: str, refused: str,
              refusals: tuple[type[Exception], ...] = (hvac.exceptions.Forbidden,)
              ) -> Iterator[None]:
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

    def login(self) -> hvac.Client:
        """An authenticated hvac client: the user's token, checked, or a JWT login
        (whose token ``logout`` revokes)."""
        if self.token:
            client = hvac.Client(url=self.address, token=self.token, timeout=self.timeout,
                                 verify=self.verify)
            with self._call('token lookup', missing='has no token auth method',
                            refused='refused the token',
                            refusals=(hvac.exceptions.Forbidden,
                                      hvac.exceptions.Unauthorized)):
                client.auth.token.lookup_self()
            return client
        client = hvac.Client(url=self.address, timeout=self.timeout, verify=self.verify)
        role = self.role or self.user
        with self._call('login', missing=f'has no JWT auth method at {self.auth_mount!r}',
                        refused=f'refused the JWT login (auth mount {self.auth_mount!r}, '
                                f'role {role!r})',
                        refusals=(hvac.exceptions.InvalidRequest, hvac.exceptions.Forbidden,
                                  hvac.exceptions.Unauthorized)):
            client.auth.jwt.jwt_login(role=role, jwt=self.jwt, path=self.auth_mount)
        return client

    def logout(self, client: hvac.Client) -> None:
        """Revoke the token of a JWT login; a token the user gave stays theirs."""
        if self.token:
            return
        try:
            client.auth.token.revoke_self()
        except (hvac.exceptions.VaultError, requests.RequestException) as exc:
            log.warning('could not revoke the Vault token: %s', type(exc).__name__)

    def read(self, client: hvac.Client, host: str) -> dict:
        """The secret of ``host`` (VaultError when it is missing or denied)."""
        path = self.secret_path(host)
        where = path if self.cubbyhole else f'{self.kv_mount}/{path}'
        with self._call(f'reading {where}', missing=f'has no secret at {where}',
                        refused=f'denied reading {where}'):
            if self.cubbyhole:
                answer = client.read(path)
                if answer is None:
                    raise hvac.exceptions.InvalidPath()
                data = answer.get('data')
            elif self.kv_version == 2:
                data = client.secrets.kv.v2.read_secret_version(
                    path=path, mount_point=self.kv_mount,
                    raise_on_deleted_version=True)['data']['data']
            else:
                data = client.secrets.kv.v1.read_secret(path=path,
                                                        mount_point=self.kv_mount)['data']
        if not isinstance(data, dict):
            raise VaultError(f'Vault secret {where} is not a mapping')
        return dict(data)

    def write(self, client: hvac.Client, host: str, data: dict) -> str:
        """Store ``data`` as the secret of ``host``; where it went."""
        path = self.secret_path(host)
        where = path if self.cubbyhole else f'{self.kv_mount}/{path}'
        with self._call(f'writing {where}', missing=f'has no KV engine at {self.kv_mount!r}',
                        refused=f'denied writing {where}'):
            if self.cubbyhole:
                client.write_data(path, data=data)
            elif self.kv_version == 2:
                client.secrets.kv.v2.create_or_update_secret(path=path, secret=data,
                                                             mount_point=self.kv_mount)
            else:
                client.secrets.kv.v1.create_or_update_secret(path=path, secret=data,
                                                             mount_point=self.kv_mount)
        return where


def _login_means(props: Mapping[str, Any], prefix: str) -> tuple[str, str, bool]:
    """(jwt, token, cubbyhole) of a Vault node: exactly one of a JWT (logged in with)
    and a Vault token (used as it is); the cubbyhole only with a token, since a JWT
    login's fresh token has an empty one. Values are never shown."""
    jwt = props.get('jwt') or ''
    token = props.get('token') or ''
    cubbyhole = props.get('cubbyhole', False)
    if cubbyhole is None:
        cubbyhole = False
    if not isinstance(cubbyhole, bool):
        raise ConfigError(f'{prefix}cubbyhole', cubbyhole, 'must be true or false')
    if not isinstance(token, str) or any(c.isspace() for c in token):
        raise ConfigError(f'{prefix}token', '<hidden>', 'must be a Vault token (one word)')
    if jwt and token:
        raise ConfigError(f'{prefix}token', '<hidden>', 'give jwt or token, not both')
    if not jwt and not token:
        raise ConfigError(f'{prefix}jwt', '<hidden>', 'a Vault node needs jwt (a JWT login) '
                                                      'or token (a Vault token used as it is)')
    if jwt and (not isinstance(jwt, str) or jwt.count('.') != 2):
        raise ConfigError(f'{prefix}jwt', '<hidden>', 'must be a JSON Web Token '
                                                      '(header.payload.signature)')
    if cubbyhole and not token:
        raise ConfigError(f'{prefix}cubbyhole', cubbyhole, 'needs token: the secret is in the '
                                                          'cubbyhole of the token given')
    return jwt, token, cubbyhole


def _where(node: str | None, prop: str, value: Any) -> str:
    """The way errors name a property, for the warnings too."""
    return (f"node '{node}', " if node else '') + f"property '{prop}' = {value!r}"


_WARNED: set = set()
_WARNED_LOCK = threading.Lock()


def _warn_once(message: str) -> None:
    # settings are parsed at validate and again by every operation of the install:
    # one warning per process is enough to be seen
    with _WARNED_LOCK:
        if message in _WARNED:
            return
        _WARNED.add(message)
    log.warning('%s', message)


def _is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine (plain http then never leaves it)."""
    if host == 'localhost' or host.endswith('.localhost'):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _address(raw: Any, prop: str, node: str | None) -> str:
    """Vault's base URL: http(s), a host, a port that is a port, no user name or
    password (they would be shown wherever the address is), no query."""
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigError(prop, raw, 'is required (e.g. https://vault:8200)')
    address = raw.strip()
    if '://' not in address:
        address = 'https://' + address
    scheme, _, rest = address.partition('://')
    # anything before the last @ may be a password, even one holding / ? or #
    if '@' in rest:
        shown = f'{scheme}://<hidden>@{rest.rpartition("@")[2]}'
        raise ConfigError(prop, shown, 'must not hold a user name or password (Vault is '
                                       'logged in to with the jwt)')
    if scheme.lower() not in ('http', 'https'):
        raise ConfigError(prop, raw, 'must be an http:// or https:// address')
    if any(c.isspace() for c in address):
        raise ConfigError(prop, raw, 'must not contain spaces')
    try:
        parts = urlsplit(address)
        port = parts.port
    except ValueError:
        raise ConfigError(prop, raw, 'the port must be a number from 1 to 65535') from None
    if port == 0:
        raise ConfigError(prop, raw, 'the port must be a number from 1 to 65535')
    if not parts.hostname:
        raise ConfigError(prop, raw, 'names no host')
    if parts.query or parts.fragment or address.endswith(('?', '#')):
        raise ConfigError(prop, raw, 'must not have a query or fragment')
    if parts.scheme.lower() == 'http' and not _is_loopback(parts.hostname):
        _warn_once(f'{_where(node, prop, address)}: plain http: the JWT and the credentials '
                   f'cross the network unencrypted; use https://')
    return address


def _check_template(template: Any, prop: str) -> None:
    """A secret path template uses only {user} and {host}, as plain replacements."""
    if not isinstance(template, str):
        raise ConfigError(prop, template, 'must be text with {host} (and optionally {user})')
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(prop, template, f'is not a valid template ({exc})') from None
    names = set()
    for _, name, spec, conversion in fields:
        if name is None:
            continue
        if name not in ('user', 'host') or spec or conversion:
            raise ConfigError(prop, template, 'may use only {user} and {host} (without '
                                              'index, attribute, conversion or format)')
        names.add(name)
    if 'host' not in names:
        raise ConfigError(prop, template, 'must contain {host}')


def _timeout(value: Any, prop: str) -> float:
    """Seconds to wait for Vault: a real number, finite, above 0 (not a boolean)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value) or value <= 0:
        raise ConfigError(prop, value, 'must be a finite number of seconds above 0')
    return float(value)


def _verify(value: Any, prop: str, node: str | None) -> bool | str:
    """TLS verification: true, false (warned about) or the path of a CA bundle (a file
    or a folder of certificates, as requests takes it)."""
    if isinstance(value, bool):
        if not value:
            _warn_once(f'{_where(node, prop, value)}: Vault\'s TLS certificate is not '
                       f'verified')
        return value
    if isinstance(value, str) and value.strip() and os.path.exists(os.path.expanduser(value)):
        return os.path.expanduser(value)
    raise ConfigError(prop, value, 'must be true, false or the path of a CA bundle '
                                   '(an existing file or folder)')


def _reason(exc: Exception) -> str:
    """Vault's reason for refusing, from an hvac error (never the request)."""
    # hvac's message lists Vault's "errors"; never the request
    errors = getattr(exc, 'errors', None)
    if errors:
        return '; '.join(str(e) for e in errors)
    return str(exc).split(', on ')[0]


# (address, auth mount, role, KV mount, secret path, jwt, token) -> credentials
_CACHE: dict[tuple[str, ...], dict[str, Any]] = {}
_CACHE_LOCK = threading.Lock()


def fetch_credentials(settings: VaultSettings, host: str) -> dict[str, Any]:
    """The credentials Vault holds for ``host`` (kept in memory for the life of
    the process, so one run logs in once per host)."""
    key = (settings.address, settings.auth_mount, settings.role or settings.user,
           settings.kv_mount, settings.secret_path(host), settings.jwt, settings.token)
    with _CACHE_LOCK:
        if key in _CACHE:
            return dict(_CACHE[key])
    client = settings.login()
    try:
        data = settings.read(client, host)
    finally:
        settings.logout(client)
    where = settings.secret_path(host)
    data = _without_check_off(data, f'Vault secret {where}' if settings.cubbyhole
                              else f'Vault secret {settings.kv_mount}/{where}')
    with _CACHE_LOCK:
        _CACHE[key] = data
    log.info('credentials for %s read from Vault at %s (%s)', host, settings.address,
             ', '.join(sorted(data)))
    return dict(data)


def clear_cache() -> None:
    """Forget the credentials read so far (the next fetch logs in to Vault again)."""
    with _CACHE_LOCK:
        _CACHE.clear()


# the settings that decide whose host key is believed: a secret is there to give the
# way in, and whoever can write it must not also choose which server is trusted
TRUST_ANCHORS = ('known_hosts', 'host_key')


def _without_check_off(data: dict, source: str) -> dict:
    """``data`` without a ``host_key_check`` that is not true: a secret never turns
    host-key checking off, whatever the blueprint says (its default true cannot be
    told from an explicit one); only the blueprint itself may opt out."""
    if 'host_key_check' not in data or data['host_key_check'] is True:
        return data
    log.warning('%s: host_key_check = %r is ignored: only the blueprint may turn host-key '
                'checking off', source, data['host_key_check'])
    return {k: v for k, v in data.items() if k != 'host_key_check'}


def merge_credentials(blueprint: Mapping[str, Any] | None, from_vault: Mapping[str, Any],
                      defaults: Mapping[str, Any] | None = None) -> dict:
    """Vault's values under the blueprint's: what the blueprint gives wins. A
    blueprint value equal to its plugin.yaml default counts as not given.

    Vault may supply the way in, never weaker host-key checking: its
    ``host_key_check`` other than true is ignored, and so are its ``known_hosts``
    and ``host_key`` when the blueprint names a trust anchor of its own (both with a
    warning). When the blueprint names none, Vault's pinned key or known_hosts file
    is used: it still verifies the host."""
    defaults = defaults or {}
    blueprint = blueprint or {}
    host = blueprint.get('host')
    source = f'Vault secret for {host}' if host else 'Vault secret'
    from_vault = _without_check_off(dict(from_vault), source)
    own = [key for key in TRUST_ANCHORS if blueprint.get(key) not in (None, '')]
    if own:
        for key in TRUST_ANCHORS:
            if key in from_vault and from_vault[key] != blueprint.get(key):
                log.warning('%s: %s is ignored: the blueprint names its own %s', source, key,
                            own[0])
                del from_vault[key]
    merged = dict(from_vault)
    for key, value in blueprint.items():
        given = value not in (None, '') and not (key in defaults and value == defaults[key]
                                                 and key in from_vault)
        if given or key not in merged:
            merged[key] = value
    return merged
