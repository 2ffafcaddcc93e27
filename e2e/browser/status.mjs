#!/usr/bin/env node
// Opens rtcgate's status page (/status on listen-http, served by rtcgate
// itself) in Debian's headless Chromium while the Go test runs calls, and
// checks that it shows them and follows them live.
//
//   node status.mjs URL OUTDIR EXPECT_JSON
//
// EXPECT_JSON names what must show: {session, account, call, relayCall,
// backend, node}; or {liveOnly: true}: the page follows its events, and
// that is all (one {"step":"done"} line). With STATUS_PASSWORD set the
// browser answers rtcgate's Basic challenge with it (the control-token).
// The dialogue with the Go test, one JSON line each on stdout and one line
// on stdin:
//   1. the page shows every expected row, the SIP call ESTABLISHED and the
//      relay call's packets rising without a reload; screenshots at
//      1280×800 and 390×844 go to OUTDIR → {"step":"shown",...}
//   2. the Go test ends the calls and writes "ended"
//   3. the rows go away, still without a reload → {"step":"done","ok":true}
// Any console error, page error, failed request or HTTP error answer fails
// the run ({"step":"done","ok":false,"problems":[…]}, exit 1). Every wait is
// bounded; the browser is always closed.

import { chromium } from 'playwright-core';
import path from 'node:path';
import readline from 'node:readline';

const [url, outDir, expectJSON] = process.argv.slice(2);
if (!url || !outDir || !expectJSON) {
	process.stderr.write('usage: node status.mjs URL OUTDIR EXPECT_JSON\n');
	process.exit(2);
}
const expect = JSON.parse(expectJSON);
const WAIT_MS = 15_000;
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const problems = [];
const notes = [];

const overall = setTimeout(() => {
	out({ step: 'done', ok: false, error: 'no outcome within 90 s', problems, notes });
	process.exit(3);
}, 90_000);

const lines = readline.createInterface({ input: process.stdin });
const nextLine = () => new Promise((resolve) => lines.once('line', resolve));

// Done ends a liveOnly run early, successfully.
class Done extends Error {}

