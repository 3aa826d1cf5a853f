/*
 * provision.conf's meaning (see domain.h and docs/provision.conf.5): config.c reads the file as
 * Config::Simple does, this file checks every key, applies defaults and cross-checks the
 * network keys, reporting every problem as "FILE:LINE: key: what is wrong (how to fix it)".
 * The value validators it uses are in domain_valid.c. Loading a whole domain directory
 * (domain_load) lives elsewhere.
 */
#include "domain.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "config.h"
#include "hash.h"

#define MIB		 (1024ULL * 1024)
#define MEMORY_MIN_MIB	 128
#define MEMORY_MAX_MIB	 (16U * 1024 * 1024) /* 16 TiB */
#define CPUS_MAX	 256
#define CATALOG_NAME_MAX 64

/* ---- addresses ---- */

static bool bit_at(const struct ip_addr *ip, int b)
{
	return (ip->addr[b / 8] >> (7 - b % 8)) & 1;
}

static int addr_bits(const struct ip_addr *ip)
{
	return ip->family == AF_INET ? 32 : 128;
}

static bool host_bits_all(const struct ip_addr *ip, int prefix, bool ones)
{
	for (int b = prefix; b < addr_bits(ip); b++)
		if (bit_at(ip, b) != ones)
			return false;
	return true;
}

/* How many leading bits a and b (same family) share. */
static int common_bits(const struct ip_addr *a, const struct ip_addr *b)
{
	int n = 0;

	while (n < addr_bits(a) && bit_at(a, n) == bit_at(b, n))
		n++;
	return n;
}

static const char *addr_str(const struct ip_addr *ip, char *buf, size_t len)
{
	if (!inet_ntop(ip->family, ip->addr, buf, (socklen_t)len))
		snprintf(buf, len, "?");
	return buf;
}

/* "192.0.2.0/24": the subnet ip is in. */
static const char *net_str(const struct ip_addr *ip, char *buf, size_t len)
{
	struct ip_addr net = *ip;
	char a[INET6_ADDRSTRLEN];

	for (int b = ip->prefix; b < addr_bits(ip); b++)
		net.addr[b / 8] &= (unsigned char)~(1u << (7 - b % 8));
	snprintf(buf, len, "%s/%d", addr_str(&net, a, sizeof(a)), ip->prefix);
	return buf;
}

enum { ADDR_OWN = 1, ADDR_LOOPBACK_OK = 2 };

/* Addresses that cannot be a guest's own address, its gateway or (flags) its resolver. */
static int addr_problem(const struct ip_addr *ip, int flags, char *why, size_t len)
{
	static const unsigned char zero[16];
	const unsigned char *a = ip->addr;
	char net[80];

	if (ip->family == AF_INET) {
		if (a[0] == 0)
			return valid_why(why, len, "is in 0.0.0.0/8, which holds no hosts");
		if (a[0] == 127 && !(flags & ADDR_LOOPBACK_OK))
			return valid_why(why, len, "is a loopback address");
		if (a[0] >= 224)
			return valid_why(why, len, "is a multicast or reserved address");
	} else {
		if (!memcmp(a, zero, 16))
			return valid_why(why, len, "is the unspecified address");
		if (!memcmp(a, zero, 15) && a[15] == 1 && !(flags & ADDR_LOOPBACK_OK))
			return valid_why(why, len, "is the loopback address");
		if (a[0] == 0xff)
			return valid_why(why, len, "is a multicast address");
	}
	if (!(flags & ADDR_OWN) || !ip->prefix_given)
		return 0;
	if (ip->prefix == 0)
		return valid_why(why, len, "has the prefix /0, which is not a subnet");
	/* Only where the operator wrote the prefix: a defaulted /24 may not be the real one. */
	if (ip->family == AF_INET && ip->prefix <= 30 && host_bits_all(ip, ip->prefix, false))
		return valid_why(why, len, "is the network address of %s, not a host address",
				 net_str(ip, net, sizeof(net)));
	if (ip->family == AF_INET && ip->prefix <= 30 && host_bits_all(ip, ip->prefix, true))
		return valid_why(why, len, "is the broadcast address of %s, not a host address",
				 net_str(ip, net, sizeof(net)));
	return 0;
}

/* ---- provision.conf keys ---- */

enum key_id {
	K_IPS,
	K_GATEWAY,
	K_GATEWAY6,
	K_RESOLVERS,
	K_SIZE,
	K_IMAGE,
	K_PACKAGES,
	K_CONTACT_EMAIL,
	K_DEPENDS_ON,
	K_ADMIN_USER,
	K_MEMORY,
	K_CPUS,
	K_CPU_MODE,
	K_DISTRO,
	K_PRE_MAKE_SCRIPT,
	K_HYPERVISOR,
	K_HYPERVISOR_LABELS,
	K_DHCP_DEVNAME,
	K_BRIDGE_DEVNAME,
	K_COUNT
};

