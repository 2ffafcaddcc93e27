#!/usr/bin/env node
// Places a WebRTC call with the real Flashphoner Web SDK in headless
// Chromium through rtcgate (driven by e2e/webrtc_test.go).
//
//   E2E_CALL='{"appKey":…,"callee":…,"sipOptions":{…}}' node call.mjs HOST:PORT
//
// HOST:PORT is rtcgate's listen-client address; the page is call.html, run
// by harness.mjs. E2E_CALL reaches the page as window.e2eCall through an
// init script, so the SIP password never appears in a URL.
//
// Chromium gets a fake microphone (--use-fake-device-for-media-stream, with
// the permission prompt auto-accepted) and may use loopback for ICE, where
// rtcgate's ICE-lite candidate is in the tests.
//
// Prints one JSON line with the outcome on stdout and exits 0 on success; on
// failure it exits 1 (2 for usage, 3 when the overall time bound runs out)
// and writes the page's console, errors and failed requests to stderr. The
// browser is always closed.
//
// Chromium is Debian's (env CHROMIUM, default /usr/bin/chromium); Playwright's
// own browsers are never downloaded or used.

import { callArgs, runPage } from './harness.mjs';

const { addr, callConfig } = callArgs('call.mjs');

await runPage({
	name: 'call.mjs',
	addr,
	page: 'call.html',
	overallMs: 150_000,
	extraArgs: ['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', '--allow-loopback-in-peer-connection'],
	// The microphone grant spares getUserMedia a prompt.
	permissions: ['microphone'],
	init: callConfig,
});
