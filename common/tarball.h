/*
 * data.tar.gz: the controller's check before anything is created (readable gzip+tar, top-level
 * Makefile, totals, dangerous entries), and the entry rule the agent's extraction applies too
 * (adding a stricter symlink rule, agent/steps/data.h, where it cannot follow the archive's
 * other symlinks as tarball_check does).
 */
#ifndef TUAP_TARBALL_H
#define TUAP_TARBALL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"

struct tarball_info {
	bool present;
	char path[4096];
	uint64_t file_size;   /* compressed */
	uint64_t total_bytes; /* sum of regular file sizes */
	uint64_t entries;
	bool has_makefile; /* a top-level Makefile (or makefile / GNUmakefile) */
	char sha256[65];
};

#define TARBALL_MAX_ENTRIES 2000000
#define TARBALL_MAX_PATH    4096

enum tar_entry_type { TAR_FILE, TAR_DIR, TAR_SYMLINK, TAR_HARDLINK, TAR_OTHER };

/* 0 when an entry may be extracted under the site tree; otherwise why says what is wrong
 * ("absolute path", "'..' component", "symlink escapes the tree", "device node", ...).
 * link is the symlink/hardlink target or NULL. */
int tar_entry_check(const char *path, enum tar_entry_type type, const char *link, char *why,
		    size_t len);

/* An entry's name (or link target) as messages show it: control characters (which would forge
 * lines in a log) as '?', cut after TAR_SHOWN_MAX characters with "...". Returns buf; a buf of
 * TAR_SHOWN_MAX + 8 bytes holds any name. */
#define TAR_SHOWN_MAX 200
const char *tar_shown(const char *s, char *buf, size_t len);

struct archive_entry;
/* The rule's view of a libarchive entry: a hardlink whatever its file type, else by type. */
enum tar_entry_type tar_entry_type_of(struct archive_entry *e);

/* Checks path (gzip+tar via libarchive), filling info. Every dangerous entry is an error
 * "PATH: entry 'NAME': why". Returns 0 when the tarball is acceptable. */
int tarball_check(const char *path, struct tarball_info *info, struct diags *d);

/* The same check on an archive held in memory (the fuzzer's entry point; name is used in
 * messages and info->path). */
int tarball_check_memory(const char *name, const void *data, size_t size, struct tarball_info *info,
			 struct diags *d);

#endif
