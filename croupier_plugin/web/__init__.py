"""Croupier Web: the consumer's portal and REST API over the named deployments.

`croupier serve` runs it (``serve.run``); the pages and the API are in ``app``, the
catalogue of applications and the view of the named deployments in ``service``, and
the detached processes that install, execute and uninstall in ``worker``.
"""
