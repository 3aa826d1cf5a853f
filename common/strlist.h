/*
 * A growing list of malloc'd strings, NULL-terminated (v[n] == NULL once anything was added),
 * so that it is an argv for execv as it stands. The one string-list type of tuap: users.yaml's
 * lists, ssh's command line, libvirt's domain names. Allocation failure aborts, as buf's does
 * (README, "Out of memory").
 */
#ifndef TUAP_STRLIST_H
#define TUAP_STRLIST_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

struct strlist {
	char **v;
	size_t n, cap;
};

/* Appends a copy of s, of its first len bytes, or of the formatted text. */
void strlist_add(struct strlist *l, const char *s);
void strlist_addn(struct strlist *l, const char *s, size_t len);
void strlist_addf(struct strlist *l, const char *fmt, ...) TUAP_PRINTF(2, 3);
/* Sorts by strcmp; uniq drops repeated strings. */
void strlist_sort(struct strlist *l, bool uniq);
/* Frees the strings and the array; l is empty again. */
void strlist_free(struct strlist *l);

#endif
