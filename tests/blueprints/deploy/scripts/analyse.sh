#!/bin/bash
printf 'analysed:'; printf ' [%s]' "$@"; printf '\n'
cat app.txt
