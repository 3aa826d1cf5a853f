/* File-system helpers; see fsutil.h. */
#include "fsutil.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *fs_read_file(const char *path, size_t max, size_t *len, struct tuap_err *err)
{
	char *data = NULL;
	size_t n = 0, cap = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		err_set(err, "%s: %s", path, strerror(errno));
		return NULL;
	}
	for (;;) {
		ssize_t r;

		if (n + 1 >= cap) {
			char *p;

			cap = cap ? cap * 2 : 4096;
			if (cap > max + 2)
				cap = max + 2;
			p = realloc(data, cap);
			if (!p) {
				err_set(err, "%s: out of memory", path);
				goto fail;
			}
			data = p;
		}
		r = read(fd, data + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err_set(err, "%s: %s", path, strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > max) {
			err_set(err, "%s: larger than %zu bytes", path, max);
			goto fail;
		}
	}
	close(fd);
	if (!data && !(data = malloc(1))) {
		err_set(err, "%s: out of memory", path);
		return NULL;
	}
	data[n] = '\0';
	if (len)
		*len = n;
	return data;
fail:
	close(fd);
	free(data);
	return NULL;
}

int fs_sync_parent(const char *path, struct tuap_err *err)
{
	char copy[PATH_MAX];
	int fd, rc = 0;

	snprintf(copy, sizeof(copy), "%s", path);
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return err_set(err, "%s: cannot open directory: %s", path, strerror(errno));
	if (fsync(fd) < 0)
		rc = err_set(err, "%s: fsync directory: %s", path, strerror(errno));
	close(fd);
	return rc;
}

static int write_renamed(const char *path, const void *data, size_t len, mode_t mode, bool sync,
			 struct tuap_err *err)
{
	char tmp[PATH_MAX];
	const char *p = data;
	int fd;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp))
		return err_set(err, "%s: path too long", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return err_set(err, "%s: %s", tmp, strerror(errno));
	if (fchmod(fd, mode) < 0)
		goto fail;
	while (len > 0) {
		ssize_t w = write(fd, p, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			goto fail;
		p += w;
		len -= (size_t)w;
	}
	if (sync && fsync(fd) < 0)
		goto fail;
	if (close(fd) < 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) < 0)
		goto fail;
	return sync ? fs_sync_parent(path, err) : 0;
fail:
	err_set(err, "%s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return -1;
}

int fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
		    struct tuap_err *err)
{
	return write_renamed(path, data, len, mode, true, err);
}

int fs_write_renamed(const char *path, const void *data, size_t len, mode_t mode,
		     struct tuap_err *err)
{
	return write_renamed(path, data, len, mode, false, err);
}

int fs_mkdir_p(const char *path, mode_t mode, struct tuap_err *err)
{
	char p[PATH_MAX];
	size_t n;

	n = (size_t)snprintf(p, sizeof(p), "%s", path);
	if (n >= sizeof(p))
		return err_set(err, "%s: path too long", path);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, mode) < 0 && errno != EEXIST)
			return err_set(err, "mkdir %s: %s", p, strerror(errno));
		*s = '/';
	}
	if (mkdir(p, mode) < 0 && errno != EEXIST)
		return err_set(err, "mkdir %s: %s", p, strerror(errno));
	return 0;
}

int fs_exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

int fs_path(char *out, size_t len, struct tuap_err *err, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out, len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len)
		return err_set(err, "path too long: %.64s...", out);
	return 0;
}

char *fs_strip_slashes(char *path)
{
	size_t n = strlen(path);

	while (n > 1 && path[n - 1] == '/')
		path[--n] = '\0';
	return path;
}
