/*
 * The rules of valid.h: every name, path and address tuap accepts, for tuapd, tuap-ctl and the
 * agent alike. They know nothing of provision.conf (common/model/domain.c does).
 */
#include "valid.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int valid_why(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (why && len) {
		va_start(ap, fmt);
		vsnprintf(why, len, fmt, ap);
		va_end(ap);
	}
	return -1;
}

const char *valid_show_char(int c, char buf[8])
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
		return valid_why(why, len, "it is empty");
	if (n > VALID_DOMAIN_MAX)
		return valid_why(why, len, "it is longer than %d characters", VALID_DOMAIN_MAX);
	for (size_t i = 0; i <= n; i++) {
		size_t l = i - start;
		bool numeric = true;

		if (i < n && s[i] != '.') {
			if (s[i] >= 'A' && s[i] <= 'Z')
				return valid_why(why, len,
						 "it holds the upper-case %s (domain names are "
						 "lower case)",
						 valid_show_char(s[i], cb));
			if (!is_lower_alnum((unsigned char)s[i]) && s[i] != '-')
				return valid_why(why, len,
						 "it holds %s (only a-z, 0-9, '-' and '.')",
						 valid_show_char(s[i], cb));
			continue;
		}
		if (l == 0)
			return valid_why(why, len,
					 i == n ? "it ends with a dot" : "it has an empty label");
		if (l > 63)
			return valid_why(why, len, "a label is longer than 63 characters");
		if (s[start] == '-' || s[i - 1] == '-')
			return valid_why(why, len, "a label starts or ends with '-'");
		for (size_t k = start; k < i; k++)
			numeric = numeric && is_digit((unsigned char)s[k]);
		if (i == n && numeric)
			return valid_why(why, len, "its last label is all digits");
		start = i + 1;
	}
	return 0;
}

int valid_user_name(const char *s, char *why, size_t len)
{
	size_t n = strlen(s);
	char cb[8];

	if (n == 0)
		return valid_why(why, len, "it is empty");
	if (n > 32)
		return valid_why(why, len, "it is longer than 32 characters");
	if (!(s[0] >= 'a' && s[0] <= 'z') && s[0] != '_')
		return valid_why(why, len, "it must start with a lower-case letter or '_'");
	for (size_t i = 1; i < n; i++) {
		int c = (unsigned char)s[i];

		if (is_lower_alnum(c) || c == '_' || c == '-' || (c == '$' && i == n - 1))
			continue;
		return valid_why(why, len, "it holds %s (only a-z, 0-9, '_', '-' and a final '$')",
				 valid_show_char(c, cb));
	}
	return 0;
}

int valid_job_id(const char *s, char *why, size_t len)
{
	size_t n = strlen(s);
	char cb[8];

	if (n == 0)
		return valid_why(why, len, "it is empty");
	if (n > VALID_JOB_MAX)
		return valid_why(why, len, "it is longer than %d characters", VALID_JOB_MAX);
	if (s[0] == '.' || s[0] == '-')
		return valid_why(why, len, "it starts with %s", valid_show_char(s[0], cb));
	for (size_t i = 0; i < n; i++)
		if (!is_alnum((unsigned char)s[i]) && !strchr("._-", s[i]))
			return valid_why(why, len,
					 "it holds %s (only letters, digits, '.', '_' and '-')",
					 valid_show_char(s[i], cb));
	return 0;
}

