/*
 * The domain model: one operator directory DOMAIN/ with provision.conf (required), users.yaml
 * and data.tar.gz (both optional), read and validated as a whole. Every key of provision.conf is
 * documented in docs/provision.conf.5; defaults are applied here so that every later stage sees
 * complete values.
 */
#ifndef TUAP_DOMAIN_H
#define TUAP_DOMAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "tarball.h"
#include "users.h"
#include "valid.h"

#define DOMAIN_NAME_MAX	     VALID_DOMAIN_MAX
#define DOMAIN_IMAGE_MAX     2048 /* image = catalog name, absolute path or URL */
#define DOMAIN_MAX_IPS	     16
#define DOMAIN_MAX_RESOLVERS 8
#define DOMAIN_MAX_PACKAGES  256
#define DOMAIN_MAX_LABELS    8	/* hypervisor_labels */
#define DOMAIN_LABEL_MAX     63 /* one label: [A-Za-z0-9._-] */

#define DOMAIN_DEFAULT_SIZE	  (40ULL << 30) /* bytes */
#define DOMAIN_DEFAULT_MEMORY_MIB 2048
#define DOMAIN_DEFAULT_CPUS	  2

enum image_kind { IMAGE_CATALOG, IMAGE_PATH, IMAGE_URL };

struct domain_conf {
	char name[DOMAIN_NAME_MAX + 1]; /* the directory's base name, validated as RFC 1123 */
	char dir[4096];			/* the directory as given */
	char conf_path[4096];		/* DIR/provision.conf, as used in messages */

	struct ip_addr ips[DOMAIN_MAX_IPS];
	size_t n_ips;
	struct ip_addr gateway;	 /* family 0 when not given */
	struct ip_addr gateway6; /* an IPv6 gateway when gateway holds IPv4 */
	struct ip_addr resolvers[DOMAIN_MAX_RESOLVERS];
	size_t n_resolvers;
	uint64_t size;		      /* disk size in bytes */
	char image[DOMAIN_IMAGE_MAX]; /* catalog name, absolute path or URL; "" = catalog default */
	enum image_kind image_kind;
	char *packages[DOMAIN_MAX_PACKAGES];
	size_t n_packages;
	char contact_email[256];
	char depends_on[DOMAIN_NAME_MAX + 1]; /* "" unless the site goes on an existing host */
	char admin_user[33];		      /* default "root" */
	unsigned memory_mib;
	unsigned cpus;
	char cpu_mode[32]; /* host-passthrough (default), host-model, maximum, custom */
	char distro[64];
	char pre_make_script[4096]; /* relative to the extracted tree; "" when unset */
	char hypervisor[256];	    /* pins a hypervisor of tuapd.conf; "" = placed */
	char hypervisor_labels[DOMAIN_MAX_LABELS][DOMAIN_LABEL_MAX + 1]; /* all must be carried */
	size_t n_hypervisor_labels;
	char dhcp_devname[16]; /* guest NIC name hints (upstream keys); "" = by MAC */
	char bridge_devname[16];
};

struct domain {
	struct domain_conf conf;
	struct users users; /* empty when users.yaml is absent */
	bool has_users_file;
	struct tarball_info data;
};

/* Reads provision.conf text (from conf_path, for messages) into conf, applying defaults.
 * domain_name is the DOMAIN the file belongs to. Every problem goes to d; returns 0 when no
 * error was found (warnings allowed). */
int domain_conf_parse(const char *conf_path, const char *domain_name, const char *text, size_t len,
		      struct domain_conf *conf, struct diags *d);

/* Reads and validates the whole directory (provision.conf, users.yaml if present,
 * data.tar.gz if present). Returns 0 when valid. Free with domain_free. Reads only. */
int domain_load(const char *dir, struct domain *dom, struct diags *d);
void domain_free(struct domain *dom);
void domain_conf_free(struct domain_conf *conf);

/* Upstream's MAC scheme: 52:54:00 + first 3 bytes of sha256_hex("DOMAIN/INDEX").
 * Index 0: management (NAT) NIC, 1: public bridge NIC. */
void domain_mac(const char *domain_name, int index, char out[18]);

#endif
