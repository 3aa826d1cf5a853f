/*
 * image: the base image catalog (/etc/tuap/images.conf, libconfig syntax, see images.conf(5))
 * and getting an image's bytes onto the hypervisor, verified by sha256: provision.conf's
 * `image` names a catalog entry, an absolute path, or a URL that must be in the catalog (a
 * URL without a known hash is never downloaded). Downloads go to a cache directory once; the
 * caller then uploads the file into the tuap-images pool (virt_vol_upload) under
 * image_volume_name().
 *
 * Files: render/image.c (catalog, resolve: tuap-ctl doctor reads the catalog too),
 * tuapd/vm/image_fetch.c (download and verification, libcurl).
 */
#ifndef TUAP_IMAGE_H
#define TUAP_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "hash.h"

#define IMAGE_NAME_MAX	  64
#define IMAGE_CATALOG_MAX 256		/* entries */
#define IMAGE_CONF_MAX	  (1024 * 1024) /* bytes of images.conf */
#define IMAGE_CONF_PATH	  "/etc/tuap/images.conf"

struct image_entry {
	char name[IMAGE_NAME_MAX];   /* [a-z0-9][a-z0-9._-]* */
	char url[2048];		     /* http, https or file URL; "" for a local image */
	char path[4096];	     /* absolute path of a local image; "" for a URL */
	char sha256[SHA256_HEX_LEN]; /* lower-case hex; "" only for a catalog path without one
				      * (image_resolve then computes it) */
	char format[8];		     /* "qcow2" (default) or "raw" */
	char kernel[4096];	     /* direct kernel boot: absolute paths and command line, */
	char initrd[4096];	     /* "" when the image boots itself */
	char cmdline[1024];
	char file[256]; /* where the entry was defined, for messages ("" when not from the */
	int line;	/* catalog) */
	bool hashed;	/* a local image whose sha256 image_resolve just read from the file:
			 * image_fetch does not read it again */
};

struct image_catalog {
	char file[256];
	struct image_entry *v;
	size_t n;
};

/* Loads the catalog at path (at most IMAGE_CONF_MAX bytes). Every problem is added to d as
 * "FILE:LINE: key: message" (syntax errors, unknown keys, wrong types, bad names, duplicate
 * names, a URL without sha256, bad hex, relative paths); returns -1 when there was any, and
 * cat is then empty. A missing file is an error too (the caller decides whether that is fine).
 * Caller frees with image_catalog_free. */
int image_catalog_load(const char *path, struct image_catalog *cat, struct diags *d);
/* The same from text; `name` is used as FILE in messages. */
int image_catalog_parse(const char *text, const char *name, struct image_catalog *cat,
			struct diags *d);
void image_catalog_free(struct image_catalog *cat);

/* Turns provision.conf's image value into an entry: a catalog name, an absolute path, or a
 * URL listed in the catalog. A path is a catalog entry's, or a regular file below image_dir
 * (symlinks resolved: it must still be below), hashed and probed here; anything else a site
 * names (tuapd's own keys, /dev/zero) is refused, for the site's operator is not tuapd's. A
 * local image must be a regular file. An unknown name or a URL not in the catalog is an error
 * telling the operator what to add to the catalog. */
int image_resolve(const struct image_catalog *cat, const char *image_dir, const char *value,
		  struct image_entry *out, struct tuap_err *err);
/* The same, telling progress (may be NULL) how the hashing goes; it can stop it. */
int image_resolve_progress(const struct image_catalog *cat, const char *image_dir,
			   const char *value, file_progress_fn progress, void *arg,
			   struct image_entry *out, struct tuap_err *err);

/* "NAME-<first 16 hex of sha256>.FORMAT": the cache file and the volume in tuap-images. */
int image_volume_name(const struct image_entry *e, char *out, size_t len, struct tuap_err *err);

/* Timeouts of a download: no connection within IMAGE_CONNECT_TIMEOUT seconds, or less than
 * IMAGE_LOW_SPEED bytes/s for IMAGE_LOW_SPEED_TIME seconds, aborts it. */
#define IMAGE_CONNECT_TIMEOUT 30
#define IMAGE_LOW_SPEED	      1024
#define IMAGE_LOW_SPEED_TIME  60
#define IMAGE_MAX_BYTES	      (64ULL << 30)

/* Makes the image's bytes available as a verified local file; path gets its name. A URL is
 * downloaded once into cache_dir (created if needed) as image_volume_name(); a cached file is
 * re-verified and fetched again if it does not match. A download whose sha256 differs from
 * the catalog's is refused with both hashes and deleted: nothing unverified stays in the
 * cache. A local image is verified in place (never deleted). Kernel and initrd, when given,
 * must be readable. progress (may be NULL) gets bytes done/total (total 0 when unknown). */
int image_fetch(const struct image_entry *e, const char *cache_dir, file_progress_fn progress,
		void *arg, char *path, size_t pathlen, struct tuap_err *err);

#endif
