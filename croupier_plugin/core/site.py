"""Site configuration: the settings a site gives once for every blueprint.

The original Croupier kept them in ``Croupier.cfg``. Here they come from a YAML
file, the first of ``$CROUPIER_CONFIG``, ``~/.croupier/config.yaml`` and
``/etc/croupier/config.yaml`` (on a Cloudify Manager the operations run with the
HOME of the manager's worker, ``/etc/cloudify``), and from the environment,
which wins over the file. A node's own property wins over both.

    vault_address: https://vault.example.org:8200      # or VAULT_ADDR
    exporter_address: http://127.0.0.1:9110            # or CROUPIER_EXPORTER_ADDRESS
    known_hosts: /etc/croupier/known_hosts             # or CROUPIER_KNOWN_HOSTS

The file holds no secret, so nothing here is hidden.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from .errors import ConfigError

CONFIG_ENV = 'CROUPIER_CONFIG'
SEARCH_PATH = ('~/.croupier/config.yaml', '/etc/croupier/config.yaml')
# setting -> the environment variable that gives it (Vault's own tools read VAULT_ADDR)
SETTINGS = {
    'vault_address': 'VAULT_ADDR',
    'exporter_address': 'CROUPIER_EXPORTER_ADDRESS',
    'known_hosts': 'CROUPIER_KNOWN_HOSTS',
}
# scheme optional, a host name or address, an optional port and path; no user:password@
_ADDRESS = re.compile(r'^(https?://)?[A-Za-z0-9.\-]+(:\d{1,5})?(/[^\s@]*)?$|'
                      r'^(https?://)?\[[0-9A-Fa-f:.]+\](:\d{1,5})?(/[^\s@]*)?$')


class SiteConfigError(ConfigError):
    """The site configuration holds a value Croupier cannot use; the message
    names where it came from (the file, or the environment variable), the
    setting and the value."""

    def __init__(self, where: str, key: str, value: object, problem: str) -> None:
        self.where = where
        super().__init__(key, value, problem)
        # ConfigError's text names a blueprint property: this one names the source
        Exception.__init__(self, f'site configuration {where}, key {key!r} = {value!r}: '
                                 f'{problem}')

    def for_node(self, node: str) -> SiteConfigError:
        """Unchanged: the error is the site's, not the node's."""
        return self


@dataclass(frozen=True)
class SiteConfig:
    """The settings in effect: ``values`` maps each set setting to its value,
    ``sources`` to where it came from; ``file`` is the file read, if any."""
    file: str | None = None
    searched: tuple[str, ...] = ()
    values: dict[str, str] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def get(self, key: str) -> str | None:
        """The value of ``key``, or None when the site does not set it."""
        return self.values.get(key)

    def describe(self, key: str) -> str:
        """Where ``key`` comes from, for messages."""
        return self.sources.get(key) or 'not set'


def where_to_set(key: str) -> str:
    """How a site sets ``key``, for the error of a node that needs it."""
    return (f'set {SETTINGS[key]} or {key} in the site configuration file '
            f'(${CONFIG_ENV}, {", ".join(SEARCH_PATH)})')


def config_file(environ: Mapping[str, str] | None = None) -> tuple[str | None, tuple[str, ...]]:
    """(the site configuration file to read or None, the paths looked at)."""
    environ = os.environ if environ is None else environ
    named = environ.get(CONFIG_ENV)
    if named:
        path = os.path.expanduser(named)
        if not os.path.isfile(path):
            raise SiteConfigError(f'${CONFIG_ENV}', CONFIG_ENV, named, 'no such file')
        return path, (path,)
    searched = tuple(os.path.expanduser(p) for p in SEARCH_PATH)
    for path in searched:
        if os.path.isfile(path):
            return path, searched
    return None, searched


def _read_file(path: str) -> dict[str, Any]:
    """The settings in the YAML file at ``path`` (empty for an empty file)."""
    try:
        with open(path) as fh:
            data = yaml.safe_load(fh)
    except OSError as exc:
        raise SiteConfigError(path, '-', None, f'cannot be read: {exc.strerror}') from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, 'problem_mark', None)
        at = f' (line {mark.line + 1})' if mark is not None else ''
        raise SiteConfigError(path, '-', None, f'is not valid YAML{at}') from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SiteConfigError(path, '-', type(data).__name__,
                              f'must be a mapping of {", ".join(SETTINGS)}')
    for key in data:
        if key not in SETTINGS:
            raise SiteConfigError(path, str(key), data[key],
                                  f'is not a site setting ({", ".join(SETTINGS)})')
    return data


def _checked(where: str, key: str, value: object) -> str:
    """``value`` of ``key`` from ``where``, checked: addresses are URLs without
    credentials, known_hosts an existing file."""
    if not isinstance(value, str) or not value.strip():
        raise SiteConfigError(where, key, value, 'must be a non-empty string')
    value = value.strip()
    if key.endswith('_address'):
        if '@' in value:
            # a user:password in the URL: refused, and not repeated
            raise SiteConfigError(where, key, re.sub(r'//[^/]*@', '//<hidden>@', value),
                                  'must not hold a user or password')
        if not _ADDRESS.match(value):
            raise SiteConfigError(where, key, value,
                                  'must be a URL such as https://vault.example.org:8200')
    else:
        path = os.path.expanduser(value)
        if not os.path.isfile(path):
            raise SiteConfigError(where, key, value, 'no such file')
        value = path
    return value


def load(environ: Mapping[str, str] | None = None) -> SiteConfig:
    """The site configuration in effect now (read afresh at each call: a
    deployment sees the site's current settings)."""
    environ = os.environ if environ is None else environ
    path, searched = config_file(environ)
    values: dict[str, str] = {}
    sources: dict[str, str] = {}
    if path is not None:
        for key, value in _read_file(path).items():
            if value is None:
                continue
            values[key] = _checked(path, key, value)
            sources[key] = f'file {path}'
    for key, variable in SETTINGS.items():
        value = environ.get(variable)
        if value:
            values[key] = _checked(f'environment variable {variable}', key, value)
            sources[key] = f'environment {variable}'
    return SiteConfig(file=path, searched=searched, values=values, sources=sources)
