"""Schedulers by the name blueprints give in config.infrastructure_interface."""

from typing import Any

from ..errors import ConfigError
from .base import Scheduler
from .pbs import PbsScheduler, TorqueScheduler
from .pycompss import PycompssJob, PycompssScheduler
from .shell import ShellScheduler
from .slurm import SlurmScheduler

SCHEDULERS: dict[str, type[Scheduler]] = {
    'SLURM': SlurmScheduler,
    'SHELL': ShellScheduler,
    'PBS': PbsScheduler,
    'TORQUE': TorqueScheduler,
    'PYCOMPSS': PycompssScheduler,
}
# schedulers that can report on jobs (a PYCOMPSS interface is monitored with one)
MONITORS = ('SLURM', 'PBS', 'TORQUE')


def get_scheduler(name: Any, prop: str = 'config.infrastructure_interface',
                  monitor: Any = None) -> Scheduler:

    """A new scheduler object for ``name`` (case-insensitive); ``monitor`` names
    the scheduler a PYCOMPSS interface is monitored with (SLURM by default)."""
    # a name, not any value that happens to print as one (a list, a line break)
    key = name.strip().upper() if isinstance(name, str) and '\n' not in name else ''
    cls = SCHEDULERS.get(key)
    if cls is None:
        raise ConfigError(prop, name, f'unknown scheduler; use one of {sorted(SCHEDULERS)}')
    if cls is PycompssScheduler:
        watch = monitor or 'SLURM'
        watch = watch.strip().upper() if isinstance(watch, str) and '\n' not in watch else ''
        if watch not in MONITORS:
            raise ConfigError('monitoring_options.monitor_interface', monitor,
                              f'must be one of {list(MONITORS)} for a PYCOMPSS interface')
        return PycompssScheduler(monitor=SCHEDULERS[watch]())
    return cls()


__all__ = ['Scheduler', 'SlurmScheduler', 'ShellScheduler', 'PbsScheduler', 'TorqueScheduler',
           'PycompssScheduler', 'PycompssJob',
           'SCHEDULERS', 'get_scheduler']
