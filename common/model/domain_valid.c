/*
 * The value validators declared in domain.h: domain, user, package and mail names, sizes, IP
 * addresses, and upstream's MAC scheme. They know nothing of provision.conf (domain.c does) and
 * are shared with users.yaml and the CLI; they sit in tuap_common so the agent may use them.
 * Each returns 0, or -1 with a short phrase in why ("it holds ';' ...") for the caller's message.
 */
#include "domain.h"
#include "domain_impl.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "hash.h"

int domain_why(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (why && len) {
		va_start(ap, fmt);
		vsnprintf(why, len, fmt, ap);
		va_end(ap);
	}
	return -1;
}

const char *domain_show_char(int c, char buf[8])
{
	if (c == ' ')
		return "a space";
	if (c > 0x20 && c < 0x7f)
		snprintf(buf, 8, "'%c'", c);
	else
		snprintf(buf, 8, "0x%02x", (unsigned)(unsigned char)c);
	return buf;
}

/* A copy of user text for a message: printable ASCII only, at most 40 characters. */
static const char *printable(const char *s, char buf[48])
{
	size_t k = 0;

	for (; *s && k < 40; s++)
		buf[k++] = (*s >= 0x20 && *s < 0x7f) ? *s : '?';
	if (*s)
		memcpy(buf + k, "...", 3), k += 3;
	buf[k] = '\0';
	return buf;
}

int valid_domain_name(const char *s, char *why, size_t len)
{
	size_t n = strlen(s), start = 0;
	char cb[8];

	if (n == 0)
		return domain_why(why, len, "it is empty");
	if (n > DOMAIN_NAME_MAX)
		return domain_why(why, len, "it is longer than %d characters", DOMAIN_NAME_MAX);
	for (size_t i = 0; i <= n; i++) {
		size_t l = i - start;
		bool numeric = true;

		if (i < n && s[i] != '.') {
			if (!is_alnum((unsigned char)s[i]) && s[i] != '-')
				return domain_why(why, len,
						  "it holds %s (only letters, digits, '-' and '.')",
						  domain_show_char(s[i], cb));
			continue;
		}
		if (l == 0)
			return domain_why(why, len,
					  i == n ? "it ends with a dot" : "it has an empty label");
		if (l > 63)
			return domain_why(why, len, "a label is longer than 63 characters");
		if (s[start] == '-' || s[i - 1] == '-')
			return domain_why(why, len, "a label starts or ends with '-'");
		for (size_t k = start; k < i; k++)
			numeric = numeric && is_digit((unsigned char)s[k]);
		if (i == n && numeric)
			return domain_why(why, len, "its last label is all digits");
		start = i + 1;
	}
	return 0;
}

int valid_user_name(const char *s, char *why, size_t len)
{
	size_t n = strlen(s);
	char cb[8];

	if (n == 0)
		return domain_why(why, len, "it is empty");
	if (n > 32)
		return domain_why(why, len, "it is longer than 32 characters");
	if (!(s[0] >= 'a' && s[0] <= 'z') && s[0] != '_')
		return domain_why(why, len, "it must start with a lower-case letter or '_'");
	for (size_t i = 1; i < n; i++) {
		int c = (unsigned char)s[i];

		if (is_lower_alnum(c) || c == '_' || c == '-' || (c == '$' && i == n - 1))
			continue;
		return domain_why(why, len, "it holds %s (only a-z, 0-9, '_', '-' and a final '$')",
				  domain_show_char(c, cb));
	}
	return 0;
}

