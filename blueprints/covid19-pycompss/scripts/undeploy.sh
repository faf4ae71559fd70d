#!/bin/bash
set -e
rm -rf -- "${1:-covid19}"
