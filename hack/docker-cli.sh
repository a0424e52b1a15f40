#!/bin/sh
# The Engine API test (integration/serve_test.go) drives the real docker
# CLI. Machines of this kind have it; where it is missing, install Debian's
# docker.io (its client speaks API 1.41, which ctrpush serve accepts).
set -eu
if command -v docker >/dev/null 2>&1; then
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "docker CLI missing and not root: the Engine API tests need it (apt-get install docker.io)" >&2
	exit 0
fi
echo "installing the docker CLI (Debian docker.io) for the Engine API test" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >/dev/null
