"""CKAN catalogues: a job's input fetched from a resource of a CKAN dataset, and a
job's outputs published as resources of a dataset, through CKAN's Action API
(with ``ckanapi``).

A ``CKAN_dataset`` node is a data access infrastructure whose ``endpoint`` is the
catalogue's address and whose ``dataset_info`` names the dataset; a
``CKAN_resource`` node is a data source located at it. A ``DataTransfer`` with
``transfer_protocol: CKANAPI`` moves data either way:

- from a ``CKAN_resource`` to a ``FileDataSource``: the resource is looked up
  (``package_show``), downloaded here and streamed to the target host over SFTP;
- from a ``FileDataSource`` to a ``CKAN_resource``: the file is read from its host
  over SFTP and uploaded (``resource_create``, or ``resource_update`` when the
  dataset already has a resource of that name); the dataset is created from
  ``dataset_info`` first when it does not exist yet.

The orchestrator does all the talking to the catalogue: the API token
(``credentials.auth-header``) never reaches a cluster, a log or an error message,
and it is sent only to the catalogue's own address (not to a resource whose
address is elsewhere).
"""

from __future__ import annotations

import posixpath
import re
import stat
import urllib.parse
from dataclasses import dataclass, field
from collections.abc import Mapping
from typing import Any

import ckanapi
import requests

from .data import (DataInfrastructure, DataSource, RemoteFiles, Transfer, TransferError,
                   refuse_userinfo, send_response)
from .errors import ConfigError

CKAN_PROTOCOL = 'CKANAPI'
API_KEY_FIELD = 'auth-header'
API_KEY_LABEL_FIELD = 'auth-header-label'
# the headers ckanapi sends the token in (CKAN reads either)
API_KEY_LABELS = ('Authorization', 'X-CKAN-API-Key')
CATALOGUE_PROPERTIES = ('endpoint', 'internet_access', 'supported_protocols', 'credentials',
                        'dataset_info')
DATASET_TEXT_FIELDS = ('name', 'package_id', 'title', 'author', 'author_email', 'maintainer',
                       'maintainer_email', 'license_id', 'notes', 'version', 'owner_org')
RESOURCE_FIELDS = ('name', 'url', 'description', 'type', 'format')
# SSH login fields of the Credentials data type, which a catalogue has no use for
_SSH_FIELDS = ('host', 'user', 'password', 'private_key', 'private_key_file',
               'private_key_password', 'ssh_tunnel', 'cert', 'cert_password')
# CKAN's own rule for dataset names
_DATASET_NAME = re.compile(r'[a-z0-9_-]{2,100}')
TIMEOUT = (10, 300)
HIDDEN = '<hidden>'


def _given(value: Any) -> bool:
    """True for a value a user wrote (not empty, not None)."""
    return value not in (None, '', [], {})


