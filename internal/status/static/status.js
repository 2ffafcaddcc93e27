// rtcgate's status page: follows /status/events (server-sent events, one
// JSON snapshot each) and draws it. Every value goes in as text, never as
// HTML: names and ids come from clients and backends.
'use strict';

(function () {
	const $ = (id) => document.getElementById(id);

	function el(tag, attrs, ...children) {
		const e = document.createElement(tag);
		for (const [k, v] of Object.entries(attrs || {})) {
			if (v === undefined || v === null || v === false) continue;
			if (k === 'class') e.className = v;
			else e.setAttribute(k, v === true ? '' : String(v));
		}
		for (const c of children) {
			if (c === undefined || c === null || c === '') continue;
			e.append(c instanceof Node ? c : document.createTextNode(String(c)));
		}
		return e;
	}

	// Figures.
	const int = (n) => Math.round(n || 0).toLocaleString('en-US');
	function duration(s) {
		s = Math.max(0, Math.floor(s || 0));
		const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
		const pad = (n) => String(n).padStart(2, '0');
		return h > 0 ? `${h}:${pad(m)}:${pad(sec)}` : `${m}:${pad(sec)}`;
	}
	function bytes(n) {
		const units = ['B', 'kB', 'MB', 'GB', 'TB'];
		let i = 0;
		n = n || 0;
		while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
		return `${i ? n.toFixed(1) : n} ${units[i]}`;
	}
	function ms(sec) {
		if (!sec) return '–';
		return sec < 0.01 ? `${(sec * 1000).toFixed(2)} ms` : `${Math.round(sec * 1000)} ms`;
	}
	// A stream's peer: latched from its packets, or as its SDP said until
	// one arrives.
	const peer = (st) => (!st.remote ? '–' : st.confirmed ? st.remote
		: el('span', { class: 'muted', title: 'from the SDP: no packet from it yet' }, st.remote, ' (SDP)'));
	const rate = (r) => (r === null || r === undefined ? '…' : `${r < 10 ? r.toFixed(1) : Math.round(r)}/s`);

	// A status as a badge, coloured by what it means.
	const tone = {
		ESTABLISHED: 'ok', REGISTERED: 'ok', websocket: 'ok', http: 'ok',
		TRYING: 'wait', RING: 'wait', SESSION_PROGRESS: 'wait', PENDING: 'wait',
		HOLD: 'info', UNREGISTERED: 'info',
		FAILED: 'bad', BUSY: 'bad',
		up: 'ok', down: 'bad',
	};
	const badge = (s, fallback) => el('span', { class: `badge ${tone[s] || 'none'}` }, s || fallback || '–');

	// table fills a <table> with a caption, a header row and rows; empty
	// says what an empty list means.
	function table(t, caption, columns, rows, empty, more) {
		const head = el('tr', {}, ...columns.map((c) => el('th', { scope: 'col', class: c.num ? 'num' : null }, c.title)));
		const body = el('tbody');
		for (const r of rows) {
			body.append(el('tr', r.attrs || {}, ...columns.map((c) => el('td', { class: [c.num && 'num', c.wide && 'wide'].filter(Boolean).join(' ') || null, 'data-label': c.title }, c.cell(r)))));
		}
		if (!rows.length) {
			body.append(el('tr', { class: 'empty' }, el('td', { colspan: columns.length }, empty)));
		}
		if (more) {
			body.append(el('tr', { class: 'more' }, el('td', { colspan: columns.length }, `and ${int(more)} more (status-max-rows)`)));
		}
		t.replaceChildren(el('caption', {}, caption), el('thead', {}, head), body);
	}

	function figures(dl, items) {
		dl.replaceChildren(...items.flatMap(([label, value, cls]) => [
			el('div', { class: `figure ${cls || ''}` }, el('dt', {}, label), el('dd', {}, value)),
		]));
	}

	function draw(s) {
		$('node').textContent = `${s.node || 'this node'} · ${s.version} · up ${duration(s.uptime)}`;

		const sip = s.sip;
		const hooks = s.hooks;
		const relay = s.relay;
		figures($('summary'), [
			['Client sessions', int(s.clients.sessions)],
			['SIP accounts', sip ? int(sip.accounts) : 'off'],
			['SIP calls', sip ? int(sip.activeCalls) : 'off'],
			['Relay calls', int(relay.sessions)],
			['Packets/s', int(relay.packetsPerSecond)],
			['Hook queue', int(hooks.depth), hooks.depth > 0 ? 'warn' : ''],
			['Dead letters', int(hooks.deadLetters), hooks.deadLetters > 0 ? 'alert' : ''],
			['Nodes', s.cluster ? int((s.cluster.nodes || []).length) : 'single'],
		]);

		table($('apps'), 'Sessions per app', [
			{ title: 'App', cell: (a) => a.app },
			{ title: 'Key', cell: (a) => el('code', {}, a.key) },
			{ title: 'Sessions', num: true, cell: (a) => int(a.sessions) },
			{ title: 'WebSocket', num: true, cell: (a) => int(a.websocket) },
			{ title: 'HTTP fallback', num: true, cell: (a) => int(a.http) },
			{ title: 'Awaiting resume', num: true, cell: (a) => int(a.waiting) },
		], s.clients.apps || [], 'No apps.');

		table($('sessions'), 'Sessions', [
			{ title: 'Session', cell: (x) => el('code', {}, x.id + '…') },
			{ title: 'App', cell: (x) => x.app },
			{ title: 'Transport', cell: (x) => badge(x.transport, 'awaiting resume') },
			{ title: 'Address', cell: (x) => x.remote },
			{ title: 'Age', num: true, cell: (x) => duration(x.age) },
			{ title: 'SIP account', cell: (x) => x.account || '–' },
			{ title: 'Registration', cell: (x) => (x.account ? badge(x.registration, 'not registered') : '–') },
			{ title: 'Calls', num: true, cell: (x) => int(x.calls) },
		], (s.clients.list || []).map((x) => ({ ...x, attrs: { 'data-session': x.id } })), 'No client sessions.', s.clients.more);

		$('sip').hidden = !sip;
		if (sip) {
			const reg = sip.registrations || {}, ended = sip.ended || {};
			const sum = (o, pred) => Object.entries(o).filter(([k]) => pred(k)).reduce((a, [, v]) => a + v, 0);
			figures($('sip-totals'), [
				['Accounts', int(sip.accounts)],
				['Active calls', int(sip.activeCalls)],
				['Registered (total)', int(reg.REGISTERED)],
				['Registrations failed', int(reg.FAILED), reg.FAILED > 0 ? 'warn' : ''],
				['Calls finished', int(sum(ended, (k) => k.endsWith(' FINISH')))],
				['Calls busy', int(sum(ended, (k) => k.endsWith(' BUSY')))],
				['Calls failed', int(sum(ended, (k) => k.endsWith(' FAILED'))), sum(ended, (k) => k.endsWith(' FAILED')) > 0 ? 'warn' : ''],
			]);
			table($('calls'), 'Calls', [
				{ title: 'Call', cell: (c) => el('code', {}, c.id) },
				{ title: 'Direction', cell: (c) => c.direction },
				{ title: 'From', cell: (c) => c.caller },
				{ title: 'To', cell: (c) => c.callee },
				{ title: 'State', cell: (c) => badge(c.status, 'new') },
				{ title: 'Duration', num: true, cell: (c) => duration(c.duration) },
				{ title: 'Talking', num: true, cell: (c) => (c.talking ? duration(c.talking) : '–') },
				{ title: 'Session', cell: (c) => el('code', {}, c.session + '…') },
				{ title: 'Relay call', wide: true, cell: (c) => el('code', {}, c.media) },
			], (sip.calls || []).map((c) => ({ ...c, attrs: { 'data-call': c.id, 'data-state': c.status } })), 'No calls.', sip.moreCalls);
			table($('registrations'), 'SIP accounts', [
				{ title: 'Account', cell: (r) => r.account },
				{ title: 'Transport', cell: (r) => r.transport },
				{ title: 'Registration', cell: (r) => badge(r.status, 'not registered') },
				{ title: 'SIP status', num: true, cell: (r) => (r.code ? r.code : '–') },
				{ title: 'Since', num: true, cell: (r) => (r.status ? duration(r.age) : '–') },
				{ title: 'Session', cell: (r) => el('code', {}, r.session + '…') },
				{ title: 'App', cell: (r) => r.app },
			], (sip.accountList || []).map((r) => ({ ...r, attrs: { 'data-account': r.account } })), 'No SIP accounts.', sip.moreAccounts);
		}

		figures($('relay-totals'), [
			['Calls', int(relay.sessions)],
			['Streams', int(relay.streams)],
			['Packets/s', int(relay.packetsPerSecond)],
			['Bytes/s', bytes(relay.bytesPerSecond)],
			['Errors/s', int(relay.errorsPerSecond), relay.errorsPerSecond > 0 ? 'warn' : ''],
			['Relayed', `${int(relay.packets)} pkts`],
			['Errors', int(relay.errors), relay.errors > 0 ? 'warn' : ''],
			['Ports in use', `${int(relay.portsUsed)} / ${int(relay.portsTotal)}`],
		]);
		const streams = [];
		for (const c of relay.calls || []) {
			(c.streams || []).forEach((st, i) => streams.push({ call: c, st, first: i === 0, n: c.streams.length }));
		}
		table($('relay'), 'Calls and streams', [
			{ title: 'Call-ID', wide: true, cell: (r) => (r.first ? el('code', {}, r.call.id) : '') },
			{ title: 'Age', num: true, cell: (r) => (r.first ? duration(r.call.age) : '') },
			{ title: 'Tag', cell: (r) => r.st.tag },
			{ title: 'Media', cell: (r) => `${r.st.media} ${r.st.type}${r.st.rtcp ? ' RTCP' : ''}` },
			{ title: 'Local', cell: (r) => r.st.local },
			{ title: 'Peer', cell: (r) => peer(r.st) },
			{ title: 'Packets/s', num: true, cell: (r) => rate(r.st.rate) },
			{ title: 'Packets', num: true, cell: (r) => int(r.st.packets) },
			{ title: 'Bytes', num: true, cell: (r) => bytes(r.st.bytes) },
			{ title: 'Errors', num: true, cell: (r) => int(r.st.errors) },
		], streams.map((r) => ({ ...r, attrs: { class: r.first ? 'group' : null, 'data-relay-call': r.call.id, 'data-rtcp': r.st.rtcp ? 'yes' : 'no' } })),
		'No calls in the relay.', relay.more);

		figures($('hook-totals'), [
			['Queued', int(hooks.depth), hooks.depth > 0 ? 'warn' : ''],
			['Oldest', hooks.oldest ? duration(hooks.oldest) : '–', hooks.oldest > 10 ? 'alert' : ''],
			['Delivered', int(hooks.delivered)],
			['Retried', int(hooks.retries), hooks.retries > 0 ? 'warn' : ''],
			['Dead-lettered', int(hooks.deadLettered), hooks.deadLettered > 0 ? 'alert' : ''],
			['Dead letters kept', int(hooks.deadLetters)],
			['Spilled (Redis down)', int(hooks.spilled), hooks.spilled > 0 ? 'alert' : ''],
			['Refused', int(hooks.refused), hooks.refused > 0 ? 'alert' : ''],
		]);
		table($('backends'), 'Backends', [
			{ title: 'App', cell: (b) => b.app },
			{ title: 'Requests', num: true, cell: (b) => int(b.requests) },
			{ title: 'Rate', num: true, cell: (b) => rate(b.rate) },
			{ title: 'Failed', num: true, cell: (b) => int(b.failures) },
			{ title: 'Mean', num: true, cell: (b) => ms(b.mean) },
			{ title: 'p50', num: true, cell: (b) => ms(b.p50) },
			{ title: 'p95', num: true, cell: (b) => ms(b.p95) },
		], (hooks.backends || []).map((b) => ({ ...b, attrs: { 'data-backend': b.app } })), 'No hook requests yet.');

		const cl = s.cluster;
		$('nodes').hidden = !cl;
		if (!cl) {
			$('cluster-note').textContent = 'A single node: cluster-redis is not set.';
		} else {
			$('cluster-note').replaceChildren('Redis ', badge(cl.redisUp ? 'up' : 'down'), cl.error ? ` — list nodes: ${cl.error}` : '');
			table($('nodes'), 'Nodes', [
				{ title: 'Node', cell: (n) => (n.self ? el('strong', {}, n.id, ' (this node)') : n.id) },
				{ title: 'Client', cell: (n) => n.client },
				{ title: 'HTTP', cell: (n) => n.http },
				{ title: 'Sessions', num: true, cell: (n) => int(n.sessions) },
				{ title: 'Heartbeat', num: true, cell: (n) => `${n.heartbeat.toFixed(1)} s ago` },
			], (cl.nodes || []).map((n) => ({ ...n, attrs: { 'data-node': n.id } })), 'No live nodes.');
		}
	}

	// The live feed. EventSource reconnects by itself (rtcgate ends a
	// stream after control-idle-timeout, or when it shuts down).
	let lastAt = 0, count = 0, interval = 1;
	const live = $('live');
	function mark(state, text) {
		live.className = `live ${state}`;
		live.textContent = text;
	}
	function follow() {
		const es = new EventSource('/status/events');
		es.onmessage = (ev) => {
			let s;
			try {
				s = JSON.parse(ev.data);
			} catch (e) {
				mark('stale', 'unreadable update');
				return;
			}
			lastAt = Date.now();
			interval = s.interval || 1;
			count++;
			draw(s);
			document.body.dataset.updates = String(count);
			mark('ok', `live · ${new Date(s.time).toLocaleTimeString('en-GB')}`);
		};
		es.onerror = () => {
			if (es.readyState === EventSource.CLOSED) {
				mark('stale', 'disconnected; retrying…');
				setTimeout(follow, 3000);
			} else {
				mark('stale', 'reconnecting…');
			}
		};
	}
	setInterval(() => {
		if (lastAt && Date.now() - lastAt > 3000 * interval && live.classList.contains('ok')) {
			mark('stale', 'no update for a while…');
		}
	}, 1000);
	follow();
})();
