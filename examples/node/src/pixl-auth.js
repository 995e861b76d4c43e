'use strict';
// pixltoken authentication for fastify: copy this file into your app.
//
//   const auth = pixlAuth({ pool, storeFrom: (req) => req.params.store });
//   app.addHook('onRequest', auth.onRequest);   // or per route: { onRequest: auth.onRequest }
//   app.addHook('onResponse', auth.onResponse);
//   app.get('/v1/stores/:store/products', { config: { scope: 'products:read' } }, handler);
//   app.addHook('onClose', auth.close);
//
// What it does on every request:
// - one round trip: SELECT ... FROM pixl_verify_token_http($1, ...) with the
//   secret and everything else as BIND PARAMETERS (never in the SQL text:
//   pg_stat_activity and the server log would show it), as an unnamed
//   statement, which works through PgBouncer in transaction pooling mode;
// - the client IP is validated in JavaScript before it is passed as inet:
//   '1.2.3.4:5555' -> 1.2.3.4, '[::1]:80' -> ::1, 'fe80::1%eth0' -> fe80::1,
//   'unknown' or anything else -> NULL (a bad inet would fail the whole call
//   with SQLSTATE 22P02 and lock every such client out);
// - a rejection (401, 403, 429) is answered with the headers the database
//   prepared (WWW-Authenticate, RateLimit-Policy, RateLimit, Retry-After) and
//   its RFC 9457 problem body; a 200 gets the RateLimit headers and the
//   verified token on request.pixl;
// - request_id is kept as the opaque string the database returned (never
//   parsed as a number: JavaScript would round it to another request's id);
// - the final status and response time are reported with pixl_log_responses,
//   batched: at most one call every `flushMs` (default 5 ms) with arrays,
//   instead of a round trip per request;
// - when the database cannot answer (down, pool exhausted, timeout) the
//   request is refused with 503 and Retry-After: fail closed, never open.

const net = require('node:net');

// Returns a string PostgreSQL's inet accepts, or null.
function clientIp(raw) {
	if (typeof raw !== 'string') return null;
	let s = raw.trim();
	if (s === '') return null;
	// [v6]:port
	const bracket = /^\[([^\]]+)\](?::\d{1,5})?$/.exec(s);
	if (bracket) s = bracket[1];
	// v4:port (an IPv6 address has more than one colon)
	const v4port = /^(\d{1,3}(?:\.\d{1,3}){3}):\d{1,5}$/.exec(s);
	if (v4port) s = v4port[1];
	// zone index (fe80::1%eth0): inet has no zones
	const pct = s.indexOf('%');
	if (pct > 0 && net.isIPv6(s)) s = s.slice(0, pct);
	// IPv4-mapped IPv6 as Node reports it for IPv4 clients on a dual-stack socket
	if (/^::ffff:\d{1,3}(\.\d{1,3}){3}$/i.test(s)) s = s.slice(7);
	return net.isIP(s) ? s : null;
}

const VERIFY_SQL =
	'SELECT status, reason, token_id, store_id, mode, scopes, request_id, ' +
	'www_authenticate, ratelimit_policy, ratelimit, retry_after, problem ' +
	'FROM pixl_verify_token_http($1, $2, $3, $4, $5, $6)';

function pixlAuth(opts) {
	const pool = opts.pool;
	const flushMs = opts.flushMs ?? 5;
	const maxBatch = opts.maxBatch ?? 1000;
	const storeFrom = opts.storeFrom ?? (() => null);
	const log = opts.log ?? console;
	let ids = [], statuses = [], times = [];
	let timer = null;
	let inflight = Promise.resolve();

	function flush() {
		timer = null;
		if (ids.length === 0) return inflight;
		const batch = [ids, statuses, times];
		ids = []; statuses = []; times = [];
		// one call at a time, in order; a failed report is logged, not retried
		// (usage analytics are best effort, verification is not)
		inflight = inflight.then(() =>
			pool.query('SELECT pixl_log_responses($1::text[], $2::int[], $3::float8[])', batch)
				.catch((err) => log.warn({ err: err.message, code: err.code },
					'pixltoken: could not report responses')));
		return inflight;
	}

	function report(requestId, status, ms) {
		ids.push(requestId);
		statuses.push(status);
		times.push(Math.max(0, ms));
		if (ids.length >= maxBatch) flush();
		else if (timer === null) timer = setTimeout(flush, flushMs);
	}

	function bearer(req) {
		const h = req.headers.authorization;
		if (typeof h !== 'string') return null;
		const m = /^Bearer[ ]+(\S+)[ ]*$/i.exec(h);
		// a malformed header is passed on as-is: the database answers 401 malformed
		return m ? m[1] : h;
	}

	async function onRequest(req, reply) {
		const scope = req.routeOptions.config?.scope ?? null;
		if (scope === null && req.routeOptions.config?.public) return;
		let row;
		try {
			const res = await pool.query(VERIFY_SQL, [
				bearer(req), scope, storeFrom(req) ?? null, req.method,
				req.routeOptions.url ?? null,	/* the route, not the raw path */
				clientIp(req.ip),
			]);
			row = res.rows[0];
		} catch (err) {
			req.log.error({ code: err.code, err: err.message }, 'pixltoken: verification failed');
			reply.code(503).header('retry-after', '1')
				.type('application/problem+json')
				.send({ type: 'about:blank', title: 'Service Unavailable', status: 503,
						detail: 'authentication is unavailable' });
			return reply;
		}
		for (const [name, col] of [['www-authenticate', 'www_authenticate'],
			['ratelimit-policy', 'ratelimit_policy'], ['ratelimit', 'ratelimit'],
			['retry-after', 'retry_after']]) {
			if (row[col] != null) reply.header(name, row[col]);
		}
		// 401s have no usage row to report to; 200, 403 and 429 have one
		req.pixlRequestId = row.status === 401 ? null : row.request_id;
		if (row.status !== 200) {
			reply.code(row.status).type('application/problem+json').send(row.problem);
			return reply;
		}
		req.pixl = { tokenId: row.token_id, storeId: row.store_id, mode: row.mode,
					 scopes: row.scopes, requestId: row.request_id };
	}

	async function onResponse(req, reply) {
		if (req.pixlRequestId) report(req.pixlRequestId, reply.statusCode, reply.elapsedTime);
	}

	async function close() {
		if (timer !== null) clearTimeout(timer);
		await flush();
	}

	return { onRequest, onResponse, close, flush };
}

module.exports = { pixlAuth, clientIp, VERIFY_SQL };
