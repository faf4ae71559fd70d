#!/usr/bin/env bash
# Record real SLURM command outputs from the running test bed into
# tests/fixtures/slurm/ (parser fixtures). Takes about 2-3 minutes.
# Every command runs as the bed user over ssh, as the plugin would.
# Usage: bash tests/bed/record-slurm-fixtures.sh [OUT_DIR]
set -euo pipefail

STATE="${CROUPIER_BED_DIR:-/var/lib/croupier-bed}"
PORT="${CROUPIER_BED_SSH_PORT:-2222}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${1:-${HERE}/../fixtures/slurm}"
mkdir -p "${OUT}"
OUT="$(cd "${OUT}" && pwd)"
CMDLOG="${OUT}/commands.tsv"
: > "${CMDLOG}"

SQ_FMT='JobID:|,State:|,Reason:|,exit_code:|,TimeUsed:|,SubmitTime:|,StartTime:|,EndTime:'
SQ_FMT_ARRAY='JobID:|,ArrayJobID:|,ArrayTaskID:|,State:|,Reason:|,exit_code:|,TimeUsed:|,SubmitTime:|,StartTime:|,EndTime:'
SQ_FMT_O='%i|%T|%r|%M|%V|%S|%e'
SA_FMT='JobID,JobName,State,ExitCode,Reason,Elapsed,Submit,Start,End'

say() { echo "rec[$(date +%T)]: $*"; }

rsh() {
    ssh -i "${STATE}/keys/id_ed25519" -o UserKnownHostsFile="${STATE}/known_hosts" \
        -o StrictHostKeyChecking=yes -o BatchMode=yes -p "${PORT}" crtest@127.0.0.1 "$1"
}

# rec NAME REMOTE_CMD: stdout -> NAME.txt, stderr -> NAME.stderr.txt (if any),
# exit code and command line appended to commands.tsv
rec() {
    local name="$1" cmd="$2" rc=0
    rsh "${cmd}" > "${OUT}/${name}.txt" 2> "${OUT}/${name}.stderr.txt" || rc=$?
    [ -s "${OUT}/${name}.stderr.txt" ] || rm -f "${OUT}/${name}.stderr.txt"
    printf '%s\t%s\trc=%s\t%s\n' "$(date -u +%FT%TZ)" "${name}" "${rc}" "${cmd}" >> "${CMDLOG}"
    say "${name}: rc=${rc}"
}

state_of() { rsh "squeue -h --states=all -j $1 -o %T" 2>/dev/null | head -n 1; }

# wait_state JOB REGEX TIMEOUT_S
wait_state() {
    local j="$1" re="$2" t="$3" start="${SECONDS}" st
    while (( SECONDS - start < t )); do
        st="$(state_of "${j}" || true)"
        if [[ "${st}" =~ ${re} ]]; then return 0; fi
        sleep 1
    done
    echo "job ${j} did not reach ${re} within ${t} s (last: ${st:-none})" >&2
    return 1
}

sub() { rsh "cd ~/fx && sbatch --parsable $1"; }

rsh 'mkdir -p ~/fx'
say "submitting"
T=$(sub '-J fx_timeout --time=1 --wrap "sleep 200"')
R=$(sub '-J fx_running --wrap "sleep 30"')
PB=$(sub '-J fx_pending_begin --begin=now+1hour --wrap "true"')
PD=$(sub "-J fx_pending_dep --dependency=afterok:${R} --wrap true")
H=$(sub '-J fx_held --hold --wrap "true"')
# shellcheck disable=SC2016  # $SLURM_ARRAY_TASK_ID must expand in the job
A=$(sub '-J fx_array --array=0-2 --wrap "sleep 15; exit \$SLURM_ARRAY_TASK_ID"')
wait_state "${R}" '^RUNNING$' 30
C=$(sub '-J fx_completed --wrap "echo ok"')
F=$(sub '-J fx_failed --wrap "echo failing; exit 3"')
X=$(sub '-J fx_cancelled --wrap "sleep 300"')
wait_state "${X}" '^RUNNING$' 30
rsh "scancel ${X}"
wait_state "${C}" '^COMPLETED$' 30
wait_state "${F}" '^FAILED$' 30
wait_state "${X}" '^CANCELLED$' 30
ALL="${T},${R},${PB},${PD},${H},${A},${C},${F},${X}"
JOBIDS="T=${T} R=${R} PB=${PB} PD=${PD} H=${H} A=${A} C=${C} F=${F} X=${X}"
printf '# %s  slurm %s  jobs: %s\n' "$(date -u +%FT%TZ)" "$(rsh 'sinfo --version')" "${JOBIDS}" >> "${CMDLOG}"
say "jobs: ${JOBIDS}"

rec squeue_mixed "squeue --noheader --states=all --jobs=${ALL} -O '${SQ_FMT}'"
rec squeue_mixed_array "squeue --noheader --states=all --jobs=${ALL} -O '${SQ_FMT_ARRAY}'"
rec squeue_mixed_o "squeue --noheader --states=all --jobs=${ALL} -o '${SQ_FMT_O}'"
rec squeue_bad_field "squeue --noheader --states=all --jobs=${F} -O 'JobID:|,State:|,ExitCode:|,Reason:'"
rec sacct_mixed "sacct --noheader --parsable2 --allocations --jobs=${ALL} --format=${SA_FMT}"
rec scontrol_show_job_failed "scontrol show job ${F}"
rec scancel_finished "scancel ${F}"
rec scancel_finished_v "scancel -v ${F}"
rec sbatch_plain 'cd ~/fx && sbatch -J fx_plain --wrap "true"'
rec sbatch_parsable 'cd ~/fx && sbatch --parsable -J fx_parsable --wrap "true"'
rec sbatch_bad_partition 'cd ~/fx && sbatch --parsable -p nosuchpart --wrap "true"'

say "waiting for the timeout job ${T}"
wait_state "${T}" '^TIMEOUT$' 180
rec squeue_after "squeue --noheader --states=all --jobs=${ALL} -O '${SQ_FMT}'"
rec sacct_after "sacct --noheader --parsable2 --allocations --jobs=${ALL} --format=${SA_FMT}"
rec sacct_after_steps "sacct --noheader --parsable2 --jobs=${ALL} --format=${SA_FMT}"

say "waiting until ${C} and ${F} are purged from slurmctld"
start="${SECONDS}"
while (( SECONDS - start < 180 )); do
    [ -z "$(rsh "squeue -h --states=all -j ${C},${F} -o %i" 2>/dev/null || true)" ] && break
    sleep 2
done
rec squeue_purged_one "squeue --jobs=${C}"
rec squeue_purged_two "squeue --jobs=${C},${F}"
rec squeue_purged_and_live "squeue --jobs=${C},${PB}"
rec squeue_purged_one_O "squeue --noheader --states=all --jobs=${C} -O '${SQ_FMT}'"
rec squeue_purged_and_live_O "squeue --noheader --states=all --jobs=${C},${PB} -O '${SQ_FMT}'"
rec scancel_purged "scancel ${C}"
rec scancel_purged_v "scancel -v ${C}"
rec scancel_never_existed_v "scancel -v 999999"

say "cleaning up pending jobs"
rsh "scancel ${PB} ${H}" || true
say "done; command log in ${CMDLOG}"
