'use strict';
// The usage page in headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core) for a token with known traffic loaded by
// pixl_backfill_usage: the numbers it must show, the period switch, the
// endpoint table, the last 20 calls and the status filter.  The page reads
// as token_admin (README's admin role).  USAGE_SCREENSHOT=path saves a
// screenshot (test/examples.sh; docs/usage-page.png in the repository).
// Who may read it: a token of the store with analytics:read, and no one else.
// The store's plan sells an allowance of 1,000 calls a period: the page
// shows what is used (three exports of cost 100, and the page's own
// verified calls) and the burn-down; its hygiene policy, the hygiene panel.
const test = require('node:test');
const assert = require('node:assert/strict');
const { chromium } = require('playwright-core');
const { buildApp, makePool } = require('../src/app');

const via = process.env.VIA_PGBOUNCER === '1' ? 'pgbouncer' : 'direct';
const STORE = `page-${via}-${process.pid}`;
const OTHER = `page-other-${via}-${process.pid}`;
let pool, adminPool, su, app, base, browser, tokenId;
let reader, readerOther, noAnalytics, otherTokenId;
const secret = async (store, name, scopes) => (await su.query(
	'SELECT token_id, token FROM pixl_create_token($1, $2, $3::text[])', [store, name, scopes])).rows[0];

test.before(async () => {
	su = makePool({ user: process.env.ADMIN_PGUSER ?? 'postgres', max: 1 });
	pool = makePool();
	adminPool = makePool({ user: 'token_admin', max: 2 });
	[{ token_id: tokenId }] = (await su.query(
		"SELECT token_id FROM pixl_create_token($1, 'Storefront App', ARRAY['products:read', 'orders:write'])",
		[STORE])).rows;
	// known traffic: 24 calls in the last 24 hours (16 GET /v1/products 200
	// in 20 ms; 8 POST /v1/orders in 80 ms, 4 of them 500, 4 201) and 100
	// older ones within 30 days (GET /v1/products: 90 x 200 in 30 ms, 10 x
	// 429 in 1 ms)
	await su.query(`
		WITH ev AS (
			SELECT now() - interval '1 minute' - i * interval '55 minutes' AS at,
				   CASE WHEN i % 3 = 0 THEN 'POST' ELSE 'GET' END AS method,
				   CASE WHEN i % 3 = 0 THEN '/v1/orders' ELSE '/v1/products' END AS endpoint,
				   CASE WHEN i % 6 = 0 THEN 500 WHEN i % 3 = 0 THEN 201 ELSE 200 END AS status,
				   CASE WHEN i % 3 = 0 THEN 80 ELSE 20 END::float8 AS ms,
				   ('10.0.0.' || i)::inet AS ip
			  FROM generate_series(0, 23) i
			UNION ALL
			SELECT now() - interval '2 days' - i * interval '6 hours', 'GET', '/v1/products',
				   CASE WHEN i % 10 = 0 THEN 429 ELSE 200 END,
				   CASE WHEN i % 10 = 0 THEN 1 ELSE 30 END, '192.0.2.1'
			  FROM generate_series(0, 99) i)
		SELECT pixl_backfill_usage(array_agg($1::text), array_agg(at), array_agg(method),
								   array_agg(endpoint), array_agg(status), array_agg(ms), array_agg(ip))
		  FROM ev`, [tokenId]);
	// the allowance: a plan of 1,000 calls a period, three calls of cost 100
	await su.query(`INSERT INTO pixl_plans (plan, default_rate_limit, max_rate_limit, max_tokens, period_quota)
					VALUES ('page_metered', 60, 1000, 100, 1000) ON CONFLICT (plan) DO NOTHING`);
	await su.query("SELECT pixl_set_store_plan($1, 'page_metered')", [STORE]);
	// (cost counts against the minute window too: a limit of 1000 a minute)
	const [{ token: exporter }] = (await su.query(
		"SELECT token FROM pixl_create_token($1, 'Exporter', ARRAY['analytics:read'], rate_limit => 1000)",
		[STORE])).rows;
	for (let i = 0; i < 3; i++) {
		const [{ status }] = (await su.query(
			"SELECT status FROM pixl_verify_request($1, 'analytics:read', $2, 'GET', '/v1/export', '10.1.1.1', cost => 100)",
			[exporter, STORE])).rows;
		assert.equal(status, 200);
	}
	// the burn-down reads the rollups: wait for the worker's fold (10 s)
	for (let i = 0; ; i++) {
		const { rows } = await su.query('SELECT max(used) AS used FROM pixl_quota_burndown WHERE store_id = $1', [STORE]);
		if (Number(rows[0].used) >= 300) break;
		if (i === 300) throw new Error(`the burn-down never showed the 300 charged: ${rows[0].used}`);
		await new Promise((r) => setTimeout(r, 100));
	}
	// a hygiene policy: tokens unused for 90 days are disabled
	await su.query("SELECT pixl_set_store_policy($1, inactive_after => '90 days')", [STORE]);
	reader = (await secret(STORE, 'Analytics', ['analytics:read'])).token;
	noAnalytics = (await secret(STORE, 'Catalog sync', ['products:read'])).token;
	({ token: readerOther } = await secret(OTHER, 'Other analytics', ['analytics:read']));
	({ token_id: otherTokenId } = await secret(OTHER, 'Other app', ['products:read']));
	app = buildApp({ pool, adminPool });
	await app.listen({ port: 0, host: '127.0.0.1' });
	base = `http://127.0.0.1:${app.server.address().port}`;
	browser = await chromium.launch({
		executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
		args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
			   '--disable-background-networking', '--disable-component-update', '--disable-sync'],
	});
});
test.after(async () => {
	if (browser) await browser.close();
	if (app) await app.close();
	await Promise.all([pool, adminPool, su].map((p) => p && p.end()));
});

