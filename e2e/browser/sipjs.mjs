#!/usr/bin/env node
// Runs SIP.js (npm sip.js, its ES module lib served as is) in headless
// Chromium against a Kamailio that speaks SIP over WebSocket and hands the
// media to an rtpengine ng relay (driven by e2e/ngwebrtc_kamailio_test.go).
//
//   E2E_CALL='{"wsURL":…,"aor":…,"user":…,"password":…,"mode":"call"|"answer","target":…}' node sipjs.mjs HOST:PORT
//
// HOST:PORT is the origin the page is opened on (Kamailio's WebSocket
// address; Playwright fulfils the page itself). The page is sipjs.html.
// Prints one JSON line with the outcome on stdout; exits 0 on success, 1 on
// failure, 2 for usage, 3 when the overall time bound runs out.

import path from 'node:path';
import { createRequire } from 'node:module';
import { runPage, scriptArgs } from './harness.mjs';

const require = createRequire(import.meta.url);
const { addr, cfg: callConfig } = scriptArgs('E2E_CALL=JSON node sipjs.mjs HOST:PORT');

await runPage({
	name: 'sipjs.mjs',
	addr,
	page: 'sipjs.html',
	overallMs: 90_000,
	extraArgs: ['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', '--allow-loopback-in-peer-connection'],
	permissions: ['microphone'],
	init: callConfig,
	dirs: { '/__e2e__/sipjs/': path.dirname(require.resolve('sip.js')) },
});
