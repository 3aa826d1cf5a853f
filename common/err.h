/*
 * Errors and diagnostics. A function that can fail returns 0 / -1 (or a pointer / NULL) and
 * fills a caller-provided `struct tuap_err`. Validators that must report every problem at
 * once collect them in a `struct diags`. Both print as "FILE:LINE: key: message", leaving out
 * the parts that are unknown.
 */
#ifndef TUAP_ERR_H
#define TUAP_ERR_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#define TUAP_PRINTF(a, b) __attribute__((format(printf, a, b)))

struct tuap_err {
	char file[256];
	int line;     /* 0: not tied to a line */
	char key[64]; /* "" when not tied to a key */
	char msg[512];
};

/* Fills err (which may be NULL) and returns -1, so callers can `return err_at(...)`. */
int err_at(struct tuap_err *err, const char *file, int line, const char *key, const char *fmt, ...)
	TUAP_PRINTF(5, 6);
/* Same without location: err_set(err, "cannot open %s: %s", p, strerror(errno)). */
int err_set(struct tuap_err *err, const char *fmt, ...) TUAP_PRINTF(2, 3);
/* Formats "FILE:LINE: key: msg" into buf; returns buf. */
const char *err_str(const struct tuap_err *err, char *buf, size_t len);

enum diag_level { DIAG_ERROR, DIAG_WARNING };

struct diag {
	enum diag_level level;
	struct tuap_err e;
};

/* A growing list of diagnostics; at most DIAGS_MAX are kept (the count goes on). */
#define DIAGS_MAX 500
struct diags {
	struct diag *v;
	size_t n;
	size_t errors; /* counted even past DIAGS_MAX */
	size_t warnings;
};

void diags_init(struct diags *d);
void diags_free(struct diags *d);
/* Adds an error; returns -1. */
int diag_error(struct diags *d, const char *file, int line, const char *key, const char *fmt, ...)
	TUAP_PRINTF(5, 6);
void diag_warn(struct diags *d, const char *file, int line, const char *key, const char *fmt, ...)
	TUAP_PRINTF(5, 6);
int diag_verror(struct diags *d, enum diag_level level, const char *file, int line, const char *key,
		const char *fmt, va_list ap) TUAP_PRINTF(6, 0);
/* Moves a tuap_err into the list as an error; returns -1. */
int diag_add_err(struct diags *d, const struct tuap_err *err);
/* One line per diagnostic: "FILE:LINE: key: message" / "FILE:LINE: key: warning: message". */
void diags_print(const struct diags *d, FILE *out);

#endif