@dataclass
class CkanCatalogue(DataInfrastructure):
    """A CKAN catalogue and the dataset a ``CKAN_dataset`` node names in it.
    ``api_key`` is kept out of ``repr``; ``dataset`` holds the given
    ``dataset_info`` fields only."""
    api_key: str | None = field(default=None, repr=False)
    dataset: dict = field(default_factory=dict)

    @classmethod
    def from_catalogue_properties(cls, name: str, props: Mapping[str, Any]) -> 'CkanCatalogue':
        """The catalogue of node ``name`` from its properties; ConfigError naming
        node, property and value (the token hidden) when one is not valid."""
        try:
            return cls._from_catalogue_properties(name, props)
        except ConfigError as exc:
            raise exc.for_node(name) from None

    @classmethod
    def _from_catalogue_properties(cls, name: str, props: Mapping[str, Any]) -> 'CkanCatalogue':
        for key in props:
            if key not in CATALOGUE_PROPERTIES:
                raise ConfigError(key, props[key], f'is not a property of a CKAN_dataset '
                                                   f'({", ".join(CATALOGUE_PROPERTIES)})')
        endpoint: Any = props.get('endpoint')
        if isinstance(endpoint, str):
            refuse_userinfo('endpoint', endpoint.strip())
        parts = urllib.parse.urlsplit(endpoint.strip()) if isinstance(endpoint, str) else None
        if parts is None or parts.scheme.lower() not in ('http', 'https') or \
                not parts.hostname or any(c.isspace() for c in endpoint.strip()):
            raise ConfigError('endpoint', endpoint, "is required: the catalogue's "
                                                    "http(s)://host[:port] address")
        internet = props.get('internet_access', False)
        if internet is not False:
            raise ConfigError('internet_access', internet,
                              'only false is accepted: the orchestrator itself fetches from '
                              'and publishes to a CKAN catalogue (its API token must not '
                              'reach a cluster)')
        listed = props.get('supported_protocols') or [CKAN_PROTOCOL]
        if isinstance(listed, str):
            listed = [listed]
        if not isinstance(listed, list) or any(
                not isinstance(p, str) or p.strip().upper() != CKAN_PROTOCOL for p in listed):
            raise ConfigError('supported_protocols', listed,
                              f'a CKAN catalogue is reached with {CKAN_PROTOCOL} only')
        api_key = _api_key(props.get('credentials'))
        dataset = _dataset_info(props.get('dataset_info'))
        return cls(name=name, endpoint=endpoint.strip().rstrip('/'), internet_access=False,
                   protocols=(CKAN_PROTOCOL,), api_key=api_key, dataset=dataset)

    @property
    def dataset_id(self) -> str:
        """How the catalogue knows the dataset: its id when given, else its name."""
        return self.dataset.get('package_id') or self.dataset['name']

    def client(self) -> ckanapi.RemoteCKAN:
        """A client of the catalogue's Action API, with the token when there is one."""
        return ckanapi.RemoteCKAN(self.endpoint, apikey=self.api_key,
                                  user_agent='croupier-ckan')

    def same_origin(self, url: str) -> bool:
        """True when ``url`` is on the catalogue's own scheme, host and port (the
        only place the token may be sent)."""
        mine, theirs = urllib.parse.urlsplit(self.endpoint), urllib.parse.urlsplit(url)
        return (mine.scheme.lower(), mine.hostname, mine.port) == \
            (theirs.scheme.lower(), theirs.hostname, theirs.port)

    def hide(self, text: str) -> str:
        """``text`` with the token, should the catalogue ever echo it, replaced."""
        return text.replace(self.api_key, HIDDEN) if self.api_key else text


def _api_key(credentials: Any) -> str | None:
    """The API token from a catalogue's credentials; ConfigError (the token hidden)
    for SSH fields or a token that cannot be sent."""
    if credentials in (None, {}):
        return None
    if not isinstance(credentials, Mapping):
        raise ConfigError('credentials', HIDDEN, 'must be a mapping')
    for key in _SSH_FIELDS:
        if _given(credentials.get(key)):
            shown = HIDDEN if key in ('password', 'private_key', 'private_key_password',
                                      'cert_password') else credentials[key]
            raise ConfigError(f'credentials.{key}', shown,
                              f'a CKAN catalogue is reached over its Action API with an API '
                              f'token (credentials.{API_KEY_FIELD}); SSH credentials do not '
                              f'apply')
    label = credentials.get(API_KEY_LABEL_FIELD)
    if _given(label) and (not isinstance(label, str) or label.strip().lower() not in
                          [h.lower() for h in API_KEY_LABELS]):
        raise ConfigError(f'credentials.{API_KEY_LABEL_FIELD}', label,
                          f'the token is sent as {" and ".join(API_KEY_LABELS)}; give one of '
                          f'those or leave it out')
    token = credentials.get(API_KEY_FIELD)
    if not _given(token):
        return None
    if not isinstance(token, str) or not token.strip() or \
            any(c.isspace() for c in token.strip()):
        raise ConfigError(f'credentials.{API_KEY_FIELD}', HIDDEN,
                          'must be the API token as one word (no spaces or line breaks)')
    return token.strip()


