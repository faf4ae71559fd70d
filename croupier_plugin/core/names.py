"""The names of Croupier's node and relationship types, and the runtime properties
planning reads, as plugin.yaml declares them: defined here once."""

INTERFACE_TYPE = 'croupier.nodes.InfrastructureInterface'
JOB_TYPE = 'croupier.nodes.Job'
SINGULARITY_TYPE = 'croupier.nodes.SingularityJob'
PYCOMPSS_TYPE = 'croupier.nodes.PyCOMPSsJob'
VAULT_TYPE = 'croupier.nodes.Vault'
EXPORTER_TYPE = 'croupier.nodes.HPCExporter'
MANAGED_BY = 'task_managed_by_interface'
DEPENDS_ON = 'job_depends_on'
FROM_VAULT = 'retrieve_credentials_from_vault'
MONITORED_BY = 'interface_monitored_by'
CONTAINED_IN = 'interface_contained_in'
# runtime property of an interface instance: the front-end's address taken at
# configure from its interface_contained_in target (the Compute node's ip)
CONTAINED_HOST = 'contained_host'
DAI_TYPE = 'croupier.nodes.DataAccessInfrastructure'
FILE_SOURCE_TYPE = 'croupier.nodes.FileDataSource'
WEB_SOURCE_TYPE = 'croupier.nodes.WebDataSource'
CKAN_DATASET_TYPE = 'croupier.nodes.CKAN_dataset'
CKAN_RESOURCE_TYPE = 'croupier.nodes.CKAN_resource'
TRANSFER_TYPE = 'croupier.nodes.DataTransfer'
LOCATED_AT = 'ds_located_at'
FROM_SOURCE = 'from_source'
TO_TARGET = 'to_target'
INPUT = 'input'
OUTPUT = 'output'
ECMWF_TYPE = 'croupier.nodes.ECMWFVerticalInterpolation'
