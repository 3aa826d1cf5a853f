/*
 * tuapd.conf: defaults, reading with libconfig, and validation. The keys are described once, in
 * the tables below (name, type, where the value goes, its bounds and check); loading walks the
 * file's settings and looks each one up, so an unknown key is an error with its line.
 */
#include "settings.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <libconfig.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "fsutil.h"
#include "valid.h"
#include "wire.h"

#define DEADLINE_MAX (7u * 24 * 3600)
/* what the agent socket and the wire accept (hub_new refuses other sizes, the wire larger
 * chunks) */
#define MESSAGE_MIN	WIRE_MIN_MAXMSG
#define MESSAGE_MAX	WIRE_MAX_MESSAGE
#define CHUNK_MIN	(4u << 10)
#define CHUNK_MAX	WIRE_MAX_CHUNK
#define ENVELOPE_ROOM	4096 /* what a DataChunk's envelope needs besides the data */
#define WINDOW_MAX	256
#define CTL_SOCKET_NAME "ctl.sock"

enum kind {
	K_STR,	  /* any string that passes check */
	K_PATH,	  /* absolute path; trailing slashes removed */
	K_NUM,	  /* integer in [min, max], stored as unsigned or size_t by size */
	K_RATIO,  /* a number (integer or not) in [min, max], stored as double */
	K_LABELS, /* a list of labels: [A-Za-z0-9._-], stored in a settings_hv's labels */
};

typedef int (*check_fn)(const char *v, char *why, size_t len);

struct key {
	const char *name;
	enum kind kind;
	size_t off;
	size_t size;
	unsigned long long min, max;
	check_fn check;
};

static int check_uri(const char *v, char *why, size_t len);
static int check_virt_type(const char *v, char *why, size_t len);
static int check_group(const char *v, char *why, size_t len);
static int check_netname(const char *v, char *why, size_t len);
static int check_subnet(const char *v, char *why, size_t len);
static int check_ifname(const char *v, char *why, size_t len);
static int check_listen(const char *v, char *why, size_t len);
static int check_connect(const char *v, char *why, size_t len);
static int check_image(const char *v, char *why, size_t len);
static int check_key_url(const char *v, char *why, size_t len);
static int joined(char *out, size_t len, struct tuap_err *err, const char *a, const char *b);
static void hv_defaults(struct settings_hv *hv);
static void hv_implicit(struct settings *s);
static int check_apt_source(const char *v, char *why, size_t len);

/* offsetof and size of a field, for the tables */
#define F(n) offsetof(struct settings, n), sizeof(((struct settings *)0)->n)

static const struct key top_keys[] = {
	{"libvirt_uri", K_STR, F(libvirt_uri), 0, 0, check_uri},
	{"virt_type", K_STR, F(virt_type), 0, 0, check_virt_type},
	{"pool_root", K_PATH, F(pool_root), 0, 0, NULL},
	{"state_dir", K_PATH, F(state_dir), 0, 0, NULL},
	{"run_dir", K_PATH, F(run_dir), 0, 0, NULL},
	{"ctl_group", K_STR, F(ctl_group), 0, 0, check_group},
	{"mgmt_network", K_STR, F(mgmt_network), 0, 0, check_netname},
	{"mgmt_subnet", K_STR, F(mgmt_subnet), 0, 0, check_subnet},
	{"mgmt_bridge", K_STR, F(mgmt_bridge), 0, 0, check_ifname},
	{"public_bridge", K_STR, F(public_bridge), 0, 0, check_ifname},
	{"agent_listen", K_STR, F(agent_listen), 0, 0, check_listen},
	{"agent_endpoint", K_STR, F(agent_endpoint), 0, 0, check_connect},
	{"public_endpoint", K_STR, F(public_endpoint), 0, 0, check_connect},
	{"image_catalog", K_PATH, F(image_catalog), 0, 0, NULL},
	{"image_dir", K_PATH, F(image_dir), 0, 0, NULL},
	{"default_image", K_STR, F(default_image), 0, 0, check_image},
	{"agent_binary", K_PATH, F(agent_binary), 0, 0, NULL},
	{"seed_dir", K_PATH, F(seed_dir), 0, 0, NULL},
	{"apt_source", K_STR, F(apt_source), 0, 0, check_apt_source},
	{"max_message", K_NUM, F(max_message), MESSAGE_MIN, MESSAGE_MAX, NULL},
	{"data_chunk", K_NUM, F(data_chunk), CHUNK_MIN, CHUNK_MAX, NULL},
	{"data_window", K_NUM, F(data_window), 1, WINDOW_MAX, NULL},
	{"keep_jobs", K_NUM, F(keep_jobs), 1, 1000, NULL},
};

