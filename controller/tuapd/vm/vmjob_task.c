/*
 * The work the VM manager's worker thread does (see vmjob.h, worker.h): image download and upload,
 * overlays, seeds, define and start, the old VM of a rebuild, destroy, snapshots. One thread,
 * one task at a time, in the order submitted: libvirt serialises most of this per domain anyway,
 * and a FIFO keeps a destroy behind the define it follows. A task only reads its own copies
 * and the (read-only) settings, and writes its own outputs; vmjob_dispatch hands them to the
 * engine on the main thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libvirt/libvirt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"
#include "log.h"
#include "render.h"
#include "vmjob_impl.h"

/* ---- tasks ---- */

struct task *task_new(struct vmjob *vj, enum task_kind kind, struct engine *e, const char *domain,
		      const char *job_id)
{
	struct task *t = calloc(1, sizeof(*t));

	if (!t)
		abort();
	t->kind = kind;
	t->vj = vj;
	t->e = e;
	snprintf(t->domain, sizeof(t->domain), "%s", domain);
	snprintf(t->job_id, sizeof(t->job_id), "%s", job_id ? job_id : "");
	t->started_ms = engine_now_ms();
	return t;
}

void task_free(struct task *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n_files; i++) {
		if (t->files[i].secret && t->files[i].data.s)
			keys_wipe(t->files[i].data.s, t->files[i].data.cap);
		buf_free(&t->files[i].data);
	}
	strlist_free(&t->lines);
	free(t);
}

int task_add_file(struct task *t, const char *name, const void *data, size_t len,
		  const char *src_path, mode_t mode, bool secret)
{
	struct task_file *f;

	if (t->n_files == TASK_FILES)
		return -1;
	f = &t->files[t->n_files++];
	snprintf(f->name, sizeof(f->name), "%s", name);
	f->data = (struct buf)BUF_INIT;
	if (data)
		buf_add(&f->data, data, len);
	snprintf(f->src_path, sizeof(f->src_path), "%s", src_path ? src_path : "");
	f->mode = mode;
	f->secret = secret;
	return 0;
}

/* Records progress for the main thread; false when the task was told to stop (the long reads
 * and transfers that call it then give up). */
static bool note_progress(struct task *t, const char *stage, uint64_t done, uint64_t total)
{
	struct worker *w = t->vj->w;
	int64_t now = engine_now_ms();
	bool tell = false, go;

	worker_lock(w);
	t->done = done;
	t->total = total;
	snprintf(t->stage, sizeof(t->stage), "%s", stage);
	/* at most two a second reach the engine (and tuap-ctl), plus the last one */
	if (now - t->progress_ms >= 500 || (total && done == total)) {
		t->progress_new = tell = true;
		t->progress_ms = now;
	}
	go = !t->item.cancel;
	worker_unlock(w);
	if (tell)
		worker_wake(w);
	return go;
}

static bool on_hash(uint64_t done, uint64_t total, void *arg)
{
	return note_progress(arg, "hash", done, total);
}

static bool on_fetch(uint64_t done, uint64_t total, void *arg)
{
	struct task *t = arg;

	return note_progress(t, t->img.url[0] ? "download" : "verify", done, total);
}

static bool on_upload(uint64_t done, uint64_t total, void *arg)
{
	return note_progress(arg, "upload", done, total);
}

/* ---- image, disk, seed ---- */

/* The catalog; a missing or bad one is only an error for images named in it. */
static int load_catalog(struct task *t, struct image_catalog *cat, struct tuap_err *err)
{
	const struct settings *set = t->vj->set;
	struct diags d;
	char first[1024];
	int rc = 0;

	diags_init(&d);
	memset(cat, 0, sizeof(*cat));
	if (image_catalog_load(set->image_catalog, cat, &d) < 0 && t->image_value[0] != '/') {
		err_str(d.n ? &d.v[0].e : &(struct tuap_err){.msg = "unreadable"}, first,
			sizeof(first));
		if (d.errors > 1)
			rc = err_set(err, "%s (and %zu more problems in the image catalog)", first,
				     d.errors - 1);
		else
			rc = err_set(err, "%s", first);
	}
	diags_free(&d);
	return rc;
}

