#!/bin/bash
set -e
echo "reverted from $CROUPIER_WORKDIR" > "$2/reverted-$1.txt"
