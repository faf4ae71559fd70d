#@ The status of SLURM jobs in one round trip: squeue's rows (query: one of
#@ slurm_squeue_*.sh, which sets sq), its exit code after squeue_rc_mark, then
#@ after sacct_mark sacct's rows for the ids squeue cannot tell (missing: the
#@ awk program slurm_missing.awk, quoted). prefix: settings for both, or nothing.
@{prefix}ids=@{ids}; @{query} rc=$?;
printf "%s\n" "$sq";
echo "@{squeue_rc_mark}$rc";
echo @{sacct_mark};
m=$(printf "%s\n" "$sq" | awk -F"|" -v ids="$ids" @{missing});
if [ -n "$m" ]; then sacct --noheader --parsable2 --allocations --jobs="$m" --format=@{sacct_fields}; fi
