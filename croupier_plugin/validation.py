"""Check a parsed deployment before anything touches a cluster."""

from collections.abc import Iterable
from typing import Any, Optional

from cloudify.exceptions import NonRecoverableError

from . import edge
from .core.infrastructure import InfrastructureSettings
from .core.legacy import legacy_problems


def _types(node: Any) -> list[str]:
    return node.get('type_hierarchy') or [node.get('type')]


def node_view(node: Any) -> edge.NodeView:
    """A stored node (dict-like) as the data planning sees it."""
    return edge.NodeView(node.id, _types(node), node.properties,
                         [(rel.get('type_hierarchy') or [rel.get('type')], rel['target_id'])
                          for rel in node.get('relationships') or []])


def validate_plan(storage: Any) -> list[str]:
    """Every problem found in a local deployment's nodes."""
    return validate_nodes(storage.get_nodes())


def validate_nodes(node_list: Iterable[Any]) -> list[str]:
    """Every problem found in the deployment's nodes, as messages naming node,
    property and value. No remote side effect."""
    problems = []
    nodes = {n.id: n for n in node_list}
    interfaces, jobs = {}, {}
    # interfaces found invalid: their jobs are not blamed for it
    broken = set()
    # each Vault node is checked once: its error is its own, not its users'
    broken_vaults = set()
    for node_id, node in nodes.items():
        if edge.VAULT_TYPE in _types(node):
            try:
                edge.vault_settings(node_id, node.properties)
            except NonRecoverableError as exc:
                problems.append(str(exc))
                broken_vaults.add(node_id)
    for node_id, node in nodes.items():
        legacy = legacy_problems(node_id, _types(node), node.properties,
                                 [(rel.get('type_hierarchy') or [rel.get('type')],
                                   rel['target_id']) for rel in node.get('relationships') or []])
        if legacy:
            # the original's settings Croupier refuses: said once, not again as unknown
            problems.extend(legacy)
            broken.add(node_id)         # (its jobs are not blamed for it)
            continue
        if edge.INTERFACE_TYPE in _types(node):
            vaults = [rel['target_id'] for rel in node.get('relationships') or []
                      if edge.FROM_VAULT in (rel.get('type_hierarchy') or [rel.get('type')])]
            vault = None
            if vaults:
                target = nodes[vaults[0]]
                if edge.VAULT_TYPE not in _types(target):
                    problems.append(f"node '{node_id}': {edge.FROM_VAULT} target "
                                    f"'{vaults[0]}' is not a {edge.VAULT_TYPE}")
                    broken.add(node_id)
                    continue
                if target.id in broken_vaults:
                    broken.add(node_id)
                    continue
                vault = (target.id, target.properties)
            try:
                interfaces[node_id] = edge.interface_settings(
                    node_id, node.properties, vault, fetch=False,
                    host=_contained_host(node, nodes))
            except NonRecoverableError as exc:
                problems.append(str(exc))
                broken.add(node_id)
            problems.extend(_monitoring_problems(node_id, node, nodes, interfaces.get(node_id)))
        elif edge.EXPORTER_TYPE in _types(node):
            try:
                edge.exporter_client(node_id, node.properties)
            except NonRecoverableError as exc:
                problems.append(str(exc))
        elif edge.JOB_TYPE in _types(node):
            jobs[node_id] = node
            try:
                edge.job_options_check(node_id, node.properties, edge.job_kind(_types(node)))
                edge.publish_paths(node_id, node.properties)
                edge.job_labels(node_id, node.properties)
                edge.job_policy(node_id, node.properties)
                edge.deployment_options(node_id, node.properties)
            except NonRecoverableError as exc:
                problems.append(str(exc))
    for node_id, node in jobs.items():
        managers, parents = [], []
        for rel in node.get('relationships') or []:
            kinds = rel.get('type_hierarchy') or [rel.get('type')]
            if edge.MANAGED_BY in kinds:
                managers.append(rel['target_id'])
            elif edge.DEPENDS_ON in kinds:
                parents.append(rel['target_id'])
        if not managers:
            problems.append(f"node '{node_id}': a job needs a {edge.MANAGED_BY} "
                            f"relationship (several let Croupier place it)")
        for target in managers:
            if target in broken:
                continue                # the interface's own problem is reported
            if target not in interfaces:
                problems.append(f"node '{node_id}': {edge.MANAGED_BY} target '{target}' is "
                                f"not a croupier.nodes.InfrastructureInterface")
            elif target in interfaces:
                pycompss_job = edge.job_kind(_types(node)) == 'pycompss'
                if pycompss_job != (interfaces[target].scheduler == 'PYCOMPSS'):
                    problems.append(f"node '{node_id}': cannot run on interface '{target}' "
                                    f"({interfaces[target].scheduler}): PyCOMPSsJobs go to "
                                    f"PYCOMPSS interfaces, other jobs to the others")
                elif not any(p.startswith(f"node '{node_id}'") for p in problems):
                    try:
                        edge.job_spec(node_id, node_id, node.properties, interfaces[target],
                                      edge.job_kind(_types(node)))
                    except NonRecoverableError as exc:
                        problems.append(str(exc))
        for target in parents:
            if target not in jobs:
                problems.append(f"node '{node_id}': {edge.DEPENDS_ON} target '{target}' is "
                                f"not a croupier.nodes.Job")
    views = {node_id: node_view(node) for node_id, node in nodes.items()}
    problems += edge.build_dataflow(views, fetch=False).problems
    # a Vault shared with data infrastructures reports its error there too: once is enough
    return list(dict.fromkeys(problems))


def _contained_host(node: Any, nodes: dict) -> Optional[str]:
    """The front-end's address an interface without credentials.host takes from its
    interface_contained_in target: the target's ip property, or, when the target
    gets its ip only at install (a machine a cloud plugin creates), a stand-in for
    the checks. None when the interface is contained in nothing."""
    for rel in node.get('relationships') or []:
        if edge.CONTAINED_IN in (rel.get('type_hierarchy') or [rel.get('type')]):
            target = nodes[rel['target_id']]
            return (target.properties or {}).get('ip') or 'ip-given-at-install'
    return None


def _monitoring_problems(node_id: str, node: Any, nodes: dict[str, Any],
                         settings: InfrastructureSettings | None) -> list[str]:
    """An interface's interface_monitored_by: to an HPCExporter, over ssh."""
    problems = []
    for rel in node.get('relationships') or []:
        if edge.MONITORED_BY not in (rel.get('type_hierarchy') or [rel.get('type')]):
            continue
        target = nodes[rel['target_id']]
        if edge.EXPORTER_TYPE not in _types(target):
            problems.append(f"node '{node_id}': {edge.MONITORED_BY} target "
                            f"'{rel['target_id']}' is not a {edge.EXPORTER_TYPE}")
        elif settings is not None:
            try:
                edge.exporter_registration(settings)
            except NonRecoverableError as exc:
                problems.append(str(exc))
    return problems
