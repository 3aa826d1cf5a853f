/*
 * Group commit: what one pass of tuapd's loop wrote is made durable at once (job_impl.h,
 * ARCHITECTURE.md "The journal and group commit").
 *
 * A job's inputs are written (renamed into place, not synced) as they come and listed here; its
 * journal records are formatted and kept in memory. engine_commit then, in two stages: syncs
 * every listed file and the directories that hold them; then appends each journal's records in
 * one write and syncs each journal. The writeback of a stage is started for all its files before
 * it waits for any (sync_file_range, then fsync), so a thousand files cost about one disk flush,
 * not a thousand in a row. A record reaches the disk only after the inputs it refers to; the
 * messages that depend on records are held by the hub and the control socket until tuapd's loop
 * has called engine_commit (main.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "fsutil.h"
#include "job_impl.h"
#include "journal.h"
#include "log.h"

/* Files open at once while a stage syncs: the agents' connections need the rest. */
#define COMMIT_BATCH 256
/* From this many files in a stage on: one syncfs instead of a fsync each (sync_paths). */
#define COMMIT_SYNCFS_MIN 8

struct commit_rec {
	char *journal;
	char *line;
	size_t len, order;
};

static bool grow(void **arr, size_t *cap, size_t n, size_t size)
{
	size_t c = *cap ? *cap * 2 : 64;
	void *p;

	if (n < *cap)
		return true;
	if (!(p = realloc(*arr, c * size)))
		return false;
	*arr = p;
	*cap = c;
	return true;
}

int engine_commit_file(struct engine *e, const char *path)
{
	struct commit *c = &e->commit;
	char *dup = strdup(path);

	if (!dup || !grow((void **)&c->files, &c->cap_files, c->n_files, sizeof(*c->files))) {
		free(dup);
		log_error("commit: out of memory for %s", path);
		return -1;
	}
	c->files[c->n_files++] = dup;
	return 0;
}

int engine_commit_record(struct engine *e, const char *journal, const char *const *fields, size_t n,
			 struct tuap_err *err)
{
	struct commit *c = &e->commit;
	struct buf b = BUF_INIT;
	struct commit_rec *r;

	if (journal_format(&b, journal, fields, n, err) < 0) {
		buf_free(&b);
		return -1;
	}
	if (!grow((void **)&c->recs, &c->cap_recs, c->n_recs, sizeof(*c->recs))) {
		buf_free(&b);
		return err_set(err, "%s: out of memory", journal);
	}
	r = &c->recs[c->n_recs];
	if (!(r->journal = strdup(journal))) {
		buf_free(&b);
		return err_set(err, "%s: out of memory", journal);
	}
	r->line = b.s; /* the buffer's memory is the record's now */
	r->len = b.len;
	r->order = c->n_recs++;
	return 0;
}

