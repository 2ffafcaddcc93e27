#!/usr/bin/env node
// Opens an attacker's page in Debian's headless Chromium; the page tries to
// drive rtcgate's control plane the ways a web page can: a cross-site
// no-cors POST to /cli and /ng-plain, an <img> GET /cli/set+…, a WebSocket
// to cli.rtpengine.com. Prints what the page saw as one JSON line.
//
//   node csrf.mjs PAGE_URL
//
// Names resolve as Chromium's --host-resolver-rules say (the Go test maps
// rebind.attacker.example to 127.0.0.1, as DNS rebinding would).

import { chromium } from 'playwright-core';

const [pageURL] = process.argv.slice(2);
if (!pageURL) {
	process.stderr.write('usage: node csrf.mjs PAGE_URL\n');
	process.exit(2);
}
const browser = await chromium.launch({
	executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
	headless: true,
	timeout: 30_000,
	args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
		'--disable-component-update', '--no-first-run', '--disable-quic', '--disable-sync',
		'--host-resolver-rules=MAP rebind.attacker.example 127.0.0.1'],
});
try {
	const page = await browser.newPage();
	await page.goto(pageURL, { timeout: 15_000 });
	await page.waitForFunction(() => window.done === true, null, { timeout: 20_000 });
	process.stdout.write(JSON.stringify(await page.evaluate(() => window.results)) + '\n');
} finally {
	await browser.close();
}
