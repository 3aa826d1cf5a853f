/* tuap-ctl pack: site/ -> data.tar.gz with libarchive; see pack.h. */
#include "pack.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "strlist.h"
#include "tarball.h"

#define PACK_MAX_DEPTH 64

struct packer {
	struct archive *a;
	const char *root;
	struct pack_stats *stats;
	struct tuap_err *err;
};

static int add_file_data(struct packer *p, const char *full, const char *rel)
{
	char block[1 << 16];
	int fd = open(full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0)
		return err_set(p->err, "%s: %s", full, strerror(errno));
	for (;;) {
		ssize_t r = read(fd, block, sizeof(block));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err_set(p->err, "%s: %s", full, strerror(errno));
			close(fd);
			return -1;
		}
		if (r == 0)
			break;
		if (archive_write_data(p->a, block, (size_t)r) != r) {
			err_set(p->err, "%s: %s", rel, archive_error_string(p->a));
			close(fd);
			return -1;
		}
	}
	close(fd);
	return 0;
}

static int add_path(struct packer *p, const char *rel, int depth);

static int add_dir_children(struct packer *p, const char *full, const char *rel, int depth)
{
	DIR *dir = opendir(full);
	struct strlist names = {0};
	int rc = 0;
	struct dirent *de;

	if (!dir)
		return err_set(p->err, "%s: %s", full, strerror(errno));
	while ((de = readdir(dir))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		strlist_add(&names, de->d_name);
	}
	closedir(dir);
	strlist_sort(&names, false);
	for (size_t i = 0; i < names.n; i++) {
		char child[PATH_MAX];

		if (rc == 0) {
			if (snprintf(child, sizeof(child), "%s%s%s", rel, *rel ? "/" : "",
				     names.v[i]) >= (int)sizeof(child))
				rc = err_set(p->err, "%s/%s: path too long", full, names.v[i]);
			else
				rc = add_path(p, child, depth + 1);
		}
	}
	strlist_free(&names);
	return rc;
}

static int add_path(struct packer *p, const char *rel, int depth)
{
	char full[PATH_MAX], target[PATH_MAX], why[128];
	struct archive_entry *e;
	enum tar_entry_type type;
	struct stat st;
	int rc = -1;

	if (depth > PACK_MAX_DEPTH)
		return err_set(p->err, "%s/%s: nested deeper than %d", p->root, rel,
			       PACK_MAX_DEPTH);
	snprintf(full, sizeof(full), "%s%s%s", p->root, *rel ? "/" : "", rel);
	if (lstat(full, &st) < 0)
		return err_set(p->err, "%s: %s", full, strerror(errno));
	if (!*rel) /* the root itself is not an entry */
		return S_ISDIR(st.st_mode) ? add_dir_children(p, full, rel, depth)
					   : err_set(p->err, "%s: not a directory", full);
	target[0] = '\0';
	if (S_ISREG(st.st_mode)) {
		type = TAR_FILE;
	} else if (S_ISDIR(st.st_mode)) {
		type = TAR_DIR;
	} else if (S_ISLNK(st.st_mode)) {
		ssize_t n = readlink(full, target, sizeof(target) - 1);

		if (n < 0)
			return err_set(p->err, "%s: %s", full, strerror(errno));
		target[n] = '\0';
		type = TAR_SYMLINK;
	} else {
		return err_set(p->err, "%s: not a file, directory or symlink; not packed", full);
	}
	if (tar_entry_check(rel, type, *target ? target : NULL, why, sizeof(why)) < 0)
		return err_set(p->err, "%s: %s", full, why);

	e = archive_entry_new();
	archive_entry_copy_stat(e, &st);
	archive_entry_set_pathname(e, rel);
	archive_entry_set_uid(e, 0);
	archive_entry_set_gid(e, 0);
	archive_entry_set_uname(e, "root");
	archive_entry_set_gname(e, "root");
	/* Keep only permission bits that make sense on a server: no setuid/setgid/sticky. */
	archive_entry_set_perm(e, st.st_mode & 0777);
	if (type == TAR_SYMLINK)
		archive_entry_set_symlink(e, target);
	if (archive_write_header(p->a, e) != ARCHIVE_OK) {
		err_set(p->err, "%s: %s", rel, archive_error_string(p->a));
		goto out;
	}
	p->stats->entries++;
	if (type == TAR_FILE) {
		if (add_file_data(p, full, rel) < 0)
			goto out;
		p->stats->bytes += (uint64_t)st.st_size;
	}
	rc = type == TAR_DIR ? add_dir_children(p, full, rel, depth) : 0;
out:
	archive_entry_free(e);
	return rc;
}

int pack_tree(const char *src, const char *out, struct pack_stats *stats, struct tuap_err *err)
{
	struct packer p = {.root = src, .stats = stats, .err = err};
	char tmp[PATH_MAX];
	int rc = -1;

	memset(stats, 0, sizeof(*stats));
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", out, (long)getpid()) >= (int)sizeof(tmp))
		return err_set(err, "%s: path too long", out);
	p.a = archive_write_new();
	if (!p.a || archive_write_set_format_pax_restricted(p.a) != ARCHIVE_OK ||
	    archive_write_add_filter_gzip(p.a) != ARCHIVE_OK ||
	    archive_write_set_filter_option(p.a, "gzip", "timestamp", NULL) != ARCHIVE_OK ||
	    archive_write_open_filename(p.a, tmp) != ARCHIVE_OK) {
		err_set(err, "%s: %s", tmp, p.a ? archive_error_string(p.a) : "out of memory");
		goto out;
	}
	if (add_path(&p, "", 0) < 0)
		goto out;
	if (archive_write_close(p.a) != ARCHIVE_OK) {
		err_set(err, "%s: %s", tmp, archive_error_string(p.a));
		goto out;
	}
	if (rename(tmp, out) < 0) {
		err_set(err, "%s: %s", out, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	archive_write_free(p.a);
	if (rc < 0)
		unlink(tmp);
	return rc;
}
