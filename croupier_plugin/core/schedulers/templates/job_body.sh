#@ The shell part of every batch script. A placeholder alone on a line takes
#@ any number of lines. Environment, modules and pre run in the job's shell
#@ and stop the job at the first failure; the main part (main: commands, the
#@ script with its arguments, or the container) runs with set -e in a
#@ subshell; post (job_post.sh, or nothing) runs afterwards whatever the main
#@ part's result, and the job ends with the main part's exit code (or the
#@ post part's, when the main part succeeded).
export CROUPIER_JOB_NAME=@{name}
@{exports}
@{parameters}
set -e
@{modules}
@{pre}
set +e
(
set -e
@{main}
)
croupier_rc=$?
@{post}
exit "$croupier_rc"
