/* Error records and diagnostic lists; see err.h. */
#include "err.h"

#include <stdlib.h>
#include <string.h>

static void fill(struct tuap_err *err, const char *file, int line, const char *key, const char *fmt,
		 va_list ap) TUAP_PRINTF(5, 0);

static void fill(struct tuap_err *err, const char *file, int line, const char *key, const char *fmt,
		 va_list ap)
{
	snprintf(err->file, sizeof(err->file), "%s", file ? file : "");
	err->line = line;
	snprintf(err->key, sizeof(err->key), "%s", key ? key : "");
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
}

int err_at(struct tuap_err *err, const char *file, int line, const char *key, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return -1;
	va_start(ap, fmt);
	fill(err, file, line, key, fmt, ap);
	va_end(ap);
	return -1;
}

int err_set(struct tuap_err *err, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return -1;
	va_start(ap, fmt);
	fill(err, NULL, 0, NULL, fmt, ap);
	va_end(ap);
	return -1;
}

static const char *format(const struct tuap_err *err, const char *level, char *buf, size_t len)
{
	char where[300] = "";

	if (err->file[0] && err->line > 0)
		snprintf(where, sizeof(where), "%s:%d: ", err->file, err->line);
	else if (err->file[0])
		snprintf(where, sizeof(where), "%s: ", err->file);
	snprintf(buf, len, "%s%s%s%s%s", where, err->key, err->key[0] ? ": " : "", level, err->msg);
	return buf;
}

const char *err_str(const struct tuap_err *err, char *buf, size_t len)
{
	return format(err, "", buf, len);
}

void diags_init(struct diags *d)
{
	memset(d, 0, sizeof(*d));
}

void diags_free(struct diags *d)
{
	free(d->v);
	memset(d, 0, sizeof(*d));
}

int diag_verror(struct diags *d, enum diag_level level, const char *file, int line, const char *key,
		const char *fmt, va_list ap)
{
	if (level == DIAG_ERROR)
		d->errors++;
	else
		d->warnings++;
	if (d->n >= DIAGS_MAX)
		return -1;
	/* Grow by doubling; DIAGS_MAX bounds it. */
	if ((d->n & (d->n - 1)) == 0) {
		size_t cap = d->n ? d->n * 2 : 4;
		struct diag *v = realloc(d->v, cap * sizeof(*v));
		if (!v)
			return -1;
		d->v = v;
	}
	d->v[d->n].level = level;
	fill(&d->v[d->n].e, file, line, key, fmt, ap);
	d->n++;
	return -1;
}

int diag_error(struct diags *d, const char *file, int line, const char *key, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	diag_verror(d, DIAG_ERROR, file, line, key, fmt, ap);
	va_end(ap);
	return -1;
}

void diag_warn(struct diags *d, const char *file, int line, const char *key, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	diag_verror(d, DIAG_WARNING, file, line, key, fmt, ap);
	va_end(ap);
}

int diag_add_err(struct diags *d, const struct tuap_err *err)
{
	return diag_error(d, err->file, err->line, err->key, "%s", err->msg);
}

void diags_print(const struct diags *d, FILE *out)
{
	char buf[1024];

	for (size_t i = 0; i < d->n; i++)
		fprintf(out, "%s\n",
			format(&d->v[i].e, d->v[i].level == DIAG_WARNING ? "warning: " : "", buf,
			       sizeof(buf)));
	if (d->errors + d->warnings > d->n)
		fprintf(out, "(%zu more diagnostics not shown)\n", d->errors + d->warnings - d->n);
}
