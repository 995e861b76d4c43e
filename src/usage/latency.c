/*-------------------------------------------------------------------------
 *
 * latency.c
 *		pixl_latency: response-time histograms that merge without loss.
 *
 * A histogram counts response times in base-2 exponential buckets, 8 per
 * doubling: bucket 0 is [0, 1/16 ms), bucket i (1..248) is
 * [2^(-4 + (i-1)/8), 2^(-4 + i/8)) ms, the last ending at 2^27 ms (37.3
 * hours; a reported response is at most a day).  Counts are exact
 * integers, so histograms merge by adding counts: a day's hourly
 * histograms merged are exactly the histogram of the day's responses, and
 * a 30-day quantile is as exact as an hour's.
 *
 * Quantiles have exact rank and bounded value error.  The q-quantile is
 * taken at the rank percentile_disc takes (max(1, ceil(q * n)) of the n
 * responses in order), so it lies in the bucket of the very response
 * percentile_disc(q) returns, and is reported as that bucket's geometric
 * midpoint (lower * 2^(1/16)); for bucket 0, 1/32 ms.  Error bound: for a
 * true value v >= 1/16 ms the reported value r has
 * 2^(-1/16) < r / v <= 2^(1/16), i.e. r is within 4.43 % of v (above by at
 * most 4.43 %, below by at most 4.24 %); for v < 1/16 ms, |r - v| <=
 * 1/32 ms.  No error comes from merging.
 *
 * Storage (varlena, sparse): a header with the number of buckets that
 * have counts, then their int64 counts, then their uint16 bucket numbers in
 * increasing order: 8 + 10 bytes per non-empty bucket (an hour of one
 * endpoint typically has 10 to 40).  Text form: {lower_ms: count, ...},
 * each bucket named by its lower bound as pixl_latency_buckets lists it
 * (6 significant digits suffice: neighbouring bounds differ by 9 %).
 * Input (text and binary) is checked: bounds of buckets, increasing,
 * counts positive, their sum within bigint (PX048; response times outside
 * the buckets and sums past bigint: PX049; a quantile outside [0, 1]:
 * PX052).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>
#include <math.h>

#include "catalog/pg_type.h"
#include "common/int.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "common/errcodes.h"
#include "usage/latency.h"

typedef struct PixlLatency
{
	int32		vl_len_;		/* varlena header */
	int32		nentries;		/* buckets with a count */
	/* int64 counts[nentries], then uint16 buckets[nentries] */
} PixlLatency;

#define LAT_COUNTS(h)	((int64 *) ((char *) (h) + sizeof(PixlLatency)))
#define LAT_BUCKETS(h)	((uint16 *) (LAT_COUNTS(h) + (h)->nentries))
#define LAT_SIZE(n)		(sizeof(PixlLatency) + (n) * (sizeof(int64) + sizeof(uint16)))

#define DatumGetPixlLatency(d)	((PixlLatency *) PG_DETOAST_DATUM(d))
#define PG_GETARG_PIXL_LATENCY(n)	DatumGetPixlLatency(PG_GETARG_DATUM(n))

/* 2^(j/8), j = 0..7: the bounds within a doubling */
static const double eighths[8] = {
	1.0,
	1.0905077326652577,
	1.189207115002721,
	1.2968395546510096,
	1.4142135623730951,
	1.5422108254079407,
	1.681792830507429,
	1.8340080864093424,
};

#define SIXTEENTH_ROOT_OF_2		1.0442737824274138	/* 2^(1/16) */

/* The aggregates' state: dense counts. */
typedef struct PixlLatencyState
{
	bool		any;			/* a non-NULL input was seen */
	int64		total;			/* the sum of counts */
	int64		counts[PIXL_LATENCY_BUCKETS];
} PixlLatencyState;

