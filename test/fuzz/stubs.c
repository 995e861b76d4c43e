/*-------------------------------------------------------------------------
 *
 * stubs.c
 *		The few backend functions that token_format.c and scopes.c call,
 *		for the libFuzzer harness (test/fuzz/run.sh), outside a server.
 *
 * ereport(ERROR) longjmps back to the harness (fuzz_jmp) with the message
 * kept in fuzz_errmsg; palloc, psprintf, pstrdup and the UTF-8 tables come
 * from libpgcommon, pg_strong_random from libpgport.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <setjmp.h>
#include <stdarg.h>

#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "fuzz.h"

sigjmp_buf	fuzz_jmp;
char		fuzz_errmsg[4096];
int			fuzz_errcode;
static int	cur_elevel;

/* The traditional CRC-32 table (the backend exports it from pg_crc.c). */
uint32		pg_crc32_table[8][256];

__attribute__((constructor))
static void
init_crc_table(void)
{
	for (uint32 i = 0; i < 256; i++)
	{
		uint32		c = i;

		for (int k = 0; k < 8; k++)
			c = (c & 1) ? 0xEDB88320 ^ (c >> 1) : c >> 1;
		pg_crc32_table[0][i] = c;
	}
}

bool
errstart(int elevel, const char *domain)
{
	cur_elevel = elevel;
	fuzz_errmsg[0] = '\0';
	fuzz_errcode = 0;
	return elevel >= ERROR;
}

bool
errstart_cold(int elevel, const char *domain)
{
	return errstart(elevel, domain);
}

void
errfinish(const char *filename, int lineno, const char *funcname)
{
	if (cur_elevel >= ERROR)
		siglongjmp(fuzz_jmp, 1);
}

int
errcode(int sqlerrcode)
{
	fuzz_errcode = sqlerrcode;
	return 0;
}

int
errcode_for_file_access(void)
{
	return 0;
}

int
errmsg(const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(fuzz_errmsg, sizeof(fuzz_errmsg), fmt, ap);
	va_end(ap);
	return 0;
}

int
errmsg_internal(const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(fuzz_errmsg, sizeof(fuzz_errmsg), fmt, ap);
	va_end(ap);
	return 0;
}

int
errhint(const char *fmt,...)
{
	return 0;
}

int
errdetail(const char *fmt,...)
{
	return 0;
}

int
errhidestmt(bool hide_stmt)
{
	return 0;
}

int
GetDatabaseEncoding(void)
{
	return PG_UTF8;
}

int
pg_mbcliplen(const char *mbstr, int len, int limit)
{
	int			clen = 0;

	while (len > 0 && *mbstr)
	{
		int			l = pg_utf_mblen((const unsigned char *) mbstr);

		if (clen + l > limit)
			break;
		clen += l;
		if (clen == limit)
			break;
		len -= l;
		mbstr += l;
	}
	return clen;
}

struct varlena *
pg_detoast_datum_packed(struct varlena *datum)
{
	return datum;				/* the harness builds plain arrays */
}

text *
cstring_to_text(const char *s)
{
	size_t		len = strlen(s);
	text	   *t = palloc(VARHDRSZ + len);

	SET_VARSIZE(t, VARHDRSZ + len);
	memcpy(VARDATA(t), s, len);
	return t;
}

/* Only what scopes.c needs: text elements, 4-byte varlena headers. */
void
deconstruct_array(ArrayType *array, Oid elmtype, int elmlen, bool elmbyval,
				  char elmalign, Datum **elemsp, bool **nullsp, int *nelemsp)
{
	int			n = ArrayGetNItems(ARR_NDIM(array), ARR_DIMS(array));
	char	   *p = ARR_DATA_PTR(array);
	bits8	   *bitmap = ARR_NULLBITMAP(array);

	*elemsp = palloc(sizeof(Datum) * Max(n, 1));
	*nullsp = palloc(sizeof(bool) * Max(n, 1));
	*nelemsp = n;
	for (int i = 0; i < n; i++)
	{
		if (bitmap && (bitmap[i / 8] & (1 << (i % 8))) == 0)
		{
			(*nullsp)[i] = true;
			(*elemsp)[i] = (Datum) 0;
			continue;
		}
		(*nullsp)[i] = false;
		(*elemsp)[i] = PointerGetDatum(p);
		p += INTALIGN(VARSIZE(p));
	}
}

int
ArrayGetNItems(int ndim, const int *dims)
{
	int			n = 1;

	if (ndim <= 0)
		return 0;
	for (int i = 0; i < ndim; i++)
		n *= dims[i];
	return n;
}

ArrayType *
construct_array(Datum *elems, int nelems, Oid elmtype, int elmlen,
				bool elmbyval, char elmalign)
{
	return fuzz_text_array(elems, NULL, nelems, 1, 1);
}
