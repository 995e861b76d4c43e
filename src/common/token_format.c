/*-------------------------------------------------------------------------
 *
 * token_format.c
 *		Generating, checking and hashing pixltoken secrets.
 *
 * Everything here works on bytes only: the format check runs before any
 * table is touched, so garbage costs a length test and, at worst, one CRC
 * (verification checks the CRC only when the hash is not in its cache, see
 * verify.c).
 * Secrets never leave this file except as the caller's buffer: nothing here
 * logs or reports one.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#ifdef USE_OPENSSL
#include <openssl/err.h>
#include <openssl/evp.h>
#else
#include "common/cryptohash.h"
#endif

#include "mb/pg_wchar.h"
#include "port.h"
#include "utils/pg_crc.h"

#include "common/errcodes.h"
#include "common/token_format.h"

static const char base62_digits[] =
"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static const char prefix_live[] = "sk_live_";
static const char prefix_test[] = "sk_test_";

/*
 * CRC-32 (ISO-HDLC): reflected polynomial 0xEDB88320, as zlib computes it;
 * PostgreSQL's "traditional" CRC-32 is that very CRC.
 */
static uint32
crc32_iso_hdlc(const char *data, size_t len)
{
	pg_crc32	crc;

	INIT_TRADITIONAL_CRC32(crc);
	COMP_TRADITIONAL_CRC32(crc, data, len);
	FIN_TRADITIONAL_CRC32(crc);
	return (uint32) crc;
}

static inline bool
is_base62(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
		(c >= 'a' && c <= 'z');
}

/* is_base62 as a table, for the shape check of every verification */
static bool base62_table[256];
static bool base62_table_ready = false;

static void
init_base62_table(void)
{
	for (int c = 0; c < 256; c++)
		base62_table[c] = is_base62((char) c);
	base62_table_ready = true;
}

void
pixl_checksum(const char *data, size_t len, char *out)
{
	uint32		crc = crc32_iso_hdlc(data, len);

	/* 62^6 > 2^32, so six digits always suffice */
	for (int i = PIXL_CHECKSUM_LEN - 1; i >= 0; i--)
	{
		out[i] = base62_digits[crc % 62];
		crc /= 62;
	}
}

/*
 * Uniform base62 characters from the strong random source: bytes of 248 and
 * above are rejected so that byte % 62 carries no bias.
 */
static void
fill_base62_random(char *out, int n)
{
	uint8		pool[64];
	int			avail = 0;
	int			pos = 0;

	while (pos < n)
	{
		if (avail == 0)
		{
			if (!pg_strong_random(pool, sizeof(pool)))
				ereport(ERROR,
						(errcode(ERRCODE_INTERNAL_ERROR),
						 errmsg("could not generate random bytes for a token")));
			avail = sizeof(pool);
		}
		avail--;
		if (pool[avail] < 248)
			out[pos++] = base62_digits[pool[avail] % 62];
	}
	explicit_bzero(pool, sizeof(pool));
}

void
pixl_generate_secret(PixlTokenMode mode, char *buf)
{
	memcpy(buf, mode == PIXL_MODE_LIVE ? prefix_live : prefix_test,
		   PIXL_PREFIX_LEN);
	fill_base62_random(buf + PIXL_PREFIX_LEN, PIXL_RANDOM_LEN);
	pixl_checksum(buf, PIXL_PREFIX_LEN + PIXL_RANDOM_LEN,
				  buf + PIXL_PREFIX_LEN + PIXL_RANDOM_LEN);
}

void
pixl_generate_token_id(char *buf)
{
	int			plen = strlen(PIXL_TOKEN_ID_PREFIX);

	memcpy(buf, PIXL_TOKEN_ID_PREFIX, plen);
	fill_base62_random(buf + plen, PIXL_TOKEN_ID_LEN - plen);
}

bool
pixl_is_token_id(const char *id)
{
	const size_t plen = strlen(PIXL_TOKEN_ID_PREFIX);

	if (memcmp(id, PIXL_TOKEN_ID_PREFIX, plen) != 0)
		return false;
	for (size_t i = plen; i < PIXL_TOKEN_ID_LEN; i++)
		if (!is_base62(id[i]))
			return false;
	return true;
}

