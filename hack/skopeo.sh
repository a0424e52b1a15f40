#!/bin/sh
# skopeo (Debian's) is one of the independent checkers the tests run on
# what ctrpush publishes (skopeo inspect and copy of a zstd image). Install
# it when missing (root only); otherwise those tests fail under make test.
set -eu
if command -v skopeo >/dev/null 2>&1; then
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "skopeo missing and not root: the compression tests need it (apt-get install skopeo)" >&2
	exit 0
fi
echo "installing Debian's skopeo for the compression tests" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends skopeo >/dev/null