int valid_host_port(const char *s, bool wildcard, char *why, size_t len)
{
	const char *colon = strrchr(s, ':'), *p;
	char host[INET6_ADDRSTRLEN + 2], cb[8];
	unsigned long port = 0;
	size_t n;

	if (!colon || colon == s)
		return valid_why(why, len, "it is not HOST:PORT");
	n = (size_t)(colon - s);
	if (s[0] == '[') {
		unsigned char a6[16];

		if (colon[-1] != ']' || n < 4 || n - 2 >= sizeof(host))
			return valid_why(why, len, "an IPv6 host is written [ADDRESS]:PORT");
		memcpy(host, s + 1, n - 2);
		host[n - 2] = '\0';
		if (inet_pton(AF_INET6, host, a6) != 1)
			return valid_why(why, len, "'%s' is not an IPv6 address", host);
	} else if (!(wildcard && n == 1 && s[0] == '*')) {
		for (p = s; p < colon; p++)
			if (!is_alnum((unsigned char)*p) && *p != '.' && *p != '-')
				return valid_why(why, len,
						 "the host holds %s (a name, an IPv4 address or "
						 "[IPV6])",
						 valid_show_char(*p, cb));
	}
	for (p = colon + 1; *p; p++) {
		if (!is_digit((unsigned char)*p) || port > 65535)
			return valid_why(why, len, "the port must be a number from 1 to 65535");
		port = port * 10 + (unsigned long)(*p - '0');
	}
	if (port == 0 || port > 65535)
		return valid_why(why, len, "the port must be a number from 1 to 65535");
	return 0;
}

int valid_abs_path(const char *s, char *why, size_t len)
{
	char cb[8];

	if (s[0] != '/')
		return valid_why(why, len, "it is not an absolute path");
	if (strlen(s) >= 4096)
		return valid_why(why, len, "it is longer than 4095 characters");
	for (const char *c = s; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			return valid_why(why, len, "it holds %s", valid_show_char(*c, cb));
	for (const char *c = s + 1; *c;) {
		size_t k = strcspn(c, "/");

		if (k == 0)
			return valid_why(why, len,
					 "it has an empty component ('//' or a final '/')");
		if ((k == 1 && c[0] == '.') || (k == 2 && c[0] == '.' && c[1] == '.'))
			return valid_why(why, len, "it has a '%.*s' component", (int)k, c);
		c += k;
		if (*c == '/' && !*++c)
			return valid_why(why, len, "it ends with '/'");
	}
	return 0;
}

int valid_text_line(const char *s, size_t max, bool colon_ok, char *why, size_t len)
{
	size_t n = strlen(s);

	if (n > max)
		return valid_why(why, len, "it is longer than %zu characters", max);
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '\n' || ch == '\r')
			return valid_why(why, len, "contains a newline (one value per line)");
		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			return valid_why(why, len, "contains control character 0x%02x", ch);
		if (ch == ':' && !colon_ok)
			return valid_why(why, len, "':' is not allowed (it separates fields)");
	}
	return 0;
}

int valid_sudo_rule(const char *s, char *why, size_t len)
{
	size_t n = strlen(s), lead = strspn(s, " \t");

	if (valid_text_line(s, 4096, true, why, len) < 0)
		return -1;
	if (lead == n)
		return valid_why(why, len, "it is empty");
	if (s[lead] == ',')
		return valid_why(why, len,
				 "it starts with ',', which would give the rule to more users");
	if (s[n - 1] == '\\')
		return valid_why(why, len, "it ends with '\\', which would join the next line");
	if (!strchr(s, '='))
		return valid_why(why, len,
				 "it has no '=' (a rule is HOSTS=(RUNAS) COMMANDS, as in "
				 "ALL=(ALL) NOPASSWD:ALL)");
	return 0;
}