static const struct key deadline_keys[] = {
	{"image", K_NUM, F(deadlines.image), 1, DEADLINE_MAX, NULL},
	{"disk", K_NUM, F(deadlines.disk), 1, DEADLINE_MAX, NULL},
	{"seed", K_NUM, F(deadlines.seed), 1, DEADLINE_MAX, NULL},
	{"define", K_NUM, F(deadlines.define), 1, DEADLINE_MAX, NULL},
	{"hello", K_NUM, F(deadlines.hello), 1, DEADLINE_MAX, NULL},
	{"users", K_NUM, F(deadlines.users), 1, DEADLINE_MAX, NULL},
	{"packages", K_NUM, F(deadlines.packages), 1, DEADLINE_MAX, NULL},
	{"mail", K_NUM, F(deadlines.mail), 1, DEADLINE_MAX, NULL},
	{"data", K_NUM, F(deadlines.data), 1, DEADLINE_MAX, NULL},
	{"make", K_NUM, F(deadlines.make), 1, DEADLINE_MAX, NULL},
	{"push", K_NUM, F(deadlines.push), 1, DEADLINE_MAX, NULL},
};

static const struct key key_url_keys[] = {
	{"gh", K_STR, F(ssh_key_url_gh), 0, 0, check_key_url},
	{"lp", K_STR, F(ssh_key_url_lp), 0, 0, check_key_url},
};

/* one entry of the hypervisors list; offsets into struct settings_hv */
#define H(n) offsetof(struct settings_hv, n), sizeof(((struct settings_hv *)0)->n)
static const struct key hv_keys[] = {
	{"name", K_STR, H(name), 0, 0, check_image},
	{"libvirt_uri", K_STR, H(libvirt_uri), 0, 0, check_uri},
	{"virt_type", K_STR, H(virt_type), 0, 0, check_virt_type},
	{"pool_root", K_PATH, H(pool_root), 0, 0, NULL},
	{"mgmt_network", K_STR, H(mgmt_network), 0, 0, check_netname},
	{"mgmt_subnet", K_STR, H(mgmt_subnet), 0, 0, check_subnet},
	{"mgmt_bridge", K_STR, H(mgmt_bridge), 0, 0, check_ifname},
	{"public_bridge", K_STR, H(public_bridge), 0, 0, check_ifname},
	{"agent_endpoint", K_STR, H(agent_endpoint), 0, 0, check_connect},
	{"reserve_memory", K_NUM, H(reserve_memory_mib), 0, 1u << 30, NULL},
	{"reserve_cpus", K_NUM, H(reserve_cpus), 0, 4096, NULL},
	{"reserve_disk", K_NUM, H(reserve_disk_gib), 0, 1u << 20, NULL},
	{"cpu_overcommit", K_RATIO, H(cpu_overcommit), 1, 64, NULL},
	{"max_guests", K_NUM, H(max_guests), 0, 100000, NULL},
	{"labels", K_LABELS, H(labels), 0, 0, NULL},
};
#define N_HV_KEYS (sizeof(hv_keys) / sizeof(hv_keys[0]))

static const struct key ssh_keys[] = {
	{"client", K_PATH, F(ssh_client), 0, 0, NULL},
	{"dir", K_PATH, F(ssh_dir), 0, 0, NULL},
	{"connect_timeout", K_NUM, F(ssh_connect_timeout), 1, 600, NULL},
};

struct group {
	const char *name;
	const struct key *keys;
	size_t n;
};

static const struct group groups[] = {
	{"deadlines", deadline_keys, sizeof(deadline_keys) / sizeof(deadline_keys[0])},
	{"ssh_key_url", key_url_keys, sizeof(key_url_keys) / sizeof(key_url_keys[0])},
	{"ssh", ssh_keys, sizeof(ssh_keys) / sizeof(ssh_keys[0])},
};

#define N_TOP (sizeof(top_keys) / sizeof(top_keys[0]))

