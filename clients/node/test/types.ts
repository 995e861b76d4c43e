// Compiled with `tsc --noEmit` by test/examples.sh: the types of index.d.ts
// as an app would use them (not run).
import { Pool } from 'pg';
import { createClient, fastifyHooks, NO_SCOPE_REQUIRED, clientIp, endpointName, Verification } from '..';

async function app(pool: Pool): Promise<void> {
	const client = createClient({ pool, flushMs: 5, statementName: null });
	const a: Verification = await client.verify({
		authorization: 'Bearer x', scope: 'orders:read', store: 's1', method: 'GET',
		route: '/v1/stores/:store/orders', ip: clientIp('::ffff:203.0.113.9'),
	});
	const b = await client.verify({ authorization: null, scope: NO_SCOPE_REQUIRED });
	const status: number = a.status + b.status;
	const id: string | null = a.requestId;
	client.report(id, status, 1.5);
	const name: string | null = endpointName('/v1/stores/<store>');
	void name;
	const hooks = fastifyHooks(client, { storeFrom: (req) => req.params.store });
	void hooks;
	await client.close();
}
void app;

// @ts-expect-error a scope is required
createClient({ pool: new Pool() }).verify({ authorization: 'Bearer x' });
