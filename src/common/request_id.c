/*-------------------------------------------------------------------------
 *
 * request_id.c
 *		Request ids of verifications, and their opaque text form.
 *
 * Ids.  One pg_atomic_uint64 is a hybrid clock: a new id is
 * max(last id / 16 + 1, now in microseconds) * 16 + the node id
 * (pixltoken.node_id, 0..15, common/node.c: 16 is PIXL_NODE_IDS), installed
 * by a CAS loop, and the verification's time is id / 16.  So ids are unique and increasing on
 * a node, ids of different nodes never collide (a standby's usage rows land
 * in the primary's tables), and an id alone names its usage row's time,
 * hence its partition.  The last id is saved on clean shutdown (and kept in
 * the postmaster across a crash restart), and the clock restarts from
 * max(now * 16, that mark).  We assume the system clock is not stepped back
 * across a crash of the whole server; ids run ahead of the clock only above
 * one verification per microsecond.
 *
 * Text form (1.1).  The integer is guessable (it is a clock), so callers
 * get "<16 hex digits of the id><16 hex digits of a tag>", where the tag is
 * SipHash-2-4 of (id, flags) under a 128-bit key of the cluster: only this
 * cluster can make a valid text form, so pixl_log_response cannot be
 * pointed at someone else's row, and a string is exact in JavaScript.  The
 * flags (was the raw usage row kept?  has the verification a pending entry
 * for its response, usage_pending.c?) are in the MAC, not visible: the
 * parser tries the four values.  The key is made once from pg_strong_random() and
 * stored in PGDATA/pixltoken_request_id.key (mode 0600, never logged); a
 * restart keeps it, and a standby made by pg_basebackup copies it, so ids
 * handed out by the primary stay valid on the standby after a failover.
 *
 * Sealed bigint form (1.1, for 1.0's result type).  pixl_verify_token keeps
 * 1.0's request_id bigint, so that statements app servers prepared under
 * 1.0 survive the update; its value is no longer the clock but a keyed
 * permutation of (id << 2 | the two flags) over 1 .. 2^63-1: a 4-round
 * Feistel network over 64 bits whose round function is SipHash-2-4 of
 * (domain word, round, half) under the same key (24 bytes: never the
 * input of a MAC above), with cycle walking to stay in range (2 passes on
 * average).  Opening a value runs the inverse; a guess opens to a random
 * id, and one is refused unless that id's time lies in the last
 * PIXL_SEALED_MAX_AGE_USECS (about 2^-16 of all ids pass), and even then
 * it changes something only if it names one of the N verifications whose
 * report is outstanding: N / 2^61 per guess, each guess one call.  pixl_log_response's 1.0 symbol also takes a value that does not
 * open as a raw 1.0 id: a database not yet updated keeps 1.0's rules.
 *
 * Why SipHash-2-4 and not pg_hmac (HMAC-SHA-256): the tag is made on every
 * verification, and pg_hmac goes through OpenSSL's per-call context set-up
 * (microseconds under load); SipHash is a keyed PRF built for short inputs
 * that needs no set-up, and a 64-bit tag is ample for ids only accepted by
 * pixl_log_response (a forger gets one guess per call, and a wrong guess
 * changes nothing).  The key file is the one place the key lives: mode
 * 0600, made by the first start, never logged or shipped (a standby gets
 * it only by being a base backup of the primary).  To rotate it, stop the
 * server, delete the file and start: every id handed out before is then
 * refused by pixl_log_response (PX032), so do it when no response reports
 * are outstanding, and copy the new file to standbys before they verify.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "common/errcodes.h"
#include "common/node.h"
#include "common/preload.h"
#include "common/request_id.h"

#define PIXL_KEY_FILE		"pixltoken_request_id.key"
#define PIXL_LAST_ID_FILE	PGSTAT_STAT_PERMANENT_DIRECTORY "/pixltoken_request_id.dat"
#define PIXL_ID_TEXT_LEN	32

typedef struct PixlRequestIdShared
{
	pg_atomic_uint64 last_request_id;
	uint64		key[2];			/* SipHash key; written once at startup */
} PixlRequestIdShared;

static PixlRequestIdShared *rid = NULL;

/* The postmaster keeps the last id here across a crash restart. */
static uint64 postmaster_last_id = 0;

/* This backend's last id whose raw row was not kept, and without pending entry. */
static int64 unkept_id = 0;
static int64 unpending_id = 0;

static void pixl_request_id_shutdown(int code, Datum arg);

void
pixl_request_id_shmem_request(void)
{
	RequestAddinShmemSpace(MAXALIGN(sizeof(PixlRequestIdShared)));
}

