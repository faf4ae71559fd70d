"""What SLURM's accounting says of a DAG run_jobs ran: shared by the e2e tests
of SLURM and of the Torque wrappers (whose jobs are SLURM's)."""

from collections.abc import Callable, Iterable, Mapping


def assert_held_by_the_scheduler(ssh, accounting, ids: Mapping[str, str],
                                 edges: Iterable[tuple[str, list[str]]],
                                 ready: Callable[[str], bool]) -> None:
    """From sacct: each child (node -> job id in ``ids``) was submitted before
    each of its parents in ``edges`` ended and started after it (the scheduler
    held it, not Croupier), and each job was submitted once (sacct holds no
    other job of these names in the last ten minutes). ``ready`` tells when
    sacct's answer for ``ids`` is complete."""
    out = accounting(ssh, f"-j {','.join(ids.values())} -o JobID,JobName,Submit,Start,End",
                     ready)
    rows = {line.split('|')[0]: line.split('|')[1:] for line in out.splitlines()}
    for child, parents in edges:
        submit, start = rows[ids[child]][1:3]
        for parent in parents:
            end = rows[ids[parent]][3]
            assert submit < end <= start, (child, parent, rows)
    names = {r[0] for r in rows.values()}
    same = accounting(ssh, f"-S now-10minutes -o JobName,JobID --name={','.join(names)}",
                      lambda text: len(text.split()) >= len(names)).split()
    per_name: dict[str, set[str]] = {}
    for line in same:
        name, job_id = line.split('|')
        per_name.setdefault(name, set()).add(job_id)
    assert per_name == {rows[i][0]: {i} for i in ids.values()}, per_name


def count_status_asks(monkeypatch) -> dict[str, int]:
    """Counts, from now on, the status commands ('statuses') and marker looks
    ('markers') every Cluster sends: the returned mapping grows as they go."""
    from croupier_plugin.core.cluster import Cluster
    asked = {'statuses': 0, 'markers': 0}
    statuses, markers = Cluster.statuses, Cluster.markers

    def counted_statuses(cluster, job_ids):
        asked['statuses'] += 1
        return statuses(cluster, job_ids)

    def counted_markers(cluster, job_ids, spent=(), started=()):
        asked['markers'] += 1
        return markers(cluster, job_ids, spent, started)
    monkeypatch.setattr(Cluster, 'statuses', counted_statuses)
    monkeypatch.setattr(Cluster, 'markers', counted_markers)
    return asked
