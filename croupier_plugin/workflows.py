"""The run_jobs workflow: the blueprint's jobs, handed to the core engine."""

from cloudify.decorators import workflow
from cloudify.exceptions import NonRecoverableError
from cloudify.workflows import workflow_api

from . import edge
from .core.engine import Engine, JobFailed, PlannedJob, RunCancelled
from .core.errors import CroupierError
from .core.exporter import JobRegistrar
from .core.monitor import InfrastructureUnreachable, Monitor

# runtime properties the engine owns on a job's node instance
RECORD_KEYS = ('job_id', 'state', 'raw_state', 'reason', 'exit_code', 'stdout', 'stderr',
               'script', 'submitted_at', 'ended_at', 'cluster', 'reported', 'submit_token')


def _instances(ctx, type_name):
    for node in ctx.nodes:
        if edge.is_type(node, type_name):
            for instance in node.instances:
                yield node, instance


def _relationship_types(rel):
    raw = getattr(rel.relationship, '_relationship', None) or {}
    return raw.get('type_hierarchy') or [rel.type]


def plan_jobs(ctx):
    """PlannedJobs for every Job instance, with its cluster and parents."""
    clusters, settings_of = {}, {}
    for node, instance in _instances(ctx, edge.INTERFACE_TYPE):
        vault = None
        for rel in instance.relationships:
            if edge.FROM_VAULT in _relationship_types(rel):
                target = rel.target_node_instance.node
                vault = (target.id, target.properties)
        settings = edge.interface_settings(node.id, node.properties, vault)
        workdir = instance.runtime_properties.get('workdir')
        if not workdir:
            raise NonRecoverableError(f"node '{node.id}' has no working directory: run the "
                                      f"install workflow before run_jobs")
        settings.name = node.id
        clusters[instance.id] = (settings.cluster(), workdir)
        settings_of[instance.id] = settings
    jobs = []
    for node, instance in _instances(ctx, edge.JOB_TYPE):
        managers, parents = [], []
        for rel in instance.relationships:
            hierarchy = _relationship_types(rel)
            if edge.MANAGED_BY in hierarchy:
                managers.append(rel.target_id)
            elif edge.DEPENDS_ON in hierarchy:
                parents.append(rel.target_id)
        if len(managers) != 1 or managers[0] not in clusters:
            raise NonRecoverableError(f"node '{node.id}': a job needs exactly one "
                                      f"{edge.MANAGED_BY} relationship to an "
                                      f"InfrastructureInterface")
        cluster, workdir = clusters[managers[0]]
        spec = edge.job_spec(node.id, instance.id, node.properties, settings_of[managers[0]],
                             edge.job_kind(getattr(node, 'type_hierarchy', None) or [node.type]))
        if getattr(spec, 'local_script', None):
            # a file shipped with the blueprint, uploaded next to the job at submission
            with open(ctx.download_resource(spec.local_script), 'rb') as fh:
                spec.local_script_data = fh.read()
        record = {k: instance.runtime_properties[k] for k in RECORD_KEYS
                  if k in instance.runtime_properties}
        jobs.append(PlannedJob(instance.id, spec, cluster, workdir, parents, record))
    return jobs, settings_of


class RuntimeStore:
    """Persists each job's record in its node instance's runtime properties."""

    def __init__(self, ctx):
        self.ctx = ctx

    def __call__(self, instance_id, record):
        instance = self.ctx.get_node_instance(instance_id)
        props = dict(instance.runtime_properties)
        for key in RECORD_KEYS:
            props.pop(key, None)
        props.update({k: v for k, v in record.items() if v is not None})
        self.ctx.update_node_instance(instance_id, runtime_properties=props, force=True)


def exporters(ctx):
    """{interface node id: ExporterClient} for interfaces monitored by an HPCExporter."""
    clients = {}
    for node, instance in _instances(ctx, edge.INTERFACE_TYPE):
        for rel in instance.relationships:
            if edge.MONITORED_BY in _relationship_types(rel):
                target = rel.target_node_instance.node
                clients[node.id] = edge.exporter_client(target.id, target.properties)
    return clients


def _reporter(ctx, registrar=None):
    def report(kind, job, **info):
        if registrar is not None and kind in ('submitted', 'reattached'):
            registrar.add(job.cluster.key, job.name, info['job_id'])
        if kind == 'state':
            status = info['status']
            ctx.logger.info('job %s [%s %s]: %s', job.name, job.cluster.key,
                            job.record.get('job_id'), status.describe())
        elif kind == 'submitted':
            ctx.logger.info('job %s [%s %s]: submitted', job.name, job.cluster.key,
                            info['job_id'])
        elif kind == 'reattached':
            ctx.logger.info('job %s [%s %s]: re-attached (submitted by an earlier run)',
                            job.name, job.cluster.key, info['job_id'])
        else:
            detail = info.get('reason', '')
            ctx.logger.info('job %s: %s%s', job.name, kind, f' ({detail})' if detail else '')
    return report


@workflow
def run_jobs(ctx, max_parallel_submissions=16, **kwargs):
    ctx.refresh_node_instances()
    jobs, settings_of = plan_jobs(ctx)
    grace = min((s.unknown_grace for s in settings_of.values()), default=180.0)
    clients = exporters(ctx)
    registrar = JobRegistrar(clients, ctx.deployment.id, ctx.logger.warning) if clients \
        else None
    engine = Engine(jobs, RuntimeStore(ctx), events=_reporter(ctx, registrar),
                    monitor=Monitor(unknown_grace=grace),
                    max_parallel_submissions=int(max_parallel_submissions))
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
    ctx.logger.info('run_jobs: all %d jobs completed', len(summary))
    return summary
