'use strict';
// pixltoken-client: verify store API tokens with pixltoken (PostgreSQL) from a
// Node.js app server, and report each request's final status and response
// time.  Versioned with the extension (1.1.x for pixltoken 1.1).
//
// What survives an upgrade of the extension (ALTER EXTENSION pixltoken
// UPDATE) with the app server running:
// - the verification selects an explicit column list, never `*`: a column a
//   later version adds changes nothing this client reads;
// - request_id is an opaque string (1.0 returned bigint, 1.1 text): it is
//   never parsed and is passed back as text[];
// - a statement whose cached plan no longer matches ("cached plan must not
//   change result type", SQLSTATE 0A000) is retried once on a fresh
//   connection, which prepares it again.
// By default every statement is sent UNNAMED (Parse/Bind/Execute in one
// go, bind parameters kept): that works directly and through PgBouncer 1.18
// in transaction pooling.  `statementName` opts into a named prepared
// statement, for direct connections only.
//
// Fail closed: a database that cannot answer is a 503; a route with no scope
// is refused (500) without asking the database.  A route that needs no scope
// says so with NO_SCOPE_REQUIRED.

const ipaddr = require('ipaddr.js');

const VERSION = '1.1.0';

// What a deliberate "no scope required" is sent as.  The one place to change
// if the extension spells "authentication only" differently.
const NO_SCOPE_SQL_VALUE = '*';
const NO_SCOPE_REQUIRED = Symbol.for('pixltoken.noScopeRequired');

const VERIFY_COLUMNS = [
	'status', 'reason', 'token_id', 'store_id', 'mode', 'scopes', 'request_id',
	'www_authenticate', 'ratelimit_policy', 'ratelimit', 'retry_after', 'problem',
];
const VERIFY_SQL =
	`SELECT ${VERIFY_COLUMNS.join(', ')} FROM pixl_verify_token_http($1, $2, $3, $4, $5, $6::inet)`;
// the count is read as text: whatever integer type a version returns
const REPORT_SQL =
	'SELECT pixl_log_responses($1::text[], $2::int[], $3::float8[])::text AS n';

const PLAN_CHANGED = '0A000';

// A string PostgreSQL's inet accepts, or null.  Ports, brackets and IPv6 zone
// indexes are removed; IPv4-mapped IPv6 (::ffff:203.0.113.9, what a server
// listening on :: sees for IPv4 clients) becomes the IPv4 address, so IPv4
// allowlists match.  IPv4 must be four decimal parts (ipaddr.js would also
// take 0x7f.1 or 127.1, which inet reads differently or not at all).
function clientIp(raw) {
	if (typeof raw !== 'string') return null;
	let s = raw.trim();
	let m = /^\[([^\]]+)\](?::\d{1,5})?$/.exec(s);
	if (m) s = m[1];
	m = /^([0-9.]+):\d{1,5}$/.exec(s);
	if (m) s = m[1];
	const pct = s.indexOf('%');
	if (pct > 0 && s.includes(':')) s = s.slice(0, pct);
	let addr;
	if (ipaddr.IPv4.isValidFourPartDecimal(s)) addr = ipaddr.IPv4.parse(s);
	else if (ipaddr.IPv6.isValid(s)) addr = ipaddr.process(s);	// IPv4-mapped -> IPv4
	else return null;
	return addr.toString();
}

// The endpoint naming rule shared with the Python client (clients/endpoint-names.json).
function endpointName(route) {
	if (typeof route !== 'string' || route === '') return null;
	let s = route.split('?')[0];
	s = s.replace(/:([A-Za-z_][A-Za-z0-9_]*)(\([^/]*?\))?(?=\/|$)/g, '{$1}');	// :name, :name(regex)
	s = s.replace(/<(?:[A-Za-z_][A-Za-z0-9_]*:)?([A-Za-z_][A-Za-z0-9_]*)>/g, '{$1}');	// <name>, <conv:name>
	if (s.length > 1 && s.endsWith('/')) s = s.replace(/\/+$/, '');
	return s === '' ? '/' : s;
}

function bearer(header) {
	if (typeof header !== 'string') return null;
	const m = /^Bearer[ ]+(\S+)[ ]*$/i.exec(header);
	// a header that is not "Bearer <token>" goes as-is: the database answers 401
	return m ? m[1] : header;
}

function scopeParam(scope) {
	if (scope === NO_SCOPE_REQUIRED) return NO_SCOPE_SQL_VALUE;
	if (typeof scope === 'string' && scope !== '') return scope;
	throw new TypeError('pixltoken: a scope is required (a scope name, or NO_SCOPE_REQUIRED on purpose)');
}

const UNAVAILABLE = Object.freeze({
	status: 503, reason: 'unavailable', headers: { 'retry-after': '1' },
	problem: { type: 'about:blank', title: 'Service Unavailable', status: 503,
			   detail: 'authentication is unavailable' },
});