void settings_defaults(struct settings *s)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->libvirt_uri, sizeof(s->libvirt_uri), "qemu:///system");
	snprintf(s->virt_type, sizeof(s->virt_type), "kvm");
	snprintf(s->pool_root, sizeof(s->pool_root), "/vms");
	snprintf(s->state_dir, sizeof(s->state_dir), "/var/lib/tuap");
	snprintf(s->run_dir, sizeof(s->run_dir), "/run/tuap");
	snprintf(s->ctl_group, sizeof(s->ctl_group), "tuap");
	snprintf(s->mgmt_network, sizeof(s->mgmt_network), "tuap-mgmt");
	snprintf(s->mgmt_subnet, sizeof(s->mgmt_subnet), "192.168.251.0/24");
	snprintf(s->mgmt_bridge, sizeof(s->mgmt_bridge), "virbr-tuap");
	snprintf(s->public_bridge, sizeof(s->public_bridge), "br0");
	snprintf(s->agent_listen, sizeof(s->agent_listen), "tcp://0.0.0.0:7807");
	snprintf(s->agent_endpoint, sizeof(s->agent_endpoint), "tcp://192.168.251.1:7807");
	snprintf(s->public_endpoint, sizeof(s->public_endpoint), "%s", s->agent_endpoint);
	snprintf(s->image_catalog, sizeof(s->image_catalog), "/etc/tuap/images.conf");
	snprintf(s->image_dir, sizeof(s->image_dir), "/var/lib/tuap/images");
	snprintf(s->default_image, sizeof(s->default_image), "debian-12");
	snprintf(s->agent_binary, sizeof(s->agent_binary), "%s", TUAP_LIBDIR "/tuap-agent");
	snprintf(s->seed_dir, sizeof(s->seed_dir), "%s", TUAP_DATADIR "/seed");
	snprintf(s->ssh_key_url_gh, sizeof(s->ssh_key_url_gh), "https://github.com/%%s.keys");
	snprintf(s->ssh_key_url_lp, sizeof(s->ssh_key_url_lp),
		 "https://launchpad.net/~%%s/+sshkeys");
	snprintf(s->ssh_client, sizeof(s->ssh_client), "/usr/bin/ssh");
	snprintf(s->ssh_dir, sizeof(s->ssh_dir), "/var/lib/tuap/ssh");
	s->ssh_connect_timeout = 15;
	s->deadlines = (struct settings_deadlines){
		.image = 1800,
		.disk = 120,
		.seed = 60,
		.define = 120,
		.hello = 600,
		.users = 300,
		.packages = 1800,
		.mail = 60,
		.data = 3600,
		.make = 3600,
		.push = 600,
	};
	s->max_message = 1u << 20;
	s->data_chunk = 256u << 10;
	s->data_window = 8;
	s->keep_jobs = 10;
	hv_implicit(s);
}

/* ---- value checks: each returns 0 or -1 with a short reason in why ---- */

static int fail(char *why, size_t len, const char *fmt, ...) TUAP_PRINTF(3, 4);

static int fail(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
	return -1;
}

static int check_uri(const char *v, char *why, size_t len)
{
	const char *p = strstr(v, "://");

	if (!p || p == v)
		return fail(why, len, "'%s' is not a libvirt URI (like qemu:///system)", v);
	for (const char *c = v; c < p; c++)
		if (!isalnum((unsigned char)*c) && *c != '+')
			return fail(why, len, "'%s' is not a libvirt URI (like qemu:///system)", v);
	return 0;
}

static int check_virt_type(const char *v, char *why, size_t len)
{
	if (strcmp(v, "kvm") && strcmp(v, "qemu"))
		return fail(why, len, "'%s' is neither kvm nor qemu", v);
	return 0;
}

static int check_group(const char *v, char *why, size_t len)
{
	char rule[128];

	if (valid_user_name(v, rule, sizeof(rule)) < 0)
		return fail(why, len, "'%s' is not a group name: %s", v, rule);
	return 0;
}

static int name_chars(const char *v, const char *extra)
{
	for (const char *c = v; *c; c++)
		if (!isalnum((unsigned char)*c) && !strchr(extra, *c))
			return -1;
	return 0;
}

static int check_netname(const char *v, char *why, size_t len)
{
	if (!*v || name_chars(v, "._-") < 0)
		return fail(why, len, "'%s' is not a libvirt network name ([A-Za-z0-9._-])", v);
	return 0;
}

static int check_ifname(const char *v, char *why, size_t len)
{
	if (!*v || strlen(v) >= SETTINGS_IFNAME_MAX || name_chars(v, "._-") < 0 ||
	    !strcmp(v, ".") || !strcmp(v, ".."))
		return fail(why, len,
			    "'%s' is not a network interface name (1-15 of [A-Za-z0-9._-])", v);
	return 0;
}

static int check_image(const char *v, char *why, size_t len)
{
	if (!*v || name_chars(v, "._-") < 0)
		return fail(why, len, "'%s' is not an image catalog name ([A-Za-z0-9._-])", v);
	return 0;
}

/* "A.B.C.D/P": a network address (host bits zero); gw gets its first host address. */
static int parse_subnet(const char *v, struct in_addr *gw, char *why, size_t len)
{
	char addr[INET_ADDRSTRLEN];
	const char *slash = strchr(v, '/');
	struct in_addr a;
	char *end;
	long prefix;
	uint32_t host, mask;

	if (!slash || (size_t)(slash - v) >= sizeof(addr))
		return fail(why, len, "'%s' is not an IPv4 subnet (like 192.168.251.0/24)", v);
	memcpy(addr, v, (size_t)(slash - v));
	addr[slash - v] = '\0';
	prefix = strtol(slash + 1, &end, 10);
	if (inet_pton(AF_INET, addr, &a) != 1 || *end || end == slash + 1)
		return fail(why, len, "'%s' is not an IPv4 subnet (like 192.168.251.0/24)", v);
	if (prefix < 8 || prefix > 30)
		return fail(why, len, "prefix /%ld is not between /8 and /30", prefix);
	host = ntohl(a.s_addr);
	mask = ~0u << (32 - prefix);
	if (host & ~mask)
		return fail(why, len, "'%s' has host bits set (the network is %s/%ld?)", v,
			    inet_ntop(AF_INET, &(struct in_addr){htonl(host & mask)}, addr,
				      sizeof(addr)),
			    prefix);
	if (gw)
		gw->s_addr = htonl(host + 1);
	return 0;
}

