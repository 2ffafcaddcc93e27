#!/usr/bin/env bash
# Installs, with apt-get, the real peers that rtcgate's tests talk to, when
# they are missing. Safe to run again: it installs nothing already there.
set -euo pipefail

declare -A want=(
	[rtpengine-ctl]=rtpengine-utils        # rtpengine's CLI client
	[rtpengine-ng-client]=rtpengine-utils  # rtpengine's ng client
)

missing=()
for cmd in "${!want[@]}"; do
	command -v "$cmd" >/dev/null 2>&1 || missing+=("${want[$cmd]}")
done
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)

sudo=""
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null 2>&1 || { echo "test-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
	sudo=sudo
fi
echo "test-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