PixlFormatVerdict
pixl_check_shape(const char *token, size_t len)
{
	const size_t idlen = strlen(PIXL_TOKEN_ID_PREFIX);

	if (token == NULL || len == 0)
		return PIXL_FORMAT_MISSING;
	if (len >= idlen && memcmp(token, PIXL_TOKEN_ID_PREFIX, idlen) == 0)
		return PIXL_FORMAT_TOKEN_ID;
	if (len != PIXL_SECRET_LEN)
		return PIXL_FORMAT_MALFORMED;
	if (memcmp(token, prefix_live, PIXL_PREFIX_LEN) != 0 &&
		memcmp(token, prefix_test, PIXL_PREFIX_LEN) != 0)
		return PIXL_FORMAT_MALFORMED;
	if (unlikely(!base62_table_ready))
		init_base62_table();
	for (size_t i = PIXL_PREFIX_LEN; i < len; i++)
		if (!base62_table[(unsigned char) token[i]])
			return PIXL_FORMAT_MALFORMED;
	return PIXL_FORMAT_OK;
}

bool
pixl_checksum_ok(const char *token)
{
	char		expected[PIXL_CHECKSUM_LEN];

	/* The checksum covers the prefix too: a live/test mix-up fails here. */
	pixl_checksum(token, PIXL_PREFIX_LEN + PIXL_RANDOM_LEN, expected);
	return memcmp(expected, token + PIXL_PREFIX_LEN + PIXL_RANDOM_LEN,
				  PIXL_CHECKSUM_LEN) == 0;
}

PixlFormatVerdict
pixl_check_format(const char *token, size_t len)
{
	PixlFormatVerdict verdict = pixl_check_shape(token, len);

	if (verdict == PIXL_FORMAT_OK && !pixl_checksum_ok(token))
		return PIXL_FORMAT_MALFORMED;
	return verdict;
}

/*
 * SHA-256.  An unkeyed hash is enough: a secret carries 190 random bits, so
 * there is no dictionary to attack, and a dump restored into another
 * cluster keeps verifying without moving a key.
 *
 * With OpenSSL (Debian's server is built with it) we call libcrypto
 * directly with one digest context per backend, made at the first hash and
 * reused: pg_cryptohash creates, registers and frees a context on every
 * call, and OpenSSL 3 looks the algorithm up again on each set-up (about
 * 0.5 us for a 46-byte secret on an idle machine, microseconds under load,
 * against 0.08 us with the context kept and the algorithm fetched once; an
 * implementation of our own in C measured 0.5 us, as it cannot use the
 * CPU's SHA instructions).  The algorithm comes from the default library
 * context, so an OpenSSL FIPS configuration still applies.  No secret
 * stays behind: the final step wipes the context's data block (OpenSSL
 * cleanses it there), and a failure resets the context, which frees and
 * clears its state.  The algorithm is fetched in the postmaster already
 * (pixl_hash_preload, from _PG_init): a process's first fetch builds the
 * method (about 0.2 ms measured here once OpenSSL is initialised, as the
 * postmaster's random numbers leave it; milliseconds when it also has to
 * load OpenSSL's configuration), which every new connection's first
 * verification would pay otherwise, and forked backends inherit the result
 * (as they inherit the postmaster's SSL context when ssl is on).  Without
 * OpenSSL, pg_cryptohash is PostgreSQL's own implementation, which has no
 * set-up to save.
 */
#ifdef USE_OPENSSL
static EVP_MD_CTX *sha256_ctx = NULL;
static EVP_MD *sha256_md = NULL;

static void
sha256_failed(void)
{
	unsigned long code = ERR_get_error();
	const char *why = code ? ERR_reason_error_string(code) : NULL;

	ERR_clear_error();
	if (sha256_ctx != NULL)
		EVP_MD_CTX_reset(sha256_ctx);
	ereport(ERROR,
			(errcode(ERRCODE_INTERNAL_ERROR),
			 errmsg("could not compute SHA-256 hash: %s",
					why ? why : "unknown OpenSSL error")));
}

void
pixl_hash_preload(void)
{
	/* a failure here is reported by the first hash, in a backend */
	if (sha256_md == NULL)
		sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
	ERR_clear_error();
}