static int check_subnet(const char *v, char *why, size_t len)
{
	return parse_subnet(v, NULL, why, len);
}

/* "tcp://HOST:PORT" with HOST a name, an IPv4 address, "*" or "[IPv6]". */
static int parse_endpoint(const char *v, char *host, size_t hostlen, unsigned *port, char *why,
			  size_t len)
{
	const char *h, *colon;
	char rule[128];
	unsigned long p;
	size_t n;

	if (strncmp(v, "tcp://", 6))
		return fail(why, len, "'%s' is not a tcp://HOST:PORT endpoint", v);
	h = v + 6;
	if (valid_host_port(h, true, rule, sizeof(rule)) < 0)
		return fail(why, len, "'%s' is not a tcp://HOST:PORT endpoint: %s", v, rule);
	colon = strrchr(h, ':');
	n = (size_t)(colon - h);
	p = strtoul(colon + 1, NULL, 10);
	if (host) {
		if (n >= hostlen)
			return fail(why, len, "'%s': host too long", v);
		memcpy(host, h, n);
		host[n] = '\0';
	}
	if (port)
		*port = (unsigned)p;
	return 0;
}

int settings_endpoint_split(const char *endpoint, char *host, size_t hostlen, unsigned *port,
			    struct tuap_err *err)
{
	char why[512];

	if (parse_endpoint(endpoint, host, hostlen, port, why, sizeof(why)) < 0)
		return err_set(err, "%s", why);
	return 0;
}

static int check_listen(const char *v, char *why, size_t len)
{
	return parse_endpoint(v, NULL, 0, NULL, why, len);
}

static int check_connect(const char *v, char *why, size_t len)
{
	char host[SETTINGS_STR_MAX];

	if (parse_endpoint(v, host, sizeof(host), NULL, why, len) < 0)
		return -1;
	if (!strcmp(host, "*") || !strcmp(host, "0.0.0.0") || !strcmp(host, "[::]"))
		return fail(why, len, "'%s': agents cannot connect to a wildcard address", v);
	return 0;
}

static int check_key_url(const char *v, char *why, size_t len)
{
	const char *p = strstr(v, "%s");

	if (strncmp(v, "https://", 8) && strncmp(v, "http://", 7))
		return fail(why, len, "'%s' is not an http(s) URL", v);
	if (!p || strchr(p + 2, '%') || strchr(v, '%') != p)
		return fail(why, len, "'%s' must hold %%s (the user name) once and no other %%", v);
	return 0;
}

/* One sources.list line ("deb [OPTIONS] URI SUITE [COMPONENT...]"): it is written into a file
 * on every guest, so no line breaks and nothing but printable ASCII. */
static int check_apt_source(const char *v, char *why, size_t len)
{
	if (!*v)
		return 0;
	if (strncmp(v, "deb ", 4) && strncmp(v, "deb-src ", 8))
		return fail(why, len,
			    "'%s' is not a sources.list line (deb [OPTIONS] URI SUITE ...)", v);
	for (const char *c = v; *c; c++)
		if (*c < 0x20 || *c > 0x7e)
			return fail(why, len, "must be one line of printable ASCII");
	return 0;
}

/* ---- loading ---- */

struct load {
	const char *path;
	struct settings *s;
	struct tuap_err *err;
	int line[N_TOP]; /* where each top-level key was set; 0 = default */
	bool ssh_dir_set;
};

/* The file a setting came from: the main file, or one it @includes. */
static const char *file_of(const struct load *ld, const config_setting_t *st)
{
	const char *f = config_setting_source_file(st);

	return f ? f : ld->path;
}

