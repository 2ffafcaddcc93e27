// What websdk.mjs and call.mjs share: run one test page of the real
// Flashphoner Web SDK in Debian's headless Chromium against rtcgate's client
// listener, and report its outcome.
//
// The page is opened on rtcgate's own origin (http://HOST:PORT/__e2e__/…) so
// that the listener's Origin check passes; Playwright fulfils everything
// under /__e2e__/ from local files (the page beside these scripts,
// flashphoner.js from node_modules/@flashphoner/websdk), and every other
// request goes to rtcgate. The page leaves its outcome in window.e2eResult.
//
// One JSON line with the outcome goes to stdout; the exit status is 0 on
// success, 1 on failure, 3 when the overall time bound runs out, and on
// failure the page's console, errors and failed requests go to stderr. The
// browser is always closed. Chromium is Debian's (env CHROMIUM, default
// /usr/bin/chromium); Playwright's own browsers are never downloaded.

import { chromium } from 'playwright-core';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const LAUNCH_MS = 30_000;
const GOTO_MS = 15_000;
const CLOSE_MS = 10_000;

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

// scriptArgs is a driver script's HOST:PORT argument and its configuration
// in the environment variable env (JSON, for the page as window.e2eCall: it
// may carry a SIP password, so it never goes in a URL); ok(cfg) says whether
// the configuration will do. Anything else prints usage and exits 2.
export function scriptArgs(usage, ok = () => true, env = 'E2E_CALL') {
	const [addr] = process.argv.slice(2);
	let cfg;
	try {
		cfg = JSON.parse(process.env[env] || '');
	} catch {
		cfg = undefined;
	}
	if (process.argv.length !== 3 || !addr || !cfg || !ok(cfg)) {
		process.stderr.write(`usage: ${usage}\n`);
		process.exit(2);
	}
	return { addr, cfg };
}

// launch starts Debian's headless Chromium (env CHROMIUM, default
// /usr/bin/chromium) with extraArgs; Playwright's own browsers are never used.
export function launch(extraArgs = []) {
	return chromium.launch({
		executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
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
			...extraArgs,
		],
	});
}

// close closes the browser, waiting at most CLOSE_MS.
export function close(browser) {
	return Promise.race([browser.close().catch(() => {}), new Promise((resolve) => setTimeout(resolve, CLOSE_MS).unref())]);
}

// watchPage passes note a line for each console message, page error,
// failed request and response of 400 or more.
export function watchPage(page, note) {
	page.on('console', (m) => note(`[console.${m.type()}] ${m.text()}`, m.type()));
	page.on('pageerror', (e) => note(`[pageerror] ${e.stack || e.message || e}`, 'pageerror'));
	page.on('requestfailed', (r) => note(`[requestfailed] ${r.method()} ${r.url()}: ${r.failure()?.errorText}`, 'requestfailed'));
	page.on('response', (r) => {
		if (r.status() >= 400) note(`[response ${r.status()}] ${r.request().method()} ${r.url()}`, 'response');
	});
}

