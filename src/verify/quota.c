/*-------------------------------------------------------------------------
 *
 * quota.c
 *		Period allowances (plan quotas) in shared memory, checked
 *		all-or-nothing with the rate limiter's minute window.
 *
 * A plan may sell an allowance per period (pixl_plans.period_quota): calls,
 * weighted by their cost, that all tokens of a store together may make in
 * a period, the calendar month in UTC or the month from a store's billing
 * day (pixl_stores.billing_day, 00:00 UTC).  A token may carry a lower
 * allowance of its own, counted against its calls and the store's.  Each
 * node enforces its share, floor(allowance x pixltoken.rate_limit_share +
 * 1e-6), the rule of the minute limit (rate_limit.c, "One limit across
 * nodes"), so the nodes together never admit more than the allowance.
 *
 * Counters.  One table of counters, keyed by (kind, 64-bit key): a store's
 * key is the rate limiter's store key, a keyed SipHash of (database, store
 * id); a token's is a keyed SipHash of (database, token id) in a domain of
 * its own.  Each counter is one 64-bit atomic: the period's number (days
 * from 2000-01-01 to its start, until 2179) in the top 16 bits, the cost
 * used in the low 48 (the tables' CHECK keeps allowances below 2^47).  A
 * counter from an older period reads as 0 in the current one, so the
 * period turns over with the CAS that first charges the new one, and a
 * counter is never reset by anything else.  A counter from a later period
 * (a billing day moved back: the period now holding the clock started
 * earlier) keeps its count in the current one, so that moving the day
 * never hands out a fresh allowance; it turns over when the next period
 * starts.
 *
 * The check, all or nothing.  pixl_rate_limit_check() holds the token's
 * rate slot spinlock while it decides.  Inside it, once the minute window
 * has room for the cost, pixl_quota_charge() checks the token's counter
 * (if any) and then compare-and-swaps the store's counter from u to u +
 * cost only if u + cost is within the store's allowance, then charges the
 * token's counter the same way; the window is charged after both, under
 * the spinlock that no other charge of this token can pass.  So a call is
 * charged to all three or to none:
 *
 *	- The window and the token's counter are only charged under this
 *	  token's slot spinlock (one slot per token and database), so nothing
 *	  else moves them between the check and the charge; the only other
 *	  writer of a token's counter, pixl_quota_seed() (and a refund), may
 *	  raise it meanwhile: then the token's CAS fails its check, the store's
 *	  charge is given back and the call is refused.  A give-back can only
 *	  have made a concurrent call of the store see less room (a 429 that a
 *	  retry admits), never more.
 *	- The store's counter is shared by the store's tokens, which hold
 *	  different spinlocks: the CAS makes "room for the cost" and "charged"
 *	  one step, so the store's counter never exceeds its allowance, however
 *	  many backends race (the bound is exact on one node).
 *
 * Lock order.  The rate limiter's partition LWLock (shared) then the slot's
 * spinlock; the counters are atomics and need no lock to read or charge.
 * Lookups take no lock: a counter is filled, then published by a write
 * barrier and its state, and never moves or changes key while the server
 * runs.  Inserting one takes the quota LWLock exclusively, in
 * pixl_quota_prepare(), before the rate limiter takes any of its locks, and
 * nothing is taken while it is held: no cycle.
 *
 * Capacity is pixltoken.max_quota_counters: every store and token with an
 * allowance seen since the server started has one counter (24 bytes in a
 * table of 5/4 of them).  None is ever freed while the server runs; a full
 * table fails closed: a call whose counter cannot be made is refused (429
 * quota_exceeded, retry in 1 s) and counted (pixl_quota_stats()).
 *
 * Crash restarts.  The table lives in an anonymous shared mapping the
 * postmaster makes, as the rate limiter's slots do: the reset after a
 * backend's crash leaves it alone, so every counter is where it was (one
 * CAS is a whole charge).  A new postmaster (a start, or a crash of the
 * whole server) starts with an empty table; the usage worker then seeds
 * each counter from the rollups (pixl_quota_seed), and calls admitted
 * before the seed are added to it, not lost: the first seed of a counter
 * since the start adds, later ones only raise.  What the rollups lack (the
 * charges since the last fold before a server crash) can be admitted again:
 * that is what a crash of the server can over-admit; a backend crash
 * over-admits nothing.  Without the mapping (EXEC_BACKEND, or mmap failed)
 * the table is in PostgreSQL's shared memory and every crash restart is a
 * start.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/mman.h>

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgtime.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "common/errcodes.h"
#include "common/node.h"
#include "common/preload.h"
#include "common/request_id.h"
#include "verify/quota.h"

#define QUOTA_TRANCHE		"pixltoken_quota"
#define QUOTA_MAGIC			UINT64CONST(0x7069786c71756f31)
#define QUOTA_DOMAIN_TOKEN	0x71746f6bU
/* the rate limiter's store key has always used this domain word */
#define QUOTA_DOMAIN_STORE	0x726c7374U
#define QUOTA_USED_BITS		48
#define QUOTA_USED_MASK		((UINT64CONST(1) << QUOTA_USED_BITS) - 1)
#define QUOTA_MAX_PERIOD	PG_UINT16_MAX	/* the top 16 bits */

