"""Transports: where an infrastructure's commands run (SSH or this machine)."""

from .base import CommandResult, Transport
from .local import LocalTransport
from .ssh import SshSettings, SshTransport, close_all

__all__ = ['CommandResult', 'Transport', 'LocalTransport', 'SshSettings', 'SshTransport',
           'close_all']