static int store_labels(struct load *ld, struct settings_hv *hv, const char *fullname,
			config_setting_t *st)
{
	int line = config_setting_source_line(st), n;
	char why[600];

	if (config_setting_type(st) != CONFIG_TYPE_ARRAY &&
	    config_setting_type(st) != CONFIG_TYPE_LIST)
		return err_at(ld->err, file_of(ld, st), line, fullname,
			      "must be a list of strings: [\"ssd\", \"eu\"]");
	n = config_setting_length(st);
	if (n > SETTINGS_LABELS_MAX)
		return err_at(ld->err, file_of(ld, st), line, fullname, "%d labels; at most %d", n,
			      SETTINGS_LABELS_MAX);
	hv->n_labels = 0;
	for (int i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(st, (unsigned)i);
		const char *v = config_setting_get_string(e);

		if (!v)
			return err_at(ld->err, file_of(ld, st), line, fullname,
				      "must be a list of strings: [\"ssd\", \"eu\"]");
		if (strlen(v) >= sizeof(hv->labels[0]) || check_image(v, why, sizeof(why)) < 0)
			return err_at(ld->err, file_of(ld, st), line, fullname,
				      "'%s' is not a label (1 to %zu of [A-Za-z0-9._-])", v,
				      sizeof(hv->labels[0]) - 1);
		snprintf(hv->labels[hv->n_labels++], sizeof(hv->labels[0]), "%s", v);
	}
	return 0;
}

/* Stores setting st as key k into the struct at base (struct settings, or a settings_hv). */
static int store_at(struct load *ld, void *base, const struct key *k, const char *fullname,
		    config_setting_t *st)
{
	char why[600];
	int line = config_setting_source_line(st);
	char *dst = (char *)base + k->off;

	if (k->kind == K_LABELS)
		return store_labels(ld, base, fullname, st);
	if (k->kind == K_RATIO) {
		double v;

		if (config_setting_type(st) == CONFIG_TYPE_FLOAT)
			v = config_setting_get_float(st);
		else if (config_setting_type(st) == CONFIG_TYPE_INT ||
			 config_setting_type(st) == CONFIG_TYPE_INT64)
			v = (double)config_setting_get_int64(st);
		else
			return err_at(ld->err, file_of(ld, st), line, fullname,
				      "must be a number (like 4.0)");
		if (!(v >= (double)k->min && v <= (double)k->max))
			return err_at(ld->err, file_of(ld, st), line, fullname,
				      "%g is out of range (%llu to %llu)", v, k->min, k->max);
		*(double *)(void *)dst = v;
		return 0;
	}
	if (k->kind == K_NUM) {
		long long v;

		if (config_setting_type(st) != CONFIG_TYPE_INT &&
		    config_setting_type(st) != CONFIG_TYPE_INT64)
			return err_at(ld->err, file_of(ld, st), line, fullname,
				      "must be an integer");
		v = config_setting_get_int64(st);
		if (v < 0 || (unsigned long long)v < k->min || (unsigned long long)v > k->max)
			return err_at(ld->err, file_of(ld, st), line, fullname,
				      "%lld is out of range (%llu to %llu)", v, k->min, k->max);
		if (k->size == sizeof(size_t))
			*(size_t *)(void *)dst = (size_t)v;
		else
			*(unsigned *)(void *)dst = (unsigned)v;
		return 0;
	}
	if (config_setting_type(st) != CONFIG_TYPE_STRING)
		return err_at(ld->err, file_of(ld, st), line, fullname,
			      "must be a string (in double quotes)");
	const char *v = config_setting_get_string(st);
	size_t n = strlen(v);
	if (n >= k->size)
		return err_at(ld->err, file_of(ld, st), line, fullname, "longer than %zu bytes",
			      k->size - 1);
	memcpy(dst, v, n);
	dst[n] = '\0';
	if (k->kind == K_PATH) {
		fs_strip_slashes(dst);
		if (valid_abs_path(dst, why, sizeof(why)) < 0)
			return err_at(ld->err, file_of(ld, st), line, fullname, "'%s': %s", v, why);
	}
	if (k->check && k->check(dst, why, sizeof(why)) < 0)
		return err_at(ld->err, file_of(ld, st), line, fullname, "%s", why);
	return 0;
}

static int store(struct load *ld, const struct key *k, const char *fullname, config_setting_t *st)
{
	return store_at(ld, ld->s, k, fullname, st);
}

static const struct key *find_key(const struct key *keys, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(keys[i].name, name))
			return &keys[i];
	return NULL;
}

static int load_group(struct load *ld, const struct group *g, config_setting_t *st)
{
	int line = config_setting_source_line(st);
	int n;

	if (config_setting_type(st) != CONFIG_TYPE_GROUP)
		return err_at(ld->err, file_of(ld, st), line, g->name,
			      "must be a group: %s { %s = ...; }", g->name, g->keys[0].name);
	n = config_setting_length(st);
	for (int i = 0; i < n; i++) {
		config_setting_t *c = config_setting_get_elem(st, (unsigned)i);
		const char *name = config_setting_name(c);
		const struct key *k = find_key(g->keys, g->n, name);
		char full[64];

		snprintf(full, sizeof(full), "%s.%s", g->name, name);
		if (!k)
			return err_at(ld->err, file_of(ld, c), config_setting_source_line(c), full,
				      "unknown key (see tuapd.conf(5))");
		if (store(ld, k, full, c) < 0)
			return -1;
		if (k->off == offsetof(struct settings, ssh_dir))
			ld->ssh_dir_set = true;
	}
	return 0;
}

