"""Lifecycle operations: read ctx, build core objects, call the core."""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from typing import TYPE_CHECKING, Any, Optional

from cloudify import ctx as _ctx  # noqa: F401  (ctx is passed in by the decorator)
from cloudify.decorators import operation
from cloudify.exceptions import NonRecoverableError

from . import edge
from .core import blueprint
from .core.blueprint import DeploymentPlan, NodeView
from .core.data import DataSource
from .core.data_workspace import WorkspaceState, prepare, release
from .core.engine import JobRecord
from .core.errors import CroupierError
from .core.infrastructure import InfrastructureSettings

if TYPE_CHECKING:
    from cloudify.context import CloudifyContext, NodeInstanceContext


def _interface_settings(views: dict[str, NodeView], node: Any,
                        instance: NodeInstanceContext) -> InfrastructureSettings:
    """The settings of the interface ``node`` (its ``instance``), its credentials
    completed from its Vault (read now) and its front-end found."""
    return edge.not_recoverable(blueprint.interface_settings)(
        node.id, node.properties, blueprint.vault_of(views[node.id], views),
        host=_contained_host(node, instance))


def _contained_host(node: Any, instance: Any) -> Optional[str]:
    """The front-end's address of the interface ``node`` (its ``instance``) from its
    interface_contained_in target, when its credentials name no host; else None."""
    credentials = node.properties.get('credentials')
    if isinstance(credentials, dict) and credentials.get('host'):
        return None
    for rel in instance.relationships:
        if edge.related(rel, edge.CONTAINED_IN):
            return edge.contained_host(node.id, rel.target.node.id, rel.target.node.properties,
                                       rel.target.instance.runtime_properties)
    return instance.runtime_properties.get(edge.CONTAINED_HOST)


def _check_deployment(ctx: CloudifyContext) -> tuple[DeploymentPlan, dict[str, NodeView]]:
    """The deployment's plan (made once per process) and its nodes; a deployment
    with any bad interface or job refused before touching a host."""
    views = edge.node_views(ctx)
    return edge.valid_plan(views), views


# runtime property of a recurring interface: the working directories of its
# earlier recurrences, removed with the current one at uninstall
PAST_WORKDIRS = 'past_workdirs'


def _recurring(node: Any) -> bool:
    """Whether the interface ``node`` has the original's recurring_workflow: true."""
    return node.properties.get('recurring_workflow') is True


@operation
@edge.cloudify_errors
def configure_interface(ctx: CloudifyContext, recurrence: bool = False, **kwargs: Any) -> None:
    """Log in to the front-end and create the deployment's working directory,
    once every interface and job of the deployment was found valid.

    An interface with recurring_workflow: true gets no working directory at
    install: croupier_configure calls this with ``recurrence`` true before each
    recurrence, and each gets a new one (the earlier ones are kept until
    uninstall, with what their jobs left there)."""
    if recurrence and not _recurring(ctx.node):
        return
    _plan, views = _check_deployment(ctx)
    host = _contained_host(ctx.node, ctx.instance)
    settings = _interface_settings(views, ctx.node, ctx.instance)
    props = ctx.instance.runtime_properties
    if host:
        # the jobs' operations and run_jobs reach the front-end through it
        props[edge.CONTAINED_HOST] = host
    if _recurring(ctx.node) and not recurrence:
        props['infrastructure_interface'] = settings.scheduler
        ctx.logger.info('%s: recurring_workflow: each recurrence gets its working directory '
                        'from croupier_configure, to execute before run_jobs', ctx.node.id)
        return
    if recurrence and props.get('workdir'):
        props[PAST_WORKDIRS] = list(props.get(PAST_WORKDIRS) or []) + [props.pop('workdir')]
    if props.get('workdir'):
        ctx.logger.info('%s: working directory %s already exists', ctx.node.id, props['workdir'])
        return
    if settings.simulate:
        props['workdir'] = settings.simulated_workdir(ctx.deployment.id)
        props['infrastructure_interface'] = settings.scheduler
        props['simulated'] = True
        ctx.logger.info('%s: simulated (simulate: true): nothing is sent to %s; working '
                        'directory %s recorded, not created', ctx.node.id, settings.scheduler,
                        props['workdir'])
        return
    transport = settings.make_transport()
    try:
        workdir = settings.create_workdir(transport, ctx.deployment.id)
    except CroupierError as exc:
        raise edge.as_cloudify_error(exc, f"node '{ctx.node.id}': cannot prepare the "
                                          f"working directory") from None
    props['workdir'] = workdir
    props['infrastructure_interface'] = settings.scheduler
    ctx.logger.info('%s: %s reachable, working directory %s', ctx.node.id, settings.scheduler,
                    workdir)


