'use strict';
// pixltoken-client against a real cluster (test/examples.sh sets PGHOST,
// PGPORT, PGDATABASE, PGUSER=app_server, ADMIN_PGUSER; VIA_PGBOUNCER=1 when
// PGPORT is PgBouncer's in transaction pooling).
const test = require('node:test');
const assert = require('node:assert/strict');
const pg = require('pg');
const Fastify = require('fastify');
const px = require('..');
const vectors = require('../../endpoint-names.json');

const VIA = process.env.VIA_PGBOUNCER === '1';
const via = VIA ? 'pgbouncer' : 'direct';
const STORE = `cl-${via}-${process.pid}`;
const ADMIN = process.env.ADMIN_PGUSER ?? 'postgres';
let admin, pool;

async function token(name, scopes, extra = {}) {
	const { rows: [row] } = await admin.query(
		'SELECT token_id, token FROM pixl_create_token($1, $2, $3::text[], rate_limit => $4, allowed_ips => $5::text[])',
		[STORE, name, scopes, extra.rateLimit ?? 1000, extra.allowedIps ?? null]);
	return row;
}
// bounded poll: recent calls are written out with the fold (1 s in the test
// cluster, test/examples.sh)
async function until(what, fn, ms = 10000) {
	const end = Date.now() + ms;
	for (;;) {
		const v = await fn();
		if (v) return v;
		if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
		await new Promise((r) => setTimeout(r, 50));
	}
}

test.before(async () => {
	admin = new pg.Pool({ user: ADMIN, max: 2 });
	pool = new pg.Pool({ max: 10, connectionTimeoutMillis: 2000 });
	await admin.query("SELECT pixl_set_store_plan($1, 'enterprise')", [STORE]);
});
test.after(async () => { await pool.end(); await admin.end(); });

test(`[${via}] client addresses: maintained parser, IPv4-mapped to IPv4`, () => {
	const cases = [['1.2.3.4', '1.2.3.4'], ['1.2.3.4:5555', '1.2.3.4'], ['[2001:db8::1]:443', '2001:db8::1'],
		['fe80::1%eth0', 'fe80::1'], ['::ffff:203.0.113.9', '203.0.113.9'], ['[::ffff:203.0.113.9]:80', '203.0.113.9'],
		['2001:DB8::1', '2001:db8::1'], ['unknown', null], ['', null], ['127.1', null], ['0x7f.0.0.1', null],
		['1.2.3.4; DROP TABLE x', null], [undefined, null]];
	for (const [raw, want] of cases) assert.equal(px.clientIp(raw), want, String(raw));
});

test(`[${via}] one endpoint naming rule (clients/endpoint-names.json)`, () => {
	for (const [route, want] of vectors.cases) assert.equal(px.endpointName(route), want, String(route));
});

test(`[${via}] a scope is required; NO_SCOPE_REQUIRED only on purpose`, async () => {
	const c = px.createClient({ pool });
	const t = await token('noscope', ['orders:read']);
	for (const scope of [undefined, null, '']) {
		await assert.rejects(c.verify({ authorization: `Bearer ${t.token}`, scope, store: STORE }), TypeError);
	}
	const a = await c.verify({ authorization: `Bearer ${t.token}`, scope: px.NO_SCOPE_REQUIRED, store: STORE });
	assert.equal(a.status, 200);
	const b = await c.verify({ authorization: `Bearer ${t.token}`, scope: 'products:write', store: STORE });
	assert.equal(b.status, 403);
	await c.close();
});