/* name[:arch][=version], as apt takes it; RPM names fit the name part. */
int valid_package_name(const char *s, char *why, size_t len)
{
	size_t n = strlen(s), i = 0;
	char cb[8];

	if (n == 0)
		return domain_why(why, len, "it is empty");
	if (n > 256)
		return domain_why(why, len, "it is longer than 256 characters");
	if (!is_alnum((unsigned char)s[0]))
		return domain_why(why, len, "it must start with a letter or digit");
	while (i < n && (is_alnum((unsigned char)s[i]) || strchr("._+-", s[i])))
		i++;
	if (i < n && s[i] == ':') {
		size_t a = ++i;

		while (i < n && (is_lower_alnum((unsigned char)s[i]) || s[i] == '-'))
			i++;
		if (i == a)
			return domain_why(why, len, "it has an empty architecture after ':'");
	}
	if (i < n && s[i] == '=') {
		if (!is_digit((unsigned char)s[++i]))
			return domain_why(why, len,
					  "the version after '=' must start with a digit");
		while (i < n && (is_alnum((unsigned char)s[i]) || strchr(".+~:-", s[i])))
			i++;
	}
	if (i < n && s[i] == ' ')
		return domain_why(why, len, "it holds a space (separate packages with commas)");
	if (i < n)
		return domain_why(why, len,
				  "it holds %s (a package is NAME, NAME:ARCH or NAME=VERSION, with "
				  "letters, digits and . _ + -)",
				  domain_show_char(s[i], cb));
	return 0;
}

/* A plain address: the local part is kept to characters that are inert in /etc/aliases. */
int valid_email(const char *s, char *why, size_t len)
{
	const char *at = strchr(s, '@');
	size_t n = strlen(s), local;
	char dom_why[128], cb[8];

	if (n == 0)
		return domain_why(why, len, "it is empty");
	if (n > 254)
		return domain_why(why, len, "it is longer than 254 characters");
	if (!at)
		return domain_why(why, len, "it has no '@'");
	if (strchr(at + 1, '@'))
		return domain_why(why, len, "it has more than one '@'");
	local = (size_t)(at - s);
	if (local == 0 || local > 64)
		return domain_why(why, len, "the part before '@' must be 1 to 64 characters");
	if (s[0] == '.' || s[local - 1] == '.' || memmem(s, local, "..", 2))
		return domain_why(why, len, "the part before '@' has a misplaced dot");
	for (size_t i = 0; i < local; i++)
		if (!is_alnum((unsigned char)s[i]) && !strchr("._%+-", s[i]))
			return domain_why(
				why, len,
				"it holds %s before '@' (only letters, digits and . _ %% + -)",
				domain_show_char(s[i], cb));
	if (valid_domain_name(at + 1, dom_why, sizeof(dom_why)) < 0)
		return domain_why(why, len, "the domain after '@' is not valid: %s", dom_why);
	if (!strchr(at + 1, '.'))
		return domain_why(why, len, "the domain after '@' has no dot");
	return 0;
}

static int unit_shift(char c)
{
	switch (c) {
	case 'k':
	case 'K':
		return 10;
	case 'm':
	case 'M':
		return 20;
	case 'g':
	case 'G':
		return 30;
	case 't':
	case 'T':
		return 40;
	}
	return -1;
}

/* K/M/G/T with an optional i, iB or B, or B alone (bytes); 0 when none. Returns -1 when the
 * text is not a unit. */
static int parse_unit(const char *u, int *shift)
{
	*shift = 0;
	if (!*u)
		return 0;
	if ((u[0] == 'b' || u[0] == 'B') && !u[1])
		return 0;
	if ((*shift = unit_shift(u[0])) < 0)
		return -1;
	u++;
	if (*u == 'i' || *u == 'I')
		u++;
	if (*u == 'b' || *u == 'B')
		u++;
	return *u ? -1 : 0;
}