/* The cluster's MAC key: read, or made and stored on first start. */
static void
load_or_create_key(uint64 *key)
{
	int			fd;

	fd = OpenTransientFile(PIXL_KEY_FILE, O_RDONLY | PG_BINARY);
	if (fd >= 0)
	{
		int			r = read(fd, key, sizeof(uint64) * 2);

		CloseTransientFile(fd);
		if (r == sizeof(uint64) * 2)
			return;
		ereport(FATAL,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("file \"%s\" is damaged", PIXL_KEY_FILE),
				 errhint("Remove it to make a new key; request ids handed out before then become invalid.")));
	}
	if (errno != ENOENT)
		ereport(FATAL,
				(errcode_for_file_access(),
				 errmsg("could not read file \"%s\": %m", PIXL_KEY_FILE)));
	if (!pg_strong_random(key, sizeof(uint64) * 2))
		ereport(FATAL,
				(errmsg("could not generate the request id key")));
	fd = OpenTransientFile(PIXL_KEY_FILE ".tmp",
						   O_WRONLY | O_CREAT | O_TRUNC | PG_BINARY);
	if (fd < 0 || write(fd, key, sizeof(uint64) * 2) != sizeof(uint64) * 2 ||
		CloseTransientFile(fd) != 0)
		ereport(FATAL,
				(errcode_for_file_access(),
				 errmsg("could not write file \"%s\": %m", PIXL_KEY_FILE ".tmp")));
	(void) chmod(PIXL_KEY_FILE ".tmp", S_IRUSR | S_IWUSR);
	if (durable_rename(PIXL_KEY_FILE ".tmp", PIXL_KEY_FILE, LOG) != 0)
		ereport(FATAL,
				(errcode_for_file_access(),
				 errmsg("could not create file \"%s\": %m", PIXL_KEY_FILE)));
}

static uint64
load_last_id(void)
{
	FILE	   *file = AllocateFile(PIXL_LAST_ID_FILE, PG_BINARY_R);
	uint64		id = 0;

	if (file == NULL)
		return 0;
	if (fread(&id, sizeof(id), 1, file) != 1)
		id = 0;
	FreeFile(file);
	return id;
}

/* Called with AddinShmemInitLock held (pixltoken.c). */
void
pixl_request_id_shmem_startup(void)
{
	bool		found;

	rid = ShmemInitStruct("pixltoken request ids", sizeof(PixlRequestIdShared),
						  &found);
	if (!found)
	{
		uint64		start = Max((uint64) GetCurrentTimestamp() * PIXL_NODE_IDS,
								postmaster_last_id);

		if (!IsUnderPostmaster)
			start = Max(start, load_last_id());
		pg_atomic_init_u64(&rid->last_request_id, start);
		load_or_create_key(rid->key);
	}
	if (!IsUnderPostmaster)
		on_shmem_exit(pixl_request_id_shutdown, (Datum) 0);
}

/* The postmaster keeps the last id over a crash; saves it when clean. */
static void
pixl_request_id_shutdown(int code, Datum arg)
{
	FILE	   *file;
	uint64		last;

	if (rid == NULL)
		return;
	last = pg_atomic_read_u64(&rid->last_request_id);
	postmaster_last_id = Max(postmaster_last_id, last);
	if (code != 0)
		return;
	file = AllocateFile(PIXL_LAST_ID_FILE ".tmp", PG_BINARY_W);
	if (file == NULL || fwrite(&last, sizeof(last), 1, file) != 1 || FreeFile(file))
	{
		ereport(LOG,
				(errcode_for_file_access(),
				 errmsg("could not write file \"%s\": %m", PIXL_LAST_ID_FILE ".tmp")));
		return;
	}
	(void) durable_rename(PIXL_LAST_ID_FILE ".tmp", PIXL_LAST_ID_FILE, LOG);
}

int64
pixl_next_request_id(TimestampTz *at)
{
	uint64		now;
	uint64		old;
	uint64		id;

	if (rid == NULL)
		pixl_require_preload();

	now = (uint64) GetCurrentTimestamp();
	old = pg_atomic_read_u64(&rid->last_request_id);
	for (;;)
	{
		id = Max(old / PIXL_NODE_IDS + 1, now) * PIXL_NODE_IDS + (uint64) pixl_node_id;
		if (pg_atomic_compare_exchange_u64(&rid->last_request_id, &old, id))
			break;
	}
	*at = PIXL_REQUEST_ID_TIME(id);
	return (int64) id;
}

