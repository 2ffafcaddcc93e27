#!/usr/bin/env bash
# Installs, with apt-get, what `make bench` measures rtcgate against, when it
# is missing: Debian's rtpengine-daemon (the userspace relay,
# /usr/bin/rtpengine) for ngbench, kamailio and sip-tester (sipp), the
# SIP proxy and far end of sipbench, and redis-server and haproxy, the
# cluster's store and load balancer in clusterbench (and hooksbench -store
# redis). Safe to run again: it installs nothing already there.
#
# The benchmarks start their own rtpengine, Kamailio, redis-server and
# HAProxy as child processes, so the packages' system services must not
# run: they would hold ports (2223-2225 and 30000-40000; 5060; 6379) and
# take CPU from the measurement.
# Service starts are blocked during the install (policy-rc.d, honoured by
# invoke-rc.d and deb-systemd-invoke), and the services are stopped and
# disabled afterwards in case something started them anyway.
set -euo pipefail

RTPENGINE=${RTPENGINE:-/usr/bin/rtpengine}
KAMAILIO=${KAMAILIO:-/usr/sbin/kamailio}
SIPP=${SIPP:-/usr/bin/sipp}
REDIS=${REDIS:-/usr/bin/redis-server}
HAPROXY=${HAPROXY:-/usr/sbin/haproxy}

# package → whether it is missing; services: the packages' system services.
pkgs=()
services=()
if [ ! -x "$RTPENGINE" ]; then
	pkgs+=(rtpengine-daemon)
	services+=(rtpengine-daemon)
fi
if [ ! -x "$KAMAILIO" ]; then
	pkgs+=(kamailio)
	services+=(kamailio)
fi
if [ ! -x "$SIPP" ] && ! command -v sipp >/dev/null 2>&1; then
	pkgs+=(sip-tester) # sipp has no service
fi
if [ ! -x "$REDIS" ] && ! command -v redis-server >/dev/null 2>&1; then
	pkgs+=(redis-server)
	services+=(redis-server)
fi
if [ ! -x "$HAPROXY" ] && ! command -v haproxy >/dev/null 2>&1; then
	pkgs+=(haproxy)
	services+=(haproxy)
fi
if [ ${#pkgs[@]} -eq 0 ]; then
	exit 0
fi
PKG="${pkgs[*]}"

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
$sudo apt-get install -y -q --no-install-recommends "${pkgs[@]}" </dev/null

# Belt and braces: whatever the init system, leave the services stopped and
# not enabled at boot.
for SERVICE in "${services[@]}"; do
	if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
		$sudo systemctl stop "$SERVICE.service" >/dev/null 2>&1 || true
		$sudo systemctl disable "$SERVICE.service" >/dev/null 2>&1 || true
	elif [ -x "/etc/init.d/$SERVICE" ]; then
		# Only the instance the package started, found by its pidfile: the
		# init script's own status check goes by binary name and would also
		# see the rtpengines and Kamailios that others (or the benchmarks)
		# run by hand.
		case $SERVICE in
		kamailio) pidfile=/run/kamailio/kamailio.pid ;;
		redis-server) pidfile=/run/redis/redis-server.pid ;;
		haproxy) pidfile=/run/haproxy.pid ;;
		*) pidfile=$(. "/etc/default/$SERVICE" 2>/dev/null; echo "${PIDFILE:-/run/rtpengine.pid}") ;;
		esac
		if [ -s "$pidfile" ] && $sudo kill -0 "$(cat "$pidfile")" 2>/dev/null; then
			$sudo "/etc/init.d/$SERVICE" stop >/dev/null 2>&1 || true
		fi
		if command -v update-rc.d >/dev/null 2>&1; then
			$sudo update-rc.d "$SERVICE" disable >/dev/null 2>&1 || true
		fi
	fi
done

for bin in "$RTPENGINE" "$KAMAILIO"; do
	if [ ! -x "$bin" ]; then
		echo "bench-deps: installed $PKG but $bin is missing" >&2
		exit 1
	fi
done
if [ ! -x "$SIPP" ] && ! command -v sipp >/dev/null 2>&1; then
	echo "bench-deps: installed $PKG but sipp is missing" >&2
	exit 1
fi
if [ ! -x "$REDIS" ] && ! command -v redis-server >/dev/null 2>&1; then
	echo "bench-deps: installed $PKG but redis-server is missing" >&2
	exit 1
fi
if [ ! -x "$HAPROXY" ] && ! command -v haproxy >/dev/null 2>&1; then
	echo "bench-deps: installed $PKG but haproxy is missing" >&2
	exit 1
fi
