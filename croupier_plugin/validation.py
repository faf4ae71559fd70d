"""Check a parsed deployment before anything touches a cluster."""

from collections.abc import Iterable
from typing import Any

from .edge import checked_plan, node_views


def validate_plan(storage: Any) -> list[str]:
    """Every problem found in a local deployment's nodes."""
    return validate_nodes(storage.get_nodes())


def validate_nodes(node_list: Iterable[Any]) -> list[str]:
    """Every problem found in the deployment's stored nodes, as messages naming
    node, property and value. No remote side effect: Vault is not asked."""
    return checked_plan(node_views(list(node_list))).problems
