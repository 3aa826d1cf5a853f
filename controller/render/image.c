/*
 * The image catalog (images.conf, libconfig) and resolving provision.conf's image value
 * against it. Parsing reports every problem with its file and line, so an operator fixes the
 * catalog in one go; nothing partial is returned.
 */
#include "image.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libconfig.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "valid.h"

/* ---- field checks ---- */

static int name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= IMAGE_NAME_MAX ||
	    !(islower((unsigned char)s[0]) || isdigit((unsigned char)s[0])))
		return 0;
	return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

/* Lower-cases hex in place; 1 when s is 64 hex digits. */
static int sha_ok(char *s)
{
	if (strlen(s) != 64 || strspn(s, "0123456789abcdefABCDEF") != 64)
		return 0;
	for (char *p = s; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return 1;
}

static int url_ok(const char *u)
{
	if (!strncmp(u, "https://", 8) || !strncmp(u, "http://", 7))
		return strlen(u) > 8 && !strpbrk(u, " \t\r\n");
	if (!strncmp(u, "file:///", 8))
		return !strpbrk(u, " \t\r\n");
	return 0;
}

/* ---- parsing ---- */

struct field {
	const char *key;
	size_t off, size;
};

#define F(k, m)                                                                                    \
	{                                                                                          \
		k, offsetof(struct image_entry, m), sizeof(((struct image_entry *)0)->m)           \
	}
static const struct field fields[] = {
	F("name", name),     F("url", url),	  F("path", path),     F("sha256", sha256),
	F("format", format), F("kernel", kernel), F("initrd", initrd), F("cmdline", cmdline),
};
#undef F

static const char *src_file(const config_setting_t *s, const char *fallback)
{
	const char *f = config_setting_source_file(s);

	return f ? f : fallback;
}

/* Copies one group's string settings into e; unknown keys and wrong types are diagnosed. */
static void read_group(const config_setting_t *g, const char *file, struct image_entry *e,
		       struct diags *d)
{
	int n = config_setting_length(g);

	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
		const char *key = config_setting_name(s);
		int line = (int)config_setting_source_line(s);
		const struct field *f = NULL;

		for (size_t k = 0; k < sizeof(fields) / sizeof(fields[0]); k++)
			if (!strcmp(key, fields[k].key))
				f = &fields[k];
		if (!f) {
			diag_error(d, file, line, key,
				   "unknown key (known: name, url, path, sha256, format, kernel, "
				   "initrd, cmdline)");
			continue;
		}
		if (config_setting_type(s) != CONFIG_TYPE_STRING) {
			diag_error(d, file, line, key, "must be a string (in double quotes)");
			continue;
		}
		const char *v = config_setting_get_string(s);
		if (strlen(v) >= f->size) {
			diag_error(d, file, line, key, "too long (at most %zu bytes)", f->size - 1);
			continue;
		}
		snprintf((char *)e + f->off, f->size, "%s", v);
	}
}

/* Where the key is in group g, else the group's own line. */
static int key_line(const config_setting_t *g, const char *key)
{
	const config_setting_t *s = config_setting_get_member(g, key);

	return (int)config_setting_source_line(s ? s : g);
}

