// Helpers both test pages (index.html, call.html) use; harness.mjs serves
// this file under /__e2e__/.

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