test(`[${via}] a fastify route that forgets its scope fails closed`, async () => {
	const c = px.createClient({ pool });
	const hooks = px.fastifyHooks(c);
	const app = Fastify();
	app.addHook('onRequest', hooks.onRequest);
	app.addHook('onResponse', hooks.onResponse);
	let reached = 0;
	app.get('/v1/stores/:store/forgot', async () => { reached++; return { ok: true }; });
	app.get('/v1/stores/:store/orders', { config: { scope: 'orders:read' } }, async () => ({ ok: true }));
	app.get('/v1/me', { config: { scope: px.NO_SCOPE_REQUIRED } }, async () => ({ ok: true }));
	const t = await token('forgot', ['orders:read']);
	const auth = { authorization: `Bearer ${t.token}` };
	let res = await app.inject({ url: `/v1/stores/${STORE}/forgot`, headers: auth });
	assert.equal(res.statusCode, 500);
	assert.equal(reached, 0);
	res = await app.inject({ url: `/v1/stores/${STORE}/orders`, headers: auth });
	assert.equal(res.statusCode, 200);
	res = await app.inject({ url: '/v1/me', headers: auth });
	assert.equal(res.statusCode, 200);
	res = await app.inject({ url: '/v1/me' });
	assert.equal(res.statusCode, 401);
	assert.match(res.headers['www-authenticate'] ?? '', /^Bearer /);
	// no route: fastify's 404, no verification
	res = await app.inject({ url: '/v1/no/such/route', headers: auth });
	assert.equal(res.statusCode, 404);
	await app.close();
	await c.close();
	// the endpoint is the {name} template, as the Python client names it
	const rows = await until('reported calls', async () => {
		const { rows } = await admin.query(
			'SELECT endpoint, status, response_ms FROM pixl_recent_calls($1) ORDER BY at', [t.token_id]);
		return rows.length === 2 && rows.every((r) => r.response_ms !== null) ? rows : null;
	});
	assert.deepEqual(rows.map((r) => [r.endpoint, r.status]), [['/v1/stores/{store}/orders', 200], ['/v1/me', 200]]);
});

test(`[${via}] an IPv4-mapped client address passes an IPv4 allowlist`, async () => {
	const c = px.createClient({ pool });
	const t = await token('allow', ['orders:read'], { allowedIps: ['203.0.113.0/24'] });
	const ok = await c.verify({ authorization: `Bearer ${t.token}`, scope: 'orders:read', store: STORE,
		ip: '::ffff:203.0.113.9' });
	assert.equal(ok.status, 200);
	const no = await c.verify({ authorization: `Bearer ${t.token}`, scope: 'orders:read', store: STORE,
		ip: '::ffff:198.51.100.1' });
	assert.equal(no.status, 403);
	await c.close();
});

test(`[${via}] request ids are opaque strings and their reports land`, async () => {
	const c = px.createClient({ pool, flushMs: 1 });
	const t = await token('ids', ['orders:read']);
	const ids = [];
	for (let i = 0; i < 5; i++) {
		const a = await c.verify({ authorization: `Bearer ${t.token}`, scope: 'orders:read', store: STORE,
			method: 'GET', route: '/v1/stores/:store/orders' });
		assert.equal(a.status, 200);
		assert.equal(typeof a.requestId, 'string');
		ids.push(a.requestId);
		c.report(a.requestId, 200 + i, 7.5);
	}
	assert.equal(new Set(ids).size, 5);
	await c.close();
	const rows = await until('5 reports', async () => {
		const { rows } = await admin.query('SELECT status, response_ms FROM pixl_recent_calls($1) ORDER BY at', [t.token_id]);
		return rows.length === 5 && rows.every((r) => r.response_ms !== null) ? rows : null;
	});
	assert.deepEqual(rows.map((r) => r.status), [200, 201, 202, 203, 204]);
});

// The client's defaults under concurrency: more client connections than
// PgBouncer has server connections (default_pool_size 4), every call answered.
test(`[${via}] 400 concurrent verifications with the defaults: 0 failures`, async () => {
	const big = new pg.Pool({ max: 16, connectionTimeoutMillis: 5000 });
	const c = px.createClient({ pool: big });
	const t = await token('load', ['orders:read'], { rateLimit: 1000 });
	const statuses = [];
	await Promise.all(Array.from({ length: 16 }, async () => {
		for (let i = 0; i < 25; i++) {
			const a = await c.verify({ authorization: `Bearer ${t.token}`, scope: 'orders:read', store: STORE,
				method: 'GET', route: '/v1/stores/:store/orders', ip: '127.0.0.1' });
			statuses.push(a.status);
			c.report(a.requestId, 200, 1);
		}
	}));
	await c.close();
	await big.end();
	assert.equal(statuses.length, 400);
	assert.deepEqual([...new Set(statuses)], [200]);
});