static void check_entry(const config_setting_t *g, struct image_entry *e,
			const struct image_catalog *cat, struct diags *d)
{
	const char *f = e->file;
	char why[128];

	if (!e->name[0])
		diag_error(d, f, e->line, "name", "missing (every image needs a name)");
	else if (!name_ok(e->name))
		diag_error(d, f, key_line(g, "name"), "name",
			   "'%s' is not a valid image name (lower-case letters, digits, '.', '_', "
			   "'-'; starting with a letter or digit)",
			   e->name);
	for (size_t i = 0; i < cat->n && e->name[0]; i++)
		if (!strcmp(cat->v[i].name, e->name))
			diag_error(d, f, key_line(g, "name"), "name",
				   "image '%s' is already defined at line %d", e->name,
				   cat->v[i].line);
	if (e->url[0] && e->path[0])
		diag_error(d, f, key_line(g, "path"), "path", "give either url or path, not both");
	else if (!e->url[0] && !e->path[0])
		diag_error(d, f, e->line, "url", "missing (give url or path)");
	if (e->url[0] && !url_ok(e->url))
		diag_error(d, f, key_line(g, "url"), "url",
			   "'%s' is not an http, https or file:/// URL", e->url);
	if (e->path[0] && valid_abs_path(e->path, why, sizeof(why)) < 0)
		diag_error(d, f, key_line(g, "path"), "path", "'%s': %s", e->path, why);
	if (e->sha256[0] && !sha_ok(e->sha256))
		diag_error(d, f, key_line(g, "sha256"), "sha256",
			   "'%s' is not a sha256 (64 hex digits, as sha256sum prints)", e->sha256);
	else if (!e->sha256[0] && e->url[0])
		diag_error(
			d, f, e->line, "sha256",
			"missing for url %s: images are only downloaded with a known hash (run "
			"sha256sum on a trusted copy, or take it from the publisher's SHA256SUMS)",
			e->url);
	if (!e->format[0])
		snprintf(e->format, sizeof(e->format), "qcow2");
	else if (strcmp(e->format, "qcow2") && strcmp(e->format, "raw"))
		diag_error(d, f, key_line(g, "format"), "format",
			   "'%s' is not a supported format (qcow2 or raw)", e->format);
	if (e->kernel[0] && valid_abs_path(e->kernel, why, sizeof(why)) < 0)
		diag_error(d, f, key_line(g, "kernel"), "kernel", "'%s': %s", e->kernel, why);
	if (e->initrd[0] && valid_abs_path(e->initrd, why, sizeof(why)) < 0)
		diag_error(d, f, key_line(g, "initrd"), "initrd", "'%s': %s", e->initrd, why);
	if (!e->kernel[0] && (e->initrd[0] || e->cmdline[0]))
		diag_error(d, f, key_line(g, e->initrd[0] ? "initrd" : "cmdline"),
			   e->initrd[0] ? "initrd" : "cmdline", "needs kernel as well");
}

/* libconfig would read "@include" files relative to the working directory: not wanted in a
 * root-owned catalog. 1-based line of the first one, or 0. */
static int include_line(const char *text)
{
	int line = 1;

	for (const char *p = text; *p; line++) {
		p += strspn(p, " \t");
		if (!strncmp(p, "@include", 8))
			return line;
		p = strchr(p, '\n');
		if (!p)
			break;
		p++;
	}
	return 0;
}

int image_catalog_parse(const char *text, const char *name, struct image_catalog *cat,
			struct diags *d)
{
	config_t cfg;
	config_setting_t *root, *list;
	size_t errors = d->errors;
	int n, inc;

	memset(cat, 0, sizeof(*cat));
	snprintf(cat->file, sizeof(cat->file), "%s", name);
	if ((inc = include_line(text)))
		return diag_error(d, name, inc, "",
				  "@include is not supported in the image catalog");
	config_init(&cfg);
	if (config_read_string(&cfg, text) != CONFIG_TRUE) {
		diag_error(d, name, config_error_line(&cfg), "", "%s", config_error_text(&cfg));
		goto out;
	}
	root = config_root_setting(&cfg);
	for (int i = 0; i < config_setting_length(root); i++) {
		config_setting_t *s = config_setting_get_elem(root, (unsigned)i);
		if (strcmp(config_setting_name(s), "images") != 0)
			diag_error(d, src_file(s, name), (int)config_setting_source_line(s),
				   config_setting_name(s),
				   "unknown key (the catalog has only images)");
	}
	list = config_setting_get_member(root, "images");
	if (!list) {
		diag_error(d, name, 0, "images", "missing: images = ( { name = ...; ... } );");
		goto out;
	}
	if (!config_setting_is_list(list)) {
		diag_error(d, name, (int)config_setting_source_line(list), "images",
			   "must be a list in parentheses: images = ( { ... }, { ... } );");
		goto out;
	}
	n = config_setting_length(list);
	if (n > IMAGE_CATALOG_MAX) {
		diag_error(d, name, (int)config_setting_source_line(list), "images",
			   "%d images, at most %d", n, IMAGE_CATALOG_MAX);
		goto out;
	}
	cat->v = calloc((size_t)n + 1, sizeof(*cat->v));
	if (!cat->v) {
		diag_error(d, name, 0, "images", "out of memory");
		goto out;
	}
	for (int i = 0; i < n; i++) {
		config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
		struct image_entry *e = &cat->v[cat->n];
		snprintf(e->file, sizeof(e->file), "%s", src_file(g, name));
		e->line = (int)config_setting_source_line(g);
		if (!config_setting_is_group(g)) {
			diag_error(d, e->file, e->line, "images",
				   "entry %d is not a group in braces { name = ...; }", i + 1);
			memset(e, 0, sizeof(*e));
			continue;
		}
		read_group(g, e->file, e, d);
		check_entry(g, e, cat, d);
		cat->n++;
	}
out:
	config_destroy(&cfg);
	if (d->errors > errors) {
		image_catalog_free(cat);
		return -1;
	}
	return 0;
}