@operation
@edge.cloudify_errors
def cleanup_interface(ctx: CloudifyContext, **kwargs: Any) -> None:
    """Remove the working directory (a recurring interface's every recurrence's)
    unless skip_cleanup."""
    props = ctx.instance.runtime_properties
    # a recurring interface's earlier recurrences first, the current one last
    workdirs = list(props.get(PAST_WORKDIRS) or []) + \
        ([props['workdir']] if props.get('workdir') else [])
    if not workdirs:
        return
    if props.get('simulated'):
        props.pop('workdir', None)
        props.pop(PAST_WORKDIRS, None)
        ctx.logger.info('%s: simulated: %s never created', ctx.node.id, ', '.join(workdirs))
        return
    if ctx.node.properties.get('skip_cleanup'):
        ctx.logger.info('%s: keeping %s (skip_cleanup)', ctx.node.id, ', '.join(workdirs))
        return
    settings = _interface_settings(edge.node_views(ctx), ctx.node, ctx.instance)
    transport = settings.make_transport()
    for workdir in workdirs:
        try:
            settings.remove_workdir(transport, workdir)
        except CroupierError as exc:
            raise edge.as_cloudify_error(exc, f"node '{ctx.node.id}': cannot remove "
                                              f"{workdir}") from None
        if workdir == props.get('workdir'):
            props.pop('workdir')
        else:
            props[PAST_WORKDIRS] = [w for w in props[PAST_WORKDIRS] if w != workdir]
        ctx.logger.info('%s: removed %s', ctx.node.id, workdir)
    props.pop(PAST_WORKDIRS, None)


@operation
@edge.cloudify_errors
def configure_job(ctx: CloudifyContext, recurrence: bool = False, **kwargs: Any) -> None:
    """Validate the job's options and its relationships, and run its bootstrap
    script in its interface's working directory.

    With ``recurrence`` (croupier_configure, for a job of a recurring_workflow
    interface): a new recurrence, so the job's record of the last run is dropped
    (run_jobs runs it again) and its bootstrap script runs again in the new
    working directory. At install, a job whose interfaces are all recurring has
    its bootstrap left to croupier_configure: there is no working directory yet."""
    plan, views = _check_deployment(ctx)
    job = plan.jobs[ctx.node.id]
    managers = [r for r in ctx.instance.relationships if edge.related(r, edge.MANAGED_BY)]
    ctx.instance.runtime_properties['labels'] = job.labels
    if recurrence:
        for key in JobRecord.property_names():
            ctx.instance.runtime_properties.pop(key, None)
        ctx.logger.info('%s: ready for a new recurrence', ctx.node.id)
    elif all(_recurring(rel.target.node) for rel in managers):
        ctx.logger.info('%s: its interface has recurring_workflow: croupier_configure '
                        'prepares it before each recurrence', ctx.node.id)
        return
    if job.deployment.get('bootstrap'):
        _run_deployment_script(ctx, 'bootstrap', job.deployment, views)


