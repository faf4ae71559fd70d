#!/usr/bin/env bash
# Build Croupier's wagon (the archive a Cloudify Manager installs plugins from).
#
#   bash wagon-build.sh [OUTPUT_DIR] [--no-validate]
#
# Runs `wagon create` from the repo root into OUTPUT_DIR (default: dist/), checks
# that the package name and version the wagon declares (`wagon show`) are the
# package_name/package_version of plugin.yaml, then runs `wagon validate` (installs
# the wagon into a throw-away virtualenv) unless --no-validate is given.
# Uses .venv/bin/wagon when present, else `wagon` on PATH.
# wagon's own output goes to stderr; stdout gets one line: the path of the .wgn.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

usage() { sed -n '4,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; }
die() { echo "wagon-build.sh: $*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

validate=1
out=''
for arg in "$@"; do
    case "$arg" in
        --no-validate) validate=0 ;;
        -h|--help) usage; exit 0 ;;
        -*) usage; die "unknown option: $arg" ;;
        *) [[ -z "$out" ]] || die "only one output directory may be given"; out="$arg" ;;
    esac
done
out="${out:-$ROOT/dist}"
mkdir -p -- "$out"
out="$(cd -- "$out" && pwd)"

if [[ -x "$ROOT/.venv/bin/wagon" ]]; then
    WAGON="$ROOT/.venv/bin/wagon"
elif command -v wagon >/dev/null 2>&1; then
    WAGON="$(command -v wagon)"
else
    die "wagon not found: neither $ROOT/.venv/bin/wagon nor wagon on PATH (pip install wagon)"
fi
# the interpreter wagon runs with: used below to read JSON and plugin.yaml
PY="$(head -n1 "$WAGON" | sed -n 's/^#! *//p' | awk '{print $1}')"
[[ -x "$PY" ]] || PY="$(command -v python3)" || die "no python3 to check the wagon with"

log="$(mktemp)"
trap 'rm -f -- "$log"; rm -rf -- "$ROOT/build"' EXIT

# setuptools builds in-tree (build/): files left there by an earlier build (a module
# since deleted, say) would end up in the wheel, so start from a clean build/.
rm -rf -- "$ROOT/build"

echo "wagon-build.sh: $WAGON create $ROOT -> $out" >&2
t0="$(now)"
(cd "$ROOT" && "$WAGON" create . -f -o "$out") 2>&1 | tee "$log" >&2 || die "wagon create failed"
echo "wagon-build.sh: wagon create took $(elapsed "$t0") s" >&2

wgn="$(sed -n 's/^.*Wagon created successfully at: *//p' "$log" | tail -n1)"
[[ -n "$wgn" && -f "$wgn" ]] || die "wagon create did not report the archive it made"

# the wagon's package must be the one plugin.yaml declares, or a Manager rejects it
shown="$("$WAGON" show "$wgn")" || die "wagon show $wgn failed"
"$PY" - "$ROOT/plugin.yaml" "$shown" <<'EOF' || die "plugin.yaml and the wagon disagree (see above)"
import json, re, sys

path, shown = sys.argv[1], json.loads(sys.argv[2])
text = open(path).read()
try:
    import yaml
    plugins = yaml.safe_load(text)['plugins']
except ImportError:  # a wagon installed without PyYAML: the two keys by hand
    plugins = {'croupier': {key: re.search(rf'^\s+{key}:\s*[\'"]?([^\'"\s]+)', text, re.M).group(1)
                            for key in ('package_name', 'package_version')}}
bad = []
for name, plugin in plugins.items():
    for key in ('package_name', 'package_version'):
        if str(plugin.get(key)) != str(shown[key]):
            bad.append(f'plugins.{name}.{key} is {plugin.get(key)!r}, the wagon has {shown[key]!r}')
for line in bad:
    print('wagon-build.sh: ' + line, file=sys.stderr)
sys.exit(1 if bad else 0)
EOF

if (( validate )); then
    t0="$(now)"
    "$WAGON" validate "$wgn" >&2 || die "wagon validate $wgn failed"
    echo "wagon-build.sh: wagon validate took $(elapsed "$t0") s" >&2
fi

echo "$wgn"
