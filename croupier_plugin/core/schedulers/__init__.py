"""Schedulers by the name blueprints give in config.infrastructure_interface."""

from ..errors import ConfigError
from .base import Scheduler
from .shell import ShellScheduler
from .slurm import SlurmScheduler

SCHEDULERS = {
    'SLURM': SlurmScheduler,
    'SHELL': ShellScheduler,
}


def get_scheduler(name, prop='config.infrastructure_interface'):
    """A new scheduler object for ``name`` (case-insensitive)."""
    key = str(name).strip().upper() if name is not None else ''
    cls = SCHEDULERS.get(key)
    if cls is None:
        raise ConfigError(prop, name, f'unknown scheduler; use one of {sorted(SCHEDULERS)}')
    return cls()


__all__ = ['Scheduler', 'SlurmScheduler', 'ShellScheduler', 'SCHEDULERS', 'get_scheduler']