PG_FUNCTION_INFO_V1(pixl_latency_in);
PG_FUNCTION_INFO_V1(pixl_latency_out);
PG_FUNCTION_INFO_V1(pixl_latency_recv);
PG_FUNCTION_INFO_V1(pixl_latency_send);
PG_FUNCTION_INFO_V1(pixl_latency_add);
PG_FUNCTION_INFO_V1(pixl_latency_add_ms);
PG_FUNCTION_INFO_V1(pixl_latency_count);
PG_FUNCTION_INFO_V1(pixl_latency_quantile);
PG_FUNCTION_INFO_V1(pixl_latency_quantiles);
PG_FUNCTION_INFO_V1(pixl_latency_buckets);
PG_FUNCTION_INFO_V1(pixl_latency_merge_trans);
PG_FUNCTION_INFO_V1(pixl_latency_of_trans);
PG_FUNCTION_INFO_V1(pixl_latency_final);
PG_FUNCTION_INFO_V1(pixl_latency_combine);
PG_FUNCTION_INFO_V1(pixl_latency_serialize);
PG_FUNCTION_INFO_V1(pixl_latency_deserialize);

/* ---- buckets ---- */

static double
bucket_lower(int i)
{
	if (i <= 0)
		return 0.0;
	return ldexp(eighths[(i - 1) % 8], (i - 1) / 8 - 4);
}

static double
bucket_upper(int i)
{
	return i >= PIXL_LATENCY_BUCKETS - 1 ? PIXL_LATENCY_MAX_MS : bucket_lower(i + 1);
}

/* What a quantile in bucket i reports (see the top). */
static double
bucket_value(int i)
{
	if (i == 0)
		return 1.0 / 32.0;
	return bucket_lower(i) * SIXTEENTH_ROOT_OF_2;
}

static void
check_ms(double ms)
{
	if (!(ms >= 0.0 && ms < PIXL_LATENCY_MAX_MS))
		ereport(ERROR,
				(errcode(ERRCODE_PIXL_LATENCY_OUT_OF_RANGE),
				 errmsg("response time %g ms is outside the range of pixl_latency", ms),
				 errhint("A response time is a finite number of milliseconds, 0 or more and below 134217728 (2^27 ms, 37.3 hours).")));
}

int
pixl_latency_bucket(double ms)
{
	int			e;
	double		m;
	int			sub = 0;

	/* callers check the range; never an index out of bounds regardless */
	if (!(ms >= 0.0625))
		return 0;
	if (ms >= PIXL_LATENCY_MAX_MS)
		return PIXL_LATENCY_BUCKETS - 1;
	m = frexp(ms, &e) * 2.0;	/* ms = m * 2^(e-1), 1 <= m < 2 */
	while (sub < 7 && m >= eighths[sub + 1])
		sub++;
	return 1 + (e - 1 + 4) * 8 + sub;
}

static void
count_overflow(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_PIXL_LATENCY_OUT_OF_RANGE),
			 errmsg("pixl_latency count out of range"),
			 errdetail("A histogram counts at most 9223372036854775807 response times in all.")));
}

static void
dense_add(int64 *dense, int64 *total, int bucket, int64 count)
{
	if (pg_add_s64_overflow(dense[bucket], count, &dense[bucket]) ||
		pg_add_s64_overflow(*total, count, total))
		count_overflow();
}

/* Adds h to dense (whose counts sum to *total). */
static void
dense_add_histogram(int64 *dense, int64 *total, const PixlLatency *h)
{
	const int64 *counts = LAT_COUNTS(h);
	const uint16 *buckets = LAT_BUCKETS(h);

	for (int k = 0; k < h->nentries; k++)
		dense_add(dense, total, buckets[k], counts[k]);
}

static PixlLatency *
histogram_from_dense(const int64 *dense)
{
	int			n = 0;
	int			k = 0;
	PixlLatency *h;

	for (int i = 0; i < PIXL_LATENCY_BUCKETS; i++)
		if (dense[i] != 0)
			n++;
	h = palloc0(LAT_SIZE(n));
	SET_VARSIZE(h, LAT_SIZE(n));
	h->nentries = n;
	for (int i = 0; i < PIXL_LATENCY_BUCKETS; i++)
	{
		if (dense[i] == 0)
			continue;
		LAT_COUNTS(h)[k] = dense[i];
		LAT_BUCKETS(h)[k] = (uint16) i;
		k++;
	}
	return h;
}

static int64
histogram_total(const PixlLatency *h)
{
	int64		total = 0;

	for (int k = 0; k < h->nentries; k++)
		if (pg_add_s64_overflow(total, LAT_COUNTS(h)[k], &total))
			count_overflow();
	return total;
}

