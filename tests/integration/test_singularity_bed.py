"""A SingularityJob on the bed's SLURM under srun, with the stand-in runtime
(tests/bed/stand-ins/singularity) installed in the test user's ~/bin."""

import pytest

from croupier_plugin.core.model import JobSpec, JobState

pytestmark = pytest.mark.bed



def test_singularity_job_under_srun(slurm, workdir, install_stand_in, follow):
    install_stand_in('singularity')
    spec = JobSpec.from_options('ctr', {
        'image': 'tools.sif', 'launcher': 'srun', 'volumes': ['/tmp:/scratch'],
        'pre': ['export PATH="$HOME/bin:$PATH"'],
        'commands': ['echo "image=$SINGULARITY_IMAGE binds=$SINGULARITY_BINDS '
                     'step=${SLURM_STEP_ID:-none}"']}, container=True)
    sub = slurm.submit(spec, workdir)
    statuses, _, _ = follow(slurm, [sub.job_id])
    assert statuses[sub.job_id].state is JobState.COMPLETED, slurm.tail(sub.stderr)
    # srun ran it as a job step (step 0), inside the "image"
    assert slurm.transport.read_file(sub.stdout).decode() == \
        'image=tools.sif binds=/tmp:/scratch step=0\n'
