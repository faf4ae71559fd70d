"""Error types of the core.

The Cloudify edge maps them in one place (``edge.as_cloudify_error``, applied to every
operation and workflow by ``edge.cloudify_errors``): ``TransportError`` becomes
``RecoverableError`` (the server may be back soon: a manager's task_retries may retry
the operation), except ``CommandInterrupted``, whose effect is unknown; it, and
``ConfigError``, ``HostKeyError``, ``AuthenticationError`` and every other
``CroupierError``, become ``NonRecoverableError``. Operations that run something not
safe to repeat (bootstrap and revert scripts, a workspace's creation) map every
error to ``NonRecoverableError`` themselves. ``JobFailed`` fails the ``run_jobs``
execution.
"""

from __future__ import annotations

from typing import Any


class CroupierError(Exception):
    """Base class of every error raised by Croupier's core."""


class ConfigError(CroupierError):
    """A blueprint property or input holds a value Croupier cannot use.

    The message always names the property and shows the offending value.
    """

    def __init__(self, prop: str, value: Any, problem: str, node: str | None = None) -> None:
        self.prop = prop
        self.value = value
        self.problem = problem
        self.node = node
        where = f"node '{node}', " if node else ''
        super().__init__(f"{where}property '{prop}' = {value!r}: {problem}")

    def for_node(self, node: str) -> ConfigError:
        """The same error, now naming the blueprint node it belongs to."""
        return ConfigError(self.prop, self.value, self.problem, node=node)


class TransportError(CroupierError):
    """The remote system could not be reached or a command could not be run.

    Usually transient: the caller may retry.
    """


class CommandInterrupted(TransportError):
    """The connection broke while a non-idempotent command was running.

    Its effect on the remote side is unknown; the caller must find out
    (for example, look the job up by its unique name) before retrying.
    """


class HostKeyError(CroupierError):
    """The server's host key is unknown or does not match: never retried."""


class AuthenticationError(CroupierError):
    """The server refused the credentials: never retried."""


class SchedulerError(CroupierError):
    """A scheduler command ran but reported an error (e.g. sbatch refused a job)."""

    def __init__(self, message: str, exit_code: int | None = None, stderr: str = '') -> None:
        self.exit_code = exit_code
        self.stderr = stderr
        super().__init__(message)
