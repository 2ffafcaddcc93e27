/*
 * rtcgate-http-websocket.js: a WebSocket over rtcgate's HTTP fallback.
 *
 *   <script src="/rtcgate-http-websocket.js"></script>
 *   <script>rtcgate.enableHTTPFallback();</script>
 *
 * rtcgate.HTTPWebSocket has the browser WebSocket's interface. It talks to
 * rtcgate's /http endpoint (ws://host:port/ becomes http://host:port/http,
 * wss:// becomes https://): action=open, then a long-polling sync loop whose
 * frames become 'message' events in order, and one send at a time, each with
 * a utid, retried with the same utid so that the server runs it once.
 * Every sync tells the server the last frame it has (ack), so a lost response
 * loses nothing: the next sync brings the same frames again and those already
 * seen are skipped.
 *
 * rtcgate.enableHTTPFallback() puts HTTPWebSocket in place of window.WebSocket
 * (the Flashphoner Web SDK then runs over HTTP unchanged);
 * rtcgate.disableHTTPFallback() puts the native one (rtcgate.NativeWebSocket)
 * back.
 *
 * Plain ES2017, no dependencies, no build step.
 */
(function (global) {
	'use strict';

	if (global.rtcgate && global.rtcgate.HTTPWebSocket) {
		return; // loaded twice: keep the first, whose NativeWebSocket is the real one
	}

	var NativeWebSocket = global.WebSocket;

	var CONNECTING = 0;
	var OPEN = 1;
	var CLOSING = 2;
	var CLOSED = 3;

	var CLOSE_COMMAND = 'http.command.close';
	var OPEN_RETRIES = 3; // attempts after the first, for network errors and 5xx
	var SEND_RETRIES = 6;
	var SYNC_RETRIES = 6;
	var CLOSE_RETRIES = 2;
	var BACKOFF_MS = 250; // doubles with each attempt ...
	var BACKOFF_MAX_MS = 5000; // ... up to this
	var REQUEST_MS = 30000; // time bound of every request but sync
	var SYNC_SLACK_MS = 15000; // a sync's bound: the server's syncWait and this
	var DEFAULT_SYNC_WAIT_MS = 25000;
	var DEFAULT_IDLE_MS = 60000;

	var encoder = new TextEncoder();
	var decoder = new TextDecoder();

	function delay(ms) {
		return new Promise(function (resolve) { setTimeout(resolve, ms); });
	}

	// backoff is the pause before retry n (from 0), with jitter.
	function backoff(n) {
		return Math.min(BACKOFF_MAX_MS, BACKOFF_MS * Math.pow(2, n)) * (0.75 + Math.random() / 2);
	}

	function retryable(status) {
		return status >= 500 || status === 408 || status === 429;
	}

	function randomConnectionId() {
		var b = new Uint8Array(24);
		global.crypto.getRandomValues(b);
		var s = '';
		for (var i = 0; i < b.length; i++) {
			s += (b[i] < 16 ? '0' : '') + b[i].toString(16);
		}
		return s;
	}

	// target checks a WebSocket URL as the browser does and finds the HTTP
	// fallback beside it: "http" resolved against the URL, so ws://h:p/ and
	// ws://h:p/ws both give http://h:p/http.
	function target(url) {
		var u;
		try {
			u = new URL(url, global.location && global.location.href);
		} catch (e) {
			throw new DOMException("Failed to construct 'WebSocket': The URL '" + url + "' is invalid.", 'SyntaxError');
		}
		var scheme = {'ws:': 'http:', 'wss:': 'https:', 'http:': 'http:', 'https:': 'https:'}[u.protocol];
		if (!scheme) {
			throw new DOMException("Failed to construct 'WebSocket': The URL's scheme must be either 'ws' or 'wss'. '" +
				u.protocol.slice(0, -1) + "' is not allowed.", 'SyntaxError');
		}
		if (u.hash) {
			throw new DOMException("Failed to construct 'WebSocket': The URL contains a fragment identifier ('" +
				u.hash + "'). Fragment identifiers are not allowed in WebSocket URLs.", 'SyntaxError');
		}
		if (u.protocol === 'http:' || u.protocol === 'https:') {
			u.protocol = u.protocol === 'http:' ? 'ws:' : 'wss:';
		}
		var h = new URL(u.href);
		h.protocol = scheme;
		return {url: u.href, endpoint: new URL('http', h.href).href, origin: u.origin};
	}

	function utf8Length(s) {
		return encoder.encode(s).length;
	}

	class HTTPWebSocket extends EventTarget {
		constructor(url, protocols) {
			super();
			if (arguments.length < 1) {
				throw new TypeError("Failed to construct 'WebSocket': 1 argument required, but only 0 present.");
			}
			var t = target(String(url));
			void protocols; // rtcgate negotiates no subprotocol: protocol stays ""
			this._url = t.url;
			this._endpoint = t.endpoint;
			this._origin = t.origin;
			this._readyState = CONNECTING;
			this._binaryType = 'blob';
			this._bufferedAmount = 0;
			this._connectionId = randomConnectionId();
			this._handlers = {};
			this._handlerListeners = {};
			this._queue = []; // sends not yet confirmed, in order: {data, utid, size}
			this._pumping = null; // the send loop's promise while it runs
			this._utid = 0;
			this._lastSeq = 0; // the last frame received
			this._numbered = true; // false when the server gives no frame numbers
			this._syncWaitMs = DEFAULT_SYNC_WAIT_MS;
			this._idleMs = DEFAULT_IDLE_MS;
			this._stop = new AbortController(); // aborts every request at CLOSED
			this._syncStop = new AbortController(); // aborts the sync at close()
			var self = this;
			this._onPageHide = function () { self._closeBeacon(); };
			global.addEventListener('pagehide', this._onPageHide);
			this._open();
		}

		get url() { return this._url; }
		get readyState() { return this._readyState; }
		get bufferedAmount() { return this._bufferedAmount; }
		get protocol() { return ''; }
		get extensions() { return ''; }
		get binaryType() { return this._binaryType; }
		set binaryType(v) {
			if (v === 'blob' || v === 'arraybuffer') {
				this._binaryType = v;
			}
		}

		send(data) {
			if (this._readyState === CONNECTING) {
				throw new DOMException("Failed to execute 'send' on 'WebSocket': Still in CONNECTING state.", 'InvalidStateError');
			}
			// Frames are text: binary data goes as its UTF-8 text.
			var item = {utid: ++this._utid};
			if (typeof data === 'string') {
				item.data = data;
				item.size = utf8Length(data);
			} else if (data instanceof ArrayBuffer) {
				item.data = decoder.decode(new Uint8Array(data));
				item.size = data.byteLength;
			} else if (ArrayBuffer.isView(data)) {
				item.data = decoder.decode(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
				item.size = data.byteLength;
			} else if (typeof Blob !== 'undefined' && data instanceof Blob) {
				item.data = data.text();
				item.size = data.size;
			} else {
				item.data = String(data);
				item.size = utf8Length(item.data);
			}
			this._bufferedAmount += item.size;
			if (this._readyState !== OPEN) {
				return; // as a WebSocket closing or closed: counted, never sent
			}
			this._queue.push(item);
			this._pump();
		}

		close(code, reason) {
			if (code !== undefined) {
				code = Number(code);
				if (!(code === 1000 || (code >= 3000 && code <= 4999))) {
					throw new DOMException("Failed to execute 'close' on 'WebSocket': The close code must be either 1000, or between 3000 and 4999. " +
						code + ' is neither.', 'InvalidAccessError');
				}
			}
			reason = reason === undefined ? '' : String(reason);
			if (utf8Length(reason) > 123) {
				throw new DOMException("Failed to execute 'close' on 'WebSocket': The close reason must not be greater than 123 UTF-8 bytes.", 'SyntaxError');
			}
			if (this._readyState === CLOSING || this._readyState === CLOSED) {
				return;
			}
			if (this._readyState === CONNECTING) {
				// As a WebSocket closed while connecting: the connection fails.
				this._readyState = CLOSING;
				var self = this;
				setTimeout(function () {
					self._finish(1006, '', false, true);
					self._closeBeacon();
				}, 0);
				return;
			}
			this._readyState = CLOSING;
			this._syncStop.abort();
			this._closeHandshake(code === undefined ? 1000 : code, reason);
		}

		// _post makes one request to the fallback, all parameters in a form
		// body (the connectionId is a secret: never in a URL).
		async _post(params, timeoutMs, signal) {
			var body = new URLSearchParams();
			body.set('connectionId', this._connectionId);
			Object.keys(params).forEach(function (k) { body.set(k, String(params[k])); });
			var ctl = new AbortController();
			var abort = function () { ctl.abort(); };
			var signals = [this._stop.signal].concat(signal ? [signal] : []);
			signals.forEach(function (s) {
				if (s.aborted) {
					ctl.abort();
				}
				s.addEventListener('abort', abort);
			});
			var timer = setTimeout(abort, timeoutMs);
			try {
				var res = await fetch(this._endpoint, {method: 'POST', body: body, cache: 'no-store', signal: ctl.signal});
				var text = await res.text();
				return {status: res.status, headers: res.headers, text: text};
			} finally {
				clearTimeout(timer);
				signals.forEach(function (s) { s.removeEventListener('abort', abort); });
			}
		}

		async _open() {
			await Promise.resolve(); // events come after the constructor returns
			for (var attempt = 0; ; attempt++) {
				if (this._readyState !== CONNECTING) {
					return;
				}
				var res;
				try {
					res = await this._post({action: 'open'}, REQUEST_MS);
				} catch (e) {
					if (this._readyState !== CONNECTING) {
						return;
					}
					if (attempt >= OPEN_RETRIES) {
						this._fail(1006, 'could not reach ' + this._endpoint);
						return;
					}
					await delay(backoff(attempt));
					continue;
				}
				if (this._readyState !== CONNECTING) {
					return;
				}
				if (res.status === 200) {
					var w;
					try {
						w = JSON.parse(res.text);
					} catch (e) {
						w = null;
					}
					if (!w || w.type !== 'welcome') {
						this._fail(1002, 'no welcome from ' + this._endpoint);
						return;
					}
					if (w.syncWait >= 0) {
						this._syncWaitMs = w.syncWait * 1000;
					}
					if (w.timeout > 0) {
						this._idleMs = w.timeout * 1000;
					}
					this._readyState = OPEN;
					this._fire(new Event('open'));
					if (this._readyState !== OPEN) {
						return;
					}
					this._syncLoop();
					this._pump();
					return;
				}
				if (retryable(res.status) && res.status !== 503 && attempt < OPEN_RETRIES) {
					await delay(backoff(attempt));
					continue;
				}
				// 503 is client-max-connections: "try again later" (1013).
				this._fail(res.status === 503 ? 1013 : 1006, res.text.trim());
				return;
			}
		}

		async _syncLoop() {
			var failures = 0;
			var lastContact = Date.now();
			while (this._readyState === OPEN) {
				var params = {action: 'sync'};
				if (this._numbered) {
					params.ack = this._lastSeq;
				}
				var res;
				try {
					res = await this._post(params, this._syncWaitMs + SYNC_SLACK_MS, this._syncStop.signal);
				} catch (e) {
					res = null;
				}
				if (this._readyState !== OPEN) {
					return;
				}
				if (res === null || retryable(res.status)) {
					// The session outlives its idle timeout without us: retry
					// within that, and within a bound.
					if (failures >= SYNC_RETRIES || Date.now() - lastContact > this._idleMs) {
						this._fail(1006, 'lost the connection to ' + this._endpoint);
						return;
					}
					await delay(backoff(failures++));
					continue;
				}
				if (res.status === 409) {
					this._finish(4000, 'session resumed on another connection', true, false);
					return;
				}
				if (res.status !== 200) {
					this._fail(1006, res.text.trim());
					return;
				}
				failures = 0;
				lastContact = Date.now();
				var frames;
				try {
					frames = JSON.parse(res.text);
				} catch (e) {
					frames = null;
				}
				if (!Array.isArray(frames)) {
					this._fail(1002, 'sync answered no array of frames');
					return;
				}
				var first = parseInt(res.headers.get('X-Rtcgate-First-Seq'), 10);
				var last = parseInt(res.headers.get('X-Rtcgate-Last-Seq'), 10);
				if (!isFinite(last)) {
					// No frame numbers (a proxy dropped the headers): the
					// server takes each sync as the ack of the one before.
					this._numbered = false;
				}
				for (var i = 0; i < frames.length; i++) {
					var f = frames[i];
					if (f === CLOSE_COMMAND) {
						this._finish(1000, 'session closed', true, false);
						return;
					}
					if (this._numbered && isFinite(first)) {
						var seq = first + i;
						if (seq <= this._lastSeq) {
							continue; // had it: the response before this one got through after all
						}
						this._lastSeq = seq;
					}
					this._fire(new MessageEvent('message', {data: typeof f === 'string' ? f : JSON.stringify(f), origin: this._origin}));
					if (this._readyState !== OPEN) {
						return; // a handler closed us
					}
				}
				if (this._numbered && isFinite(last) && last > this._lastSeq) {
					this._lastSeq = last;
				}
			}
		}

		// _pump sends the queue in order, one request at a time.
		// _pumping is cleared in the same turn as the loop's last look at
		// the queue, so a send() just after it starts a new loop.
		_pump() {
			if (this._pumping) {
				return;
			}
			var self = this;
			var done = false;
			var loop = (async function () {
				try {
					while (self._queue.length > 0 && (self._readyState === OPEN || self._readyState === CLOSING)) {
						var item = self._queue[0];
						var data = typeof item.data === 'string' ? item.data : await item.data;
						if (!(await self._sendOne(data, item.utid))) {
							return;
						}
						self._queue.shift();
						self._bufferedAmount = Math.max(0, self._bufferedAmount - item.size);
					}
				} finally {
					done = true;
					if (self._pumping === loop) {
						self._pumping = null;
					}
				}
			})();
			if (!done) {
				this._pumping = loop;
			}
		}

		async _sendOne(data, utid) {
			for (var attempt = 0; ; attempt++) {
				if (this._readyState === CLOSED) {
					return false;
				}
				var res;
				try {
					res = await this._post({action: 'send', utid: utid, data: data}, REQUEST_MS);
				} catch (e) {
					res = null;
				}
				if (this._readyState === CLOSED) {
					return false;
				}
				if (res !== null && res.status === 200) {
					return true;
				}
				if (res === null || retryable(res.status)) {
					if (attempt >= SEND_RETRIES) {
						this._fail(1006, 'could not send to ' + this._endpoint);
						return false;
					}
					await delay(backoff(attempt)); // then the same utid: run once however often it is sent
					continue;
				}
				if (res.status === 400) {
					// A frame rtcgate refused before it ran: the page gets
					// the `fail` a WebSocket would have brought, and the
					// connection goes on.
					var refused = null;
					try {
						refused = JSON.parse(res.text);
					} catch (e) {
						refused = null;
					}
					if (refused && refused.apiMethod) {
						this._fire(new MessageEvent('message', {origin: this._origin,
							data: JSON.stringify({message: 'fail', data: [{apiMethod: refused.apiMethod, info: refused.info}]})}));
						return true;
					}
				}
				if (res.status === 413) {
					this._fail(1009, res.text.trim());
				} else if (res.status === 409) {
					this._finish(4000, 'session resumed on another connection', true, false);
				} else {
					this._fail(1006, res.text.trim());
				}
				return false;
			}
		}

		// _closeHandshake sends what is queued, then action=close.
		async _closeHandshake(code, reason) {
			if (this._pumping) {
				try {
					await this._pumping;
				} catch (e) {
					// _sendOne fails the socket itself
				}
			}
			if (this._readyState === CLOSED) {
				return;
			}
			var clean = false;
			for (var attempt = 0; attempt <= CLOSE_RETRIES; attempt++) {
				var res;
				try {
					res = await this._post({action: 'close'}, REQUEST_MS);
				} catch (e) {
					res = null;
				}
				if (this._readyState === CLOSED) {
					return;
				}
				// 400: the server had ended the session already.
				if (res !== null && (res.status === 200 || res.status === 400)) {
					clean = true;
					break;
				}
				if (res !== null && !retryable(res.status)) {
					break;
				}
				if (attempt < CLOSE_RETRIES) {
					await delay(backoff(attempt));
				}
			}
			this._finish(clean ? code : 1006, clean ? reason : '', clean, false);
		}

		// _closeBeacon tells the server, without waiting, that we are gone.
		_closeBeacon() {
			if (this._beaconSent) {
				return;
			}
			this._beaconSent = true;
			var body = new URLSearchParams();
			body.set('connectionId', this._connectionId);
			body.set('action', 'close');
			try {
				if (!(global.navigator && global.navigator.sendBeacon && global.navigator.sendBeacon(this._endpoint, body))) {
					fetch(this._endpoint, {method: 'POST', body: body, keepalive: true, cache: 'no-store'}).catch(function () {});
				}
			} catch (e) {
				// nothing more to do: the server's idle timeout ends the session
			}
		}

		_fail(code, reason) {
			var wasOpen = this._readyState !== CLOSED;
			this._finish(code, reason, false, true);
			if (wasOpen) {
				this._closeBeacon();
			}
		}

		_finish(code, reason, wasClean, withError) {
			if (this._readyState === CLOSED) {
				return;
			}
			this._readyState = CLOSED;
			this._queue = [];
			this._stop.abort();
			global.removeEventListener('pagehide', this._onPageHide);
			if (withError) {
				this._fire(new Event('error'));
			}
			this._fire(new CloseEvent('close', {code: code, reason: reason || '', wasClean: wasClean}));
		}

		_fire(ev) {
			this.dispatchEvent(ev);
		}
	}

	[['CONNECTING', CONNECTING], ['OPEN', OPEN], ['CLOSING', CLOSING], ['CLOSED', CLOSED]].forEach(function (c) {
		Object.defineProperty(HTTPWebSocket, c[0], {value: c[1], enumerable: true});
		Object.defineProperty(HTTPWebSocket.prototype, c[0], {value: c[1], enumerable: true});
	});

	// onopen, onmessage, onclose, onerror: event handler attributes, each one
	// listener calling whatever handler is set.
	['open', 'message', 'close', 'error'].forEach(function (type) {
		Object.defineProperty(HTTPWebSocket.prototype, 'on' + type, {
			configurable: true,
			enumerable: true,
			get: function () { return this._handlers[type] || null; },
			set: function (fn) {
				this._handlers[type] = typeof fn === 'function' ? fn : null;
				if (!this._handlerListeners[type]) {
					var self = this;
					this._handlerListeners[type] = function (ev) {
						var h = self._handlers[type];
						if (h) {
							h.call(self, ev);
						}
					};
					this.addEventListener(type, this._handlerListeners[type]);
				}
			}
		});
	});

	var rtcgate = global.rtcgate || {};
	rtcgate.HTTPWebSocket = HTTPWebSocket;
	rtcgate.NativeWebSocket = NativeWebSocket;
	rtcgate.enableHTTPFallback = function () {
		global.WebSocket = HTTPWebSocket;
		return HTTPWebSocket;
	};
	rtcgate.disableHTTPFallback = function () {
		global.WebSocket = NativeWebSocket;
		return NativeWebSocket;
	};
	global.rtcgate = rtcgate;
})(typeof window !== 'undefined' ? window : self);