#define QUOTA_EMPTY			0x00
#define QUOTA_USED			0xA5

#define QUOTA_KIND_STORE	1
#define QUOTA_KIND_TOKEN	2

typedef struct QuotaCounter
{
	uint8		state;			/* QUOTA_*: written last on insert */
	uint8		kind;
	uint8		seeded;			/* seeded since this postmaster started */
	uint64		key;
	pg_atomic_uint64 value;		/* period_no << 48 | used */
} QuotaCounter;

typedef struct QuotaTable
{
	uint64		magic;
	uint32		nslots;
	pg_atomic_uint32 count;
	pg_atomic_uint64 full_rejections;
	QuotaCounter slots[FLEXIBLE_ARRAY_MEMBER];
} QuotaTable;

static QuotaTable *quota_table = NULL;
static bool quota_mapped = false;
static LWLock *quota_lock = NULL;

/* pixltoken.max_quota_counters */
static int	pixl_max_quota_counters = 10000;

PG_FUNCTION_INFO_V1(pixl_quota_period_start);
PG_FUNCTION_INFO_V1(pixl_quota_used);
PG_FUNCTION_INFO_V1(pixl_quota_seed);
PG_FUNCTION_INFO_V1(pixl_quota_stats);
PG_FUNCTION_INFO_V1(pixl_quota_node_share);

void
pixl_quota_init(void)
{
	DefineCustomIntVariable("pixltoken.max_quota_counters",
							"Stores and tokens with a period allowance whose counter is kept in shared memory.",
							"A counter is kept until the server restarts; a full table refuses calls of new ones.",
							&pixl_max_quota_counters,
							10000, 100, 10000000,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);
}

static uint32
table_slots(int64 counters)
{
	return (uint32) (counters * 5 / 4 + 64);
}

static Size
table_size(int64 counters)
{
	return add_size(offsetof(QuotaTable, slots),
					mul_size(sizeof(QuotaCounter), table_slots(counters)));
}

void
pixl_quota_shmem_request(void)
{
#ifndef EXEC_BACKEND
	if (quota_table == NULL)
	{
		Size		size = table_size(pixl_max_quota_counters);
		void	   *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
							 MAP_SHARED | MAP_ANONYMOUS, -1, 0);

		if (p == MAP_FAILED)
			ereport(LOG,
					(errmsg("pixltoken: could not map %zu bytes for the allowance counters: %m",
							size),
					 errdetail("The counters are kept in PostgreSQL's shared memory instead, so every crash restart starts them empty until they are seeded.")));
		else
		{
			quota_table = (QuotaTable *) p;
			quota_mapped = true;
		}
	}
#endif
	if (!quota_mapped)
		RequestAddinShmemSpace(MAXALIGN(table_size(pixl_max_quota_counters)));
	RequestNamedLWLockTranche(QUOTA_TRANCHE, 1);
}

