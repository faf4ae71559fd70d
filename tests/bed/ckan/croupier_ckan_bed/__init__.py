"""A CKAN plugin for Croupier's test bed only: CKAN without a Solr server.

CKAN indexes every dataset in Solr as part of the database transaction that
writes it (its system plugin ``synchronous_search``), so without Solr every
``package_create`` fails with a "Search Index Error", and no setting turns that
indexing off. Solr is neither in Debian 12 nor on PyPI, so the bed cannot run
one. This plugin points CKAN's dataset index at CKAN's own no-op index class:
datasets and resources are then kept in PostgreSQL only, and ``package_show``
and ``resource_show`` read them from there (CKAN falls back to the database when
its search index has no copy). Dataset search (``package_search``) does not
work; Croupier does not use it.
"""

from __future__ import annotations

from typing import Any

import ckan.plugins as plugins
from ckan.lib import search
from ckan.lib.search.index import NoopSearchIndex


class NoSolrPlugin(plugins.SingletonPlugin):
    """Replaces CKAN's dataset search index with its no-op index at start-up."""

    plugins.implements(plugins.IConfigurer)

    def update_config(self, config: Any) -> None:
        """Swap the index class before CKAN serves a request (the config is unused)."""
        # CKAN looks the index class up in this table on every write
        search._INDICES['package'] = NoopSearchIndex  # type: ignore[assignment]
