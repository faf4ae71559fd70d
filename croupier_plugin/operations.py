"""Lifecycle operations: read ctx, build core objects, call the core."""

from cloudify import ctx as _ctx  # noqa: F401  (ctx is passed in by the decorator)
from cloudify.decorators import operation
from cloudify.exceptions import NonRecoverableError

from . import edge
from .core.errors import CroupierError
from .validation import validate_nodes


def _deployment_nodes(ctx):
    """Every node of the deployment: from the local engine's storage, or from
    the manager's REST API."""
    storage = getattr(ctx._endpoint, 'storage', None)
    if storage is not None:
        return storage.get_nodes()
    from cloudify.manager import get_rest_client
    return list(get_rest_client().nodes.list(deployment_id=ctx.deployment.id))


def _vault_of(ctx):
    """(node id, properties) of the Vault the interface takes its credentials from."""
    for rel in ctx.instance.relationships:
        if edge.FROM_VAULT in (rel.type_hierarchy or [rel.type]):
            return rel.target.node.id, rel.target.node.properties
    return None


def _check_deployment(ctx):
    """Refuse a deployment with any bad interface or job before touching a host."""
    problems = validate_nodes(_deployment_nodes(ctx))
    if problems:
        raise NonRecoverableError('the deployment is not valid:\n' + '\n'.join(problems))


@operation
def configure_interface(ctx, **kwargs):
    """Log in to the front-end and create the deployment's working directory,
    once every interface and job of the deployment was found valid."""
    _check_deployment(ctx)
    settings = edge.interface_settings(ctx.node.id, ctx.node.properties, _vault_of(ctx))
    props = ctx.instance.runtime_properties
    if props.get('workdir'):
        ctx.logger.info('%s: working directory %s already exists', ctx.node.id, props['workdir'])
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
def cleanup_interface(ctx, **kwargs):
    """Remove the working directory unless skip_cleanup."""
    props = ctx.instance.runtime_properties
    workdir = props.get('workdir')
    if not workdir:
        return
    if ctx.node.properties.get('skip_cleanup'):
        ctx.logger.info('%s: keeping %s (skip_cleanup)', ctx.node.id, workdir)
        return
    settings = edge.interface_settings(ctx.node.id, ctx.node.properties, _vault_of(ctx))
    try:
        settings.remove_workdir(settings.make_transport(), workdir)
    except CroupierError as exc:
        raise edge.as_cloudify_error(exc, f"node '{ctx.node.id}': cannot remove {workdir}") \
            from None
    props.pop('workdir', None)
    ctx.logger.info('%s: removed %s', ctx.node.id, workdir)


@operation
def configure_job(ctx, **kwargs):
    """Validate the job's options and its relationships."""
    edge.job_options_check(ctx.node.id, ctx.node.properties)
    managers = [r for r in ctx.instance.relationships
                if edge.MANAGED_BY in (r.type_hierarchy or [r.type])]
    if len(managers) != 1:
        raise NonRecoverableError(
            f"node '{ctx.node.id}': a job needs exactly one {edge.MANAGED_BY} relationship "
            f"(found {len(managers)})")


@operation
def configure_vault(ctx, **kwargs):
    """Check the Vault node's properties (the interfaces log in when they need to)."""
    edge.vault_settings(ctx.node.id, ctx.node.properties)