int image_catalog_load(const char *path, struct image_catalog *cat, struct diags *d)
{
	struct tuap_err e;
	char *text = fs_read_file(path, IMAGE_CONF_MAX, NULL, &e);
	int rc;

	memset(cat, 0, sizeof(*cat));
	if (!text)
		return diag_error(d, path, 0, "", "cannot read the image catalog: %s", e.msg);
	rc = image_catalog_parse(text, path, cat, d);
	free(text);
	return rc;
}

void image_catalog_free(struct image_catalog *cat)
{
	free(cat->v);
	cat->v = NULL;
	cat->n = 0;
}

/* ---- resolve ---- */

/* qcow2 starts with "QFI\xfb"; anything else we hand to libvirt as raw. */
static int probe_format(const char *path, char *fmt, size_t len, struct tuap_err *err)
{
	unsigned char magic[4] = {0};
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return err_at(err, NULL, 0, "image", "cannot open %s: %s", path, strerror(errno));
	n = read(fd, magic, sizeof(magic));
	close(fd);
	snprintf(fmt, len, "%s", n == 4 && !memcmp(magic, "QFI\xfb", 4) ? "qcow2" : "raw");
	return 0;
}

/* debian-12-genericcloud-amd64.qcow2 -> debian-12-genericcloud-amd64 */
static void name_from_path(const char *path, char *out, size_t len)
{
	const char *b = strrchr(path, '/');
	size_t n = 0;

	b = b ? b + 1 : path;
	for (; *b && *b != '.' && n + 1 < len; b++)
		out[n++] = (isalnum((unsigned char)*b) || *b == '-' || *b == '_')
				   ? (char)tolower((unsigned char)*b)
				   : '-';
	out[n] = '\0';
	if (!name_ok(out))
		snprintf(out, len, "image");
}

/* A local image is a regular file (a device or a FIFO would spin the VM worker forever). */
static int regular_file(const char *path, const char *file, int line, const char *key,
			struct tuap_err *err)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return err_at(err, file, line, key, "cannot read the image %s: %s", path,
			      strerror(errno));
	if (!S_ISREG(st.st_mode))
		return err_at(err, file, line, key, "%s is not a regular file", path);
	return 0;
}

/* value, symlinks resolved, is below dir (also resolved). */
static int below(const char *value, const char *dir, struct tuap_err *err)
{
	char real[PATH_MAX], root[PATH_MAX];
	size_t n;

	if (!realpath(value, real))
		return err_at(err, NULL, 0, "image", "cannot read the image %s: %s", value,
			      strerror(errno));
	if (!realpath(dir, root))
		return err_at(err, NULL, 0, "image",
			      "%s is not in the image catalog and tuapd's image_dir %s does not "
			      "exist: put the image there or add it to the catalog",
			      value, dir);
	n = strlen(root);
	if (strncmp(real, root, n) != 0 || real[n] != '/')
		return err_at(err, NULL, 0, "image",
			      "%s is neither in the image catalog nor below tuapd's image_dir %s "
			      "(tuapd.conf): put it there or add it to the catalog",
			      value, root);
	return 0;
}

