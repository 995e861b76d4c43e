'use strict';
// The example API over real HTTP against a real cluster (test/examples.sh
// starts it and sets PGHOST/PGPORT/PGDATABASE, PGUSER=app_server and
// ADMIN_PGUSER; VIA_PGBOUNCER=1 when PGPORT is PgBouncer's).
const test = require('node:test');
const assert = require('node:assert/strict');
const { buildApp, makePool } = require('../src/app');
const { clientIp } = require('pixltoken-client');

const via = process.env.VIA_PGBOUNCER === '1' ? 'pgbouncer' : 'direct';
const STORE = `acme-${via}-${process.pid}`;
const OTHER = `globex-${via}-${process.pid}`;
let pool, admin, app, base, last;

async function sql(text, values) {
	return (await admin.query(text, values)).rows;
}
async function newToken(name, scopes, extra = {}) {
	const [row] = await sql(
		'SELECT token_id, token FROM pixl_create_token($1, $2, $3::text[], rate_limit => $4)',
		[extra.store ?? STORE, name, scopes, extra.rateLimit ?? 120]);
	return row;
}
function get(path, token, headers = {}) {
	const h = { ...headers };
	if (token) h.authorization = `Bearer ${token}`;
	return fetch(base + path, { headers: h });
}
// bounded poll: in the test cluster the usage worker flushes every 100 ms
// and writes the recent calls out with its fold, every second
async function until(what, fn, ms = 10000) {
	last = undefined;
	const end = Date.now() + ms;
	for (;;) {
		const v = await fn();
		if (v) return v;
		if (Date.now() > end) assert.fail(`timed out waiting for ${what}: ${JSON.stringify(last)}`);
		await new Promise((r) => setTimeout(r, 50));
	}
}
function assertProblem(res, body, status) {
	assert.equal(res.status, status);
	assert.match(res.headers.get('content-type'), /^application\/problem\+json/);
	assert.equal(body.status, status);
	assert.equal(typeof body.title, 'string');
}

test.before(async () => {
	pool = makePool();
	admin = makePool({ user: process.env.ADMIN_PGUSER ?? 'postgres', max: 2 });
	await sql('SELECT pixl_set_store_plan($1, $2)', [STORE, 'enterprise']);
	await sql('SELECT pixl_set_store_plan($1, $2)', [OTHER, 'growth']);
	app = buildApp({ pool, trustProxy: true });
	await app.listen({ port: 0, host: '127.0.0.1' });
	base = `http://127.0.0.1:${app.server.address().port}`;
});
test.after(async () => {
	await app.close();
	await pool.end();
	await admin.end();
});

test(`[${via}] client IPs are validated before they reach inet`, () => {
	assert.equal(clientIp('1.2.3.4'), '1.2.3.4');
	assert.equal(clientIp('1.2.3.4:5555'), '1.2.3.4');
	assert.equal(clientIp('[2001:db8::1]:443'), '2001:db8::1');
	assert.equal(clientIp('fe80::1%eth0'), 'fe80::1');
	assert.equal(clientIp('::ffff:10.1.2.3'), '10.1.2.3');
	assert.equal(clientIp('unknown'), null);
	assert.equal(clientIp(''), null);
	assert.equal(clientIp('1.2.3.4; DROP TABLE x'), null);
	assert.equal(clientIp(undefined), null);
});

test(`[${via}] request_id is an opaque string`, async () => {
	const t = await newToken('ids', ['products:read']);
	const { rows } = await pool.query(
		'SELECT request_id FROM pixl_verify_token_http($1, $2, $3)', [t.token, 'products:read', STORE]);
	assert.equal(typeof rows[0].request_id, 'string');
	assert.ok(rows[0].request_id.length > 0);
});

test(`[${via}] 200 with its RateLimit headers`, async () => {
	const t = await newToken('ok', ['products:write', 'orders:read']);
	const res = await get(`/v1/stores/${STORE}/products`, t.token);
	assert.equal(res.status, 200);
	const body = await res.json();
	assert.equal(body.token_id, t.token_id);
	assert.equal(res.headers.get('ratelimit-policy'), '"default";q=120;w=60');
	assert.match(res.headers.get('ratelimit'), /^"default";r=119;t=\d+$/);
	assert.equal(res.headers.get('www-authenticate'), null);
	assert.equal(res.headers.get('retry-after'), null);
	// products:write grants products:read; orders:read is in the token too
	assert.equal((await get(`/v1/stores/${STORE}/orders`, t.token)).status, 200);
});

