"""CKAN in a workflow, on the embedded engine and the bed's real CKAN: a job's input
fetched from a CKAN resource before it is submitted, and its result published as a
resource of a dataset (created from dataset_info) after it completed."""

import io
import os
import uuid

import ckanapi
import pytest
import requests

from croupier_plugin import runner

pytestmark = pytest.mark.bed

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BLUEPRINT = os.path.join(ROOT, 'tests', 'blueprints', 'dataflow-ckan.yaml')


def test_input_fetched_from_ckan_and_result_published_to_it(bed, ckan_bed, tmp_path, caplog):
    admin = ckanapi.RemoteCKAN(ckan_bed.url, apikey=ckan_bed.token)
    tag = uuid.uuid4().hex[:8]
    source = admin.action.package_create(name=f'numbers-{tag}')
    numbers = io.BytesIO(''.join(f'{i}\n' for i in range(1, 11)).encode())
    admin.call_action('resource_create', {'package_id': source['id'], 'name': 'numbers.txt'},
                      files={'upload': ('numbers.txt', numbers)})
    inputs = dict(hpc_host=bed['host'], hpc_port=bed['port'], hpc_user=bed['user'],
                  hpc_private_key_file=bed['keys']['ed25519'],
                  hpc_known_hosts=bed['known_hosts'], ckan_url=ckan_bed.url,
                  ckan_token=ckan_bed.token, input_dataset=f'numbers-{tag}',
                  output_dataset=f'sums-{tag}')
    env = runner.init_env(BLUEPRINT, inputs, name=f'ckan{tag}')
    runner.execute(env, 'install')
    try:
        summary = runner.execute(env, 'run_jobs', {'results_dir': str(tmp_path / 'results')})
        assert [row['state'] for row in summary] == ['COMPLETED']
        job = {i.node_id: i for i in env.storage.get_node_instances()}['sum']
        assert job.runtime_properties['outputs'] == 'DONE'
    finally:
        runner.execute(env, 'uninstall')
    published = admin.action.package_show(id=f'sums-{tag}')
    assert (published['title'], published['private']) == ('Sums computed by Croupier', False)
    [record] = published['resources']
    assert (record['name'], record['format']) == ('sum.txt', 'TXT')
    # a public dataset: read without the token
    assert requests.get(record['url'], timeout=30).text == '55\n'
    # the transfers were logged, and the token reached no log line
    assert 'sum.txt' in caplog.text and 'numbers.txt' in caplog.text
    assert ckan_bed.token not in caplog.text
