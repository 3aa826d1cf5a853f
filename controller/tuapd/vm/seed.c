/*
 * The cidata ISO, written with libisofs. Why not our own ISO9660 writer: a NoCloud seed needs
 * Rock Ridge (cloud-init's file names "meta-data", "network-config" are not ISO9660 names, and
 * tuap-agent needs its 0755 mode) and Joliet (what other readers use), i.e. three directory
 * trees with their own name rules, SUSP continuation areas and path tables. libisofs is the
 * library behind xorriso, packaged in Debian, maintained, and gets those details right; its
 * output is what genisoimage/xorriso produce for the same files.
 *
 * Determinism: every node gets the same fixed time, owner root and the given mode, the volume
 * times come from a fixed "uuid" string (not the clock), and libisofs sorts directory entries
 * by name. Files are read into memory first (bounded by SEED_FILE_MAX), so a source file
 * changing during the write cannot give a torn image and its own time stamps do not matter.
 */
#include "seed.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* We consume libisofs' burn_source ourselves, without libburn: this makes its declaration
 * visible. */
#define LIBISOFS_WITHOUT_LIBBURN
#include <libisofs/libisofs.h>

#include "buf.h"
#include "fsutil.h"

/* 2000-01-01 00:00:00 UTC, and the same as ISO9660's "YYYYMMDDhhmmsscc" */
#define SEED_TIME      ((time_t)946684800)
#define SEED_TIME_UUID "2000010100000000"
#define SEED_ISO_MAX   (1024u * 1024 * 1024)

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int init_rc;

static void init(void)
{
	/* bit0: do not take the locale from the environment (names are ASCII anyway) */
	init_rc = iso_init_with_flag(1);
	if (init_rc >= 0)
		iso_set_msgs_severities("NEVER", "NEVER", "tuap seed");
}

static int fail(struct tuap_err *err, const char *what, const char *name, int code)
{
	return err_set(err, "seed: %s%s%s: %s", what, name ? " " : "", name ? name : "",
		       iso_error_to_msg(code));
}

static void fix_node(IsoNode *node, mode_t mode)
{
	iso_node_set_permissions(node, mode & 07777);
	iso_node_set_uid(node, 0);
	iso_node_set_gid(node, 0);
	iso_node_set_mtime(node, SEED_TIME);
	iso_node_set_atime(node, SEED_TIME);
	iso_node_set_ctime(node, SEED_TIME);
}

static int component_ok(const char *s, size_t n)
{
	if (n == 0 || n > 64 || (n == 1 && s[0] == '.') || (n == 2 && !strncmp(s, "..", 2)))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-",
			    s[i]))
			return 0;
	return 1;
}

static int name_ok(const char *name)
{
	size_t n = strlen(name);
	const char *p = name;

	if (n == 0 || n >= SEED_PATH_MAX)
		return 0;
	for (;;) {
		size_t c = strcspn(p, "/");
		if (!component_ok(p, c))
			return 0;
		if (!p[c])
			return 1;
		p += c + 1;
	}
}

/* Walks/creates the directories of name; *dir gets the parent, *base the last component. */
static int parent_dir(IsoImage *image, const char *name, IsoDir **dir, const char **base,
		      struct tuap_err *err)
{
	char comp[SEED_PATH_MAX];
	const char *p = name, *slash;
	IsoDir *d = iso_image_get_root(image);

	while ((slash = strchr(p, '/'))) {
		IsoNode *node = NULL;
		size_t n = (size_t)(slash - p);
		int rc;

		memcpy(comp, p, n);
		comp[n] = '\0';
		rc = iso_dir_get_node(d, comp, &node);
		if (rc == 1 && iso_node_get_type(node) != LIBISO_DIR)
			return err_set(err, "seed: %s: %s is a file, not a directory", name, comp);
		if (rc != 1) {
			IsoDir *nd = NULL;
			rc = iso_tree_add_new_dir(d, comp, &nd);
			if (rc < 0)
				return fail(err, "cannot add directory", comp, rc);
			fix_node((IsoNode *)nd, 0755);
			node = (IsoNode *)nd;
		}
		d = (IsoDir *)node;
		p = slash + 1;
	}
	*dir = d;
	*base = p;
	return 0;
}

static int add_file(IsoImage *image, const struct seed_file *f, struct tuap_err *err)
{
	unsigned char *data = NULL;
	size_t len = f->len;
	IsoStream *stream = NULL;
	IsoFile *file = NULL;
	IsoDir *dir = NULL;
	const char *base = NULL;
	int rc;

	if (!f->name || !name_ok(f->name))
		return err_set(err, "seed: '%s' is not a valid seed file name",
			       f->name ? f->name : "");
	if (f->data) {
		if (len > SEED_FILE_MAX)
			return err_set(err, "seed: %s: larger than %u bytes", f->name,
				       SEED_FILE_MAX);
		data = malloc(len ? len : 1);
		if (!data)
			return err_set(err, "seed: %s: out of memory", f->name);
		memcpy(data, f->data, len);
	} else {
		struct tuap_err e;
		if (!f->src_path)
			return err_set(err, "seed: %s: neither data nor a source file", f->name);
		data = (unsigned char *)fs_read_file(f->src_path, SEED_FILE_MAX, &len, &e);
		if (!data)
			return err_set(err, "seed: %s: %s", f->name, e.msg);
	}
	if (parent_dir(image, f->name, &dir, &base, err) < 0) {
		free(data);
		return -1;
	}
	rc = iso_memory_stream_new(data, len, &stream); /* owns data from here on */
	if (rc < 0) {
		free(data);
		return fail(err, "cannot add", f->name, rc);
	}
	rc = iso_tree_add_new_file(dir, base, stream, &file); /* takes our stream reference */
	if (rc < 0) {
		iso_stream_unref(stream);
		if (rc == (int)ISO_NODE_NAME_NOT_UNIQUE)
			return err_set(err, "seed: %s is given twice", f->name);
		return fail(err, "cannot add", f->name, rc);
	}
	fix_node((IsoNode *)file, f->mode);
	return 0;
}

