'use strict';
// node src/server.js — listens on $PORT (default 3000).  Connection settings
// come from the PG* environment variables (PGHOST, PGPORT, PGDATABASE,
// PGUSER=app_server, PGPASSWORD); ADMIN_PGUSER (e.g. token_admin) enables the
// usage page at /usage/stores/<store>/tokens/<token_id> (its data needs a
// token of that store with analytics:read).  TRUST_PROXY=1 takes the client
// address from X-Forwarded-For (only behind a proxy that sets it).  First
// run: `npm ci` in examples/node (installs pixltoken-client from
// ../../clients/node).
const { buildApp, makePool } = require('./app');

const pool = makePool();
const adminPool = process.env.ADMIN_PGUSER ? makePool({ user: process.env.ADMIN_PGUSER, max: 2 }) : null;
const app = buildApp({ pool, adminPool, logger: true, trustProxy: process.env.TRUST_PROXY === '1' });
app.listen({ port: Number(process.env.PORT ?? 3000), host: process.env.HOST ?? '127.0.0.1' })
	.catch((err) => { console.error(err); process.exit(1); });
for (const sig of ['SIGINT', 'SIGTERM']) {
	process.on(sig, async () => {
		await app.close();	// flushes the pending response reports
		await pool.end();
		if (adminPool) await adminPool.end();
		process.exit(0);
	});
}
