// Types of pixltoken-client (index.js).
import type { Pool } from 'pg';

export declare const VERSION: string;
/** A route that deliberately requires no scope (authentication only). */
export declare const NO_SCOPE_REQUIRED: unique symbol;
export type Scope = string | typeof NO_SCOPE_REQUIRED;
export declare const NO_SCOPE_SQL_VALUE: string;
export declare const VERIFY_SQL: string;
export declare const REPORT_SQL: string;
export declare const VERIFY_COLUMNS: readonly string[];

export interface Logger {
	warn?(obj: object, msg?: string): void;
	error?(obj: object, msg?: string): void;
}

export interface ClientOptions {
	pool: Pool;
	log?: Logger;
	/** Reports are batched: at most one pixl_log_responses call every flushMs (default 5). */
	flushMs?: number;
	/** A batch is sent at once when it has this many responses (default 1000). */
	maxBatch?: number;
	/** A named prepared statement for the verification: direct connections only (not PgBouncer 1.18). Default: unnamed. */
	statementName?: string | null;
}

export interface VerifyRequest {
	/** The Authorization header as received. */
	authorization?: string | null;
	/** Required: a scope name, or NO_SCOPE_REQUIRED on purpose. */
	scope: Scope;
	store?: string | null;
	method?: string | null;
	/** The route template (e.g. /v1/stores/:store/orders), not the raw path. */
	route?: string | null;
	/** The client address as the server sees it (port, brackets, zone and IPv4-mapped forms are fine). */
	ip?: string | null;
}

export interface Verification {
	/** 200, 401, 403, 429, or 503 when the database could not answer. */
	status: number;
	reason: string | null;
	tokenId: string | null;
	storeId?: string | null;
	mode?: string | null;
	scopes?: string[] | null;
	/** Opaque; pass it to report() as it is. Null for 401 and 503. */
	requestId: string | null;
	/** Lower-case header names: www-authenticate, ratelimit-policy, ratelimit, retry-after. */
	headers: Record<string, string>;
	/** RFC 9457 problem body, for anything but 200. */
	problem: Record<string, unknown> | null;
}

export interface PixlClient {
	verify(req: VerifyRequest): Promise<Verification>;
	report(requestId: string | null, status: number, ms: number): void;
	flush(): Promise<void>;
	close(): Promise<void>;
}

export declare function createClient(opts: ClientOptions): PixlClient;

export interface FastifyHookOptions {
	/** Where the store id comes from (default: req.params.store). */
	storeFrom?: (req: any) => string | null | undefined;
}
export declare function fastifyHooks(client: PixlClient, opts?: FastifyHookOptions): {
	onRequest(req: any, reply: any): Promise<unknown>;
	onResponse(req: any, reply: any): Promise<void>;
};

export declare function clientIp(raw: unknown): string | null;
export declare function endpointName(route: unknown): string | null;
export declare function bearer(header: unknown): string | null;
