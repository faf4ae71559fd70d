#@ A job's post commands, run whatever the main part's result
(
set -e
@{post}
)
croupier_post_rc=$?
if [ "$croupier_rc" -eq 0 ]; then croupier_rc=$croupier_post_rc; fi
