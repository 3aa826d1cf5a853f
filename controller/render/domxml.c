/*
 * The libvirt domain XML of a site's VM, written with xmlkit.h's writer (libxml2's, which does
 * all escaping); its <metadata> is meta.h's. Devices: the qcow2 overlay (vda, virtio) over its base
 * image, the seed ISO as a read-only cdrom on virtio-scsi (Debian's cloud kernel has no AHCI
 * driver, so no SATA), the management NIC on the libvirt NAT network and the public NIC on the host
 * bridge (fixed MACs), a serial console logged to a file, a virtio RNG and balloon. No graphics:
 * the console log is what an operator reads when a guest does not say hello.
 */
#include "render.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meta.h"
#include "xmlkit.h"

/* XML 1.0 cannot carry C0 control characters other than tab, LF and CR, even escaped, and the
 * writer passes invalid UTF-8 through; both are refused here instead. */
static int xml_safe(const char *field, const char *v, struct tuap_err *err)
{
	if (!v)
		return 0;
	for (const unsigned char *p = (const unsigned char *)v; *p; p++)
		if (*p < 0x20 && *p != '\t' && *p != '\n' && *p != '\r')
			return err_set(err, "render domain XML: %s holds a control character",
				       field);
	if (!xmlCheckUTF8(BAD_CAST v))
		return err_set(err, "render domain XML: %s is not valid UTF-8", field);
	return 0;
}

static int check_input(const struct render_input *in, struct tuap_err *err)
{
	const struct {
		const char *name, *v;
	} need[] = {
		{"instance_id", in->instance_id}, {"provision_id", in->provision_id},
		{"disk_path", in->disk_path},	  {"backing_path", in->backing_path},
		{"seed_path", in->seed_path},	  {"console_log", in->console_log},
	};
	const struct {
		const char *name, *v;
	} all[] = {
		{"conf->name", in->conf->name},
		{"conf->image", in->conf->image},
		{"conf->cpu_mode", in->conf->cpu_mode},
		{"instance_id", in->instance_id},
		{"provision_id", in->provision_id},
		{"disk_path", in->disk_path},
		{"backing_path", in->backing_path},
		{"seed_path", in->seed_path},
		{"console_log", in->console_log},
		{"kernel", in->kernel},
		{"initrd", in->initrd},
		{"cmdline", in->cmdline},
		{"set->mgmt_network", in->set->mgmt_network},
		{"set->public_bridge", in->set->public_bridge},
		{"set->default_image", in->set->default_image},
	};

	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++)
		if (render_need(need[i].name, need[i].v, err) < 0)
			return -1;
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (xml_safe(all[i].name, all[i].v, err) < 0)
			return -1;
	if (render_check_mac("mac_mgmt", in->mac_mgmt, err) < 0 ||
	    render_check_mac("mac_public", in->mac_public, err) < 0 ||
	    render_check_z85_key("agent_public_key", in->agent_public_key, err) < 0)
		return -1;
	if ((in->initrd || in->cmdline) && !in->kernel)
		return err_set(err, "render domain XML: initrd or cmdline without a kernel");
	if (strcmp(in->set->virt_type, "kvm") && strcmp(in->set->virt_type, "qemu"))
		return err_set(err, "render domain XML: virt_type '%s' is neither kvm nor qemu",
			       in->set->virt_type);
	if (in->conf->memory_mib == 0 || in->conf->cpus == 0)
		return err_set(err, "render domain XML: memory and cpus must be above 0");
	if (!strcmp(in->conf->cpu_mode, "custom"))
		return err_set(err, "render domain XML: cpu_mode custom needs a CPU model; "
				    "give the model name (like EPYC) as cpu_mode");
	return 0;
}

/* libvirt's modes are written as mode=; any other cpu_mode is a CPU model name. Under TCG
 * (virt_type qemu) host-passthrough and host-model do not exist, so it is always maximum. */
static void cpu(struct xw *x, const struct render_input *in)
{
	const char *mode = in->conf->cpu_mode[0] ? in->conf->cpu_mode : "host-passthrough";

	if (!strcmp(in->set->virt_type, "qemu"))
		mode = "maximum";
	xw_start(x, "cpu");
	if (!strcmp(mode, "host-passthrough") || !strcmp(mode, "host-model") ||
	    !strcmp(mode, "maximum")) {
		xw_attr(x, "mode", mode);
	} else {
		xw_attr(x, "mode", "custom");
		xw_attr(x, "match", "exact");
		xw_start(x, "model");
		xw_attr(x, "fallback", "forbid");
		xw_text(x, mode);
		xw_end(x);
	}
	xw_end(x);
}

static void os(struct xw *x, const struct render_input *in)
{
	xw_start(x, "os");
	xw_elem(x, "type", "hvm");
	if (in->kernel) {
		xw_elem(x, "kernel", in->kernel);
		if (in->initrd)
			xw_elem(x, "initrd", in->initrd);
		if (in->cmdline)
			xw_elem(x, "cmdline", in->cmdline);
	} else {
		xw_empty1(x, "boot", "dev", "hd");
	}
	xw_end(x);
}

