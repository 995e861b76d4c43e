/*-------------------------------------------------------------------------
 *
 * token_format.h
 *		The shape of pixltoken secrets and token ids, without any table.
 *
 * A secret is
 *
 *		sk_live_ | 32 base62 random characters | 6 base62 checksum characters
 *
 * (or sk_test_), 46 characters in all.  The random part carries 190 bits
 * from pg_strong_random(); the checksum is the CRC-32 (ISO-HDLC, as zlib and
 * GitHub's tokens use) of everything before it, in base62, most significant
 * digit first.  A token id is "tok_" and 16 base62 characters.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIXL_TOKEN_FORMAT_H
#define PIXL_TOKEN_FORMAT_H

#include "postgres.h"

#define PIXL_PREFIX_LEN			8	/* "sk_live_" / "sk_test_" */
#define PIXL_RANDOM_LEN			32
#define PIXL_CHECKSUM_LEN		6
#define PIXL_SECRET_LEN			(PIXL_PREFIX_LEN + PIXL_RANDOM_LEN + PIXL_CHECKSUM_LEN)
#define PIXL_TOKEN_ID_PREFIX	"tok_"
#define PIXL_TOKEN_ID_LEN		20	/* "tok_" + 16 base62 */
#define PIXL_HASH_LEN			32	/* SHA-256 */
#define PIXL_HINT_TAIL			4	/* characters shown in the display hint */

typedef enum PixlTokenMode
{
	PIXL_MODE_LIVE,
	PIXL_MODE_TEST
} PixlTokenMode;

/* What the format check alone can say about a presented token. */
typedef enum PixlFormatVerdict
{
	PIXL_FORMAT_OK,
	PIXL_FORMAT_MISSING,		/* NULL or empty */
	PIXL_FORMAT_MALFORMED,		/* prefix, length, alphabet or checksum */
	PIXL_FORMAT_TOKEN_ID		/* a token id, not a secret */
} PixlFormatVerdict;

extern PixlFormatVerdict pixl_check_format(const char *token, size_t len);

/*
 * The same in two steps: pixl_check_shape() checks everything but the
 * checksum (PIXL_FORMAT_OK: prefix, length and alphabet are right), and
 * pixl_checksum_ok() the checksum of a secret that has the shape.
 */
extern PixlFormatVerdict pixl_check_shape(const char *token, size_t len);
extern bool pixl_checksum_ok(const char *token);

/* Fills buf[PIXL_SECRET_LEN] with a new secret; no terminator. */
extern void pixl_generate_secret(PixlTokenMode mode, char *buf);

/* Fills buf[PIXL_TOKEN_ID_LEN] with a new token id; no terminator. */
extern void pixl_generate_token_id(char *buf);

/* Is id[0 .. PIXL_TOKEN_ID_LEN - 1] a token id ("tok_" + 16 base62)? */
extern bool pixl_is_token_id(const char *id);

/* CRC-32 of data, as six base62 digits into out[PIXL_CHECKSUM_LEN]. */
extern void pixl_checksum(const char *data, size_t len, char *out);

/* SHA-256 of the secret into out[PIXL_HASH_LEN]; errors only on OOM or a libcrypto failure. */
extern void pixl_hash_secret(const char *token, size_t len, uint8 *out);

/* Sets the SHA-256 up ahead (the postmaster, from _PG_init); never errors. */
extern void pixl_hash_preload(void);

/* "sk_live_…wxyz" as a palloc'd C string. */
extern char *pixl_secret_hint(const char *secret);

/*
 * Secret shapes in arbitrary text (messages, log lines, values that are
 * about to be echoed): "sk_live_" or "sk_test_" followed by base62
 * characters.  pixl_contains_secret() says whether there is one;
 * pixl_redact_secrets() overwrites the base62 characters after each such
 * prefix with '*' in place (same length, no allocation: safe in an
 * emit_log_hook) and says whether it changed anything.
 */
extern bool pixl_contains_secret(const char *s, size_t len);
extern bool pixl_redact_secrets(char *s, size_t len);

/*
 * Both see through SQL string continuation (quote, whitespace with a
 * newline, quote), which the lexer joins into one literal.
 * pixl_redact_node_dump() masks, in place, the bytes of a secret in the
 * ":constvalue N [ ... ]" byte lists of a node dump (debug_print_plan).
 */
extern bool pixl_redact_node_dump(char *s);

extern PixlTokenMode pixl_parse_mode(const char *mode);
extern const char *pixl_mode_name(PixlTokenMode mode);

#endif							/* PIXL_TOKEN_FORMAT_H */