/* The local copy's size, when there is one without downloading: the image file itself, or
 * the cached download. 0 when none. */
static uint64_t local_size(const struct task *t, const char *cache, const char *vol)
{
	char path[PATH_MAX];
	struct stat st;

	if (t->img.path[0])
		snprintf(path, sizeof(path), "%s", t->img.path);
	else if (fs_path(path, sizeof(path), NULL, "%s/%s", cache, vol) < 0)
		return 0;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
}

/* The base image as a volume of tuap-images: reused when the volume of that content-hashed
 * name is there and as large as the local copy (an interrupted upload is shorter), else
 * fetched (downloaded or verified, sha256) and uploaded. */
static int ensure_image(struct task *t, struct tuap_err *err)
{
	const struct settings *set = t->vj->set;
	struct virt *v = t->vj->v;
	struct image_catalog cat;
	struct virt_vol_info info;
	char images[PATH_MAX], cache[PATH_MAX], vol[VIRT_NAME_MAX], local[PATH_MAX], how[64];
	uint64_t size;
	int found, rc = -1;

	if (load_catalog(t, &cat, err) < 0)
		return -1;
	if (image_resolve_progress(&cat, set->image_dir, t->image_value, on_hash, t, &t->img, err) <
		    0 ||
	    image_volume_name(&t->img, vol, sizeof(vol), err) < 0 ||
	    settings_images_dir(set, images, sizeof(images), err) < 0 ||
	    settings_image_cache_dir(t->vj->host, cache, sizeof(cache), err) < 0 ||
	    virt_pool_ensure(v, VMJOB_IMAGES_POOL, images, err) < 0)
		goto out;
	if ((found = virt_vol_lookup(v, VMJOB_IMAGES_POOL, vol, &info, err)) < 0)
		goto out;
	size = local_size(t, cache, vol);
	if (found && size && info.physical == size) {
		snprintf(how, sizeof(how), "reused");
	} else {
		if (image_fetch(&t->img, cache, on_fetch, t, local, sizeof(local), err) < 0 ||
		    virt_vol_upload(v, VMJOB_IMAGES_POOL, vol, local, on_upload, t, err) < 0)
			goto out;
		if (virt_vol_lookup(v, VMJOB_IMAGES_POOL, vol, &info, err) != 1) {
			err_set(err, "volume %s vanished after its upload", vol);
			goto out;
		}
		snprintf(how, sizeof(how), "uploaded %.1f MiB", (double)info.physical / 1048576.0);
	}
	snprintf(t->base_path, sizeof(t->base_path), "%s", info.path);
	t->have_image = true;
	snprintf(t->msg, sizeof(t->msg), "%s (sha256 %.12s…): %s as %s", t->img.name, t->img.sha256,
		 how, vol);
	rc = 0;
out:
	image_catalog_free(&cat);
	return rc;
}

/* The domain's pool at POOL_ROOT/DOMAIN. qemu, running as its own user, must be able to enter
 * the directory: tuapd made it first when the job brought data.tar.gz (kept there, 0640), and
 * libvirt keeps an existing directory's mode, so search permission is added here. On a remote
 * hypervisor the directory is libvirt's own (tuapd keeps data.tar.gz on its host). */
static int ensure_domain_pool(struct task *t, char *pool, size_t plen, struct tuap_err *err)
{
	char dir[PATH_MAX];
	struct stat st;

	if (vmjob_pool_name(t->domain, pool, plen, err) < 0 ||
	    vmjob_domain_dir(t->vj, t->domain, dir, sizeof(dir), err) < 0 ||
	    virt_pool_ensure(t->vj->v, pool, dir, err) < 0)
		return -1;
	if (t->vj->remote)
		return 0;
	if (stat(dir, &st) < 0)
		return err_set(err, "%s: %s", dir, strerror(errno));
	if ((st.st_mode & 0011) != 0011 && chmod(dir, (st.st_mode & 07777) | 0011) < 0)
		return err_set(err,
			       "%s (mode %04o) cannot be entered by qemu's user and tuapd cannot "
			       "change that (%s): chmod go+x it",
			       dir, (unsigned)(st.st_mode & 07777), strerror(errno));
	return 0;
}

