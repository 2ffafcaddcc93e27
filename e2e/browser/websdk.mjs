#!/usr/bin/env node
// Drives the real Flashphoner Web SDK in headless Chromium against rtcgate's
// client listener.
//
//   node websdk.mjs HOST:PORT ws|http-shim
//
// HOST:PORT is rtcgate's listen-client address. The page is opened on
// rtcgate's own origin (http://HOST:PORT/__e2e__/index.html) so that the
// listener's Origin check passes; Playwright fulfils everything under
// /__e2e__/ from local files (index.html beside this script, flashphoner.js
// from node_modules/@flashphoner/websdk), and every other request — the
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

import { chromium } from 'playwright-core';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const OVERALL_MS = 90_000; // whole run, launch to close
const LAUNCH_MS = 30_000;
const GOTO_MS = 15_000;
const CLOSE_MS = 10_000;

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

const [addr, mode] = process.argv.slice(2);
if (process.argv.length !== 4 || !addr || !['ws', 'http-shim'].includes(mode)) {
	process.stderr.write('usage: node websdk.mjs HOST:PORT ws|http-shim\n');
	process.exit(2);
}
const origin = `http://${addr}`;
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

const logs = []; // the page's console, errors and failed requests
const websockets = []; // URLs of real WebSockets the page opened
const httpRequests = []; // XHR/fetch requests to rtcgate's origin
let browser;

function note(line) {
	logs.push(line);
}

let finished = false;
function finish(outcome, code) {
	if (finished) return; // the first outcome (e.g. the overall timeout) stands
	finished = true;
	process.stdout.write(JSON.stringify(outcome) + '\n');
	if (code !== 0) {
		process.stderr.write(`websdk.mjs ${mode} against ${origin} failed: ${outcome.error}\n`);
		process.stderr.write('--- page console, errors and failed requests ---\n');
		process.stderr.write(logs.join('\n') + (logs.length ? '\n' : '(nothing)\n'));
	}
	process.exitCode = code;
}

async function closeBrowser() {
	if (!browser) return;
	const b = browser;
	browser = undefined;
	await Promise.race([
		b.close().catch(() => {}),
		new Promise((resolve) => setTimeout(resolve, CLOSE_MS).unref()),
	]);
}

// The hard bound: whatever hangs, report, close the browser and exit.
const overall = setTimeout(async () => {
	finish({ mode, ok: false, status: 'TIMEOUT', error: `no outcome within ${OVERALL_MS} ms` }, 3);
	await closeBrowser();
	process.exit(3);
}, OVERALL_MS);

async function main() {
	const page404 = { status: 404, contentType: 'text/plain', body: 'not found\n' };
	const files = {
		'/__e2e__/index.html': {
			path: path.join(here, 'index.html'),
			contentType: 'text/html; charset=utf-8',
		},
		'/__e2e__/flashphoner.js': {
			path: require.resolve('@flashphoner/websdk/flashphoner.js'),
			contentType: 'application/javascript; charset=utf-8',
		},
	};

	browser = await chromium.launch({
		executablePath,
		headless: true,
		timeout: LAUNCH_MS,
		args: [
			'--headless',
			'--no-sandbox',
			'--disable-gpu',
			'--disable-background-networking',
			'--disable-component-update',
			'--no-first-run',
			'--disable-quic',
			'--disable-sync',
		],
	});
	// The test page is fulfilled by Playwright rather than fetched from
	// loopback, so Chromium does not know it as a loopback document and its
	// Local Network Access checks would block the page's requests to rtcgate
	// (net::ERR_BLOCKED_BY_LOCAL_NETWORK_ACCESS_CHECKS). A page really served
	// by rtcgate is loopback to loopback and needs no grant.
	const context = await browser.newContext();
	await context.grantPermissions(['local-network-access'], { origin });
	const page = await context.newPage();

	page.on('console', (m) => note(`[console.${m.type()}] ${m.text()}`));
	page.on('pageerror', (e) => note(`[pageerror] ${e.stack || e.message || e}`));
	page.on('requestfailed', (r) => note(`[requestfailed] ${r.method()} ${r.url()}: ${r.failure()?.errorText}`));
	page.on('response', (r) => {
		if (r.status() >= 400) note(`[response ${r.status()}] ${r.request().method()} ${r.url()}`);
	});
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

	await page.route(`${origin}/__e2e__/**`, async (route) => {
		const f = files[new URL(route.request().url()).pathname];
		if (!f) return route.fulfill(page404);
		return route.fulfill({ status: 200, contentType: f.contentType, body: await readFile(f.path) });
	});

	const resp = await page.goto(`${origin}/__e2e__/index.html?mode=${encodeURIComponent(mode)}`, {
		timeout: GOTO_MS,
		waitUntil: 'load',
	});
	if (!resp || !resp.ok()) {
		throw new Error(`loading the test page gave ${resp ? resp.status() : 'no response'}`);
	}
	// The page bounds each of its steps; OVERALL_MS bounds this wait too.
	const outcome = await page.evaluate(() => window.e2eResult);

	outcome.chromium = browser.version();
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
	return outcome;
}

try {
	const outcome = await main();
	finish(outcome, outcome.ok ? 0 : 1);
} catch (e) {
	finish({ mode, ok: false, status: 'ERROR', error: String(e?.message || e) }, 1);
} finally {
	await closeBrowser();
	clearTimeout(overall);
}
