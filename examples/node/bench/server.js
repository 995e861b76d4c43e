'use strict';
// The example API for the load test: MODE=verify is the real thing
// (pixl_verify_token_http + batched pixl_log_responses), MODE=select1 the
// same fastify server and pool with `SELECT 1` as its only query (the floor).
const Fastify = require('fastify');
const { buildApp, makePool } = require('../src/app');

const pool = makePool({ max: Number(process.env.POOL ?? 8) });
let app;
if (process.env.MODE === 'select1') {
	app = Fastify();
	app.get('/v1/stores/:store/products', async () => {
		await pool.query('SELECT 1');
		return { store: 'x', token_id: 'x', products: [{ id: 1, name: 'Teapot' }] };
	});
} else {
	app = buildApp({ pool });
}
app.listen({ port: 0, host: '127.0.0.1' }).then(() => process.send?.({ port: app.server.address().port }));
process.on('SIGTERM', async () => { await app.close(); await pool.end(); process.exit(0); });