/* The domain's pool (POOL_ROOT/DOMAIN) and this job's overlay in it, sized as provision.conf
 * asks (an overlay of this job already there is kept: the job resumes). */
static int ensure_disk(struct task *t, struct tuap_err *err)
{
	struct virt *v = t->vj->v;
	struct virt_vol_info info;
	char pool[VIRT_NAME_MAX], name[VIRT_NAME_MAX];
	int found;

	vmjob_disk_name(t->job_id, name, sizeof(name));
	if (ensure_domain_pool(t, pool, sizeof(pool), err) < 0 ||
	    (found = virt_vol_lookup(v, pool, name, &info, err)) < 0)
		return -1;
	if (!found &&
	    (virt_vol_create_overlay(v, pool, name, t->base_path, t->conf.size, err) < 0 ||
	     virt_vol_lookup(v, pool, name, &info, err) != 1))
		return -1;
	snprintf(t->disk_path, sizeof(t->disk_path), "%s", info.path);
	t->have_disk = true;
	snprintf(t->msg, sizeof(t->msg), "%s %s: %.1f GiB over %s", found ? "kept" : "made", name,
		 (double)info.capacity / 1073741824.0, t->img.name[0] ? t->img.name : "the image");
	return 0;
}

/* Writes the seed ISO (it holds the agent's secret: a 0700 directory of tuapd's, removed
 * whatever happens) and uploads it into the domain's pool under its content hash. */
static int write_seed(struct task *t, struct tuap_err *err)
{
	const struct settings *set = t->vj->set;
	struct virt *v = t->vj->v;
	struct seed_file files[TASK_FILES];
	struct virt_vol_info info;
	char tmpdir[PATH_MAX], tmp[PATH_MAX], sha[SHA256_HEX_LEN], name[VIRT_NAME_MAX],
		pool[VIRT_NAME_MAX];
	int rc = -1;

	for (size_t i = 0; i < t->n_files; i++)
		files[i] = (struct seed_file){
			.name = t->files[i].name,
			.data = t->files[i].src_path[0] ? NULL : t->files[i].data.s,
			.len = t->files[i].data.len,
			.src_path = t->files[i].src_path[0] ? t->files[i].src_path : NULL,
			.mode = t->files[i].mode,
		};
	if (fs_path(tmpdir, sizeof(tmpdir), err, "%s/tmp", set->state_dir) < 0 ||
	    fs_mkdir_p(tmpdir, 0700, err) < 0 ||
	    fs_path(tmp, sizeof(tmp), err, "%s/seed-%s.iso", tmpdir, t->job_id) < 0)
		return -1;
	if (seed_write(files, t->n_files, tmp, sha, err) < 0 ||
	    seed_name(sha, name, sizeof(name), err) < 0 ||
	    ensure_domain_pool(t, pool, sizeof(pool), err) < 0 ||
	    virt_vol_upload(v, pool, name, tmp, NULL, NULL, err) < 0)
		goto out;
	if (virt_vol_lookup(v, pool, name, &info, err) != 1) {
		err_set(err, "seed volume %s vanished after its upload", name);
		goto out;
	}
	snprintf(t->seed_path, sizeof(t->seed_path), "%s", info.path);
	snprintf(t->msg, sizeof(t->msg), "%s (%zu files, %.1f MiB)", name, t->n_files,
		 (double)info.physical / 1048576.0);
	rc = 0;
out:
	unlink(tmp);
	return rc;
}

/* ---- define ---- */

