"""Cloudify's side of the planning: the deployment's nodes as core NodeViews (from a
workflow's ctx, an operation's ctx or the local storage), the core's errors as
Cloudify's, and the core's planning helpers raising Cloudify's errors. The planning
itself is in core/blueprint.py. The only place besides operations.py and
workflows.py that knows Cloudify's names."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from cloudify.exceptions import NonRecoverableError, RecoverableError
from cloudify.state import NotInContext, current_workflow_ctx

from .core import blueprint, site
from .core.blueprint import (CKAN_DATASET_TYPE, CKAN_RESOURCE_TYPE,  # noqa: F401
                             CONTAINED_HOST, CONTAINED_IN, DAI_TYPE, DEPENDS_ON,
                             DEPLOYMENT_KEYS, EXPORTER_TYPE, FILE_SOURCE_TYPE, FROM_SOURCE,
                             FROM_VAULT, INPUT, INTERFACE_TYPE, JOB_TYPE, LOCATED_AT,
                             MANAGED_BY, MAX_RETRIES, MONITORED_BY, OUTPUT, PYCOMPSS_TYPE,
                             ROOT_PROPERTIES, SINGULARITY_TYPE, TO_TARGET, TRANSFER_TYPE,
                             VAULT_TYPE, WEB_SOURCE_TYPE, Dataflow, DeploymentPlan,
                             NodeView, assign_workdirs, job_kind, own_properties,
                             plan_deployment, wire_transfers, with_site_known_hosts)
from .core.data import DataInfrastructure, Publication
from .core.errors import CommandInterrupted, CroupierError, TransportError
from .core.exporter import ExporterClient, registration_payload
from .core.infrastructure import InfrastructureSettings
from .core.transport import Transport
from .core.vault import VaultSettings

if TYPE_CHECKING:
    from cloudify.context import CloudifyContext

P = ParamSpec('P')
R = TypeVar('R')

# the relationship types planning asks about: a workflow's relationship tells whether
# it derives from a type, not its whole hierarchy
RELATIONSHIP_TYPES = (MANAGED_BY, DEPENDS_ON, FROM_VAULT, MONITORED_BY, CONTAINED_IN,
                      LOCATED_AT, FROM_SOURCE, TO_TARGET, INPUT, OUTPUT, 'deployment_source')


# -- errors -----------------------------------------------------------------------

def as_cloudify_error(exc: Exception, what: str = '') -> Exception:
    """A core error as the error Cloudify should see, its message ``what: exc`` (or the
    core's message alone without ``what``). Transport trouble is recoverable (the
    transport already retried with backoff for reconnect_timeout seconds, yet the
    server may be back soon, and a manager's task_retries may try again); except
    a command interrupted midway, whose effect is unknown, and everything else
    (bad configuration, host key, credentials) which no retry mends."""
    if not isinstance(exc, CroupierError):
        return exc
    message = f'{what}: {exc}' if what else str(exc)
    if isinstance(exc, TransportError) and not isinstance(exc, CommandInterrupted):
        return RecoverableError(message)
    return NonRecoverableError(message)


def cloudify_errors(func: Callable[P, R]) -> Callable[P, R]:
    """An operation or workflow whose escaping core errors become Cloudify's (see
    as_cloudify_error), their messages unchanged."""
    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except CroupierError as exc:
            raise as_cloudify_error(exc) from None
    return wrapper


def not_recoverable(func: Callable[P, R]) -> Callable[P, R]:
    """``func`` raising NonRecoverableError, with the message unchanged, for any core
    error (the checks of the blueprint, whose failures no retry mends)."""
    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except CroupierError as exc:
            raise NonRecoverableError(str(exc)) from None
    return wrapper


# -- the deployment's nodes as views ------------------------------------------------

def _stored_view(node: Any) -> NodeView:
    """A stored node (the local storage's or the REST API's, dict-like) as a view."""
    return NodeView(node.get('id'), node.get('type_hierarchy') or [node.get('type')],
                    node.get('properties') or {},
                    [(rel.get('type_hierarchy') or [rel.get('type')], rel['target_id'])
                     for rel in node.get('relationships') or []])


def _derives(relationship: Any, rel_type: str) -> bool:
    """Whether a workflow's node relationship is of ``rel_type`` or derives from it."""
    try:
        return relationship.type == rel_type or bool(relationship.is_derived_from(rel_type))
    except KeyError:                # a relationship stored without its type hierarchy
        return False


def _workflow_view(node: Any, runtime: bool = True) -> NodeView:
    """A workflow's node as a view; with ``runtime``, with its instances' runtime
    properties (an operation plans from the nodes as written, without them)."""
    return NodeView(node.id, getattr(node, 'type_hierarchy', None) or [node.type],
                    node.properties,
                    [([t for t in RELATIONSHIP_TYPES if _derives(rel, t)] + [rel.type],
                      rel.target_id) for rel in node.relationships],
                    {i.id: i.runtime_properties for i in node.instances} if runtime else {})


def _operation_views(ctx: CloudifyContext) -> dict[str, NodeView]:
    """Every node of an operation's deployment as a view, as written: on the local
    engine from the workflow that runs the operation (the engine runs local
    operations in the workflow's process, its context set for them), on a manager
    from the REST API."""
    try:
        workflow = current_workflow_ctx.get_ctx()
    except NotInContext:
        workflow = None
    if workflow is not None and workflow.local:
        return {node.id: _workflow_view(node, runtime=False) for node in workflow.nodes}
    from cloudify.manager import get_rest_client
    stored = get_rest_client().nodes.list(deployment_id=ctx.deployment.id)
    return {view.id: view for view in map(_stored_view, stored)}


