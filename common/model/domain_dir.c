/*
 * domain_load: a domain directory read as a whole — provision.conf (required), users.yaml and
 * data.tar.gz (each optional, as in the original tool) — with every problem collected. It only
 * reads.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "domain.h"
#include "fsutil.h"
#include "tarball.h"
#include "users.h"

#define CONF_MAX_SIZE (1u << 20)

/* 1 when path is a regular file, 0 when it does not exist; a symlink or anything else is an
 * error (-1): a domain's files are read as they are, never through a link (users.yaml ->
 * /etc/shadow would have printed shadow's lines as errors) nor from a FIFO (a hang). */
static int plain_file(const char *path, struct diags *d)
{
	char target[256];
	struct stat st;
	ssize_t n;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0
				       : (diag_error(d, path, 0, "", "%s", strerror(errno)), -1);
	if (S_ISLNK(st.st_mode)) {
		n = readlink(path, target, sizeof(target) - 1);
		target[n > 0 ? n : 0] = '\0';
		diag_error(d, path, 0, "",
			   "is a symlink (to %s): tuap reads a domain's own files only; copy it "
			   "in instead",
			   target);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		diag_error(d, path, 0, "", "is not a regular file");
		return -1;
	}
	return 1;
}

int domain_load(const char *dir, struct domain *dom, struct diags *d)
{
	char path[PATH_MAX];
	const char *name = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
	size_t errors = d->errors, len;
	struct tuap_err err;
	char *text;
	int kind;

	/* the directory's name is the domain's: domain_conf_parse checks it */
	memset(dom, 0, sizeof(*dom));
	if (fs_path(path, sizeof(path), &err, "%s/provision.conf", dir) < 0)
		return diag_error(d, dir, 0, "", "%s", err.msg);
	if ((kind = plain_file(path, d)) == 0) {
		diag_error(d, path, 0, "",
			   "missing: every domain needs one ('tuap-ctl new DOMAIN' makes a start)");
	} else if (kind < 0) {
		/* said */
	} else if (!(text = fs_read_file(path, CONF_MAX_SIZE, &len, &err))) {
		diag_add_err(d, &err); /* its message names the file */
	} else {
		domain_conf_parse(path, name, text, len, &dom->conf, d);
		free(text);
	}
	snprintf(dom->conf.dir, sizeof(dom->conf.dir), "%s", dir);
	if (fs_path(path, sizeof(path), &err, "%s/users.yaml", dir) == 0 &&
	    plain_file(path, d) > 0) {
		dom->has_users_file = true;
		users_load(path, &dom->users, d);
	}
	if (fs_path(path, sizeof(path), &err, "%s/data.tar.gz", dir) == 0 &&
	    plain_file(path, d) > 0) {
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