const text = (page, sel) => page.locator(sel).innerText();

test(`[${via}] the usage page shows the token's numbers`, async () => {
	const page = await browser.newPage({ viewport: { width: 1200, height: 1250 } });
	const errors = [];
	page.on('pageerror', (e) => errors.push(e.message));
	await page.goto(`${base}/usage/stores/${STORE}/tokens/${tokenId}`);
	// no credential yet: the page asks for one and shows nothing
	await page.waitForSelector('body[data-loaded="denied-none"]');
	assert.equal(await text(page, '#total'), '–');
	// another store's analytics token: refused
	await page.fill('#credential', readerOther);
	await page.click('#login button');
	await page.waitForSelector('body[data-loaded="denied-403"]');
	assert.equal(await text(page, '#total'), '–');
	// this store's analytics token
	await page.fill('#credential', reader);
	await page.click('#login button');
	await page.waitForSelector('body[data-loaded="30d"][data-calls="all"]');
	assert.equal(await page.locator('#login').isVisible(), false);

	assert.equal(await text(page, '#name'), 'Storefront App');
	assert.match(await text(page, '#meta'), new RegExp(`${tokenId}.*store ${STORE}.*active`));
	assert.equal(await text(page, '#total'), '124');
	assert.equal(await text(page, '#today'), '24');
	assert.equal(await text(page, '#avg'), '30 ms');		// 3670 ms / 124
	assert.equal(await text(page, '#errate'), '11.3%');	// 14 / 124
	// 10 x 1 ms, 16 x 20, 90 x 30, 8 x 80: p50 in 30 ms's bucket, p95 and p99 in 80 ms's
	// (reported as the buckets' midpoints, 30.6 and 79.5 ms: within 4.43 %)
	assert.equal(await text(page, '#pct'), '31 / 79 / 79 ms');
	// the timeline: 31 daily bars (30 days back to today) holding every call
	const bars = await page.evaluate(() => {
		const c = Chart.getChart(document.getElementById('chart'));
		return { n: c.data.labels.length, requests: c.data.datasets[0].data.reduce((a, b) => a + b, 0),
				 errors: c.data.datasets[1].data.reduce((a, b) => a + b, 0) };
	});
	assert.deepEqual(bars, { n: 31, requests: 124, errors: 14 });
	// the endpoint table, most called first
	const rows = await page.locator('#endpoints tbody tr').evaluateAll((trs) =>
		trs.map((tr) => [...tr.cells].map((td) => td.textContent)));
	assert.deepEqual(rows, [
		['GET', '/v1/products', '116', '91.4%', '26 ms', '31 ms'],
		['POST', '/v1/orders', '8', '50.0%', '80 ms', '79 ms'],
	]);
	// the last 20 calls, newest first
	const calls = await page.locator('#calls tbody tr').evaluateAll((trs) =>
		trs.map((tr) => [...tr.cells].map((td) => td.textContent)));
	assert.equal(calls.length, 20);
	assert.deepEqual(calls[0].slice(1), ['POST', '/v1/orders', '500', '10.0.0.0', '80 ms']);
	assert.deepEqual(calls[1].slice(1), ['GET', '/v1/products', '200', '10.0.0.1', '20 ms']);
	// the allowance: 300 charged by the exports, 1 by each verified call of
	// the page so far; exact from shared memory, so the two add up
	const quota = await text(page, '#quota');
	const m = quota.match(/^(\d+) of 1,000 used · (\d+) remaining · resets (\d{4}-\d{2}-\d{2})$/);
	assert.ok(m, quota);
	assert.ok(Number(m[1]) >= 302 && Number(m[1]) < 340, quota);
	assert.equal(Number(m[1]) + Number(m[2]), 1000, quota);
	assert.ok(new Date(`${m[3]}T00:00:00Z`) > new Date(), `resets in the future: ${quota}`);
	assert.match(await text(page, '#quota-token'), /^This token: \d+ charged this period/);
	const burn = await page.evaluate(() => {
		const c = Chart.getChart(document.getElementById('burndown'));
		return { n: c.data.labels.length, remaining: c.data.datasets[0].data.at(-1), pace: c.data.datasets[1].data.length };
	});
	assert.ok(burn.n >= 1 && burn.n <= 31, `days of the period so far: ${burn.n}`);
	assert.equal(burn.pace, burn.n);
	assert.ok(burn.remaining <= 700, `the burn-down has the exports: ${burn.remaining}`);
	// the hygiene panel (pixl_token_hygiene): a new secret without expiry,
	// disabled 90 days after its last use (the backfilled calls, a minute ago)
	assert.match(await text(page, '#hy-last-use'), /^0 days ago$/);
	assert.equal(await text(page, '#hy-age'), '0 days since creation or last rotation');
	assert.equal(await text(page, '#hy-expiry'), 'never expires');
	assert.equal(await text(page, '#hy-previous'), 'not in use');
	assert.equal(await text(page, '#hy-policy'), 'disable if unused, in 89 days');
	// backfilled calls exercise no scope (only verifications record them)
	assert.equal(await text(page, '#hy-scopes'), 'none exercised: products:read, orders:write');
	if (process.env.USAGE_SCREENSHOT) await page.screenshot({ path: process.env.USAGE_SCREENSHOT, fullPage: true });

	// status filter: the four 500s only
	await page.selectOption('#status', '500');
	await page.waitForSelector('body[data-calls="500"]');
	const only500 = await page.locator('#calls tbody tr td:nth-child(4)').allInnerTexts();
	assert.deepEqual(only500, ['500', '500', '500', '500']);

	// period switch: Today -> hourly bars over the last 24 hours
	await page.click('#periods button[data-period="today"]');
	await page.waitForSelector('body[data-loaded="today"]');
	assert.equal(await text(page, '#total'), '24');
	assert.equal(await text(page, '#errate'), '16.7%');	// 4 / 24
	assert.equal(await text(page, '#avg'), '40 ms');		// (16 x 20 + 8 x 80) / 24
	assert.equal(await text(page, '#pct'), '20 / 79 / 79 ms');	// 16 x 20 ms, 8 x 80 ms
	const today = await page.evaluate(() => {
		const c = Chart.getChart(document.getElementById('chart'));
		return { n: c.data.labels.length, requests: c.data.datasets[0].data.reduce((a, b) => a + b, 0) };
	});
	assert.ok(today.n === 24 || today.n === 25, `hourly buckets: ${today.n}`);
	assert.equal(today.requests, 24);
	assert.deepEqual(errors, []);
	await page.close();
});

