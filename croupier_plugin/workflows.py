"""The run_jobs workflow: the blueprint's jobs, handed to the core engine."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from cloudify.decorators import workflow
from cloudify.exceptions import NonRecoverableError
from cloudify.workflows import workflow_api

from . import edge
from .core.data import Transfer, TransferError, run_all
from .core.engine import Engine, JobFailed, JobRecord, PlannedJob, RunCancelled
from .core.errors import CroupierError
from .core.exporter import ExporterClient, JobRegistrar
from .core.infrastructure import InfrastructureSettings
from .core.monitor import InfrastructureUnreachable, Monitor
from .core.placement import Candidate

if TYPE_CHECKING:
    from cloudify.workflows.workflow_context import (CloudifyWorkflowContext,
                                                     CloudifyWorkflowNode,
                                                     CloudifyWorkflowNodeInstance,
                                                     CloudifyWorkflowRelationshipInstance)

    from .core.engine.loop import Events


def _instances(ctx: CloudifyWorkflowContext, type_name: str
               ) -> Iterator[tuple[CloudifyWorkflowNode, CloudifyWorkflowNodeInstance]]:
    for node in ctx.nodes:
        if edge.is_type(node, type_name):
            for instance in node.instances:
                yield node, instance


def _relationship_types(rel: CloudifyWorkflowRelationshipInstance) -> list[str]:
    raw = getattr(rel.relationship, '_relationship', None) or {}
    return raw.get('type_hierarchy') or [rel.type]


def node_views(ctx: CloudifyWorkflowContext) -> dict[str, edge.NodeView]:
    """Every node of the deployment as the data planning sees it, by node id."""
    return {node.id: edge.NodeView(node.id, getattr(node, 'type_hierarchy', None) or [node.type],
                                   node.properties,
                                   [((r._relationship or {}).get('type_hierarchy') or [r.type],
                                     r.target_id) for r in node.relationships])
            for node in ctx.nodes}


def default_results_dir(ctx: CloudifyWorkflowContext) -> str:
    """Where published job outputs go when run_jobs names no results_dir:
    ~/croupier-results/<deployment id>."""
    return os.path.join(os.path.expanduser('~'), 'croupier-results', ctx.deployment.id)


def plan_jobs(ctx: CloudifyWorkflowContext, results_dir: str | None = None
              ) -> tuple[list[PlannedJob], dict[str, InfrastructureSettings], list[Transfer]]:
    """PlannedJobs for every Job instance, with its cluster, parents and
    transfers; and the transfers tied to no job."""
    clusters, settings_of = {}, {}
    for node, instance in _instances(ctx, edge.INTERFACE_TYPE):
        vault = None
        for rel in instance.relationships:
            if edge.FROM_VAULT in _relationship_types(rel):
                target = rel.target_node_instance.node
                vault = (target.id, target.properties)
        settings = edge.interface_settings(
            node.id, node.properties, vault,
            host=instance.runtime_properties.get(edge.CONTAINED_HOST))
        workdir = instance.runtime_properties.get('workdir')
        if not workdir and node.properties.get('recurring_workflow') is True:
            raise NonRecoverableError(f"node '{node.id}' has no working directory yet: it has "
                                      f"recurring_workflow: true, so execute croupier_configure "
                                      f"before each run_jobs")
        if not workdir:
            raise NonRecoverableError(f"node '{node.id}' has no working directory: run the "
                                      f"install workflow before run_jobs")
        settings.name = node.id
        clusters[instance.id] = (settings.cluster(), workdir)
        settings_of[instance.id] = settings
    flow = edge.build_dataflow(node_views(ctx))
    flow.raise_problems()
    edge.assign_workdirs(flow, [(settings_of[i], w) for i, (_, w) in clusters.items()])
    wiring = wire_transfers(flow)
    results_dir = results_dir or default_results_dir(ctx)
    jobs = []
    for node, instance in _instances(ctx, edge.JOB_TYPE):
        managers, parents = [], []
        for rel in instance.relationships:
            hierarchy = _relationship_types(rel)
            if edge.MANAGED_BY in hierarchy:
                managers.append(rel.target_id)
            elif edge.DEPENDS_ON in hierarchy:
                parents.append(rel.target_id)
        if not managers or any(m not in clusters for m in managers):
            raise NonRecoverableError(f"node '{node.id}': a job needs a {edge.MANAGED_BY} "
                                      f"relationship to an InfrastructureInterface (several "
                                      f"let Croupier place it)")
        kind = edge.job_kind(getattr(node, 'type_hierarchy', None) or [node.type])
        candidates, script_data = [], None
        for manager in managers:
            spec = edge.job_spec(node.id, instance.id, node.properties, settings_of[manager],
                                 kind)
            if getattr(spec, 'local_script', None):
                # a file shipped with the blueprint, uploaded next to the job at submission
                # (a PycompssJob has no local_script: the getattr above keeps it out)
                with open(ctx.download_resource(spec.local_script),  # type: ignore[union-attr]
                          'rb') as fh:
                    script_data = fh.read()
            cluster, workdir = clusters[manager]
            candidates.append(Candidate(settings_of[manager].name, cluster, workdir, spec))
        first = candidates[0]
        record = JobRecord.from_properties(instance.runtime_properties)
        stage_in, stage_out, producers = wiring.get(node.id, ([], [], []))
        for producer in producers:
            parents += [i.id for i in ctx.get_node(producer).instances if i.id not in parents]
        job = PlannedJob(instance.id, first.spec, first.cluster, first.workdir, parents, record,
                         stage_in=list(stage_in), stage_out=list(stage_out),
                         policy=edge.job_policy(node.id, node.properties),
                         placements=candidates if len(candidates) > 1 else [],
                         script_data=script_data)
        paths = edge.publish_paths(node.id, node.properties)
        if paths:
            # from wherever the job ran
            job.stage_out.append(edge.publication(
                instance.id, paths, results_dir,
                # (job=job binds this job; mypy infers no type for a lambda's default)
                lambda job=job: (job.cluster.transport, job.workdir)))  # type: ignore[misc]
        jobs.append(job)
    tied = {id(t) for plan in wiring.values() for t in plan[0] + plan[1]}
    loose = [t for t in flow.transfers.values() if id(t) not in tied]
    return jobs, settings_of, loose


def wire_transfers(flow: edge.Dataflow
                   ) -> dict[str, tuple[list[Transfer], list[Transfer], list[str]]]:
    """job node id -> (input transfers, output transfers, producer job node ids).

    A job's input transfers are those writing one of its input sources; its
    output transfers those reading one of its output sources. A transfer
    that moves one job's output to another job's input runs once, after the
    producer, and the consumer waits for the producer; so does a job that
    reads a source another job writes."""
    producer_of: dict[str, str] = {}
    for job_id, sources in flow.outputs.items():
        for source in sources:
            producer_of.setdefault(source, job_id)
    wiring = {}
    for job_id in set(flow.inputs) | set(flow.outputs):
        outputs = set(flow.outputs.get(job_id, []))
        inputs = set(flow.inputs.get(job_id, []))
        stage_out = [t for t in flow.transfers.values() if t.source.name in outputs]
        stage_in, producers = [], []
        for source in inputs:
            if source in producer_of and producer_of[source] != job_id:
                producers.append(producer_of[source])
        for t in flow.transfers.values():
            if t.target.name not in inputs:
                continue
            if t.source.name in producer_of and producer_of[t.source.name] != job_id:
                producers.append(producer_of[t.source.name])
            else:
                stage_in.append(t)
        wiring[job_id] = (stage_in, stage_out, sorted(set(producers)))
    return wiring


class RuntimeStore:
    """Persists each job's record in its node instance's runtime properties."""

    def __init__(self, ctx: CloudifyWorkflowContext) -> None:
        self.ctx = ctx

    def __call__(self, instance_id: str, record: dict) -> None:
        """Replace the record's runtime properties of ``instance_id`` by
        ``record`` (the stored form from JobRecord.to_properties)."""
        instance = self.ctx.get_node_instance(instance_id)
        props = dict(instance.runtime_properties)
        for key in JobRecord.property_names():
            props.pop(key, None)
        props.update({k: v for k, v in record.items() if v is not None})
        self.ctx.update_node_instance(instance_id, runtime_properties=props, force=True)


def exporters(ctx: CloudifyWorkflowContext) -> dict[str, ExporterClient]:
    """{interface node id: ExporterClient} for interfaces monitored by an HPCExporter."""
    clients = {}
    for node, instance in _instances(ctx, edge.INTERFACE_TYPE):
        for rel in instance.relationships:
            if edge.MONITORED_BY in _relationship_types(rel):
                target = rel.target_node_instance.node
                clients[node.id] = edge.exporter_client(target.id, target.properties)
    return clients


def _reporter(ctx: CloudifyWorkflowContext, registrar: JobRegistrar | None = None) -> Events:
    def report(kind: str, job: PlannedJob, **info: Any) -> None:
        # a dry run's jobs exist nowhere: the exporter must not ask the cluster about them
        if registrar is not None and kind in ('submitted', 'reattached') and \
                not job.record.simulated:
            registrar.add(job.cluster.key, job.name, info['job_id'])
        if kind == 'state':
            status = info['status']
            ctx.logger.info('job %s [%s %s]: %s', job.name, job.cluster.key,
                            job.record.job_id, status.describe())
        elif kind == 'submitted':
            ctx.logger.info('job %s [%s %s]: %s', job.name, job.cluster.key, info['job_id'],
                            'simulated (nothing sent; its script is in rendered_script)'
                            if info.get('simulated') else 'submitted')
        elif kind == 'inputs':
            ctx.logger.info('job %s: input data in place: %s', job.name, info['reason'])
        elif kind == 'outputs':
            ctx.logger.info('job %s: outputs moved: %s', job.name, info['reason'])
        elif kind in ('placed', 'moved'):
            ctx.logger.info('job %s: %s: %s', job.name, kind, info['reason'])
        elif kind == 'retrying':
            ctx.logger.info('job %s: retrying: %s', job.name, info['reason'])
        elif kind == 'reattached':
            ctx.logger.info('job %s [%s %s]: re-attached (submitted by an earlier run)',
                            job.name, job.cluster.key, info['job_id'])
        else:
            detail = info.get('reason', '')
            ctx.logger.info('job %s: %s%s', job.name, kind, f' ({detail})' if detail else '')
    return report


@workflow
def run_jobs(ctx: CloudifyWorkflowContext, max_parallel_submissions: int | str = 16,
             results_dir: str = '', rerun_failed: bool = False, **kwargs: Any) -> list:
    """Run every job of the deployment to its end on the core engine (transfers tied to
    no job first); the engine's summary of the jobs."""
    ctx.refresh_node_instances()
    jobs, settings_of, loose = plan_jobs(ctx, results_dir or None)
    if loose:
        # transfers tied to no job's inputs or outputs run first
        try:
            for line in run_all(loose):
                ctx.logger.info('run_jobs: transfer %s', line)
        except TransferError as exc:
            raise NonRecoverableError(f'run_jobs failed: {exc}') from None
    grace = min((s.unknown_grace for s in settings_of.values()), default=180.0)
    clients = exporters(ctx)
    registrar = JobRegistrar(clients, ctx.deployment.id, ctx.logger.warning) if clients \
        else None
    engine = Engine(jobs, RuntimeStore(ctx), events=_reporter(ctx, registrar),
                    monitor=Monitor(unknown_grace=grace),
                    max_parallel_submissions=int(max_parallel_submissions),
                    rerun_failed=bool(rerun_failed))
    workflow_api.cancel_callbacks.add(engine.request_stop)
    try:
        if workflow_api.has_cancel_request():
            engine.request_stop()
        summary = engine.run()
    except JobFailed as exc:
        raise NonRecoverableError(f'run_jobs failed:\n{exc}') from None
    except RunCancelled:
        raise workflow_api.ExecutionCancelled() from None
    except (InfrastructureUnreachable, CroupierError) as exc:
        raise NonRecoverableError(f'run_jobs failed: {exc}') from None
    finally:
        workflow_api.cancel_callbacks.discard(engine.request_stop)
        if registrar is not None:
            registrar.close()
        delete_reservations(ctx, jobs, settings_of)
    ctx.logger.info('run_jobs: all %d jobs completed', len(summary))
    return summary


