'use strict';
// Every query of grafana/pixltoken-dashboard.json against a real cluster, as
// Grafana's PostgreSQL data source would send it (its macros expanded the
// same way), logged in as pixl_dashboard (examples/roles.sql), over known
// usage loaded with pixl_backfill_usage.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { makePool } = require('../src/app');

const via = process.env.VIA_PGBOUNCER === '1' ? 'pgbouncer' : 'direct';
const STORE = `graf-${via}-${process.pid}`;
const dash = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', '..', 'grafana', 'pixltoken-dashboard.json'), 'utf8'));
let su, reader;

// As Grafana's SQL data sources interpolate: $__timeFilter(col) -> col
// BETWEEN from AND to; a multi-value $store -> its values quoted and joined
// with ',' (none selected: the empty string); All with a custom all value ->
// that value as it is, unquoted.
const storeVar = dash.templating.list.find((x) => x.name === 'store');
const ALL = Symbol('All');
function expand(sql, from, to, stores) {
	const value = stores === ALL ? storeVar.allValue
		: stores.map((s) => `'${s.replace(/'/g, "''")}'`).join(',');
	return sql
		.replace(/\$__timeFilter\(([^)]+)\)/g, `$1 BETWEEN '${from.toISOString()}' AND '${to.toISOString()}'`)
		.replace(/\$store\b/g, value);
}
const queries = [];
for (const p of dash.panels) for (const t of p.targets) queries.push({ panel: p.title, type: p.type, sql: t.rawSql, format: t.format });

test.before(async () => {
	su = makePool({ user: process.env.ADMIN_PGUSER ?? 'postgres', max: 1 });
	reader = makePool({ user: 'pixl_dashboard', max: 1 });
	const { rows: [{ token_id: a }] } = await su.query(
		"SELECT token_id FROM pixl_create_token($1, 'Grafana A', ARRAY['products:read'])", [STORE]);
	const { rows: [{ token_id: b }] } = await su.query(
		"SELECT token_id FROM pixl_create_token($1, 'Grafana B', ARRAY['orders:read'])", [STORE]);
	// the store's plan has an allowance (the burn-down panel)
	await su.query(`INSERT INTO pixl_plans (plan, default_rate_limit, max_rate_limit, max_tokens, period_quota)
					VALUES ('graf_metered', 60, 1000, 100, 100000) ON CONFLICT (plan) DO NOTHING`);
	await su.query("SELECT pixl_set_store_plan($1, 'graf_metered')", [STORE]);
	// 10 events in the last 3 days: A 6 (one 500), B 4 (one 404); 10 ms each
	// but B's 404 in 60 ms
	await su.query(`SELECT pixl_backfill_usage($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::int[], $6::float8[])`, [
		[a, a, a, a, a, a, b, b, b, b],
		[1, 2, 3, 30, 40, 50, 5, 6, 60, 70].map((h) => new Date(Date.now() - h * 3600e3 - 60e3)),
		['GET', 'GET', 'GET', 'GET', 'GET', 'POST', 'GET', 'GET', 'GET', 'GET'],
		['/p', '/p', '/p', '/p', '/p', '/p', '/o', '/o', '/o', '/o'],
		[200, 200, 200, 200, 200, 500, 200, 200, 200, 404],
		[10, 10, 10, 10, 10, 10, 10, 10, 10, 60]]);
});
test.after(async () => { await su.end(); await reader.end(); });

test(`[${via}] the store variable's query lists the store`, async () => {
	const v = dash.templating.list.find((x) => x.name === 'store');
	const { rows } = await reader.query(v.query);
	assert.ok(rows.some((r) => r.store_id === STORE));
});