@operation
@edge.cloudify_errors
def revert_job(ctx: CloudifyContext, **kwargs: Any) -> None:
    """Run the job's revert script (application removal) at uninstall."""
    deployment = _deployment_options(ctx)
    if deployment.get('revert'):
        managers = [r for r in ctx.instance.relationships if edge.related(r, edge.MANAGED_BY)]
        if managers and all(_recurring(r.target.node) and
                            not r.target.instance.runtime_properties.get('workdir')
                            for r in managers):
            ctx.logger.info('%s: no recurrence was configured: nothing to revert', ctx.node.id)
            return
        _run_deployment_script(ctx, 'revert', deployment, edge.node_views(ctx))


def _deployment_options(ctx: CloudifyContext) -> dict:
    return edge.deployment_options(ctx.node.id, ctx.node.properties)


def _interfaces_of(ctx: CloudifyContext, views: dict[str, NodeView]
                   ) -> list[tuple[InfrastructureSettings, str | None]]:
    """[(settings, workdir)] of the interfaces the job may run on."""
    found = []
    for rel in ctx.instance.relationships:
        if edge.related(rel, edge.MANAGED_BY):
            target = views[rel.target.node.id]
            runtime = rel.target.instance.runtime_properties
            settings = edge.not_recoverable(blueprint.interface_settings)(
                target.id, target.properties, blueprint.vault_of(target, views),
                host=runtime.get(edge.CONTAINED_HOST))
            found.append((settings, runtime.get('workdir')))
    if not found:
        raise NonRecoverableError(f"node '{ctx.node.id}' has no {edge.MANAGED_BY} "
                                  f"relationship")
    return found


def _deployment_source(ctx: CloudifyContext) -> str:
    for rel in ctx.instance.relationships:
        if edge.related(rel, 'deployment_source'):
            props = rel.target.node.properties
            return str(props.get('endpoint') or props.get('resource') or rel.target.node.id)
    return ''


def _run_deployment_script(ctx: CloudifyContext, which: str, options: dict[str, Any],
                           views: dict[str, NodeView]) -> None:
    """Run the blueprint's bootstrap or revert script with the deployment inputs,
    on the HPC front-end in the working directory (hpc_execution: on every
    interface the job may be placed on) or here (once)."""
    local = ctx.download_resource(options[which])
    interfaces = _interfaces_of(ctx, views)
    if not options['hpc_execution']:
        interfaces = interfaces[:1]
    for settings, workdir in interfaces:
        _run_script_for(ctx, which, options, local, settings, workdir)


def _run_script_for(ctx: CloudifyContext, which: str, options: dict[str, Any], local: str,
                    settings: InfrastructureSettings, workdir: str | None) -> None:
    if not workdir:
        raise NonRecoverableError(f"node '{ctx.node.id}': its interface has no working "
                                  f"directory")
    env = {'CROUPIER_WORKDIR': workdir, 'CROUPIER_HOST': settings.ssh.host if settings.ssh
           else 'localhost', 'CROUPIER_USER': settings.ssh.user if settings.ssh else '',
           'CROUPIER_DEPLOYMENT_SOURCE': _deployment_source(ctx)}
    what = f"node '{ctx.node.id}': {which} script {options[which]!r}"
    if options['hpc_execution'] and settings.simulate:
        ctx.logger.info("%s: simulated: %s not run on interface '%s'", ctx.node.id, what,
                        settings.name)
        return
    if options['hpc_execution']:
        transport = settings.make_transport()
        remote = f'{workdir}/.croupier-{which}-{ctx.instance.id}.sh'
        try:
            transport.put(local, remote, mode=0o700)
            exports = ' '.join(f'{k}={shlex.quote(v)}' for k, v in env.items())
            args = ' '.join(shlex.quote(a) for a in options['inputs'])
            result = transport.run(f'cd {shlex.quote(workdir)} && {exports} bash '
                                   f'{shlex.quote(remote)} {args}')
            transport.run(f'rm -f -- {shlex.quote(remote)}')
        except CroupierError as exc:
            # never retried: the script may have run, in part or whole, before the
            # connection broke, and a script is not known to be safe to run twice
            raise NonRecoverableError(f'{what}: {exc}') from None
        code, out, err = result.exit_code, result.stdout, result.stderr
    else:
        with tempfile.TemporaryDirectory(prefix='croupier-deploy-') as cwd:
            proc = subprocess.run(['bash', local, *options['inputs']], cwd=cwd,
                                  capture_output=True, text=True,
                                  env=dict(os.environ, **env), stdin=subprocess.DEVNULL)
        code, out, err = proc.returncode, proc.stdout, proc.stderr
    if code != 0:
        raise NonRecoverableError(f'{what} failed with exit code {code}: '
                                  f'{err.strip()[-1000:]}')
    ctx.logger.info('%s: %s script ran (%s)', ctx.node.id, which,
                    'on the HPC' if options['hpc_execution'] else 'on the orchestrator')
    if out.strip():
        ctx.logger.info('%s', out.strip()[-2000:])


