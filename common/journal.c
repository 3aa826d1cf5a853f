/* Append-only, line-per-record journals; see journal.h. */
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "fsutil.h"
#include "log.h"

static void escape(struct buf *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '%' || *s == '\t' || *s == '\n' || *s == '\r')
			buf_addf(b, "%%%02X", (unsigned char)*s);
		else
			buf_add(b, s, 1);
	}
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Unescapes in place; -1 on a malformed escape. */
static int unescape(char *s)
{
	char *w = s;

	for (char *r = s; *r; r++) {
		if (*r != '%') {
			*w++ = *r;
			continue;
		}
		if (hexval(r[1]) < 0 || hexval(r[2]) < 0)
			return -1;
		*w++ = (char)(hexval(r[1]) * 16 + hexval(r[2]));
		r += 2;
	}
	*w = '\0';
	return 0;
}

/* Length of the file up to and including its last newline. */
static off_t complete_length(int fd)
{
	char block[4096];
	off_t end = lseek(fd, 0, SEEK_END);

	while (end > 0) {
		size_t n = end > (off_t)sizeof(block) ? sizeof(block) : (size_t)end;
		ssize_t r = pread(fd, block, n, end - (off_t)n);

		if (r != (ssize_t)n)
			return -1;
		for (size_t i = n; i > 0; i--)
			if (block[i - 1] == '\n')
				return end - (off_t)n + (off_t)i;
		end -= (off_t)n;
	}
	return 0;
}

int journal_open(struct journal *j, const char *path, struct tuap_err *err)
{
	off_t keep;

	j->fd = -1;
	if (fs_path(j->path, sizeof(j->path), err, "%s", path) < 0)
		return -1;
	j->fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (j->fd < 0)
		return err_set(err, "%s: %s", path, strerror(errno));
	keep = complete_length(j->fd);
	if (keep < 0 || ftruncate(j->fd, keep) < 0) {
		err_set(err, "%s: cannot cut torn record: %s", path, strerror(errno));
		journal_close(j);
		return -1;
	}
	return 0;
}

int journal_format(struct buf *out, const char *path, const char *const *fields, size_t n,
		   struct tuap_err *err)
{
	size_t start = out->len;

	if (n == 0 || n > JOURNAL_MAX_FIELDS)
		return err_set(err, "%s: a record has 1 to %d fields", path, JOURNAL_MAX_FIELDS);
	for (size_t i = 0; i < n; i++) {
		if (i)
			buf_add(out, "\t", 1);
		escape(out, fields[i] ? fields[i] : "");
	}
	buf_add(out, "\n", 1);
	if (out->len - start > JOURNAL_MAX_LINE) {
		err_set(err, "%s: record of %zu bytes is too long", path, out->len - start);
		out->len = start;
		return -1;
	}
	return 0;
}

int journal_write(struct journal *j, const char *lines, size_t len, struct tuap_err *err)
{
	/* One write(2) with O_APPEND: a record is never interleaved with another. */
	errno = 0;
	if (write(j->fd, lines, len) != (ssize_t)len)
		return err_set(err, "%s: %s", j->path, errno ? strerror(errno) : "short write");
	return 0;
}

int journal_sync(struct journal *j, struct tuap_err *err)
{
	if (fdatasync(j->fd) < 0)
		return err_set(err, "%s: fdatasync: %s", j->path, strerror(errno));
	return 0;
}

int journal_append(struct journal *j, const char *const *fields, size_t n, bool sync,
		   struct tuap_err *err)
{
	struct buf b = BUF_INIT;
	int rc = -1;

	if (journal_format(&b, j->path, fields, n, err) == 0 &&
	    journal_write(j, b.s, b.len, err) == 0 && (!sync || journal_sync(j, err) == 0))
		rc = 0;
	buf_free(&b);
	return rc;
}

void journal_close(struct journal *j)
{
	if (j->fd >= 0)
		close(j->fd);
	j->fd = -1;
}

static int replay_line(const char *path, char *line, int lineno, journal_fn fn, void *ctx)
{
	char *fields[JOURNAL_MAX_FIELDS];
	size_t n = 0;

	if (!*line)
		return 0;
	for (char *f = line;;) {
		char *tab = strchr(f, '\t');

		if (tab)
			*tab = '\0';
		if (n == JOURNAL_MAX_FIELDS || unescape(f) < 0) {
			log_warn("%s:%d: malformed journal record skipped", path, lineno);
			return 0;
		}
		fields[n++] = f;
		if (!tab)
			break;
		f = tab + 1;
	}
	return n ? fn(ctx, fields, n, lineno) : 0;
}

int journal_replay(const char *path, journal_fn fn, void *ctx, struct tuap_err *err)
{
	size_t len;
	char *data, *p, *nl;
	int lineno = 0, rc = 0;

	if (!fs_exists(path))
		return 0;
	data = fs_read_file(path, JOURNAL_MAX_SIZE, &len, err);
	if (!data)
		return -1;
	/* Only newline-terminated records count: a torn last line is ignored. */
	for (p = data; rc == 0 && (nl = memchr(p, '\n', len - (size_t)(p - data))); p = nl + 1) {
		*nl = '\0';
		lineno++;
		if (strlen(p) != (size_t)(nl - p)) {
			log_warn("%s:%d: NUL byte in journal record; skipped", path, lineno);
			continue;
		}
		rc = replay_line(path, p, lineno, fn, ctx);
	}
	free(data);
	return rc;
}