test(`[${via}] every panel query runs as pixl_dashboard and answers the known numbers`, async () => {
	const to = new Date(), from = new Date(Date.now() - 7 * 86400e3);
	const got = {};
	for (const q of queries) {
		const { rows, fields } = await reader.query(expand(q.sql, from, to, [STORE]));
		if (q.format === 'time_series') {
			assert.equal(fields[0].name, 'time', `${q.panel}: first column is time`);
			assert.ok(rows.length > 0, `${q.panel}: rows`);
		}
		got[q.panel] = rows;
	}
	assert.equal(Number(got['Requests'][0].requests), 10);
	assert.equal(Number(got['Error rate'][0].error_rate), 20);
	assert.equal(Number(got['Average response time'][0].avg_response_ms), 15);
	assert.equal(got['Rate limited (429)'].length, 1);
	const perHour = got['Requests and errors per hour'];
	assert.equal(perHour.reduce((s, r) => s + Number(r.requests), 0), 10);
	assert.equal(perHour.reduce((s, r) => s + Number(r.errors), 0), 2);
	assert.equal(got['Requests per store per day'].reduce((s, r) => s + Number(r.requests), 0), 10);
	assert.deepEqual(got['Tokens'].map((r) => [r.token_name, Number(r.requests), Number(r.errors)]),
		[['Grafana A', 6, 1], ['Grafana B', 4, 1]]);
	assert.deepEqual(got['Endpoints'].map((r) => [r.method, r.endpoint, Number(r.requests), Number(r.success_rate), Number(r.avg_response_ms)]),
		[['GET', '/p', 5, 100, 10], ['GET', '/o', 4, 75, 22.5], ['POST', '/p', 1, 0, 10]]);
	// 9 responses of 10 ms and one of 60 ms: p50 in 10 ms's bucket, p95 and
	// p99 in 60 ms's, each within 4.43 % (README, Usage analytics)
	const [p] = got['Response time p50 / p95 / p99'];
	const near = (v, want) => Math.abs(Number(v) / want - 1) <= 0.0443;
	assert.ok(near(p.p50_ms, 10) && near(p.p95_ms, 60) && near(p.p99_ms, 60), JSON.stringify(p));
	const p95 = got['p95 response time per hour'];
	assert.equal(p95.length, 10);
	assert.equal(p95.filter((r) => near(r.p95_ms, 60)).length, 1);
	assert.equal(p95.filter((r) => near(r.p95_ms, 10)).length, 9);
	const heat = got['Response time heatmap (per hour)'];
	assert.equal(heat.reduce((s, r) => s + Number(r.value), 0), 10);
	assert.equal(new Set(heat.map((r) => r.metric)).size, 2);
	// the burn-down: the days of the store's current period so far, what
	// remains and the even pace, both at most the allowance
	const burn = got['Allowance burn-down (current period)'];
	const days = new Set(burn.map((r) => r.time.toISOString()));
	assert.ok(days.size >= 1 && days.size <= 31, `days: ${days.size}`);
	assert.deepEqual([...new Set(burn.map((r) => r.metric))].sort(), [`${STORE} even pace`, `${STORE} remaining`]);
	assert.ok(burn.every((r) => Number(r.value) >= 0 && Number(r.value) <= 100000), JSON.stringify(burn));
	// a narrower range: the last 24 hours hold A's first three and B's first two
	const day = await reader.query(expand(queries.find((q) => q.panel === 'Requests').sql,
		new Date(Date.now() - 86400e3), to, [STORE]));
	assert.equal(Number(day.rows[0].requests), 5);
});

test(`[${via}] no store selected: every panel's SQL is valid and shows nothing`, async () => {
	const to = new Date(), from = new Date(Date.now() - 7 * 86400e3);
	for (const q of queries) {
		const { rows } = await reader.query(expand(q.sql, from, to, []));
		const numbers = rows.flatMap((r) => Object.entries(r).filter(([k]) => k !== 'time').map(([, v]) => v));
		assert.ok(numbers.every((v) => v === null || Number(v) === 0), `${q.panel}: ${JSON.stringify(rows)}`);
	}
});

test(`[${via}] All: no store filter in the SQL, every visible store counted`, async () => {
	const to = new Date(), from = new Date(Date.now() - 7 * 86400e3);
	for (const q of queries) {
		const sql = expand(q.sql, from, to, ALL);
		// the all value makes the store condition a constant: the plan has no store filter
		const { rows: plan } = await reader.query(`EXPLAIN (COSTS OFF) ${sql}`);
		assert.equal(plan.some((r) => /ANY|'\*'/.test(r['QUERY PLAN'])), false, `${q.panel}: ${JSON.stringify(plan)}`);
	}
	const requests = queries.find((q) => q.panel === 'Requests').sql;
	const [all] = (await reader.query(expand(requests, from, to, ALL))).rows;
	const [one] = (await reader.query(expand(requests, from, to, [STORE]))).rows;
	const { rows: [{ n }] } = await su.query(
		'SELECT coalesce(sum(requests), 0) AS n FROM pixl_usage_hourly WHERE bucket BETWEEN $1 AND $2', [from, to]);
	assert.equal(Number(all.requests), Number(n));	// pixl_dashboard sees every store
	assert.ok(Number(all.requests) >= Number(one.requests));
});