test(`[${via}] every 401 with WWW-Authenticate and a problem body`, async () => {
	const live = await newToken('live', ['products:read']);
	const rotated = await newToken('rotated', ['products:read']);
	await sql('SELECT pixl_rotate_token($1)', [rotated.token_id]);
	const expired = await newToken('expired', ['products:read']);
	await sql("UPDATE pixl_token_registry SET expires_at = now() - interval '1 second' WHERE token_id = $1",
		[expired.token_id]);
	const revoked = await newToken('revoked', ['products:read']);
	await sql('SELECT pixl_revoke_token($1)', [revoked.token_id]);
	const cases = [
		['missing', null],
		['malformed', 'sk_live_nope'],
		['malformed (padded)', live.token + 'x'],
		['token_id_not_secret', live.token_id],
		['unknown (old secret after rotation)', rotated.token],
		['expired', expired.token],
		['revoked', revoked.token],
	];
	for (const [what, token] of cases) {
		const res = await get(`/v1/stores/${STORE}/products`, token);
		assertProblem(res, await res.json(), 401);
		assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer /, what);
		assert.equal(res.headers.get('retry-after'), null, what);
	}
	// a header that is not "Bearer <token>" is a malformed token, not a crash
	const res = await fetch(base + `/v1/stores/${STORE}/products`, { headers: { authorization: 'Basic Zm9vOmJhcg==' } });
	assertProblem(res, await res.json(), 401);
});

test(`[${via}] 403 insufficient_scope and wrong_store`, async () => {
	const t = await newToken('reader', ['products:read']);
	let res = await fetch(base + `/v1/stores/${STORE}/products`,
		{ method: 'POST', headers: { authorization: `Bearer ${t.token}` } });
	assertProblem(res, await res.json(), 403);
	assert.match(res.headers.get('www-authenticate'), /insufficient_scope/);
	res = await get(`/v1/stores/${OTHER}/products`, t.token);
	assertProblem(res, await res.json(), 403);
	assert.ok(res.headers.get('ratelimit-policy'));
});

test(`[${via}] 429 with Retry-After and RateLimit`, async () => {
	const t = await newToken('slow', ['products:read'], { rateLimit: 3 });
	for (let i = 0; i < 3; i++) {
		assert.equal((await get(`/v1/stores/${STORE}/products`, t.token)).status, 200);
	}
	const res = await get(`/v1/stores/${STORE}/products`, t.token);
	assertProblem(res, await res.json(), 429);
	const after = Number(res.headers.get('retry-after'));
	assert.ok(Number.isInteger(after) && after >= 1 && after <= 62, `Retry-After ${after}`);
	assert.equal(res.headers.get('ratelimit-policy'), '"default";q=3;w=60');
	assert.match(res.headers.get('ratelimit'), /^"default";r=0;t=\d+$/);
});

test(`[${via}] odd client addresses never fail the call; responses are reported in batches`, async () => {
	const t = await newToken('ips', ['products:write']);
	const sent = [['1.2.3.4:5555', '1.2.3.4'], ['unknown', null], ['fe80::1%eth0', 'fe80::1'],
				  ['[2001:db8::7]:8080', '2001:db8::7']];
	for (const [xff] of sent) {
		const res = await get(`/v1/stores/${STORE}/products`, t.token, { 'x-forwarded-for': xff });
		assert.equal(res.status, 200, xff);
	}
	let res = await fetch(base + `/v1/stores/${STORE}/products`,
		{ method: 'POST', headers: { authorization: `Bearer ${t.token}` } });
	assert.equal(res.status, 201);
	res = await get(`/v1/stores/${STORE}/broken`, t.token);
	assert.equal(res.status, 500);
	// every call is in the usage, with its final status and a response time
	const rows = await until('6 calls with response times', async () => {
		const r = await sql('SELECT method, endpoint, status, host(ip) AS ip, response_ms FROM pixl_recent_calls($1) ORDER BY at', [t.token_id]);
		last = r;
		return r.length === 6 && r.every((c) => c.response_ms !== null) ? r : null;
	});
	assert.deepEqual(rows.slice(0, 4).map((c) => c.ip), sent.map(([, ip]) => ip));
	assert.deepEqual(rows.map((c) => c.status), [200, 200, 200, 200, 201, 500]);
	assert.deepEqual(rows.map((c) => c.endpoint), [
		'/v1/stores/{store}/products', '/v1/stores/{store}/products', '/v1/stores/{store}/products',
		'/v1/stores/{store}/products', '/v1/stores/{store}/products', '/v1/stores/{store}/broken']);
	assert.equal(rows[4].method, 'POST');
});