struct ctx {
	const char *path;
	const char *domain;
	struct diags *d;
	struct domain_conf *c;
	const struct config_entry *e; /* the entry being read */
	enum key_id id;
	int line[K_COUNT]; /* where each key was set; 0 when it was not */
	bool bad[K_COUNT]; /* the key had an error: cross-checks would only repeat it */
	char shown[2][96];
	int next_shown;
};

static const char *key_name(enum key_id id);

/* A value as a message shows it: printable, bounded. Two may be in use at once. */
static const char *shown(struct ctx *x, const char *v)
{
	char *out = x->shown[x->next_shown++ % 2];
	size_t k = 0, max = sizeof(x->shown[0]) - 4, n = strlen(v);

	for (size_t i = 0; i < n && k < max; i++)
		out[k++] = (v[i] >= 0x20 && v[i] < 0x7f) ? v[i] : '?';
	if (n > max)
		memcpy(out + k, "...", 3), k += 3;
	out[k] = '\0';
	return out;
}

static void bad(struct ctx *x, const char *fmt, ...) TUAP_PRINTF(2, 3);
static void warn(struct ctx *x, const char *fmt, ...) TUAP_PRINTF(2, 3);
static void xerr(struct ctx *x, enum key_id id, int line, const char *fmt, ...) TUAP_PRINTF(4, 5);

static void bad(struct ctx *x, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	diag_verror(x->d, DIAG_ERROR, x->path, x->e->line, key_name(x->id), fmt, ap);
	va_end(ap);
	x->bad[x->id] = true;
}

static void warn(struct ctx *x, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	diag_verror(x->d, DIAG_WARNING, x->path, x->e->line, key_name(x->id), fmt, ap);
	va_end(ap);
}

/* An error found by a cross-check, at the line of the key it names (or of a related key). */
static void xerr(struct ctx *x, enum key_id id, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	diag_verror(x->d, DIAG_ERROR, x->path, line, key_name(id), fmt, ap);
	va_end(ap);
}

/* The value of a one-value key; NULL when empty (the same as leaving the key out). */
static const char *scalar(struct ctx *x)
{
	const struct config_entry *e = x->e;

	if (e->n_values > 1) {
		bad(x,
		    "takes one value, got %zu (a comma makes a list; put the value in double "
		    "quotes if the comma belongs to it)",
		    e->n_values);
		return NULL;
	}
	if (e->n_values == 0 || !e->values[0][0])
		return NULL;
	return e->values[0];
}

static bool copy_val(struct ctx *x, char *dst, size_t cap, const char *v)
{
	size_t n = strlen(v);

	if (n >= cap) {
		bad(x, "'%s' is longer than %zu characters", shown(x, v), cap - 1);
		return false;
	}
	memcpy(dst, v, n + 1);
	return true;
}

/* A list item; NULL for an empty one, which is an error in a list of several. */
static const char *item(struct ctx *x, size_t i)
{
	const char *v = x->e->values[i];

	if (!*v && x->e->n_values > 1)
		bad(x, "item %zu of the list is empty (a stray comma?)", i + 1);
	return *v ? v : NULL;
}

static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!is_digit((unsigned char)*s))
			return false;
	return true;
}

static bool same_addr(const struct ip_addr *a, const struct ip_addr *b)
{
	return a->family == b->family && !memcmp(a->addr, b->addr, sizeof(a->addr));
}

/* A list of addresses (ips, resolvers) into out[*n]: each parsed and checked with flags; a
 * repeated one is an error, or with dup_warns only a warning (and kept once). */
static void addr_list(struct ctx *x, const char *what, size_t max, bool allow_prefix, int flags,
		      const char *example, bool dup_warns, struct ip_addr *out, size_t *n)
{
	char why[160];

	if (x->e->n_values > max) {
		bad(x, "%zu %s; at most %zu", x->e->n_values, what, max);
		return;
	}
	for (size_t i = 0; i < x->e->n_values; i++) {
		const char *v = item(x, i);
		struct ip_addr ip;
		bool dup = false;

		if (!v)
			continue;
		if (parse_ip(v, allow_prefix, &ip, why, sizeof(why)) < 0) {
			bad(x, "'%s' is not a valid address: %s (e.g. %s)", shown(x, v), why,
			    example);
			continue;
		}
		if (addr_problem(&ip, flags, why, sizeof(why)) < 0) {
			bad(x, "%s %s", shown(x, v), why);
			continue;
		}
		for (size_t k = 0; k < *n; k++)
			dup = dup || same_addr(&out[k], &ip);
		if (dup && dup_warns)
			warn(x, "%s is listed twice", shown(x, v));
		else if (dup)
			bad(x, "%s is listed twice", shown(x, v));
		else
			out[(*n)++] = ip;
	}
}

