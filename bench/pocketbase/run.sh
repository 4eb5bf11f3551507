#!/bin/sh
# Builds the PocketBase app of this module, seeds it and measures hrbench's
# list, read and create scenarios with wrk. Flags go to ./run (see --help),
# e.g. ./run.sh --scenarios list,list-skiptotal,read,create --duration 5s
set -eu
cd "$(dirname "$0")"
exec go run ./run "$@"
