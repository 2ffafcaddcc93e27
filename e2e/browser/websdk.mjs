#!/usr/bin/env node
// Drives the real Flashphoner Web SDK in headless Chromium against rtcgate's
// client listener.
//
//   node websdk.mjs HOST:PORT ws|http-shim
//
// HOST:PORT is rtcgate's listen-client address; the page is index.html,
// run by harness.mjs. Every request but the page's own files — the
// WebSocket, /rtcgate-http-websocket.js, the HTTP fallback — goes to rtcgate.
//
// Prints one JSON line with the outcome on stdout, e.g.
//   {"mode":"ws","ok":true,"status":"ESTABLISHED","sendData":"ACCEPTED",...}
// and exits 0 on success; on failure it exits 1 (2 for usage, 3 when the
// overall time bound runs out) and writes the page's console, errors and
// failed requests to stderr. The browser is always closed.
//
// Chromium is Debian's (env CHROMIUM, default /usr/bin/chromium); Playwright's
// own browsers are never downloaded or used.

import { runPage } from './harness.mjs';

const [addr, mode] = process.argv.slice(2);
if (process.argv.length !== 4 || !addr || !['ws', 'http-shim'].includes(mode)) {
	process.stderr.write('usage: node websdk.mjs HOST:PORT ws|http-shim\n');
	process.exit(2);
}

const websockets = []; // URLs of real WebSockets the page opened
const httpRequests = []; // XHR/fetch requests to rtcgate's origin

await runPage({
	name: `websdk.mjs ${mode}`,
	addr,
	page: 'index.html',
	query: `?mode=${encodeURIComponent(mode)}`,
	overallMs: 90_000,
	base: { mode },
	watch(page, origin, note) {
		page.on('websocket', (ws) => {
			websockets.push(ws.url());
			note(`[websocket] open ${ws.url()}`);
			ws.on('close', () => note(`[websocket] closed ${ws.url()}`));
			ws.on('socketerror', (e) => note(`[websocket] error ${ws.url()}: ${e}`));
		});
		page.on('request', (r) => {
			if (['xhr', 'fetch', 'eventsource', 'ping'].includes(r.resourceType()) && r.url().startsWith(origin + '/')) {
				httpRequests.push(`${r.method()} ${new URL(r.url()).pathname}`);
			}
		});
	},
	check(outcome, note) {
		outcome.transport = { websockets, httpRequests: httpRequests.length };
		if (outcome.ok && mode === 'ws' && !websockets.some((u) => u.startsWith(`ws://${addr}`))) {
			outcome.ok = false;
			outcome.error = `the SDK opened no WebSocket to ws://${addr} (saw ${JSON.stringify(websockets)})`;
		}
		if (outcome.ok && mode === 'http-shim') {
			if (websockets.length > 0) {
				outcome.ok = false;
				outcome.error = `with the HTTP fallback enabled the page still opened WebSockets: ${JSON.stringify(websockets)}`;
			} else if (httpRequests.length === 0) {
				outcome.ok = false;
				outcome.error = 'with the HTTP fallback enabled the page made no XHR/fetch request to rtcgate';
			}
		}
		if (!outcome.ok) note(`[http] XHR/fetch to rtcgate: ${httpRequests.join(', ') || 'none'}`);
	},
});
