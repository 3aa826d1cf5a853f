/*
 * What tuap's libvirt objects must look like when they exist already: the management NAT
 * network (name, subnet, bridge) and the directory pools under pool_root, judged from their
 * XML definitions, and the public bridge, judged from /sys. tuapd (tuapd/vm, through the libvirt
 * API) and `tuap-ctl doctor` (through virsh) apply the same rules, so the doctor refuses exactly
 * what a provision would.
 */
#ifndef TUAP_VIRTDEF_H
#define TUAP_VIRTDEF_H

#include <arpa/inet.h>
#include <stdbool.h>
#include <stddef.h>

#include "err.h"

/* tuap's pools: base images in tuap-images at POOL_ROOT/images, each domain's volumes in
 * tuap-DOMAIN at POOL_ROOT/DOMAIN (settings_images_dir, settings_domain_dir). */
#define VIRTDEF_IMAGES_POOL "tuap-images"
#define VIRTDEF_POOL_PREFIX "tuap-"

/* An IPv4 subnet as tuap uses it: the gateway (first address: the bridge on the hypervisor),
 * the DHCP range (the rest but the broadcast address) and the prefix length. */
struct virtdef_subnet {
	char gateway[INET_ADDRSTRLEN];
	char dhcp_start[INET_ADDRSTRLEN];
	char dhcp_end[INET_ADDRSTRLEN];
	char prefix[4];
};

/* Parses "A.B.C.D/P" (P 8..29, no host bits); -1 with err saying how to fix it. */
int virtdef_subnet(const char *cidr, struct virtdef_subnet *s, struct tuap_err *err);

/* Whether b may name a Linux bridge (1..15 characters, no '/', ':' or blanks, not . or ..). */
bool virtdef_bridge_name_ok(const char *b);

/* 0 when the network definition xml (virNetworkGetXMLDesc, virsh net-dumpxml) is the NAT network
 * tuapd would define: forward mode nat, the gateway/prefix of s, bridge; else -1 with err naming
 * what differs and what to do. */
int virtdef_network_check(const char *xml, size_t len, const char *name,
			  const struct virtdef_subnet *s, const char *bridge, struct tuap_err *err);

/* 0 when the pool definition xml is a dir pool at dir (trailing slashes ignored); else -1 with
 * err. */
int virtdef_pool_check(const char *xml, size_t len, const char *name, const char *dir,
		       struct tuap_err *err);

/* 0 when the Linux bridge `bridge` exists on this host (in this network namespace), else -1
 * with a message saying what is missing. Reads /sys/class/net; see virtdef.c for why not
 * virConnectListAllInterfaces. */
int virtdef_bridge_check(const char *bridge, struct tuap_err *err);

#endif
