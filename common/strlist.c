/* The string list; see strlist.h. */
#include "strlist.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void grow(struct strlist *l)
{
	if (l->n + 2 <= l->cap)
		return;
	l->cap = l->cap ? l->cap * 2 : 8;
	if (!(l->v = realloc(l->v, l->cap * sizeof(*l->v))))
		abort();
}

void strlist_addn(struct strlist *l, const char *s, size_t len)
{
	grow(l);
	if (!(l->v[l->n] = strndup(s, len)))
		abort();
	l->v[++l->n] = NULL;
}

void strlist_add(struct strlist *l, const char *s)
{
	strlist_addn(l, s, strlen(s));
}

void strlist_addf(struct strlist *l, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		abort();
	va_end(ap);
	grow(l);
	l->v[l->n] = s;
	l->v[++l->n] = NULL;
}

static int by_strcmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void strlist_sort(struct strlist *l, bool uniq)
{
	size_t k = 0;

	if (l->n < 2)
		return;
	qsort(l->v, l->n, sizeof(*l->v), by_strcmp);
	if (!uniq)
		return;
	for (size_t i = 0; i < l->n; i++)
		if (k > 0 && !strcmp(l->v[k - 1], l->v[i]))
			free(l->v[i]);
		else
			l->v[k++] = l->v[i];
	l->n = k;
	l->v[k] = NULL;
}

void strlist_free(struct strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}