static void key_ips(struct ctx *x)
{
	addr_list(x, "addresses", DOMAIN_MAX_IPS, true, ADDR_OWN, "192.0.2.10 or 192.0.2.10/24",
		  false, x->c->ips, &x->c->n_ips);
}

static void key_gateway(struct ctx *x)
{
	const char *v = scalar(x);
	struct ip_addr ip;
	char why[160];

	if (!v)
		return;
	if (parse_ip(v, false, &ip, why, sizeof(why)) < 0) {
		bad(x, "'%s' is not a valid address: %s (e.g. %s=%s)", shown(x, v), why,
		    key_name(x->id), x->id == K_GATEWAY ? "192.0.2.1" : "2001:db8::1");
		return;
	}
	if (addr_problem(&ip, 0, why, sizeof(why)) < 0) {
		bad(x, "%s %s", shown(x, v), why);
		return;
	}
	if (x->id == K_GATEWAY6 && ip.family != AF_INET6) {
		bad(x,
		    "%s is IPv4; gateway6 holds the IPv6 gateway (the IPv4 one goes in 'gateway')",
		    shown(x, v));
		return;
	}
	if (x->id == K_GATEWAY)
		x->c->gateway = ip;
	else
		x->c->gateway6 = ip;
}

static void key_resolvers(struct ctx *x)
{
	addr_list(x, "resolvers", DOMAIN_MAX_RESOLVERS, false, ADDR_LOOPBACK_OK,
		  "resolvers=192.0.2.53, 9.9.9.9", true, x->c->resolvers, &x->c->n_resolvers);
}

static void key_size(struct ctx *x)
{
	const char *v = scalar(x);
	uint64_t n;
	char why[160];

	if (!v)
		return;
	if (parse_size(v, &n, why, sizeof(why)) < 0) {
		bad(x, "'%s' is not a size: %s (try 40G or a number of bytes)", shown(x, v), why);
		return;
	}
	if (n < MIB) {
		if (all_digits(v))
			bad(x,
			    "%s bytes is too small for a disk (a number without a unit is bytes; "
			    "did you mean %sG?)",
			    shown(x, v), shown(x, v));
		else
			bad(x, "'%s' is too small for a disk (at least 1M; try 40G)", shown(x, v));
		return;
	}
	x->c->size = n;
}

static void key_memory(struct ctx *x)
{
	const char *v = scalar(x);
	uint64_t bytes, mib = 0;
	char why[160];

	if (!v)
		return;
	if (all_digits(v) && strlen(v) <= 12) {
		mib = strtoull(v, NULL, 10);
	} else if (parse_size(v, &bytes, why, sizeof(why)) < 0) {
		bad(x, "'%s' is not an amount of memory: %s (a number of MiB, or with a unit: 4G)",
		    shown(x, v), why);
		return;
	} else if (bytes % MIB) {
		bad(x, "'%s' is not a whole number of MiB", shown(x, v));
		return;
	} else {
		mib = bytes / MIB;
	}
	if (mib < MEMORY_MIN_MIB) {
		bad(x, "'%s' is %llu MiB, too little to boot a guest (at least %d MiB%s%s%s)",
		    shown(x, v), (unsigned long long)mib, MEMORY_MIN_MIB,
		    all_digits(v) ? "; a number without a unit is MiB: did you mean " : "",
		    all_digits(v) ? shown(x, v) : "", all_digits(v) ? "G?" : "");
		return;
	}
	if (mib > MEMORY_MAX_MIB) {
		bad(x, "'%s' is more than 16 TiB", shown(x, v));
		return;
	}
	x->c->memory_mib = (unsigned)mib;
}

static void key_cpus(struct ctx *x)
{
	const char *v = scalar(x);
	unsigned long n = 0;

	if (!v)
		return;
	if (all_digits(v) && strlen(v) <= 4)
		n = strtoul(v, NULL, 10);
	if (n < 1 || n > CPUS_MAX) {
		bad(x, "'%s' is not a number of virtual CPUs from 1 to %d", shown(x, v), CPUS_MAX);
		return;
	}
	x->c->cpus = (unsigned)n;
}

static void key_cpu_mode(struct ctx *x)
{
	static const char *const modes[] = {"host-passthrough", "host-model", "maximum", "custom"};
	const char *v = scalar(x);

	if (!v)
		return;
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		if (strcmp(v, modes[i]) == 0) {
			copy_val(x, x->c->cpu_mode, sizeof(x->c->cpu_mode), v);
			return;
		}
	}
	bad(x, "'%s' is not a CPU mode (use host-passthrough, host-model, maximum or custom)",
	    shown(x, v));
}

static void key_contact_email(struct ctx *x)
{
	const char *v = scalar(x);
	char why[160];

	if (!v)
		return;
	if (valid_email(v, why, sizeof(why)) < 0) {
		bad(x, "'%s' is not a mail address: %s (e.g. contact_email=admin@example.com)",
		    shown(x, v), why);
		return;
	}
	copy_val(x, x->c->contact_email, sizeof(x->c->contact_email), v);
}