Datum
pixl_latency_from_counts(const uint32 *counts, int64 responses, bool *isnull)
{
	int64		dense[PIXL_LATENCY_BUCKETS];
	bool		any = false;

	for (int i = 0; i < PIXL_LATENCY_BUCKETS; i++)
	{
		dense[i] = counts[i];
		any |= counts[i] != 0;
	}
	*isnull = !any && responses == 0;
	return *isnull ? (Datum) 0 : PointerGetDatum(histogram_from_dense(dense));
}

/* ---- text and binary forms ---- */

static void
append_text(StringInfo buf, const uint16 *buckets, const int64 *counts, int n)
{
	appendStringInfoChar(buf, '{');
	for (int k = 0; k < n; k++)
		appendStringInfo(buf, "%s%.6g: " INT64_FORMAT, k > 0 ? ", " : "",
						 bucket_lower(buckets[k]), counts[k]);
	appendStringInfoChar(buf, '}');
}

char *
pixl_latency_counts_text(const uint32 *counts)
{
	StringInfoData buf;
	uint16		buckets[PIXL_LATENCY_BUCKETS];
	int64		c[PIXL_LATENCY_BUCKETS];
	int			n = 0;

	for (int i = 0; i < PIXL_LATENCY_BUCKETS; i++)
	{
		if (counts[i] == 0)
			continue;
		buckets[n] = (uint16) i;
		c[n++] = counts[i];
	}
	initStringInfo(&buf);
	append_text(&buf, buckets, c, n);
	return buf.data;
}

static void
bad_text(const char *input, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_PIXL_INVALID_LATENCY),
			 errmsg("invalid input syntax for type pixl_latency: \"%s\"", input),
			 errdetail("%s", detail),
			 errhint("A histogram is written {lower_ms: count, ...}: buckets named by their lower bounds (0, then 0.0625 * 2^(k/8) ms) in increasing order, as pixl_latency_buckets lists them, each with a positive count.")));
}

/* The bucket whose lower bound is x (to 6 significant digits), or -1. */
static int
bucket_named(double x)
{
	int			i;

	if (x == 0.0)
		return 0;
	if (!(x > 0.0 && x < PIXL_LATENCY_MAX_MS))
		return -1;
	i = pixl_latency_bucket(x);
	for (int c = i; c <= i + 1 && c < PIXL_LATENCY_BUCKETS; c++)
		if (c > 0 && fabs(x / bucket_lower(c) - 1.0) <= 1e-5)
			return c;
	return -1;
}

Datum
pixl_latency_in(PG_FUNCTION_ARGS)
{
	char	   *input = PG_GETARG_CSTRING(0);
	const char *p = input;
	int64		dense[PIXL_LATENCY_BUCKETS] = {0};
	int64		total = 0;
	int			last = -1;

	while (isspace((unsigned char) *p))
		p++;
	if (*p++ != '{')
		bad_text(input, "It does not start with \"{\".");
	while (isspace((unsigned char) *p))
		p++;
	if (*p == '}')
		p++;
	else
	{
		for (;;)
		{
			char	   *end;
			double		x;
			long long	count;
			int			b;

			errno = 0;
			x = strtod(p, &end);
			if (end == p || errno != 0)
				bad_text(input, "A bucket's lower bound is not a number.");
			b = bucket_named(x);
			if (b < 0)
				bad_text(input, psprintf("%s is not the lower bound of a bucket.",
										 pnstrdup(p, end - p)));
			if (b <= last)
				bad_text(input, "The buckets are not in increasing order, or one is named twice.");
			last = b;
			p = end;
			while (isspace((unsigned char) *p))
				p++;
			if (*p++ != ':')
				bad_text(input, "A bucket's lower bound is not followed by \":\".");
			while (isspace((unsigned char) *p))
				p++;
			if (!isdigit((unsigned char) *p))
				bad_text(input, "A count is not a positive integer.");
			errno = 0;
			count = strtoll(p, &end, 10);
			if (errno == ERANGE)
				bad_text(input, "A count is above 9223372036854775807.");
			if (count <= 0)
				bad_text(input, "A count is not a positive integer.");
			p = end;
			dense_add(dense, &total, b, (int64) count);
			while (isspace((unsigned char) *p))
				p++;
			if (*p == '}')
			{
				p++;
				break;
			}
			if (*p++ != ',')
				bad_text(input, "Buckets are not separated by \",\" or the list does not end with \"}\".");
			while (isspace((unsigned char) *p))
				p++;
		}
	}
	while (isspace((unsigned char) *p))
		p++;
	if (*p != '\0')
		bad_text(input, "Something follows the closing \"}\".");
	PG_RETURN_POINTER(histogram_from_dense(dense));
}

