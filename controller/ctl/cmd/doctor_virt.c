/* tuap-ctl doctor: libvirt (through virsh, with the caller's rights), the management network
 * and tuap's pools as tuapd.conf says, the public bridge, free space and the catalog's images;
 * see doctor_checks.h. */
#include "doctor_checks.h"

/* virsh -q -c URI ARG... (at most 10): 0 when it ran and exited 0. A timeout is reported for
 * check. */
static int virsh_at(struct doctor *d, const char *uri, const char *check, struct subproc *p,
		    va_list ap)
{
	const char *argv[16] = {"virsh", "-q", "-c", uri};
	size_t n = 4;
	int rc;

	while (n < 15 && (argv[n] = va_arg(ap, const char *)))
		n++;
	argv[n] = NULL;
	rc = subproc_run(argv, VIRSH_DEADLINE_MS, p);
	if (p->timed_out) {
		doctor_add(&d->r, check, DOCTOR_FAIL,
			   "stalled: 'virsh %s' did not answer within %d s", argv[4],
			   VIRSH_DEADLINE_MS / 1000);
		doctor_fix(&d->r, "see why libvirtd hangs: virsh -c %s %s (and libvirtd's log)",
			   uri, argv[4]);
	}
	return rc;
}

/* virsh against tuapd.conf's libvirt_uri. */
static int virsh(struct doctor *d, const char *check, struct subproc *p, ...)
{
	va_list ap;
	int rc;

	va_start(ap, p);
	rc = virsh_at(d, d->s.libvirt_uri, check, p, ap);
	va_end(ap);
	return rc;
}

static int virsh_uri(struct doctor *d, const char *uri, const char *check, struct subproc *p, ...)
{
	va_list ap;
	int rc;

	va_start(ap, p);
	rc = virsh_at(d, uri, check, p, ap);
	va_end(ap);
	return rc;
}

/* With a hypervisors list: each one answers (with the caller's rights, as tuapd would with its
 * own: a remote URI's SSH key or TLS certificate is tuapd's, so a FAIL here may be the caller's
 * alone). The other checks are of this host's top-level keys. */
void doctor_check_hypervisors(struct doctor *d)
{
	char check[96], line[512];

	if (!d->s.hv_listed || !d->virsh)
		return;
	for (size_t i = 0; i < d->s.n_hv; i++) {
		const struct settings_hv *h = &d->s.hv[i];
		struct subproc p;

		snprintf(check, sizeof(check), "hypervisor %s", h->name);
		if (virsh_uri(d, h->libvirt_uri, check, &p, "nodeinfo", NULL) == 0) {
			const char *m = strstr(p.out.s, "Memory size:");

			doctor_add(&d->r, check, DOCTOR_OK, "%s answers (%.*s)", h->libvirt_uri,
				   m ? (int)strcspn(m, "\n") : 1, m ? m : "?");
		} else if (!p.timed_out) {
			doctor_first_line(&p.err, line, sizeof(line));
			doctor_add(&d->r, check, DOCTOR_FAIL, "%s does not answer: %s",
				   h->libvirt_uri, line);
			doctor_fix(&d->r,
				   "check it by hand: virsh -c %s nodeinfo (a remote URI needs the "
				   "tuap user's SSH key or TLS certificate on that host)",
				   h->libvirt_uri);
		}
		subproc_free(&p);
	}
}

/* ---- the configuration ---- */

void doctor_check_libvirt(struct doctor *d)
{
	struct subproc p;
	char line[512];

	if (!(d->virsh = subproc_have("virsh"))) {
		doctor_add(&d->r, "libvirt", DOCTOR_FAIL,
			   "no virsh, which doctor asks libvirt with");
		doctor_fix(&d->r, "sudo apt-get install libvirt-clients");
		return;
	}
	if (virsh(d, "libvirt", &p, "version", "--daemon", NULL) == 0) {
		const char *v = strstr(p.out.s, "Running against daemon: ");

		d->libvirt = true;
		doctor_add(&d->r, "libvirt", DOCTOR_OK, "%s answers (libvirtd %.*s)",
			   d->s.libvirt_uri, v ? (int)strcspn(v + 24, "\n") : 1, v ? v + 24 : "?");
	} else if (!p.timed_out) {
		doctor_first_line(&p.err, line, sizeof(line));
		doctor_add(&d->r, "libvirt", DOCTOR_FAIL, "%s does not answer: %s",
			   d->s.libvirt_uri, line);
		if (strstr(line, "ermission denied"))
			doctor_fix(&d->r, "sudo adduser %s libvirt, then log in again",
				   getpwuid(geteuid()) ? getpwuid(geteuid())->pw_name : "$USER");
		else
			doctor_fix(&d->r,
				   "start libvirtd (sudo systemctl start libvirtd), or set "
				   "libvirt_uri in %s",
				   d->conf);
	}
	subproc_free(&p);
}

