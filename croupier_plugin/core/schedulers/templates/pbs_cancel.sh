#@ qdel of the ids, after leaving a cancel file for each in rc_dir
set -- @{ids}; d=@{rc_dir}; mkdir -p "$d" &&
for i in "$@"; do : > "$d/$i.cancelled"; done;
qdel -- "$@"
