/*
 * The three cloud-init files of a NoCloud seed: meta-data, network-config (version 2) and
 * user-data (#cloud-config). Everything goes through libyaml's emitter. Strings that a YAML 1.1
 * reader (PyYAML, which cloud-init uses) would take for a number, a boolean or null are quoted:
 * a MAC made of digits and colons is a base-60 integer to PyYAML.
 */
#include "render.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "settings.h"
#include "virtdef.h"

/* The first lines of user-data. libyaml's emitter writes no comments, so these constant lines
 * (the #cloud-config marker cloud-init requires, and a note for operators reading
 * --dry-run output) are put before the emitted document. */
static const char user_data_header[] =
	"#cloud-config\n"
	"# Rendered by tuap. cloud-init sets the host name and, on every boot, runs the seed's\n"
	"# installer (bootcmd), which installs and starts tuap-agent. Users are not created by\n"
	"# cloud-init: tuap-agent creates those of users.yaml. `users: [default]` keeps the\n"
	"# image's default user (users.yaml lists `default`); `users: [[]]` is an empty list of\n"
	"# users (no users at all) in the form cloud-init 22.4's schema accepts, as it rejects\n"
	"# `[]` (LP: #1999476).\n";

struct emit {
	yaml_emitter_t e;
	bool failed;
	struct tuap_err *err;
	const char *what;
};

static int write_out(void *data, unsigned char *bytes, size_t size)
{
	buf_add(data, bytes, size);
	return 1;
}

/* Emits ev (which the emitter owns from here on); after a failure, does nothing. */
static void emit(struct emit *em, yaml_event_t *ev, int made)
{
	if (em->failed) {
		if (made)
			yaml_event_delete(ev);
		return;
	}
	if (!made) {
		em->failed = true;
		err_set(em->err, "render %s: a value is not valid UTF-8", em->what);
		return;
	}
	if (!yaml_emitter_emit(&em->e, ev)) {
		em->failed = true;
		err_set(em->err, "render %s: %s", em->what,
			em->e.problem ? em->e.problem : "YAML emitter error");
	}
}

/* Stops the emission with an error: later events are dropped, end() returns -1. */
static int bad(struct emit *em, const char *fmt, ...) TUAP_PRINTF(2, 3);

static int bad(struct emit *em, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!em->failed)
		err_set(em->err, "render %s: %s", em->what, msg);
	em->failed = true;
	return -1;
}

static void begin(struct emit *em, struct buf *out, const char *what, struct tuap_err *err)
{
	yaml_event_t ev;

	memset(em, 0, sizeof(*em));
	em->err = err;
	em->what = what;
	if (!yaml_emitter_initialize(&em->e)) {
		em->failed = true;
		err_set(err, "render %s: cannot initialize the YAML emitter", what);
		return;
	}
	yaml_emitter_set_output(&em->e, write_out, out);
	yaml_emitter_set_unicode(&em->e, 1);
	yaml_emitter_set_width(&em->e, -1); /* never fold long lines (ssh keys, paths) */
	yaml_emitter_set_indent(&em->e, 2);
	emit(em, &ev, yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING));
	emit(em, &ev, yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1));
}

static int end(struct emit *em)
{
	yaml_event_t ev;
	int rc;

	emit(em, &ev, yaml_document_end_event_initialize(&ev, 1));
	emit(em, &ev, yaml_stream_end_event_initialize(&ev));
	if (!em->failed && !yaml_emitter_flush(&em->e)) {
		em->failed = true;
		err_set(em->err, "render %s: cannot flush the YAML emitter", em->what);
	}
	rc = em->failed ? -1 : 0;
	yaml_emitter_delete(&em->e);
	return rc;
}

static void map_start(struct emit *em)
{
	yaml_event_t ev;

	emit(em, &ev,
	     yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE));
}

static void map_end(struct emit *em)
{
	yaml_event_t ev;

	emit(em, &ev, yaml_mapping_end_event_initialize(&ev));
}

static void seq_start(struct emit *em, yaml_sequence_style_t style)
{
	yaml_event_t ev;

	emit(em, &ev, yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, style));
}

static void seq_end(struct emit *em)
{
	yaml_event_t ev;

	emit(em, &ev, yaml_sequence_end_event_initialize(&ev));
}