/* hypervisors = ( { name = "hv1"; libvirt_uri = "..."; ... }, ... ); */
static int load_hypervisors(struct load *ld, config_setting_t *st)
{
	int line = config_setting_source_line(st), n;

	if (config_setting_type(st) != CONFIG_TYPE_LIST)
		return err_at(ld->err, file_of(ld, st), line, "hypervisors",
			      "must be a list of groups: hypervisors = ( { name = \"hv1\"; "
			      "libvirt_uri = \"qemu+ssh://hv1/system\"; } );");
	n = config_setting_length(st);
	if (n == 0 || n > SETTINGS_HV_MAX)
		return err_at(ld->err, file_of(ld, st), line, "hypervisors",
			      "%d entries; one to %d", n, SETTINGS_HV_MAX);
	ld->s->n_hv = 0;
	ld->s->hv_listed = true;
	for (int i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(st, (unsigned)i);
		struct settings_hv *hv = &ld->s->hv[ld->s->n_hv++];
		int eline = config_setting_source_line(e), m;
		char full[96];

		hv_defaults(hv);
		hv->line = eline;
		snprintf(full, sizeof(full), "hypervisors[%d]", i);
		if (config_setting_type(e) != CONFIG_TYPE_GROUP)
			return err_at(ld->err, file_of(ld, e), eline, full,
				      "must be a group: { name = \"hv1\"; libvirt_uri = ...; }");
		m = config_setting_length(e);
		for (int j = 0; j < m; j++) {
			config_setting_t *c = config_setting_get_elem(e, (unsigned)j);
			const char *name = config_setting_name(c);
			const struct key *k = find_key(hv_keys, N_HV_KEYS, name);

			snprintf(full, sizeof(full), "hypervisors[%d].%s", i, name);
			if (!k)
				return err_at(ld->err, file_of(ld, c),
					      config_setting_source_line(c), full,
					      "unknown key (see tuapd.conf(5))");
			if (store_at(ld, hv, k, full, c) < 0)
				return -1;
		}
		snprintf(full, sizeof(full), "hypervisors[%d]", i);
		if (!hv->name[0])
			return err_at(ld->err, file_of(ld, e), eline, full,
				      "has no name (name = \"hv1\";)");
		for (size_t k = 0; k + 1 < ld->s->n_hv; k++)
			if (!strcmp(ld->s->hv[k].name, hv->name))
				return err_at(ld->err, file_of(ld, e), eline, full,
					      "a second hypervisor named %s", hv->name);
	}
	return 0;
}

static int load_root(struct load *ld, config_setting_t *root)
{
	int n = config_setting_length(root);

	for (int i = 0; i < n; i++) {
		config_setting_t *st = config_setting_get_elem(root, (unsigned)i);
		const char *name = config_setting_name(st);
		const struct key *k = find_key(top_keys, N_TOP, name);
		const struct group *g = NULL;

		for (size_t j = 0; j < sizeof(groups) / sizeof(groups[0]); j++)
			if (!strcmp(groups[j].name, name))
				g = &groups[j];
		if (g) {
			if (load_group(ld, g, st) < 0)
				return -1;
			continue;
		}
		if (!strcmp(name, "hypervisors")) {
			if (load_hypervisors(ld, st) < 0)
				return -1;
			continue;
		}
		if (!k)
			return err_at(ld->err, file_of(ld, st), config_setting_source_line(st),
				      name, "unknown key (see tuapd.conf(5))");
		if (store(ld, k, name, st) < 0)
			return -1;
		ld->line[k - top_keys] = config_setting_source_line(st);
	}
	return 0;
}

static int line_of(const struct load *ld, const char *name)
{
	const struct key *k = find_key(top_keys, N_TOP, name);

	return k ? ld->line[k - top_keys] : 0;
}

static void hv_defaults(struct settings_hv *hv)
{
	memset(hv, 0, sizeof(*hv));
	hv->reserve_memory_mib = 2048;
	hv->reserve_cpus = 1;
	hv->reserve_disk_gib = 10;
	hv->cpu_overcommit = 4.0;
}

/* The keys a hypervisor entry shares with the top level (agent_endpoint aside: its default
 * is derived): one list, for filling an entry from the top level and for settings_for_hv. */
#define HV_TOP_KEYS(X)                                                                             \
	X(libvirt_uri);                                                                            \
	X(virt_type);                                                                              \
	X(pool_root);                                                                              \
	X(mgmt_network);                                                                           \
	X(mgmt_subnet);                                                                            \
	X(mgmt_bridge);                                                                            \
	X(public_bridge)

#define FILL(f)                                                                                    \
	do {                                                                                       \
		if (!hv->f[0])                                                                     \
			snprintf(hv->f, sizeof(hv->f), "%s", s->f);                                \
	} while (0)

