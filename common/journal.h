/*
 * Append-only journals (tuapd's job journal, the agent's step journal): one record per line,
 * fields separated by tabs and percent-escaped, so any text fits. A record is durable once
 * journal_append(..., sync=true) returns. A crash can leave a torn last line; replay ignores it
 * and journal_open cuts it off before appending, so the next record never glues onto it.
 */
#ifndef TUAP_JOURNAL_H
#define TUAP_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

#define JOURNAL_MAX_FIELDS 16
#define JOURNAL_MAX_LINE   16384
#define JOURNAL_MAX_SIZE   (64u << 20)

struct journal {
	int fd;
	char path[4096];
};

/* Opens (creating with mode 0600) path for appending. */
int journal_open(struct journal *j, const char *path, struct tuap_err *err);
/* Appends one record of n fields; with sync, fsyncs before returning. */
int journal_append(struct journal *j, const char *const *fields, size_t n, bool sync,
		   struct tuap_err *err);
void journal_close(struct journal *j);

/* The parts of journal_append, for writing many records with one write and one sync (tuapd's
 * group commit): journal_format appends one record's line to out (nothing on error);
 * journal_write writes whole lines in one write(2); journal_sync makes them durable. */
struct buf;
int journal_format(struct buf *out, const char *path, const char *const *fields, size_t n,
		   struct tuap_err *err);
int journal_write(struct journal *j, const char *lines, size_t len, struct tuap_err *err);
int journal_sync(struct journal *j, struct tuap_err *err);

/* Called for every complete record in order; fields are unescaped and valid only during the
 * call. A non-zero return stops the replay and is returned. */
typedef int (*journal_fn)(void *ctx, char **fields, size_t n, int lineno);
/* Replays path; a missing file is an empty journal. Malformed lines are skipped (logged). */
int journal_replay(const char *path, journal_fn fn, void *ctx, struct tuap_err *err);

#endif