def delete_reservations(ctx: CloudifyWorkflowContext, jobs: list[PlannedJob],
                        settings_of: dict[str, InfrastructureSettings]) -> None:
    """Once run_jobs no longer needs them (every job ended, failed or was cancelled),
    run the interface's config.reservation_deletion_path on its front-end with the
    name of each reservation its submitted jobs ran in, once per reservation (the
    original Croupier's end of run_jobs). A failure is a warning: the jobs' outcome
    stands."""
    by_name = {settings.name: settings for settings in settings_of.values()}
    done = set()
    for job in jobs:
        reservation = getattr(job.spec, 'reservation', None)
        settings = by_name.get(job.cluster.key)
        if not reservation or settings is None or not settings.reservation_deletion_path \
                or not job.record.job_id or (settings.name, reservation) in done:
            continue
        done.add((settings.name, reservation))
        try:
            result = job.cluster.transport.run(
                settings.reservation_deletion_command(reservation))
        except CroupierError as exc:
            ctx.logger.warning('run_jobs: reservation %s on %s was not deleted: %s',
                               reservation, settings.name, exc)
            continue
        if result.exit_code == 0:
            ctx.logger.info('run_jobs: reservation %s on %s deleted (%s)', reservation,
                            settings.name, settings.reservation_deletion_path)
        else:
            ctx.logger.warning('run_jobs: reservation %s on %s was not deleted: %s exited '
                               'with %s: %s', reservation, settings.name,
                               settings.reservation_deletion_path, result.exit_code,
                               result.stderr.strip()[-500:])


