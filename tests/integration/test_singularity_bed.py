"""A SingularityJob on the bed's SLURM under srun, with the stand-in runtime
(tests/bed/stand-ins/singularity) installed in the test user's ~/bin."""

import os
import time

import pytest

from croupier_plugin.core.model import JobSpec, JobState
from croupier_plugin.core.monitor import Monitor

pytestmark = pytest.mark.bed

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_singularity_job_under_srun(slurm, workdir, bed):
    with open(os.path.join(ROOT, 'tests', 'bed', 'stand-ins', 'singularity')) as fh:
        slurm.transport.makedirs(f"{bed['home']}/bin")
        slurm.transport.write_file(f"{bed['home']}/bin/singularity", fh.read(), mode=0o755)
    spec = JobSpec.from_options('ctr', {
        'image': 'tools.sif', 'launcher': 'srun', 'volumes': ['/tmp:/scratch'],
        'pre': ['export PATH="$HOME/bin:$PATH"'],
        'commands': ['echo "image=$SINGULARITY_IMAGE binds=$SINGULARITY_BINDS '
                     'step=${SLURM_STEP_ID:-none}"']}, container=True)
    sub = slurm.submit(spec, workdir)
    monitor = Monitor(unknown_grace=30)
    job = monitor.track(slurm, sub.job_id, 'ctr')
    deadline = time.monotonic() + 60
    while not (job.status and job.status.terminal):
        assert time.monotonic() < deadline
        monitor.poll(force=True)
        time.sleep(0.3)
    assert job.status.state is JobState.COMPLETED, slurm.tail(sub.stderr)
    # srun ran it as a job step (step 0), inside the "image"
    assert slurm.transport.read_file(sub.stdout).decode() == \
        'image=tools.sif binds=/tmp:/scratch step=0\n'
