#!/bin/bash
set -e
echo "ran on the orchestrator for $CROUPIER_HOST, source=$CROUPIER_DEPLOYMENT_SOURCE" > "$1/local-bootstrap.txt"
