"""qstat -f output of PBS Pro and Torque, in its text and JSON forms: job
blocks, times and durations, job id parts. Read by the PBS scheduler's status
parsing and by its figures (accounting, exporter)."""

import json
import re
import time
from collections.abc import Iterator, Mapping
from typing import Any

# a job's attributes in qstat -f (lower-case names), and one job's block
Attrs = dict[str, str]
Block = tuple[str, Attrs]
# qstat -f's times (qtime, stime) and `date` in the same form: the server's local time,
# compared with each other only, so no time zone is guessed
QSTAT_TIME = '%a %b %d %H:%M:%S %Y'

_JOB_ID_LINE = re.compile(r'Job Id:\s*(\S+)\s*')
_ATTRIBUTE = re.compile(r'\s+([A-Za-z_][A-Za-z0-9_.]*) = ?(.*)')

def seconds(text: str | None) -> int | None:
    """'01:02:03' -> 3723, '90' -> 90; None when unreadable."""
    parts = (text or '').strip().split(':')
    try:
        values = [int(p) for p in parts]
    except ValueError:
        return None
    total = 0
    for value in values:
        total = total * 60 + value
    return total


def _qstat_time(text: str | None) -> float | None:
    """'Sun Nov 22 16:42:17 2026' as seconds (of a naive local clock), or None."""
    try:
        return time.mktime(time.strptime(' '.join((text or '').split()), QSTAT_TIME))
    except (ValueError, OverflowError):
        return None


def _sequence(job_id: str) -> str:
    """'123.srv' -> '123', '7[].srv' -> '7[]', '7[3].srv' -> '7[3]'."""
    return str(job_id).split('.', 1)[0]


def _array_base(job_id: str) -> str | None:
    """'7[].srv' / '7[3].srv' -> '7'; None for a job that is not an array."""
    seq = _sequence(job_id)
    return seq.split('[', 1)[0] if '[' in seq else None


def parse_qstat_full(text: str) -> list[Block]:
    """[(job id, {attribute (lower case): value})] from ``qstat -f`` output."""
    blocks: list[Block] = []
    attrs: Attrs | None = None
    last: str | None = None
    for line in text.splitlines():
        m = _JOB_ID_LINE.fullmatch(line)
        if m:
            attrs, last = {}, None
            blocks.append((m[1], attrs))
        elif attrs is not None and line.strip():
            last = _read_attribute(attrs, last, line)
    for _job_id, values in blocks:
        for name, value in values.items():
            values[name] = value.strip()
    return blocks


def _read_attribute(attrs: Attrs, last: str | None, line: str) -> str | None:
    """Add ``line`` (``name = value``, or the continuation of the value of
    attribute ``last``) to ``attrs``; the name of the attribute read last."""
    m = _ATTRIBUTE.fullmatch(line)
    if m:
        last = m[1].lower()
        attrs[last] = m[2].rstrip('\r')
    elif last is not None and line[:1] in ('\t', ' '):
        # a folded value goes on where it was cut, even inside a word or
        # at a space: only the continuation's indent is dropped
        attrs[last] += line[1:] if line[0] == '\t' else line.lstrip()
    return last


def parse_qstat_json(text: str) -> list[Block]:
    """[(job id, {attribute (lower case): value as text})] from PBS Pro's
    ``qstat -f -F json``, in parse_qstat_full's shape: nested attributes are
    named as the text form names them (``Resource_List.walltime`` ->
    ``resource_list.walltime``). Empty output (every id unknown) has no jobs;
    several objects one after the other are read in turn (one object holds
    every id on the server recorded, but a qstat asking several servers may
    print one each); ValueError when the output is not JSON."""
    return [(job_id, _flattened(attrs)) for data in _json_objects(text.strip())
            for job_id, attrs in (data.get('Jobs') or {}).items()]


def _json_objects(text: str) -> Iterator[dict[str, Any]]:
    """The JSON objects of ``text``, one after the other (ValueError: not JSON objects)."""
    decoder = json.JSONDecoder()
    at = 0
    while at < len(text):
        data, at = decoder.raw_decode(text, at)
        if not isinstance(data, dict):
            raise ValueError('not a JSON object')
        yield data
        while at < len(text) and text[at].isspace():
            at += 1


def _flattened(values: Mapping[str, Any], prefix: str = '') -> Attrs:
    """A JSON object's values as text, nested names joined with '.', lower case."""
    out: Attrs = {}
    for name, value in values.items():
        key = prefix + str(name).lower()
        if isinstance(value, dict):
            out.update(_flattened(value, key + '.'))
        elif isinstance(value, list):
            out[key] = ','.join(str(v) for v in value)
        else:
            out[key] = str(value).strip()
    return out