def _dataset_info(info: Any) -> dict:
    """The given fields of ``dataset_info``; ConfigError for a wrong one."""
    if not isinstance(info, Mapping):
        raise ConfigError('dataset_info', info, 'is required: a mapping with the dataset\'s '
                                                'name (or package_id)')
    dataset = {}
    for key, value in info.items():
        if key in DATASET_TEXT_FIELDS:
            if value in (None, ''):
                continue
            if not isinstance(value, str) or '\0' in value:
                raise ConfigError(f'dataset_info.{key}', value, 'must be a string')
        elif key == 'private':
            if not isinstance(value, bool):
                raise ConfigError('dataset_info.private', value, 'must be true or false')
        elif key == 'tags':
            if value in (None, []):
                continue
            if not isinstance(value, list) or not all(isinstance(t, str) and t.strip()
                                                       for t in value):
                raise ConfigError('dataset_info.tags', value, 'must be a list of tag names')
        else:
            raise ConfigError(f'dataset_info.{key}', value,
                              f'is not a dataset field ({", ".join(DATASET_TEXT_FIELDS)}, '
                              f'private, tags)')
        dataset[key] = value
    if not dataset.get('name') and not dataset.get('package_id'):
        raise ConfigError('dataset_info.name', info.get('name'),
                          'is required (or dataset_info.package_id): it names the dataset')
    if dataset.get('name') and not _DATASET_NAME.fullmatch(dataset['name']):
        raise ConfigError('dataset_info.name', dataset['name'],
                          'a CKAN dataset name is 2 to 100 lowercase letters, digits, '
                          '"-" and "_"')
    return dataset


@dataclass
class CkanResource(DataSource):
    """A resource of a catalogue's dataset (``kind`` 'ckan'); ``path`` is its name,
    or its address when it has no name; ``fields`` the given resource fields."""
    fields: dict = field(default_factory=dict)

    @classmethod
    def from_resource_properties(cls, name: str, props: Mapping[str, Any],
                                 catalogue: CkanCatalogue) -> 'CkanResource':
        """The resource of node ``name``; ConfigError naming node, property and
        value when it is not valid."""
        resource = props.get('resource')
        try:
            if not isinstance(resource, Mapping):
                raise ConfigError('resource', resource, 'is required: a mapping with the '
                                                        'resource\'s name (or url)')
            fields = {}
            for key, value in resource.items():
                if key not in RESOURCE_FIELDS:
                    raise ConfigError(f'resource.{key}', value, f'is not a resource field '
                                                                f'({", ".join(RESOURCE_FIELDS)})')
                if value in (None, ''):
                    continue
                if not isinstance(value, str) or '\n' in value or '\0' in value:
                    raise ConfigError(f'resource.{key}', value, 'must be a single-line string')
                fields[key] = value.strip()
            if fields.get('url'):
                refuse_userinfo('resource.url', fields['url'])
            if not fields.get('name') and not fields.get('url'):
                raise ConfigError('resource.name', resource.get('name'),
                                  'is required (or resource.url): it names the resource in '
                                  'the dataset')
        except ConfigError as exc:
            raise exc.for_node(name) from None
        return cls(name=name, kind='ckan', path=fields.get('name') or fields['url'],
                   data_infrastructure=catalogue, fields=fields)

    @property
    def catalogue(self) -> CkanCatalogue:
        """The catalogue the resource is in."""
        return self.data_infrastructure  # type: ignore[return-value]

    def __str__(self) -> str:
        return f"'{self.name}' (resource {self.path!r} of dataset " \
               f"{self.catalogue.dataset_id!r} at {self.catalogue.endpoint})"


# -- checks ------------------------------------------------------------------

