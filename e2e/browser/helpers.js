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
// promise that resolves once obj went want (or already had), and rejects
// when it goes one of failOn first or ms pass.
function statusWaiter(obj, statuses, record, what, log) {
	var listeners = [];
	Object.keys(statuses).forEach(function (k) {
		obj.on(statuses[k], function (x) {
			var info = (x && typeof x.getInfo === 'function') ? x.getInfo() : '';
			record.push(statuses[k]);
			log(what + ' status ' + statuses[k] + (info ? ' (' + info + ')' : ''));
			listeners.slice().forEach(function (fn) { fn(statuses[k]); });
		});
	});
	return function (want, failOn, ms) {
		var fn;
		if (record.indexOf(want) >= 0) return Promise.resolve();
		var p = new Promise(function (resolve, reject) {
			fn = function (status) {
				if (status === want) {
					resolve();
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
