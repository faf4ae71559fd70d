#@ The status of PBS or Torque jobs in one round trip: qstat (query: one of
#@ pbs_qstat_*.sh, which sets croupier_err and croupier_rc), its exit code
#@ and stderr after qstat_rc_mark, then after files_mark each job's exit-code
#@ and cancel files in rc_dir. ids: the quoted job ids; per_id: case patterns
#@ of qstat's messages about single ids. Shell builtins only: a poll must
#@ fail when qstat fails, even where other tools are missing from PATH.
set -- @{ids};
croupier_others() { printf "%s\n" "$croupier_err" | while IFS= read -r l; do
  case "$l" in ""|@{per_id}) ;; *) echo "$l" ;; esac; done; };
@{query} printf "%s\n" "@{qstat_rc_mark}$croupier_rc" "$croupier_err" @{files_mark};
d=@{rc_dir};
for i in "$@"; do
  if [ -f "$d/$i.rc" ] && read -r v < "$d/$i.rc"; then printf "rc %s %s\n" "$i" "$v"; fi;
  if [ -f "$d/$i.cancelled" ]; then printf "cancelled %s\n" "$i"; fi;
done;
#@ exit codes 35 (finished, no -x) and 153 (unknown id) come with per-id
#@ messages only: the other ids' answers stand
if [ "$croupier_rc" -ne 0 ] && [ -n "$(croupier_others)" ]; then
  printf "%s\n" "$croupier_err" >&2; exit "$croupier_rc"; fi
