"""A portal worker: one workflow on one named deployment, in its own process.

`croupier serve` starts ``python -m croupier_plugin.web.worker ACTION NAME ...`` in
a new session, so the web server never waits for a workflow and the workflow
outlives a restart of the server. The work itself is the CLI's (`croupier install`,
`execute`, `uninstall`): the same store, pid file and re-attachment. Besides the
CLI's output, every log line and event is appended, secrets scrubbed, to the
deployment's events file that the portal pages through.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from typing import Optional

from .. import cli, runner
from . import service


class RecordingConsole(cli.Console):
    """The CLI's console that also records every log and event as a JSON line."""

    name: str = ''
    secrets: list = []

    def _record(self, kind: str, message: dict, level: str, event_type: str) -> None:
        context = message.get('context') or {}
        item = {'time': time.time(), 'kind': kind, 'level': level,
                'event_type': event_type,
                'execution_id': context.get('execution_id'),
                'workflow': context.get('workflow_id'),
                'node': context.get('node_id') or context.get('node_name'),
                'text': service.scrub((message.get('message') or {}).get('text', ''),
                                      self.secrets)}
        with runner.private_umask():
            with open(service.events_path(self.name), 'a', encoding='utf-8') as fh:
                fh.write(json.dumps(item) + '\n')

    def log_out(self, log: dict, **kwargs) -> None:
        """Record the log line, then show it as the CLI would."""
        self._record('log', log, log.get('level') or 'info', 'log')
        super().log_out(log, **kwargs)

    def event_out(self, event: dict, **kwargs) -> None:
        """Record the event, then show it as the CLI would."""
        level = 'error' if event.get('event_type') in ('task_failed', 'workflow_failed') \
            else 'info'
        self._record('event', event, level, event.get('event_type') or '')
        super().event_out(event, **kwargs)


def _secrets_of(name: str, inputs: Optional[dict] = None) -> list:
    """The secret strings among the deployment's inputs (or ``inputs``)."""
    if inputs is not None:
        return service.secret_strings(inputs, {})
    env = service.load_env(name)
    if env is None:
        return []
    return service.secret_strings(service.given_inputs(env, name),
                                  service.input_definitions(env, name))


def main(argv: Optional[list] = None) -> int:
    """Run one action: ``install NAME BLUEPRINT INPUTS_JSON_FILE``, ``execute NAME
    WORKFLOW PARAMETERS_JSON`` or ``uninstall NAME``."""
    parser = argparse.ArgumentParser(prog='croupier_plugin.web.worker')
    parser.add_argument('action', choices=('install', 'execute', 'uninstall'))
    parser.add_argument('name')
    parser.add_argument('rest', nargs='*')
    args = parser.parse_args(argv)
    RecordingConsole.name = args.name
    # the CLI's commands build their console themselves: this one records too
    cli.Console = RecordingConsole
    if args.action == 'install':
        blueprint, inputs_file = args.rest
        try:
            with open(inputs_file) as fh:
                inputs = json.load(fh)
        finally:
            # the inputs (secrets among them) now live only in the private store
            with contextlib.suppress(FileNotFoundError):
                os.unlink(inputs_file)
        RecordingConsole.secrets = _secrets_of(args.name, inputs)
        pairs = [f'{k}={json.dumps(v)}' for k, v in inputs.items()]
        # the values travel as NAME=VALUE pairs in memory only (JSON is YAML)
        return cli.main(['install', blueprint, args.name,
                         *[item for pair in pairs for item in ('-i', pair)]])
    RecordingConsole.secrets = _secrets_of(args.name)
    if args.action == 'uninstall':
        status = cli.main(['uninstall', args.name])
        if status == 0:
            for path in (service.meta_path(args.name), service.events_path(args.name)):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
        return status
    workflow, parameters = args.rest
    env = cli._named(args.name)
    known = {e['id'] for e in env.storage.get_executions()}
    console = RecordingConsole()
    console.install()
    status = cli._run_workflow(console, env, workflow, args.name, json.loads(parameters))
    from cloudify.workflows import workflow_api
    if workflow_api.has_cancel_request():
        # the local engine stores a cancelled execution as terminated: say what it was
        for execution in env.storage.get_executions():
            if execution['id'] not in known:
                console._record('event', {'context': {'execution_id': execution['id'],
                                                      'workflow_id': workflow},
                                          'message': {'text': f'{workflow} cancelled'}},
                                'warning', 'workflow_cancelled')
    print(cli._table(cli.job_rows(env)))
    return status


if __name__ == '__main__':
    sys.exit(main())