static bool libvirt_checked(struct doctor *d, const char *check)
{
	if (d->libvirt)
		return true;
	doctor_add(&d->r, check, DOCTOR_WARN, "not checked: libvirt does not answer");
	doctor_fix(&d->r, "see the libvirt check");
	return false;
}

void doctor_check_network(struct doctor *d)
{
	struct virtdef_subnet sn;
	struct subproc p;
	struct tuap_err err;
	const char *name = d->s.mgmt_network;

	if (!libvirt_checked(d, "mgmt-network") || virtdef_subnet(d->s.mgmt_subnet, &sn, &err) < 0)
		return;
	if (virsh(d, "mgmt-network", &p, "net-dumpxml", name, NULL) < 0) {
		if (!p.timed_out) {
			doctor_add(
				&d->r, "mgmt-network", DOCTOR_WARN,
				"libvirt has no network %s: tuapd defines it (NAT, %s, bridge %s) "
				"at the first provision",
				name, d->s.mgmt_subnet, d->s.mgmt_bridge);
			doctor_fix(
				&d->r,
				"nothing, if %s is free on your site (else set mgmt_subnet in %s)",
				d->s.mgmt_subnet, d->conf);
		}
	} else if (virtdef_network_check(p.out.s, p.out.len, name, &sn, d->s.mgmt_bridge, &err) <
		   0) {
		doctor_add(&d->r, "mgmt-network", DOCTOR_FAIL, "%s", err.msg);
		doctor_fix(
			&d->r,
			"virsh -c %s net-destroy %s; virsh -c %s net-undefine %s (tuapd defines "
			"it again), or set mgmt_network/mgmt_subnet/mgmt_bridge in %s to match it",
			d->s.libvirt_uri, name, d->s.libvirt_uri, name, d->conf);
	} else {
		doctor_add(&d->r, "mgmt-network", DOCTOR_OK, "network %s: NAT, %s/%s, bridge %s",
			   name, sn.gateway, sn.prefix, d->s.mgmt_bridge);
	}
	subproc_free(&p);
}

/* The directory pool name must have under pool_root; 0 when it is not one of tuap's. */
static int pool_dir(struct doctor *d, const char *name, char *dir, size_t len)
{
	size_t k = strlen(VIRTDEF_POOL_PREFIX);

	if (!strcmp(name, VIRTDEF_IMAGES_POOL))
		return settings_images_dir(&d->s, dir, len, NULL) == 0;
	if (strncmp(name, VIRTDEF_POOL_PREFIX, k))
		return 0;
	return settings_domain_dir(&d->s, name + k, dir, len, NULL) == 0;
}

/* Adds what pool's volumes may still grow to d->growth (a domain pool, active). */
static void add_growth(struct doctor *d, const char *pool)
{
	struct subproc p;
	uint64_t g;

	if (virsh(d, "space", &p, "vol-list", "--pool", pool, "--details", NULL) == 0 &&
	    doctor_vol_growth(p.out.s, &g) == 0) {
		d->growth += g;
		d->n_volumes_pools++;
	}
	subproc_free(&p);
}

/* Judges one pool; 0 fine, -1 wrong (err), 1 not checked (virsh failed: reported). */
static int judge_pool(struct doctor *d, const char *name, const char *dir, struct tuap_err *err)
{
	struct subproc p;
	int rc = 1;

	if (virsh(d, "pools", &p, "pool-dumpxml", name, NULL) == 0)
		rc = virtdef_pool_check(p.out.s, p.out.len, name, dir, err);
	subproc_free(&p);
	if (rc == 0 && strcmp(name, VIRTDEF_IMAGES_POOL))
		add_growth(d, name);
	return rc;
}

