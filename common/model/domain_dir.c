/*
 * domain_load: a domain directory read as a whole — provision.conf (required), users.yaml and
 * data.tar.gz (each optional, as in the original tool) — with every problem collected. It only
 * reads.
 */
#include <limits.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>

#include "domain.h"
#include "fsutil.h"
#include "tarball.h"
#include "users.h"

#define CONF_MAX_SIZE (1u << 20)

int domain_load(const char *dir, struct domain *dom, struct diags *d)
{
	char path[PATH_MAX];
	const char *name = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
	size_t errors = d->errors, len;
	struct tuap_err err;
	char *text;

	/* the directory's name is the domain's: domain_conf_parse checks it */
	memset(dom, 0, sizeof(*dom));
	if (fs_path(path, sizeof(path), &err, "%s/provision.conf", dir) < 0)
		return diag_error(d, dir, 0, "", "%s", err.msg);
	if (!fs_exists(path)) {
		diag_error(d, path, 0, "",
			   "missing: every domain needs one ('tuap-ctl new DOMAIN' makes a start)");
	} else if (!(text = fs_read_file(path, CONF_MAX_SIZE, &len, &err))) {
		diag_error(d, path, 0, "", "%s", err.msg);
	} else {
		domain_conf_parse(path, name, text, len, &dom->conf, d);
		free(text);
	}
	snprintf(dom->conf.dir, sizeof(dom->conf.dir), "%s", dir);
	if (fs_path(path, sizeof(path), &err, "%s/users.yaml", dir) == 0 && fs_exists(path)) {
		dom->has_users_file = true;
		users_load(path, &dom->users, d);
	}
	if (fs_path(path, sizeof(path), &err, "%s/data.tar.gz", dir) == 0 && fs_exists(path)) {
		tarball_check(path, &dom->data, d);
		snprintf(dom->data.path, sizeof(dom->data.path), "%s", path);
		/* the site's tree goes onto the VM's disk with the system: it cannot be larger
		 * (the agent also checks the free space before each file) */
		if (!dom->conf.depends_on[0] && dom->conf.size &&
		    dom->data.total_bytes >= dom->conf.size)
			diag_error(d, path, 0, "",
				   "unpacks to %" PRIu64
				   " bytes (%.1f GiB), more than the VM's whole "
				   "disk (size=%" PRIu64 " bytes in provision.conf)",
				   dom->data.total_bytes, dom->data.total_bytes / 1073741824.0,
				   dom->conf.size);
	}
	return d->errors > errors ? -1 : 0;
}

void domain_free(struct domain *dom)
{
	domain_conf_free(&dom->conf);
	users_free(&dom->users);
	memset(dom, 0, sizeof(*dom));
}