int parse_size(const char *s, uint64_t *out, char *why, size_t len)
{
	uint64_t whole = 0, frac = 0, frac_div = 1, mult, r;
	const char *p = s;
	char pb[48];
	int shift;

	*out = 0;
	if (!*s)
		return domain_why(why, len, "it is empty");
	if (*s == '-')
		return domain_why(why, len, "it is negative");
	if (!is_digit((unsigned char)*s))
		return domain_why(why, len, "it does not start with a number");
	for (; is_digit((unsigned char)*p); p++) {
		uint64_t digit = (uint64_t)(*p - '0');

		if (whole > UINT64_MAX / 10 || whole * 10 > UINT64_MAX - digit)
			return domain_why(why, len, "it is too large");
		whole = whole * 10 + digit;
	}
	if (*p == '.') {
		if (!is_digit((unsigned char)*++p))
			return domain_why(why, len, "a digit must follow the '.'");
		for (; is_digit((unsigned char)*p); p++) {
			if (frac_div >= 1000000)
				return domain_why(why, len, "it has more than 6 decimals");
			frac = frac * 10 + (uint64_t)(*p - '0');
			frac_div *= 10;
		}
	}
	while (*p == ' ' || *p == '\t')
		p++;
	if (parse_unit(p, &shift) < 0)
		return domain_why(why, len, "'%s' is not a unit (use K, M, G or T)",
				  printable(p, pb));
	if (frac_div > 1 && shift == 0)
		return domain_why(why, len, "a fraction needs a unit, as in 1.5G");
	mult = 1ULL << shift;
	if (whole > UINT64_MAX / mult)
		return domain_why(why, len, "it is too large");
	r = whole * mult;
	/* frac < 10^6 and mult <= 2^40: the product fits in 64 bits. */
	if (r > UINT64_MAX - frac * mult / frac_div)
		return domain_why(why, len, "it is too large");
	r += frac * mult / frac_div;
	if (r == 0)
		return domain_why(why, len, "it is zero");
	*out = r;
	return 0;
}

static int parse_prefix(const char *p, int max, int *out, char *why, size_t len)
{
	char pb[48];
	int v = 0;

	if (!*p)
		return domain_why(why, len, "the prefix after '/' is empty");
	for (const char *q = p; *q; q++) {
		if (!is_digit((unsigned char)*q) || q - p >= 3)
			return domain_why(why, len, "the prefix '/%s' is not a number from 0 to %d",
					  printable(p, pb), max);
		v = v * 10 + (*q - '0');
	}
	if (v > max)
		return domain_why(why, len, "the prefix /%d is larger than %d", v, max);
	*out = v;
	return 0;
}

int parse_ip(const char *s, bool allow_prefix, struct ip_addr *out, char *why, size_t len)
{
	char addr[INET6_ADDRSTRLEN + 1], txt[INET6_ADDRSTRLEN];
	const char *slash = strchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s);

	memset(out, 0, sizeof(*out));
	if (n == 0)
		return domain_why(why, len, "it is empty");
	if (slash && !allow_prefix)
		return domain_why(why, len, "it has a /prefix, which does not belong here");
	if (n >= sizeof(addr))
		return domain_why(why, len, "it is not an IPv4 or IPv6 address");
	memcpy(addr, s, n);
	addr[n] = '\0';
	out->family = memchr(addr, ':', n) ? AF_INET6 : AF_INET;
	if (inet_pton(out->family, addr, out->addr) != 1) {
		out->family = 0;
		if (memchr(addr, ':', n))
			return domain_why(why, len, "it is not an IPv6 address");
		if (strspn(addr, "0123456789.") == n)
			return domain_why(
				why, len,
				"it is not an IPv4 address, which is four numbers from 0 to 255");
		return domain_why(why, len, "it is not an IPv4 or IPv6 address");
	}
	out->prefix = out->family == AF_INET ? 24 : 64;
	if (slash) {
		if (parse_prefix(slash + 1, out->family == AF_INET ? 32 : 128, &out->prefix, why,
				 len) < 0) {
			out->family = 0;
			return -1;
		}
		out->prefix_given = true;
	}
	inet_ntop(out->family, out->addr, txt, sizeof(txt));
	snprintf(out->text, sizeof(out->text), "%s/%d", txt, out->prefix);
	return 0;
}

void domain_mac(const char *domain_name, int index, char out[18])
{
	struct sha256 h;
	char idx[16], hex[SHA256_HEX_LEN];
	int n = snprintf(idx, sizeof(idx), "/%d", index);

	if (sha256_init(&h) < 0)
		abort(); /* OpenSSL without SHA-256: nothing sensible to do */
	sha256_update(&h, domain_name, strlen(domain_name));
	sha256_update(&h, idx, (size_t)n);
	sha256_final_hex(&h, hex);
	snprintf(out, 18, "52:54:00:%.2s:%.2s:%.2s", hex, hex + 2, hex + 4);
}
