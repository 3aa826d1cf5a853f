/*
 * tuapd's own settings: /etc/tuap/tuapd.conf, in libconfig syntax (`key = value;`, groups in
 * braces). Every key has a default (settings_defaults) and every path can be overridden, so that
 * tests run unprivileged in temporary directories. The keys are documented in
 * docs/tuapd.conf.5; deploy/tuapd.conf is the example with every default spelled out.
 */
#ifndef TUAP_SETTINGS_H
#define TUAP_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

#define SETTINGS_DEFAULT_PATH "/etc/tuap/tuapd.conf"
#define SETTINGS_FILE_MAX     (1u << 20) /* tuapd.conf is read whole; larger is an error */
#define SETTINGS_STR_MAX      1024	 /* paths, URIs, endpoints, URL templates */
#define SETTINGS_NAME_MAX     64	 /* libvirt network, catalog image name */
#define SETTINGS_IFNAME_MAX   16	 /* IFNAMSIZ: the bridge name */

/* Deadlines of the provisioning phases and agent steps, in seconds (ARCHITECTURE.md, "A provision,
 * phase by phase"). */
struct settings_deadlines {
	unsigned image;
	unsigned disk;
	unsigned seed;
	unsigned define;
	unsigned hello;
	unsigned users;
	unsigned packages;
	unsigned mail;
	unsigned data;
	unsigned make;
	unsigned push; /* existing hosts: ssh, sudo check, agent copied and started */
};

/* One hypervisor of tuapd.conf's `hypervisors` list (docs/tuapd.conf.5). Keys an entry leaves out
 * come from the top-level keys of the same name; without the list there is one entry, named
 * SETTINGS_HV_LOCAL, made of the top-level keys (the behaviour of a single-hypervisor tuapd). */
#define SETTINGS_HV_MAX	    16
#define SETTINGS_LABELS_MAX 8
#define SETTINGS_HV_LOCAL   "local"

struct settings_hv {
	char name[SETTINGS_NAME_MAX];
	char libvirt_uri[SETTINGS_STR_MAX];
	char virt_type[8];
	char pool_root[SETTINGS_STR_MAX]; /* a path on that hypervisor */
	char mgmt_network[SETTINGS_NAME_MAX];
	char mgmt_subnet[48];
	char mgmt_bridge[SETTINGS_IFNAME_MAX];
	char public_bridge[SETTINGS_IFNAME_MAX];
	char agent_endpoint[SETTINGS_STR_MAX]; /* tuapd as that hypervisor's guests reach it */
	unsigned reserve_memory_mib;	       /* kept for the host: 2048 */
	unsigned reserve_cpus;		       /* 1 */
	unsigned reserve_disk_gib;	       /* kept free in its tuap-images pool: 10 */
	double cpu_overcommit;		       /* vCPUs per host CPU: 4.0 */
	unsigned max_guests;		       /* 0: no cap */
	char labels[SETTINGS_LABELS_MAX][SETTINGS_NAME_MAX];
	size_t n_labels;
	bool remote; /* the URI names a host: tuapd's files are not that hypervisor's */
	int line;    /* where the entry starts in tuapd.conf; 0: the implicit one */
};

