"""Property-based: hostile job names, arguments, env values and module names reach
the job as literal strings, and nothing else runs. The rendered scripts run for real
in bash (SLURM's rendering: the #SBATCH lines are comments to bash)."""

import os
import subprocess
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from croupier_plugin.core.model import JobSpec
from croupier_plugin.core.schedulers import SlurmScheduler

PAYLOADS = ['"', "'", '$(touch pwned)', '`touch pwned`', ';', '&&', '||', '|', '\n', '*',
            '?', '[a]', '~', '$HOME', '${PATH}', '\\', '#', '!', '>', '<', ' ', '\t',
            'é', '日本', '\u202e', '%j', '$((1+1))']
hostile = st.lists(st.one_of(st.sampled_from(PAYLOADS),
                             st.text(alphabet=st.characters(blacklist_characters='\x00',
                                                            blacklist_categories=('Cs',)),
                                     max_size=8)),
                   min_size=1, max_size=6).map(''.join)

SHOW = ('for a in "$@"; do printf "[%s]" "$a"; done; printf "\\n"\n'
        'printf "{%s}{%s}\\n" "$CROUPIER_JOB_NAME" "$HOSTILE"\n')
FAKE_MODULE = 'module() { for a in "$@"; do printf "<%s>" "$a"; done >> modules.log; }\n'


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=hostile.filter(lambda s: s.strip()), args=st.lists(hostile, min_size=1, max_size=3), value=hostile,
       module=hostile)
def test_hostile_values_arrive_literally(tmp_path, name, args, value, module):
    work = tmp_path.__class__(tempfile.mkdtemp(dir=tmp_path))
    (work / 'show.sh').write_text(SHOW)
    (work / 'fake_module.sh').write_text(FAKE_MODULE)
    spec = JobSpec.from_options(name, {'script': 'show.sh', 'arguments': args,
                                       'env': {'HOSTILE': value}})
    spec.modules = [module]
    script = SlurmScheduler().render_script(spec).replace('#!/bin/bash -l', '#!/bin/bash')
    (work / 'job.sh').write_text(script)
    env = dict(os.environ, BASH_ENV=str(work / 'fake_module.sh'))
    result = subprocess.run(['bash', 'job.sh'], cwd=work, capture_output=True, env=env)
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode('utf-8', 'surrogateescape')
    expected = ''.join(f'[{a}]' for a in args) + '\n' + f'{{{name}}}{{{value}}}\n'
    assert out == expected
    words = module.split()
    if words and words[0] == 'module':       # a whole module command, word by word
        logged = ''.join(f'<{w}>' for w in words[1:])
    else:
        logged = f'<load><{module}>'
    # read as written: read_text() would turn a '\r' in a module name into '\n'
    assert (work / 'modules.log').read_bytes().decode('utf-8', 'surrogateescape') == logged
    assert sorted(os.listdir(work)) == ['fake_module.sh', 'job.sh', 'modules.log', 'show.sh']