void
pixl_hash_secret(const char *token, size_t len, uint8 *out)
{
	unsigned int outlen = 0;

	if (unlikely(sha256_ctx == NULL))
	{
		if (sha256_md == NULL)
			sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
		if (sha256_md == NULL)
			sha256_failed();
		sha256_ctx = EVP_MD_CTX_new();
		if (sha256_ctx == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory")));
	}
	if (EVP_DigestInit_ex(sha256_ctx, sha256_md, NULL) != 1 ||
		EVP_DigestUpdate(sha256_ctx, token, len) != 1 ||
		EVP_DigestFinal_ex(sha256_ctx, out, &outlen) != 1 ||
		outlen != PIXL_HASH_LEN)
		sha256_failed();
}
#else
void
pixl_hash_secret(const char *token, size_t len, uint8 *out)
{
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);

	if (ctx == NULL ||
		pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) token, len) < 0 ||
		pg_cryptohash_final(ctx, out, PIXL_HASH_LEN) < 0)
	{
		const char *why = ctx ? pg_cryptohash_error(ctx) : "out of memory";

		pg_cryptohash_free(ctx);
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute SHA-256 hash: %s", why)));
	}
	pg_cryptohash_free(ctx);
}

void
pixl_hash_preload(void)
{
}
#endif

char *
pixl_secret_hint(const char *secret)
{
	/* U+2026 where the database can store it, three dots elsewhere */
	const char *ellipsis = GetDatabaseEncoding() == PG_UTF8 ? "\u2026" : "...";

	return psprintf("%.*s%s%.*s", PIXL_PREFIX_LEN, secret, ellipsis,
					PIXL_HINT_TAIL, secret + PIXL_SECRET_LEN - PIXL_HINT_TAIL);
}

/*
 * SQL string continuation: a quote, whitespace holding a newline ("--"
 * comments count as whitespace), a quote.  The lexer joins the two literals, so
 * 'sk_live_' <newline> 'abc...' is one secret: the scan below steps over
 * such a joint wherever it falls.  Returns the index after the joint at i,
 * or i when there is none.
 */
static size_t
skip_joint(const char *s, size_t len, size_t i)
{
	size_t		j;
	bool		newline = false;

	if (i >= len || s[i] != '\'')
		return i;
	for (j = i + 1; j < len; j++)
	{
		char		c = s[j];

		if (c == '\n' || c == '\r')
			newline = true;
		else if (c == '-' && j + 1 < len && s[j + 1] == '-')
		{
			while (j < len && s[j] != '\n' && s[j] != '\r')
				j++;
			if (j == len)
				return i;
			newline = true;
		}
		else if (c != ' ' && c != '\t' && c != '\f' && c != '\v')
			break;
	}
	if (newline && j < len && s[j] == '\'')
		return j + 1;
	return i;
}

/*
 * Does a secret's prefix start at i (joints allowed inside it)?  If so,
 * *after is the index of the first character after the prefix (after any
 * joint there too).
 */
static bool
prefix_at(const char *s, size_t len, size_t i, size_t *after)
{
	const char *prefix = NULL;
	size_t		p = i;

	for (int k = 0; k < PIXL_PREFIX_LEN; k++)
	{
		if (k > 0)
			p = skip_joint(s, len, p);
		if (p >= len)
			return false;
		if (k == 3)
			prefix = s[p] == 'l' ? prefix_live : prefix_test;
		if (s[p] != (k < 3 ? prefix_live[k] : prefix[k]))
			return false;
		p++;
	}
	*after = skip_joint(s, len, p);
	return true;
}

/*
 * Where the next secret-shaped string starts at or after from: a prefix
 * followed by at least one base62 character, joints allowed.  Returns len
 * if none; else *body is where its base62 characters start.
 */
static size_t
next_secret(const char *s, size_t len, size_t from, size_t *body)
{
	for (size_t i = from; i + PIXL_PREFIX_LEN < len; i++)
	{
		size_t		after;

		if (s[i] != 's')
			continue;
		if (prefix_at(s, len, i, &after) && after < len && is_base62(s[after]))
		{
			*body = after;
			return i;
		}
	}
	return len;
}

bool
pixl_contains_secret(const char *s, size_t len)
{
	size_t		body;

	return s != NULL && next_secret(s, len, 0, &body) < len;
}

bool
pixl_redact_secrets(char *s, size_t len)
{
	size_t		body;
	size_t		at;

	if (s == NULL)
		return false;
	at = next_secret(s, len, 0, &body);
	if (at == len)
		return false;
	while (at < len)
	{
		size_t		next_body = len;	/* set when a next one is found */

		/*
		 * The next secret is found before this one's characters are masked:
		 * one may start at the end of them ("sk_live_Ask_live_B").
		 */
		size_t		next = next_secret(s, len, at + 1, &next_body);

		for (size_t i = body; i < len && is_base62(s[i]);)
		{
			s[i++] = '*';
			i = skip_joint(s, len, i);
		}
		at = next;
		body = next_body;
	}
	return true;
}