static void key_depends_on(struct ctx *x)
{
	const char *v = scalar(x);
	struct ip_addr ip;
	char why[160];

	if (!v)
		return;
	if (parse_ip(v, false, &ip, why, sizeof(why)) < 0 &&
	    valid_domain_name(v, why, sizeof(why)) < 0) {
		bad(x, "'%s' is neither a domain name nor an IP address: %s", shown(x, v), why);
		return;
	}
	if (strcasecmp(v, x->domain) == 0) {
		bad(x, "'%s' is this domain itself; name the domain or host to build on",
		    shown(x, v));
		return;
	}
	copy_val(x, x->c->depends_on, sizeof(x->c->depends_on), v);
}

static void key_admin_user(struct ctx *x)
{
	const char *v = scalar(x);
	char why[160];

	if (!v)
		return;
	if (valid_user_name(v, why, sizeof(why)) < 0) {
		bad(x, "'%s' is not a user name: %s", shown(x, v), why);
		return;
	}
	copy_val(x, x->c->admin_user, sizeof(x->c->admin_user), v);
}

static int url_problem(const char *v, char *why, size_t len)
{
	const char *host = strstr(v, "://") + 3, *end = host + strcspn(host, "/?#"), *port;
	char cb[8], v6[INET6_ADDRSTRLEN + 1];
	unsigned char bin[16];

	for (const char *p = v; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f ||
		    strchr("\"<>\\^`{|}", *p))
			return valid_why(why, len, "the URL holds %s", valid_show_char(*p, cb));
	if (memchr(host, '@', (size_t)(end - host)))
		return valid_why(
			why, len,
			"the URL holds a user name or password, which would end up in logs");
	if (*host == '[') {
		const char *close = memchr(host, ']', (size_t)(end - host));
		size_t n = close ? (size_t)(close - host - 1) : 0;

		if (!close || n == 0 || n >= sizeof(v6))
			return valid_why(why, len, "the URL's IPv6 host has no closing ']'");
		memcpy(v6, host + 1, n);
		v6[n] = '\0';
		if (inet_pton(AF_INET6, v6, bin) != 1)
			return valid_why(why, len, "the URL's host '%s' is not an IPv6 address",
					 v6);
		port = close + 1;
	} else {
		port = memchr(host, ':', (size_t)(end - host));
		port = port ? port : end;
		if (port == host)
			return valid_why(why, len, "the URL has no host");
		for (const char *p = host; p < port; p++)
			if (!is_alnum((unsigned char)*p) && *p != '.' && *p != '-')
				return valid_why(why, len, "the URL's host holds %s",
						 valid_show_char(*p, cb));
	}
	if (port < end) {
		unsigned long n = 0;

		if (*port != ':' || end - port < 2 || end - port > 6)
			return valid_why(why, len, "the URL has a bad port");
		for (const char *p = port + 1; p < end; p++) {
			if (!is_digit((unsigned char)*p))
				return valid_why(why, len, "the URL has a bad port");
			n = n * 10 + (unsigned long)(*p - '0');
		}
		if (n < 1 || n > 65535)
			return valid_why(why, len, "the URL's port is not from 1 to 65535");
	}
	return 0;
}

/* [a-z0-9][a-z0-9._-]* up to max characters (catalog and distribution names). */
static bool plain_name(const char *v, size_t max)
{
	size_t n = strlen(v);

	if (n == 0 || n > max || !is_lower_alnum((unsigned char)v[0]))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!is_lower_alnum((unsigned char)v[i]) && !strchr("._-", v[i]))
			return false;
	return true;
}