function createClient(opts) {
	if (!opts || !opts.pool) throw new TypeError('pixltoken: createClient({ pool }) needs a pg.Pool');
	const pool = opts.pool;
	const log = opts.log ?? console;
	const flushMs = opts.flushMs ?? 5;
	const maxBatch = opts.maxBatch ?? 1000;
	const statementName = opts.statementName ?? null;
	let ids = [], statuses = [], times = [];
	let timer = null;
	let inflight = Promise.resolve();

	// One query, retried once on a connection of its own when the plan of a
	// prepared statement no longer matches what the extension returns.
	async function run(text, values, name) {
		for (let attempt = 0; ; attempt++) {
			const client = await pool.connect();
			try {
				const res = await client.query(name ? { name, text, values } : { text, values });
				client.release();
				return res;
			} catch (err) {
				// a connection whose prepared statement is stale is closed, not reused
				client.release(err.code === PLAN_CHANGED ? err : undefined);
				if (err.code !== PLAN_CHANGED || attempt > 0) throw err;
				log.warn?.({ code: err.code }, 'pixltoken: statement re-prepared after an extension update');
			}
		}
	}

	// -> { status, reason, tokenId, storeId, mode, scopes, requestId, headers, problem }
	async function verify({ authorization, scope, store = null, method = null, route = null, ip = null }) {
		const values = [bearer(authorization), scopeParam(scope), store ?? null, method ?? null,
						endpointName(route), clientIp(ip)];
		let row;
		try {
			row = (await run(VERIFY_SQL, values, statementName)).rows[0];
		} catch (err) {
			log.error?.({ code: err.code, err: err.message }, 'pixltoken: verification failed');
			return { ...UNAVAILABLE, headers: { ...UNAVAILABLE.headers }, tokenId: null, requestId: null };
		}
		const headers = {};
		for (const [name, col] of [['www-authenticate', 'www_authenticate'],
			['ratelimit-policy', 'ratelimit_policy'], ['ratelimit', 'ratelimit'],
			['retry-after', 'retry_after']]) {
			if (row[col] != null) headers[name] = row[col];
		}
		return {
			status: row.status, reason: row.reason, tokenId: row.token_id, storeId: row.store_id,
			mode: row.mode, scopes: row.scopes,
			// 401s have no usage row to report to; the id stays an opaque string
			requestId: row.status === 401 || row.request_id == null ? null : String(row.request_id),
			headers, problem: row.problem,
		};
	}

	function flush() {
		timer = null;
		if (ids.length === 0) return inflight;
		const batch = [ids, statuses, times];
		ids = []; statuses = []; times = [];
		// one report at a time, in order; a failed one is logged, not retried
		// (usage analytics are best effort, verification is not)
		inflight = inflight.then(() => run(REPORT_SQL, batch, null)
			.catch((err) => log.warn?.({ code: err.code, err: err.message },
				'pixltoken: could not report responses')));
		return inflight;
	}

	function report(requestId, status, ms) {
		if (requestId == null) return;
		ids.push(String(requestId));
		statuses.push(status);
		times.push(Math.max(0, Number(ms) || 0));
		if (ids.length >= maxBatch) flush();
		else if (timer === null) timer = setTimeout(flush, flushMs);
	}

	async function close() {
		if (timer !== null) clearTimeout(timer);
		await flush();
	}

	return { verify, report, flush, close };
}

// fastify hooks.  Each route's config names its scope:
//   { config: { scope: 'products:read' } }, { config: { scope: NO_SCOPE_REQUIRED } },
//   or { config: { public: true } } for a route that takes no token at all.
// A route with neither is answered 500 and never reaches its handler.
function fastifyHooks(client, { storeFrom = (req) => req.params?.store } = {}) {
	function send(reply, status, headers, problem) {
		for (const [k, v] of Object.entries(headers ?? {})) reply.header(k, v);
		reply.code(status).type('application/problem+json').send(problem);
		return reply;
	}
	async function onRequest(req, reply) {
		// no route matched: fastify's 404 answers, with nothing to protect
		if (req.is404) return;
		const config = req.routeOptions.config ?? {};
		if (config.public === true && config.scope === undefined) return;
		if (config.scope === undefined || config.scope === null) {
			req.log.error({ route: req.routeOptions.url }, 'pixltoken: route has no scope (fail closed)');
			return send(reply, 500, {}, { type: 'about:blank', title: 'Internal Server Error', status: 500,
										  detail: 'this route declares no scope' });
		}
		const a = await client.verify({
			authorization: req.headers.authorization, scope: config.scope, store: storeFrom(req) ?? null,
			method: req.method, route: req.routeOptions.url ?? null, ip: req.ip,
		});
		req.pixlRequestId = a.requestId;
		if (a.status !== 200) return send(reply, a.status, a.headers, a.problem);
		for (const [k, v] of Object.entries(a.headers)) reply.header(k, v);
		req.pixl = a;
	}
	async function onResponse(req, reply) {
		if (req.pixlRequestId) client.report(req.pixlRequestId, reply.statusCode, reply.elapsedTime);
	}
	return { onRequest, onResponse };
}

module.exports = {
	VERSION, NO_SCOPE_REQUIRED, NO_SCOPE_SQL_VALUE, VERIFY_SQL, REPORT_SQL, VERIFY_COLUMNS,
	createClient, fastifyHooks, clientIp, endpointName, bearer,
};
