/*
 * SHA-256 (Nettle, which uses the CPU's SHA extensions where present, as OpenSSL does, in a
 * fraction of the size: the static agent with OpenSSL's libcrypto was 3.2 MiB bigger):
 * incremental, of a buffer, or of a whole file. Hex output is lower-case, 64 characters + NUL.
 */
#ifndef TUAP_HASH_H
#define TUAP_HASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define SHA256_HEX_LEN 65

struct sha256 {
	void *md; /* struct sha256_ctx */
};

int sha256_init(struct sha256 *h);
void sha256_update(struct sha256 *h, const void *data, size_t len);
/* Writes the digest as hex and frees the context. */
void sha256_final_hex(struct sha256 *h, char hex[SHA256_HEX_LEN]);
void sha256_free(struct sha256 *h);

void sha256_hex(const void *data, size_t len, char hex[SHA256_HEX_LEN]);
/* A 32-byte digest (from the wire, say) as hex. */
void sha256_digest_hex(const unsigned char digest[32], char hex[SHA256_HEX_LEN]);
/* How far a long read of a file got: bytes done of total (total 0 when unknown). Returning
 * false stops the read, which then fails with FILE_STOPPED in its error: the way a worker
 * thread gives up an image when nobody waits for it any more. */
typedef bool (*file_progress_fn)(uint64_t done, uint64_t total, void *arg);
#define FILE_STOPPED "stopped: nobody waits for it any more"

/* Hashes a file; size (may be NULL) gets its length. */
int sha256_file_hex(const char *path, char hex[SHA256_HEX_LEN], uint64_t *size,
		    struct tuap_err *err);
/* The same, telling progress (may be NULL) about every MiB read. */
int sha256_file_hex_progress(const char *path, char hex[SHA256_HEX_LEN], uint64_t *size,
			     file_progress_fn progress, void *arg, struct tuap_err *err);

/* 32-bit FNV-1a of s[0..n): the check of a journal line (a torn or edited line is caught, not
 * an attacker: the journals are root's and tuap's own). */
uint32_t hash_fnv1a(const char *s, size_t n);

#endif