def check_transfer(transfer: Transfer) -> None:
    """ConfigError when ``transfer`` cannot move its data: CKANAPI moves data
    between a CKAN_resource and a FileDataSource on a host with SSH credentials,
    and a CKAN_resource is moved with CKANAPI only."""
    src, dst = transfer.source, transfer.target
    ckan_ends = [end for end in (src, dst) if isinstance(end, CkanResource)]
    if transfer.protocol != CKAN_PROTOCOL:
        end = ckan_ends[0]
        rel = 'from_source' if end is src else 'to_target'
        raise ConfigError(rel, end.name, f'a CKAN_resource is moved with '
                                         f'{CKAN_PROTOCOL} only (not {transfer.protocol})'
                          ).for_node(transfer.name)
    if len(ckan_ends) != 1:
        raise ConfigError('transfer_protocol', transfer.protocol,
                          f'{CKAN_PROTOCOL} moves data between a CKAN_resource and a '
                          f'FileDataSource (one end each)').for_node(transfer.name)
    other, rel = (dst, 'to_target') if ckan_ends[0] is src else (src, 'from_source')
    if other.kind != 'file' or other.data_infrastructure.ssh is None:
        raise ConfigError(rel, other.name, f'{CKAN_PROTOCOL} moves a CKAN resource to or from '
                                           f'a FileDataSource on an infrastructure with SSH '
                                           f'credentials').for_node(transfer.name)
    if ckan_ends[0] is dst:
        catalogue = dst.catalogue
        if not catalogue.api_key:
            raise ConfigError('to_target', dst.name,
                              f"publishing to catalogue '{catalogue.name}' needs its API "
                              f"token in credentials.{API_KEY_FIELD}").for_node(transfer.name)
        if not dst.fields.get('name'):
            raise ConfigError('to_target', dst.name, 'a published resource needs '
                                                     'resource.name').for_node(transfer.name)


# -- moving ------------------------------------------------------------------

def move(transfer: Transfer) -> str:
    """Run a CKANAPI transfer (checked by ``check_transfer``); what it did.
    TransferError naming the transfer and why (the token hidden)."""
    if isinstance(transfer.source, CkanResource):
        catalogue = transfer.source.catalogue
        step = _fetch
    else:
        catalogue = transfer.target.catalogue  # type: ignore[attr-defined]
        step = _publish
    try:
        return step(transfer)
    except ckanapi.NotAuthorized:
        why = 'the catalogue refused access: ' + \
            ('its API token has no right to do this' if catalogue.api_key
             else 'the dataset is private and no API token is given')
    except ckanapi.NotFound as exc:
        why = f'not found in the catalogue: {exc}'
    except ckanapi.ValidationError as exc:
        why = f'the catalogue refused the request: {exc.error_dict}'
    except ckanapi.CKANAPIError as exc:
        why = f'the catalogue answered with an error: {str(exc)[:500]}'
    except requests.RequestException as exc:
        why = f'{type(exc).__name__}: {exc}'
    raise TransferError(catalogue.hide(transfer._failure(why))) from None


def _dataset(catalogue: CkanCatalogue) -> dict:
    """The dataset (``package_show``); ckanapi.NotFound when there is none."""
    return catalogue.client().action.package_show(id=catalogue.dataset_id)


def find_resource(resource: CkanResource) -> dict:
    """The catalogue's record of ``resource``: the dataset's resource of that name,
    or with that address. TransferError when the dataset has none."""
    dataset = _dataset(resource.catalogue)
    for record in dataset.get('resources', []):
        if resource.fields.get('name'):
            if record.get('name') == resource.fields['name']:
                return record
        elif record.get('url') == resource.fields.get('url'):
            return record
    names = ', '.join(repr(r.get('name')) for r in dataset.get('resources', [])) or 'none'
    raise TransferError(f'dataset {resource.catalogue.dataset_id!r} has no resource '
                        f'{resource.path!r} (it has: {names})')


def _file_name(record: dict, resource: CkanResource) -> str:
    """The name the downloaded resource takes in a target folder: the last part
    of its address, else its name; TransferError when that is no plain file name."""
    segment = posixpath.basename(urllib.parse.urlsplit(record.get('url') or '').path)
    name = urllib.parse.unquote(segment) or record.get('name') or ''
    if name in ('', '.', '..') or '/' in name or '\0' in name:
        raise TransferError(f'resource {resource.path!r} gives no file name to save into a '
                            f'folder (got {name!r}): name the file in the target\'s filepath')
    return name


