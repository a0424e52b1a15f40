#!/usr/bin/env bash
# make demo: start a local registry, generate a small two-platform image,
# import it into the embedded store and push it with and without --platform,
# then show what the registry holds. Everything stays under .demo/.
set -euo pipefail
cd "$(dirname "$0")/.."

# DEMO_BIN and DEMO_DIR move the binaries and the scratch directory, and
# DEMO_BUILDFLAGS adds go build flags (the test of this script runs it in
# a temporary directory, built with -race as the rest of the tests).
bin=${DEMO_BIN:-bin}
work=${DEMO_DIR:-.demo}
# shellcheck disable=SC2086 # DEMO_BUILDFLAGS is a list of flags
go build ${DEMO_BUILDFLAGS:-} -buildvcs=auto -o "$bin/" ./cmd/ctrpush ./internal/cmd/testregistry ./internal/cmd/mkimage ./internal/cmd/regls

rm -rf "$work"
mkdir -p "$work"
"$bin/testregistry" -root "$work/registry" -addr-file "$work/addr" >/dev/null &
reg_pid=$!
trap 'kill "$reg_pid" 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$work/addr" ] && break; sleep 0.1; done
reg=$(cat "$work/addr")

# Bold only on a terminal: piped or in CI, the output is plain text.
if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi

# step WHY CMD...: says in one sentence what the step shows, then runs it.
step() {
	printf '\n%s\n%s$ %s%s\n' "# $1" "$bold" "${*:2}" "$plain"
	"${@:2}"
}

echo "A registry (distribution v3) is listening on $reg, its storage in $work/registry."
step "Generate a two-platform image (linux/amd64, linux/arm64; 3 layers of 1 MiB each) as an OCI archive." \
	"$bin/mkimage" -name "$reg/demo/app:1.0" -platforms linux/amd64,linux/arm64 -layers 3 -layer-size 1048576 -out "$work/app.tar"
step "Import it into the embedded store (containerd's own content store, no daemon)." \
	"$bin/ctrpush" --root "$work/store" import "$work/app.tar"
step "List the store's images, with their platforms present and missing." \
	"$bin/ctrpush" --root "$work/store" images --long
step "Push the whole image: every blob is uploaded once, the index last, then the tag." \
	"$bin/ctrpush" --root "$work/store" push "$reg/demo/app:1.0"
step "Push one platform to another repository: its layers are mounted from demo/app, not uploaded again." \
	"$bin/ctrpush" --root "$work/store" push --platform linux/arm64 "$reg/demo/app:1.0" "$reg/demo/app-arm64:1.0"
step "Push the same image again: the registry has everything, so nothing is uploaded." \
	"$bin/ctrpush" --root "$work/store" push "$reg/demo/app:1.0"
printf '\n%sThe registry now holds:%s\n' "$bold" "$plain"
"$bin/regls" "$reg"