static void metadata(struct xw *x, const struct tuap_meta *m)
{
	xw_start(x, "metadata");
	meta_write(x, m, true);
	xw_end(x);
}

static void disks(struct xw *x, const struct render_input *in)
{
	xw_start(x, "disk");
	xw_attr(x, "type", "file");
	xw_attr(x, "device", "disk");
	xw_start(x, "driver");
	xw_attr(x, "name", "qemu");
	xw_attr(x, "type", "qcow2");
	xw_end(x);
	xw_empty1(x, "source", "file", in->disk_path);
	xw_start(x, "backingStore");
	xw_attr(x, "type", "file");
	xw_empty1(x, "format", "type", "qcow2");
	xw_empty1(x, "source", "file", in->backing_path);
	xw_end(x);
	xw_start(x, "target");
	xw_attr(x, "dev", "vda");
	xw_attr(x, "bus", "virtio");
	xw_end(x);
	xw_end(x);

	xw_start(x, "disk");
	xw_attr(x, "type", "file");
	xw_attr(x, "device", "cdrom");
	xw_start(x, "driver");
	xw_attr(x, "name", "qemu");
	xw_attr(x, "type", "raw");
	xw_end(x);
	xw_empty1(x, "source", "file", in->seed_path);
	xw_start(x, "target");
	xw_attr(x, "dev", "sda");
	xw_attr(x, "bus", "scsi");
	xw_end(x);
	xw_start(x, "readonly");
	xw_end(x);
	xw_end(x);
}

static void nic(struct xw *x, const char *type, const char *source_attr, const char *source,
		const char *mac)
{
	xw_start(x, "interface");
	xw_attr(x, "type", type);
	xw_empty1(x, "mac", "address", mac);
	xw_empty1(x, "source", source_attr, source);
	xw_empty1(x, "model", "type", "virtio");
	xw_end(x);
}

static void devices(struct xw *x, const struct render_input *in)
{
	xw_start(x, "devices");
	xw_start(x, "controller");
	xw_attr(x, "type", "scsi");
	xw_attr(x, "index", "0");
	xw_attr(x, "model", "virtio-scsi");
	xw_end(x);
	disks(x, in);
	nic(x, "network", "network", in->set->mgmt_network, in->mac_mgmt);
	nic(x, "bridge", "bridge", in->set->public_bridge, in->mac_public);

	xw_start(x, "serial");
	xw_attr(x, "type", "pty");
	xw_start(x, "log");
	xw_attr(x, "file", in->console_log);
	xw_attr(x, "append", "on");
	xw_end(x);
	xw_empty1(x, "target", "port", "0");
	xw_end(x);
	xw_start(x, "console");
	xw_attr(x, "type", "pty");
	xw_start(x, "target");
	xw_attr(x, "type", "serial");
	xw_attr(x, "port", "0");
	xw_end(x);
	xw_end(x);

	xw_start(x, "rng");
	xw_attr(x, "model", "virtio");
	xw_start(x, "backend");
	xw_attr(x, "model", "random");
	xw_text(x, "/dev/urandom");
	xw_end(x);
	xw_end(x);
	xw_empty1(x, "memballoon", "model", "virtio");
	xw_end(x);
}

static void domain(struct xw *x, const struct render_input *in, const struct tuap_meta *m)
{
	char num[32];

	xw_start(x, "domain");
	xw_attr(x, "type", in->set->virt_type);
	xw_elem(x, "name", in->conf->name);
	metadata(x, m);
	snprintf(num, sizeof(num), "%u", in->conf->memory_mib);
	xw_start(x, "memory");
	xw_attr(x, "unit", "MiB");
	xw_text(x, num);
	xw_end(x);
	snprintf(num, sizeof(num), "%u", in->conf->cpus);
	xw_elem(x, "vcpu", num);
	os(x, in);
	xw_start(x, "features");
	xw_start(x, "acpi");
	xw_end(x);
	xw_end(x);
	cpu(x, in);
	xw_empty1(x, "clock", "offset", "utc");
	xw_elem(x, "on_poweroff", "destroy");
	xw_elem(x, "on_reboot", "restart");
	xw_elem(x, "on_crash", "destroy");
	devices(x, in);
	xw_end(x);
}

int domxml_render(const struct render_input *in, struct buf *out, struct tuap_err *err)
{
	struct tuap_meta m;
	struct xw x;
	char *xml;

	if (render_need_model(in, err) < 0 || check_input(in, err) < 0)
		return -1;
	if (meta_set(&m, TUAP_VERSION, in->provision_id, in->instance_id, in->agent_public_key,
		     in->conf->image[0] ? in->conf->image : in->set->default_image, err) < 0)
		return -1;
	xw_open(&x);
	xw_declaration(&x);
	domain(&x, in, &m);
	xml = xw_finish(&x, "domain", err);
	if (!xml)
		return -1;
	buf_add(out, xml, strlen(xml));
	free(xml);
	return 0;
}