def _fetch(transfer: Transfer) -> str:
    """Download the resource here and stream it to the target host over SFTP."""
    resource: CkanResource = transfer.source  # type: ignore[assignment]
    catalogue = resource.catalogue
    try:
        record = find_resource(resource)
    except TransferError as exc:
        raise TransferError(transfer._failure(str(exc))) from None
    url = record.get('url') or ''
    if urllib.parse.urlsplit(url).scheme.lower() not in ('http', 'https'):
        raise TransferError(transfer._failure(f'resource {resource.path!r} has no http(s) '
                                              f'address to download ({url!r})'))
    dest = transfer.target.location()
    if dest.endswith('/'):
        try:
            dest += _file_name(record, resource)
        except TransferError as exc:
            raise TransferError(transfer._failure(str(exc))) from None
    # the token goes to the catalogue only, never to a host a resource links to
    headers = {'Authorization': catalogue.api_key} \
        if catalogue.api_key and catalogue.same_origin(url) else {}
    response = requests.get(url, headers=headers, stream=True, timeout=TIMEOUT)
    with response:
        if response.status_code >= 400:
            raise TransferError(transfer._failure(
                f'GET {url} answered {response.status_code} {response.reason}'))
        size = send_response(response, transfer.target.data_infrastructure.transport(), dest)
    return f'resource {resource.path!r} ({size} bytes) fetched from {catalogue.endpoint} and ' \
           f'sent to {transfer.target.data_infrastructure.host} over SFTP'


def _publish(transfer: Transfer) -> str:
    """Upload the source file as the resource (replacing the one of that name),
    creating the dataset first when it does not exist."""
    resource: CkanResource = transfer.target  # type: ignore[assignment]
    catalogue = resource.catalogue
    client = catalogue.client()
    try:
        dataset = _dataset(catalogue)
    except ckanapi.NotFound:
        if not catalogue.dataset.get('name'):
            raise TransferError(transfer._failure(
                f'dataset {catalogue.dataset_id!r} does not exist, and dataset_info gives no '
                f'name to create it with')) from None
        fields = {k: v for k, v in catalogue.dataset.items() if k != 'package_id'}
        if 'tags' in fields:
            fields['tags'] = [{'name': t.strip()} for t in fields['tags']]
        dataset = client.action.package_create(**fields)
    existing = [r for r in dataset.get('resources', []) if r.get('name') == resource.path]
    data = {'name': resource.path}
    for key, ckan_key in (('description', 'description'), ('format', 'format'),
                          ('type', 'resource_type')):
        if resource.fields.get(key):
            data[ckan_key] = resource.fields[key]
    path = transfer.source.location()
    files = RemoteFiles(transfer.source.data_infrastructure.transport())
    try:
        try:
            mode = files.mode(path)
        except FileNotFoundError:
            raise TransferError(transfer._failure(
                f'{path} does not exist on {transfer.source.data_infrastructure.host}')) from None
        if not _is_file(mode):
            raise TransferError(transfer._failure(
                f'{path} on {transfer.source.data_infrastructure.host} is not a file: a CKAN '
                f'resource is one file'))
        with files.open_read(path) as reader:
            upload = {'upload': (posixpath.basename(path), reader)}
            if existing:
                record = client.call_action('resource_update', dict(data, id=existing[0]['id']),
                                            files=upload)
            else:
                record = client.call_action('resource_create',
                                            dict(data, package_id=dataset['id']), files=upload)
    finally:
        files.close()
    verb = 'replaced' if existing else 'created'
    return f'{path} published as resource {resource.path!r} ({verb}, {record.get("size")} ' \
           f'bytes) of dataset {dataset["name"]!r} at {catalogue.endpoint}'


def _is_file(mode: int) -> bool:
    """True for a regular file's mode."""
    return stat.S_ISREG(mode)