def node_views(source: Any) -> dict[str, NodeView]:
    """Every node of a deployment as a view, by node id. ``source``: a workflow's ctx
    (its nodes and their instances' runtime properties), an operation's ctx (the
    deployment's nodes as written, see _operation_views), the local storage, or
    stored nodes."""
    if hasattr(source, 'refresh_node_instances'):       # a workflow's ctx
        return {node.id: _workflow_view(node) for node in source.nodes}
    if hasattr(source, 'deployment') and hasattr(source, 'operation'):
        return _operation_views(source)                 # an operation's ctx
    if hasattr(source, 'get_nodes'):                    # the local storage
        nodes: Iterable[Any] = source.get_nodes()
    else:
        nodes = source
    views = (_stored_view(node) for node in nodes)
    return {view.id: view for view in views}


def is_type(node: Any, type_name: str) -> bool:
    """Whether the Cloudify node (or node instance's node) is of ``type_name`` or derives
    from it."""
    return type_name in (getattr(node, 'type_hierarchy', None) or [node.type])


def related(rel: Any, rel_type: str) -> bool:
    """Whether an operation's or a workflow's relationship is of ``rel_type`` or
    derives from it."""
    if hasattr(rel, 'type_hierarchy'):
        return rel_type in (rel.type_hierarchy or [rel.type])
    return _derives(rel.relationship, rel_type)


# -- the core's planning helpers, raising Cloudify's errors --------------------------
# (each says what its core function does; NonRecoverableError where that raises)

def vault_settings(node_id: str, properties: dict[str, Any]) -> VaultSettings:
    """A Vault node's settings; NonRecoverableError naming node, property and value."""
    return not_recoverable(blueprint.vault_settings)(node_id, properties)


def exporter_client(node_id: str, properties: dict[str, Any]) -> ExporterClient:
    """The client of an HPCExporter node (the site's address when it gives none)."""
    return not_recoverable(blueprint.exporter_client)(node_id, properties)


def exporter_registration(settings: InfrastructureSettings) -> dict[str, Any]:
    """What the exporter is told about an interface (no secret)."""
    return not_recoverable(registration_payload)(settings)


def contained_host(node_id: str, target_id: str, target_properties: dict,
                   target_runtime: dict | None = None) -> str:
    """The front-end's address an interface takes from its interface_contained_in target."""
    return not_recoverable(blueprint.contained_host)(node_id, target_id, target_properties,
                                                     target_runtime)


def interface_settings(node_id: str, properties: dict,
                       vault: tuple[str, dict[str, Any]] | None = None, fetch: bool = True,
                       host: str | None = None) -> InfrastructureSettings:
    """The interface's settings; with ``vault`` (node id, Vault properties) its
    credentials completed from Vault (see blueprint.interface_settings)."""
    view = None if vault is None else NodeView(vault[0], [VAULT_TYPE], vault[1], [])
    return not_recoverable(blueprint.interface_settings)(node_id, properties, view,
                                                         fetch=fetch, host=host)


def deployment_options(node_id: str, properties: dict) -> dict:
    """A job's ``deployment`` property, checked."""
    return not_recoverable(blueprint.deployment_options)(node_id, properties)


def data_infrastructure(view: NodeView, views: Mapping[str, NodeView],
                        fetch: bool = True) -> DataInfrastructure:
    """The data infrastructure of a DataAccessInfrastructure node, its credentials
    completed from Vault."""
    return not_recoverable(blueprint.data_infrastructure)(view, views, fetch)


def publication(job_name: str, paths: list[str], results_dir: str,
                locate: Callable[[], tuple[Transport, str]]) -> Publication:
    """Copies ``paths`` of the job into results_dir/<job>; ``locate()`` gives the
    (transport, working directory) the job ran with."""
    return Publication(job_name, locate, paths, os.path.join(results_dir, job_name))


# -- planning, once per deployment per process ------------------------------------

# (the nodes as written, the site configuration) -> their plan without secrets, when
# it has no problem; the latest few
KEPT_PLANS = 8
_plans: dict[tuple[str, str], DeploymentPlan] = {}


def checked_plan(views: Mapping[str, NodeView]) -> DeploymentPlan:
    """The plan without secrets of the deployment whose nodes are ``views``, made once
    per process for the same nodes under the same site configuration (``croupier
    install`` validates, then runs the operations of all the nodes in its process:
    each would otherwise plan the whole deployment again). A plan with problems is
    made afresh each time, so a mended key file or site is seen at once."""
    try:
        site_now = repr(sorted(site.load().values.items()))
    except CroupierError:
        return plan_deployment(views)       # the plan reports the site's own error
    key = (repr(sorted(views.items())), site_now)
    plan = _plans.get(key)
    if plan is None:
        plan = plan_deployment(views)
        if plan.problems:
            return plan
        if len(_plans) >= KEPT_PLANS:
            # (a manager's worker lives long and serves many deployments)
            del _plans[next(iter(_plans))]
        _plans[key] = plan
    return plan


def valid_plan(views: Mapping[str, NodeView]) -> DeploymentPlan:
    """checked_plan(views); NonRecoverableError listing every problem when it has any."""
    plan = checked_plan(views)
    if plan.problems:
        raise NonRecoverableError('the deployment is not valid:\n' + '\n'.join(plan.problems))
    return plan
