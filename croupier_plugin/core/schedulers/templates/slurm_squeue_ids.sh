#@ squeue of the ids in $ids (a few: squeue filters a long --jobs list slowly)
sq=$(squeue --noheader --states=all --jobs="$ids" @{format} 2>/dev/null);