int valid_home_dir(const char *s, char *why, size_t len)
{
	/* Shared directories a home must not be (they hold other people's files) ... */
	static const char *const exact[] = {
		"/",	    "/home",	"/usr",	      "/usr/local", "/usr/share", "/var",
		"/var/lib", "/var/log", "/var/cache", "/var/spool", "/var/mail",  "/opt",
		"/srv",	    "/tmp",	"/var/tmp",   "/run",	    "/mnt",	  "/media",
	};
	/* ... and trees that are root's by design, nor anything in them. */
	static const char *const tree[] = {
		"/root",	"/etc",		"/boot",
		"/proc",	"/sys",		"/dev",
		"/bin",		"/sbin",	"/lib",
		"/lib32",	"/lib64",	"/libx32",
		"/usr/bin",	"/usr/sbin",	"/usr/lib",
		"/usr/libexec", "/usr/include", "/var/lib/dpkg",
		"/var/lib/apt", "/run/systemd", "/var/lib/tuap-agent",
	};

	if (valid_abs_path(s, why, len) < 0)
		return -1;
	for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++)
		if (!strcmp(s, exact[i]))
			return valid_why(why, len, "%s is a shared system directory, not a home",
					 s);
	for (size_t i = 0; i < sizeof(tree) / sizeof(tree[0]); i++) {
		size_t n = strlen(tree[i]);

		if (!strncmp(s, tree[i], n) && (s[n] == '\0' || s[n] == '/'))
			return valid_why(why, len, "%s is %s %s, which root owns", s,
					 s[n] ? "inside" : "the system directory", tree[i]);
	}
	return 0;
}

int valid_make_target(const char *s, char *why, size_t len)
{
	size_t n = strlen(s), ok;
	char cb[8];

	if (n == 0)
		return valid_why(why, len, "it is empty");
	if (n > 255)
		return valid_why(why, len, "it is longer than 255 characters");
	if (s[0] == '-')
		return valid_why(why, len, "it starts with '-' (make would take an option)");
	ok = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._/+-");
	if (ok < n)
		return valid_why(why, len, "it holds %s (letters, digits and . _ / + -)",
				 valid_show_char(s[ok], cb));
	return 0;
}

/* name[:arch][=version], as apt takes it; RPM names fit the name part. */
int valid_package_name(const char *s, char *why, size_t len)
{
	size_t n = strlen(s), i = 0;
	char cb[8];

	if (n == 0)
		return valid_why(why, len, "it is empty");
	if (n > 256)
		return valid_why(why, len, "it is longer than 256 characters");
	if (!is_alnum((unsigned char)s[0]))
		return valid_why(why, len, "it must start with a letter or digit");
	while (i < n && (is_alnum((unsigned char)s[i]) || strchr("._+-", s[i])))
		i++;
	if (i < n && s[i] == ':') {
		size_t a = ++i;

		while (i < n && (is_lower_alnum((unsigned char)s[i]) || s[i] == '-'))
			i++;
		if (i == a)
			return valid_why(why, len, "it has an empty architecture after ':'");
	}
	if (i < n && s[i] == '=') {
		if (!is_digit((unsigned char)s[++i]))
			return valid_why(why, len, "the version after '=' must start with a digit");
		while (i < n && (is_alnum((unsigned char)s[i]) || strchr(".+~:-", s[i])))
			i++;
	}
	if (i < n && s[i] == ' ')
		return valid_why(why, len, "it holds a space (separate packages with commas)");
	if (i < n)
		return valid_why(why, len,
				 "it holds %s (a package is NAME, NAME:ARCH or NAME=VERSION, with "
				 "letters, digits and . _ + -)",
				 valid_show_char(s[i], cb));
	return 0;
}

