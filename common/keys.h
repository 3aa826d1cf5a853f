/*
 * CURVE keys (ZeroMQ's Curve25519), one keypair per domain plus tuapd's server keypair. On disk
 * a keypair is NAME.key (the secret, Z85, mode 0600) and NAME.pub (the public key, Z85, 0644),
 * one 40-character line each. Key files are created exclusively (never overwritten, never
 * through a symlink) under umask 077, and a secret file that others could read is refused, as
 * ssh does. Secrets are held in caller-provided buffers that the caller wipes with keys_wipe.
 */
#ifndef TUAP_KEYS_H
#define TUAP_KEYS_H

#include <stddef.h>

#include "err.h"

/* A key in Z85 text: 40 characters; buffers hold KEYS_Z85_SIZE bytes with the NUL. */
#define KEYS_Z85_LEN  40
#define KEYS_Z85_SIZE (KEYS_Z85_LEN + 1)

/* A new keypair in memory (for an agent config written straight into a seed). */
int keys_keypair(char pub[KEYS_Z85_SIZE], char sec[KEYS_Z85_SIZE], struct tuap_err *err);

/* Creates dir/NAME.key and dir/NAME.pub with a new keypair; pub (may be NULL) gets the public
 * key. NAME is [A-Za-z0-9._-]+ not starting with '.'. Fails, touching nothing, when either file
 * exists. */
int keys_generate(const char *dir, const char *name, char pub[KEYS_Z85_SIZE], struct tuap_err *err);

/* Reads a public key file (any mode). */
int keys_load_public(const char *path, char pub[KEYS_Z85_SIZE], struct tuap_err *err);

/* Reads a secret key file: a regular file (not a symlink), owned by us or root, not readable
 * or writable by group or others. The caller wipes sec with keys_wipe when done. */
int keys_load_secret(const char *path, char sec[KEYS_Z85_SIZE], struct tuap_err *err);

/* The public key of a secret key. */
int keys_public_of(const char *sec, char pub[KEYS_Z85_SIZE], struct tuap_err *err);

/* 1 if s is a well-formed 40-character Z85 key. */
int keys_valid(const char *s);

/* Overwrites n bytes at p in a way the compiler cannot drop (sodium_memzero). */
void keys_wipe(void *p, size_t n);

/* Reads a whole file that holds a secret (a key file, an agent config), with the checks of
 * keys_load_secret and at most max bytes; returns a NUL-terminated buffer that the caller
 * releases with keys_free_private(data, *len), which wipes it. */
char *keys_read_private(const char *path, size_t max, size_t *len, struct tuap_err *err);
void keys_free_private(char *data, size_t len);

#endif
