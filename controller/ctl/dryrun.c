/* tuap-ctl provision --dry-run; see dryrun.h. */
#include "dryrun.h"

#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "buf.h"
#include "cli.h"
#include "fsutil.h"
#include "hash.h"
#include "render.h"
#include "settings.h"

struct doc {
	const char *name;
	int (*render)(const struct render_input *, struct buf *, struct tuap_err *);
	struct buf out;
};

static int load_settings(struct settings *s)
{
	const char *conf = getenv("TUAP_CONFIG");
	struct tuap_err err;

	settings_defaults(s);
	if (!conf)
		conf = "/etc/tuap/tuapd.conf";
	if (fs_exists(conf) && settings_load(conf, s, &err) < 0) {
		fprintf(stderr, "tuap-ctl: %s\n", err.msg);
		return -1;
	}
	return 0;
}

static int write_docs(struct doc *docs, size_t n, const char *dir)
{
	struct tuap_err err;
	char path[PATH_MAX];

	if (fs_mkdir_p(dir, 0755, &err) < 0) {
		fprintf(stderr, "tuap-ctl: %s\n", err.msg);
		return CLI_FAIL;
	}
	for (size_t i = 0; i < n; i++) {
		if (fs_path(path, sizeof(path), &err, "%s/%s", dir, docs[i].name) < 0 ||
		    fs_write_atomic(path, docs[i].out.s, docs[i].out.len, 0644, &err) < 0) {
			fprintf(stderr, "tuap-ctl: %s\n", err.msg);
			return CLI_FAIL;
		}
		printf("wrote %s\n", path);
	}
	return CLI_OK;
}

int dryrun_show(const struct domain *dom, const char *output_dir)
{
	const struct domain_conf *c = &dom->conf;
	char mac0[18], mac1[18], domdir[PATH_MAX], images[PATH_MAX], disk[PATH_MAX],
		backing[PATH_MAX], seed[PATH_MAX], console[PATH_MAX], instance[64];
	char pub[41], sec[41], hex[SHA256_HEX_LEN];
	struct doc docs[] = {
		{"meta-data", cloudinit_meta_data, BUF_INIT},
		{"network-config", cloudinit_network_config, BUF_INIT},
		{"user-data", cloudinit_user_data, BUF_INIT},
		{"domain.xml", domxml_render, BUF_INIT},
	};
	const size_t n = sizeof(docs) / sizeof(docs[0]);
	struct render_input in = {0};
	struct settings s;
	struct tuap_err err;
	struct buf seedtext = BUF_INIT;
	int rc = CLI_FAIL;

	if (c->depends_on[0]) {
		printf("%s goes on the existing host %s, reached over SSH as %s: no VM, no seed "
		       "and "
		       "no domain XML are created; tuapd pushes tuap-agent there and runs the "
		       "steps.\n",
		       c->name, c->depends_on, c->admin_user);
		return CLI_OK;
	}
	if (load_settings(&s) < 0)
		return CLI_FAIL;
	domain_mac(c->name, 0, mac0);
	domain_mac(c->name, 1, mac1);
	/* what a provision would generate afresh: an instance id and the agent's keypair (only
	 * its public half is shown; nothing is stored) */
	snprintf(instance, sizeof(instance), "tuap-%08x%08x", randombytes_random(),
		 randombytes_random());
	if (zmq_curve_keypair(pub, sec) < 0) {
		fprintf(stderr, "tuap-ctl: this libzmq has no CURVE support\n");
		return CLI_FAIL;
	}
	sodium_memzero(sec, sizeof(sec));
	if (settings_domain_dir(&s, c->name, domdir, sizeof(domdir), &err) < 0 ||
	    settings_images_dir(&s, images, sizeof(images), &err) < 0 ||
	    fs_path(disk, sizeof(disk), &err, "%s/%s.qcow2", domdir, c->name) < 0 ||
	    fs_path(backing, sizeof(backing), &err, "%s/%s.qcow2", images,
		    c->image[0] && c->image_kind == IMAGE_CATALOG ? c->image : s.default_image) <
		    0 ||
	    fs_path(console, sizeof(console), &err, "%s/console.log", domdir) < 0) {
		fprintf(stderr, "tuap-ctl: %s\n", err.msg);
		return CLI_FAIL;
	}
	in = (struct render_input){
		.conf = c,
		.users = &dom->users,
		.set = &s,
		.instance_id = instance,
		.provision_id = "dry-run",
		.mac_mgmt = mac0,
		.mac_public = mac1,
		.disk_path = disk,
		.backing_path = backing,
		.seed_path = "",
		.console_log = console,
		.agent_public_key = pub,
	};
	/* the seed is named by its content, so render its files first */
	for (size_t i = 0; i < 3; i++) {
		if (docs[i].render(&in, &docs[i].out, &err) < 0)
			goto fail;
		buf_add(&seedtext, docs[i].out.s, docs[i].out.len);
	}
	sha256_hex(seedtext.s, seedtext.len, hex);
	if (fs_path(seed, sizeof(seed), &err, "%s/seed-%.16s.iso", domdir, hex) < 0)
		goto fail;
	in.seed_path = seed;
	if (docs[3].render(&in, &docs[3].out, &err) < 0)
		goto fail;
	if (output_dir) {
		rc = write_docs(docs, n, output_dir);
	} else {
		for (size_t i = 0; i < n; i++)
			printf("%s==> %s <==\n%s", i ? "\n" : "", docs[i].name, docs[i].out.s);
		rc = CLI_OK;
	}
	goto out;
fail:
	fprintf(stderr, "tuap-ctl: cannot render %s: %s\n", c->name, err.msg);
out:
	for (size_t i = 0; i < n; i++)
		buf_free(&docs[i].out);
	buf_free(&seedtext);
	return rc;
}