void doctor_check_pools(struct doctor *d)
{
	struct subproc p;
	struct tuap_err err, first;
	char dir[4096], bad[256] = "";
	size_t ours = 0, wrong = 0;

	if (!libvirt_checked(d, "pools"))
		return;
	if (virsh(d, "pools", &p, "pool-list", "--all", "--name", NULL) < 0) {
		if (!p.timed_out) {
			doctor_add(&d->r, "pools", DOCTOR_FAIL, "virsh pool-list: %s",
				   doctor_first_line(&p.err, dir, sizeof(dir)));
			doctor_fix(&d->r, "see libvirtd's log");
		}
		subproc_free(&p);
		return;
	}
	for (char *save = NULL, *name = strtok_r(p.out.s, "\n", &save);
	     name && ours < DOCTOR_POOLS_MAX; name = strtok_r(NULL, "\n", &save)) {
		size_t n;

		name += strspn(name, " ");
		n = strlen(name);
		while (n && name[n - 1] == ' ') /* virsh pads the names of its table */
			name[--n] = '\0';
		if (!pool_dir(d, name, dir, sizeof(dir)))
			continue;
		ours++;
		if (judge_pool(d, name, dir, &err) < 0 && wrong++ == 0) {
			first = err;
			snprintf(bad, sizeof(bad), "%s", name);
		}
	}
	subproc_free(&p);
	if (wrong) {
		doctor_add(&d->r, "pools", DOCTOR_FAIL, "%s%s", first.msg,
			   wrong > 1 ? " (and more pools: see virsh pool-list)" : "");
		doctor_fix(&d->r,
			   "virsh -c %s pool-destroy %s; virsh -c %s pool-undefine %s (tuapd "
			   "defines it again under pool_root), or set pool_root in %s",
			   d->s.libvirt_uri, bad, d->s.libvirt_uri, bad, d->conf);
	} else {
		doctor_add(&d->r, "pools", DOCTOR_OK, "%zu tuap pool%s, all under %s", ours,
			   ours == 1 ? "" : "s", d->s.pool_root);
	}
}

void doctor_check_bridge(struct doctor *d)
{
	struct tuap_err err;

	if (virtdef_bridge_check(d->s.public_bridge, &err) < 0) {
		doctor_add(&d->r, "public-bridge", DOCTOR_FAIL, "%s", err.msg);
		doctor_fix(&d->r,
			   "make the bridge (Debian: bridge-utils, 'auto %s' / 'iface %s inet "
			   "manual' / 'bridge_ports eth0' in /etc/network/interfaces), or set "
			   "public_bridge = \"NAME\"; in %s",
			   d->s.public_bridge, d->s.public_bridge, d->conf);
	} else {
		doctor_add(&d->r, "public-bridge", DOCTOR_OK, "bridge %s exists",
			   d->s.public_bridge);
	}
}

void doctor_check_space(struct doctor *d)
{
	char dir[4096], free_s[32], grow_s[32];
	struct statvfs vfs;
	uint64_t avail;

	/* pool_root may not exist yet: tuapd makes it; its filesystem is the nearest parent's */
	snprintf(dir, sizeof(dir), "%s", d->s.pool_root);
	while (statvfs(dir, &vfs) < 0 && strrchr(dir, '/') && strcmp(dir, "/"))
		*(strrchr(dir, '/') == dir ? dir + 1 : strrchr(dir, '/')) = '\0';
	avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	doctor_bytes(avail, free_s, sizeof(free_s));
	doctor_bytes(d->growth, grow_s, sizeof(grow_s));
	if (!d->libvirt) {
		doctor_add(&d->r, "space", DOCTOR_WARN,
			   "%s: %s free; the domains' disks not counted (libvirt does not answer)",
			   d->s.pool_root, free_s);
		doctor_fix(&d->r, "see the libvirt check");
	} else if (d->growth > avail) {
		doctor_add(&d->r, "space", DOCTOR_FAIL,
			   "%s: %s free, but the disks of %zu domain pool%s may still grow by %s",
			   d->s.pool_root, free_s, d->n_volumes_pools,
			   d->n_volumes_pools == 1 ? "" : "s", grow_s);
		doctor_fix(
			&d->r,
			"free space on the filesystem of %s, or move pool_root = \"PATH\"; in %s "
			"to a larger one",
			dir, d->conf);
	} else {
		doctor_add(&d->r, "space", DOCTOR_OK,
			   "%s: %s free; the domains' disks may grow by %s", d->s.pool_root, free_s,
			   grow_s);
	}
}