@operation
@edge.cloudify_errors
def configure_vault(ctx: CloudifyContext, **kwargs: Any) -> None:
    """Check the Vault node's properties (the interfaces log in when they need to)."""
    edge.vault_settings(ctx.node.id, ctx.node.properties)


@operation
@edge.cloudify_errors
def configure_exporter(ctx: CloudifyContext, **kwargs: Any) -> None:
    """Check the HPCExporter's address, and that the exporter answers and takes its token."""
    client = edge.exporter_client(ctx.node.id, ctx.node.properties)
    try:
        client.check()
    except CroupierError as exc:
        raise NonRecoverableError(f"node '{ctx.node.id}': {exc}") from None
    if ctx.node.properties.get('grafana_registry_address'):
        ctx.logger.info('%s: grafana_registry_address is not used (Grafana reads the '
                        'metrics from Prometheus)', ctx.node.id)
    ctx.logger.info('%s: exporter at %s answers', ctx.node.id, client.address)


@operation
@edge.cloudify_errors
def register_with_exporter(ctx: CloudifyContext, **kwargs: Any) -> None:
    """interface_monitored_by, established: the interface's front-end (scheduler,
    host, port, login user; no secret) registered with the exporter."""
    source = ctx.source
    settings = _interface_settings(edge.node_views(ctx), source.node, source.instance)
    if settings.simulate:
        # the exporter would log in to the cluster to follow it
        ctx.logger.info('%s: simulated: not registered with the exporter', source.node.id)
        return
    payload = edge.exporter_registration(settings)
    client = edge.exporter_client(ctx.target.node.id, ctx.target.node.properties)
    try:
        client.register(ctx.deployment.id, source.node.id, payload)
    except CroupierError as exc:
        raise NonRecoverableError(f"node '{source.node.id}': cannot register with exporter "
                                  f"'{ctx.target.node.id}': {exc}") from None
    ctx.logger.info('%s: registered with the exporter at %s (%s %s@%s:%s)', source.node.id,
                    client.address, payload['scheduler'], payload['user'], payload['host'],
                    payload['port'])


@operation
@edge.cloudify_errors
def unregister_from_exporter(ctx: CloudifyContext, **kwargs: Any) -> None:
    """interface_monitored_by, unlinked: the exporter forgets the interface and its
    jobs. An exporter that cannot be reached does not stop the uninstall."""
    client = edge.exporter_client(ctx.target.node.id, ctx.target.node.properties)
    try:
        client.unregister(ctx.deployment.id, ctx.source.node.id)
    except CroupierError as exc:
        ctx.logger.warning('%s: could not unregister from the exporter: %s',
                           ctx.source.node.id, exc)
        return
    ctx.logger.info('%s: unregistered from the exporter at %s', ctx.source.node.id,
                    client.address)