/* Called under AddinShmemInitLock. */
void
pixl_quota_shmem_startup(void)
{
	bool		found = false;
	uint32		nslots = table_slots(pixl_max_quota_counters);

	if (!quota_mapped)
		quota_table = ShmemInitStruct("pixltoken allowance counters",
									  table_size(pixl_max_quota_counters),
									  &found);
	quota_lock = &(GetNamedLWLockTranche(QUOTA_TRANCHE))->lock;
	if (found)
		return;

	if (quota_mapped && quota_table->magic == QUOTA_MAGIC &&
		quota_table->nslots == nslots)
	{
		/*
		 * A crash restart of this postmaster: counters are exact (a charge is
		 * one CAS, an insert publishes a whole counter), so later seeds only
		 * raise them.
		 */
		uint32		n = 0;

		for (uint32 i = 0; i < nslots; i++)
		{
			QuotaCounter *c = &quota_table->slots[i];

			if (c->state == QUOTA_USED)
			{
				c->seeded = 1;
				n++;
			}
			else
				c->state = QUOTA_EMPTY;
		}
		pg_atomic_write_u32(&quota_table->count, n);
		pg_atomic_write_u64(&quota_table->full_rejections, 0);
		ereport(LOG,
				(errmsg("pixltoken: kept %u allowance counters across the crash restart", n)));
		return;
	}

	memset(quota_table, 0, table_size(pixl_max_quota_counters));
	quota_table->nslots = nslots;
	pg_atomic_init_u32(&quota_table->count, 0);
	pg_atomic_init_u64(&quota_table->full_rejections, 0);
	pg_write_barrier();
	if (quota_mapped)
		quota_table->magic = QUOTA_MAGIC;
}

/* The number of the period starting at start: its day since 2000-01-01. */
static int32
period_no_of(TimestampTz start)
{
	int64		day = start / USECS_PER_DAY;

	if (start < 0)
		return 0;
	if (day > QUOTA_MAX_PERIOD)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range"),
				 errdetail("Allowance periods end in 2179.")));
	return (int32) day;
}

/*
 * The period holding now: 00:00 UTC on billing_day of this month if that
 * has come, else of the month before; it ends on billing_day of the next
 * month.  Returns its number, the days from 2000-01-01 to its start (0
 * for anything earlier).  billing_day outside 1..28 is 1.
 */
