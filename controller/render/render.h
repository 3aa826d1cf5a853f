/*
 * Rendering of what a provision creates (ARCHITECTURE.md, phases 7 and 8): the NoCloud seed
 * files (meta-data, network-config, user-data; cloudinit.c) and the libvirt domain XML
 * (domxml.c). Renders are pure: the same input gives the same bytes, nothing is read or
 * written besides the output buffer, so that --dry-run shows exactly what would be used.
 * YAML goes through libyaml's emitter and XML through libxml2's text writer; no output is
 * pieced together from strings.
 */
#ifndef TUAP_RENDER_H
#define TUAP_RENDER_H

#include "buf.h"
#include "domain.h"
#include "err.h"
#include "settings.h"
#include "users.h"

/* Length of a Z85-encoded CURVE public key. */
#define RENDER_Z85_KEY_LEN 40

/* The seed in the guest: the ISO's volume id; a root-only directory, and in it the mount point
 * of the ISO (whose own permissions would otherwise expose agent.conf, which holds the agent's
 * secret key, to every local user); the installer the seed carries (deploy/seed/install). */
#define SEED_VOLUME_ID	 "cidata"
#define SEED_PRIVATE_DIR "/run/tuap-seed"
#define SEED_MOUNT_DIR	 SEED_PRIVATE_DIR "/iso"
#define SEED_INSTALL	 SEED_MOUNT_DIR "/tuap/install"
/* settings' apt_source, when set: a file on the seed that bootcmd installs as the guest's
 * extra apt source before the installer starts the agent */
#define SEED_APT_SOURCE	       "tuap/apt-source.list"
#define SEED_APT_SOURCE_TARGET "/etc/apt/sources.list.d/tuap.list"

struct render_input {
	const struct domain_conf *conf; /* required */
	const struct users *users;	/* NULL or empty when there is no users.yaml */
	const struct settings *set;	/* required */
	const char *instance_id;	/* required: fresh per build (meta-data, metadata) */
	const char *provision_id;	/* required: the job (metadata) */
	const char *mac_mgmt;		/* required: domain_mac(name, 0), "52:54:00:xx:xx:xx" */
	const char *mac_public;		/* required: domain_mac(name, 1) */
	const char *disk_path;		/* required: the qcow2 overlay */
	const char *backing_path;	/* required: its base image (qcow2) */
	const char *seed_path;		/* required: the cidata ISO */
	const char *console_log;	/* required: the serial console's log file */
	const char *kernel;		/* optional direct kernel boot (else <boot dev="hd"/>) */
	const char *initrd;		/* optional, only with kernel */
	const char *cmdline;		/* optional, only with kernel */
	const char *agent_public_key;	/* required: the agent's CURVE public key, Z85 */
};

/* Each function appends its document to out and returns 0, or returns -1 with err (a
 * required input missing or malformed); out may then hold a partial document. */

/* NoCloud meta-data: instance-id and local-hostname (the domain name). */
int cloudinit_meta_data(const struct render_input *in, struct buf *out, struct tuap_err *err);

/* network-config version 2: NIC "mgmt" (matched by mac_mgmt) by DHCP without routes or DNS,
 * NIC "public" (mac_public) with the static ips, default route(s) and resolvers (or DHCP when
 * there are no ips); set-name from dhcp_devname / bridge_devname when given. */
int cloudinit_network_config(const struct render_input *in, struct buf *out, struct tuap_err *err);

/* #cloud-config user-data: hostname/fqdn, `users` ([default] when users.yaml lists
 * `default`, else [[]]: no users, tuap-agent creates them), and a bootcmd that mounts the
 * seed, installs the seed's SEED_APT_SOURCE when settings have an apt_source, and runs its
 * installer, which installs and starts tuap-agent. Holds no secret (the agent's keys are in
 * tuap/agent.conf on the seed). */
int cloudinit_user_data(const struct render_input *in, struct buf *out, struct tuap_err *err);

/* libvirt domain XML (see domxml.c for the devices). Its <metadata> holds meta.h's element:
 * TUAP_VERSION, the provision and instance ids, the agent's public key and the image
 * (conf->image, or settings' default_image when the site names none). */
int domxml_render(const struct render_input *in, struct buf *out, struct tuap_err *err);

/* Checks shared by the renders (render.c). Errors name the render_input field. */
/* The field is set and not empty. */
int render_need(const char *field, const char *v, struct tuap_err *err);
/* conf and set are given and conf has a name. */
int render_need_model(const struct render_input *in, struct tuap_err *err);
/* "xx:xx:xx:xx:xx:xx", hex digits. */
int render_check_mac(const char *field, const char *mac, struct tuap_err *err);
/* 40 characters of the Z85 alphabet. */
int render_check_z85_key(const char *field, const char *key, struct tuap_err *err);
/* An address as text from its bytes ("192.0.2.10", "2001:db8::10"), with "/PREFIX" when
 * with_prefix; -1 when the family is neither AF_INET nor AF_INET6. */
int render_ip(const struct ip_addr *a, int with_prefix, char *out, size_t len);

#endif
