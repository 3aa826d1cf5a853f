/*
 * The packages step: apt-get (update when asked, then install without recommends, keeping
 * changed config files, waiting for the dpkg lock a while) or dnf, whichever the system has.
 * make is added when the system has none: the site's Makefile is what the make step runs, and
 * stock cloud images do not ship make (the original tool appended it to every package list).
 */
#include <stdbool.h>
#include <string.h>

#include "proc.h"
#include "run.h"
#include "valid.h"

#define PKG_MAX	     512
#define PKG_ARGV_MAX (PKG_MAX + 16)

int packages_start(struct step_run *r, const Tuap__PackagesArgs *a, struct tuap_err *err)
{
	const char *argv[PKG_ARGV_MAX];
	const char *pm = step_pkg_manager();
	char make_path[256];
	bool add_make;
	size_t n = 0;

	if (a->n_packages > PKG_MAX)
		return err_at(err, NULL, 0, "packages", "%zu packages; at most %d", a->n_packages,
			      PKG_MAX);
	for (size_t i = 0; i < a->n_packages; i++) {
		char why[160];

		if (!a->packages[i] || valid_package_name(a->packages[i], why, sizeof(why)) < 0)
			return err_at(err, NULL, 0, "packages", "'%s' is not a package name: %s",
				      a->packages[i] ? a->packages[i] : "", why);
	}
	add_make = proc_which("make", make_path, sizeof(make_path)) < 0;
	if (add_make)
		run_log(r, "make is not installed: adding it (the make step runs the site's "
			   "Makefile)");
	if (a->n_packages == 0 && !add_make) {
		run_log(r, "no packages to install");
		return 0;
	}
	if (!pm)
		return err_set(err, "neither apt-get nor dnf found (PATH=%s)", PROC_PATH);
	if (strcmp(pm, "apt") == 0) {
		if (a->has_update && a->update)
			run_queue_cmd(r,
				      (const char *const[]){"apt-get", "-q", "-o",
							    "DPkg::Lock::Timeout=300", "update",
							    NULL},
				      -1);
		argv[n++] = "apt-get";
		argv[n++] = "-q";
		argv[n++] = "-y";
		argv[n++] = "--no-install-recommends";
		argv[n++] = "-o";
		argv[n++] = "Dpkg::Options::=--force-confold";
		argv[n++] = "-o";
		argv[n++] = "DPkg::Lock::Timeout=300";
		argv[n++] = "install";
	} else {
		if (a->has_update && a->update)
			run_queue_cmd(r, (const char *const[]){"dnf", "-y", "makecache", NULL}, -1);
		argv[n++] = "dnf";
		argv[n++] = "install";
		argv[n++] = "-y";
	}
	for (size_t i = 0; i < a->n_packages; i++)
		argv[n++] = a->packages[i];
	if (add_make)
		argv[n++] = "make";
	argv[n] = NULL;
	run_queue_cmd(r, argv, -1);
	return 0;
}
