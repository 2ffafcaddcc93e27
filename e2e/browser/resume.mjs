#!/usr/bin/env node
// Brings a session of the real Flashphoner Web SDK in headless Chromium back
// after its WebSocket died (driven by e2e/cluster_browser_test.go).
//
//   E2E_CALL='{"appKey":…,"before":N,"after":M}' node resume.mjs HOST:PORT
//
// HOST:PORT is rtcgate's listen-client address, or a load balancer's in
// front of several; the page is resume.html, run by harness.mjs. When the
// page calls window.e2eSignal(name, value) this script prints
//   SIGNAL <name> <value as JSON>
// on stdout, at once, and the page goes on when the line is written: the
// test acts on it (kills the session's node).
//
// The last stdout line is the outcome as JSON; the exit status is 0 on
// success, 1 on failure (2 for usage, 3 when the overall time bound runs
// out), and on failure the page's console, errors and failed requests go to
// stderr. The browser is always closed.
//
// Chromium is Debian's (env CHROMIUM, default /usr/bin/chromium); Playwright's
// own browsers are never downloaded or used.

import { runPage, scriptArgs } from './harness.mjs';

const { addr, cfg } = scriptArgs('E2E_CALL=JSON node resume.mjs HOST:PORT');

await runPage({
	name: 'resume.mjs',
	addr,
	page: 'resume.html',
	overallMs: 60_000,
	init: cfg,
	async watch(page, origin, note) {
		await page.exposeFunction('e2eSignal', (name, value) => {
			note(`[e2e] signal ${name}`);
			return new Promise((resolve) => process.stdout.write(`SIGNAL ${name} ${JSON.stringify(value)}\n`, resolve));
		});
		page.on('websocket', (ws) => {
			note(`[websocket] open ${ws.url()}`);
			ws.on('close', () => note(`[websocket] closed ${ws.url()}`));
		});
	},
});
