#@ Every marker present in directory, as "<job id> <first line>" (run, or the
#@ exit code), after removing the markers already read (clean: an rm command
#@ and its "; ", or nothing). Forks nothing but rm.
cd @{directory} 2>/dev/null || exit 0; @{clean}for f in *.run *.rc; do
  if [ -s "$f" ] && read -r c < "$f"; then printf "%s %s\n" "${f%.*}" "$c"; fi;
done; exit 0