Datum
pixl_latency_out(PG_FUNCTION_ARGS)
{
	PixlLatency *h = PG_GETARG_PIXL_LATENCY(0);
	StringInfoData buf;

	initStringInfo(&buf);
	append_text(&buf, LAT_BUCKETS(h), LAT_COUNTS(h), h->nentries);
	PG_RETURN_CSTRING(buf.data);
}

static void
bad_binary(const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_PIXL_INVALID_LATENCY),
			 errmsg("invalid binary value of type pixl_latency"),
			 errdetail("%s", detail)));
}

/* Binary: int32 n, then n times (int16 bucket, int64 count), increasing. */
static void
send_counts(StringInfo buf, const uint16 *buckets, const int64 *counts, int n)
{
	pq_sendint32(buf, n);
	for (int k = 0; k < n; k++)
	{
		pq_sendint16(buf, buckets[k]);
		pq_sendint64(buf, counts[k]);
	}
}

static int64
recv_counts(StringInfo buf, int64 *dense)
{
	int32		n = pq_getmsgint(buf, 4);
	int64		total = 0;
	int			last = -1;

	if (n < 0 || n > PIXL_LATENCY_BUCKETS)
		bad_binary("The number of buckets is out of range.");
	for (int k = 0; k < n; k++)
	{
		int			b = (int) pq_getmsgint(buf, 2);
		int64		count = pq_getmsgint64(buf);

		if (b >= PIXL_LATENCY_BUCKETS || b <= last)
			bad_binary("The buckets are not bucket numbers in increasing order.");
		if (count <= 0)
			bad_binary("A count is not positive.");
		last = b;
		dense_add(dense, &total, b, count);
	}
	return total;
}

Datum
pixl_latency_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);
	int64		dense[PIXL_LATENCY_BUCKETS] = {0};

	recv_counts(buf, dense);
	PG_RETURN_POINTER(histogram_from_dense(dense));
}

