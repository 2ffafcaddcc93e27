#!/usr/bin/env node
// Drives rtcgate's phone page (served by rtcgate at "/", client-demo) in
// headless Chromium as a person would: by the fields' and buttons' labels
// (so the labels are what a screen reader reads). Driven by
// e2e/phone_test.go.
//
//   E2E_PHONE='{"mode":"ws"|"http","out":DIR,"appKey":…,"callee":…,
//               "sip":{"login","password","domain","proxy","port"},
//               "incoming":true|false}' node phone.mjs HOST:PORT
//
// It types bad input first (each must bring a message on the page), then
// connects (WebSocket, or the HTTP fallback), registers, calls the callee,
// waits for audio both ways in the page's getStats figures, takes
// screenshots at 1280x800 and 390x844 into DIR, presses keypad keys,
// holds and resumes, sends a message to itself and data, hangs up; with
// "incoming" it then prints {"await":"incoming"} and, once a line comes on
// stdin (the test has a SIP peer call the user), answers the incoming call
// and waits for the far end to end it. Then it disconnects.
//
// One JSON line with the outcome goes to stdout (the last line): what the
// page showed (its events, the bad-input messages, the figures), the
// screenshots' paths, and every console message, page error and failed
// request. Exit 0 when every step was reached, 1 otherwise, 3 on the
// overall time bound. The browser is always closed.

import path from 'node:path';
import { createInterface } from 'node:readline';
import { close, launch, scriptArgs, watchPage } from './harness.mjs';

const OVERALL_MS = 150_000;
const STEP_MS = 20_000;

const { addr, cfg } = scriptArgs('E2E_PHONE=JSON node phone.mjs HOST:PORT', (c) => !!c.out, 'E2E_PHONE');

const origin = `http://${addr}`;
const out = { ok: false, mode: cfg.mode, step: 'start', steps: [], badInput: [], screenshots: [], console: [] };
let browser;
let collect = async () => {}; // what the page shows, for the outcome
let done = false;
const finish = async (code) => {
	if (done) return;
	done = true;
	await Promise.race([collect().catch(() => {}), new Promise((resolve) => setTimeout(resolve, 5000).unref())]);
	if (browser) await close(browser);
	process.stdout.write(JSON.stringify(out) + '\n');
	process.exit(code);
};
setTimeout(() => {
	out.error = `no outcome within ${OVERALL_MS} ms (at step ${out.step})`;
	finish(3);
}, OVERALL_MS).unref();

const stdinLines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

const started = Date.now();

