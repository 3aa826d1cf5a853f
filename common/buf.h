/*
 * A growing byte/string buffer (git's strbuf, redis's sds): always NUL-terminated, so `s` can be
 * used as a C string when the content is text. Allocation failure aborts: every caller would
 * otherwise have to handle OOM for a few hundred bytes, and none can recover.
 */
#ifndef TUAP_BUF_H
#define TUAP_BUF_H

#include <stddef.h>

#include "err.h"

struct buf {
	char *s;
	size_t len;
	size_t cap;
};

#define BUF_INIT                                                                                   \
	{                                                                                          \
		NULL, 0, 0                                                                         \
	}

void buf_grow(struct buf *b, size_t extra);
void buf_add(struct buf *b, const void *data, size_t len);
void buf_adds(struct buf *b, const char *s);
void buf_addf(struct buf *b, const char *fmt, ...) TUAP_PRINTF(2, 3);
void buf_reset(struct buf *b);
/* Hands the storage to the caller (free() it); b is left empty. Never NULL. */
char *buf_detach(struct buf *b, size_t *len);
void buf_free(struct buf *b);

#endif