static int32
pixl_quota_period(TimestampTz now, int billing_day, TimestampTz *start,
				  TimestampTz *end)
{
	struct pg_tm tm;
	struct pg_tm b;
	fsec_t		fsec;
	Timestamp	s;
	Timestamp	e;

	if (billing_day < 1 || billing_day > 28)
		billing_day = 1;
	if (TIMESTAMP_NOT_FINITE(now) ||
		timestamp2tm(now, NULL, &tm, &fsec, NULL, NULL) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	memset(&b, 0, sizeof(b));
	b.tm_year = tm.tm_year;
	b.tm_mon = tm.tm_mon;		/* 1..12 */
	b.tm_mday = billing_day;
	if (tm.tm_mday < billing_day && --b.tm_mon == 0)
	{
		b.tm_mon = 12;
		b.tm_year--;
	}
	if (tm2timestamp(&b, 0, NULL, &s) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	if (++b.tm_mon == 13)
	{
		b.tm_mon = 1;
		b.tm_year++;
	}
	if (tm2timestamp(&b, 0, NULL, &e) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	if (start != NULL)
		*start = s;
	if (end != NULL)
		*end = e;
	return period_no_of(s);
}

static inline uint64
pack(uint64 period_no, uint64 used)
{
	return (period_no << QUOTA_USED_BITS) | (used & QUOTA_USED_MASK);
}

/* The used amount in period_no: a counter of an older period has 0. */
static inline int64
used_in(uint64 value, uint64 period_no)
{
	uint64		p = value >> QUOTA_USED_BITS;

	if (p < period_no)
		return 0;
	return (int64) (value & QUOTA_USED_MASK);
}

void
pixl_quota_key_init(PixlQuotaKey *key, Oid dbid, const char *token_id,
					uint64 store_key, int64 plan_quota, int64 token_quota,
					int billing_day, int counts)
{
	memset(key, 0, sizeof(*key));
	key->store_allowance = Max(plan_quota, 0);
	key->token_allowance = Max(token_quota, 0);
	/* a plan lowered below the token's own: the lower wins */
	if (key->token_allowance > 0 && key->store_allowance > 0)
		key->token_allowance = Min(key->token_allowance, key->store_allowance);
	key->store_key = store_key;
	key->billing_day = (int16) billing_day;
	key->counts = (int16) counts;
	if (key->token_allowance > 0)
	{
		uint32		tk[2 + PIXL_TOKEN_ID_LEN / sizeof(uint32)];

		tk[0] = QUOTA_DOMAIN_TOKEN;
		tk[1] = dbid;
		memcpy(&tk[2], token_id, PIXL_TOKEN_ID_LEN);
		key->token_key = pixl_keyed_hash(tk, sizeof(tk));
		if (key->token_key == 0)
			key->token_key = 1;
	}
}

bool
pixl_quota_wanted(const PixlQuotaKey *key)
{
	return key->store_allowance > 0 || key->token_allowance > 0;
}

/* The counter of (kind, key), or NULL.  No lock: see the header. */
static QuotaCounter *
find_counter(uint8 kind, uint64 key)
{
	uint32		n = quota_table->nslots;
	uint32		pos = (uint32) (key % n);

	for (uint32 i = 0; i < n; i++)
	{
		QuotaCounter *c = &quota_table->slots[pos];

		if (c->state != QUOTA_USED)
			return NULL;
		pg_read_barrier();
		if (c->key == key && c->kind == kind)
			return c;
		if (++pos == n)
			pos = 0;
	}
	return NULL;
}

/* find_counter(), inserting a zero counter if absent; NULL when full. */
static QuotaCounter *
get_counter(uint8 kind, uint64 key, uint64 period_no)
{
	QuotaCounter *c = find_counter(kind, key);
	uint32		n = quota_table->nslots;
	uint32		pos;

	if (c != NULL)
		return c;
	LWLockAcquire(quota_lock, LW_EXCLUSIVE);
	c = find_counter(kind, key);
	if (c == NULL &&
		pg_atomic_read_u32(&quota_table->count) < (uint32) pixl_max_quota_counters)
	{
		pos = (uint32) (key % n);
		for (uint32 i = 0; i < n; i++)
		{
			QuotaCounter *s = &quota_table->slots[pos];

			if (s->state != QUOTA_USED)
			{
				s->kind = kind;
				s->key = key;
				s->seeded = 0;
				pg_atomic_init_u64(&s->value, pack(period_no, 0));
				pg_write_barrier();
				s->state = QUOTA_USED;
				pg_atomic_fetch_add_u32(&quota_table->count, 1);
				c = s;
				break;
			}
			if (++pos == n)
				pos = 0;
		}
	}
	LWLockRelease(quota_lock);
	return c;
}

/*
 * Before the rate limiter's locks: the period and this node's allowances,
 * and the counters (made if absent: the only step that may take a lock).
 */
void
pixl_quota_prepare(PixlQuotaCheck *check, const PixlQuotaKey *key,
				   TimestampTz now, PixlQuotaDecision *decision)
{
	/* this backend's last period per billing day: no calendar math per call */
	static struct
	{
		TimestampTz start;
		TimestampTz end;
		int32		no;
	}			periods[29];
	int			day;

	memset(check, 0, sizeof(*check));
	memset(decision, 0, sizeof(*decision));
	check->key = key;
	if (key == NULL || !pixl_quota_wanted(key))
		return;
	Assert(quota_table != NULL);
	decision->applies = true;
	day = (key->billing_day >= 1 && key->billing_day <= 28) ? key->billing_day : 1;
	if (!(periods[day].end > 0 && now >= periods[day].start && now < periods[day].end))
		periods[day].no = pixl_quota_period(now, day, &periods[day].start,
											&periods[day].end);
	decision->period_no = periods[day].no;
	decision->period_start = periods[day].start;
	decision->period_end = periods[day].end;
	check->period_no = (uint64) decision->period_no;
	decision->period_left_s = (int32)
		((decision->period_end - now + USECS_PER_SEC - 1) / USECS_PER_SEC);
	if (key->store_allowance > 0)
	{
		check->store_limit = pixl_node_share(key->store_allowance);
		check->store_counter = get_counter(QUOTA_KIND_STORE, key->store_key,
										   check->period_no);
		if (check->store_counter == NULL)
			decision->table_full = true;
	}
	if (key->token_allowance > 0)
	{
		check->token_limit = pixl_node_share(key->token_allowance);
		check->token_counter = get_counter(QUOTA_KIND_TOKEN, key->token_key,
										   check->period_no);
		if (check->token_counter == NULL)
			decision->table_full = true;
	}
}

/* The binding allowance's figures, from the counters' used amounts. */
static void
fill_remaining(PixlQuotaCheck *check, int64 store_used, int64 token_used,
			   PixlQuotaDecision *decision)
{
	int64		store_rem = PG_INT64_MAX;
	int64		token_rem = PG_INT64_MAX;

	if (check->store_counter != NULL)
		store_rem = Max(check->store_limit - store_used, 0);
	if (check->token_counter != NULL)
		token_rem = Max(check->token_limit - token_used, 0);
	decision->binding_token = token_rem < store_rem;
	if (decision->binding_token)
	{
		decision->allowance = check->token_limit;
		decision->remaining = token_rem;
	}
	else if (check->store_counter != NULL)
	{
		decision->allowance = check->store_limit;
		decision->remaining = store_rem;
	}
}

/* Gives back a store charge of period_no, if the period has not turned. */
static bool
give_back(QuotaCounter *c, uint64 period_no, int cost)
{
	uint64		v = pg_atomic_read_u64(&c->value);

	for (;;)
	{
		int64		used;

		if ((v >> QUOTA_USED_BITS) != period_no)
			return false;
		used = (int64) (v & QUOTA_USED_MASK);
		if (used < cost)
			return false;
		if (pg_atomic_compare_exchange_u64(&c->value, &v,
										   pack(period_no, used - cost)))
			return true;
	}
}

/*
 * Charges cost to the token's and the store's counters if both have room,
 * else to neither.  Called under the token's rate slot spinlock once the
 * window has room: no allocation, no report, a bounded retry per race.
 */
bool
pixl_quota_charge(PixlQuotaCheck *check, int cost, PixlQuotaDecision *decision)
{
	QuotaCounter *sc = (QuotaCounter *) check->store_counter;
	QuotaCounter *tc = (QuotaCounter *) check->token_counter;
	uint64		p = check->period_no;
	uint64		sv = 0;
	uint64		tv = 0;
	int64		store_used = 0;
	int64		token_used = 0;

	if (!decision->applies)
		return true;
	if (decision->table_full)
	{
		/* a call that passed everything else, refused for want of room */
		pg_atomic_fetch_add_u64(&quota_table->full_rejections, 1);
		decision->exceeded = true;
		return false;
	}

	/* the token's own first: only this slot's holder charges it */
	if (tc != NULL)
	{
		tv = pg_atomic_read_u64(&tc->value);
		token_used = used_in(tv, p);
		if (token_used + cost > check->token_limit)
			goto refused;
	}
	if (sc != NULL)
	{
		sv = pg_atomic_read_u64(&sc->value);
		for (;;)
		{
			uint64		sp = Max(sv >> QUOTA_USED_BITS, p);

			store_used = used_in(sv, p);
			if (store_used + cost > check->store_limit)
				goto refused;
			if (pg_atomic_compare_exchange_u64(&sc->value, &sv,
											   pack(sp, store_used + cost)))
				break;
		}
		store_used += cost;
	}
	if (tc != NULL)
	{
		for (;;)
		{
			uint64		tp = Max(tv >> QUOTA_USED_BITS, p);

			token_used = used_in(tv, p);
			if (token_used + cost > check->token_limit)
			{
				/* a seed raised it meanwhile: give the store's charge back */
				if (sc != NULL)
				{
					(void) give_back(sc, Max(sv >> QUOTA_USED_BITS, p), cost);
					store_used -= cost;
				}
				goto refused;
			}
			if (pg_atomic_compare_exchange_u64(&tc->value, &tv,
											   pack(tp, token_used + cost)))
				break;
		}
		token_used += cost;
	}
	decision->charged = (int16) cost;
	fill_remaining(check, store_used, token_used, decision);
	return true;

refused:
	decision->exceeded = true;
	if (sc != NULL && store_used == 0)
		store_used = used_in(pg_atomic_read_u64(&sc->value), p);
	fill_remaining(check, store_used, token_used, decision);
	/* the binding one is the one without room */
	if (tc != NULL && token_used + cost > check->token_limit)
	{
		decision->binding_token = true;
		decision->allowance = check->token_limit;
		decision->remaining = Max(check->token_limit - token_used, 0);
	}
	else if (sc != NULL)
	{
		decision->binding_token = false;
		decision->allowance = check->store_limit;
		decision->remaining = Max(check->store_limit - store_used, 0);
	}
	return false;
}

/*
 * The figures without charging (the window refused, or a 403): exceeded
 * says whether the allowance would also have refused the cost.
 */
void
pixl_quota_peek(PixlQuotaCheck *check, int cost, PixlQuotaDecision *decision)
{
	QuotaCounter *sc = (QuotaCounter *) check->store_counter;
	QuotaCounter *tc = (QuotaCounter *) check->token_counter;
	int64		store_used = 0;
	int64		token_used = 0;

	if (!decision->applies)
		return;
	if (decision->table_full)
	{
		decision->exceeded = true;
		return;
	}
	if (sc != NULL)
		store_used = used_in(pg_atomic_read_u64(&sc->value), check->period_no);
	if (tc != NULL)
		token_used = used_in(pg_atomic_read_u64(&tc->value), check->period_no);
	fill_remaining(check, store_used, token_used, decision);
	decision->exceeded =
		(sc != NULL && store_used + cost > check->store_limit) ||
		(tc != NULL && token_used + cost > check->token_limit);
	if (tc != NULL && token_used + cost > check->token_limit)
	{
		decision->binding_token = true;
		decision->allowance = check->token_limit;
		decision->remaining = Max(check->token_limit - token_used, 0);
	}
}

/*
 * A refund of a charge made in period period_no (a response whose final
 * status the plan does not count): given back to the store's and the
 * token's counters if now is still in that period, and so are they.  The
 * caller makes sure it is asked once per charge.
 */
bool
pixl_quota_refund(uint64 store_key, uint64 token_key, int32 period_no,
				  int billing_day, int cost, TimestampTz now)
{
	QuotaCounter *c;
	bool		done = false;

	if (quota_table == NULL || cost <= 0 ||
		pixl_quota_period(now, billing_day, NULL, NULL) != period_no)
		return false;
	if (store_key != 0 && (c = find_counter(QUOTA_KIND_STORE, store_key)) != NULL)
		done = give_back(c, (uint64) period_no, cost);
	if (token_key != 0 && (c = find_counter(QUOTA_KIND_TOKEN, token_key)) != NULL)
		done = give_back(c, (uint64) period_no, cost) || done;
	return done;
}

/* Does a final status count against an allowance of this kind? */
bool
pixl_quota_status_counts(int counts, int status)
{
	switch (counts)
	{
		case PIXL_QUOTA_COUNTS_2XX:
			return status >= 200 && status < 300;
		case PIXL_QUOTA_COUNTS_2XX_3XX:
			return status >= 200 && status < 400;
		default:
			return true;
	}
}

/*
 * pixl_quota_period_start(ts timestamptz, billing_day smallint) ->
 * timestamptz: the SQL face of pixl_quota_period().
 */
Datum
pixl_quota_period_start(PG_FUNCTION_ARGS)
{
	TimestampTz start;
	int			day = 1;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	if (!PG_ARGISNULL(1))
	{
		day = PG_GETARG_INT16(1);
		if (day < 1 || day > 28)
			ereport(ERROR,
					(errcode(ERRCODE_PIXL_QUOTA_RANGE),
					 errmsg("billing day %d is out of range", day),
					 errhint("A billing day is between 1 and 28; NULL is the calendar month.")));
	}
	(void) pixl_quota_period(PG_GETARG_TIMESTAMPTZ(0), day, &start, NULL);
	PG_RETURN_TIMESTAMPTZ(start);
}

/*
 * A store's key: the keyed hash of (database, store id), never 0.  The rate
 * limiter keys a store's share of its table with it too.
 */
uint64
pixl_quota_store_key(Oid dbid, const char *store_id, int store_len)
{
	char	   *st = palloc(2 * sizeof(uint32) + store_len);
	uint64		k;

	((uint32 *) st)[0] = QUOTA_DOMAIN_STORE;
	((uint32 *) st)[1] = dbid;
	memcpy(st + 2 * sizeof(uint32), store_id, store_len);
	k = pixl_keyed_hash(st, 2 * sizeof(uint32) + store_len);
	pfree(st);
	return k == 0 ? 1 : k;		/* 0 marks a free store slot */
}

static uint64
store_key_of(text *store_id)
{
	return pixl_quota_store_key(MyDatabaseId, VARDATA_ANY(store_id),
								VARSIZE_ANY_EXHDR(store_id));
}

/*
 * pixl_quota_used(store_id text) -> (period_start, used): this node's
 * counter of the store in the current database, in its period.
 */
Datum
pixl_quota_used(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	QuotaCounter *c;
	Datum		values[2];
	bool		nulls[2] = {false, false};
	uint64		v;
	int64		days;

	pixl_require_preload();
	InitMaterializedSRF(fcinfo, 0);
	c = find_counter(QUOTA_KIND_STORE, store_key_of(PG_GETARG_TEXT_PP(0)));
	if (c == NULL)
		return (Datum) 0;
	v = pg_atomic_read_u64(&c->value);
	days = (int64) (v >> QUOTA_USED_BITS);
	values[0] = TimestampTzGetDatum((TimestampTz) days * USECS_PER_DAY);
	values[1] = Int64GetDatum((int64) (v & QUOTA_USED_MASK));
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	return (Datum) 0;
}

/*
 * pixl_quota_seed(store_id, period_start, used, token_id) -> bigint: the
 * counter raised to at least used for the period holding period_start
 * (the first seed since the server's start adds instead: see the header).
 */
Datum
pixl_quota_seed(PG_FUNCTION_ARGS)
{
	QuotaCounter *c;
	uint64		p;
	int64		used;
	uint64		key;
	uint8		kind = QUOTA_KIND_STORE;
	uint64		v;

	pixl_require_preload();
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("store_id, period_start and used must not be NULL")));
	used = PG_GETARG_INT64(2);
	if (used < 0 || used > PIXL_QUOTA_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PIXL_QUOTA_RANGE),
				 errmsg("used %lld is out of range", (long long) used)));
	/* the period's number: the day it starts on */
	if (TIMESTAMP_NOT_FINITE(PG_GETARG_TIMESTAMPTZ(1)))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	p = (uint64) period_no_of(PG_GETARG_TIMESTAMPTZ(1));
	key = store_key_of(PG_GETARG_TEXT_PP(0));
	if (PG_NARGS() > 3 && !PG_ARGISNULL(3))
	{
		text	   *tid = PG_GETARG_TEXT_PP(3);
		PixlQuotaKey k;

		if (VARSIZE_ANY_EXHDR(tid) != PIXL_TOKEN_ID_LEN)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid token id")));
		pixl_quota_key_init(&k, MyDatabaseId, VARDATA_ANY(tid), key, 0, 1, 1, 0);
		key = k.token_key;
		kind = QUOTA_KIND_TOKEN;
	}
	c = get_counter(kind, key, p);
	if (c == NULL)
	{
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("the allowance counters are full"),
				 errhint("Raise pixltoken.max_quota_counters.")));
	}
	/* under the lock, so that two seeds of one counter do not both add */
	LWLockAcquire(quota_lock, LW_EXCLUSIVE);
	v = pg_atomic_read_u64(&c->value);
	for (;;)
	{
		uint64		cp = v >> QUOTA_USED_BITS;
		int64		cu = (int64) (v & QUOTA_USED_MASK);
		uint64		nv;

		if (cp > p)
			break;				/* a later period: nothing to raise */
		if (cp < p)
			nv = pack(p, used);
		else if (!c->seeded)
			nv = pack(p, Min(cu + used, PIXL_QUOTA_MAX));
		else
			nv = pack(p, Max(cu, used));
		if (pg_atomic_compare_exchange_u64(&c->value, &v, nv))
		{
			v = nv;
			break;
		}
	}
	c->seeded = 1;
	LWLockRelease(quota_lock);
	PG_RETURN_INT64((int64) (v & QUOTA_USED_MASK));
}

/* The allowance this node enforces, for SQL: the request path's rule. */
Datum
pixl_quota_node_share(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(pixl_node_share(PG_GETARG_INT64(0)));
}

Datum
pixl_quota_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	pixl_require_preload();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	values[0] = Int64GetDatum((int64) pg_atomic_read_u32(&quota_table->count));
	values[1] = Int32GetDatum(pixl_max_quota_counters);
	values[2] = Int64GetDatum((int64) pg_atomic_read_u64(&quota_table->full_rejections));
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc),
													  values, nulls)));
}
