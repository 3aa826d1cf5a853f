/* CURVE key files; see keys.h. */
#include "keys.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "fsutil.h"

void keys_wipe(void *p, size_t n)
{
	sodium_memzero(p, n);
}

int keys_valid(const char *s)
{
	uint8_t raw[32];

	if (!s || strlen(s) != KEYS_Z85_LEN)
		return 0;
	for (const char *p = s; *p; p++)
		if (!strchr("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/"
			    "*?&<>()[]{}@%$#",
			    *p))
			return 0;
	return zmq_z85_decode(raw, s) != NULL;
}

int keys_keypair(char pub[KEYS_Z85_SIZE], char sec[KEYS_Z85_SIZE], struct tuap_err *err)
{
	if (zmq_curve_keypair(pub, sec) != 0)
		return err_set(err, "cannot make a CURVE keypair: %s", zmq_strerror(zmq_errno()));
	return 0;
}

int keys_public_of(const char *sec, char pub[KEYS_Z85_SIZE], struct tuap_err *err)
{
	if (!keys_valid(sec))
		return err_set(err, "not a Z85 CURVE key (40 characters)");
	if (zmq_curve_public(pub, sec) != 0)
		return err_set(err, "cannot derive the public key: %s", zmq_strerror(zmq_errno()));
	return 0;
}

static int valid_name(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > 200 || name[0] == '.')
		return 0;
	return strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") ==
	       n;
}

/* Creates path exclusively with the given mode and writes line + "\n" to it. */
static int write_new(const char *path, const char *line, mode_t mode, struct tuap_err *err)
{
	char text[KEYS_Z85_SIZE + 1];
	size_t len = (size_t)snprintf(text, sizeof(text), "%s\n", line);
	mode_t old = umask(077);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	int rc = -1;

	umask(old);
	if (fd < 0) {
		err_set(err, "%s: %s%s", path, strerror(errno),
			errno == EEXIST ? " (key files are never overwritten; remove it first)"
					: "");
		goto out;
	}
	if (fchmod(fd, mode) < 0 || write(fd, text, len) != (ssize_t)len || fsync(fd) < 0) {
		err_set(err, "%s: %s", path, strerror(errno));
		close(fd);
		unlink(path);
		goto out;
	}
	if (close(fd) < 0) {
		err_set(err, "%s: %s", path, strerror(errno));
		unlink(path);
		goto out;
	}
	rc = 0;
out:
	keys_wipe(text, sizeof(text));
	return rc;
}

int keys_generate(const char *dir, const char *name, char pub[KEYS_Z85_SIZE], struct tuap_err *err)
{
	char kpath[PATH_MAX], ppath[PATH_MAX];
	char p[KEYS_Z85_SIZE], s[KEYS_Z85_SIZE];
	int rc = -1;

	if (!valid_name(name))
		return err_set(err,
			       "'%s' is not a usable key name ([A-Za-z0-9._-], no leading '.')",
			       name);
	if ((size_t)snprintf(kpath, sizeof(kpath), "%s/%s.key", dir, name) >= sizeof(kpath) ||
	    (size_t)snprintf(ppath, sizeof(ppath), "%s/%s.pub", dir, name) >= sizeof(ppath))
		return err_set(err, "%s/%s: path too long", dir, name);
	if (fs_exists(ppath))
		return err_set(err, "%s: exists (key files are never overwritten; remove it first)",
			       ppath);
	if (keys_keypair(p, s, err) < 0)
		goto out;
	if (write_new(kpath, s, 0600, err) < 0)
		goto out;
	if (write_new(ppath, p, 0644, err) < 0) {
		unlink(kpath);
		goto out;
	}
	if (fs_sync_parent(kpath, err) < 0)
		goto out;
	if (pub)
		memcpy(pub, p, KEYS_Z85_SIZE);
	rc = 0;
out:
	keys_wipe(s, sizeof(s));
	return rc;
}

/* Reads at most max bytes of an open file into a NUL-terminated buffer of max + 1 bytes. */
static char *read_fd(int fd, const char *path, size_t max, size_t *len, struct tuap_err *err)
{
	char *data = malloc(max + 1);
	size_t n = 0;

	if (!data) {
		err_set(err, "%s: out of memory", path);
		return NULL;
	}
	for (;;) {
		ssize_t r = read(fd, data + n, max + 1 - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err_set(err, "%s: %s", path, strerror(errno));
			break;
		}
		if (r == 0) {
			data[n] = '\0';
			*len = n;
			return data;
		}
		n += (size_t)r;
		if (n > max) {
			err_set(err, "%s: larger than %zu bytes", path, max);
			break;
		}
	}
	keys_wipe(data, n < max + 1 ? n : max + 1);
	free(data);
	return NULL;
}

char *keys_read_private(const char *path, size_t max, size_t *len, struct tuap_err *err)
{
	struct stat st;
	char *data = NULL;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);

	if (fd < 0) {
		err_set(err, "%s: %s%s", path, strerror(errno),
			errno == ELOOP ? " (a symlink; secrets are read only from real files)"
				       : "");
		return NULL;
	}
	if (fstat(fd, &st) < 0) {
		err_set(err, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		err_set(err, "%s: not a regular file", path);
		goto out;
	}
	if (st.st_mode & 077) {
		err_set(err, "%s: mode %04o lets others see a secret key; chmod 600 %s", path,
			(unsigned)(st.st_mode & 07777), path);
		goto out;
	}
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		err_set(err, "%s: owned by uid %u, expected %u or root", path, (unsigned)st.st_uid,
			(unsigned)geteuid());
		goto out;
	}
	data = read_fd(fd, path, max, len, err);
out:
	close(fd);
	return data;
}

void keys_free_private(char *data, size_t len)
{
	if (!data)
		return;
	keys_wipe(data, len + 1);
	free(data);
}

/* Copies the single key line of text (surrounding white space allowed) into key. */
static int parse_key(const char *path, const char *text, char key[KEYS_Z85_SIZE],
		     struct tuap_err *err)
{
	const char *s = text, *e;

	while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
		e--;
	if (e - s != KEYS_Z85_LEN)
		return err_set(err, "%s: expected one 40-character Z85 key", path);
	memcpy(key, s, KEYS_Z85_LEN);
	key[KEYS_Z85_LEN] = '\0';
	if (!keys_valid(key)) {
		keys_wipe(key, KEYS_Z85_SIZE);
		return err_set(err, "%s: not a valid Z85 key", path);
	}
	return 0;
}

int keys_load_public(const char *path, char pub[KEYS_Z85_SIZE], struct tuap_err *err)
{
	size_t len;
	char *text = fs_read_file(path, 256, &len, err);
	int rc;

	if (!text)
		return -1;
	rc = parse_key(path, text, pub, err);
	free(text);
	return rc;
}

int keys_load_secret(const char *path, char sec[KEYS_Z85_SIZE], struct tuap_err *err)
{
	size_t len;
	char *text = keys_read_private(path, 256, &len, err);
	int rc;

	if (!text)
		return -1;
	rc = parse_key(path, text, sec, err);
	keys_free_private(text, len);
	return rc;
}
