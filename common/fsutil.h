/*
 * File-system helpers every module needs: whole-file reads with a size bound, atomic writes
 * (temp file + fsync + rename + directory fsync, so a crash leaves the old or the new file,
 * never half of one), mkdir -p with a mode.
 */
#ifndef TUAP_FSUTIL_H
#define TUAP_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

#include "err.h"

/* Reads all of path (at most max bytes, else an error) into a NUL-terminated malloc'd buffer;
 * caller frees. */
char *fs_read_file(const char *path, size_t max, size_t *len, struct tuap_err *err);
/* Writes data to path atomically with the given mode: a temp file, fsync'd, renamed over
 * path, the directory fsync'd. */
int fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
		    struct tuap_err *err);
/* The same without the syncs: path is whole or absent, durable once the caller syncs the file
 * and its directory (tuapd's group commit, engine/commit.c). */
int fs_write_renamed(const char *path, const void *data, size_t len, mode_t mode,
		     struct tuap_err *err);
/* Creates path and its parents (each new one with mode); existing directories are fine. */
int fs_mkdir_p(const char *path, mode_t mode, struct tuap_err *err);
/* fsyncs the directory that contains path. */
int fs_sync_parent(const char *path, struct tuap_err *err);
/* snprintf into a path buffer; -1 (and an error naming the start of the path) when it does
 * not fit, so callers never act on a truncated path. */
int fs_path(char *out, size_t len, struct tuap_err *err, const char *fmt, ...) TUAP_PRINTF(4, 5);
/* 1 if path exists (any type), 0 if not. */
int fs_exists(const char *path);

/* Removes trailing slashes from path in place ("/" stays "/"): "example.test/" names the
 * directory "example.test". Returns path. */
char *fs_strip_slashes(char *path);

#endif