/*
 * Node dumps (debug_print_parse, _rewritten, _plan, and anything else that
 * logs nodeToString() output) print a constant's datum as its bytes:
 * ":constvalue 50 [ -56 0 0 0 115 107 95 ... ]", each byte a decimal
 * followed by one space.  Laid out for the log, the dump is broken into
 * lines: pretty-printed (debug_pretty_print, the default), a line break
 * and the line's indentation are inserted every 78 characters, even inside
 * a number; plain, a line break replaces a space.  The digits of the bytes
 * after a secret's prefix are overwritten with '*' in place, whatever the
 * datum's type.
 */

/* Skips pretty-printed line breaks (a newline and indent spaces) at p. */
static inline char *
dump_skip_breaks(char *p, int indent)
{
	while (indent > 0 && *p == '\n')
	{
		p++;
		for (int k = 0; k < indent && *p == ' '; k++)
			p++;
	}
	return p;
}

bool
pixl_redact_node_dump(char *s)
{
	static const char tag[] = ":constvalue";
	char	   *p = s;
	bool		changed = false;

	if (s == NULL)
		return false;
	while ((p = strstr(p, tag)) != NULL)
	{
		int			indent = 0;
		int			matched = 0;	/* characters of a prefix seen */
		const char *prefix = prefix_live;
		bool		masking = false;
		char	   *q = p;

		/* pretty-printed, the tag starts a line at the list's indentation */
		while (q > s && q[-1] == ' ')
			q--;
		if (q > s && q[-1] == '\n')
			indent = p - q;

		/* the length, then "[", one space (or line break) each side */
		p = dump_skip_breaks(p + sizeof(tag) - 1, indent);
		if (*p != ' ' && *p != '\n')
			continue;
		while (*p == ' ' || *p == '\n')
			p = dump_skip_breaks(p + 1, indent);
		while (*p >= '0' && *p <= '9')
			p = dump_skip_breaks(p + 1, indent);
		while (*p == ' ' || *p == '\n')
			p = dump_skip_breaks(p + 1, indent);
		if (*p != '[')
			continue;
		p++;
		for (;;)
		{
			char	   *num;
			int			v = 0;
			bool		neg = false;
			unsigned char c;

			p = dump_skip_breaks(p, indent);
			while (*p == ' ' || *p == '\n')
				p = dump_skip_breaks(p + 1, indent);
			num = p;
			if (*p == '-')
			{
				neg = true;
				p = dump_skip_breaks(p + 1, indent);
			}
			if (*p < '0' || *p > '9')
				break;			/* "]", or not a byte list after all */
			while (*p >= '0' && *p <= '9')
			{
				if (v < 1000)
					v = v * 10 + (*p - '0');
				p = dump_skip_breaks(p + 1, indent);
			}
			c = (unsigned char) (neg ? -v : v);

			if (masking)
			{
				if (is_base62((char) c))
				{
					for (char *d = num; d < p; d++)
						if (*d >= '0' && *d <= '9')
							*d = '*';
					changed = true;
					continue;
				}
				masking = false;
			}
			if (matched == 3)
				prefix = c == 'l' ? prefix_live : prefix_test;
			if (c == (unsigned char) (matched < 3 ? prefix_live[matched] : prefix[matched]))
			{
				if (++matched == PIXL_PREFIX_LEN)
				{
					masking = true;
					matched = 0;
				}
			}
			else
				matched = c == 's' ? 1 : 0;
		}
	}
	return changed;
}

PixlTokenMode
pixl_parse_mode(const char *mode)
{
	char	   *shown;

	if (strcmp(mode, "live") == 0)
		return PIXL_MODE_LIVE;
	if (strcmp(mode, "test") == 0)
		return PIXL_MODE_TEST;

	/* clipped at a character, and never a secret (nor the statement) */
	shown = pstrdup(mode);
	shown[pg_mbcliplen(shown, strlen(shown), Min(strlen(shown), 60))] = '\0';
	pixl_redact_secrets(shown, strlen(shown));
	ereport(ERROR,
			(errcode(ERRCODE_PIXL_UNKNOWN_MODE),
			 errmsg("unknown token mode \"%s\"", shown),
			 errhidestmt(true),
			 errhint("Valid modes are live and test.")));
	pg_unreachable();
}

const char *
pixl_mode_name(PixlTokenMode mode)
{
	return mode == PIXL_MODE_LIVE ? "live" : "test";
}
