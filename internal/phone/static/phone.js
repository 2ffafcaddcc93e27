/*
 * rtcgate phone: everything the page does. Plain ES2017, no build step, no
 * dependencies but the two scripts index.html loads before it: the
 * unmodified Flashphoner Web SDK (global Flashphoner) and rtcgate's browser
 * shim (global rtcgate: a WebSocket over the HTTP fallback).
 *
 * What the SDK 2.0 does not offer, the page does beside it, without
 * changing it:
 *   - SIP messages: the SDK has no sendMessage, and passes rtcgate's
 *     MessageStatusEvent and OnMessageEvent frames to nobody. The page
 *     wraps the WebSocket constructor for the one createSession call, so it
 *     holds the SDK's own connection: it sends the sendMessage frame on it
 *     and reads those frames (and each call's SIP status) from it.
 *   - audio levels and packet counts: RTCPeerConnection.getStats() of the
 *     connection the SDK made for the call (the page records the
 *     connections made on it).
 *
 * Bad input gets a message on the page (the alert at the top, the field
 * marked), never an exception. Fields are remembered in localStorage,
 * never the password; ?server=…&sipLogin=…&callee=… in the URL fills them
 * too (make demo prints such a URL).
 */
(function () {
	'use strict';

	var STORE_KEY = 'rtcgate.phone.v1';
	var MAX_EVENTS = 400; // event log entries kept (the oldest go first)
	var MAX_MESSAGES = 100;
	var MAX_SHOWN = 300; // characters of a message, payload or info shown
	var DATA_MS = 15000; // sendData → DataStatusEvent
	var STATS_MS = 500; // levels and packet counts, while a call is up
	var STORED = ['server', 'appKey', 'transport', 'sipLogin', 'sipDomain', 'sipProxy', 'sipPort', 'sipAuthName',
		'sipRegister', 'callee', 'msgTo'];
	// A SIP user, host or app key: printable, no spaces, quotes or brackets.
	var TOKEN = /^[^\s<>"'\\\u0000-\u001f\u007f]+$/;

	var S; // Flashphoner.constants.SESSION_STATUS
	var C; // Flashphoner.constants.CALL_STATUS

	var session = null; // the SDK's session
	var conn = null; // its connection: a WebSocket or rtcgate.HTTPWebSocket
	var account = null; // the SIP account the session was opened with
	var call = null; // the SDK's call while one exists
	var callState = 'NONE';
	var callIncoming = false; // the call came in (Answer applies)
	var callInfo = {}; // callId → the SIP status of its last frame
	var callSince = 0;
	var pcs = []; // the RTCPeerConnections made on this page, newest last
	var statsTimer = 0;
	var clockTimer = 0;
	var msgSeq = 0;

	function $(id) {
		return document.getElementById(id);
	}

	// Every RTCPeerConnection the SDK makes, for getStats().
	(function recordPeerConnections() {
		var Native = window.RTCPeerConnection;
		if (typeof Native !== 'function') {
			return;
		}
		function Recording(config, constraints) {
			var pc = new Native(config, constraints);
			pcs.push(pc);
			if (pcs.length > 4) {
				pcs.shift();
			}
			return pc;
		}
		Recording.prototype = Native.prototype;
		Object.setPrototypeOf(Recording, Native); // generateCertificate
		window.RTCPeerConnection = Recording;
	})();

	function short(s) {
		s = String(s === undefined || s === null ? '' : s);
		return s.length > MAX_SHOWN ? s.slice(0, MAX_SHOWN) + '…' : s;
	}

	// quote is user input inside a message: short, on one line.
	function quote(s) {
		s = String(s).replace(/\s+/g, ' ');
		return '“' + (s.length > 40 ? s.slice(0, 40) + '…' : s) + '”';
	}

	function errorText(e) {
		return short((e && e.message) || e || 'unknown error');
	}

	// ---- the alert, field problems -------------------------------------

	function showAlert(text) {
		var a = $('alert');
		a.textContent = text;
		a.hidden = false;
	}

	function clearAlert() {
		$('alert').hidden = true;
		$('alert').textContent = '';
		document.querySelectorAll('[aria-invalid="true"]').forEach(function (el) {
			el.removeAttribute('aria-invalid');
		});
	}

	// showProblems marks each field and says what is wrong in the alert;
	// the first field gets the focus.
	function showProblems(problems) {
		clearAlert();
		problems.forEach(function (p) {
			if (p.field) {
				$(p.field).setAttribute('aria-invalid', 'true');
			}
		});
		showAlert(problems.map(function (p) { return p.msg; }).join(' '));
		var first = problems.find(function (p) { return p.field; });
		if (first) {
			$(first.field).focus();
		}
	}

	// ---- the event log --------------------------------------------------

	var OK = ['ESTABLISHED', 'REGISTERED', 'ACCEPTED', 'RECEIVED', 'CONNECTED', 'SENT'];
	var BAD = ['FAILED', 'BUSY', 'fail', 'NO ANSWER', 'ERROR'];

	function log(kind, status, detail) {
		var list = $('events');
		var atEnd = list.scrollTop + list.clientHeight >= list.scrollHeight - 8;
		var li = document.createElement('li');
		li.dataset.kind = kind;
		li.dataset.status = status;
		li.dataset.level = OK.indexOf(status) >= 0 ? 'ok' : BAD.indexOf(status) >= 0 ? 'error' :
			(status === 'HOLD' || status === 'DISCONNECTED' ? 'warn' : 'info');
		var t = document.createElement('time');
		var now = new Date();
		t.dateTime = now.toISOString();
		t.textContent = now.toTimeString().slice(0, 8);
		var k = document.createElement('span');
		k.className = 'kind';
		k.textContent = kind;
		var st = document.createElement('span');
		st.className = 'status';
		st.textContent = status;
		li.append(t, k, st);
		if (detail) {
			li.append(' ' + short(detail));
		}
		list.appendChild(li);
		while (list.children.length > MAX_EVENTS) {
			list.removeChild(list.firstChild);
		}
		if (atEnd) {
			list.scrollTop = list.scrollHeight;
		}
	}

	// ---- fields ---------------------------------------------------------

	function defaults() {
		return {
			server: (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host,
			appKey: '', transport: 'ws', sipLogin: '', sipDomain: '', sipProxy: '', sipPort: '', sipAuthName: '',
			sipRegister: true, callee: '', msgTo: ''
		};
	}

	function setField(name, value) {
		if (name === 'transport') {
			$(value === 'http' ? 'transport-http' : 'transport-ws').checked = true;
		} else if (name === 'sipRegister') {
			$('sipRegister').checked = value;
		} else {
			$(name).value = value;
		}
	}

	function getField(name) {
		if (name === 'transport') {
			return $('transport-http').checked ? 'http' : 'ws';
		}
		if (name === 'sipRegister') {
			return $('sipRegister').checked;
		}
		return $(name).value;
	}

	// loadFields: the defaults, then what was remembered, then the URL's
	// query (never a password from either).
	function loadFields() {
		var v = defaults();
		var stored = null;
		try {
			stored = JSON.parse(localStorage.getItem(STORE_KEY) || 'null');
		} catch (e) {
			stored = null; // storage off, or not ours: the defaults
		}
		var query = new URLSearchParams(location.search);
		STORED.forEach(function (k) {
			if (stored && typeof stored === 'object' && typeof stored[k] === typeof v[k]) {
				v[k] = typeof v[k] === 'string' ? stored[k].slice(0, 512) : stored[k];
			}
			if (query.has(k)) {
				v[k] = typeof v[k] === 'boolean' ? query.get(k) !== 'false' : query.get(k).slice(0, 512);
			}
		});
		STORED.forEach(function (k) { setField(k, v[k]); });
	}

	function saveFields() {
		var v = {};
		STORED.forEach(function (k) { v[k] = getField(k); });
		try {
			localStorage.setItem(STORE_KEY, JSON.stringify(v));
		} catch (e) {
			// storage off or full: the page works without it
		}
	}

	// ---- connect --------------------------------------------------------

	function readConnect() {
		var problems = [];
		var server = $('server').value.trim();
		var u = null;
		try {
			u = new URL(server);
		} catch (e) {
			u = null;
		}
		if (!server) {
			problems.push({field: 'server', msg: 'Server URL: give rtcgate\'s address, such as ws://127.0.0.1:8080.'});
		} else if (!u || (u.protocol !== 'ws:' && u.protocol !== 'wss:') || u.hash) {
			problems.push({field: 'server', msg: 'Server URL: ' + quote(server) + ' is not a ws:// or wss:// URL (such as ws://127.0.0.1:8080).'});
		}
		var appKey = $('appKey').value.trim();
		if (appKey && !TOKEN.test(appKey)) {
			problems.push({field: 'appKey', msg: 'App key: ' + quote(appKey) + ' has spaces or quotes; leave it empty for defaultApp.'});
		}
		var sip = null;
		var login = $('sipLogin').value.trim();
		if (login) {
			sip = {
				login: login,
				authenticationName: $('sipAuthName').value.trim() || login,
				password: $('sipPassword').value,
				domain: $('sipDomain').value.trim(),
				outboundProxy: $('sipProxy').value.trim() || undefined,
				port: undefined,
				registerRequired: $('sipRegister').checked
			};
			[['sipLogin', 'Login', login], ['sipAuthName', 'Authentication name', sip.authenticationName],
				['sipProxy', 'Outbound proxy', sip.outboundProxy || '']].forEach(function (f) {
				if (f[2] && !TOKEN.test(f[2])) {
					problems.push({field: f[0], msg: f[1] + ': ' + quote(f[2]) + ' has spaces or quotes.'});
				}
			});
			if (!sip.domain) {
				problems.push({field: 'sipDomain', msg: 'Domain: a SIP login needs its domain (such as rtcgate.test).'});
			} else if (!TOKEN.test(sip.domain)) {
				problems.push({field: 'sipDomain', msg: 'Domain: ' + quote(sip.domain) + ' has spaces or quotes.'});
			}
			var port = $('sipPort').value.trim();
			if (port) {
				var n = Number(port);
				if (!/^[0-9]{1,5}$/.test(port) || n < 1 || n > 65535) {
					problems.push({field: 'sipPort', msg: 'Port: ' + quote(port) + ' is not a port number (1 to 65535).'});
				} else {
					sip.port = String(n);
				}
			}
		} else if ($('sipPassword').value || $('sipDomain').value.trim()) {
			problems.push({field: 'sipLogin', msg: 'Login: the SIP account needs a login (or clear its fields to connect without SIP).'});
		}
		return {problems: problems, server: server, appKey: appKey, transport: getField('transport'), sip: sip};
	}

	function connect(ev) {
		ev.preventDefault();
		if (session) {
			return;
		}
		var f = readConnect();
		if (f.problems.length) {
			showProblems(f.problems);
			return;
		}
		clearAlert();
		saveFields();

		var Native = window.rtcgate && window.rtcgate.NativeWebSocket ? window.rtcgate.NativeWebSocket : window.WebSocket;
		var Impl = Native;
		if (f.transport === 'http') {
			if (!window.rtcgate || !window.rtcgate.HTTPWebSocket) {
				showAlert('The HTTP fallback needs rtcgate\'s /rtcgate-http-websocket.js, which did not load: use WebSocket.');
				return;
			}
			Impl = window.rtcgate.HTTPWebSocket;
		}
		// The SDK opens its connection inside createSession: hand it one
		// the page watches too (its listener comes before the SDK's).
		var opened = null;
		var Tap = function (url, protocols) {
			opened = protocols === undefined ? new Impl(url) : new Impl(url, protocols);
			opened.addEventListener('message', onFrame);
			return opened;
		};
		['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED'].forEach(function (k) { Tap[k] = Impl[k]; });
		var opts = {urlServer: f.server, appKey: f.appKey || undefined, timeout: 15000};
		if (f.sip) {
			opts.sipOptions = f.sip;
		}
		var s;
		window.WebSocket = Tap;
		try {
			s = Flashphoner.createSession(opts);
		} catch (e) {
			showAlert('Could not connect to ' + quote(f.server) + ': ' + errorText(e));
			return;
		} finally {
			window.WebSocket = Native;
		}
		session = s;
		conn = opened;
		account = f.sip;
		callInfo = {};
		setSession('CONNECTING', 'Connecting…');
		foldConnect(f.server + ' · ' + (f.transport === 'http' ? 'HTTP fallback' : 'WebSocket') + ' · app ' +
			(f.appKey || 'defaultApp') + (f.sip ? ' · SIP ' + f.sip.login + '@' + f.sip.domain : ' · no SIP account'));
		setSIP(account ? (account.registerRequired ? 'REGISTERING' : 'ACCOUNT') : 'NONE');
		log('session', 'connecting', f.server + (f.transport === 'http' ? ' over the HTTP fallback' : ' over WebSocket') +
			(f.appKey ? ', app ' + f.appKey : ''));

		s.on(S.CONNECTED, function () {
			if (session !== s) return;
			log('session', 'CONNECTED', 'transport open, sending connection');
		});
		s.on(S.ESTABLISHED, function () {
			if (session !== s) return;
			setSession('ESTABLISHED', 'Connected');
			log('session', 'ESTABLISHED', account ? 'SIP ' + account.login + '@' + account.domain : 'no SIP account');
			updateButtons();
		});
		s.on(S.REGISTERED, function () {
			if (session !== s) return;
			setSIP('REGISTERED');
			log('registration', 'REGISTERED', account.login + '@' + account.domain);
		});
		s.on(S.WARN, function (obj) {
			if (session !== s) return;
			var method = (obj && obj.apiMethod) || 'server';
			var info = (obj && obj.info) || '';
			if (method === 'RegistrationStatusEvent') {
				setSIP('FAILED');
				log('registration', 'FAILED', info);
				showAlert('Registration failed: ' + short(info));
				return;
			}
			log('server', 'fail', method + ': ' + info);
			showAlert(short(method + ': ' + info));
		});
		s.on(S.APP_DATA, function (obj) {
			if (session !== s) return;
			log('data', 'RECEIVED', JSON.stringify(obj && obj.payload !== undefined ? obj.payload : obj));
		});
		s.on(S.INCOMING_CALL, function (c) {
			if (session !== s) return;
			incoming(c);
		});
		s.on(S.DISCONNECTED, function () {
			if (session !== s) return;
			log('session', 'DISCONNECTED', '');
			ended('DISCONNECTED', 'Disconnected');
		});
		s.on(S.FAILED, function () {
			if (session !== s) return;
			log('session', 'FAILED', 'the connection to ' + f.server + ' failed or was lost');
			showAlert('The connection to ' + quote(f.server) + ' failed or was lost. Is rtcgate running there, and is the transport right?');
			ended('FAILED', 'Connection failed');
		});
		updateButtons();
	}

	function disconnect() {
		if (!session) {
			return;
		}
		if (call) {
			hangup();
		}
		try {
			session.disconnect();
		} catch (e) {
			showAlert('Disconnect: ' + errorText(e));
		}
	}

	// ended: the session is gone (closed by either side, or failed).
	function ended(state, text) {
		if (call) {
			callEnded(callState === 'NONE' ? 'FAILED' : 'FINISH', 'the session ended');
		}
		session = null;
		conn = null;
		setSession(state, text);
		foldConnect('');
		if (account) {
			setSIP('NONE');
		}
		account = null;
		updateButtons();
	}

	function setSession(state, text) {
		var b = $('session-state');
		b.dataset.state = state;
		b.textContent = text;
	}

	// foldConnect shows the connect form, or (summary given) one line
	// saying where the session goes.
	function foldConnect(summary) {
		$('connect-form').dataset.open = String(!summary);
		$('connect-summary').hidden = !summary;
		$('connect-summary').textContent = summary || '';
	}

	function setSIP(state) {
		var b = $('sip-state');
		b.dataset.state = state;
		var who = account ? account.login + '@' + account.domain : '';
		b.textContent = {
			NONE: 'No SIP account', ACCOUNT: 'SIP ' + who + ' (not registered)', REGISTERING: 'Registering ' + who + '…',
			REGISTERED: 'Registered: ' + who, FAILED: 'Registration failed'
		}[state] || state;
	}

	function established() {
		return session !== null && ($('session-state').dataset.state === 'ESTABLISHED');
	}

	// ---- the frames the SDK does not surface -----------------------------

	function onFrame(ev) {
		if (typeof ev.data !== 'string') {
			return;
		}
		var f;
		try {
			f = JSON.parse(ev.data);
		} catch (e) {
			return; // the SDK reports what it cannot read
		}
		if (!f || typeof f.message !== 'string' || !Array.isArray(f.data)) {
			return;
		}
		var o = f.data[0] && typeof f.data[0] === 'object' ? f.data[0] : {};
		switch (f.message) {
		case 'MessageStatusEvent':
			messageStatus(o);
			break;
		case 'OnMessageEvent':
			messageIn(o);
			break;
		case 'DataStatusEvent':
			log('data', String(o.status), o.info || '');
			break;
		case 'notifyTransferEvent':
			log('transfer', String(o.status), o.info || '');
			break;
		case 'notifyTryingResponse':
		case 'ring':
		case 'talk':
		case 'hold':
		case 'finish':
			// The SDK hands the call its status, not the SIP one.
			if (typeof o.callId === 'string') {
				callInfo[o.callId] = o.sipStatus ? o.sipStatus + ' ' + (o.sipMessage || '') : (o.info || '');
			}
			break;
		}
	}

	// ---- calls ----------------------------------------------------------

	function readCallee() {
		var callee = $('callee').value.trim();
		if (!callee) {
			return {problem: {field: 'callee', msg: 'Number or SIP user: say whom to call (such as echo), or dial it on the keypad.'}};
		}
		if (!TOKEN.test(callee)) {
			return {problem: {field: 'callee', msg: 'Number or SIP user: ' + quote(callee) + ' has spaces or quotes.'}};
		}
		return {callee: callee};
	}

	function placeCall(ev) {
		ev.preventDefault();
		if (!established()) {
			showAlert('Connect first: calls go through the session.');
			return;
		}
		if (!account) {
			showAlert('Calls go over SIP: disconnect, fill in the SIP account (make demo runs a registrar with one), and connect again.');
			return;
		}
		if (call) {
			showAlert('A call is up already: hang it up first.');
			return;
		}
		var r = readCallee();
		if (r.problem) {
			showProblems([r.problem]);
			return;
		}
		clearAlert();
		saveFields();
		var c;
		try {
			c = session.createCall({
				callee: r.callee,
				visibleName: account.login,
				localVideoDisplay: $('local-video'),
				remoteVideoDisplay: $('remote-video'),
				constraints: {audio: true, video: false},
				receiveVideo: true
			});
		} catch (e) {
			showAlert('Could not call: ' + errorText(e));
			return;
		}
		startCall(c, 'to ' + r.callee, false);
		log('call', 'calling', r.callee);
		try {
			c.call();
		} catch (e) {
			showAlert('Could not call: ' + errorText(e));
			callEnded('FAILED', errorText(e));
		}
	}

	function incoming(c) {
		var from = c.caller ? c.caller() : '';
		if (call) {
			log('call', 'BUSY', 'declined a call from ' + from + ': a call is up');
			declineBusy(c);
			return;
		}
		startCall(c, 'from ' + from, true);
		log('call', 'INCOMING', 'from ' + from + (c.visibleName && c.visibleName() && c.visibleName() !== from ? ' (' + c.visibleName() + ')' : ''));
		$('call-status').textContent = 'incoming call';
		updateButtons();
		$('answer').focus();
	}

	// declineBusy hangs up a second incoming call. The SDK sends hangup
	// only once the call rang (RING); before, the page does.
	function declineBusy(c) {
		c.on(C.RING, function () {
			try {
				c.hangup();
			} catch (e) {
				// the call is gone already
			}
		});
	}

	function startCall(c, peer, isIncoming) {
		call = c;
		callIncoming = isIncoming;
		callState = 'NEW';
		callSince = 0;
		$('call-peer').textContent = peer;
		$('dtmf-sent').textContent = '';
		setStatus('NEW', 'starting');
		Object.keys(C).forEach(function (k) {
			c.on(C[k], function () { callStatus(c, C[k]); });
		});
		updateButtons();
	}

	function callStatus(c, status) {
		if (c !== call) {
			return;
		}
		var id = c.id();
		var info = callInfo[id] || (c.getErrorInfo && c.getErrorInfo()) || (c.getInfo && c.getInfo()) || '';
		log('call', status, info);
		callState = status;
		switch (status) {
		case C.ESTABLISHED:
			if (!callSince) {
				callSince = Date.now();
				clockTimer = setInterval(tick, 1000);
				statsTimer = setInterval(pollStats, STATS_MS);
				tick();
			}
			setStatus(status, 'connected');
			break;
		case C.FINISH:
		case C.FAILED:
		case C.BUSY:
			callEnded(status, info);
			return;
		default:
			setStatus(status, status.toLowerCase().replace(/_/g, ' '));
		}
		updateButtons();
	}

	function setStatus(status, text) {
		var o = $('call-status');
		o.dataset.status = status;
		o.textContent = status + (text && text !== status.toLowerCase() ? ' · ' + text : '');
	}

	function callEnded(status, info) {
		clearInterval(statsTimer);
		clearInterval(clockTimer);
		statsTimer = clockTimer = 0;
		delete callInfo[call ? call.id() : ''];
		call = null;
		callState = 'NONE';
		setStatus(status, info ? short(info) : '');
		$('level-local').value = 0;
		$('level-remote').value = 0;
		$('video').dataset.shown = 'false';
		$('hold').setAttribute('aria-pressed', 'false');
		$('mute').setAttribute('aria-pressed', 'false');
		updateButtons();
	}

	function answer() {
		if (!call) {
			return;
		}
		try {
			call.answer({
				localVideoDisplay: $('local-video'),
				remoteVideoDisplay: $('remote-video'),
				// Video when the far end offers it: the SDK drops it
				// from an offer without m=video.
				constraints: {audio: true, video: true}
			});
			log('call', 'answering', '');
		} catch (e) {
			showAlert('Could not answer: ' + errorText(e));
		}
		updateButtons();
	}

	function hangup() {
		if (!call) {
			return;
		}
		try {
			call.hangup();
			log('call', 'hangup', 'asked');
		} catch (e) {
			showAlert('Hang up: ' + errorText(e));
		}
	}

	function toggleHold() {
		if (!call) {
			return;
		}
		try {
			if (callState === C.HOLD) {
				call.unhold();
				log('call', 'unhold', 'asked');
			} else {
				call.hold();
				log('call', 'hold', 'asked');
			}
		} catch (e) {
			showAlert('Hold: ' + errorText(e));
		}
	}

	function toggleMute() {
		if (!call) {
			return;
		}
		try {
			if (call.isAudioMuted()) {
				call.unmuteAudio();
			} else {
				call.muteAudio();
			}
			var muted = call.isAudioMuted();
			$('mute').setAttribute('aria-pressed', String(muted));
			log('call', muted ? 'muted' : 'unmuted', 'your microphone');
		} catch (e) {
			showAlert('Mute: ' + errorText(e));
		}
	}

	function press(digit) {
		if (call && (callState === C.ESTABLISHED || callState === C.HOLD)) {
			try {
				call.sendDTMF(digit);
			} catch (e) {
				showAlert('DTMF: ' + errorText(e));
				return;
			}
			var sent = ($('dtmf-sent').textContent + digit).slice(-32);
			$('dtmf-sent').textContent = sent;
			log('dtmf', 'sent', digit);
		} else if (!call) {
			var f = $('callee');
			if (f.value.length < 256) {
				f.value += digit;
			}
		}
	}

	function tick() {
		if (!callSince) {
			return;
		}
		var s = Math.floor((Date.now() - callSince) / 1000);
		$('call-timer').textContent = Math.floor(s / 60) + ':' + String(s % 60).padStart(2, '0');
	}

	// pollStats shows the call's audio levels and packet counts, and its
	// video when there is some.
	function pollStats() {
		var pc = pcs[pcs.length - 1];
		if (!pc || pc.signalingState === 'closed') {
			return;
		}
		pc.getStats().then(function (report) {
			if (!call) {
				return;
			}
			var sent = 0, received = 0, local = 0, remote = 0, video = false;
			report.forEach(function (s) {
				if (s.type === 'outbound-rtp' && s.kind === 'audio') {
					sent += s.packetsSent || 0;
				} else if (s.type === 'inbound-rtp' && s.kind === 'audio') {
					received += s.packetsReceived || 0;
					remote = Math.max(remote, s.audioLevel || 0);
				} else if (s.type === 'inbound-rtp' && s.kind === 'video') {
					video = video || (s.framesDecoded || 0) > 0;
				} else if (s.type === 'media-source' && s.kind === 'audio') {
					local = Math.max(local, s.audioLevel || 0);
				}
			});
			// Levels are amplitudes (0..1): their square root reads better.
			$('level-local').value = Math.sqrt(local);
			$('level-remote').value = Math.sqrt(remote);
			$('level-local').dataset.level = local;
			$('level-remote').dataset.level = remote;
			var st = $('media-stats');
			st.dataset.sent = sent;
			st.dataset.received = received;
			st.textContent = 'audio packets sent ' + sent + ' · received ' + received;
			$('video').dataset.shown = String(video);
		}, function () {
			// the connection closed meanwhile: the call is ending
		});
	}

	// ---- messages and data ----------------------------------------------

	function sendMessage(ev) {
		ev.preventDefault();
		if (!established() || !conn) {
			showAlert('Connect first: messages go through the session.');
			return;
		}
		if (!account) {
			showAlert('Messages go over SIP: disconnect, fill in the SIP account (make demo runs a registrar with one), and connect again.');
			return;
		}
		var to = $('msgTo').value.trim() || account.login;
		var body = $('msgBody').value;
		var problems = [];
		if (!TOKEN.test(to)) {
			problems.push({field: 'msgTo', msg: 'To: ' + quote(to) + ' has spaces or quotes.'});
		}
		if (!body.trim()) {
			problems.push({field: 'msgBody', msg: 'Message: type something to send.'});
		}
		if (problems.length) {
			showProblems(problems);
			return;
		}
		if (conn.readyState !== 1) {
			showAlert('The connection is not open: connect again.');
			return;
		}
		clearAlert();
		saveFields();
		var id = 'msg-' + Date.now().toString(36) + '-' + (++msgSeq);
		try {
			conn.send(JSON.stringify({message: 'sendMessage', data: [{id: id, to: to, body: body, contentType: 'text/plain'}]}));
		} catch (e) {
			showAlert('Could not send the message: ' + errorText(e));
			return;
		}
		addMessage('out', id, 'to ' + to, body, 'sending');
		log('message', 'sending', 'to ' + to + ': ' + body);
		$('msgBody').value = '';
	}

	function addMessage(dir, id, who, body, state) {
		var list = $('messages');
		var li = document.createElement('li');
		li.className = dir;
		li.dataset.id = String(id || '');
		var meta = document.createElement('span');
		meta.className = 'meta';
		li.dataset.who = who;
		meta.textContent = who + ' · ' + state;
		li.append(meta, short(body));
		list.appendChild(li);
		while (list.children.length > MAX_MESSAGES) {
			list.removeChild(list.firstChild);
		}
		list.scrollTop = list.scrollHeight;
	}

	function messageStatus(o) {
		var status = String(o.status || '');
		var info = o.info || (o.sipStatus ? o.sipStatus + ' ' + (o.sipMessage || '') : '');
		log('message', status, 'to ' + (o.to || '?') + (info ? ' · ' + info : ''));
		var li = Array.prototype.find.call($('messages').children, function (el) { return el.dataset.id === String(o.id); });
		if (li) {
			li.firstChild.textContent = li.dataset.who + ' · ' + status + (status === 'FAILED' && info ? ' (' + short(info) + ')' : '');
		}
	}

	function messageIn(o) {
		addMessage('in', o.id, 'from ' + (o.from || '?'), o.body || '', 'received');
		log('message', 'RECEIVED', 'from ' + (o.from || '?') + ': ' + (o.body || ''));
	}

	function sendData(ev) {
		ev.preventDefault();
		if (!established()) {
			showAlert('Connect first: data goes through the session to the app\'s backend.');
			return;
		}
		var raw = $('dataPayload').value;
		if (!raw.trim()) {
			showProblems([{field: 'dataPayload', msg: 'Data: type JSON such as {"hello": "world"}, or any text.'}]);
			return;
		}
		clearAlert();
		var payload;
		try {
			payload = JSON.parse(raw);
		} catch (e) {
			payload = raw; // text goes as a string
		}
		var p;
		try {
			p = session.sendData(payload);
		} catch (e) {
			showAlert('Could not send data: ' + errorText(e));
			return;
		}
		log('data', 'sending', typeof payload === 'string' ? quote(payload) : JSON.stringify(payload));
		// The SDK's promise settles on DataStatusEvent (logged as it
		// arrives); without one it never would.
		var timer;
		Promise.race([p, new Promise(function (_, reject) {
			timer = setTimeout(function () { reject(new Error('timeout')); }, DATA_MS);
		})]).then(function () {}, function (e) {
			if (e instanceof Error && e.message === 'timeout') {
				log('data', 'NO ANSWER', 'no DataStatusEvent within ' + DATA_MS / 1000 + ' s');
			}
		}).finally(function () { clearTimeout(timer); });
	}

	// ---- buttons and keys -----------------------------------------------

	function updateButtons() {
		var up = established();
		var inCall = call !== null;
		var talking = inCall && (callState === C.ESTABLISHED || callState === C.HOLD);
		var ringingIn = inCall && callIncoming && !talking && callState !== C.PENDING;
		$('connect').disabled = session !== null;
		$('disconnect').disabled = session === null;
		['server', 'appKey', 'transport-ws', 'transport-http', 'sipLogin', 'sipPassword', 'sipDomain', 'sipProxy', 'sipPort',
			'sipAuthName', 'sipRegister'].forEach(function (id) { $(id).disabled = session !== null; });
		$('call').disabled = !up || inCall;
		$('answer').hidden = !ringingIn;
		$('hangup').disabled = !inCall;
		$('hold').disabled = !talking;
		$('hold').setAttribute('aria-pressed', String(callState === 'HOLD'));
		$('hold').textContent = callState === 'HOLD' ? 'Unhold' : 'Hold';
		$('mute').disabled = !talking;
		$('send-message').disabled = !up;
		$('send-data').disabled = !up;
	}

	function onKey(ev) {
		var t = ev.target;
		if (ev.ctrlKey || ev.metaKey || ev.altKey || (t && /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) {
			return;
		}
		if (/^[0-9*#]$/.test(ev.key)) {
			var b = document.querySelector('.keypad [data-digit="' + ev.key + '"]');
			if (b) {
				b.classList.add('pressed');
				setTimeout(function () { b.classList.remove('pressed'); }, 150);
			}
			press(ev.key);
			ev.preventDefault();
		}
	}

	async function init() {
		loadFields();
		$('connect-form').addEventListener('submit', connect);
		$('disconnect').addEventListener('click', disconnect);
		$('call-form').addEventListener('submit', placeCall);
		$('answer').addEventListener('click', answer);
		$('hangup').addEventListener('click', hangup);
		$('hold').addEventListener('click', toggleHold);
		$('mute').addEventListener('click', toggleMute);
		$('message-form').addEventListener('submit', sendMessage);
		$('data-form').addEventListener('submit', sendData);
		$('clear-events').addEventListener('click', function () { $('events').textContent = ''; });
		document.querySelectorAll('.keypad button').forEach(function (b) {
			b.addEventListener('click', function () { press(b.dataset.digit); });
		});
		document.addEventListener('keydown', onKey);
		window.addEventListener('pagehide', function () {
			if (session) {
				disconnect();
			}
		});
		if (!window.Flashphoner) {
			showAlert('The Flashphoner Web SDK did not load (/phone/flashphoner-webrtc-only.min.js).');
			$('connect').disabled = true;
			return;
		}
		S = Flashphoner.constants.SESSION_STATUS;
		C = Flashphoner.constants.CALL_STATUS;
		try {
			// logger null: no SDK logs (with logs on but not pushed, the
			// SDK keeps every line in memory for the page's lifetime).
			await Flashphoner.init({logger: null});
		} catch (e) {
			showAlert('The Web SDK could not start: ' + errorText(e));
			$('connect').disabled = true;
			return;
		}
		if (Flashphoner.getMediaProviders().indexOf('WebRTC') < 0 || !window.isSecureContext) {
			showAlert('This browser cannot call from this page: WebRTC and the microphone need a secure context ' +
				'(https://, or http://localhost / 127.0.0.1). Sessions, messages and data work.');
		}
		updateButtons();
		document.body.dataset.ready = 'true';
	}

	if (document.readyState === 'loading') {
		document.addEventListener('DOMContentLoaded', init);
	} else {
		init();
	}
})();
