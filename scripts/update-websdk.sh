#!/usr/bin/env bash
# Copies the Flashphoner Web SDK that e2e/browser's package-lock.json pins
# (installed by `make test-deps`: npm ci in e2e/browser) into the phone
# page's embedded files, unmodified, with its licence and those of the
# packages its bundle contains. Run it after changing the pinned version,
# then update phone.WebSDKVersion; internal/phone's tests check both.
set -euo pipefail

cd "$(dirname "$0")/.."
nm=e2e/browser/node_modules
sdk=$nm/@flashphoner/websdk
out=internal/phone/static/websdk
file=flashphoner-webrtc-only.min.js

[ -f "$sdk/$file" ] || { echo "update-websdk: no $sdk/$file: run make test-deps (npm ci in e2e/browser) first" >&2; exit 1; }
version=$(node -p "require('./$sdk/package.json').version")
mkdir -p "$out"
cp "$sdk/$file" "$out/$file"

ver() { node -p "require('./$nm/$1/package.json').version"; }
lic() { node -p "require('./$nm/$1/package.json').license"; }

{
	cat <<TXT
$file is the file of that name in the npm package @flashphoner/websdk
$version (https://www.npmjs.com/package/@flashphoner/websdk), unmodified:
the Flashphoner Web SDK, WebRTC-only build. rtcgate embeds it to serve its
phone page (internal/phone); scripts/update-websdk.sh copied it and wrote
this file.

========================================================================
@flashphoner/websdk $version: MIT

The package's package.json says "license": "MIT" and "author":
"Flashphoner"; the package carries no licence file of its own, so here is
the MIT licence's text with its author as the copyright holder:

MIT License

Copyright (c) Flashphoner

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.

The bundle also contains these packages, each under its own licence (the
versions npm installed beside it), as well as Babel's helpers and
regenerator-runtime (MIT, Copyright (c) 2014-present, Facebook, Inc.) and
browserify's shims for Node.js built-ins (MIT).
TXT
	for p in @flashphoner/web-sdk-metrics webrtc-adapter rtcpeerconnection-shim sdp uuid kalmanjs pako async-mutex tslib promise-polyfill; do
		printf '\n========================================================================\n%s %s: %s\n\n' "$p" "$(ver "$p")" "$(lic "$p")"
		f=$(find "$nm/$p" -maxdepth 1 -iname 'licen[cs]e*' | head -1)
		if [ -n "$f" ]; then
			cat "$f"
		else
			echo "(the package carries no licence file; its package.json names the licence above and its author: $(node -p "require('./$nm/$p/package.json').author"))"
		fi
	done
} >"$out/LICENSE"
echo "update-websdk: $out/$file and $out/LICENSE from @flashphoner/websdk $version"