/* True when a YAML 1.1 reader would resolve s, written plain, to something other than a
 * string: null, a boolean, a number (including base 60 and .inf/.nan), a timestamp, or the
 * merge/value keys. Overcautious on purpose (every leading digit is quoted). */
static bool resolves_to_non_string(const char *s)
{
	static const char *const words[] = {"y",  "n",	 "yes",	 "no", "true", "false",
					    "on", "off", "null", "~",  "<<",   "="};

	if (!*s || (*s >= '0' && *s <= '9') || *s == '.')
		return true;
	if ((*s == '-' || *s == '+') && ((s[1] >= '0' && s[1] <= '9') || s[1] == '.'))
		return true;
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (!strcasecmp(s, words[i]))
			return true;
	return false;
}

static void scalar(struct emit *em, const char *s, yaml_scalar_style_t style)
{
	yaml_event_t ev;

	emit(em, &ev,
	     yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)strlen(s), 1, 1,
					  style));
}

/* A string value: plain when that reads back as the same string, else single-quoted (the
 * emitter itself falls back to double quotes where single quotes cannot hold the text). */
static void str(struct emit *em, const char *s)
{
	scalar(em, s,
	       resolves_to_non_string(s) ? YAML_SINGLE_QUOTED_SCALAR_STYLE : YAML_ANY_SCALAR_STYLE);
}

/* A key, a boolean or an integer: written plain, as the caller means it to be typed. */
static void plain(struct emit *em, const char *s)
{
	scalar(em, s, YAML_PLAIN_SCALAR_STYLE);
}

static void kv(struct emit *em, const char *key, const char *value)
{
	plain(em, key);
	str(em, value);
}

static void kbool(struct emit *em, const char *key, bool v)
{
	plain(em, key);
	plain(em, v ? "true" : "false");
}

/* ---- meta-data ---- */

int cloudinit_meta_data(const struct render_input *in, struct buf *out, struct tuap_err *err)
{
	struct emit em;

	if (render_need_model(in, err) < 0 || render_need("instance_id", in->instance_id, err) < 0)
		return -1;
	begin(&em, out, "meta-data", err);
	map_start(&em);
	kv(&em, "instance-id", in->instance_id);
	kv(&em, "local-hostname", in->conf->name);
	map_end(&em);
	return end(&em);
}

/* ---- network-config ---- */

static void nic_match(struct emit *em, const char *mac, const char *devname)
{
	plain(em, "match");
	map_start(em);
	kv(em, "macaddress", mac);
	map_end(em);
	if (devname[0])
		kv(em, "set-name", devname);
}

/* tuapd's address when the agent reaches it beyond the management subnet (a remote hypervisor:
 * agent_endpoint is tuapd's host, routed from that hypervisor's management network), with the
 * subnet's gateway to reach it by; 0 when the endpoint is in the subnet (tuapd on this
 * hypervisor, at the gateway) or is a name (routes take addresses: the operator routes it). */
static int endpoint_beyond(const struct settings *set, char *host, size_t hlen,
			   struct virtdef_subnet *sn)
{
	struct in_addr h, net;
	unsigned prefix, port;
	uint32_t mask;
	char base[INET_ADDRSTRLEN];
	const char *slash = strchr(set->mgmt_subnet, '/');

	if (settings_endpoint_split(set->agent_endpoint, host, hlen, &port, NULL) < 0 ||
	    inet_pton(AF_INET, host, &h) != 1 || !slash ||
	    (size_t)(slash - set->mgmt_subnet) >= sizeof(base) ||
	    virtdef_subnet(set->mgmt_subnet, sn, NULL) < 0)
		return 0;
	memcpy(base, set->mgmt_subnet, (size_t)(slash - set->mgmt_subnet));
	base[slash - set->mgmt_subnet] = '\0';
	prefix = (unsigned)atoi(slash + 1);
	if (inet_pton(AF_INET, base, &net) != 1 || prefix < 1 || prefix > 32)
		return 0;
	mask = prefix == 32 ? ~0u : ~(~0u >> prefix);
	return (ntohl(h.s_addr) & mask) != (ntohl(net.s_addr) & mask);
}

