#!/usr/bin/env bash
# Installs, with apt-get, what `make bench` measures rtcgate against:
# Debian's rtpengine-daemon (the userspace relay, /usr/bin/rtpengine), when
# it is missing. Safe to run again: it installs nothing already there.
#
# The benchmark starts its own rtpengine as a child process, so the package's
# system service must not run: it would hold ports 2223-2225 and 30000-40000
# and take CPU from the measurement. Service starts are blocked during the
# install (policy-rc.d, honoured by invoke-rc.d and deb-systemd-invoke), and
# the service is stopped and disabled afterwards in case something started
# it anyway.
set -euo pipefail

RTPENGINE=${RTPENGINE:-/usr/bin/rtpengine}
PKG=rtpengine-daemon
SERVICE=rtpengine-daemon

if [ -x "$RTPENGINE" ]; then
	exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null 2>&1 || { echo "bench-deps: need root or sudo to install $PKG" >&2; exit 1; }
	sudo=sudo
fi

# Block service starts for the duration of the install, unless the machine
# already has a policy (Docker images ship one that denies everything); only
# a policy we created is removed again.
policy=/usr/sbin/policy-rc.d
own_policy=""
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\n# bench-deps: no service starts while installing %s\nexit 101\n' "$PKG" |
		$sudo tee "$policy" >/dev/null
	$sudo chmod 0755 "$policy"
	own_policy=1
fi
cleanup() {
	if [ -n "$own_policy" ]; then
		$sudo rm -f "$policy"
	fi
}
trap cleanup EXIT

echo "bench-deps: installing $PKG"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "$PKG"

# Belt and braces: whatever the init system, leave the service stopped and
# not enabled at boot.
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
	$sudo systemctl stop "$SERVICE.service" >/dev/null 2>&1 || true
	$sudo systemctl disable "$SERVICE.service" >/dev/null 2>&1 || true
elif [ -x "/etc/init.d/$SERVICE" ]; then
	# Only the instance the package started, found by its pidfile: the init
	# script's own status check goes by binary name and would also see
	# rtpengines that others (or ngbench) run by hand.
	pidfile=$(. "/etc/default/$SERVICE" 2>/dev/null; echo "${PIDFILE:-/run/rtpengine.pid}")
	if [ -s "$pidfile" ] && $sudo kill -0 "$(cat "$pidfile")" 2>/dev/null; then
		$sudo "/etc/init.d/$SERVICE" stop >/dev/null 2>&1 || true
	fi
	if command -v update-rc.d >/dev/null 2>&1; then
		$sudo update-rc.d "$SERVICE" disable >/dev/null 2>&1 || true
	fi
fi

if [ ! -x "$RTPENGINE" ]; then
	echo "bench-deps: $PKG installed but $RTPENGINE is missing" >&2
	exit 1
fi
