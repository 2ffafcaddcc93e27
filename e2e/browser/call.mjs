#!/usr/bin/env node
// Places a WebRTC call with the real Flashphoner Web SDK in headless
// Chromium through rtcgate (driven by e2e/webrtc_test.go).
//
//   E2E_CALL='{"appKey":…,"callee":…,"sipOptions":{…}}' node call.mjs HOST:PORT
//
// HOST:PORT is rtcgate's listen-client address. The page (call.html beside
// this script) is opened on rtcgate's own origin
// (http://HOST:PORT/__e2e__/call.html) so that the listener's Origin check
// passes; Playwright fulfils everything under /__e2e__/ from local files and
// every other request goes to rtcgate. E2E_CALL reaches the page as
// window.e2eCall through an init script, so the SIP password never appears
// in a URL.
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

import { chromium } from 'playwright-core';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const OVERALL_MS = 150_000; // whole run, launch to close
const LAUNCH_MS = 30_000;
const GOTO_MS = 15_000;
const CLOSE_MS = 10_000;

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

const [addr] = process.argv.slice(2);
let callConfig;
try {
	callConfig = JSON.parse(process.env.E2E_CALL || '');
} catch {
	callConfig = undefined;
}
if (process.argv.length !== 3 || !addr || !callConfig) {
	process.stderr.write('usage: E2E_CALL=JSON node call.mjs HOST:PORT\n');
	process.exit(2);
}
const origin = `http://${addr}`;
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

const logs = []; // the page's console, errors and failed requests
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
		process.stderr.write(`call.mjs against ${origin} failed: ${outcome.error}\n`);
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
	finish({ ok: false, status: 'TIMEOUT', error: `no outcome within ${OVERALL_MS} ms` }, 3);
	await closeBrowser();
	process.exit(3);
}, OVERALL_MS);

async function main() {
	const page404 = { status: 404, contentType: 'text/plain', body: 'not found\n' };
	const files = {
		'/__e2e__/call.html': {
			path: path.join(here, 'call.html'),
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
			'--use-fake-device-for-media-stream',
			'--use-fake-ui-for-media-stream',
			'--allow-loopback-in-peer-connection',
		],
	});
	// See websdk.mjs: the page is fulfilled by Playwright, so Chromium needs
	// the local-network-access grant to reach rtcgate on loopback; the
	// microphone grant spares getUserMedia a prompt.
	const context = await browser.newContext();
	await context.grantPermissions(['local-network-access', 'microphone'], { origin });
	const page = await context.newPage();
	await page.addInitScript((cfg) => {
		window.e2eCall = cfg;
	}, callConfig);

	page.on('console', (m) => note(`[console.${m.type()}] ${m.text()}`));
	page.on('pageerror', (e) => note(`[pageerror] ${e.stack || e.message || e}`));
	page.on('requestfailed', (r) => note(`[requestfailed] ${r.method()} ${r.url()}: ${r.failure()?.errorText}`));
	page.on('response', (r) => {
		if (r.status() >= 400) note(`[response ${r.status()}] ${r.request().method()} ${r.url()}`);
	});

	await page.route(`${origin}/__e2e__/**`, async (route) => {
		const f = files[new URL(route.request().url()).pathname];
		if (!f) return route.fulfill(page404);
		return route.fulfill({ status: 200, contentType: f.contentType, body: await readFile(f.path) });
	});

	const resp = await page.goto(`${origin}/__e2e__/call.html`, { timeout: GOTO_MS, waitUntil: 'load' });
	if (!resp || !resp.ok()) {
		throw new Error(`loading the test page gave ${resp ? resp.status() : 'no response'}`);
	}
	// The page bounds each of its steps; OVERALL_MS bounds this wait too.
	const outcome = await page.evaluate(() => window.e2eResult);
	outcome.chromium = browser.version();
	return outcome;
}

try {
	const outcome = await main();
	finish(outcome, outcome.ok ? 0 : 1);
} catch (e) {
	finish({ ok: false, status: 'ERROR', error: String(e?.message || e) }, 1);
} finally {
	await closeBrowser();
	clearTimeout(overall);
}
