'use strict';
// The user guide's Usage page for one token ("Settings > API Tokens > click
// a token"): totals, requests today, average response time, error rate, the
// request timeline with its period switch, the endpoint breakdown and the
// last 20 calls with a status filter.  Data comes from the analytics
// functions (pixl_usage_summary / _timeline / _endpoints, pixl_recent_calls)
// through `adminPool`, a pool of the admin role (token_admin: README
// "Privileges").  Chart.js is served from node_modules (no CDN).
//
// This is an ADMIN page: mount it only behind your admin UI's login (the
// example enables it only when ADMIN_PGUSER is set).
const fs = require('node:fs');
const path = require('node:path');

const PERIODS = ['today', '7d', '30d', 'year', 'all'];
const CHART_JS = path.join(path.dirname(require.resolve('chart.js')), 'chart.umd.min.js');
const PAGE = fs.readFileSync(path.join(__dirname, '..', 'public', 'usage.html'), 'utf8');

function register(app, adminPool) {
	const open = { config: { public: true } };
	const q = async (sql, values) => (await adminPool.query(sql, values)).rows;
	const period = (req) => (PERIODS.includes(req.query.period) ? req.query.period : '30d');

	app.get('/usage/vendor/chart.umd.min.js', open, async (req, reply) =>
		reply.type('text/javascript').send(fs.createReadStream(CHART_JS)));
	app.get('/usage/:tokenId', open, async (req, reply) => reply.type('text/html').send(PAGE));

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

	app.get('/usage/api/:tokenId', open, async (req) => {
		const id = req.params.tokenId;
		const p = period(req);
		const [summary] = await q('SELECT * FROM pixl_usage_summary($1, $2)', [id, p]);
		const [token] = await q('SELECT token_id, name, store_id, hint, status, scopes, effective_rate_limit ' +
								'FROM pixl_tokens WHERE token_id = $1', [id]);
		const timeline = await q('SELECT bucket, requests, errors, p95_ms FROM pixl_usage_timeline($1, $2)', [id, p]);
		const endpoints = await q('SELECT * FROM pixl_usage_endpoints($1, $2)', [id, p]);
		return { period: p, token, summary, timeline, endpoints };
	});
	app.get('/usage/api/:tokenId/calls', open, async (req) => {
		const status = req.query.status ? Number(req.query.status) : null;
		return q('SELECT at, method, endpoint, status, host(ip) AS ip, response_ms ' +
				 'FROM pixl_recent_calls($1, $2, 20)', [req.params.tokenId, status]);
	});
}

module.exports = { register };
