'use strict';
// node bench/http.js  (PG* env vars as for the server; TOKENS_FILE: one
// "store secret" per line).  Requests/s of the example API with verification
// divided by the same server doing SELECT 1, measured alternately in one
// run with autocannon.  Prints a markdown table.
const { fork } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const autocannon = require('autocannon');

const SECONDS = Number(process.env.SECONDS ?? 10);
const ROUNDS = Number(process.env.ROUNDS ?? 2);
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 32);
const tokens = fs.readFileSync(process.env.TOKENS_FILE, 'utf8').trim().split('\n').map((l) => l.split(' '));

function start(mode) {
	return new Promise((resolve) => {
		const child = fork(path.join(__dirname, 'server.js'), { env: { ...process.env, MODE: mode } });
		child.once('message', (m) => resolve({ child, port: m.port }));
	});
}
function load(port, seconds = SECONDS) {
	let i = 0;
	return autocannon({
		url: `http://127.0.0.1:${port}`, connections: CONNECTIONS, duration: seconds,
		requests: [{
			setupRequest: (req) => {
				const [store, secret] = tokens[(i++) % tokens.length];
				return { ...req, method: 'GET', path: `/v1/stores/${store}/products`,
						 headers: { authorization: `Bearer ${secret}` } };
			},
		}],
	});
}

(async () => {
	const results = { verify: [], select1: [] };
	for (let r = 0; r < ROUNDS; r++) {
		for (const mode of ['verify', 'select1']) {
			const { child, port } = await start(mode);
			await load(port, 3);	// warm-up (3 s, discarded): JIT, pool, token caches
			const res = await load(port);
			child.kill('SIGTERM');
			await new Promise((ok) => child.on('exit', ok));
			results[mode].push({ rps: res.requests.average, p99: res.latency.p99, ok: res['2xx'], non2xx: res.non2xx, errors: res.errors });
		}
	}
	const avg = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
	console.log(`| server | connections | req/s (mean of ${ROUNDS} x ${SECONDS}s) | p99 ms | non-2xx | errors |`);
	console.log('|---|---:|---:|---:|---:|---:|');
	for (const mode of ['verify', 'select1']) {
		const rs = results[mode];
		console.log(`| ${mode === 'verify' ? 'pixl_verify_token_http + batched pixl_log_responses' : 'SELECT 1'} | ${CONNECTIONS} | ${avg(rs.map((x) => x.rps)).toFixed(0)} | ${Math.max(...rs.map((x) => x.p99))} | ${rs.reduce((a, x) => a + x.non2xx, 0)} | ${rs.reduce((a, x) => a + x.errors, 0)} |`);
	}
	console.log(`\nratio verify / SELECT 1: ${(avg(results.verify.map((x) => x.rps)) / avg(results.select1.map((x) => x.rps))).toFixed(2)}`);
	console.log(`per round: verify ${results.verify.map((x) => x.rps.toFixed(0)).join(', ')}; SELECT 1 ${results.select1.map((x) => x.rps.toFixed(0)).join(', ')}`);
})();