/* NIC 0: only for the agent's traffic to tuapd. Its DHCP lease must not bring a default route
 * or DNS servers that would compete with the public NIC's; when tuapd is beyond the management
 * subnet (a remote hypervisor), one host route to it through the subnet's gateway. */
static void mgmt_nic(struct emit *em, const struct render_input *in)
{
	struct virtdef_subnet sn;
	char host[SETTINGS_STR_MAX], to[SETTINGS_STR_MAX + 4];

	plain(em, "mgmt");
	map_start(em);
	nic_match(em, in->mac_mgmt, in->conf->dhcp_devname);
	kbool(em, "dhcp4", true);
	plain(em, "dhcp4-overrides");
	map_start(em);
	kbool(em, "use-routes", false);
	kbool(em, "use-dns", false);
	map_end(em);
	if (endpoint_beyond(in->set, host, sizeof(host), &sn)) {
		snprintf(to, sizeof(to), "%s/32", host);
		plain(em, "routes");
		seq_start(em, YAML_BLOCK_SEQUENCE_STYLE);
		map_start(em);
		kv(em, "to", to);
		kv(em, "via", sn.gateway);
		map_end(em);
		seq_end(em);
	}
	map_end(em);
}

/* The default routes are written as gateway4/gateway6, not as routes to 0.0.0.0/0 and ::/0:
 * cloud-init 22.4 normalizes a route twice and turns "::/0" into "::/64" on the second pass
 * (a prefix of 0 is dropped as false), while gateway4/gateway6 come out as default routes
 * from every renderer (networkd, eni, sysconfig; netplan takes them as they are). */
static int gateways(struct emit *em, const struct domain_conf *c)
{
	const struct ip_addr *gw4 = NULL, *gw6 = NULL;
	char text[INET6_ADDRSTRLEN + 8];

	if (c->gateway.family == AF_INET)
		gw4 = &c->gateway;
	else if (c->gateway.family == AF_INET6)
		gw6 = &c->gateway;
	if (c->gateway6.family == AF_INET6)
		gw6 = &c->gateway6;
	if (gw4) {
		if (render_ip(gw4, 0, text, sizeof(text)) < 0)
			return bad(em, "gateway is not an address");
		kv(em, "gateway4", text);
	}
	if (gw6) {
		if (render_ip(gw6, 0, text, sizeof(text)) < 0)
			return bad(em, "gateway6 is not an address");
		kv(em, "gateway6", text);
	}
	return 0;
}

static int public_nic(struct emit *em, const struct render_input *in)
{
	const struct domain_conf *c = in->conf;
	char text[INET6_ADDRSTRLEN + 8];

	plain(em, "public");
	map_start(em);
	nic_match(em, in->mac_public, c->bridge_devname);
	if (c->n_ips == 0) {
		/* upstream's rule: no ips, the public NIC takes DHCP */
		kbool(em, "dhcp4", true);
	} else {
		plain(em, "addresses");
		seq_start(em, YAML_BLOCK_SEQUENCE_STYLE);
		for (size_t i = 0; i < c->n_ips && i < DOMAIN_MAX_IPS; i++) {
			if (render_ip(&c->ips[i], 1, text, sizeof(text)) < 0)
				return bad(em, "ips[%zu] is not an address", i);
			str(em, text);
		}
		seq_end(em);
		if (gateways(em, c) < 0)
			return -1;
	}
	if (c->n_resolvers > 0) {
		plain(em, "nameservers");
		map_start(em);
		plain(em, "addresses");
		seq_start(em, YAML_BLOCK_SEQUENCE_STYLE);
		for (size_t i = 0; i < c->n_resolvers && i < DOMAIN_MAX_RESOLVERS; i++) {
			if (render_ip(&c->resolvers[i], 0, text, sizeof(text)) < 0)
				return bad(em, "resolvers[%zu] is not an address", i);
			str(em, text);
		}
		seq_end(em);
		map_end(em);
	}
	map_end(em);
	return 0;
}

int cloudinit_network_config(const struct render_input *in, struct buf *out, struct tuap_err *err)
{
	struct emit em;

	if (render_need_model(in, err) < 0 || render_check_mac("mac_mgmt", in->mac_mgmt, err) < 0 ||
	    render_check_mac("mac_public", in->mac_public, err) < 0)
		return -1;
	begin(&em, out, "network-config", err);
	map_start(&em);
	plain(&em, "version");
	plain(&em, "2");
	plain(&em, "ethernets");
	map_start(&em);
	mgmt_nic(&em, in);
	public_nic(&em, in);
	map_end(&em);
	map_end(&em);
	return end(&em);
}

