#@ The exit-code file (see pbs.py's docstring) and the monitor's markers of a
#@ plain PBS or Torque job. Debian's slurm-wlm-torque sets no PBS_JOBID; its
#@ qsub prints SLURM's id. A job killed by a signal must not record 0: bash
#@ runs the EXIT trap on SIGTERM with the last command's status, so the
#@ signals a batch system sends (qdel, limits) first exit with 128+n.
croupier_job_id=${PBS_JOBID:-${SLURM_JOB_ID:-}}
if [ -n "$croupier_job_id" ]; then
  croupier_rc_dir=@{rc_dir}
  croupier_marks=@{marker_dir}
#@ files of an earlier job with the same id (ids wrap around)
  rm -f "$croupier_rc_dir/$croupier_job_id.rc" "$croupier_rc_dir/$croupier_job_id.cancelled" "$croupier_marks/$croupier_job_id.rc"
#@ started: its waiting dependants can be queued behind it
  { mkdir -p "$croupier_marks" && echo run > "$croupier_marks/$croupier_job_id.run"; } || :
  trap 'croupier_exit=$?; { mkdir -p "$croupier_rc_dir" && printf "%s\n" "$croupier_exit" > "$croupier_rc_dir/$croupier_job_id.rc.tmp" && mv -f "$croupier_rc_dir/$croupier_job_id.rc.tmp" "$croupier_rc_dir/$croupier_job_id.rc"; } || :; { printf "%s\n" "$croupier_exit" > "$croupier_marks/$croupier_job_id.rc.tmp" && mv -f "$croupier_marks/$croupier_job_id.rc.tmp" "$croupier_marks/$croupier_job_id.rc"; } 2>/dev/null || :; exit "$croupier_exit"' EXIT
  trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 143' TERM
  trap 'exit 138' USR1; trap 'exit 140' USR2; trap 'exit 152' XCPU
fi
