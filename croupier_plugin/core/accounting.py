"""A job's accounting figures: what the scheduler says the ended job used.

Kept in the job's runtime properties (``accounting``) when an interface has
``accounting_options`` and shown by ``croupier status``. The original Croupier
sent such figures to an accounting service as ``reporting_user``; Croupier
keeps that name with the figures (whom the consumption is reported for) and
sends them nowhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Iterable, Mapping
from typing import Any


@dataclass(frozen=True)
class JobFigures:
    """An ended job's figures, as its scheduler recorded them (None where it
    does not tell): wall-clock seconds, CPU seconds used (user + system, all
    processes), nodes and CPUs allocated, and which command told."""
    elapsed: int | None = None
    cpu_time: float | None = None
    nodes: int | None = None
    cpus: int | None = None
    source: str = ''

    def to_properties(self, reporting_user: str | None = None) -> dict[str, Any]:
        """The stored form (runtime property ``accounting``): the figures
        that are known, the source, and ``reporting_user`` when given."""
        out: dict[str, Any] = {k: v for k, v in (('elapsed', self.elapsed),
                                                 ('cpu_time', self.cpu_time),
                                                 ('nodes', self.nodes), ('cpus', self.cpus))
                               if v is not None}
        out['source'] = self.source
        if reporting_user:
            out['reporting_user'] = reporting_user
        return out


def combined(parts: Iterable[JobFigures], source: str) -> JobFigures:
    """The figures of an array from its elements': the longest element's
    elapsed time, and CPU time, nodes and CPUs added up."""
    parts = list(parts)

    def total(name: str) -> Any:
        values = [getattr(p, name) for p in parts if getattr(p, name) is not None]
        return sum(values) if values else None
    elapsed = [p.elapsed for p in parts if p.elapsed is not None]
    return JobFigures(max(elapsed) if elapsed else None, total('cpu_time'), total('nodes'),
                      total('cpus'), source)


def clock_seconds(text: str | None) -> float | None:
    """Seconds of a scheduler duration: '[D-][HH:]MM:SS[.fff]' (sacct's
    TotalCPU, qstat's cput and walltime, with hours beyond 24 too); None when
    it is not one."""
    text = (text or '').strip()
    days = 0
    if '-' in text:
        head, _, text = text.partition('-')
        if not head.isdigit():
            return None
        days = int(head)
    parts = text.split(':')
    if not 1 <= len(parts) <= 3 or not all(parts):
        return None
    *whole, last = parts
    if not all(p.isdigit() for p in whole):
        return None
    seconds_text, dot, fraction = last.partition('.')
    if not seconds_text.isdigit() or (dot and not fraction.isdigit()):
        return None
    value = 0
    for part in whole:
        value = value * 60 + int(part)
    total = days * 86400 + value * 60 + int(seconds_text)
    return total + (float('0.' + fraction) if fraction else 0.0)


def whole_number(text: Any) -> int | None:
    """A count the scheduler printed ('4'), or None."""
    text = str(text if text is not None else '').strip()
    return int(text) if text.isdigit() else None


def format_seconds(seconds: float | None) -> str:
    """'1:02:03' style for the status table, with hundredths when the
    scheduler gave a fraction ('0:00:00.64': a short job's CPU time), '' when
    unknown."""
    if seconds is None:
        return ''
    hundredths = int(round(seconds * 100))
    whole, fraction = divmod(hundredths, 100)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    text = f'{hours}:{minutes:02d}:{secs:02d}'
    return text + f'.{fraction:02d}' if isinstance(seconds, float) and fraction else text


def figures_columns(stored: Mapping[str, Any] | None) -> list[str]:
    """[elapsed, cpu time, nodes, cpus] as the status table shows them."""
    stored = stored or {}
    return [format_seconds(stored.get('elapsed')), format_seconds(stored.get('cpu_time')),
            '' if stored.get('nodes') is None else str(stored['nodes']),
            '' if stored.get('cpus') is None else str(stored['cpus'])]
