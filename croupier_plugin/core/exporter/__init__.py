"""The Prometheus exporter run by ``croupier exporter``: registrations of
deployments' interfaces and jobs, metrics gathered with one batched scheduler
command per front-end and scrape, and the client the plugin registers with."""

from .client import (ExporterClient, ExporterError, JobRegistrar, client_from_properties,
                     exporter_address, registration_payload)
from .config import ExporterConfig
from .server import ExporterService

__all__ = ['ExporterClient', 'ExporterError', 'ExporterConfig', 'ExporterService', 'JobRegistrar',
           'client_from_properties', 'exporter_address', 'registration_payload']