/* ---- images ---- */

struct hash_deadline {
	time_t until;
};

static bool hash_in_time(uint64_t done, uint64_t total, void *arg)
{
	(void)done;
	(void)total;
	return time(NULL) < ((struct hash_deadline *)arg)->until;
}

static void check_image(struct doctor *d, const struct image_entry *e, const char *cache)
{
	struct hash_deadline dl = {time(NULL) + HASH_DEADLINE_S};
	char path[8192], vol[320], hex[SHA256_HEX_LEN], check[80];
	struct tuap_err err;

	snprintf(check, sizeof(check), "image %s", e->name);
	if (e->path[0])
		snprintf(path, sizeof(path), "%s", e->path);
	else if (image_volume_name(e, vol, sizeof(vol), &err) == 0)
		snprintf(path, sizeof(path), "%s/%s", cache, vol);
	else
		return;
	if (access(path, F_OK) < 0 && errno == ENOENT) {
		if (e->path[0]) {
			doctor_add(&d->r, check, DOCTOR_FAIL, "%s does not exist", path);
			doctor_fix(&d->r, "build the image there, or fix its path at %s:%d",
				   e->file, e->line);
		} else {
			doctor_add(&d->r, check, DOCTOR_WARN,
				   "not cached: the first provision downloads %s", e->url);
			doctor_fix(&d->r, "nothing, if this host may download it");
		}
		return;
	}
	if (sha256_file_hex_progress(path, hex, NULL, hash_in_time, &dl, &err) < 0) {
		bool stalled = strstr(err.msg, FILE_STOPPED) != NULL;

		doctor_add(&d->r, check, DOCTOR_WARN, "%s not verified: %s", path,
			   stalled ? "stalled: hashing took longer than 300 s" : err.msg);
		doctor_fix(&d->r, "%s",
			   stalled ? "check the disk under it (dmesg)"
				   : "run doctor as root (or in group tuap) to read it");
	} else if (e->sha256[0] && strcmp(hex, e->sha256)) {
		doctor_add(&d->r, check, DOCTOR_FAIL, "%s has sha256 %s, %s:%d says %s", path, hex,
			   e->file, e->line, e->sha256);
		if (e->path[0])
			doctor_fix(&d->r, "rebuild the image, or put its sha256 at %s:%d", e->file,
				   e->line);
		else
			doctor_fix(&d->r,
				   "rm %s (tuapd downloads it again), or fix sha256 at %s:%d", path,
				   e->file, e->line);
	} else {
		doctor_add(&d->r, check, DOCTOR_OK, "%s %s", path,
			   e->sha256[0] ? "verified (sha256)" : "is there (no sha256 pinned)");
	}
}

void doctor_check_images(struct doctor *d)
{
	struct image_catalog cat = {0};
	struct diags dg;
	char cache[4096], e[1024];
	bool have_default = false;

	diags_init(&dg);
	if (!fs_exists(d->s.image_catalog)) {
		doctor_add(&d->r, "images", DOCTOR_WARN,
			   "no catalog %s: only sites with image=/PATH can be provisioned",
			   d->s.image_catalog);
		doctor_fix(&d->r, "write it (images.conf(5)), or set image_catalog in %s", d->conf);
	} else if (image_catalog_load(d->s.image_catalog, &cat, &dg) < 0) {
		doctor_add(&d->r, "images", DOCTOR_FAIL, "%s%s",
			   dg.n ? err_str(&dg.v[0].e, e, sizeof(e)) : d->s.image_catalog,
			   dg.errors > 1 ? " (and more)" : "");
		doctor_fix(&d->r, "fix %s", d->s.image_catalog);
	} else if (settings_image_cache_dir(&d->s, cache, sizeof(cache), NULL) == 0) {
		for (size_t i = 0; i < cat.n; i++) {
			check_image(d, &cat.v[i], cache);
			have_default |= !strcmp(cat.v[i].name, d->s.default_image);
		}
		if (!have_default) {
			doctor_add(&d->r, "images", DOCTOR_WARN,
				   "default_image %s is not in %s: sites without image= fail",
				   d->s.default_image, d->s.image_catalog);
			doctor_fix(&d->r, "add it to the catalog, or set default_image in %s",
				   d->conf);
		}
	}
	image_catalog_free(&cat);
	diags_free(&dg);
}

/* ---- agents' way in ---- */