/* ---- user-data ---- */

static bool has_default_user(const struct users *u)
{
	for (size_t i = 0; u && i < u->n; i++)
		if (u->v[i].is_default)
			return true;
	return false;
}

static void argv(struct emit *em, const char *const *args)
{
	seq_start(em, YAML_FLOW_SEQUENCE_STYLE);
	for (; *args; args++)
		str(em, *args);
	seq_end(em);
}

int cloudinit_user_data(const struct render_input *in, struct buf *out, struct tuap_err *err)
{
	static const char *const private_dir[] = {"install",	    "-d", "-m", "0700",
						  SEED_PRIVATE_DIR, NULL};
	static const char *const mount_dir[] = {"mkdir", "-p", SEED_MOUNT_DIR, NULL};
	static const char *const mount_seed[] = {
		"mount", "-o", "ro", "LABEL=" SEED_VOLUME_ID, SEED_MOUNT_DIR, NULL};
	/* the installer's status is the script's; the seed is unmounted after it, so that the
	 * drive is not locked and tuapd can eject the medium after the agent's hello. At later
	 * boots the medium is gone (the mount above fails): the agent is installed and enabled
	 * already, and cloud-init reads its files from the local copy the installer made. */
	static const char *const run_install[] = {
		"sh",
		"-c",
		"[ -f \"$1\" ] || exit 0; sh \"$1\" \"$2\"; rc=$?; umount \"$2\"; exit $rc",
		"tuap-install",
		SEED_INSTALL,
		SEED_MOUNT_DIR,
		NULL};
	static const char *const apt_source[] = {
		"install", "-m", "0644", SEED_MOUNT_DIR "/" SEED_APT_SOURCE, SEED_APT_SOURCE_TARGET,
		NULL};
	char host[DOMAIN_NAME_MAX + 1];
	struct emit em;

	if (render_need_model(in, err) < 0)
		return -1;
	snprintf(host, sizeof(host), "%.*s", (int)strcspn(in->conf->name, "."), in->conf->name);

	buf_adds(out, user_data_header);
	begin(&em, out, "user-data", err);
	map_start(&em);
	kv(&em, "hostname", host);
	kv(&em, "fqdn", in->conf->name);
	/* "127.0.1.1 FQDN HOST" in /etc/hosts, so that `hostname -f` (mail) works */
	kv(&em, "manage_etc_hosts", "localhost");

	/* tuap-agent creates the users of users.yaml (so that it can report and retry each);
	 * cloud-init only keeps the image's default user when users.yaml lists `default`.
	 * Otherwise an empty list: [[]] rather than [], which cloud-init 22.4's schema
	 * rejects (minItems 1, removed in 23.2); both mean no users at run time. */
	plain(&em, "users");
	seq_start(&em, YAML_FLOW_SEQUENCE_STYLE);
	if (has_default_user(in->users)) {
		str(&em, "default");
	} else {
		seq_start(&em, YAML_FLOW_SEQUENCE_STYLE);
		seq_end(&em);
	}
	seq_end(&em);

	/* bootcmd runs early on every boot (before cloud-init's final stage); the installer is
	 * idempotent. The seed is mounted inside a root-only directory, for it carries the
	 * agent's secret key, and unmounted once the agent is installed; tuapd ejects it after
	 * the agent's first hello (the agent's copy of its config is root's, in
	 * /etc/tuap-agent). cloud-init runs these lines as one sh script without -e. */
	plain(&em, "bootcmd");
	seq_start(&em, YAML_BLOCK_SEQUENCE_STYLE);
	argv(&em, private_dir);
	argv(&em, mount_dir);
	argv(&em, mount_seed);
	/* before the agent exists: its packages step must see the source (cloud-init's apt and
	 * write_files modules run after bootcmd, when the agent may already be at work) */
	if (in->set->apt_source[0])
		argv(&em, apt_source);
	argv(&em, run_install);
	seq_end(&em);
	map_end(&em);
	return end(&em);
}
