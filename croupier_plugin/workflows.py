"""The run_jobs workflow: the blueprint's jobs, handed to the core engine."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from cloudify.decorators import workflow
from cloudify.exceptions import NonRecoverableError
from cloudify.workflows import workflow_api

from . import edge
from .core.blueprint import (NodeView, assign_workdirs, plan_deployment,
                             wire_transfers)  # noqa: F401  (importable from here)
from .core.cluster import Cluster
from .core.data import Transfer, TransferError, run_all
from .core.engine import Engine, JobFailed, JobRecord, PlannedJob, RunCancelled
from .core.errors import CroupierError
from .core.exporter import ExporterClient, JobRegistrar
from .core.infrastructure import InfrastructureSettings
from .core.model import JobSpec
from .core.monitor import InfrastructureUnreachable, Monitor
from .core.placement import Candidate

if TYPE_CHECKING:
    from cloudify.workflows.workflow_context import (CloudifyWorkflowContext,
                                                     CloudifyWorkflowNode,
                                                     CloudifyWorkflowNodeInstance)

    from .core.engine.loop import Events


def _instances(ctx: CloudifyWorkflowContext, type_name: str
               ) -> Iterator[tuple[CloudifyWorkflowNode, CloudifyWorkflowNodeInstance]]:
    for node in ctx.nodes:
        if edge.is_type(node, type_name):
            for instance in node.instances:
                yield node, instance


def node_views(ctx: CloudifyWorkflowContext) -> dict[str, NodeView]:
    """Every node of the deployment as planning sees it, by node id."""
    return edge.node_views(ctx)


def default_results_dir(ctx: CloudifyWorkflowContext) -> str:
    """Where published job outputs go when run_jobs names no results_dir:
    ~/croupier-results/<deployment id>."""
    return os.path.join(os.path.expanduser('~'), 'croupier-results', ctx.deployment.id)


def plan_jobs(ctx: CloudifyWorkflowContext, results_dir: str | None = None
              ) -> tuple[list[PlannedJob], dict[str, InfrastructureSettings], list[Transfer]]:
    """PlannedJobs for every Job instance, with its cluster, parents and
    transfers; and the transfers tied to no job."""
    views = node_views(ctx)
    plan = plan_deployment(views, fetch=True)
    if plan.problems:
        raise NonRecoverableError('the deployment is not valid:\n' + '\n'.join(plan.problems))
    clusters: dict[str, tuple[Cluster, str]] = {}
    for node_id, settings in plan.interfaces.items():
        view = views[node_id]
        workdir = view.runtime.get('workdir')
        if not workdir and view.properties.get('recurring_workflow') is True:
            raise NonRecoverableError(f"node '{node_id}' has no working directory yet: it has "
                                      f"recurring_workflow: true, so execute croupier_configure "
                                      f"before each run_jobs")
        if not workdir:
            raise NonRecoverableError(f"node '{node_id}' has no working directory: run the "
                                      f"install workflow before run_jobs")
        clusters[node_id] = (settings.cluster(), workdir)
    assign_workdirs(plan.dataflow, [(plan.interfaces[i], w) for i, (_, w) in clusters.items()])
    results_dir = results_dir or default_results_dir(ctx)
    jobs = []
    scripts: dict[str, bytes] = {}      # each blueprint script read once, whatever its users
    for job in plan.jobs.values():
        view = views[job.node_id]
        # (a job's relationships name nodes: each of their instances is meant)
        parents = [i for p in job.parents + job.producers for i in views[p].instance_ids()]
        for instance_id in view.instance_ids():
            candidates = [_candidate(ctx, clusters, job.specs[(instance_id, interface)],
                                     interface, scripts) for interface in job.interfaces]
            first = candidates[0]
            record = JobRecord.from_properties(view.instances.get(instance_id, {}))
            planned = PlannedJob(instance_id, first.spec, first.cluster, first.workdir,
                                 list(dict.fromkeys(parents)), record,
                                 stage_in=list(job.stage_in), stage_out=list(job.stage_out),
                                 policy=job.policy,
                                 placements=candidates if len(candidates) > 1 else [],
                                 script_data=first.script_data)
            if job.publish:
                # from wherever the job ran
                planned.stage_out.append(edge.publication(
                    instance_id, job.publish, results_dir,
                    # (job=planned binds this job; mypy infers no type for a lambda's default)
                    lambda job=planned: (job.cluster.transport,  # type: ignore[misc]
                                         job.workdir)))
            jobs.append(planned)
    return jobs, {i: plan.interfaces[i] for i in clusters}, plan.loose_transfers


def _candidate(ctx: CloudifyWorkflowContext, clusters: dict[str, tuple[Cluster, str]],
               spec: Any, interface: str, scripts: dict[str, bytes]) -> Candidate:
    """Where a job may run: the interface ``interface``'s cluster and working directory,
    with the job's ``spec`` there (its local script read from the blueprint, once per
    path into ``scripts``)."""
    script_data = None
    # (a PycompssJob names no blueprint script)
    path = spec.local_script if isinstance(spec, JobSpec) else None
    if path:
        # a file shipped with the blueprint, uploaded next to the job at submission
        if path not in scripts:
            with open(ctx.download_resource(path), 'rb') as fh:
                scripts[path] = fh.read()
        script_data = scripts[path]
    cluster, workdir = clusters[interface]
    return Candidate(cluster, workdir, spec, script_data)


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
    views = node_views(ctx)
    clients = {}
    for view in views.values():
        if view.is_a(edge.INTERFACE_TYPE):
            for target in view.targets(edge.MONITORED_BY):
                clients[view.id] = edge.exporter_client(target, views[target].properties)
    return clients


def _reporter(ctx: CloudifyWorkflowContext, registrar: JobRegistrar | None = None) -> Events:
    def report(kind: str, job: PlannedJob, **info: Any) -> None:
        # a dry run's jobs exist nowhere: the exporter must not ask the cluster about them
        if registrar is not None and kind in ('submitted', 'reattached') and \
                not job.record.simulated:
            registrar.add(job.cluster.name, job.name, info['job_id'])
        if kind == 'state':
            status = info['status']
            ctx.logger.info('job %s [%s %s]: %s', job.name, job.cluster.name,
                            job.record.job_id, status.describe())
        elif kind == 'submitted':
            ctx.logger.info('job %s [%s %s]: %s', job.name, job.cluster.name, info['job_id'],
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
                            job.name, job.cluster.name, info['job_id'])
        else:
            detail = info.get('reason', '')
            ctx.logger.info('job %s: %s%s', job.name, kind, f' ({detail})' if detail else '')
    return report


@workflow
@edge.cloudify_errors
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
        reservation = job.spec.reservation if isinstance(job.spec, JobSpec) else None
        settings = by_name.get(job.cluster.name)
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
@edge.cloudify_errors
def croupier_install(ctx: CloudifyWorkflowContext, **kwargs: Any) -> None:
    """The original Croupier's install workflow: Cloudify's install of every node
    instance (Croupier revokes the Vault tokens it used right after use, which the
    original did here)."""
    from cloudify.plugins import lifecycle
    lifecycle.install_node_instances(graph=ctx.graph_mode(),
                                     node_instances=set(ctx.node_instances))


@workflow
@edge.cloudify_errors
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
        if any(edge.related(rel, edge.MANAGED_BY) and rel.target_id in targets
               for rel in instance.relationships):
            instance.execute_operation('cloudify.interfaces.lifecycle.configure',
                                       kwargs={'recurrence': True}).get()
    ctx.logger.info('croupier_configure: %s ready for the next run_jobs',
                    ', '.join(sorted(names)))
