/*
 * Networks: the libvirt NAT network that carries the management NIC (and DHCP) of every guest,
 * and the check that the operator's public bridge exists before a domain is defined on it.
 */
#include "virt_priv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <libvirt/virterror.h>

struct subnet {
	char gateway[INET_ADDRSTRLEN];
	char dhcp_start[INET_ADDRSTRLEN];
	char dhcp_end[INET_ADDRSTRLEN];
	char prefix[4];
};

static void ntoa(uint32_t host_order, char out[INET_ADDRSTRLEN])
{
	struct in_addr a = {.s_addr = htonl(host_order)};

	inet_ntop(AF_INET, &a, out, INET_ADDRSTRLEN);
}

static int parse_subnet(const char *cidr, struct subnet *s, struct tuap_err *err)
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

static int bridge_name_ok(const char *b)
{
	size_t n = strlen(b);

	return n > 0 && n < IFNAMSIZ && strcmp(b, ".") && strcmp(b, "..") &&
	       strcspn(b, "/ \t\n:") == n;
}

static char *network_xml(const char *name, const struct subnet *s, const char *bridge,
			 struct tuap_err *err)
{
	struct xw x;

	xw_open(&x);
	xw_start(&x, "network");
	xw_elem(&x, "name", name);
	xw_start(&x, "forward");
	xw_attr(&x, "mode", "nat");
	xw_end(&x);
	xw_start(&x, "bridge");
	xw_attr(&x, "name", bridge);
	xw_attr(&x, "stp", "on");
	xw_attr(&x, "delay", "0");
	xw_end(&x);
	xw_start(&x, "ip");
	xw_attr(&x, "address", s->gateway);
	xw_attr(&x, "prefix", s->prefix);
	xw_start(&x, "dhcp");
	xw_start(&x, "range");
	xw_attr(&x, "start", s->dhcp_start);
	xw_attr(&x, "end", s->dhcp_end);
	xw_end(&x);
	xw_end(&x);
	xw_end(&x);
	xw_end(&x);
	return xw_finish(&x, "network", err);
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
static int network_check_existing(virNetworkPtr net, const char *name, const struct subnet *s,
				  const char *bridge, struct tuap_err *err)
{
	char *xml = virNetworkGetXMLDesc(net, 0);
	char mode[32], addr[64], prefix[8], br[IFNAMSIZ + 1];
	xmlDocPtr doc;
	int rc = -1;

	if (!xml)
		return virt_fail(err, "cannot read the definition of network %s", name);
	doc = xr_parse(xml, strlen(xml), "network", err);
	if (!doc)
		goto out;
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
out:
	xmlFreeDoc(doc);
	free(xml);
	return rc;
}

int virt_network_ensure_nat(struct virt *v, const char *name, const char *subnet_cidr,
			    const char *bridge, struct tuap_err *err)
{
	virNetworkPtr net = NULL;
	struct subnet s;
	char *xml = NULL;
	int rc = -1, active, autostart = 0;

	if (!virt_name_ok(name))
		return err_set(err, "'%s' is not a valid network name", name);
	if (!bridge_name_ok(bridge))
		return err_set(err,
			       "'%s' is not a valid bridge name (1-%d characters, no '/', "
			       "':' or blanks)",
			       bridge, IFNAMSIZ - 1);
	if (parse_subnet(subnet_cidr, &s, err) < 0)
		return -1;
	net = virNetworkLookupByName(v->conn, name);
	if (!net && !virt_last_error_is(VIR_ERR_NO_NETWORK)) {
		virt_fail(err, "cannot look up network %s", name);
		goto out;
	}
	if (net && network_check_existing(net, name, &s, bridge, err) < 0)
		goto out;
	if (!net) {
		xml = network_xml(name, &s, bridge, err);
		if (!xml)
			goto out;
		net = virNetworkDefineXML(v->conn, xml);
		if (!net) {
			virt_fail(err, "cannot define network %s", name);
			goto out;
		}
	}
	active = virNetworkIsActive(net);
	if (active < 0 || (!active && virNetworkCreate(net) < 0)) {
		virt_fail(err, "cannot start network %s", name);
		goto out;
	}
	if (virNetworkGetAutostart(net, &autostart) < 0 ||
	    (!autostart && virNetworkSetAutostart(net, 1) < 0)) {
		virt_fail(err, "cannot set network %s to autostart", name);
		goto out;
	}
	rc = 0;
out:
	free(xml);
	if (net)
		virNetworkFree(net);
	return rc;
}

int virt_network_delete(struct virt *v, const char *name, struct tuap_err *err)
{
	virNetworkPtr net = virNetworkLookupByName(v->conn, name);
	int rc = -1;

	if (!net) {
		if (virt_last_error_is(VIR_ERR_NO_NETWORK))
			return 0;
		return virt_fail(err, "cannot look up network %s", name);
	}
	if (virNetworkIsActive(net) == 1 && virNetworkDestroy(net) < 0) {
		virt_fail(err, "cannot stop network %s", name);
		goto out;
	}
	if (virNetworkUndefine(net) < 0) {
		virt_fail(err, "cannot undefine network %s", name);
		goto out;
	}
	rc = 0;
out:
	virNetworkFree(net);
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
int virt_bridge_check(const char *bridge, struct tuap_err *err)
{
	char path[64];
	struct stat sb;

	if (!bridge_name_ok(bridge))
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
