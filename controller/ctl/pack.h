/*
 * Building a site's data.tar.gz from its site/ directory (tuap-ctl pack): a gzip'd POSIX tar
 * made with libarchive, entries in sorted order owned by root:root, so the same tree gives the
 * same archive content. Only regular files, directories and relative symlinks that stay inside
 * the tree are packed; anything else is an error naming the file.
 */
#ifndef TUAP_PACK_H
#define TUAP_PACK_H

#include <stdint.h>

#include "err.h"

struct pack_stats {
	uint64_t entries;
	uint64_t bytes; /* regular file content */
};

/* Packs the tree under src into out (written to a temporary file, then renamed). */
int pack_tree(const char *src, const char *out, struct pack_stats *stats, struct tuap_err *err);

#endif