// An extension update that changes a returned column's type under a
// prepared statement, simulated with a wrapper function on the search path:
// an added column changes nothing (explicit column list); a changed type
// gives 0A000 once, and the client re-prepares and answers.
if (!VIA) {
	test('[direct] a prepared verification survives a changed result type (0A000, re-prepared)', async () => {
		const schema = `upg_${process.pid}`;
		const cols = (idType, extra) => `status int, reason text, token_id text, store_id text, mode text, scopes text[],
			request_id ${idType}, www_authenticate text, ratelimit_policy text, ratelimit text, retry_after text,
			problem jsonb${extra}`;
		const wrapper = (idType, extra, extraVal) => `
			CREATE FUNCTION ${schema}.pixl_verify_token_http(text, text, text, text, text, inet)
			RETURNS TABLE (${cols(idType, extra)}) LANGUAGE sql AS $$
				SELECT status, reason, token_id, store_id, mode, scopes, request_id::${idType},
					   www_authenticate, ratelimit_policy, ratelimit, retry_after, problem${extraVal}
				  FROM public.pixl_verify_token_http($1, $2, $3, $4, $5, $6) $$`;
		await admin.query(`CREATE SCHEMA ${schema}`);
		await admin.query(`GRANT USAGE ON SCHEMA ${schema} TO PUBLIC`);
		const replace = async (...a) => {
			await admin.query(`DROP FUNCTION IF EXISTS ${schema}.pixl_verify_token_http(text, text, text, text, text, inet)`);
			await admin.query(wrapper(...a));
		};
		await replace('text', '', '');
		const options = `-c search_path=${schema},public`;
		const shadow = new pg.Pool({ max: 1, options });
		const warnings = [];
		const c = px.createClient({ pool: shadow, statementName: 'pixl_verify',
			log: { warn: (o, m) => warnings.push(m), error: () => {} } });
		const raw = new pg.Client({ options });	// a 1.0-style app: a named statement, no retry
		await raw.connect();
		const t = await token('upgrade', ['orders:read']);
		const args = { authorization: `Bearer ${t.token}`, scope: 'orders:read', store: STORE };
		const rawQuery = { name: 'raw_verify', text: px.VERIFY_SQL, values: [t.token, 'orders:read', STORE, null, null, null] };
		try {
			assert.equal((await raw.query(rawQuery)).rows[0].status, 200);
			assert.equal((await c.verify(args)).status, 200);	// prepared on the pool's connection
			// a later version adds a column: nothing changes for an explicit list
			await replace('text', ', added boolean', ', true');
			assert.equal((await raw.query(rawQuery)).rows[0].status, 200);
			assert.equal((await c.verify(args)).status, 200);
			assert.deepEqual(warnings, []);
			// ... and changes a column's type: a statement prepared before fails
			await replace('varchar', ', added boolean', ', true');
			await assert.rejects(raw.query(rawQuery), (err) => err.code === '0A000');
			// the client's fails once, is prepared again on a new connection, answers
			const a = await c.verify(args);
			assert.equal(a.status, 200);
			assert.equal(typeof a.requestId, 'string');
			assert.deepEqual(warnings, ['pixltoken: statement re-prepared after an extension update']);
			assert.equal((await c.verify(args)).status, 200);
			assert.equal(warnings.length, 1);
		} finally {
			await raw.end();
			await c.close();
			await shadow.end();
			await admin.query(`DROP SCHEMA ${schema} CASCADE`);
		}
	});
}
