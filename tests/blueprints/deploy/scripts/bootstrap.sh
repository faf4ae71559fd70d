#!/bin/bash
# deploys the "application": a file in the working directory
set -e
printf 'app version %s deployed in %s\n' "$1" "$(pwd)" > app.txt
printf 'args:'; printf ' [%s]' "$@"; printf '\n'
