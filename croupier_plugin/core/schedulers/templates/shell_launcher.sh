#@ The SHELL job launcher, run detached as `bash -c` with the arguments
#@ dir id script out err limit: it runs the job and records its exit code.
d=$1; id=$2
echo "$$" > "$d/$id.pid.tmp" && mv "$d/$id.pid.tmp" "$d/$id.pid"
if [ -f "$d/$id.cancelled" ]; then exit 0; fi
if [ -n "$6" ]; then timeout -s TERM -k 5 "$6" bash "$3" > "$4" 2> "$5"
else bash "$3" > "$4" 2> "$5"; fi
rc=$?
echo "$rc" > "$d/$id.rc.tmp" && mv "$d/$id.rc.tmp" "$d/$id.rc"
