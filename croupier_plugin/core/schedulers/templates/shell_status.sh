#@ One "id|STATE|exit code" line per SHELL job, from its files in state_dir
#@ (see shell.py). ids: checked job ids, separated by spaces.
d=@{state_dir}; for j in @{ids}; do
  if [ -f "$d/$j.rc" ]; then echo "$j|EXITED|$(cat "$d/$j.rc")";
  elif [ -f "$d/$j.cancelled" ]; then echo "$j|CANCELLED|";
  elif [ -f "$d/$j.pid" ]; then p=$(cat "$d/$j.pid");
#@ an empty pid file is one being written (only by launchers older than the rename)
    if [ -z "$p" ] || kill -0 "$p" 2>/dev/null; then echo "$j|RUNNING|";
#@ it may have written its exit code and ended between the two looks
    elif [ -f "$d/$j.rc" ]; then echo "$j|EXITED|$(cat "$d/$j.rc")";
    else echo "$j|KILLED|"; fi;
  elif [ -f "$d/$j.submitted" ]; then echo "$j|SUBMITTED|";
  fi; done
