/*
 * seed: the NoCloud "cidata" ISO a new guest boots with (ISO9660 + Joliet + Rock Ridge, volume
 * id "cidata"): cloud-init's meta-data, network-config and user-data, plus tuap's own files
 * (tuap/tuap-agent 0755, tuap/agent.conf 0600, tuap/install, tuap/tuap-agent.service). Output
 * is deterministic: the same files give the same bytes, so the ISO is named by its hash
 * (seed_name) and an unchanged seed is never uploaded twice.
 */
#ifndef TUAP_SEED_H
#define TUAP_SEED_H

#include <stddef.h>
#include <sys/types.h>

#include "err.h"
#include "hash.h"

#define SEED_VOLUME_ID "cidata"
#define SEED_FILES_MAX 64		    /* files per seed */
#define SEED_FILE_MAX  (256u * 1024 * 1024) /* bytes per file */
#define SEED_PATH_MAX  128		    /* bytes of a path inside the ISO */

struct seed_file {
	/* Path inside the ISO: components of [A-Za-z0-9._-] separated by '/', no "." or "..",
	 * e.g. "meta-data" or "tuap/agent.conf". Parent directories are created (mode 0755). */
	const char *name;
	/* Content in memory (len bytes), or NULL to read the file src_path. */
	const void *data;
	size_t len;
	const char *src_path;
	/* Permission bits recorded in Rock Ridge (0644, 0755, 0600); owner is always root. */
	mode_t mode;
};

/* Writes the ISO to out_path (atomically, mode 0644) and its sha256 (hex) to sha. Two files
 * of the same name, a bad name, an unreadable source or one over SEED_FILE_MAX is an error
 * naming the file. */
int seed_write(const struct seed_file *files, size_t n, const char *out_path,
	       char sha[SHA256_HEX_LEN], struct tuap_err *err);
/* "seed-<first 16 hex of sha256>.iso" */
int seed_name(const char *sha, char *out, size_t len, struct tuap_err *err);

#endif