static IsoWriteOpts *write_opts(struct tuap_err *err)
{
	IsoWriteOpts *o = NULL;
	int rc = iso_write_opts_new(&o, 0);

	if (rc < 0) {
		fail(err, "cannot set up the writer", NULL, rc);
		return NULL;
	}
	iso_write_opts_set_iso_level(o, 3);
	iso_write_opts_set_rockridge(o, 1);
	iso_write_opts_set_joliet(o, 1);
	iso_write_opts_set_replace_mode(o, 0, 0, 0, 0); /* keep the node values set above */
	iso_write_opts_set_replace_timestamps(o, 0);
	iso_write_opts_set_always_gmt(o, 1);
	/* keep the volume id lower-case "cidata" as genisoimage -V writes it (ISO9660 proper
	 * would upper-case it; udev's by-label and blkid show it as written) */
	iso_write_opts_set_relaxed_vol_atts(o, 1);
	/* Joliet names as genisoimage writes them: no ";1", no dot forced into "meta-data" */
	iso_write_opts_set_omit_version_numbers(o, 2);
	iso_write_opts_set_no_force_dots(o, 2);
	iso_write_opts_set_dir_rec_mtime(o, 1);
	rc = iso_write_opts_set_pvd_times(o, SEED_TIME, SEED_TIME, 0, 0, SEED_TIME_UUID);
	if (rc < 0) {
		iso_write_opts_free(o);
		fail(err, "cannot set the volume times", NULL, rc);
		return NULL;
	}
	return o;
}

/* Pulls the image out of libisofs' writer thread into out. */
static int generate(IsoImage *image, IsoWriteOpts *opts, struct buf *out, struct tuap_err *err)
{
	struct burn_source *src = NULL;
	unsigned char block[2048];
	int rc = iso_image_create_burn_source(image, opts, &src), n;

	if (rc < 0)
		return fail(err, "cannot start writing the image", NULL, rc);
	while ((n = src->read_xt(src, block, sizeof(block))) > 0) {
		if (out->len + (size_t)n > SEED_ISO_MAX) {
			err_set(err, "seed: the image grows past %u bytes", SEED_ISO_MAX);
			break;
		}
		buf_add(out, block, (size_t)n);
	}
	if (n < 0)
		err_set(err, "seed: writing the image failed");
	if (n != 0)
		src->cancel(src);
	src->free_data(src);
	free(src);
	return n == 0 ? 0 : -1;
}

int seed_write(const struct seed_file *files, size_t n, const char *out_path,
	       char sha[SHA256_HEX_LEN], struct tuap_err *err)
{
	IsoImage *image = NULL;
	IsoWriteOpts *opts = NULL;
	struct buf iso = BUF_INIT;
	int rc = -1, r;

	pthread_once(&once, init);
	if (init_rc < 0)
		return fail(err, "cannot initialise libisofs", NULL, init_rc);
	if (n == 0 || n > SEED_FILES_MAX)
		return err_set(err, "seed: %zu files (1..%d allowed)", n, (int)SEED_FILES_MAX);
	r = iso_image_new(SEED_VOLUME_ID, &image);
	if (r < 0)
		return fail(err, "cannot create the image", NULL, r);
	iso_image_set_volume_id(image, SEED_VOLUME_ID);
	fix_node((IsoNode *)iso_image_get_root(image), 0755);
	for (size_t i = 0; i < n; i++)
		if (add_file(image, &files[i], err) < 0)
			goto out;
	opts = write_opts(err);
	if (!opts || generate(image, opts, &iso, err) < 0)
		goto out;
	sha256_hex(iso.s, iso.len, sha);
	if (fs_write_atomic(out_path, iso.s, iso.len, 0644, err) < 0)
		goto out;
	rc = 0;
out:
	if (opts)
		iso_write_opts_free(opts);
	iso_image_unref(image);
	buf_free(&iso);
	return rc;
}

int seed_name(const char *sha, char *out, size_t len, struct tuap_err *err)
{
	if (strlen(sha) != 64 || strspn(sha, "0123456789abcdef") != 64)
		return err_set(err, "seed: '%s' is not a lower-case hex sha256", sha);
	if ((size_t)snprintf(out, len, "seed-%.16s.iso", sha) >= len)
		return err_set(err, "seed: name buffer too small");
	return 0;
}
