// Helpers the test pages (index.html, call.html, disconnect.html) use;
// harness.mjs serves this file under /__e2e__/.

// loadScript loads src and resolves once it ran.
function loadScript(src) {
	return new Promise(function (resolve, reject) {
		var s = document.createElement('script');
		s.src = src;
		s.onload = function () { resolve(); };
		s.onerror = function () { reject(new Error('could not load ' + src)); };
		document.head.appendChild(s);
	});
}

// withTimeout bounds a step: p, or an error naming what after ms.
function withTimeout(p, ms, what) {
	var timer;
	return Promise.race([
		p,
		new Promise(function (_, reject) {
			timer = setTimeout(function () { reject(new Error(what + ': no answer within ' + ms + ' ms')); }, ms);
		})
	]).finally(function () { clearTimeout(timer); });
}

// statusWaiter registers one callback per status of obj (a Flashphoner
// session or call: the SDK keeps one per event), records each status in
// record and logs it with log, and returns waitFor(want, failOn, ms): a
// promise that resolves once obj went want (or already had), with the
// callback's second argument (a session's ESTABLISHED: getUserData's
// object), and rejects when it goes one of failOn first or ms pass.
function statusWaiter(obj, statuses, record, what, log) {
	var listeners = [];
	var args = {};
	Object.keys(statuses).forEach(function (k) {
		obj.on(statuses[k], function (x, y) {
			var info = (x && typeof x.getInfo === 'function') ? x.getInfo() : '';
			record.push(statuses[k]);
			args[statuses[k]] = y;
			log(what + ' status ' + statuses[k] + (info ? ' (' + info + ')' : ''));
			listeners.slice().forEach(function (fn) { fn(statuses[k]); });
		});
	});
	return function (want, failOn, ms) {
		var fn;
		if (record.indexOf(want) >= 0) return Promise.resolve(args[want]);
		var p = new Promise(function (resolve, reject) {
			fn = function (status) {
				if (status === want) {
					resolve(args[want]);
				} else if (failOn.indexOf(status) >= 0) {
					reject(new Error(what + ' went ' + status + ' while waiting for ' + want));
				}
			};
			listeners.push(fn);
		});
		return withTimeout(p, ms, what + ' ' + want).finally(function () {
			listeners.splice(listeners.indexOf(fn), 1);
		});
	};
}

// settle is a page's outcome, window.e2eResult: what run resolved to with
// ok true, or result with ok false and the error. It never rejects.
function settle(run, result, log) {
	return run.then(function (r) {
		r.ok = true;
		return r;
	}, function (err) {
		result.ok = false;
		result.error = String((err && err.message) || err);
		log('FAILED: ' + result.error);
		return result;
	});
}

// loadFlashphoner loads the Web SDK that harness.mjs serves and initialises
// it (init is async in Web SDK 2.0.2xx: it awaits client info).
async function loadFlashphoner() {
	await loadScript('/__e2e__/flashphoner.js');
	if (!window.Flashphoner) {
		throw new Error('flashphoner.js defined no global Flashphoner');
	}
	await Flashphoner.init({});
}

function sleep(ms) {
	return new Promise(function (resolve) { setTimeout(resolve, ms); });
}

// recordPeerConnections makes every RTCPeerConnection built from now on
// land in the returned array, so a test can read its statistics and SDPs
// whatever the SDK exposes. Call it before the SDK (and its
// webrtc-adapter) loads, so they build on the recording one.
function recordPeerConnections() {
	var pcs = [];
	var NativePC = window.RTCPeerConnection;
	function RecordingPC(config, constraints) {
		var pc = new NativePC(config, constraints);
		pcs.push(pc);
		return pc;
	}
	RecordingPC.prototype = NativePC.prototype;
	Object.setPrototypeOf(RecordingPC, NativePC); // static generateCertificate
	window.RTCPeerConnection = RecordingPC;
	return pcs;
}

// audioStats sums the audio inbound-rtp and outbound-rtp of pc.
async function audioStats(pc) {
	var out = { packetsReceived: 0, bytesReceived: 0, packetsSent: 0, bytesSent: 0 };
	var report = await pc.getStats();
	var codecs = {};
	report.forEach(function (s) {
		if (s.type === 'codec') codecs[s.id] = s.mimeType;
	});
	report.forEach(function (s) {
		if (s.kind !== 'audio') return;
		if (s.type === 'inbound-rtp') {
			out.packetsReceived += s.packetsReceived || 0;
			out.bytesReceived += s.bytesReceived || 0;
			if (s.codecId) out.inboundCodec = codecs[s.codecId];
		} else if (s.type === 'outbound-rtp') {
			out.packetsSent += s.packetsSent || 0;
			out.bytesSent += s.bytesSent || 0;
			if (s.codecId) out.outboundCodec = codecs[s.codecId];
		}
	});
	report.forEach(function (s) {
		if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') {
			var remote = report.get(s.remoteCandidateId);
			if (remote) out.remoteCandidate = remote.address + ':' + remote.port;
		}
	});
	return out;
}

// waitAudio polls pc's statistics until a few dozen audio packets went
// each way (audio flows, not a stray packet), or ms pass.
async function waitAudio(pc, ms) {
	var deadline = Date.now() + ms;
	for (;;) {
		var stats = await audioStats(pc);
		if (stats.packetsReceived >= 25 && stats.packetsSent >= 25) return stats;
		if (Date.now() > deadline) {
			var err = new Error('audio did not flow both ways within ' + ms + ' ms (ICE ' +
				pc.iceConnectionState + ', connection ' + pc.connectionState + ')');
			err.stats = stats;
			throw err;
		}
		await sleep(250);
	}
}

// recordWire puts a WebSocket class recording every frame in place of
// window.WebSocket (the native one, or the HTTP shim's): wire gets, in
// order, {socket, dir: 'in'|'out', message, ...} with the fields a test
// checks (operationId, status, callId, payload, sessionId). The SDK then
// runs over it unchanged.
function recordWire(wire) {
	var Base = window.WebSocket;
	var sockets = 0;
	function note(socket, dir, text) {
		var f;
		try {
			f = JSON.parse(text);
		} catch (e) {
			wire.push({ socket: socket, dir: dir, message: '(not JSON)' });
			return;
		}
		var d = (f && f.data && f.data[0]) || {};
		var e = { socket: socket, dir: dir, message: f.message };
		['operationId', 'status', 'callId', 'payload', 'sessionId', 'info'].forEach(function (k) {
			if (d && typeof d === 'object' && d[k] !== undefined) e[k] = d[k];
		});
		if (f.message === 'connection') e.resume = !!d.authToken; // never the token itself
		wire.push(e);
	}
	class RecordingWebSocket extends Base {
		constructor(url, protocols) {
			super(url, protocols);
			var n = ++sockets;
			this._e2eSocket = n;
			this.addEventListener('message', function (ev) { note(n, 'in', ev.data); });
			this.addEventListener('close', function (ev) { wire.push({ socket: n, dir: 'close', code: ev.code }); });
		}
		send(data) {
			note(this._e2eSocket, 'out', data);
			return super.send(data);
		}
	}
	window.WebSocket = RecordingWebSocket;
	return RecordingWebSocket;
}