/* The keys hv leaves out, from the top level (agent_endpoint aside). */
static void hv_from_top(const struct settings *s, struct settings_hv *hv)
{
	HV_TOP_KEYS(FILL);
	hv->remote = settings_uri_is_remote(hv->libvirt_uri) == 1;
}

/* Without a hypervisors list: one entry, the top-level keys. */
static void hv_implicit(struct settings *s)
{
	struct settings_hv *hv = &s->hv[0];

	hv_defaults(hv);
	snprintf(hv->name, sizeof(hv->name), SETTINGS_HV_LOCAL);
	hv_from_top(s, hv);
	FILL(agent_endpoint);
	s->n_hv = 1;
	s->hv_listed = false;
}

/* Each hypervisor's keys it leaves out, from the top level; or the one implicit entry. */
static int finish_hypervisors(struct load *ld)
{
	struct settings *s = ld->s;
	char why[600], gw[INET_ADDRSTRLEN];
	struct in_addr gw_addr;
	unsigned port = 0;

	if (!s->hv_listed) {
		hv_implicit(s);
		return 0;
	}
	for (size_t i = 0; i < s->n_hv; i++) {
		struct settings_hv *hv = &s->hv[i];
		bool own_subnet = hv->mgmt_subnet[0] && strcmp(hv->mgmt_subnet, s->mgmt_subnet);

		hv_from_top(s, hv);
		for (size_t k = 0; k < i; k++)
			if (!strcmp(s->hv[k].libvirt_uri, hv->libvirt_uri))
				return err_at(ld->err, ld->path, hv->line, "hypervisors",
					      "%s and %s have the same libvirt_uri %s: one "
					      "hypervisor, listed twice",
					      s->hv[k].name, hv->name, hv->libvirt_uri);
		if (hv->agent_endpoint[0])
			continue;
		if (hv->remote)
			return err_at(ld->err, ld->path, hv->line, "hypervisors",
				      "%s (%s) is remote and has no agent_endpoint: set the "
				      "tcp://HOST:PORT its guests reach tuapd at",
				      hv->name, hv->libvirt_uri);
		if (!own_subnet) {
			FILL(agent_endpoint);
			continue;
		}
		/* its own management subnet: tuapd listens on that gateway, as for the top level */
		if (parse_subnet(hv->mgmt_subnet, &gw_addr, why, sizeof(why)) < 0 ||
		    parse_endpoint(s->agent_listen, NULL, 0, &port, why, sizeof(why)) < 0)
			return err_set(ld->err, "internal: %s", why);
		inet_ntop(AF_INET, &gw_addr, gw, sizeof(gw));
		snprintf(hv->agent_endpoint, sizeof(hv->agent_endpoint), "tcp://%s:%u", gw, port);
	}
	return 0;
}
#undef FILL

/* Checks between keys, and the defaults that derive from other keys. */
static int finish(struct load *ld)
{
	struct settings *s = ld->s;
	struct sockaddr_un sun;
	char why[600], gw[INET_ADDRSTRLEN];
	struct in_addr gw_addr;
	unsigned port = 0;

	if (s->data_chunk + ENVELOPE_ROOM > s->max_message)
		return err_at(ld->err, ld->path,
			      line_of(ld, "data_chunk") ? line_of(ld, "data_chunk")
							: line_of(ld, "max_message"),
			      "data_chunk",
			      "%zu bytes do not fit in a message of max_message %zu bytes "
			      "(leave %d bytes for the envelope)",
			      s->data_chunk, s->max_message, ENVELOPE_ROOM);
	if (strlen(s->run_dir) + 1 + strlen(CTL_SOCKET_NAME) >= sizeof(sun.sun_path))
		return err_at(ld->err, ld->path, line_of(ld, "run_dir"), "run_dir",
			      "too long for a socket path (%s/%s must be under %zu bytes)",
			      s->run_dir, CTL_SOCKET_NAME, sizeof(sun.sun_path));
	if (!line_of(ld, "agent_endpoint")) {
		if (parse_subnet(s->mgmt_subnet, &gw_addr, why, sizeof(why)) < 0 ||
		    parse_endpoint(s->agent_listen, NULL, 0, &port, why, sizeof(why)) < 0)
			return err_set(ld->err, "internal: %s", why);
		inet_ntop(AF_INET, &gw_addr, gw, sizeof(gw));
		snprintf(s->agent_endpoint, sizeof(s->agent_endpoint), "tcp://%s:%u", gw, port);
	}
	if (!line_of(ld, "public_endpoint"))
		snprintf(s->public_endpoint, sizeof(s->public_endpoint), "%s", s->agent_endpoint);
	if (finish_hypervisors(ld) < 0)
		return -1;
	if (!ld->ssh_dir_set &&
	    joined(s->ssh_dir, sizeof(s->ssh_dir), ld->err, s->state_dir, "ssh") < 0)
		return -1;
	return 0;
}

