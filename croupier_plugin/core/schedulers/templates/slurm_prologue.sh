#@ The start and exit-code markers of a SLURM job, left by an EXIT trap so
#@ that the monitor sees the start and the end of the job with a file check
#@ instead of a scheduler query. job_known: the test that the job runs under
#@ SLURM; mark: the marker's name; count: what follows the exit code (an
#@ array's element count).
if @{job_known}; then
  croupier_mark=@{mark}
  croupier_count=@{count}
  croupier_marks=@{marker_dir}
#@ a marker of an earlier job with the same id (ids wrap around)
  rm -f "$croupier_marks/$croupier_mark.rc"
#@ started: its waiting dependants can be queued behind it
  { mkdir -p "$croupier_marks" && echo run > "$croupier_marks/$croupier_mark.run"; } || :
  trap 'croupier_exit=$?; { mkdir -p "$croupier_marks" && printf "%s%s\n" "$croupier_exit" "$croupier_count" > "$croupier_marks/$croupier_mark.rc.tmp" && mv -f "$croupier_marks/$croupier_mark.rc.tmp" "$croupier_marks/$croupier_mark.rc"; } || :; exit "$croupier_exit"' EXIT
#@ killed by a signal: 128+n, which the monitor leaves to the scheduler
  trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 143' TERM
  trap 'exit 138' USR1; trap 'exit 140' USR2; trap 'exit 152' XCPU
fi
