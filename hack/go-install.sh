#!/bin/sh
# go-install.sh DIR PACKAGE@VERSION...: `go install` pinned tools into DIR.
# It runs in a temporary directory outside this module (so this go.mod
# does not choose the tools' dependencies, and GOFLAGS of the caller do not
# apply), which it removes on the way out, failed or not.
set -eu
dir=$1
shift
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ctrpush-go-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
cd "$tmp"
GOBIN=$dir GOFLAGS= "${GO:-go}" install "$@"
