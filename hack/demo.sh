#!/usr/bin/env bash
# make demo: start a local registry, generate a small two-platform image,
# import it into the embedded store and push it with and without --platform,
# then show what the registry holds. Everything stays under .demo/.
set -euo pipefail
cd "$(dirname "$0")/.."

go build -o bin/ ./cmd/ctrpush ./internal/cmd/testregistry ./internal/cmd/mkimage ./internal/cmd/regls

work=.demo
rm -rf "$work"
mkdir -p "$work"
bin/testregistry -root "$work/registry" -addr-file "$work/addr" >/dev/null &
reg_pid=$!
trap 'kill "$reg_pid" 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$work/addr" ] && break; sleep 0.1; done
reg=$(cat "$work/addr")

step() {
	printf '\n\033[1m$ %s\033[0m\n' "$*"
	"$@"
}

echo "registry (distribution v3) listening on $reg, storage in $work/registry"
step bin/mkimage -name "$reg/demo/app:1.0" -platforms linux/amd64,linux/arm64 -layers 3 -layer-size 1048576 -out "$work/app.tar"
step bin/ctrpush --root "$work/store" import "$work/app.tar"
step bin/ctrpush --root "$work/store" images
step bin/ctrpush --root "$work/store" push "$reg/demo/app:1.0"
step bin/ctrpush --root "$work/store" push --platform linux/arm64 "$reg/demo/app:1.0" "$reg/demo/app-arm64:1.0"
step bin/ctrpush --root "$work/store" push "$reg/demo/app:1.0"
printf '\n\033[1mThe registry now holds:\033[0m\n'
bin/regls "$reg"