@operation
@edge.cloudify_errors
def configure_data_infrastructure(ctx: CloudifyContext, **kwargs: Any) -> None:
    """Check the data access infrastructure; with a Vault, read its credentials
    now so that a refused JWT or a missing secret fails the install."""
    views = edge.node_views(ctx)
    data_infrastructure = edge.data_infrastructure(views[ctx.node.id], views, fetch=True)
    login = data_infrastructure.ssh
    ctx.logger.info('%s: data at %s%s', ctx.node.id, data_infrastructure.endpoint,
                    f' (SSH as {login.user}@{login.host})' if login else '')


@operation
@edge.cloudify_errors
def configure_transfer(ctx: CloudifyContext, **kwargs: Any) -> None:
    """Refuse a transfer Croupier cannot run (a protocol it does not support,
    a source or target of the wrong kind) at install."""
    _check_deployment(ctx)


def _workspace_source(ctx: CloudifyContext) -> DataSource:
    """The HPCDataSource of this operation as a core DataSource, its
    infrastructure's credentials read (from Vault too)."""
    views = edge.node_views(ctx)
    view = views[ctx.node.id]
    located = view.targets(edge.LOCATED_AT)
    if len(located) != 1 or located[0] not in views or not views[located[0]].is_a(edge.DAI_TYPE):
        raise NonRecoverableError(f"node '{ctx.node.id}': a data source needs exactly one "
                                  f"{edge.LOCATED_AT} relationship to a {edge.DAI_TYPE} "
                                  f"(found {located})")
    data_infrastructure = edge.data_infrastructure(views[located[0]], views, fetch=True)
    try:
        return DataSource.from_properties(ctx.node.id, 'file', ctx.node.properties,
                                          data_infrastructure)
    except CroupierError as exc:
        raise NonRecoverableError(str(exc)) from None


@operation
@edge.cloudify_errors
def prepare_workspace(ctx: CloudifyContext, **kwargs: Any) -> None:
    """An HPCDataSource with a workspace: find it, or make it when ``create``
    (hpc-workspace tools, else a folder), before any job runs; its path, and
    whether this install made it, kept in runtime properties."""
    props = ctx.instance.runtime_properties
    if props.get('workspace_path'):
        ctx.logger.info('%s: workspace %s already prepared at %s', ctx.node.id,
                        props.get('workspace_name'), props['workspace_path'])
        return
    source = _workspace_source(ctx)
    if source.workspace is None:
        return
    try:
        state = prepare(source.data_infrastructure, source.workspace)
    except CroupierError as exc:
        # never retried: a workspace made before the connection broke would be found
        # by the retry and taken as one that existed before (kept at uninstall)
        raise NonRecoverableError(f"node '{ctx.node.id}': {exc}") from None
    props.update(state.to_properties())
    ctx.logger.info('%s: workspace %s %s at %s on %s (%s)', ctx.node.id, state.name,
                    'created' if state.created else 'found', state.path,
                    source.data_infrastructure.host, state.tool)


@operation
@edge.cloudify_errors
def release_workspace(ctx: CloudifyContext, **kwargs: Any) -> None:
    """Uninstall: give back the workspace install created (ws_release, or the
    folder removed); one that existed before is kept. A failure is logged and
    does not stop the uninstall."""
    props = ctx.instance.runtime_properties
    state = WorkspaceState.from_properties(props)
    if state is None:
        return
    if not state.created:
        ctx.logger.info('%s: workspace %s kept (it existed before this deployment)',
                        ctx.node.id, state.name)
        return
    try:
        source = _workspace_source(ctx)
        release(source.data_infrastructure, state)
    except (CroupierError, NonRecoverableError) as exc:
        ctx.logger.warning('%s: workspace %s at %s not released: %s', ctx.node.id, state.name,
                           state.path, exc)
        return
    for key in state.to_properties():
        props.pop(key, None)
    ctx.logger.info('%s: workspace %s released (%s)', ctx.node.id, state.name, state.tool)