/* ---- SipHash-2-4 (Aumasson & Bernstein) ---- */

#define ROTL64(x, b)	(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND \
	do { \
		v0 += v1; v1 = ROTL64(v1, 13); v1 ^= v0; v0 = ROTL64(v0, 32); \
		v2 += v3; v3 = ROTL64(v3, 16); v3 ^= v2; \
		v0 += v3; v3 = ROTL64(v3, 21); v3 ^= v0; \
		v2 += v1; v1 = ROTL64(v1, 17); v1 ^= v2; v2 = ROTL64(v2, 32); \
	} while (0)

/* SipHash-2-4 of len bytes under key; words are read in host order. */
static uint64
siphash24(const uint64 *key, const void *data, Size len)
{
	const unsigned char *p = (const unsigned char *) data;
	uint64		v0 = key[0] ^ UINT64CONST(0x736f6d6570736575);
	uint64		v1 = key[1] ^ UINT64CONST(0x646f72616e646f6d);
	uint64		v2 = key[0] ^ UINT64CONST(0x6c7967656e657261);
	uint64		v3 = key[1] ^ UINT64CONST(0x7465646279746573);
	uint64		m;
	uint64		last = ((uint64) len) << 56;
	Size		left = len;

	for (; left >= 8; left -= 8, p += 8)
	{
		memcpy(&m, p, 8);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	for (Size i = 0; i < left; i++)
		last |= ((uint64) p[i]) << (8 * i);
	v3 ^= last;
	SIPROUND;
	SIPROUND;
	v0 ^= last;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

/*
 * SipHash-2-4 of a byte string under the cluster's key, for hash tables
 * whose keys someone else chooses (rate_limit.c): without the key, nobody
 * can search for colliding keys.  Callers prefix a domain word of their
 * own, so these never coincide with the request ids' MACs (16 bytes whose
 * second word is 0 to 3), and the values are never shown to anyone.
 */
uint64
pixl_keyed_hash(const void *data, Size len)
{
	if (rid == NULL)
		pixl_require_preload();
	return siphash24(rid->key, data, len);
}

/*
 * The MAC of an id's text form: SipHash-2-4 of the words (id, flags).  The
 * flags: 1 when the raw row was kept, 0 when not (as 1.1 made it before
 * pending entries existed), plus 2 when the verification has no pending
 * entry (its response cannot be counted: usage_pending.c).
 */
static uint64
request_id_tag(int64 id, bool kept, bool pending)
{
	uint64		words[2] = {(uint64) id, (kept ? 1 : 0) | (pending ? 0 : 2)};

	return siphash24(rid->key, words, sizeof(words));
}

void
pixl_request_id_mark_unkept(int64 request_id)
{
	unkept_id = request_id;
}

void
pixl_request_id_mark_unpending(int64 request_id)
{
	unpending_id = request_id;
}

/* v as 16 lower-case hex digits, most significant first (as "%016llx") */
static inline void
put_hex64(char *dst, uint64 v)
{
	static const char digits[] = "0123456789abcdef";

	for (int i = 15; i >= 0; i--)
	{
		dst[i] = digits[v & 0xf];
		v >>= 4;
	}
}

text *
pixl_request_id_text(int64 request_id)
{
	text	   *result;
	bool		kept = (request_id != unkept_id);
	bool		pending = (request_id != unpending_id);

	if (rid == NULL)
		pixl_require_preload();
	/* on every verification: no snprintf, straight into the text datum */
	result = (text *) palloc(VARHDRSZ + PIXL_ID_TEXT_LEN);
	SET_VARSIZE(result, VARHDRSZ + PIXL_ID_TEXT_LEN);
	put_hex64(VARDATA(result), (uint64) request_id);
	put_hex64(VARDATA(result) + 16, request_id_tag(request_id, kept, pending));
	return result;
}

/* ---- the sealed bigint form (1.0's result type) ---- */

#define PIXL_SEAL_DOMAIN	UINT64CONST(0x7069786c7365616c) /* "pixlseal" */
#define PIXL_SEAL_ROUNDS	4
#define PIXL_SEAL_MAX		((uint64) PG_INT64_MAX)

/* The round function: SipHash-2-4 of (domain, round, half), 24 bytes. */
static inline uint32
seal_round(int round, uint32 half)
{
	uint64		words[3] = {PIXL_SEAL_DOMAIN, (uint64) round, (uint64) half};

	return (uint32) siphash24(rid->key, words, sizeof(words));
}

/* One pass of the Feistel network over 64 bits, or of its inverse. */
static uint64
seal_pass(uint64 v, bool forward)
{
	uint32		l = (uint32) (v >> 32);
	uint32		r = (uint32) v;

	for (int i = 0; i < PIXL_SEAL_ROUNDS; i++)
	{
		if (forward)
		{
			uint32		t = r;

			r = l ^ seal_round(i, r);
			l = t;
		}
		else
		{
			uint32		t = l;

			l = r ^ seal_round(PIXL_SEAL_ROUNDS - 1 - i, l);
			r = t;
		}
	}
	return ((uint64) l << 32) | r;
}

/* The permutation of 1 .. 2^63-1 (cycle walking keeps a result in range). */
static uint64
seal_permute(uint64 v, bool forward)
{
	do
		v = seal_pass(v, forward);
	while (v == 0 || v > PIXL_SEAL_MAX);
	return v;
}

int64
pixl_request_id_seal(int64 request_id)
{
	bool		kept = (request_id != unkept_id);
	bool		pending = (request_id != unpending_id);
	uint64		v;

	if (rid == NULL)
		pixl_require_preload();
	Assert(request_id > 0 && (uint64) request_id < (UINT64CONST(1) << 61));
	v = ((uint64) request_id << 2) | (kept ? 0 : 1) | (pending ? 0 : 2);
	return (int64) seal_permute(v, true);
}

bool
pixl_request_id_unseal(int64 sealed, int64 *request_id, bool *kept, bool *pending)
{
	uint64		v;
	int64		id;
	TimestampTz now;
	TimestampTz at;

	if (rid == NULL)
		pixl_require_preload();
	if (sealed <= 0)
		return false;
	v = seal_permute((uint64) sealed, false);
	id = (int64) (v >> 2);
	now = GetCurrentTimestamp();
	at = PIXL_REQUEST_ID_TIME(id);
	/* a forgery lands on a random id: almost never a recent one */
	if (id <= 0 || at > now + PIXL_SEALED_SKEW_USECS ||
		at < now - PIXL_SEALED_MAX_AGE_USECS)
		return false;
	*request_id = id;
	*kept = (v & 1) == 0;
	*pending = (v & 2) == 0;
	return true;
}

static bool
parse_hex64(const char *s, uint64 *out)
{
	uint64		v = 0;

	for (int i = 0; i < 16; i++)
	{
		char		c = s[i];
		int			d;

		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else
			return false;
		v = (v << 4) | (uint64) d;
	}
	*out = v;
	return true;
}

int64
pixl_request_id_parse(text *t, bool *kept, bool *pending)
{
	const char *s = VARDATA_ANY(t);
	int			len = VARSIZE_ANY_EXHDR(t);
	uint64		id;
	uint64		tag;

	if (rid == NULL)
		pixl_require_preload();

	/*
	 * The decimal form of a sealed id (pixl_verify_token, 1.0's result
	 * type): a client that passes it as an untyped string (node-postgres
	 * does, its int8 values being strings) reaches the text functions,
	 * whose name it shares once 1.1's are installed
	 */
	if (len >= 1 && len <= 19)
	{
		int64		sealed = 0;
		int64		unsealed;

		for (int i = 0; i < len && sealed >= 0; i++)
		{
			if (s[i] < '0' || s[i] > '9' ||
				sealed > (PG_INT64_MAX - (s[i] - '0')) / 10)
				sealed = -1;
			else
				sealed = sealed * 10 + (s[i] - '0');
		}
		if (sealed > 0 &&
			pixl_request_id_unseal(sealed, &unsealed, kept, pending))
			return unsealed;
	}
	if (len == PIXL_ID_TEXT_LEN && parse_hex64(s, &id) && parse_hex64(s + 16, &tag) &&
		(int64) id > 0)
	{
		for (int flags = 0; flags < 4; flags++)
		{
			if (tag == request_id_tag((int64) id, (flags & 1) == 0, (flags & 2) == 0))
			{
				*kept = (flags & 1) == 0;
				*pending = (flags & 2) == 0;
				return (int64) id;
			}
		}
	}
	/* echo only what cannot be a secret pasted in the wrong place */
	ereport(ERROR,
			(errcode(ERRCODE_PIXL_INVALID_REQUEST_ID),
			 errmsg("invalid request id \"%s\"",
					len <= 64 && strspn(text_to_cstring(t), "0123456789abcdef") == (size_t) len
					? text_to_cstring(t) : "(not shown)"),
			 errhint("Pass the request_id returned by pixl_verify_request or pixl_verify_token of this cluster.")));
	return 0;					/* keep the compiler quiet */
}