static int image_problem(const char *v, enum image_kind *kind, char *why, size_t len)
{
	char cb[8];

	if (!strncasecmp(v, "http://", 7) || !strncasecmp(v, "https://", 8)) {
		*kind = IMAGE_URL;
		return url_problem(v, why, len);
	}
	if (v[0] == '/') {
		*kind = IMAGE_PATH;
		for (const char *p = v; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				return valid_why(why, len, "the path holds %s",
						 valid_show_char(*p, cb));
		if (v[strlen(v) - 1] == '/')
			return valid_why(why, len, "the path ends with '/' (a directory)");
		return 0;
	}
	*kind = IMAGE_CATALOG;
	if (strstr(v, "://"))
		return valid_why(why, len, "only http:// and https:// URLs can be fetched");
	if (strchr(v, '/'))
		return valid_why(why, len, "a path must be absolute (start with '/')");
	if (!plain_name(v, CATALOG_NAME_MAX))
		return valid_why(why, len,
				 "a catalog name is lower-case letters, digits and . _ - (e.g. "
				 "debian-12); a path starts with '/', a URL with https://");
	return 0;
}

static void key_image(struct ctx *x)
{
	const char *v = scalar(x);
	enum image_kind kind;
	char why[200];

	if (!v)
		return;
	if (strlen(v) >= sizeof(x->c->image)) {
		bad(x, "'%s' is longer than %zu characters", shown(x, v), sizeof(x->c->image) - 1);
		return;
	}
	if (image_problem(v, &kind, why, sizeof(why)) < 0) {
		bad(x, "'%s' is not an image: %s", shown(x, v), why);
		return;
	}
	copy_val(x, x->c->image, sizeof(x->c->image), v);
	x->c->image_kind = kind;
}

static void key_packages(struct ctx *x)
{
	struct domain_conf *c = x->c;
	char why[200];

	if (x->e->n_values > DOMAIN_MAX_PACKAGES) {
		bad(x, "%zu packages; at most %d", x->e->n_values, DOMAIN_MAX_PACKAGES);
		return;
	}
	for (size_t i = 0; i < x->e->n_values; i++) {
		const char *v = item(x, i);
		bool dup = false;

		if (!v)
			continue;
		if (valid_package_name(v, why, sizeof(why)) < 0) {
			bad(x, "'%s' is not a package name: %s", shown(x, v), why);
			continue;
		}
		for (size_t k = 0; k < c->n_packages; k++)
			dup = dup || strcmp(c->packages[k], v) == 0;
		if (dup) {
			warn(x, "%s is listed twice", shown(x, v));
			continue;
		}
		if (!(c->packages[c->n_packages] = strdup(v))) {
			bad(x, "out of memory");
			return;
		}
		c->n_packages++;
	}
}

static void key_distro(struct ctx *x)
{
	const char *v = scalar(x);

	if (!v)
		return;
	if (!plain_name(v, sizeof(x->c->distro) - 1)) {
		bad(x,
		    "'%s' is not a distribution name (lower-case letters, digits and . _ -, "
		    "e.g. ubuntu)",
		    shown(x, v));
		return;
	}
	copy_val(x, x->c->distro, sizeof(x->c->distro), v);
}

static void key_pre_make_script(struct ctx *x)
{
	const char *v = scalar(x), *p;
	size_t n;

	if (!v)
		return;
	if (v[0] == '/') {
		bad(x, "'%s' is absolute; give a path inside the data tree, e.g. scripts/setup.sh",
		    shown(x, v));
		return;
	}
	for (p = v; *p; p += n + (p[n] == '/')) {
		n = strcspn(p, "/");
		if (n == 2 && p[0] == '.' && p[1] == '.') {
			bad(x, "'%s' leaves the data tree through '..'", shown(x, v));
			return;
		}
	}
	for (p = v; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			bad(x, "'%s' holds a control character", shown(x, v));
			return;
		}
	}
	n = strlen(v);
	if (v[n - 1] == '/' || strcmp(v, ".") == 0 || (n >= 2 && strcmp(v + n - 2, "/.") == 0)) {
		bad(x, "'%s' names a directory, not a script", shown(x, v));
		return;
	}
	copy_val(x, x->c->pre_make_script, sizeof(x->c->pre_make_script), v);
}

static void key_hypervisor(struct ctx *x)
{
	const char *v = scalar(x);
	bool ok;

	if (!v)
		return;
	ok = is_alnum((unsigned char)v[0]) || v[0] == '_';
	for (const char *p = v; ok && *p; p++)
		ok = is_alnum((unsigned char)*p) || strchr("_.-", *p);
	if (!ok) {
		bad(x, "'%s' is not a hypervisor name (letters, digits and . _ -)", shown(x, v));
		return;
	}
	copy_val(x, x->c->hypervisor, sizeof(x->c->hypervisor), v);
}

/* hypervisor_labels=ssd, eu: the hypervisor placement picks must carry every one (tuapd.conf's
 * hypervisors[].labels). */
static void key_hypervisor_labels(struct ctx *x)
{
	struct domain_conf *c = x->c;

	if (x->e->n_values > DOMAIN_MAX_LABELS) {
		bad(x, "%zu labels; at most %d", x->e->n_values, DOMAIN_MAX_LABELS);
		return;
	}
	for (size_t i = 0; i < x->e->n_values; i++) {
		const char *v = item(x, i);
		bool ok, dup = false;

		if (!v)
			continue;
		ok = *v && strlen(v) <= DOMAIN_LABEL_MAX;
		for (const char *p = v; ok && *p; p++)
			ok = is_alnum((unsigned char)*p) || strchr("_.-", *p);
		if (!ok) {
			bad(x, "'%s' is not a label (1 to %d of letters, digits and . _ -)",
			    shown(x, v), DOMAIN_LABEL_MAX);
			continue;
		}
		for (size_t k = 0; k < c->n_hypervisor_labels; k++)
			dup = dup || strcmp(c->hypervisor_labels[k], v) == 0;
		if (dup) {
			warn(x, "%s is listed twice", shown(x, v));
			continue;
		}
		snprintf(c->hypervisor_labels[c->n_hypervisor_labels++], DOMAIN_LABEL_MAX + 1, "%s",
			 v);
	}
}

