"""A portal worker: one workflow on one named deployment, in its own process.

`croupier serve` starts ``python -m croupier_plugin.web.worker ACTION NAME ...`` in
a new session, so the web server never waits for a workflow and the workflow
outlives a restart of the server. The work itself is the CLI's (`croupier install`,
`execute`, `uninstall`): the same store, pid file, re-attachment, and the same record
of logs and events (croupier_plugin.eventlog) that the portal pages through.

For ``execute``, ``--announce-fd FD`` names the write end of a pipe from the server:
the worker writes its execution's id there once the execution is stored, and the
server, waiting on the other end, answers the request with it (end of file: the
worker ended without starting one, and its output says why).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from typing import Any, Optional

from .. import cli
from . import service


class AnnouncingConsole(cli.Console):
    """The CLI's console that writes the id of the execution it sees first (its
    workflow_started event comes after the engine stored the execution) to a pipe."""

    def __init__(self, announce_fd: Optional[int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.announce_fd = announce_fd

    def event_out(self, event: dict, **kwargs: Any) -> None:
        """Announce the execution on its first event, then show and record it."""
        execution = (event.get('context') or {}).get('execution_id')
        if self.announce_fd is not None and execution:
            fd, self.announce_fd = self.announce_fd, None
            try:
                os.write(fd, execution.encode('ascii', errors='replace') + b'\n')
            except OSError:         # the server is gone: nobody waits for the id
                pass
            finally:
                os.close(fd)
        super().event_out(event, **kwargs)


def main(argv: Optional[list] = None) -> int:
    """Run one action: ``install NAME BLUEPRINT INPUTS_JSON_FILE``, ``execute NAME
    WORKFLOW PARAMETERS_JSON [--announce-fd FD]`` or ``uninstall NAME``."""
    parser = argparse.ArgumentParser(prog='croupier_plugin.web.worker')
    parser.add_argument('action', choices=('install', 'execute', 'uninstall'))
    parser.add_argument('name')
    parser.add_argument('rest', nargs='*')
    parser.add_argument('--announce-fd', type=int)
    args = parser.parse_args(argv)
    if args.action == 'install':
        blueprint, inputs_file = args.rest
        try:
            with open(inputs_file) as fh:
                inputs = json.load(fh)
        finally:
            # the inputs (secrets among them) now live only in the private store
            with contextlib.suppress(FileNotFoundError):
                os.unlink(inputs_file)
        pairs = [f'{k}={json.dumps(v)}' for k, v in inputs.items()]
        # the values travel as NAME=VALUE pairs in memory only (JSON is YAML)
        return cli.main(['install', blueprint, args.name,
                         *[item for pair in pairs for item in ('-i', pair)]])
    if args.action == 'uninstall':
        status = cli.main(['uninstall', args.name])
        if status == 0:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(service.meta_path(args.name))
        return status
    workflow, parameters = args.rest
    try:
        env = cli._named(args.name)
    except ValueError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    console = AnnouncingConsole(args.announce_fd)
    console.install()
    status = cli._run_workflow(console, env, workflow, args.name, json.loads(parameters))
    print(cli._table(cli.job_rows(env)))
    return status


if __name__ == '__main__':
    sys.exit(main())