const api = (store, id, suffix = '') => `${base}/usage/api/stores/${store}/tokens/${id}${suffix}`;
const as = (token) => (token ? { headers: { authorization: `Bearer ${token}` } } : {});

test(`[${via}] the usage data needs a token of the store with analytics:read`, async () => {
	for (const suffix of ['', '/calls']) {
		const cases = [
			['no credential', api(STORE, tokenId, suffix), null, 401],
			['a wrong credential', api(STORE, tokenId, suffix), 'sk_live_nope', 401],
			['a token id instead of a secret', api(STORE, tokenId, suffix), tokenId, 401],
			['a token of the store without analytics:read', api(STORE, tokenId, suffix), noAnalytics, 403],
			["another store's analytics token", api(STORE, tokenId, suffix), readerOther, 403],
			["another store's analytics token, its own store in the URL", api(OTHER, tokenId, suffix), readerOther, 404],
			["this store's analytics token, another store's token id", api(STORE, otherTokenId, suffix), reader, 404],
			["this store's analytics token", api(STORE, tokenId, suffix), reader, 200],
		];
		for (const [what, url, token, want] of cases) {
			const res = await fetch(url, as(token));
			const body = await res.json();
			assert.equal(res.status, want, `${suffix || 'summary'}: ${what}`);
			if (want === 401) assert.match(res.headers.get('www-authenticate'), /^Bearer /, what);
			if (want === 200 && suffix === '') assert.equal(body.token.store_id, STORE);
			if (want === 200 && suffix === '/calls') assert.equal(body.length, 20);
			if (want !== 200) assert.equal(JSON.stringify(body).includes('10.0.0.'), false, what);
		}
	}
});

test(`[${via}] the usage API answers 404 for an unknown token and 400 for a bad status`, async () => {
	let res = await fetch(api(STORE, 'tok_doesnotexist0000'), as(reader));
	assert.equal(res.status, 404);
	res = await fetch(api(STORE, tokenId, '/calls?status=42'), as(reader));
	assert.equal(res.status, 400);
});