static int define_domain(struct task *t, struct tuap_err *err)
{
	const struct settings *set = t->vj->set;
	struct virt *v = t->vj->v;
	char mac0[18], mac1[18], dir[PATH_MAX], console[PATH_MAX], instance[64];
	struct buf xml = BUF_INIT;
	struct render_input in;
	int rc = -1;

	if (virt_network_ensure_nat(v, set->mgmt_network, set->mgmt_subnet, set->mgmt_bridge, err) <
		    0 ||
	    (!t->vj->remote && virtdef_bridge_check(set->public_bridge, err) < 0) ||
	    vmjob_domain_dir(t->vj, t->domain, dir, sizeof(dir), err) < 0 ||
	    fs_path(console, sizeof(console), err, "%s/%s", dir, VMJOB_CONSOLE_LOG) < 0)
		return -1;
	domain_mac(t->domain, 0, mac0);
	domain_mac(t->domain, 1, mac1);
	vmjob_instance_id(t->job_id, instance, sizeof(instance));
	in = (struct render_input){
		.conf = &t->conf,
		.set = set,
		.instance_id = instance,
		.provision_id = t->job_id,
		.mac_mgmt = mac0,
		.mac_public = mac1,
		.disk_path = t->disk_path,
		.backing_path = t->base_path,
		.seed_path = t->seed_path,
		.console_log = console,
		.kernel = t->img.kernel[0] ? t->img.kernel : NULL,
		.initrd = t->img.kernel[0] && t->img.initrd[0] ? t->img.initrd : NULL,
		.cmdline = t->img.kernel[0] && t->img.cmdline[0] ? t->img.cmdline : NULL,
		.agent_public_key = t->agent_pub,
	};
	if (domxml_render(&in, &xml, err) < 0 || virt_domain_define(v, xml.s, err) < 0 ||
	    virt_domain_set_autostart(v, t->domain, 1, err) < 0 ||
	    virt_domain_start(v, t->domain, err) < 0)
		goto out;
	snprintf(t->msg, sizeof(t->msg), "%s runs: %u vCPU, %u MiB, %s; console log %.400s",
		 t->domain, t->conf.cpus, t->conf.memory_mib, t->img.name, console);
	rc = 0;
out:
	buf_free(&xml);
	return rc;
}

static int work_define(struct task *t, struct tuap_err *err)
{
	if (!t->have_image && ensure_image(t, err) < 0)
		return -1;
	if (!t->have_disk && ensure_disk(t, err) < 0)
		return -1;
	if (t->n_files && write_seed(t, err) < 0)
		return -1;
	return define_domain(t, err);
}

static int work_start(struct task *t, struct tuap_err *err)
{
	if (virt_domain_set_autostart(t->vj->v, t->domain, 1, err) < 0 ||
	    virt_domain_start(t->vj->v, t->domain, err) < 0)
		return -1;
	snprintf(t->msg, sizeof(t->msg), "%s was defined by this job already; it runs", t->domain);
	return 0;
}

/* ---- the old VM of a rebuild ---- */

/* Powers the old VM off, snapshots its disk (internal, in its overlay: a restore point that
 * stays with the kept volume), undefines it. The new VM gets its own overlay, keys and
 * instance-id. A memory snapshot would be of no use once the domain is undefined. */
static int work_rebuild(struct task *t, struct tuap_err *err)
{
	struct virt *v = t->vj->v;
	char want[VIRT_NAME_MAX], snap[VIRT_NAME_MAX], disk[VIRT_NAME_MAX];
	struct tuap_err e2;

	snprintf(want, sizeof(want), "tuap-before-%s", t->job_id);
	vmjob_disk_name(t->old_job, disk, sizeof(disk));
	if (virt_domain_destroy(v, t->domain, err) < 0)
		return -1;
	if (virt_snapshot_create(v, t->domain, want, snap, sizeof(snap), err) < 0) {
		char why[sizeof(err->msg)];

		snprintf(why, sizeof(why), "%s", err->msg);
		if (virt_domain_start(v, t->domain, &e2) < 0)
			return err_set(err, "%s; and it could not be started again: %s", why,
				       e2.msg);
		return err_set(err, "%s; the VM was started again, nothing else changed", why);
	}
	if (virt_domain_undefine(v, t->domain, err) < 0)
		return -1;
	snprintf(t->msg, sizeof(t->msg),
		 "old VM (job %s) powered off, snapshot %s taken, undefined; its disk %s stays "
		 "in pool " VMJOB_POOL_PREFIX "%s with that snapshot inside (qemu-img snapshot -l)",
		 t->old_job, snap, disk, t->domain);
	return 0;
}