/* The kernel's dev_valid_name, kept to printable ASCII. */
static void key_devname(struct ctx *x)
{
	const char *v = scalar(x);
	char *dst = x->id == K_DHCP_DEVNAME ? x->c->dhcp_devname : x->c->bridge_devname;
	size_t n;
	char cb[8];

	if (!v)
		return;
	n = strlen(v);
	if (n > 15 || !strcmp(v, ".") || !strcmp(v, "..")) {
		bad(x, "'%s' is not a network interface name (1 to 15 characters, e.g. ens4)",
		    shown(x, v));
		return;
	}
	for (const char *p = v; *p; p++) {
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == '/' ||
		    *p == ':') {
			bad(x, "'%s' is not a network interface name: it holds %s", shown(x, v),
			    valid_show_char(*p, cb));
			return;
		}
	}
	memcpy(dst, v, n + 1);
}

static const struct key_def {
	const char *name;
	void (*fn)(struct ctx *x);
} key_defs[K_COUNT] = {
	[K_IPS] = {"ips", key_ips},
	[K_GATEWAY] = {"gateway", key_gateway},
	[K_GATEWAY6] = {"gateway6", key_gateway},
	[K_RESOLVERS] = {"resolvers", key_resolvers},
	[K_SIZE] = {"size", key_size},
	[K_IMAGE] = {"image", key_image},
	[K_PACKAGES] = {"packages", key_packages},
	[K_CONTACT_EMAIL] = {"contact_email", key_contact_email},
	[K_DEPENDS_ON] = {"depends_on", key_depends_on},
	[K_ADMIN_USER] = {"admin_user", key_admin_user},
	[K_MEMORY] = {"memory", key_memory},
	[K_CPUS] = {"cpus", key_cpus},
	[K_CPU_MODE] = {"cpu_mode", key_cpu_mode},
	[K_DISTRO] = {"distro", key_distro},
	[K_PRE_MAKE_SCRIPT] = {"pre_make_script", key_pre_make_script},
	[K_HYPERVISOR] = {"hypervisor", key_hypervisor},
	[K_HYPERVISOR_LABELS] = {"hypervisor_labels", key_hypervisor_labels},
	[K_DHCP_DEVNAME] = {"dhcp_devname", key_devname},
	[K_BRIDGE_DEVNAME] = {"bridge_devname", key_devname},
};

static const char *key_name(enum key_id id)
{
	return key_defs[id].name;
}

/* Upstream keys tuap reads no more: a warning says why, nothing else happens. */
static const struct {
	const char *name;
	const char *why;
} obsolete_keys[] = {
	{"ship_logs_to", "upstream read it in one version and never used it; tuapd keeps each "
			 "guest's setup log itself"},
	{"pkey_loc", "tuap reaches existing hosts with the operator's own SSH key and its agent, "
		     "so it needs no private key path (upstream stopped requiring it too)"},
};

static int lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* Optimal-string-alignment distance, ignoring case; keys longer than 32 are not compared. */
static int edit_distance(const char *a, const char *b)
{
	int d[33][33];
	size_t n = strlen(a), m = strlen(b);

	if (n > 32 || m > 32)
		return 99;
	for (size_t i = 0; i <= n; i++)
		d[i][0] = (int)i;
	for (size_t j = 0; j <= m; j++)
		d[0][j] = (int)j;
	for (size_t i = 1; i <= n; i++) {
		for (size_t j = 1; j <= m; j++) {
			int cost = lower((unsigned char)a[i - 1]) != lower((unsigned char)b[j - 1]);
			int v = d[i - 1][j - 1] + cost;

			if (d[i - 1][j] + 1 < v)
				v = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < v)
				v = d[i][j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    d[i - 2][j - 2] + 1 < v)
				v = d[i - 2][j - 2] + 1;
			d[i][j] = v;
		}
	}
	return d[n][m];
}

static void unknown_key(struct ctx *x, const struct config_entry *e, const char *name)
{
	size_t n = strlen(name);
	int best = 99, limit = n <= 3 ? 1 : n <= 6 ? 2 : 3;
	const char *hint = NULL;

	for (size_t i = 0; i < sizeof(obsolete_keys) / sizeof(obsolete_keys[0]); i++) {
		if (strcmp(name, obsolete_keys[i].name) == 0) {
			diag_warn(x->d, x->path, e->line, obsolete_keys[i].name,
				  "obsolete key, ignored: %s", obsolete_keys[i].why);
			return;
		}
	}
	for (int i = 0; i < K_COUNT; i++) {
		size_t m = strlen(key_defs[i].name);
		int dist;

		/* The distance is at least the difference in length. */
		if ((n > m ? n - m : m - n) > (size_t)limit)
			continue;
		dist = edit_distance(name, key_defs[i].name);

		if (dist < best) {
			best = dist;
			hint = key_defs[i].name;
		}
	}
	/* The key may hold any byte but '=': show it printable, in the key field too. */
	if (best <= limit)
		diag_error(x->d, x->path, e->line, shown(x, name),
			   "unknown key '%s' (did you mean '%s'?)", shown(x, name), hint);
	else
		diag_error(x->d, x->path, e->line, shown(x, name),
			   "unknown key '%s' (provision.conf(5) lists the keys)", shown(x, name));
}

