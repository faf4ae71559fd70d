#!/bin/bash
# Deploys the (toy) COVID-19 PyCOMPSs application into the working directory.
# Arguments: the application's name.
set -e
app="${1:-covid19}"
mkdir -p "$app/src"
cat > "$app/src/covid19.py" <<'PY'
import os
import sys

# a stand-in for the real workflow: reads the dataset folder and the arguments
args = sys.argv[1:]
print("covid19 analysis of", os.environ.get("dataset", "?"), "with", " ".join(args))
with open("results.txt", "w") as out:
    out.write("patients analysed: %d\n" % len(args))
PY
echo "deployed $app in $(pwd)/$app"