@workflow
def croupier_install(ctx: CloudifyWorkflowContext, **kwargs: Any) -> None:
    """The original Croupier's install workflow: Cloudify's install of every node
    instance (Croupier revokes the Vault tokens it used right after use, which the
    original did here)."""
    from cloudify.plugins import lifecycle
    lifecycle.install_node_instances(graph=ctx.graph_mode(),
                                     node_instances=set(ctx.node_instances))


@workflow
def croupier_configure(ctx: CloudifyWorkflowContext, **kwargs: Any) -> None:
    """The original Croupier's preparation of a recurrence of a recurring workflow:
    every interface with recurring_workflow: true gets a new working directory
    (its configure operation again), then every job it manages is made ready to
    run again (its record of the last run dropped, its bootstrap script run in
    the new directory). run_jobs then runs the recurrence. Interfaces without
    recurring_workflow, and their jobs, are left as they are."""
    ctx.refresh_node_instances()
    recurring = [(node, instance) for node, instance in _instances(ctx, edge.INTERFACE_TYPE)
                 if node.properties.get('recurring_workflow') is True]
    if not recurring:
        ctx.logger.info('croupier_configure: no interface has recurring_workflow: true; '
                        'nothing to prepare')
        return
    for _node, instance in recurring:
        # one at a time, as install does: each logs in and makes its directory
        instance.execute_operation('cloudify.interfaces.lifecycle.configure',
                                   kwargs={'recurrence': True}).get()
    names = {node.id for node, _ in recurring}
    # (a workflow's relationship names its target node instance)
    targets = {instance.id for _, instance in recurring}
    for _node, instance in _instances(ctx, edge.JOB_TYPE):
        if any(edge.MANAGED_BY in _relationship_types(rel) and rel.target_id in targets
               for rel in instance.relationships):
            instance.execute_operation('cloudify.interfaces.lifecycle.configure',
                                       kwargs={'recurrence': True}).get()
    ctx.logger.info('croupier_configure: %s ready for the next run_jobs',
                    ', '.join(sorted(names)))