let browser;
try {
	browser = await chromium.launch({
		executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
		headless: true,
		timeout: 30_000,
		args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
			'--disable-component-update', '--no-first-run', '--disable-quic', '--disable-sync'],
	});
	const context = await browser.newContext({
		viewport: { width: 1280, height: 800 }, colorScheme: 'light',
		httpCredentials: process.env.STATUS_PASSWORD ? { username: 'operator', password: process.env.STATUS_PASSWORD } : undefined,
	});
	const page = await context.newPage();
	let watching = true;
	page.on('console', (m) => {
		notes.push(`[console.${m.type()}] ${m.text()}`);
		if (watching && m.type() === 'error') problems.push(`console error: ${m.text()}`);
	});
	page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
	page.on('requestfailed', (r) => {
		if (watching) problems.push(`request failed: ${r.method()} ${r.url()}: ${r.failure()?.errorText}`);
	});
	page.on('response', (r) => {
		// A Basic challenge answered with the credentials is not a problem.
		if (r.status() >= 400 && !(r.status() === 401 && process.env.STATUS_PASSWORD)) {
			problems.push(`HTTP ${r.status()}: ${r.request().method()} ${r.url()}`);
		}
	});

	const resp = await page.goto(url, { timeout: WAIT_MS, waitUntil: 'load' });
	if (!resp || resp.status() !== 200) throw new Error(`GET ${url}: ${resp ? resp.status() : 'no response'}`);
	const csp = resp.headers()['content-security-policy'] || '';
	if (!csp.includes("default-src 'none'")) throw new Error(`no strict Content-Security-Policy: ${csp}`);
	// A reload would lose this.
	await page.evaluate(() => { window.e2eMarker = 'same document'; });

	const visible = async (selector, what) => {
		try {
			await page.locator(selector).first().waitFor({ state: 'visible', timeout: WAIT_MS });
		} catch (e) {
			throw new Error(`the page never showed ${what} (${selector})`);
		}
	};
	const gone = async (selector, what) => {
		try {
			await page.locator(selector).first().waitFor({ state: 'detached', timeout: WAIT_MS });
		} catch (e) {
			throw new Error(`${what} stayed on the page (${selector})`);
		}
	};
	await visible('#live.ok', 'the live indicator');
	if (expect.liveOnly === "yes") {
		await page.waitForFunction(() => Number(document.body.dataset.updates) >= 2, null, { timeout: WAIT_MS });
		watching = false;
		throw new Done();
	}
	await visible(`[data-session="${expect.session}"]`, `session ${expect.session}`);
	await visible(`[data-account="${expect.account}"] .badge.ok`, `account ${expect.account} REGISTERED`);
	await visible(`[data-call="${expect.call}"][data-state="ESTABLISHED"]`, `call ${expect.call} ESTABLISHED`);
	await visible(`[data-relay-call="${expect.relayCall}"]`, `relay call ${expect.relayCall}`);
	await visible(`[data-backend="${expect.backend}"]`, `backend ${expect.backend}`);
	if (expect.node) await visible(`[data-node="${expect.node}"]`, `node ${expect.node}`);

	// Live: the relay call's RTP packets and rate go up between updates.
	const relayRow = `[data-relay-call="${expect.relayCall}"][data-rtcp="no"]`;
	const packets = () => page.locator(`${relayRow} td[data-label="Packets"]`).first().textContent()
		.then((t) => Number(t.replace(/[^0-9]/g, '')));
	const first = await packets();
	const updates = Number(await page.evaluate(() => document.body.dataset.updates));
	await page.waitForFunction(({ row, n }) => {
		const cell = document.querySelector(`${row} td[data-label="Packets"]`);
		const rate = document.querySelector(`${row} td[data-label="Packets/s"]`);
		return cell && Number(cell.textContent.replace(/[^0-9]/g, '')) > n && rate && parseFloat(rate.textContent) > 0;
	}, { row: relayRow, n: first }, { timeout: WAIT_MS });
	const later = await packets();
	const rate = await page.locator(`${relayRow} td[data-label="Packets/s"]`).first().textContent();
	const updatesLater = Number(await page.evaluate(() => document.body.dataset.updates));
	const callRow = await page.locator(`[data-call="${expect.call}"]`).first().innerText();

	await page.waitForTimeout(300); // let the last update's layout settle
	const desktop = path.join(outDir, 'status-1280x800.png');
	await page.screenshot({ path: desktop, fullPage: true });
	const desktopViewport = path.join(outDir, 'status-1280x800-first-screen.png');
	await page.screenshot({ path: desktopViewport });
	await page.setViewportSize({ width: 390, height: 844 });
	await page.waitForTimeout(300);
	const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
	if (overflow > 0) problems.push(`at 390 px the page is ${overflow} px wider than the screen`);
	const phone = path.join(outDir, 'status-390x844.png');
	await page.screenshot({ path: phone, fullPage: true });
	const phoneViewport = path.join(outDir, 'status-390x844-first-screen.png');
	await page.screenshot({ path: phoneViewport });
	await page.setViewportSize({ width: 1280, height: 800 });

	out({ step: 'shown', packets: [first, later], rate, updates: [updates, updatesLater], callRow,
		screenshots: [desktop, desktopViewport, phone, phoneViewport], problems });

	if ((await nextLine()) !== 'ended') throw new Error('the Go test did not say "ended"');
	await gone(`[data-call="${expect.call}"]`, `call ${expect.call}`);
	await gone(`[data-relay-call="${expect.relayCall}"]`, `relay call ${expect.relayCall}`);
	await visible('#relay tr.empty', 'the empty relay');
	const marker = await page.evaluate(() => window.e2eMarker);
	if (marker !== 'same document') throw new Error('the page was reloaded');
	const finalUpdates = Number(await page.evaluate(() => document.body.dataset.updates));
	watching = false; // closing the page aborts its event stream
	out({ step: 'done', ok: problems.length === 0, updates: finalUpdates, problems, notes });
	process.exitCode = problems.length === 0 ? 0 : 1;
} catch (e) {
	if (e instanceof Done) {
		out({ step: 'done', ok: problems.length === 0, problems, notes });
		process.exitCode = problems.length === 0 ? 0 : 1;
	} else {
		out({ step: 'done', ok: false, error: String(e?.message || e), problems, notes });
		process.exitCode = 1;
	}
} finally {
	clearTimeout(overall);
	lines.close();
	if (browser) await Promise.race([browser.close().catch(() => {}), new Promise((r) => setTimeout(r, 10_000).unref())]);
}
