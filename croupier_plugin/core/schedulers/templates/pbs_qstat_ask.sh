#@ qstat (with its options) of the ids in "$@": its stdout as it is, its
#@ stderr in croupier_err, its exit code in croupier_rc
{ croupier_err=$(@{qstat} -- "$@" 2>&1 >&3); croupier_rc=$?; } 3>&1;
