/* SHA-256 over Nettle; see hash.h. */
#include "hash.h"

#include <errno.h>
#include <fcntl.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Nettle's short names are macros that would rename ours */
#undef sha256_init
#undef sha256_update
#undef sha256_digest

int sha256_init(struct sha256 *h)
{
	struct sha256_ctx *md = malloc(sizeof(*md));

	h->md = md;
	if (!md)
		return -1;
	nettle_sha256_init(md);
	return 0;
}

void sha256_update(struct sha256 *h, const void *data, size_t len)
{
	if (h->md)
		nettle_sha256_update(h->md, len, data);
}

void sha256_final_hex(struct sha256 *h, char hex[SHA256_HEX_LEN])
{
	unsigned char d[SHA256_DIGEST_SIZE];

	if (!h->md)
		abort();
	nettle_sha256_digest(h->md, sizeof(d), d);
	sha256_digest_hex(d, hex);
	sha256_free(h);
}

void sha256_digest_hex(const unsigned char digest[32], char hex[SHA256_HEX_LEN])
{
	for (size_t i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", digest[i]);
}

void sha256_free(struct sha256 *h)
{
	free(h->md);
	h->md = NULL;
}

void sha256_hex(const void *data, size_t len, char hex[SHA256_HEX_LEN])
{
	struct sha256 h;

	if (sha256_init(&h) < 0)
		abort();
	sha256_update(&h, data, len);
	sha256_final_hex(&h, hex);
}

int sha256_file_hex(const char *path, char hex[SHA256_HEX_LEN], uint64_t *size,
		    struct tuap_err *err)
{
	return sha256_file_hex_progress(path, hex, size, NULL, NULL, err);
}

int sha256_file_hex_progress(const char *path, char hex[SHA256_HEX_LEN], uint64_t *size,
			     file_progress_fn progress, void *arg, struct tuap_err *err)
{
	char block[1 << 14];
	struct sha256 h;
	struct stat st;
	uint64_t done = 0, told = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC), e = 0;
	const char *why = NULL;

	if (fd < 0)
		return err_set(err, "%s: %s", path, strerror(errno));
	if (sha256_init(&h) < 0) {
		close(fd);
		return err_set(err, "%s: cannot start sha256", path);
	}
	if (progress && fstat(fd, &st) < 0)
		e = errno;
	while (!e && !why) {
		ssize_t r = read(fd, block, sizeof(block));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			e = errno;
		if (r <= 0)
			break;
		sha256_update(&h, block, (size_t)r);
		done += (uint64_t)r;
		if (progress && done - told >= (1u << 20)) {
			told = done;
			if (!progress(done, (uint64_t)st.st_size, arg))
				why = FILE_STOPPED;
		}
	}
	close(fd);
	if (e || why) {
		sha256_free(&h);
		return err_set(err, "%s: %s", path, why ? why : strerror(e));
	}
	sha256_final_hex(&h, hex);
	if (size)
		*size = done;
	return 0;
}

uint32_t hash_fnv1a(const char *s, size_t n)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 16777619u;
	}
	return h;
}