/* ---- requests ---- */

/* Lists and deletes the domain's pool, one line per volume deleted. */
static int purge_pool(struct task *t, struct tuap_err *err)
{
	struct virt *v = t->vj->v;
	char pool[VIRT_NAME_MAX], dir[PATH_MAX];
	virStoragePoolPtr p;
	virStorageVolPtr *vols = NULL;
	int n = 0;

	if (vmjob_pool_name(t->domain, pool, sizeof(pool), err) < 0 ||
	    vmjob_domain_dir(t->vj, t->domain, dir, sizeof(dir), err) < 0)
		return -1;
	p = virStoragePoolLookupByName(virt_conn(v), pool);
	if (!p)
		return 0; /* no pool: nothing of libvirt's to delete */
	if (virStoragePoolIsActive(p) == 1 && virStoragePoolRefresh(p, 0) == 0)
		n = virStoragePoolListAllVolumes(p, &vols, 0);
	for (int i = 0; i < n; i++) {
		strlist_addf(&t->lines, "deleted volume %s", virStorageVolGetName(vols[i]));
		virStorageVolFree(vols[i]);
	}
	free(vols);
	virStoragePoolFree(p);
	if (virt_pool_delete(v, pool, err) < 0)
		return -1;
	strlist_addf(&t->lines, "deleted storage pool %s and its directory %s", pool, dir);
	return 0;
}

static int work_destroy(struct task *t, struct tuap_err *err)
{
	struct virt *v = t->vj->v;
	enum virt_state st;
	char pool[VIRT_NAME_MAX];
	int exists = virt_domain_exists(v, t->domain, err);

	if (exists < 0 || vmjob_pool_name(t->domain, pool, sizeof(pool), err) < 0)
		return -1;
	if (exists) {
		if (virt_domain_state(v, t->domain, &st, err) < 0 ||
		    virt_domain_destroy(v, t->domain, err) < 0 ||
		    virt_domain_undefine(v, t->domain, err) < 0)
			return -1;
		strlist_addf(&t->lines, "destroyed and undefined %s (it was %s)", t->domain,
			     virt_state_name(st));
	} else {
		strlist_addf(&t->lines, "%s had no VM defined", t->domain);
	}
	if (t->purge)
		return purge_pool(t, err);
	strlist_addf(&t->lines,
		     "kept: storage pool %s (disks, seeds, console log), the agent key and the "
		     "journal; 'tuap-ctl destroy --purge %s' deletes them",
		     pool, t->domain);
	return 0;
}

/* snapshot --list: "NAME  TAKEN  STATE" lines, oldest first (the completion reads NAME). */
static int list_snapshots(struct task *t, struct tuap_err *err)
{
	struct virt_snapshot *list = NULL;
	size_t n = 0;

	if (virt_snapshot_list(t->vj->v, t->domain, &list, &n, err) < 0)
		return -1;
	if (n == 0)
		strlist_addf(&t->lines, "%s has no snapshots", t->domain);
	for (size_t i = 0; i < n; i++) {
		time_t at = (time_t)list[i].created;
		char when[64];
		struct tm tm;

		gmtime_r(&at, &tm);
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
		strlist_addf(&t->lines, "%-32s %s  %s%s", list[i].name, when, list[i].state,
			     list[i].current ? "  (current)" : "");
	}
	free(list);
	return 0;
}

static int work_snapshot(struct task *t, struct tuap_err *err)
{
	enum virt_state st;
	char name[VIRT_NAME_MAX];

	if (t->list)
		return list_snapshots(t, err);

	if (virt_domain_state(t->vj->v, t->domain, &st, err) < 0 ||
	    virt_snapshot_create(t->vj->v, t->domain, t->snap_name, name, sizeof(name), err) < 0)
		return -1;
	strlist_addf(&t->lines, "snapshot %s of %s taken (%s%s)", name, t->domain,
		     virt_state_name(st),
		     st == VIRT_STATE_RUNNING ? ", with memory" : ", disks only");
	return 0;
}

