#!/usr/bin/env node
// Ends a registered session of the real Flashphoner Web SDK in headless
// Chromium the two ways a user does (driven by e2e/sip_test.go
// TestSIPClientDisconnect):
//
//   E2E_CALL='{"appKey":…,"sipOptions":{…},"end":"disconnect"|"close"}' node disconnect.mjs HOST:PORT
//
// HOST:PORT is rtcgate's listen-client address; the page is disconnect.html,
// run by harness.mjs. With end "disconnect" the page calls
// session.disconnect() once REGISTERED; with "close" this script closes the
// page once it is REGISTERED (Playwright's page.close(): Chromium ends the
// page's WebSocket with close 1001, going away). Either way the outcome
// carries endAt, the time of the end in ms since the epoch, for the test to
// measure what rtcgate did after it.
//
// Prints one JSON line with the outcome on stdout and exits 0 on success; on
// failure it exits 1 (2 for usage, 3 when the overall time bound runs out)
// and writes the page's console, errors and failed requests to stderr. The
// browser is always closed.
//
// Chromium is Debian's (env CHROMIUM, default /usr/bin/chromium); Playwright's
// own browsers are never downloaded or used.

import { runPage, scriptArgs } from './harness.mjs';

const PAGE_CLOSE_MS = 10_000;

const { addr, cfg } = scriptArgs('E2E_CALL=JSON node disconnect.mjs HOST:PORT (JSON with "end": "disconnect" or "close")',
	(c) => ['disconnect', 'close'].includes(c.end));

const closes = []; // the page's WebSockets as Playwright saw them end

await runPage({
	name: `disconnect.mjs ${cfg.end}`,
	addr,
	page: 'disconnect.html',
	overallMs: 60_000,
	base: { end: cfg.end },
	init: cfg,
	watch(page, origin, note) {
		page.on('websocket', (ws) => {
			note(`[websocket] open ${ws.url()}`);
			ws.on('close', () => {
				closes.push(ws.url());
				note(`[websocket] closed ${ws.url()}`);
			});
		});
	},
	async after(page, outcome, note) {
		if (cfg.end !== 'close') return;
		outcome.endAt = Date.now();
		note('[e2e] page.close()');
		await Promise.race([
			page.close(),
			new Promise((_, reject) => setTimeout(() => reject(new Error(`page.close() took over ${PAGE_CLOSE_MS} ms`)), PAGE_CLOSE_MS).unref()),
		]);
		outcome.pageClosed = true;
	},
	check(outcome) {
		outcome.websocketsClosed = closes.length;
	},
});
