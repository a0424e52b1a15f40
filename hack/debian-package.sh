#!/bin/sh
# debian-package.sh PACKAGE COMMAND WHY: installs Debian's PACKAGE when
# COMMAND (a name on PATH or an absolute path) is missing, for the tests
# WHY names (root only; not root, it says what to install and those tests
# fail under make test, saying so). The docker CLI, Debian's
# docker-registry (distribution 2.8) and skopeo come this way; none of them
# starts a service in a container without an init system.
set -eu
package=$1 command=$2 why=$3
if command -v "$command" >/dev/null 2>&1; then
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "$command missing and not root: $why (apt-get install $package)" >&2
	exit 0
fi
echo "installing Debian's $package: $why" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$package" >/dev/null