int settings_parse(const char *path, const char *text, struct settings *s, struct tuap_err *err)
{
	struct load ld = {.path = path, .s = s, .err = err};
	char *dir = strdup(path);
	config_t cf;
	int rc = -1;

	if (!dir)
		return err_set(err, "out of memory");
	settings_defaults(s);
	config_init(&cf);
	config_set_include_dir(&cf, dirname(dir));
	if (config_read_string(&cf, text) != CONFIG_TRUE) {
		err_at(err, config_error_file(&cf) ? config_error_file(&cf) : path,
		       config_error_line(&cf), "", "%s", config_error_text(&cf));
		goto out;
	}
	if (load_root(&ld, config_root_setting(&cf)) < 0 || finish(&ld) < 0)
		goto out;
	rc = 0;
out:
	config_destroy(&cf);
	free(dir);
	return rc;
}

int settings_load(const char *path, struct settings *s, struct tuap_err *err)
{
	size_t len;
	char *text = fs_read_file(path, SETTINGS_FILE_MAX, &len, err);
	int rc;

	if (!text)
		return -1;
	if (strlen(text) != len) {
		free(text);
		return err_at(err, path, 0, "", "contains a NUL byte; not a text file");
	}
	rc = settings_parse(path, text, s, err);
	free(text);
	return rc;
}

/* ---- derived values ---- */

static int joined(char *out, size_t len, struct tuap_err *err, const char *a, const char *b)
{
	int n = snprintf(out, len, "%s%s%s", a, strcmp(a, "/") ? "/" : "", b);

	if (n < 0 || (size_t)n >= len)
		return err_set(err, "path too long: %s/%s", a, b);
	return 0;
}

int settings_images_dir(const struct settings *s, char *out, size_t len, struct tuap_err *err)
{
	return joined(out, len, err, s->pool_root, "images");
}

int settings_image_cache_dir(const struct settings *s, char *out, size_t len, struct tuap_err *err)
{
	return joined(out, len, err, s->pool_root, ".image-cache");
}

int settings_domain_dir(const struct settings *s, const char *domain, char *out, size_t len,
			struct tuap_err *err)
{
	if (valid_domain_name(domain, NULL, 0) < 0 || !strcmp(domain, "images"))
		return err_set(err, "'%s' cannot name a directory under %s", domain, s->pool_root);
	return joined(out, len, err, s->pool_root, domain);
}

int settings_uri_is_remote(const char *uri)
{
	const char *p = strstr(uri, "://");

	/* qemu:///system, qemu:///system?socket=...: no host; qemu+ssh://host/system: one */
	return p && p[3] && p[3] != '/' ? 1 : 0;
}

const struct settings_hv *settings_hv_find(const struct settings *s, const char *name)
{
	for (size_t i = 0; i < s->n_hv; i++)
		if (!strcmp(s->hv[i].name, name))
			return &s->hv[i];
	return NULL;
}

#define TAKE(f) snprintf(out->f, sizeof(out->f), "%s", hv->f)
void settings_for_hv(const struct settings *s, const struct settings_hv *hv, struct settings *out)
{
	if (out != s)
		memcpy(out, s, sizeof(*out));
	HV_TOP_KEYS(TAKE);
	TAKE(agent_endpoint);
}
#undef TAKE

int settings_ctl_socket(const struct settings *s, char *out, size_t len, struct tuap_err *err)
{
	return joined(out, len, err, s->run_dir, CTL_SOCKET_NAME);
}

unsigned settings_deadline(const struct settings *s, const char *name)
{
	const struct key *k = find_key(deadline_keys, groups[0].n, name);

	return k ? *(const unsigned *)(const void *)((const char *)s + k->off) : 0;
}

int settings_ssh_key_url(const struct settings *s, const char *import_id, char *out, size_t len,
			 struct tuap_err *err)
{
	const char *tmpl, *user = import_id + 3, *p;
	int n;

	if (!strncmp(import_id, "gh:", 3))
		tmpl = s->ssh_key_url_gh;
	else if (!strncmp(import_id, "lp:", 3))
		tmpl = s->ssh_key_url_lp;
	else
		return err_set(err, "'%s' is not gh:USER or lp:USER", import_id);
	if (!*user || strlen(user) > 64 || name_chars(user, "._-") < 0)
		return err_set(err, "'%s': '%s' is not an account name", import_id, user);
	p = strstr(tmpl, "%s");
	if (!p)
		return err_set(err, "internal: key URL template without %%s");
	n = snprintf(out, len, "%.*s%s%s", (int)(p - tmpl), tmpl, user, p + 2);
	if (n < 0 || (size_t)n >= len)
		return err_set(err, "key URL for '%s' too long", import_id);
	return 0;
}