/* A plain address: the local part is kept to characters that are inert in /etc/aliases. */
int valid_email(const char *s, char *why, size_t len)
{
	const char *at = strchr(s, '@');
	size_t n = strlen(s), local;
	char dom_why[128], cb[8];

	if (n == 0)
		return valid_why(why, len, "it is empty");
	if (n > 254)
		return valid_why(why, len, "it is longer than 254 characters");
	if (!at)
		return valid_why(why, len, "it has no '@'");
	if (strchr(at + 1, '@'))
		return valid_why(why, len, "it has more than one '@'");
	local = (size_t)(at - s);
	if (local == 0 || local > 64)
		return valid_why(why, len, "the part before '@' must be 1 to 64 characters");
	if (s[0] == '.' || s[local - 1] == '.' || memmem(s, local, "..", 2))
		return valid_why(why, len, "the part before '@' has a misplaced dot");
	for (size_t i = 0; i < local; i++)
		if (!is_alnum((unsigned char)s[i]) && !strchr("._%+-", s[i]))
			return valid_why(
				why, len,
				"it holds %s before '@' (only letters, digits and . _ %% + -)",
				valid_show_char(s[i], cb));
	if (valid_domain_name(at + 1, dom_why, sizeof(dom_why)) < 0)
		return valid_why(why, len, "the domain after '@' is not valid: %s", dom_why);
	if (!strchr(at + 1, '.'))
		return valid_why(why, len, "the domain after '@' has no dot");
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
		return valid_why(why, len, "it is empty");
	if (*s == '-')
		return valid_why(why, len, "it is negative");
	if (!is_digit((unsigned char)*s))
		return valid_why(why, len, "it does not start with a number");
	for (; is_digit((unsigned char)*p); p++) {
		uint64_t digit = (uint64_t)(*p - '0');

		if (whole > UINT64_MAX / 10 || whole * 10 > UINT64_MAX - digit)
			return valid_why(why, len, "it is too large");
		whole = whole * 10 + digit;
	}
	if (*p == '.') {
		if (!is_digit((unsigned char)*++p))
			return valid_why(why, len, "a digit must follow the '.'");
		for (; is_digit((unsigned char)*p); p++) {
			if (frac_div >= 1000000)
				return valid_why(why, len, "it has more than 6 decimals");
			frac = frac * 10 + (uint64_t)(*p - '0');
			frac_div *= 10;
		}
	}
	while (*p == ' ' || *p == '\t')
		p++;
	if (parse_unit(p, &shift) < 0)
		return valid_why(why, len, "'%s' is not a unit (use K, M, G or T)",
				 printable(p, pb));
	if (frac_div > 1 && shift == 0)
		return valid_why(why, len, "a fraction needs a unit, as in 1.5G");
	mult = 1ULL << shift;
	if (whole > UINT64_MAX / mult)
		return valid_why(why, len, "it is too large");
	r = whole * mult;
	/* frac < 10^6 and mult <= 2^40: the product fits in 64 bits. */
	if (r > UINT64_MAX - frac * mult / frac_div)
		return valid_why(why, len, "it is too large");
	r += frac * mult / frac_div;
	if (r == 0)
		return valid_why(why, len, "it is zero");
	*out = r;
	return 0;
}

static int parse_prefix(const char *p, int max, int *out, char *why, size_t len)
{
	char pb[48];
	int v = 0;

	if (!*p)
		return valid_why(why, len, "the prefix after '/' is empty");
	for (const char *q = p; *q; q++) {
		if (!is_digit((unsigned char)*q) || q - p >= 3)
			return valid_why(why, len, "the prefix '/%s' is not a number from 0 to %d",
					 printable(p, pb), max);
		v = v * 10 + (*q - '0');
	}
	if (v > max)
		return valid_why(why, len, "the prefix /%d is larger than %d", v, max);
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
		return valid_why(why, len, "it is empty");
	if (slash && !allow_prefix)
		return valid_why(why, len, "it has a /prefix, which does not belong here");
	if (n >= sizeof(addr))
		return valid_why(why, len, "it is not an IPv4 or IPv6 address");
	memcpy(addr, s, n);
	addr[n] = '\0';
	out->family = memchr(addr, ':', n) ? AF_INET6 : AF_INET;
	if (inet_pton(out->family, addr, out->addr) != 1) {
		out->family = 0;
		if (memchr(addr, ':', n))
			return valid_why(why, len, "it is not an IPv6 address");
		if (strspn(addr, "0123456789.") == n)
			return valid_why(
				why, len,
				"it is not an IPv4 address, which is four numbers from 0 to 255");
		return valid_why(why, len, "it is not an IPv4 or IPv6 address");
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