bool engine_commit_pending(const struct engine *e)
{
	return e->commit.n_files || e->commit.n_recs;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted, without repeats (the repeats freed); returns the new count. */
static size_t unique(char **v, size_t n)
{
	size_t w = 0;

	qsort(v, n, sizeof(*v), cmp_str);
	for (size_t i = 0; i < n; i++) {
		if (w && !strcmp(v[w - 1], v[i])) {
			free(v[i]);
			continue;
		}
		v[w++] = v[i];
	}
	return w;
}

/* fsyncs every path (files or directories), COMMIT_BATCH at a time: each batch's writeback
 * started for all, then waited for one by one. Each fsync still ends in a flush of the disk's
 * cache (4 ms here): fine for the few files of a pass in normal use. */
static void fsync_paths(char **paths, size_t n, const char *what)
{
	for (size_t at = 0; at < n; at += COMMIT_BATCH) {
		int fds[COMMIT_BATCH];
		size_t m = n - at < COMMIT_BATCH ? n - at : COMMIT_BATCH;

		for (size_t i = 0; i < m; i++) {
			fds[i] = open(paths[at + i], O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
			if (fds[i] < 0)
				log_error("commit: cannot open %s %s to sync it: %s", what,
					  paths[at + i], strerror(errno));
			else
				(void)sync_file_range(fds[i], 0, 0, SYNC_FILE_RANGE_WRITE);
		}
		for (size_t i = 0; i < m; i++) {
			if (fds[i] < 0)
				continue;
			if (fsync(fds[i]) < 0)
				log_error("commit: fsync %s %s: %s", what, paths[at + i],
					  strerror(errno));
			close(fds[i]);
		}
	}
}

/* Whether every path is on the filesystem of the state directory. */
static bool on_state_fs(struct engine *e, char **paths, size_t n)
{
	struct stat st, sd;

	if (stat(e->state_dir, &sd) < 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (lstat(paths[i], &st) < 0 || st.st_dev != sd.st_dev)
			return false;
	return true;
}

/* Makes paths durable. Many at once (a burst of jobs): one syncfs of the state directory's
 * filesystem, one flush for all of them; it also writes back whatever else is dirty on that
 * filesystem, which a pass of a few files should not wait for, so few go one by one. */
static void sync_paths(struct engine *e, char **paths, size_t n, const char *what)
{
	int fd;

	if (n >= COMMIT_SYNCFS_MIN && on_state_fs(e, paths, n) &&
	    (fd = open(e->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		int rc = syncfs(fd);

		close(fd);
		if (rc == 0)
			return;
		log_error("commit: syncfs %s: %s; syncing each %s", e->state_dir, strerror(errno),
			  what);
	}
	fsync_paths(paths, n, what);
}

/* Stage 1: the listed files, then every directory that holds one. */
static void commit_files(struct engine *e)
{
	struct commit *c = &e->commit;
	size_t n = unique(c->files, c->n_files), m = 0;
	/* the files, then their directories: one list, synced at once */
	char **all = calloc(2 * n, sizeof(*all));

	if (!all) {
		log_error("commit: out of memory; syncing the files one by one");
		for (size_t i = 0; i < n; i++)
			fs_sync_parent(c->files[i], NULL);
		fsync_paths(c->files, n, "file");
	} else {
		char **dirs = all + n;

		for (size_t i = 0; i < n; i++) {
			char copy[PATH_MAX];

			snprintf(copy, sizeof(copy), "%s", c->files[i]);
			if ((dirs[m] = strdup(dirname(copy))))
				m++;
		}
		m = unique(dirs, m);
		memcpy(all, c->files, n * sizeof(*all));
		memmove(all + n, dirs, m * sizeof(*all));
		sync_paths(e, all, n + m, "file");
		for (size_t i = n; i < n + m; i++)
			free(all[i]);
		free(all);
	}
	for (size_t i = 0; i < n; i++)
		free(c->files[i]);
	c->n_files = 0;
}

static int cmp_rec(const void *a, const void *b)
{
	const struct commit_rec *x = a, *y = b;
	int d = strcmp(x->journal, y->journal);

	return d ? d : (x->order > y->order) - (x->order < y->order);
}

/* Stage 2: each journal's records in one write, in the order they were made; then the
 * journals synced. */
static void commit_records(struct engine *e)
{
	struct commit *c = &e->commit;
	char **written = calloc(c->n_recs, sizeof(*written));
	struct tuap_err err;
	size_t n = 0;

	qsort(c->recs, c->n_recs, sizeof(*c->recs), cmp_rec);
	for (size_t i = 0, k; i < c->n_recs; i = k) {
		struct buf lines = BUF_INIT;
		struct journal j;

		for (k = i; k < c->n_recs && !strcmp(c->recs[k].journal, c->recs[i].journal); k++)
			buf_add(&lines, c->recs[k].line, c->recs[k].len);
		if (journal_open(&j, c->recs[i].journal, &err) < 0 ||
		    journal_write(&j, lines.s, lines.len, &err) < 0)
			log_error("journal: %s (%zu record(s) lost)", err.msg, k - i);
		else if (!written)
			(void)journal_sync(&j, NULL); /* out of memory: one by one */
		else
			written[n++] = c->recs[i].journal;
		journal_close(&j);
		buf_free(&lines);
	}
	if (n)
		sync_paths(e, written, n, "journal");
	free(written);
	for (size_t k = 0; k < c->n_recs; k++) {
		free(c->recs[k].journal);
		free(c->recs[k].line);
	}
	c->n_recs = 0;
}

void engine_commit(struct engine *e)
{
	if (e->commit.n_files)
		commit_files(e);
	if (e->commit.n_recs)
		commit_records(e);
}

void engine_commit_free(struct engine *e)
{
	engine_commit(e);
	free(e->commit.files);
	free(e->commit.recs);
	memset(&e->commit, 0, sizeof(e->commit));
}