test(`[${via}] a revocation mid-traffic is answered 401 by the next request`, async () => {
	const t = await newToken('busy', ['products:read'], { rateLimit: 1000 });
	let revokedAt = null;
	const results = [];
	let stop = false;
	// four clients hammering the API (several pooled connections)
	const clients = [0, 1, 2, 3].map(async () => {
		while (!stop) {
			const started = Date.now();
			const res = await get(`/v1/stores/${STORE}/products`, t.token);
			await res.arrayBuffer();
			results.push({ started, status: res.status });
		}
	});
	await until('traffic', async () => results.filter((r) => r.status === 200).length >= 40);
	await sql('SELECT pixl_revoke_token($1)', [t.token_id]);
	revokedAt = Date.now();	// the revoking transaction has committed
	await until('401s after the revocation', async () =>
		results.filter((r) => r.started > revokedAt).length >= 40);
	stop = true;
	await Promise.all(clients);
	const after = results.filter((r) => r.started > revokedAt);
	assert.ok(results.filter((r) => r.started < revokedAt && r.status === 200).length >= 40);
	assert.deepEqual([...new Set(after.map((r) => r.status))], [401]);
	const res = await get(`/v1/stores/${STORE}/products`, t.token);
	assert.equal(res.status, 401);
	assert.match(res.headers.get('www-authenticate'), /invalid_token/);
});

test(`[${via}] 503 when the database is unreachable (fail closed)`, async () => {
	const dead = makePool({ port: 1, connectionTimeoutMillis: 500 });
	const down = buildApp({ pool: dead });
	await down.listen({ port: 0, host: '127.0.0.1' });
	try {
		const t = await newToken('down', ['products:read']);
		const res = await fetch(`http://127.0.0.1:${down.server.address().port}/v1/stores/${STORE}/products`,
			{ headers: { authorization: `Bearer ${t.token}` } });
		assertProblem(res, await res.json(), 503);
		assert.equal(res.headers.get('retry-after'), '1');
	} finally {
		await down.close();
		await dead.end();
	}
});

// The PgBouncer 1.18 trap, reproduced: a NAMED prepared statement lives on
// the server connection that parsed it; in transaction pooling the next
// execution may run on another one.  Client A prepares "q" on a server
// connection, client B then holds that connection in a transaction (PgBouncer
// hands out the most recently used server first), and A's next execution of
// "q" lands elsewhere: 26000.  The same sequence with an unnamed statement,
// as the auth hook sends, works.
if (via === 'pgbouncer') {
	test('[pgbouncer] named prepared statements fail in transaction pooling (1.18); unnamed ones work', async () => {
		const pg = require('pg');
		const a = new pg.Client(), b = new pg.Client();
		await a.connect(); await b.connect();
		try {
			const named = { name: 'pixl_q', text: 'SELECT status FROM pixl_verify_token_http($1, $2)', values: [null, '*'] };
			assert.equal((await a.query(named)).rows[0].status, 401);
			await b.query('BEGIN');
			await b.query('SELECT 1');	// B now holds the server connection A prepared on
			await assert.rejects(a.query(named), (err) => err.code === '26000');
			const unnamed = { text: 'SELECT status FROM pixl_verify_token_http($1, $2)', values: [null, '*'] };
			assert.equal((await a.query(unnamed)).rows[0].status, 401);
			await b.query('COMMIT');
			// PgBouncer lends the server connection released last (LIFO): the
			// one holding "pixl_q", removed so that a later run starts clean
			await a.query('DEALLOCATE ALL');
		} finally {
			await a.end(); await b.end();
		}
	});
}
