#!/usr/bin/env node
// Places a WebRTC call with the real Flashphoner Web SDK in headless
// Chromium through rtcgate (driven by e2e/webrtc_test.go and
// e2e/cluster_browser_test.go).
//
//   E2E_CALL='{"appKey":…,"callee":…,"sipOptions":{…}[,"shim":true,"sendData":N]}' node call.mjs HOST:PORT
//
// HOST:PORT is rtcgate's listen-client address (or a load balancer's in
// front of several); the page is call.html, run
// by harness.mjs. E2E_CALL reaches the page as window.e2eCall through an
// init script, so the SIP password never appears in a URL.
//
// Chromium gets a fake microphone (--use-fake-device-for-media-stream, with
// the permission prompt auto-accepted) and may use loopback for ICE, where
// rtcgate's ICE-lite candidate is in the tests.
//
// The outcome's servedBy counts the HTTP fallback's requests by the
// X-Served-By of their responses (a load balancer's server names).
//
// Prints one JSON line with the outcome on stdout and exits 0 on success; on
// failure it exits 1 (2 for usage, 3 when the overall time bound runs out)
// and writes the page's console, errors and failed requests to stderr. The
// browser is always closed.
//
// Chromium is Debian's (env CHROMIUM, default /usr/bin/chromium); Playwright's
// own browsers are never downloaded or used.

import { runPage, scriptArgs } from './harness.mjs';

const { addr, cfg: callConfig } = scriptArgs('E2E_CALL=JSON node call.mjs HOST:PORT');

// Behind a load balancer that says which server answered (X-Served-By, as
// testpeer's HAProxy does): how many HTTP fallback requests each answered.
const servedBy = {};

await runPage({
	name: 'call.mjs',
	addr,
	page: 'call.html',
	overallMs: 150_000,
	extraArgs: ['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', '--allow-loopback-in-peer-connection'],
	// The microphone grant spares getUserMedia a prompt.
	permissions: ['microphone'],
	init: callConfig,
	watch(page) {
		page.on('response', (r) => {
			const by = r.headers()['x-served-by'];
			if (by && new URL(r.url()).pathname === '/http') servedBy[by] = (servedBy[by] || 0) + 1;
		});
	},
	check(outcome) {
		outcome.servedBy = servedBy;
	},
});