/* The sha256 of a local image that has none yet, read from the file now. */
static int hash_local(struct image_entry *out, const char *file, int line, const char *key,
		      file_progress_fn progress, void *arg, struct tuap_err *err)
{
	struct tuap_err e;

	if (out->sha256[0])
		return 0;
	if (sha256_file_hex_progress(out->path, out->sha256, NULL, progress, arg, &e) < 0)
		return err_at(err, file, line, key, "cannot read the image: %s", e.msg);
	out->hashed = true;
	return 0;
}

static int resolve_path(const struct image_catalog *cat, const char *image_dir, const char *value,
			file_progress_fn progress, void *arg, struct image_entry *out,
			struct tuap_err *err)
{
	char why[128];

	for (size_t i = 0; i < cat->n; i++)
		if (!strcmp(cat->v[i].path, value)) {
			*out = cat->v[i];
			break;
		}
	if (!out->name[0]) {
		if (valid_abs_path(value, why, sizeof(why)) < 0)
			return err_at(err, NULL, 0, "image", "'%s': %s", value, why);
		if (strlen(value) >= sizeof(out->path))
			return err_at(err, NULL, 0, "image", "path too long");
		if (below(value, image_dir, err) < 0)
			return -1;
		snprintf(out->path, sizeof(out->path), "%s", value);
		name_from_path(value, out->name, sizeof(out->name));
	}
	if (regular_file(value, out->file[0] ? out->file : NULL, out->line,
			 out->file[0] ? "path" : "image", err) < 0)
		return -1;
	if (!out->format[0] && probe_format(value, out->format, sizeof(out->format), err) < 0)
		return -1;
	return hash_local(out, NULL, 0, "image", progress, arg, err);
}

int image_resolve(const struct image_catalog *cat, const char *image_dir, const char *value,
		  struct image_entry *out, struct tuap_err *err)
{
	return image_resolve_progress(cat, image_dir, value, NULL, NULL, out, err);
}

int image_resolve_progress(const struct image_catalog *cat, const char *image_dir,
			   const char *value, file_progress_fn progress, void *arg,
			   struct image_entry *out, struct tuap_err *err)
{
	const char *cat_file = cat->file[0] ? cat->file : IMAGE_CONF_PATH;

	memset(out, 0, sizeof(*out));
	if (!value || !value[0])
		return err_at(err, NULL, 0, "image",
			      "empty (give a catalog name, a path or a URL)");
	if (value[0] == '/')
		return resolve_path(cat, image_dir, value, progress, arg, out, err);
	if (strstr(value, "://")) {
		for (size_t i = 0; i < cat->n; i++)
			if (!strcmp(cat->v[i].url, value)) {
				*out = cat->v[i];
				return 0;
			}
		return err_at(
			err, NULL, 0, "image",
			"%s is not in the image catalog %s; tuap downloads only images with a "
			"known sha256: add { name = \"...\"; url = \"%s\"; sha256 = \"...\"; } "
			"to its images list and use the name",
			value, cat_file, value);
	}
	for (size_t i = 0; i < cat->n; i++)
		if (!strcmp(cat->v[i].name, value)) {
			*out = cat->v[i];
			if (!out->path[0])
				return 0;
			/* a local catalog image: one without sha256 is hashed now */
			if (regular_file(out->path, out->file, out->line, "path", err) < 0)
				return -1;
			return hash_local(out, out->file, out->line, "path", progress, arg, err);
		}
	char known[256] = "";
	size_t k = 0;
	for (size_t i = 0; i < cat->n && k + 1 < sizeof(known); i++)
		k += (size_t)snprintf(known + k, sizeof(known) - k, "%s%s", i ? ", " : "",
				      cat->v[i].name);
	return err_at(err, NULL, 0, "image", "unknown image '%s' (the catalog %s has: %s)", value,
		      cat_file, cat->n ? known : "no images");
}

int image_volume_name(const struct image_entry *e, char *out, size_t len, struct tuap_err *err)
{
	if (!name_ok(e->name) || strlen(e->sha256) != 64)
		return err_set(err, "image '%s' has no name or sha256 yet", e->name);
	if ((size_t)snprintf(out, len, "%s-%.16s.%s", e->name, e->sha256, e->format) >= len)
		return err_set(err, "image volume name buffer too small");
	return 0;
}
