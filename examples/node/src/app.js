'use strict';
// The example API: a few store routes, each with the scope it needs, behind
// pixltoken-client (clients/node, installed from the repository path).
const Fastify = require('fastify');
const pg = require('pg');
const { createClient, fastifyHooks } = require('pixltoken-client');

// Pool settings that matter for authentication:
// - connectionTimeoutMillis / query_timeout: a database that does not answer
//   must turn into a quick 503, not a hung request;
// - no statement names (pixltoken-client's default: unnamed statements with
//   bind parameters): that works directly and through PgBouncer 1.18 in
//   transaction pooling.
function makePool(overrides = {}) {
	return new pg.Pool({
		max: 10,
		connectionTimeoutMillis: 2000,
		query_timeout: 2000,
		application_name: 'pixltoken-example',
		...overrides,	// host, port, database, user, password (PG* env vars otherwise)
	});
}

function buildApp({ pool, adminPool = null, trustProxy = false, logger = false, flushMs } = {}) {
	const app = Fastify({ logger, trustProxy });
	const client = createClient({ pool, flushMs, log: app.log });
	const hooks = fastifyHooks(client, { storeFrom: (req) => req.params?.store });
	app.addHook('onRequest', hooks.onRequest);
	app.addHook('onResponse', hooks.onResponse);
	app.addHook('onClose', async () => { await client.close(); });	// flushes pending reports
	app.decorate('pixlClient', client);

	app.get('/healthz', { config: { public: true } }, async () => ({ ok: true }));

	// The endpoint reported to pixltoken is the route template, written
	// /v1/stores/{store}/products by the client whatever the framework's
	// syntax (the Python example reports the same names).
	app.get('/v1/stores/:store/products', { config: { scope: 'products:read' } },
		async (req) => ({ store: req.params.store, token_id: req.pixl.tokenId,
						  products: [{ id: 1, name: 'Teapot' }] }));
	app.post('/v1/stores/:store/products', { config: { scope: 'products:write' } },
		async (req, reply) => reply.code(201).send({ created: true, token_id: req.pixl.tokenId }));
	app.get('/v1/stores/:store/orders', { config: { scope: 'orders:read' } },
		async (req) => ({ store: req.params.store, orders: [] }));
	// an endpoint that fails after a successful verification: its final
	// status (500) is what pixl_log_responses reports
	app.get('/v1/stores/:store/broken', { config: { scope: 'products:read' } },
		async (req, reply) => reply.code(500).send({ error: 'boom' }));

	if (adminPool) require('./usage-page').register(app, adminPool);
	return app;
}

module.exports = { buildApp, makePool };
