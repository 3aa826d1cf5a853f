/*
 * Helpers shared by domain.c (provision.conf) and domain_valid.c (the value validators):
 * "why" messages and character classes. Not for use outside the domain model.
 */
#ifndef TUAP_DOMAIN_IMPL_H
#define TUAP_DOMAIN_IMPL_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

/* Fills why (may be NULL) and returns -1. */
int domain_why(char *why, size_t len, const char *fmt, ...) TUAP_PRINTF(3, 4);
/* A character for a message: 'x', "a space", or 0xNN for what would not print. */
const char *domain_show_char(int c, char buf[8]);

static inline bool is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static inline bool is_lower_alnum(int c)
{
	return (c >= 'a' && c <= 'z') || is_digit(c);
}

static inline bool is_alnum(int c)
{
	return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

#endif