static int work_restore(struct task *t, struct tuap_err *err)
{
	struct virt_snapshot *list = NULL;
	const struct virt_snapshot *pick = NULL;
	char when[64];
	size_t n = 0;
	struct tm tm;
	time_t at;
	int rc = -1;

	if (virt_snapshot_list(t->vj->v, t->domain, &list, &n, err) < 0)
		return -1;
	if (n == 0) {
		err_set(err, "%s has no snapshots ('tuap-ctl snapshot %s' takes one)", t->domain,
			t->domain);
		goto out;
	}
	if (t->snap_name[0]) {
		for (size_t i = 0; i < n && !pick; i++)
			if (!strcmp(list[i].name, t->snap_name))
				pick = &list[i];
		if (!pick) {
			err_set(err, "%s has no snapshot %s (it has %zu; the newest is %s)",
				t->domain, t->snap_name, n, list[n - 1].name);
			goto out;
		}
	} else {
		pick = t->oldest ? &list[0] : &list[n - 1]; /* oldest first; latest by default */
	}
	if (virt_snapshot_revert(t->vj->v, t->domain, pick->name, 1, err) < 0)
		goto out;
	at = (time_t)pick->created;
	gmtime_r(&at, &tm);
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
	strlist_addf(&t->lines, "%s restored to snapshot %s (taken %s, %s); it runs", t->domain,
		     pick->name, when, pick->state);
	rc = 0;
out:
	free(list);
	return rc;
}

void task_run(struct worker_item *it, void *ctx)
{
	struct task *t = (struct task *)it;
	struct tuap_err err = {0};
	char buf[1200];

	if (worker_cancelled(t->vj->w, it)) {
		t->rc = -1;
		snprintf(t->msg, sizeof(t->msg), "not started: its job ended before");
		return;
	}
	switch (t->kind) {
	case T_REBUILD:
		t->rc = work_rebuild(t, &err);
		break;
	case T_IMAGE:
		t->rc = ensure_image(t, &err);
		break;
	case T_DISK:
		t->rc = (!t->have_image && ensure_image(t, &err) < 0) ? -1 : ensure_disk(t, &err);
		break;
	case T_SEED:
		t->rc = write_seed(t, &err);
		break;
	case T_DEFINE:
		t->rc = work_define(t, &err);
		break;
	case T_START:
		t->rc = work_start(t, &err);
		break;
	case T_DESTROY:
		t->rc = work_destroy(t, &err);
		break;
	case T_SNAPSHOT:
		t->rc = work_snapshot(t, &err);
		break;
	case T_RESTORE:
		t->rc = work_restore(t, &err);
		break;
	case T_EJECT: {
		int n = virt_domain_eject_cdroms(t->vj->v, t->domain, &err);

		t->rc = n < 0 ? -1 : 0;
		if (n >= 0)
			strlist_addf(&t->lines,
				     "seed ejected (%d cdrom%s): the agent's key is no longer "
				     "readable in the guest",
				     n, n == 1 ? "" : "s");
		break;
	}
	}
	if (t->rc < 0)
		snprintf(t->msg, sizeof(t->msg), "%s", err_str(&err, buf, sizeof(buf)));
}

/* ---- the queue ---- */

int task_submit(struct vmjob *vj, struct task *t, struct tuap_err *err)
{
	if (worker_submit(vj->w, &t->item, err) < 0) {
		task_free(t);
		return -1;
	}
	return 0;
}

int task_take_progress(struct vmjob *vj, struct task_progress *p)
{
	struct task *t;
	int got = 0;

	worker_lock(vj->w);
	t = (struct task *)worker_current(vj->w);
	if (t && t->progress_new) {
		t->progress_new = false;
		p->e = t->e;
		snprintf(p->domain, sizeof(p->domain), "%s", t->domain);
		snprintf(p->job_id, sizeof(p->job_id), "%s", t->job_id);
		p->phase = t->phase;
		p->done = t->done;
		p->total = t->total;
		snprintf(p->stage, sizeof(p->stage), "%s", t->stage);
		got = 1;
	}
	worker_unlock(vj->w);
	return got;
}
