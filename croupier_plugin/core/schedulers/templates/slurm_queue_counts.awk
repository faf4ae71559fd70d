#@ squeue's "partition|state" lines -> "partition|state|count" (the -F"|" of the caller)
{n[$1 FS $2]++} END{for(k in n)print k FS n[k]}
