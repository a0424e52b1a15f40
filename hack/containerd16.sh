#!/bin/sh
# The daemon-mode tests also run against Debian's containerd 1.6 (the
# containerd many hosts still run). Install it when missing (root only),
# without starting its service: a policy-rc.d that forbids starts is put in
# place for the install when there is none. Not root and missing: those
# runs fail under make test, saying so.
set -eu
if [ -x /usr/bin/containerd ] && [ -x /usr/bin/ctr ]; then
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "containerd 1.6 missing and not root: install it with apt-get install containerd" >&2
	exit 0
fi
echo "installing Debian's containerd (1.6) for the daemon-mode tests" >&2
policy=
if [ ! -e /usr/sbin/policy-rc.d ]; then
	policy=/usr/sbin/policy-rc.d
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod +x "$policy"
fi
trap '[ -z "$policy" ] || rm -f "$policy"' EXIT
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends containerd >/dev/null
