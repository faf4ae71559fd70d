"""The logs and events of a named deployment's runs, and the secrets kept out of them.

Every run of a workflow on a named deployment, whether `croupier install/execute/rerun/
uninstall` or the portal's worker started it, appends its log lines and events to one
JSON-lines file inside the deployment's folder of the store (private, forgotten with the
deployment). The portal pages through that file. Values of secret inputs are replaced
by HIDDEN before a line is written.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
from typing import Any, Iterator, Optional

from . import runner

HIDDEN = '<hidden>'
# Input names that hold secrets (JWTs, passwords, passphrases, keys, tokens)
SECRET_NAME = re.compile(r'pass(word|phrase)?|secret|token|jwt|private_key|(^|_)key($|_)|'
                         r'credential', re.I)
# ... except names of files and folders: a key's path is no secret, its content is
NOT_SECRET_NAME = re.compile(r'_(file|path|dir)$', re.I)
# Input types whose values are credentials: their secret-named fields are masked
CREDENTIAL_TYPES = ('croupier.datatypes.Credentials', 'croupier.datatypes.credentials',
                    'croupier.datatypes.dm.GridFTPCredentials')


def secret_name(name: str) -> bool:
    """Whether an input or field called ``name`` holds a secret."""
    return bool(SECRET_NAME.search(name)) and not NOT_SECRET_NAME.search(name)


def is_secret(name: str, definition: Optional[dict] = None) -> bool:
    """Whether the input ``name`` (declared as ``definition``) holds a secret."""
    return secret_name(name) or (definition or {}).get('type') in CREDENTIAL_TYPES


def secret_strings(inputs: dict, definitions: dict) -> list[str]:
    """The strings among ``inputs`` that are secrets (four characters or more),
    longest first, to be scrubbed from any text shown."""
    found: set[str] = set()

    def walk(name: str, value: Any, secret: bool) -> None:
        secret = secret or secret_name(name)
        if isinstance(value, dict):
            for k, v in value.items():
                walk(k, v, secret)
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(name, item, secret)
        elif secret and isinstance(value, str) and len(value) >= 4:
            found.add(value)
            found.add(repr(value)[1:-1])
    for k, v in (inputs or {}).items():
        # a mapping of credentials is walked field by field: its host is no secret
        walk(k, v, is_secret(k, definitions.get(k)) and not isinstance(v, dict))
    return sorted(found, key=len, reverse=True)


def scrub(text: Any, secrets: list[str]) -> Any:
    """``text`` with every secret replaced by HIDDEN."""
    if not isinstance(text, str):
        return text
    for secret in secrets:
        text = text.replace(secret, HIDDEN)
    return text


def input_definitions(env: runner.Environment) -> dict:
    """The input definitions of the blueprint of the stored deployment ``env`` (the
    deployment's own plan holds the input values instead)."""
    blueprint = env.storage._storage.get_blueprint(env.name) or {}
    return (blueprint.get('plan') or {}).get('inputs') or {}


def given_inputs(env: runner.Environment) -> dict:
    """The inputs the stored deployment ``env`` was created with."""
    return (env.storage._storage.get_deployment(env.name) or {}).get('inputs') or {}


def deployment_secrets(env: runner.Environment) -> list[str]:
    """The secret strings among the stored deployment's inputs."""
    return secret_strings(given_inputs(env), input_definitions(env))


def events_path(name: str) -> str:
    """The JSON-lines file of the logs and events of ``name``'s runs."""
    return os.path.join(runner.store_root(), 'deployments', name, 'events.jsonl')


class EventLog:
    """Appends the log lines and events of one process's runs on ``name``."""

    def __init__(self, name: str, secrets: list[str]) -> None:
        self.name = name
        self.secrets = secrets
        self._lock = threading.Lock()

    def record(self, kind: str, message: dict, level: str, event_type: str) -> None:
        """Append one log line (``kind`` 'log') or event, secrets scrubbed.

        One ``write`` of the whole line to a file opened for appending: lines from the
        engine's task threads never interleave. A deployment whose folder is gone (it
        was just forgotten) records nothing.
        """
        context = message.get('context') or {}
        item = {'time': time.time(), 'kind': kind, 'level': level,
                'event_type': event_type,
                'execution_id': context.get('execution_id'),
                'workflow': context.get('workflow_id'),
                'node': context.get('node_id') or context.get('node_name'),
                'text': scrub((message.get('message') or {}).get('text', ''), self.secrets)}
        data = (json.dumps(item) + '\n').encode('utf-8')
        with self._lock, contextlib.suppress(FileNotFoundError):
            fd = os.open(events_path(self.name), os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                         0o600)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)

    def log(self, log: dict) -> None:
        """Record a log line of the engine or of an operation."""
        self.record('log', log, log.get('level') or 'info', 'log')

    def event(self, event: dict) -> None:
        """Record an event of the engine."""
        level = 'error' if event.get('event_type') in ('task_failed', 'workflow_failed') \
            else 'info'
        self.record('event', event, level, event.get('event_type') or '')


def read_events(name: str) -> Iterator[dict]:
    """Every recorded log line and event of ``name``, oldest first (a line cut short
    by a writer still at work is skipped)."""
    with contextlib.suppress(FileNotFoundError):
        with open(events_path(name), encoding='utf-8', errors='replace') as fh:
            for line in fh:
                try:
                    yield json.loads(line)
                except ValueError:
                    continue
