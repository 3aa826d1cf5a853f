/*
 * The rules of virtdef.h: tuap's management network, its directory pools and the public bridge,
 * judged the same by tuapd and by `tuap-ctl doctor`.
 */
#include "virtdef.h"

#include <errno.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fsutil.h"
#include "xmlkit.h"

static void ntoa(uint32_t host_order, char out[INET_ADDRSTRLEN])
{
	struct in_addr a = {.s_addr = htonl(host_order)};

	inet_ntop(AF_INET, &a, out, INET_ADDRSTRLEN);
}

int virtdef_subnet(const char *cidr, struct virtdef_subnet *s, struct tuap_err *err)
{
	char addr[INET_ADDRSTRLEN + 8], *slash, *end;
	struct in_addr a;
	uint32_t net, mask;
	long prefix;

	if (strlen(cidr) >= sizeof(addr))
		return err_set(err, "'%s' is not a subnet (try 10.77.77.0/24)", cidr);
	snprintf(addr, sizeof(addr), "%s", cidr);
	slash = strchr(addr, '/');
	if (!slash)
		return err_set(err, "'%s' is not a subnet: no /prefix (try 10.77.77.0/24)", cidr);
	*slash = '\0';
	errno = 0;
	prefix = strtol(slash + 1, &end, 10);
	if (inet_pton(AF_INET, addr, &a) != 1 || *end || end == slash + 1 || errno)
		return err_set(err, "'%s' is not an IPv4 subnet (try 10.77.77.0/24)", cidr);
	if (prefix < 8 || prefix > 29)
		return err_set(err, "subnet '%s': prefix must be 8..29", cidr);
	mask = 0xffffffffu << (32 - prefix);
	net = ntohl(a.s_addr);
	if (net & ~mask) {
		char base[INET_ADDRSTRLEN];
		ntoa(net & mask, base);
		return err_set(err, "subnet '%s' has host bits set (did you mean %s/%ld?)", cidr,
			       base, prefix);
	}
	ntoa(net + 1, s->gateway);
	ntoa(net + 2, s->dhcp_start);
	ntoa((net | ~mask) - 1, s->dhcp_end);
	snprintf(s->prefix, sizeof(s->prefix), "%ld", prefix);
	return 0;
}

bool virtdef_bridge_name_ok(const char *b)
{
	size_t n = strlen(b);

	return n > 0 && n < IFNAMSIZ && strcmp(b, ".") && strcmp(b, "..") &&
	       strcspn(b, "/ \t\n:") == n;
}

/* The prefix length of /network/ip[1]/@netmask ("255.255.255.0" -> "24"); "" when absent or
 * not a contiguous mask. */
static void netmask_prefix(xmlDocPtr doc, char *out, size_t len)
{
	char mask[INET_ADDRSTRLEN];
	struct in_addr a;
	uint32_t m;
	int n = 0;

	out[0] = '\0';
	if (xr_str(doc, "/network/ip[1]/@netmask", mask, sizeof(mask)) != 1 ||
	    inet_pton(AF_INET, mask, &a) != 1)
		return;
	m = ntohl(a.s_addr);
	while (n < 32 && (m & (0x80000000u >> n)))
		n++;
	if (n < 32 && (m << n) != 0)
		return;
	snprintf(out, len, "%d", n);
}

/* An existing network must be the one we would have defined, or we would silently put guests
 * on someone else's subnet. */
int virtdef_network_check(const char *xml, size_t len, const char *name,
			  const struct virtdef_subnet *s, const char *bridge, struct tuap_err *err)
{
	char mode[32] = "", addr[64] = "", prefix[8] = "", br[IFNAMSIZ + 1] = "";
	xmlDocPtr doc = xr_parse(xml, len, "network", err);
	int rc = -1;

	if (!doc)
		return -1;
	xr_str(doc, "/network/forward/@mode", mode, sizeof(mode));
	xr_str(doc, "/network/ip[1]/@address", addr, sizeof(addr));
	xr_str(doc, "/network/ip[1]/@prefix", prefix, sizeof(prefix));
	xr_str(doc, "/network/bridge/@name", br, sizeof(br));
	if (!prefix[0]) /* defined with netmask= (libvirt's own default network is) */
		netmask_prefix(doc, prefix, sizeof(prefix));
	if (strcmp(mode, "nat") != 0)
		err_set(err, "network %s exists with forward mode '%s', not 'nat'", name,
			mode[0] ? mode : "none");
	else if (strcmp(addr, s->gateway) != 0 || strcmp(prefix, s->prefix) != 0)
		err_set(err,
			"network %s exists with address %s/%s, not %s/%s; fix the subnet "
			"setting or remove the network (virsh net-undefine %s)",
			name, addr, prefix[0] ? prefix : "?", s->gateway, s->prefix, name);
	else if (strcmp(br, bridge) != 0)
		err_set(err, "network %s exists on bridge %s, not %s", name, br, bridge);
	else
		rc = 0;
	xmlFreeDoc(doc);
	return rc;
}

int virtdef_pool_check(const char *xml, size_t len, const char *name, const char *dir,
		       struct tuap_err *err)
{
	char type[32] = "", path[4096] = "", want[4096];
	xmlDocPtr doc = xr_parse(xml, len, "storage pool", err);
	int rc = -1;

	if (!doc)
		return -1;
	xr_str(doc, "/pool/@type", type, sizeof(type));
	xr_str(doc, "/pool/target/path", path, sizeof(path));
	fs_strip_slashes(path);
	snprintf(want, sizeof(want), "%s", dir);
	fs_strip_slashes(want);
	if (strcmp(type, "dir") != 0)
		err_set(err,
			"storage pool %s exists with type '%s', not 'dir'; remove it or pick "
			"another pool root",
			name, type);
	else if (strcmp(path, want) != 0)
		err_set(err,
			"storage pool %s exists at %s, not at %s; remove it (virsh pool-undefine "
			"%s) or point the pool root there",
			name, path, want, name);
	else
		rc = 0;
	xmlFreeDoc(doc);
	return rc;
}

/*
 * Why /sys and not virConnectListAllInterfaces: libvirt's interface driver answers from netcf
 * or, in Debian 12's build, from udev's device database. That needs the interface driver to be
 * loaded, and udev to have seen the device: in containers and network namespaces (our tests,
 * some hypervisors) there is no udevd, and udev does not follow devices into namespaces, so a
 * bridge that qemu can use is not listed. What a domain start needs is a Linux bridge that the
 * kernel knows in libvirtd's network namespace; /sys/class/net/BR/bridge is exactly that. tuapd
 * runs on the hypervisor in libvirtd's namespace (qemu:///system), so its /sys is the same view.
 */
int virtdef_bridge_check(const char *bridge, struct tuap_err *err)
{
	char path[64];
	struct stat sb;

	if (!virtdef_bridge_name_ok(bridge))
		return err_set(err, "'%s' is not a valid bridge name", bridge);
	snprintf(path, sizeof(path), "/sys/class/net/%s", bridge);
	if (stat(path, &sb) < 0)
		return err_set(err,
			       "bridge %s does not exist on this host (no %s); create it "
			       "(e.g. in /etc/network/interfaces) or set the right name",
			       bridge, path);
	snprintf(path, sizeof(path), "/sys/class/net/%s/bridge", bridge);
	if (stat(path, &sb) < 0 || !S_ISDIR(sb.st_mode))
		return err_set(err, "network interface %s exists but is not a bridge (no %s)",
			       bridge, path);
	return 0;
}
