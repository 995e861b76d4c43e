-- Token format: SHA-256 and CRC-32 known answers, generated secrets and ids,
-- and what the format check alone says of a presented string.
\i test/helpers/setup.sql

-- SHA-256: known answers (FIPS 180-2 "abc", the empty string) and agreement
-- with pgcrypto on a few more inputs.
SELECT encode(pixl_secret_hash('abc'), 'hex') AS sha256_abc;
SELECT encode(pixl_secret_hash(''), 'hex') AS sha256_empty;
SELECT left(x, 20) AS input, length(x) AS chars,
	   pixl_secret_hash(x) = digest(x, 'sha256') AS same_as_pgcrypto,
	   length(pixl_secret_hash(x)) AS bytes
  FROM (VALUES ('abc'), (''), ('sk_live_0000000000000000000000000000000000000'),
			   (repeat('pixl', 1000)), ('é ü')) v(x)
 ORDER BY length(x), x COLLATE "C";
SELECT pixl_secret_hash(NULL) IS NULL AS strict_null;
-- FIPS 180-4 examples of two blocks (448 and 896 bits) and a million 'a'
-- (SHA-256 known answers of NIST's examples), through one backend's context
SELECT encode(pixl_secret_hash('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq'), 'hex') AS sha256_448;
SELECT encode(pixl_secret_hash('abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu'), 'hex') AS sha256_896;
SELECT encode(pixl_secret_hash(repeat('a', 1000000)), 'hex') AS sha256_million_a;
-- every length from 0 to 300 (padding into one, two or more blocks) and
-- random secret-shaped strings, against pgcrypto and the built-in sha256()
SELECT count(*) AS inputs,
	   count(*) FILTER (WHERE pixl_secret_hash(x) = digest(x, 'sha256')) AS same_as_pgcrypto,
	   count(*) FILTER (WHERE pixl_secret_hash(x) = sha256(convert_to(x, 'UTF8'))) AS same_as_builtin
  FROM (SELECT coalesce(string_agg(chr(32 + (n * 7 + i * 13 + (random() * 90)::int) % 95), ''
									 ORDER BY i), '') AS x
		  FROM generate_series(0, 300) AS n
			   LEFT JOIN LATERAL generate_series(1, n) AS i ON true
		 GROUP BY n
		UNION ALL
		SELECT s.token FROM generate_series(1, 200), LATERAL pixl_new_secret('live') s) v;
-- a new secret's stored hash is the SHA-256 of the secret
SELECT count(*) FILTER (WHERE s.secret_hash = sha256(convert_to(s.token, 'UTF8'))) AS hash_ok
  FROM generate_series(1, 50), LATERAL pixl_new_secret('test') s;

-- CRC-32 (ISO-HDLC) of '123456789' is 0xCBF43926 = 3421780262; computed
-- here independently as six base62 digits (0-9A-Za-z, most significant
-- first) and compared with pixl_token_checksum.
SELECT x'CBF43926'::bigint AS crc32_check_value;
WITH RECURSIVE alphabet(a) AS (
	SELECT '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'::text
), digits(n, s) AS (
	SELECT 3421780262::bigint, ''::text
	UNION ALL
	SELECT n / 62, substr(a, (n % 62)::int + 1, 1) || s FROM digits, alphabet WHERE n > 0
)
SELECT lpad(s, 6, '0') AS expected, pixl_token_checksum('123456789') AS got,
	   lpad(s, 6, '0') = pixl_token_checksum('123456789') AS same
  FROM digits WHERE n = 0;
-- CRC-32 of the empty string is 0: six zeros
SELECT pixl_token_checksum('') AS crc_empty;

-- A generated secret: prefix by mode, 32 random base62 characters, then the
-- checksum of everything before it.
SELECT token AS live_secret, secret_hash AS live_hash, hint AS live_hint
  FROM pixl_new_secret('live') \gset
SELECT token AS test_secret FROM pixl_new_secret('test') \gset
SELECT :'live_secret' ~ '^sk_live_[0-9A-Za-z]{38}$' AS live_shape,
	   length(:'live_secret') AS live_len,
	   :'test_secret' ~ '^sk_test_[0-9A-Za-z]{38}$' AS test_shape,
	   length(:'test_secret') AS test_len;
SELECT right(:'live_secret', 6) = pixl_token_checksum(left(:'live_secret', 40)) AS live_checksum,
	   right(:'test_secret', 6) = pixl_token_checksum(left(:'test_secret', 40)) AS test_checksum;
SELECT pixl_token_format(:'live_secret') AS live_format,
	   pixl_token_format(:'test_secret') AS test_format;
-- pixl_new_secret returns the hash of the secret it returns, and its hint
SELECT :'live_hash'::bytea = digest(:'live_secret', 'sha256') AS hash_matches,
	   :'live_hint' = left(:'live_secret', 8)
		|| CASE WHEN getdatabaseencoding() = 'UTF8' THEN U&'\2026' ELSE '...' END
		|| right(:'live_secret', 4) AS hint_matches;

-- Every one-character change of a valid secret is malformed: the prefix no
-- longer matches, a character leaves the alphabet, or the checksum fails.
WITH s(tok) AS (SELECT :'live_secret'::text),
alpha(a) AS (SELECT '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'::text),
m(pos, how, tok) AS (
	-- another base62 character at each position
	SELECT i, 'base62', overlay(tok PLACING substr(a, (strpos(a, substr(tok, i, 1)) % 62) + 1, 1) FROM i FOR 1)
	  FROM s, alpha, generate_series(1, 46) i
	UNION ALL
	-- a character outside the alphabet at each position
	SELECT i, 'other', overlay(tok PLACING '-' FROM i FOR 1)
	  FROM s, generate_series(1, 46) i
	UNION ALL
	-- one character dropped at each position
	SELECT i, 'drop', overlay(tok PLACING '' FROM i FOR 1)
	  FROM s, generate_series(1, 46) i
	UNION ALL
	-- one character inserted at each position
	SELECT i, 'insert', overlay(tok PLACING 'a' FROM i FOR 0)
	  FROM s, generate_series(1, 47) i
)
SELECT how, count(*) AS mutations, count(*) FILTER (WHERE m.tok <> s.tok) AS changed,
	   count(*) FILTER (WHERE pixl_token_format(m.tok) = 'malformed') AS malformed
  FROM m, s GROUP BY how ORDER BY how;

-- The checksum covers the prefix: swapping live and test is malformed.
SELECT pixl_token_format('sk_test_' || substr(:'live_secret', 9)) AS live_as_test,
	   pixl_token_format('sk_live_' || substr(:'test_secret', 9)) AS test_as_live;

-- Other malformed shapes: spaces, case, truncation, other prefixes.
SELECT label, pixl_token_format(t) AS verdict
  FROM (VALUES
	('leading space', ' ' || :'live_secret'),
	('trailing space', :'live_secret' || ' '),
	('trailing newline', :'live_secret' || E'\n'),
	('upper-case prefix', 'SK_LIVE_' || substr(:'live_secret', 9)),
	('truncated by one', left(:'live_secret', 45)),
	('without checksum', left(:'live_secret', 40)),
	('prefix only', 'sk_live_'),
	('guide example', 'sk_live_1234567890abcdefghijklmnopqrstuvwxyz'),
	('bearer header', 'Bearer ' || :'live_secret'),
	('pk prefix', 'pk_live_' || substr(:'live_secret', 9)),
	('non-ascii', overlay(:'live_secret' PLACING 'é' FROM 20 FOR 1))
  ) v(label, t);

-- A token id is recognised as such, never as a secret; nothing is missing.
SELECT pixl_new_token_id() AS token_id \gset
SELECT :'token_id' ~ '^tok_[0-9A-Za-z]{16}$' AS id_shape,
	   pixl_token_format(:'token_id') AS id_format,
	   pixl_token_format('tok_') AS bare_id_prefix,
	   pixl_token_format(NULL) AS null_token,
	   pixl_token_format('') AS empty_token;

-- Randomness sanity: 1000 secrets and ids are distinct, and the 32 000
-- random characters use the whole alphabet about evenly (each character is
-- expected about 516 times; the bounds are over 4.9 standard deviations).
CREATE TEMP TABLE secrets AS
	SELECT s.*, pixl_new_token_id() AS token_id
	  FROM generate_series(1, 1000) i,
		   LATERAL pixl_new_secret(CASE WHEN i % 2 = 0 THEN 'live' ELSE 'test' END) s;
SELECT count(*) AS secrets, count(DISTINCT token) AS distinct_secrets,
	   count(DISTINCT secret_hash) AS distinct_hashes,
	   count(DISTINCT token_id) AS distinct_ids,
	   count(*) FILTER (WHERE pixl_token_format(token) = 'ok') AS well_formed,
	   count(*) FILTER (WHERE secret_hash = digest(token, 'sha256')) AS hashes_match,
	   count(*) FILTER (WHERE token LIKE 'sk_live_%') AS live,
	   count(*) FILTER (WHERE token LIKE 'sk_test_%') AS test,
	   count(*) FILTER (WHERE token_id ~ '^tok_[0-9A-Za-z]{16}$') AS ids_well_formed
  FROM secrets;
SELECT count(*) AS distinct_chars, min(n) > 400 AS min_ok, max(n) < 640 AS max_ok
  FROM (SELECT c, count(*) AS n
		  FROM secrets, regexp_split_to_table(substr(token, 9, 32), '') c
		 GROUP BY c) x;
DROP TABLE secrets;

-- Modes other than live and test are rejected.
\x on
SELECT * FROM pg_temp.err($$SELECT pixl_new_secret('LIVE')$$);
SELECT * FROM pg_temp.err($$SELECT pixl_new_secret(NULL)$$);
\x off