async function main() {
	browser = await launch(['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', '--allow-loopback-in-peer-connection']);
	out.chromium = browser.version();
	out.launchMs = Date.now() - started;
	const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
	await context.grantPermissions(['microphone', 'camera'], { origin });
	const page = await context.newPage();
	page.setDefaultTimeout(STEP_MS);
	watchPage(page, (line, type) => out.console.push({ type, line, step: out.step }));

	const step = async (name, fn) => {
		out.step = name;
		const t0 = Date.now();
		await fn();
		out.steps.push(`${name} ${Date.now() - t0}ms`);
	};
	const label = (text) => page.getByLabel(text, { exact: true });
	const button = (name) => page.getByRole('button', { name, exact: true });
	const attrIs = (selector, attr, want, ms = STEP_MS) =>
		page.waitForFunction(([s, a, w]) => document.querySelector(s)?.getAttribute(a) === w, [selector, attr, want], { timeout: ms });
	const events = () => page.$$eval('#events li', (lis) => lis.map((li) => ({
		kind: li.dataset.kind, status: li.dataset.status, text: li.textContent })));
	const eventSeen = (kind, status, ms = STEP_MS) => page.waitForFunction(([k, s]) =>
		[...document.querySelectorAll('#events li')].some((li) => li.dataset.kind === k && li.dataset.status === s),
	[kind, status], { timeout: ms });
	collect = async () => {
		out.events = await events();
		out.alertShown = await page.locator('#alert').isVisible();
		out.alert = await page.locator('#alert').textContent();
	};
	const callStatus = (want, ms = STEP_MS) => attrIs('#call-status', 'data-status', want, ms);
	const shot = async (name, opts = {}) => {
		const file = path.join(cfg.out, `phone-${cfg.mode}-${name}.png`);
		await page.screenshot({ path: file, ...opts });
		out.screenshots.push(file);
	};
	// badInput clicks what, then records the page's message and the
	// fields marked invalid.
	const badInput = async (name, click) => {
		await click();
		await page.locator('#alert').waitFor({ state: 'visible' });
		out.badInput.push({
			name,
			alert: await page.locator('#alert').textContent(),
			invalid: await page.$$eval('[aria-invalid="true"]', (els) => els.map((e) => e.id)),
		});
	};

	await step('load', async () => {
		const resp = await page.goto(`${origin}/`, { waitUntil: 'load' });
		if (!resp || !resp.ok()) throw new Error(`GET / gave ${resp ? resp.status() : 'no response'}`);
		out.csp = resp.headers()['content-security-policy'] || '';
		await attrIs('body', 'data-ready', 'true');
	});
	await step('screenshot-fresh', () => shot('fresh-1280x800'));

	await step('bad-input', async () => {
		await label('Server URL').fill('not a url');
		await badInput('server', () => button('Connect').click());
		await label('Server URL').fill(`ws://${addr}`);
		await label('Login').fill(cfg.sip.login);
		await label('Domain').fill('');
		await badInput('domain', () => button('Connect').click());
		await label('Domain').fill(cfg.sip.domain);
		await label('Port').fill('http');
		await badInput('port', () => button('Connect').click());
		await page.setViewportSize({ width: 390, height: 844 });
		await shot('bad-input-390x844');
		await page.setViewportSize({ width: 1280, height: 800 });
	});

	// An app key rtcgate does not know: refused by the server, said on
	// the page, and the session is over.
	await step('bad-appkey', async () => {
		await label('Port').fill(String(cfg.sip.port));
		await label('App key').fill('no-such-app');
		await badInput('appKey', () => button('Connect').click());
		await page.waitForFunction(() => ['DISCONNECTED', 'FAILED'].includes(document.querySelector('#session-state').dataset.state));
		await button('Connect').waitFor({ state: 'visible' });
		if (await button('Connect').isDisabled()) throw new Error('Connect stays disabled after a refused session');
	});

	await step('connect', async () => {
		await label('App key').fill(cfg.appKey);
		await page.getByRole('radio', { name: cfg.mode === 'http' ? 'HTTP fallback' : 'WebSocket' }).check();
		await label('Password').fill(cfg.sip.password);
		await label('Outbound proxy').fill(cfg.sip.proxy);
		await label('Port').fill(String(cfg.sip.port));
		await button('Connect').click();
		await attrIs('#session-state', 'data-state', 'ESTABLISHED');
		await attrIs('#sip-state', 'data-state', 'REGISTERED');
		if (await page.locator('#alert').isVisible()) {
			throw new Error('the page shows an alert after a good connect: ' + await page.locator('#alert').textContent());
		}
	});

	await step('bad-callee', async () => {
		await label('Number or SIP user').fill('');
		await badInput('callee', () => button('Call').click());
		await label('Number or SIP user').fill('a b');
		await badInput('callee-spaces', () => button('Call').click());
	});

	await step('call', async () => {
		await label('Number or SIP user').fill(cfg.callee);
		await button('Call').click();
		await callStatus('ESTABLISHED');
	});

	await step('audio', async () => {
		// The page's own getStats figures: a few dozen packets each way,
		// and a level heard from the far end (sipp echoes the fake
		// microphone's beeps).
		await page.waitForFunction(() => {
			const s = document.querySelector('#media-stats');
			return Number(s.dataset.sent) >= 25 && Number(s.dataset.received) >= 25;
		});
		await page.waitForFunction(() => Number(document.querySelector('#level-remote').dataset.level) > 0);
		out.stats = await page.$eval('#media-stats', (s) => ({ sent: Number(s.dataset.sent), received: Number(s.dataset.received) }));
		out.remoteLevel = await page.$eval('#level-remote', (m) => Number(m.dataset.level));
	});

	await step('screenshots', async () => {
		await shot('1280x800');
		await page.setViewportSize({ width: 390, height: 844 });
		await shot('390x844');
		await shot('390x844-full', { fullPage: true });
		await page.setViewportSize({ width: 1280, height: 800 });
	});

	await step('keypad', async () => {
		const keypad = page.getByRole('group', { name: 'Keypad' });
		for (const key of ['1', '2', 'pound']) {
			await keypad.getByRole('button', { name: key, exact: true }).click();
		}
		// and from the keyboard, focus outside the fields
		await keypad.getByRole('button', { name: '3', exact: true }).focus();
		await page.keyboard.press('4');
		await page.waitForFunction(() => document.querySelector('#dtmf-sent').textContent === '12#4');
		out.dtmf = await page.locator('#dtmf-sent').textContent();
	});

	await step('hold', async () => {
		await button('Hold').click();
		await callStatus('HOLD');
		await button('Unhold').click();
		await callStatus('ESTABLISHED');
	});

	await step('message', async () => {
		await label('Message').fill('');
		await badInput('message', () => button('Send message').click());
		await label('Message').fill('hello from the phone');
		await button('Send message').click();
		await page.locator('#messages li.in', { hasText: 'hello from the phone' }).waitFor();
		await eventSeen('message', 'ACCEPTED');
	});

	await step('data', async () => {
		await label('Data for the app\'s backend').fill('{"hello": "rtcgate"}');
		await button('Send data').click();
		await eventSeen('data', 'ACCEPTED');
	});

	await step('hangup', async () => {
		await button('Hang up').click();
		await callStatus('FINISH');
	});

	if (cfg.incoming) {
		await step('incoming', async () => {
			process.stdout.write(JSON.stringify({ await: 'incoming' }) + '\n');
			const line = await stdinLines.next();
			if (line.done) throw new Error('stdin closed before the incoming call');
			await button('Answer').waitFor({ state: 'visible' });
			out.incomingFrom = await page.locator('#call-peer').textContent();
			await button('Answer').click();
			await callStatus('ESTABLISHED');
			await callStatus('FINISH'); // the far end hangs up
		});
	}

	await step('screenshot-end', () => shot('end-1280x800'));

	await step('disconnect', async () => {
		await button('Disconnect').click();
		await attrIs('#session-state', 'data-state', 'DISCONNECTED');
	});

	// The fields come back on the next visit, but not the password; the
	// URL's query fills fields too, never the password.
	await step('remembered', async () => {
		// What this page showed is the outcome: collected before leaving it.
		await collect();
		collect = async () => {};
		out.stored = await page.evaluate(() => localStorage.getItem('rtcgate.phone.v1'));
		await page.goto(`${origin}/?callee=carol&sipPassword=from-the-url`, { waitUntil: 'load' });
		await attrIs('body', 'data-ready', 'true');
		out.reloaded = {
			login: await label('Login').inputValue(),
			password: await label('Password').inputValue(),
			callee: await label('Number or SIP user').inputValue(),
			transport: await page.getByRole('radio', { name: 'HTTP fallback' }).isChecked() ? 'http' : 'ws',
		};
	});

	out.ok = true;
}

main().then(() => finish(0), (e) => {
	out.error = String(e?.message || e);
	finish(1);
});