Datum
pixl_latency_send(PG_FUNCTION_ARGS)
{
	PixlLatency *h = PG_GETARG_PIXL_LATENCY(0);
	StringInfoData buf;

	pq_begintypsend(&buf);
	send_counts(&buf, LAT_BUCKETS(h), LAT_COUNTS(h), h->nentries);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

/* ---- functions ---- */

/* pixl_latency_add(a, b): NULL is no histogram; NULL if both are. */
Datum
pixl_latency_add(PG_FUNCTION_ARGS)
{
	int64		dense[PIXL_LATENCY_BUCKETS] = {0};
	int64		total = 0;

	if (PG_ARGISNULL(0) && PG_ARGISNULL(1))
		PG_RETURN_NULL();
	if (PG_ARGISNULL(1))
		PG_RETURN_DATUM(PG_GETARG_DATUM(0));
	if (PG_ARGISNULL(0))
		PG_RETURN_DATUM(PG_GETARG_DATUM(1));
	dense_add_histogram(dense, &total, PG_GETARG_PIXL_LATENCY(0));
	dense_add_histogram(dense, &total, PG_GETARG_PIXL_LATENCY(1));
	PG_RETURN_POINTER(histogram_from_dense(dense));
}

/* pixl_latency_add(h, ms): h (NULL: none) with one response time more. */
Datum
pixl_latency_add_ms(PG_FUNCTION_ARGS)
{
	int64		dense[PIXL_LATENCY_BUCKETS] = {0};
	int64		total = 0;
	double		ms;

	if (PG_ARGISNULL(1))
	{
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();
		PG_RETURN_DATUM(PG_GETARG_DATUM(0));
	}
	ms = PG_GETARG_FLOAT8(1);
	check_ms(ms);
	if (!PG_ARGISNULL(0))
		dense_add_histogram(dense, &total, PG_GETARG_PIXL_LATENCY(0));
	dense_add(dense, &total, pixl_latency_bucket(ms), 1);
	PG_RETURN_POINTER(histogram_from_dense(dense));
}

Datum
pixl_latency_count(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(histogram_total(PG_GETARG_PIXL_LATENCY(0)));
}

static void
check_fraction(double q)
{
	if (!(q >= 0.0 && q <= 1.0))
		ereport(ERROR,
				(errcode(ERRCODE_PIXL_INVALID_QUANTILE),
				 errmsg("invalid quantile %g", q),
				 errhint("A quantile is a fraction from 0 to 1, such as 0.95 for the 95th percentile.")));
}

/* The q-quantile of h (total > 0), as the top of the file says. */
static double
histogram_quantile(const PixlLatency *h, int64 total, double q)
{
	int64		rank = (int64) ceil(q * (double) total);	/* as percentile_disc */
	int64		seen = 0;

	if (rank < 1)
		rank = 1;
	for (int k = 0; k < h->nentries; k++)
	{
		seen += LAT_COUNTS(h)[k];
		if (seen >= rank)
			return bucket_value(LAT_BUCKETS(h)[k]);
	}
	return bucket_value(LAT_BUCKETS(h)[h->nentries - 1]);
}

Datum
pixl_latency_quantile(PG_FUNCTION_ARGS)
{
	PixlLatency *h = PG_GETARG_PIXL_LATENCY(0);
	double		q = PG_GETARG_FLOAT8(1);
	int64		total;

	check_fraction(q);
	total = histogram_total(h);
	if (total == 0)
		PG_RETURN_NULL();
	PG_RETURN_FLOAT8(histogram_quantile(h, total, q));
}

/* One quantile per fraction (NULL for a NULL fraction); NULL if empty. */
Datum
pixl_latency_quantiles(PG_FUNCTION_ARGS)
{
	PixlLatency *h = PG_GETARG_PIXL_LATENCY(0);
	ArrayType  *fractions = PG_GETARG_ARRAYTYPE_P(1);
	Datum	   *qs;
	bool	   *nulls;
	int			n;
	int64		total;
	int			dims[1];
	int			lbs[1];

	if (ARR_NDIM(fractions) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_PIXL_INVALID_QUANTILE),
				 errmsg("quantile fractions must be a one-dimensional array")));
	deconstruct_array(fractions, FLOAT8OID, sizeof(float8), FLOAT8PASSBYVAL,
					  TYPALIGN_DOUBLE, &qs, &nulls, &n);
	for (int k = 0; k < n; k++)
		if (!nulls[k])
			check_fraction(DatumGetFloat8(qs[k]));
	total = histogram_total(h);
	if (total == 0)
		PG_RETURN_NULL();
	for (int k = 0; k < n; k++)
		if (!nulls[k])
			qs[k] = Float8GetDatum(histogram_quantile(h, total, DatumGetFloat8(qs[k])));
	dims[0] = n;
	lbs[0] = 1;
	PG_RETURN_ARRAYTYPE_P(construct_md_array(qs, nulls, 1, dims, lbs, FLOAT8OID,
											 sizeof(float8), FLOAT8PASSBYVAL,
											 TYPALIGN_DOUBLE));
}