/* The key as provision.conf means it: INI files may hold keys in Config::Simple's [default]
 * block only. NULL (and an error) for any other block. */
static const char *entry_name(struct ctx *x, const struct config *cfg, const struct config_entry *e,
			      bool report)
{
	char block[64];
	size_t blen;

	if (cfg->syntax != CONFIG_INI)
		return e->key;
	if (strncmp(e->key, "default.", 8) == 0)
		return e->key + 8;
	if (report) {
		blen = strcspn(e->key, ".");
		snprintf(block, sizeof(block), "%.*s", (int)(blen > 60 ? 60 : blen), e->key);
		diag_error(x->d, x->path, e->line, shown(x, e->key),
			   "block [%s] is not used: provision.conf keys go at the top of the file "
			   "or under [default]%s",
			   shown(x, block),
			   strcasecmp(block, "default") == 0 ? " (block names are case-sensitive)"
							     : "");
	}
	return NULL;
}

static void read_entry(struct ctx *x, const struct config *cfg, size_t i)
{
	const struct config_entry *e = &cfg->entries[i];
	const char *name = entry_name(x, cfg, e, true), *other;
	int id = -1, prev = 0;

	if (!name)
		return;
	for (int k = 0; k < K_COUNT; k++)
		if (strcmp(name, key_defs[k].name) == 0)
			id = k;
	if (id < 0) {
		unknown_key(x, e, name);
		return;
	}
	for (size_t j = 0; j < cfg->n_entries; j++) {
		other = entry_name(x, cfg, &cfg->entries[j], false);
		if (j == i || !other || strcmp(other, name) != 0)
			continue;
		if (j > i)
			return; /* a later line sets it again: Config::Simple keeps the last */
		prev = cfg->entries[j].line;
	}
	x->e = e;
	x->id = (enum key_id)id;
	x->line[id] = e->line;
	if (prev)
		warn(x,
		     "also set on line %d; this line wins (the last one does, as in "
		     "Config::Simple)",
		     prev);
	key_defs[id].fn(x);
}

/* A gateway must be on the subnet of one of the guest's own addresses of its family. */
static void check_gateway(struct ctx *x, const struct ip_addr *g, enum key_id id)
{
	const struct domain_conf *c = x->c;
	const struct ip_addr *match = NULL, *first = NULL;
	char ga[INET6_ADDRSTRLEN], ia[INET6_ADDRSTRLEN], net[80], hint[160] = "";
	int v = g->family == AF_INET ? 4 : 6, line = x->line[id];

	for (size_t i = 0; i < c->n_ips; i++) {
		const struct ip_addr *ip = &c->ips[i];

		if (ip->family != g->family)
			continue;
		first = first ? first : ip;
		if (same_addr(ip, g)) {
			xerr(x, id, line,
			     "%s is the guest's own address (in ips); the gateway is "
			     "the router on its subnet",
			     addr_str(g, ga, sizeof(ga)));
			return;
		}
		if (!match && common_bits(ip, g) >= ip->prefix)
			match = ip;
	}
	addr_str(g, ga, sizeof(ga));
	/* An IPv6 router is often given by its link-local address, which is on every link. */
	if (g->family == AF_INET6 && g->addr[0] == 0xfe && (g->addr[1] & 0xc0) == 0x80)
		match = first ? first : match;
	if (!first) {
		xerr(x, id, line, "%s is IPv%d, but ips holds no IPv%d address", ga, v, v);
		return;
	}
	if (!match) {
		int cb = common_bits(first, g);

		if (cb >= (v == 4 ? 8 : 16))
			snprintf(hint, sizeof(hint),
				 ", or if the subnet is larger, write its prefix, e.g. ips=%s/%d",
				 addr_str(first, ia, sizeof(ia)), cb);
		xerr(x, id, line,
		     "%s is outside the subnet of every IPv%d address in ips (%s%s); "
		     "fix the gateway%s",
		     ga, v, net_str(first, net, sizeof(net)),
		     first->prefix_given	? ""
		     : first->family == AF_INET ? ": no prefix given, /24 assumed"
						: ": no prefix given, /64 assumed",
		     hint);
		return;
	}
	if (match->family == AF_INET && match->prefix_given && match->prefix <= 30) {
		struct ip_addr gp = *g;

		if (host_bits_all(&gp, match->prefix, false) ||
		    host_bits_all(&gp, match->prefix, true))
			xerr(x, id, line, "%s is the %s address of %s, not a router", ga,
			     host_bits_all(&gp, match->prefix, false) ? "network" : "broadcast",
			     net_str(match, net, sizeof(net)));
	}
}

