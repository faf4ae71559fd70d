#@ squeue of all the user's jobs, the ids in $ids kept by awk on the cluster
#@ (keep: slurm_keep_ids.awk, quoted): one pass whatever the number of ids
sq=$(squeue --me --noheader --states=all @{format} 2>/dev/null | awk -F"|" -v ids="$ids" @{keep});