/* (lower_ms, upper_ms, count) of each bucket with a count, increasing. */
Datum
pixl_latency_buckets(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	PixlLatency *h = PG_GETARG_PIXL_LATENCY(0);

	InitMaterializedSRF(fcinfo, 0);
	for (int k = 0; k < h->nentries; k++)
	{
		Datum		values[3];
		bool		nulls[3] = {false, false, false};
		int			b = LAT_BUCKETS(h)[k];

		values[0] = Float8GetDatum(bucket_lower(b));
		values[1] = Float8GetDatum(bucket_upper(b));
		values[2] = Int64GetDatum(LAT_COUNTS(h)[k]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* ---- aggregates: pixl_latency_merge(pixl_latency), pixl_latency_of(ms) ---- */

static PixlLatencyState *
state_get(FunctionCallInfo fcinfo, int argno)
{
	MemoryContext aggcxt;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		elog(ERROR, "pixl_latency aggregate function called in non-aggregate context");
	if (PG_ARGISNULL(argno))
		return (PixlLatencyState *) MemoryContextAllocZero(aggcxt, sizeof(PixlLatencyState));
	return (PixlLatencyState *) PG_GETARG_POINTER(argno);
}

Datum
pixl_latency_merge_trans(PG_FUNCTION_ARGS)
{
	PixlLatencyState *st;

	if (PG_ARGISNULL(1))
	{
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();
		PG_RETURN_POINTER(PG_GETARG_POINTER(0));
	}
	st = state_get(fcinfo, 0);
	dense_add_histogram(st->counts, &st->total, PG_GETARG_PIXL_LATENCY(1));
	st->any = true;
	PG_RETURN_POINTER(st);
}

Datum
pixl_latency_of_trans(PG_FUNCTION_ARGS)
{
	PixlLatencyState *st;
	double		ms;
	int			b;

	if (PG_ARGISNULL(1))
	{
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();
		PG_RETURN_POINTER(PG_GETARG_POINTER(0));
	}
	ms = PG_GETARG_FLOAT8(1);
	check_ms(ms);
	st = state_get(fcinfo, 0);
	b = pixl_latency_bucket(ms);
	dense_add(st->counts, &st->total, b, 1);
	st->any = true;
	PG_RETURN_POINTER(st);
}

Datum
pixl_latency_final(PG_FUNCTION_ARGS)
{
	PixlLatencyState *st;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	st = (PixlLatencyState *) PG_GETARG_POINTER(0);
	if (!st->any)
		PG_RETURN_NULL();
	PG_RETURN_POINTER(histogram_from_dense(st->counts));
}

Datum
pixl_latency_combine(PG_FUNCTION_ARGS)
{
	PixlLatencyState *st;
	PixlLatencyState *other;

	if (PG_ARGISNULL(1))
	{
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();
		PG_RETURN_POINTER(PG_GETARG_POINTER(0));
	}
	other = (PixlLatencyState *) PG_GETARG_POINTER(1);
	st = state_get(fcinfo, 0);
	for (int i = 0; i < PIXL_LATENCY_BUCKETS; i++)
		if (other->counts[i] != 0)
			dense_add(st->counts, &st->total, i, other->counts[i]);
	st->any |= other->any;
	PG_RETURN_POINTER(st);
}

/* bytea: the flag any, then the binary form of the counts */
Datum
pixl_latency_serialize(PG_FUNCTION_ARGS)
{
	PixlLatencyState *st;
	StringInfoData buf;
	uint16		buckets[PIXL_LATENCY_BUCKETS];
	int64		counts[PIXL_LATENCY_BUCKETS];
	int			n = 0;

	if (!AggCheckCallContext(fcinfo, NULL))
		elog(ERROR, "pixl_latency_serialize called in non-aggregate context");
	st = (PixlLatencyState *) PG_GETARG_POINTER(0);
	for (int i = 0; i < PIXL_LATENCY_BUCKETS; i++)
	{
		if (st->counts[i] == 0)
			continue;
		buckets[n] = (uint16) i;
		counts[n++] = st->counts[i];
	}
	pq_begintypsend(&buf);
	pq_sendbyte(&buf, st->any ? 1 : 0);
	send_counts(&buf, buckets, counts, n);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

Datum
pixl_latency_deserialize(PG_FUNCTION_ARGS)
{
	bytea	   *sstate = PG_GETARG_BYTEA_PP(0);
	PixlLatencyState *st;
	StringInfoData buf;

	if (!AggCheckCallContext(fcinfo, NULL))
		elog(ERROR, "pixl_latency_deserialize called in non-aggregate context");
	initStringInfo(&buf);
	appendBinaryStringInfo(&buf, VARDATA_ANY(sstate), VARSIZE_ANY_EXHDR(sstate));
	st = palloc0(sizeof(PixlLatencyState));
	st->any = pq_getmsgbyte(&buf) != 0;
	st->total = recv_counts(&buf, st->counts);
	pq_getmsgend(&buf);
	pfree(buf.data);
	PG_RETURN_POINTER(st);
}
