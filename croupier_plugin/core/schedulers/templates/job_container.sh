#@ The main part of a SingularityJob: run (the quoted command line) inside
#@ the image with Apptainer or Singularity, whichever the host has
croupier_runtime=$(command -v apptainer || command -v singularity) || { echo "croupier: neither apptainer nor singularity is on PATH" >&2; exit 127; }
@{run}