// runPage runs the page and exits the process with its verdict.
//   name        the script's name, for messages
//   addr        rtcgate's listen-client HOST:PORT
//   page        the page file beside the scripts, e.g. 'index.html'
//   query       the page URL's query string ('' for none)
//   overallMs   the hard bound on the whole run
//   base        fields every outcome carries (e.g. {mode})
//   extraArgs   more Chromium flags
//   permissions more permissions for rtcgate's origin
//   init        a value the page gets as window.e2eCall before it loads
//   dirs        more files: {'/__e2e__/prefix/': directory}, served as
//               JavaScript (an ES module library such as SIP.js's lib)
//   watch(page, origin, note)      set up more page listeners (may be async)
//   after(page, outcome, note)     act on the page once its outcome is in
//                                  (e.g. close it), before check
//   check(outcome, note)           refine the page's outcome
export async function runPage({ name, addr, page: pageFile, query = '', overallMs, base = {}, extraArgs = [],
	permissions = [], init, dirs = {}, watch, after, check }) {
	const origin = `http://${addr}`;
	const logs = [];
	const note = (line) => logs.push(line);
	let browser;
	let finished = false;
	const finish = (outcome, code) => {
		if (finished) return; // the first outcome (e.g. the overall timeout) stands
		finished = true;
		process.stdout.write(JSON.stringify({ ...base, ...outcome }) + '\n');
		if (code !== 0) {
			process.stderr.write(`${name} against ${origin} failed: ${outcome.error}\n`);
			process.stderr.write('--- page console, errors and failed requests ---\n');
			process.stderr.write(logs.join('\n') + (logs.length ? '\n' : '(nothing)\n'));
		}
		process.exitCode = code;
	};
	const closeBrowser = async () => {
		if (!browser) return;
		const b = browser;
		browser = undefined;
		await close(b);
	};
	// The hard bound: whatever hangs, report, close the browser and exit.
	const overall = setTimeout(async () => {
		finish({ ok: false, status: 'TIMEOUT', error: `no outcome within ${overallMs} ms` }, 3);
		await closeBrowser();
		process.exit(3);
	}, overallMs);

	const main = async () => {
		const files = {
			[`/__e2e__/${pageFile}`]: { path: path.join(here, pageFile), contentType: 'text/html; charset=utf-8' },
			'/__e2e__/helpers.js': { path: path.join(here, 'helpers.js'), contentType: 'application/javascript; charset=utf-8' },
			'/__e2e__/flashphoner.js': {
				path: require.resolve('@flashphoner/websdk/flashphoner.js'),
				contentType: 'application/javascript; charset=utf-8',
			},
		};
		browser = await launch(extraArgs);
		// The test page is fulfilled by Playwright rather than fetched from
		// loopback, so Chromium does not know it as a loopback document and
		// its Local Network Access checks would block the page's requests to
		// rtcgate (net::ERR_BLOCKED_BY_LOCAL_NETWORK_ACCESS_CHECKS). A page
		// really served by rtcgate is loopback to loopback and needs no grant.
		const context = await browser.newContext();
		await context.grantPermissions(['local-network-access', ...permissions], { origin });
		const page = await context.newPage();
		if (init !== undefined) {
			// Through an init script, not the URL: it may carry a SIP password.
			await page.addInitScript((cfg) => {
				window.e2eCall = cfg;
			}, init);
		}
		watchPage(page, note);
		if (watch) await watch(page, origin, note);
		await page.route(`${origin}/__e2e__/**`, async (route) => {
			const pathname = new URL(route.request().url()).pathname;
			let f = files[pathname];
			for (const [prefix, dir] of Object.entries(dirs)) {
				const rel = pathname.startsWith(prefix) ? path.normalize(pathname.slice(prefix.length)) : '';
				if (!f && rel && !rel.startsWith('..') && rel.endsWith('.js')) {
					f = { path: path.join(dir, rel), contentType: 'application/javascript; charset=utf-8' };
				}
			}
			if (!f) return route.fulfill({ status: 404, contentType: 'text/plain', body: 'not found\n' });
			return route.fulfill({ status: 200, contentType: f.contentType, body: await readFile(f.path) });
		});
		const resp = await page.goto(`${origin}/__e2e__/${pageFile}${query}`, { timeout: GOTO_MS, waitUntil: 'load' });
		if (!resp || !resp.ok()) {
			throw new Error(`loading the test page gave ${resp ? resp.status() : 'no response'}`);
		}
		// The page bounds each of its steps; overallMs bounds this wait too.
		const outcome = await page.evaluate(() => window.e2eResult);
		outcome.chromium = browser.version();
		if (after && outcome.ok) await after(page, outcome, note);
		if (check) check(outcome, note);
		return outcome;
	};

	try {
		const outcome = await main();
		finish(outcome, outcome.ok ? 0 : 1);
	} catch (e) {
		finish({ ok: false, status: 'ERROR', error: String(e?.message || e) }, 1);
	} finally {
		await closeBrowser();
		clearTimeout(overall);
	}
}
