#!/bin/sh
# The registry tests also run against Debian's docker-registry
# (distribution 2.8). Install it when missing (root only; the package does
# not start a service in a container without an init system, and
# policy-rc.d stops it elsewhere); otherwise those tests skip by hand and
# fail under make test.
set -eu
if [ -x /usr/bin/docker-registry ]; then
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "docker-registry missing and not root: the distribution 2.8 tests need it (apt-get install docker-registry)" >&2
	exit 0
fi
echo "installing Debian's docker-registry (distribution 2.8) for the registry tests" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-registry >/dev/null
