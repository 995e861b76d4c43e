'use strict';
// The user guide's Usage page for one token ("Settings > API Tokens > click
// a token"): totals, requests today, average response time, error rate, the
// request timeline with its period switch, the endpoint breakdown and the
// last 20 calls with a status filter; and where the store stands with its
// plan's allowance for the period (pixl_store_quota: used, remaining,
// reset; pixl_quota_burndown: the burn-down against an even pace); the
// token's hygiene (pixl_token_hygiene: last use, secret age, expiry, an old
// secret still in use, policy breaches, the inactivity action to come).
//
// Who may read it: a caller with a token of THAT store carrying the
// `analytics:read` scope (the guide's "Access analytics data"), sent as
// `Authorization: Bearer ...` to the data routes below and verified by
// pixltoken like any other API call.  No credential: 401; a token without
// analytics:read, or of another store: 403; a token id that is not in the
// store of the URL: 404 (whether it exists elsewhere is not told).
//
// The data comes from the analytics functions (pixl_usage_summary /
// _timeline / _endpoints, pixl_recent_calls) through `adminPool`, a pool of
// the admin role (token_admin: README "Privileges"), and only after the
// store check above.  The HTML and Chart.js (served from node_modules, no
// CDN) hold no data and need no credential; the page asks for the token.
const fs = require('node:fs');
const path = require('node:path');

const PERIODS = ['today', '7d', '30d', 'year', 'all'];
const CHART_JS = path.join(path.dirname(require.resolve('chart.js')), 'chart.umd.min.js');
const PAGE = fs.readFileSync(path.join(__dirname, '..', 'public', 'usage.html'), 'utf8');
const SCOPE = 'analytics:read';

function register(app, adminPool) {
	const open = { config: { public: true } };
	const guarded = { config: { scope: SCOPE } };	// store: the :store of the URL
	const q = async (sql, values) => (await adminPool.query(sql, values)).rows;
	const period = (req) => (PERIODS.includes(req.query.period) ? req.query.period : '30d');
	const notFound = (reply) => reply.code(404).type('application/problem+json')
		.send({ type: 'about:blank', title: 'Not Found', status: 404, detail: 'no such token in this store' });
	// the token of the URL, only if it belongs to the store the caller was verified for
	async function tokenOf(req) {
		const [token] = await q('SELECT token_id, name, store_id, hint, status, scopes, effective_rate_limit ' +
								'FROM pixl_tokens WHERE token_id = $1 AND store_id = $2',
		[req.params.tokenId, req.pixl.storeId]);
		return token ?? null;
	}

	app.get('/usage/vendor/chart.umd.min.js', open, async (req, reply) =>
		reply.type('text/javascript').send(fs.createReadStream(CHART_JS)));
	app.get('/usage/stores/:store/tokens/:tokenId', open, async (req, reply) => reply.type('text/html').send(PAGE));

	// errors of the analytics functions by SQLSTATE: PX011 no such token,
	// PX015 bad period, PX016 bad status
	app.setErrorHandler((err, req, reply) => {
		const known = { PX011: 404, PX015: 400, PX016: 400 };
		if (err.code && known[err.code]) {
			return reply.code(known[err.code]).type('application/problem+json')
				.send({ type: 'about:blank', title: err.message, status: known[err.code] });
		}
		if (err.code || err.message?.includes('connect')) {
			req.log.error({ code: err.code, err: err.message }, 'usage query failed');
			return reply.code(503).send({ status: 503, title: 'database unavailable' });
		}
		return reply.send(err);
	});

	app.get('/usage/api/stores/:store/tokens/:tokenId', guarded, async (req, reply) => {
		const token = await tokenOf(req);
		if (!token) return notFound(reply);
		const id = token.token_id;
		const p = period(req);
		const [summary] = await q('SELECT * FROM pixl_usage_summary($1, $2)', [id, p]);
		const timeline = await q('SELECT bucket, requests, errors, p95_ms FROM pixl_usage_timeline($1, $2)', [id, p]);
		const endpoints = await q('SELECT * FROM pixl_usage_endpoints($1, $2)', [id, p]);
		// the allowance: the store's row (exact) and this token's (its own
		// allowance, if any), and the period's days so far
		const rows = await q('SELECT * FROM pixl_store_quota($1)', [token.store_id]);
		const burndown = await q('SELECT day, charged, used, remaining, even_pace FROM pixl_quota_burndown ' +
								 'WHERE store_id = $1 ORDER BY day', [token.store_id]);
		const quota = {
			store: rows.find((r) => r.token_id === null) ?? null,
			token: rows.find((r) => r.token_id === id) ?? null,
			burndown,
		};
		// its hygiene figures (pixl_token_hygiene): none for a revoked or
		// expired token
		const [hygiene] = await q('SELECT days_since_last_use, secret_age_days, expires_at, no_expiry, expiring_soon, ' +
								  'previous_secret_in_use, policy_breaches, inactive_action, days_until_inactive_action, ' +
								  'scopes_unused, narrower_scopes ' +
								  'FROM pixl_token_hygiene WHERE token_id = $1', [id]);
		return { period: p, token, summary, timeline, endpoints, quota, hygiene: hygiene ?? null };
	});
	app.get('/usage/api/stores/:store/tokens/:tokenId/calls', guarded, async (req, reply) => {
		const token = await tokenOf(req);
		if (!token) return notFound(reply);
		const status = req.query.status ? Number(req.query.status) : null;
		return q('SELECT at, method, endpoint, status, host(ip) AS ip, response_ms ' +
				 'FROM pixl_recent_calls($1, $2, 20)', [token.token_id, status]);
	});
}

module.exports = { register, SCOPE };
