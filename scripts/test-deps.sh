#!/usr/bin/env bash
# Installs what rtcgate's tests talk to, when it is missing:
#   - with apt-get, the real peers: rtpengine-utils, kamailio,
#     kamailio-tls-modules (SIP over TLS), kamailio-websocket-modules (SIP
#     over WebSocket for the SIP.js browser test), rtpengine-daemon (the
#     anchor ng tests compare with) and sip-tester (sipp) for
#     internal/testpeer, Debian's chromium for the headless-browser
#     test (e2e/browser_test.go), and the Perl modules rtpengine's
#     t/test-basic-*.pl need besides rtpengine-utils' NGCP::Rtpengine::Test
#     (e2e/rtpengine_basic_test.go);
#   - with `npm ci`, e2e/browser's pinned npm packages (playwright-core, the
#     Flashphoner Web SDK, SIP.js), when node_modules is missing or older than
#     package-lock.json. Playwright's own browsers are never downloaded.
# Safe to run again: it installs nothing already there, and says nothing then.
set -euo pipefail

cd "$(dirname "$0")/.."

declare -A want=(
	[rtpengine-ctl]=rtpengine-utils        # rtpengine's CLI client
	[rtpengine-ng-client]=rtpengine-utils  # rtpengine's ng client
	[rtpengine]=rtpengine-daemon           # the anchor the ng tests compare with
	[kamailio]=kamailio                    # SIP registrar/proxy (internal/testpeer)
	[sipp]=sip-tester                      # SIP test peer (internal/testpeer)
	[redis-server]=redis-server            # the cluster's store (internal/testpeer)
	[haproxy]=haproxy                      # a plain HTTP load balancer in front of a cluster
	[prlimit]=util-linux                   # lowers a child's descriptor limit (hostile tests)
	[setpriv]=util-linux                   # drops CAP_BPF for the kernel-forwarding fallback tests
)

missing=()
for cmd in "${!want[@]}"; do
	# /usr/sbin (kamailio, haproxy) is not on a non-root PATH.
	command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || [ -x "/usr/bin/$cmd" ] || missing+=("${want[$cmd]}")
done
# Kamailio's tls module, a package apart from kamailio (testpeer's
# KamailioOptions.TLS).
compgen -G '/usr/lib/*/kamailio/modules/tls.so' >/dev/null || missing+=(kamailio-tls-modules)
# Its websocket module, for SIP over WebSocket (testpeer's
# KamailioOptions.WebSocket).
compgen -G '/usr/lib/*/kamailio/modules/websocket.so' >/dev/null || missing+=(kamailio-websocket-modules)
# Headless Chromium for e2e/browser (websdk.mjs defaults to this path).
[ -x /usr/bin/chromium ] || missing+=(chromium)
# Perl modules that rtpengine-utils' NGCP::Rtpengine::Test and
# NGCP::Rtpengine load but the package does not depend on, for rtpengine's
# t/test-basic-*.pl (e2e/rtpengine_basic_test.go).
declare -A perlmod=(
	[Net::Interface]=libnet-interface-perl
	[IO::Multiplex]=libio-multiplex-perl
	[Crypt::OpenSSL::RSA]=libcrypt-openssl-rsa-perl
	[Digest::CRC]=libdigest-crc-perl
	[JSON]=libjson-perl
)
for mod in "${!perlmod[@]}"; do
	perl -M"$mod" -e1 >/dev/null 2>&1 || missing+=("${perlmod[$mod]}")
done

if [ ${#missing[@]} -gt 0 ]; then
	mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
	sudo=""
	if [ "$(id -u)" -ne 0 ]; then
		command -v sudo >/dev/null 2>&1 || { echo "test-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
		sudo=sudo
	fi
	echo "test-deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update -q
	$sudo apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
fi

# e2e/browser's npm packages. npm writes node_modules/.package-lock.json at
# the end of every install, so it is newer than package-lock.json once that
# lock is installed.
browser=e2e/browser
if [ ! -f "$browser/node_modules/.package-lock.json" ] ||
	[ "$browser/package-lock.json" -nt "$browser/node_modules/.package-lock.json" ]; then
	if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
		# Debian bookworm's nodejs (18) is too old for playwright-core;
		# the browser test reports the missing node/npm itself.
		echo "test-deps: node and npm (Node.js >= 20) are needed for $browser; not found" >&2
	else
		echo "test-deps: npm ci in $browser"
		(cd "$browser" &&
			PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error </dev/null)
	fi
fi
