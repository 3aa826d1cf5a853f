/*
 * The libvirt domain XML of a site's VM, written with libxml2's xmlTextWriter (which does all
 * escaping). Devices: the qcow2 overlay (vda, virtio) over its base image, the seed ISO as a
 * read-only cdrom on virtio-scsi (Debian's cloud kernel has no AHCI driver, so no SATA), the
 * management NIC on the libvirt NAT network and the public NIC on the host bridge (fixed MACs),
 * a serial console logged to a file, a virtio RNG and balloon. No graphics: the console log is
 * what an operator reads when a guest does not say hello.
 */
#include "render.h"

#include <libxml/xmlstring.h>
#include <libxml/xmlwriter.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

struct xw {
	xmlTextWriterPtr w;
	bool failed;
};

static void check(struct xw *x, int rc)
{
	if (rc < 0)
		x->failed = true;
}

static void start(struct xw *x, const char *name)
{
	check(x, xmlTextWriterStartElement(x->w, BAD_CAST name));
}

static void end(struct xw *x)
{
	check(x, xmlTextWriterEndElement(x->w));
}

static void attr(struct xw *x, const char *name, const char *value)
{
	check(x, xmlTextWriterWriteAttribute(x->w, BAD_CAST name, BAD_CAST value));
}

static void text(struct xw *x, const char *value)
{
	check(x, xmlTextWriterWriteString(x->w, BAD_CAST value));
}

/* <name>value</name> */
static void elem(struct xw *x, const char *name, const char *value)
{
	start(x, name);
	text(x, value);
	end(x);
}

/* <name a="v"/> */
static void empty1(struct xw *x, const char *name, const char *a, const char *v)
{
	start(x, name);
	attr(x, a, v);
	end(x);
}

/* <tuap:name>value</tuap:name>, inside the element that declares the namespace */
static void tuap_elem(struct xw *x, const char *name, const char *value)
{
	check(x,
	      xmlTextWriterStartElementNS(x->w, BAD_CAST TUAP_XMLNS_PREFIX, BAD_CAST name, NULL));
	text(x, value);
	end(x);
}

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
	start(x, "cpu");
	if (!strcmp(mode, "host-passthrough") || !strcmp(mode, "host-model") ||
	    !strcmp(mode, "maximum")) {
		attr(x, "mode", mode);
	} else {
		attr(x, "mode", "custom");
		attr(x, "match", "exact");
		start(x, "model");
		attr(x, "fallback", "forbid");
		text(x, mode);
		end(x);
	}
	end(x);
}

static void os(struct xw *x, const struct render_input *in)
{
	start(x, "os");
	elem(x, "type", "hvm");
	if (in->kernel) {
		elem(x, "kernel", in->kernel);
		if (in->initrd)
			elem(x, "initrd", in->initrd);
		if (in->cmdline)
			elem(x, "cmdline", in->cmdline);
	} else {
		empty1(x, "boot", "dev", "hd");
	}
	end(x);
}

static void metadata(struct xw *x, const struct render_input *in)
{
	const char *image = in->conf->image[0] ? in->conf->image : in->set->default_image;

	start(x, "metadata");
	check(x, xmlTextWriterStartElementNS(x->w, BAD_CAST TUAP_XMLNS_PREFIX, BAD_CAST "domain",
					     BAD_CAST TUAP_XMLNS_DOMAIN));
	tuap_elem(x, "version", TUAP_VERSION);
	tuap_elem(x, "provision-id", in->provision_id);
	tuap_elem(x, "instance-id", in->instance_id);
	tuap_elem(x, "agent-public-key", in->agent_public_key);
	tuap_elem(x, "image", image);
	end(x);
	end(x);
}

