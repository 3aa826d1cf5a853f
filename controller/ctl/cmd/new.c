/*
 * tuap-ctl new DOMAIN: the skeleton site generator. Writes a commented provision.conf, a
 * users.yaml and a site/ with a working Makefile into a fresh DOMAIN/ directory; an existing
 * directory is never touched. The files are built in DOMAIN.new-PID and renamed into place, so
 * a failure leaves nothing behind.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "cli.h"
#include "domain.h"
#include "fsutil.h"

/* @DOMAIN@ in a template is replaced by the (validated) domain name. */
static const char conf_tmpl[] =
	"# @DOMAIN@: where and how the site runs. Every key: man provision.conf "
	"(provision.conf(5)).\n"
	"# Format: key=value lines; a comma makes a list; '#' starts a comment line.\n"
	"\n"
	"# Public address(es), each with an optional /prefix (default /24 for IPv4, /64 for "
	"IPv6).\n"
	"# 192.0.2.0/24 is a documentation range (RFC 5737): replace it with yours.\n"
	"ips=192.0.2.10/24\n"
	"gateway=192.0.2.1\n"
	"resolvers=192.0.2.53\n"
	"\n"
	"# Disk size (bytes or with a unit), memory in MiB, number of virtual CPUs.\n"
	"size=10G\n"
	"memory=1024\n"
	"cpus=1\n"
	"\n"
	"# A name from the image catalog (/etc/tuap/images.conf), an absolute path or an http(s) "
	"URL.\n"
	"image=debian-12\n"
	"\n"
	"# Packages installed before the site's Makefile runs.\n"
	"packages=nginx\n"
	"\n"
	"# Mail to root on the site is delivered here.\n"
	"contact_email=webmaster@@DOMAIN@\n"
	"\n"
	"# To put the site on a host that already exists instead of a new VM, name it here and "
	"the\n"
	"# user tuap logs in as over SSH (it needs passwordless sudo; root when omitted):\n"
	"#depends_on=host.example.net\n"
	"#admin_user=deploy\n";

static const char users_tmpl[] =
	"# Users to create, in cloud-init's users schema (see README: users.yaml).\n"
	"users:\n"
	"  - name: site-admin\n"
	"    gecos: Administrator of @DOMAIN@\n"
	"    groups: [adm]\n"
	"    shell: /bin/bash\n"
	"    sudo: ALL=(ALL) NOPASSWD:ALL\n"
	"    # Put your public key here, or import it: ssh_import_id: [gh:YOUR_GITHUB_USER]\n"
	"    ssh_authorized_keys: []\n";

static const char makefile_tmpl[] =
	"# @DOMAIN@'s setup: tuap-agent runs `make` (the default target) here as root, after the\n"
	"# packages from provision.conf are installed. Make every target safe to run again.\n"
	"WEBROOT := /var/www/@DOMAIN@\n"
	"\n"
	".PHONY: all content\n"
	"\n"
	"all: content\n"
	"\n"
	"content:\n"
	"\tinstall -d -m 0755 $(WEBROOT)\n"
	"\tcp -R public/. $(WEBROOT)/\n"
	"\t@echo \"content: installed into $(WEBROOT)\"\n";

static const char index_tmpl[] = "<!DOCTYPE html>\n"
				 "<html lang=\"en\">\n"
				 "<head><meta charset=\"utf-8\"><title>@DOMAIN@</title></head>\n"
				 "<body><h1>@DOMAIN@</h1><p>Provisioned by tuap.</p></body>\n"
				 "</html>\n";

static void expand(struct buf *b, const char *tmpl, const char *domain)
{
	const char *p;

	buf_reset(b);
	while ((p = strstr(tmpl, "@DOMAIN@"))) {
		buf_add(b, tmpl, (size_t)(p - tmpl));
		buf_adds(b, domain);
		tmpl = p + strlen("@DOMAIN@");
	}
	buf_adds(b, tmpl);
}

static int write_tmpl(const char *dir, const char *rel, const char *tmpl, const char *domain,
		      struct tuap_err *err)
{
	struct buf b = BUF_INIT;
	char path[PATH_MAX];
	int rc;

	if (fs_path(path, sizeof(path), err, "%s/%s", dir, rel) < 0)
		return -1;
	expand(&b, tmpl, domain);
	rc = fs_write_atomic(path, b.s, b.len, 0644, err);
	buf_free(&b);
	return rc;
}

/* Undoes a half-written skeleton: only the files and directories this command creates. */
static void remove_skeleton(const char *tmp)
{
	static const char *const files[] = {"site/public/index.html", "site/Makefile", "users.yaml",
					    "provision.conf"};
	static const char *const dirs[] = {"site/public", "site", ""};
	char path[PATH_MAX];

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		if (fs_path(path, sizeof(path), NULL, "%s/%s", tmp, files[i]) == 0)
			unlink(path);
	}
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		if (fs_path(path, sizeof(path), NULL, "%s/%s", tmp, dirs[i]) == 0)
			rmdir(path);
	}
}

int cmd_new(const struct cli_args *a)
{
	char tmp[PATH_MAX], sub[PATH_MAX], why[128], name[DOMAIN_NAME_MAX + 2];
	const char *dir = cli_domain_arg(a->operands[0]), *base;
	struct tuap_err err;

	base = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
	snprintf(name, sizeof(name), "%s", base);
	if (valid_domain_name(name, why, sizeof(why)) < 0) {
		fprintf(stderr, "tuap-ctl new: '%s' is not a domain name: %s\n", name, why);
		return CLI_FAIL;
	}
	if (fs_exists(dir)) {
		fprintf(stderr, "tuap-ctl new: %s already exists; nothing was changed\n", dir);
		return CLI_FAIL;
	}
	if (fs_path(tmp, sizeof(tmp), &err, "%s.new-%ld", dir, (long)getpid()) < 0 ||
	    fs_path(sub, sizeof(sub), &err, "%s/site/public", tmp) < 0) {
		fprintf(stderr, "tuap-ctl new: %s\n", err.msg);
		return CLI_FAIL;
	}
	if (fs_mkdir_p(sub, 0755, &err) < 0 ||
	    write_tmpl(tmp, "provision.conf", conf_tmpl, name, &err) < 0 ||
	    write_tmpl(tmp, "users.yaml", users_tmpl, name, &err) < 0 ||
	    write_tmpl(tmp, "site/Makefile", makefile_tmpl, name, &err) < 0 ||
	    write_tmpl(tmp, "site/public/index.html", index_tmpl, name, &err) < 0)
		goto fail;
	/* rename(2) refuses a non-empty target, and we checked above that there is none. */
	if (rename(tmp, dir) < 0) {
		err_set(&err, "%s: %s", dir, strerror(errno));
		goto fail;
	}
	printf("created %s/ (provision.conf, users.yaml, site/)\n"
	       "next: edit them, then 'tuap-ctl pack %s' and 'tuap-ctl validate %s'\n",
	       dir, dir, dir);
	return CLI_OK;
fail:
	fprintf(stderr, "tuap-ctl new: %s\n", err.msg);
	remove_skeleton(tmp);
	return CLI_FAIL;
}