struct settings {
	char libvirt_uri[SETTINGS_STR_MAX];	 /* "qemu:///system" */
	char virt_type[8];			 /* "kvm", or "qemu" (TCG: cpu mode maximum) */
	char pool_root[SETTINGS_STR_MAX];	 /* "/vms": images in ROOT/images, ROOT/DOMAIN */
	char state_dir[SETTINGS_STR_MAX];	 /* "/var/lib/tuap": the controller journal */
	char run_dir[SETTINGS_STR_MAX];		 /* "/run/tuap": RUN_DIR/ctl.sock */
	char ctl_group[33];			 /* "tuap": group of the control socket */
	char mgmt_network[SETTINGS_NAME_MAX];	 /* "tuap-mgmt": libvirt NAT network, NIC 0 */
	char mgmt_subnet[48];			 /* "192.168.251.0/24": inside that network only */
	char mgmt_bridge[SETTINGS_IFNAME_MAX];	 /* "virbr-tuap": the bridge of mgmt_network */
	char public_bridge[SETTINGS_IFNAME_MAX]; /* "br0": host bridge of NIC 1 */
	char agent_listen[SETTINGS_STR_MAX];	 /* "tcp://0.0.0.0:7807": tuapd's ROUTER socket */
	char agent_endpoint[SETTINGS_STR_MAX];	 /* what guests connect to: mgmt gateway:port */
	char public_endpoint[SETTINGS_STR_MAX];	 /* what existing hosts connect to */
	char image_catalog[SETTINGS_STR_MAX];	 /* "/etc/tuap/images.conf" */
	char image_dir[SETTINGS_STR_MAX];      /* "/var/lib/tuap/images": image=/PATH only below */
	char default_image[SETTINGS_NAME_MAX]; /* "debian-12" */
	char agent_binary[SETTINGS_STR_MAX];   /* TUAP_LIBDIR/tuap-agent: seeds, pushes */
	char seed_dir[SETTINGS_STR_MAX];       /* TUAP_DATADIR/seed: install, tuap-agent.service */
	char apt_source[SETTINGS_STR_MAX];     /* "": one sources.list line for every guest */
	char ssh_key_url_gh[SETTINGS_STR_MAX]; /* ssh_import_id "gh:USER": one %s for USER */
	char ssh_key_url_lp[SETTINGS_STR_MAX]; /* ssh_import_id "lp:USER" */
	char ssh_client[SETTINGS_STR_MAX];     /* "/usr/bin/ssh": reaches existing hosts */
	char ssh_dir[SETTINGS_STR_MAX];	       /* STATE_DIR/ssh: tuapd's key, known_hosts */
	unsigned ssh_connect_timeout;	       /* seconds; ssh's ConnectTimeout */
	struct settings_deadlines deadlines;
	size_t max_message;   /* bytes; ZMQ_MAXMSGSIZE on agent sockets */
	size_t data_chunk;    /* bytes per DataChunk */
	unsigned data_window; /* DataChunks in flight (the agent's credit) */
	unsigned keep_jobs;   /* job directories (inputs, setup.log) kept per domain */
	struct settings_hv hv[SETTINGS_HV_MAX]; /* at least one after settings_load */
	size_t n_hv;
	bool hv_listed; /* tuapd.conf has a `hypervisors` list (capacity is then checked) */
};

/* Fills s with the documented defaults. */
void settings_defaults(struct settings *s);

/* Reads path over the defaults. Unknown keys, wrong types and bad values are errors, reported
 * as "PATH:LINE: key: message" (syntax errors as "PATH:LINE: message"). Keys not in the file
 * keep their defaults; agent_endpoint then defaults to the first address of mgmt_subnet with
 * agent_listen's port, public_endpoint to agent_endpoint and ssh.dir to STATE_DIR/ssh. On error s
 * is unspecified. */
int settings_load(const char *path, struct settings *s, struct tuap_err *err);

/* Same, from text already in memory; path is only used in messages and for @include. */
int settings_parse(const char *path, const char *text, struct settings *s, struct tuap_err *err);

/* The settings one hypervisor's VM work uses: s with hv's libvirt_uri, virt_type, pool_root,
 * networks, bridge and agent_endpoint in place of the top-level ones. */
void settings_for_hv(const struct settings *s, const struct settings_hv *hv, struct settings *out);
/* The entry named name; NULL when there is none. */
const struct settings_hv *settings_hv_find(const struct settings *s, const char *name);
/* 1 when the libvirt URI names a host (qemu+ssh://h/system), 0 for a local one. */
int settings_uri_is_remote(const char *uri);

/* Derived paths. Each returns -1 (with err) when the result would not fit in len. */
int settings_images_dir(const struct settings *s, char *out, size_t len, struct tuap_err *err);
int settings_domain_dir(const struct settings *s, const char *domain, char *out, size_t len,
			struct tuap_err *err);
/* POOL_ROOT/.image-cache: downloaded base images, verified, as image_volume_name() */
int settings_image_cache_dir(const struct settings *s, char *out, size_t len, struct tuap_err *err);
int settings_ctl_socket(const struct settings *s, char *out, size_t len, struct tuap_err *err);

/* Splits "tcp://HOST:PORT" (agent_listen, agent_endpoint) into HOST (brackets of an IPv6
 * address kept) and PORT; -1 with err when it is not one. */
int settings_endpoint_split(const char *endpoint, char *host, size_t hostlen, unsigned *port,
			    struct tuap_err *err);

/* The deadline of a phase or step by its name ("image", "make", ...), in seconds; 0 when the
 * name is not one of the deadlines. */
unsigned settings_deadline(const struct settings *s, const char *name);

/* The URL of the public keys of an ssh_import_id ("gh:USER" or "lp:USER"). USER must be a
 * GitHub/Launchpad account name ([A-Za-z0-9_.-], at most 64); -1 with err otherwise. */
int settings_ssh_key_url(const struct settings *s, const char *import_id, char *out, size_t len,
			 struct tuap_err *err);

#endif