static void disks(struct xw *x, const struct render_input *in)
{
	start(x, "disk");
	attr(x, "type", "file");
	attr(x, "device", "disk");
	start(x, "driver");
	attr(x, "name", "qemu");
	attr(x, "type", "qcow2");
	end(x);
	empty1(x, "source", "file", in->disk_path);
	start(x, "backingStore");
	attr(x, "type", "file");
	empty1(x, "format", "type", "qcow2");
	empty1(x, "source", "file", in->backing_path);
	end(x);
	start(x, "target");
	attr(x, "dev", "vda");
	attr(x, "bus", "virtio");
	end(x);
	end(x);

	start(x, "disk");
	attr(x, "type", "file");
	attr(x, "device", "cdrom");
	start(x, "driver");
	attr(x, "name", "qemu");
	attr(x, "type", "raw");
	end(x);
	empty1(x, "source", "file", in->seed_path);
	start(x, "target");
	attr(x, "dev", "sda");
	attr(x, "bus", "scsi");
	end(x);
	start(x, "readonly");
	end(x);
	end(x);
}

static void nic(struct xw *x, const char *type, const char *source_attr, const char *source,
		const char *mac)
{
	start(x, "interface");
	attr(x, "type", type);
	empty1(x, "mac", "address", mac);
	empty1(x, "source", source_attr, source);
	empty1(x, "model", "type", "virtio");
	end(x);
}

static void devices(struct xw *x, const struct render_input *in)
{
	start(x, "devices");
	start(x, "controller");
	attr(x, "type", "scsi");
	attr(x, "index", "0");
	attr(x, "model", "virtio-scsi");
	end(x);
	disks(x, in);
	nic(x, "network", "network", in->set->mgmt_network, in->mac_mgmt);
	nic(x, "bridge", "bridge", in->set->public_bridge, in->mac_public);

	start(x, "serial");
	attr(x, "type", "pty");
	start(x, "log");
	attr(x, "file", in->console_log);
	attr(x, "append", "on");
	end(x);
	empty1(x, "target", "port", "0");
	end(x);
	start(x, "console");
	attr(x, "type", "pty");
	start(x, "target");
	attr(x, "type", "serial");
	attr(x, "port", "0");
	end(x);
	end(x);

	start(x, "rng");
	attr(x, "model", "virtio");
	start(x, "backend");
	attr(x, "model", "random");
	text(x, "/dev/urandom");
	end(x);
	end(x);
	empty1(x, "memballoon", "model", "virtio");
	end(x);
}

static void domain(struct xw *x, const struct render_input *in)
{
	char num[32];

	start(x, "domain");
	attr(x, "type", in->set->virt_type);
	elem(x, "name", in->conf->name);
	metadata(x, in);
	snprintf(num, sizeof(num), "%u", in->conf->memory_mib);
	start(x, "memory");
	attr(x, "unit", "MiB");
	text(x, num);
	end(x);
	snprintf(num, sizeof(num), "%u", in->conf->cpus);
	elem(x, "vcpu", num);
	os(x, in);
	start(x, "features");
	start(x, "acpi");
	end(x);
	end(x);
	cpu(x, in);
	empty1(x, "clock", "offset", "utc");
	elem(x, "on_poweroff", "destroy");
	elem(x, "on_reboot", "restart");
	elem(x, "on_crash", "destroy");
	devices(x, in);
	end(x);
}

int domxml_render(const struct render_input *in, struct buf *out, struct tuap_err *err)
{
	struct xw x = {0};
	xmlBufferPtr xb = NULL;
	int rc = -1;

	if (render_need_model(in, err) < 0 || check_input(in, err) < 0)
		return -1;
	xb = xmlBufferCreate();
	if (xb)
		x.w = xmlNewTextWriterMemory(xb, 0);
	if (!x.w) {
		err_set(err, "render domain XML: cannot create the XML writer");
		goto out;
	}
	check(&x, xmlTextWriterSetIndent(x.w, 1));
	check(&x, xmlTextWriterSetIndentString(x.w, BAD_CAST "  "));
	check(&x, xmlTextWriterStartDocument(x.w, NULL, "UTF-8", NULL));
	domain(&x, in);
	check(&x, xmlTextWriterEndDocument(x.w));
	xmlFreeTextWriter(x.w); /* flushes into xb */
	x.w = NULL;
	if (x.failed) {
		err_set(err, "render domain XML: the XML writer failed");
		goto out;
	}
	buf_add(out, xmlBufferContent(xb), (size_t)xmlBufferLength(xb));
	rc = 0;
out:
	if (x.w)
		xmlFreeTextWriter(x.w);
	if (xb)
		xmlBufferFree(xb);
	return rc;
}