static void check_network(struct ctx *x)
{
	const struct domain_conf *c = x->c;
	bool has4 = false, has6 = false;

	for (size_t i = 0; i < c->n_ips; i++) {
		has4 = has4 || c->ips[i].family == AF_INET;
		has6 = has6 || c->ips[i].family == AF_INET6;
	}
	if (c->n_ips == 0) {
		if (!x->bad[K_IPS] && !c->depends_on[0] && !x->bad[K_DEPENDS_ON])
			xerr(x, K_IPS, x->line[K_IPS],
			     "required: the guest's static address(es), e.g. ips=192.0.2.10/24 (or "
			     "set depends_on to provision onto an existing host)");
		for (int id = K_GATEWAY; id <= K_GATEWAY6 && !x->bad[K_IPS]; id++)
			if ((id == K_GATEWAY ? c->gateway : c->gateway6).family)
				xerr(x, (enum key_id)id, x->line[id],
				     "set, but ips is not: a gateway goes with static addresses");
		return;
	}
	if (!c->gateway.family && !x->bad[K_GATEWAY])
		xerr(x, K_GATEWAY, x->line[K_IPS], "required when ips is set, e.g. gateway=%s",
		     has4 ? "192.0.2.1" : "2001:db8::1");
	if (has4 && has6 && c->gateway.family == AF_INET6)
		xerr(x, K_GATEWAY, x->line[K_GATEWAY],
		     "ips holds IPv4 and IPv6 addresses, so gateway must be the IPv4 gateway "
		     "and gateway6 the IPv6 one");
	else if (c->gateway.family)
		check_gateway(x, &c->gateway, K_GATEWAY);
	if (has4 && has6 && !c->gateway6.family && !x->bad[K_GATEWAY6])
		xerr(x, K_GATEWAY6, x->line[K_IPS],
		     "required: ips holds IPv6 addresses next to IPv4 ones, e.g. "
		     "gateway6=2001:db8::1");
	if (c->gateway6.family && c->gateway.family != AF_INET)
		xerr(x, K_GATEWAY6, x->line[K_GATEWAY6],
		     "only used next to an IPv4 gateway; put the IPv6 gateway in 'gateway'");
	else if (c->gateway6.family)
		check_gateway(x, &c->gateway6, K_GATEWAY6);
}

static void set_defaults(struct domain_conf *c)
{
	c->size = DOMAIN_DEFAULT_SIZE;
	c->image_kind = IMAGE_CATALOG;
	snprintf(c->admin_user, sizeof(c->admin_user), "root");
	c->memory_mib = DOMAIN_DEFAULT_MEMORY_MIB;
	c->cpus = DOMAIN_DEFAULT_CPUS;
	snprintf(c->cpu_mode, sizeof(c->cpu_mode), "host-passthrough");
}

int domain_conf_parse(const char *conf_path, const char *domain_name, const char *text, size_t len,
		      struct domain_conf *conf, struct diags *d)
{
	struct ctx *x = calloc(1, sizeof(*x));
	struct config cfg;
	size_t errors = d->errors;
	char why[160];

	memset(conf, 0, sizeof(*conf));
	set_defaults(conf);
	if (!x)
		return diag_error(d, conf_path, 0, "", "out of memory");
	snprintf(conf->conf_path, sizeof(conf->conf_path), "%s", conf_path);
	x->path = conf_path;
	x->domain = domain_name ? domain_name : "";
	x->d = d;
	x->c = conf;
	if (domain_name && valid_domain_name(domain_name, why, sizeof(why)) < 0)
		diag_error(d, conf_path, 0, "", "the directory name '%s' is not a domain name: %s",
			   shown(x, domain_name), why);
	else if (domain_name)
		snprintf(conf->name, sizeof(conf->name), "%s", domain_name);
	config_parse(conf_path, text, len, &cfg, d);
	for (size_t i = 0; i < cfg.n_entries; i++)
		read_entry(x, &cfg, i);
	check_network(x);
	if (conf->dhcp_devname[0] && !strcmp(conf->dhcp_devname, conf->bridge_devname))
		xerr(x, K_BRIDGE_DEVNAME, x->line[K_BRIDGE_DEVNAME],
		     "'%s' is also dhcp_devname; the two NICs need different names",
		     conf->bridge_devname);
	config_free(&cfg);
	free(x);
	return d->errors == errors ? 0 : -1;
}

void domain_conf_free(struct domain_conf *conf)
{
	for (size_t i = 0; i < conf->n_packages; i++)
		free(conf->packages[i]);
	conf->n_packages = 0;
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
