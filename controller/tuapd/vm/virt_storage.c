/*
 * Storage: directory pools (tuap-images at POOL_ROOT/images, tuap-DOMAIN at POOL_ROOT/DOMAIN)
 * and their volumes: base images and seed ISOs uploaded through a libvirt stream (so tuapd
 * needs no write access to the pool directories), and qcow2 overlays backed by a base image.
 * Volume names carry a content hash (virt_vol_name), so a volume of that name either holds
 * those bytes or is the remnant of an interrupted upload, which its size gives away.
 */
#include "virt_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libvirt/virterror.h>

#include "fsutil.h"

#define UPLOAD_CHUNK (1024 * 1024)

/* ---- pools ---- */

static char *pool_xml(const char *name, const char *dir, struct tuap_err *err)
{
	struct xw x;

	xw_open(&x);
	xw_start(&x, "pool");
	xw_attr(&x, "type", "dir");
	xw_elem(&x, "name", name);
	xw_start(&x, "target");
	xw_elem(&x, "path", dir);
	xw_end(&x);
	xw_end(&x);
	return xw_finish(&x, "storage pool", err);
}

static int pool_check_existing(virStoragePoolPtr pool, const char *name, const char *dir,
			       struct tuap_err *err)
{
	char *xml = virStoragePoolGetXMLDesc(pool, 0);
	int rc;

	if (!xml)
		return virt_fail(err, "cannot read the definition of storage pool %s", name);
	rc = virtdef_pool_check(xml, strlen(xml), name, dir, err);
	free(xml);
	return rc;
}

int virt_pool_ensure(struct virt *v, const char *name, const char *dir_path, struct tuap_err *err)
{
	virStoragePoolPtr pool = NULL;
	char *xml = NULL;
	int rc = -1, autostart = 0, active;

	if (!virt_name_ok(name))
		return err_set(err, "'%s' is not a valid storage pool name", name);
	if (dir_path[0] != '/')
		return err_set(err, "storage pool %s: '%s' is not an absolute path", name,
			       dir_path);
	pool = virStoragePoolLookupByName(v->conn, name);
	if (!pool && !virt_last_error_is(VIR_ERR_NO_STORAGE_POOL)) {
		virt_fail(err, "cannot look up storage pool %s", name);
		goto out;
	}
	if (pool && pool_check_existing(pool, name, dir_path, err) < 0)
		goto out;
	if (!pool) {
		xml = pool_xml(name, dir_path, err);
		if (!xml)
			goto out;
		pool = virStoragePoolDefineXML(v->conn, xml, 0);
		if (!pool) {
			virt_fail(err, "cannot define storage pool %s at %s", name, dir_path);
			goto out;
		}
	}
	active = virStoragePoolIsActive(pool);
	if (active < 0) {
		virt_fail(err, "cannot query storage pool %s", name);
		goto out;
	}
	/* Building a dir pool creates its directory; an existing directory is kept as is. */
	if (!active && virStoragePoolBuild(pool, 0) < 0) {
		virt_fail(err, "cannot create the directory %s of storage pool %s", dir_path, name);
		goto out;
	}
	if (!active && virStoragePoolCreate(pool, 0) < 0) {
		virt_fail(err, "cannot start storage pool %s", name);
		goto out;
	}
	if (virStoragePoolGetAutostart(pool, &autostart) < 0 ||
	    (!autostart && virStoragePoolSetAutostart(pool, 1) < 0)) {
		virt_fail(err, "cannot set storage pool %s to autostart", name);
		goto out;
	}
	rc = 0;
out:
	free(xml);
	if (pool)
		virStoragePoolFree(pool);
	return rc;
}

static int pool_delete_volumes(virStoragePoolPtr pool, const char *name, struct tuap_err *err)
{
	virStorageVolPtr *vols = NULL;
	int n, rc = 0;

	if (virStoragePoolRefresh(pool, 0) < 0)
		return virt_fail(err, "cannot refresh storage pool %s", name);
	n = virStoragePoolListAllVolumes(pool, &vols, 0);
	if (n < 0)
		return virt_fail(err, "cannot list the volumes of storage pool %s", name);
	for (int i = 0; i < n; i++) {
		if (rc == 0 && virStorageVolDelete(vols[i], 0) < 0)
			rc = virt_fail(err, "cannot delete volume %s of storage pool %s",
				       virStorageVolGetName(vols[i]), name);
		virStorageVolFree(vols[i]);
	}
	free(vols);
	return rc;
}

int virt_pool_delete(struct virt *v, const char *name, struct tuap_err *err)
{
	virStoragePoolPtr pool = virStoragePoolLookupByName(v->conn, name);
	int rc = -1, active;

	if (!pool) {
		if (virt_last_error_is(VIR_ERR_NO_STORAGE_POOL))
			return 0;
		return virt_fail(err, "cannot look up storage pool %s", name);
	}
	active = virStoragePoolIsActive(pool);
	if (active == 0 && virStoragePoolCreate(pool, 0) == 0)
		active = 1;
	if (active == 1 && pool_delete_volumes(pool, name, err) < 0)
		goto out;
	if (active == 1 && virStoragePoolDestroy(pool) < 0) {
		virt_fail(err, "cannot stop storage pool %s", name);
		goto out;
	}
	/* Removes the (now empty) directory. When the pool could not even be started, its
	 * directory is gone or unusable and there is nothing to remove. */
	if (active == 1 && virStoragePoolDelete(pool, 0) < 0) {
		virt_fail(err, "cannot remove the directory of storage pool %s", name);
		goto out;
	}
	virResetLastError();
	if (virStoragePoolUndefine(pool) < 0) {
		virt_fail(err, "cannot undefine storage pool %s", name);
		goto out;
	}
	rc = 0;
out:
	virStoragePoolFree(pool);
	return rc;
}

/* ---- volumes ---- */

static virStoragePoolPtr pool_get(struct virt *v, const char *name, struct tuap_err *err)
{
	virStoragePoolPtr p = virStoragePoolLookupByName(v->conn, name);

	if (!p)
		virt_fail(err, "cannot find storage pool %s", name);
	return p;
}

/* 1 found (*out set), 0 missing, -1 error. */
static int vol_get(virStoragePoolPtr pool, const char *pname, const char *name,
		   virStorageVolPtr *out, struct tuap_err *err)
{
	*out = virStorageVolLookupByName(pool, name);
	if (*out)
		return 1;
	if (virt_last_error_is(VIR_ERR_NO_STORAGE_VOL)) {
		virResetLastError();
		return 0;
	}
	return virt_fail(err, "cannot look up volume %s in storage pool %s", name, pname);
}

static int vol_info(virStorageVolPtr vol, struct virt_vol_info *info, struct tuap_err *err)
{
	virStorageVolInfo vi;
	char *path;

	memset(info, 0, sizeof(*info));
	if (virStorageVolGetInfoFlags(vol, &vi, VIR_STORAGE_VOL_GET_PHYSICAL) == 0) {
		info->physical = vi.allocation;
	} else if (virStorageVolGetInfo(vol, &vi) == 0) {
		/* Drivers without the physical flag (the test driver): allocation is the
		 * closest there is. */
		virResetLastError();
		info->physical = vi.allocation;
	} else {
		return virt_fail(err, "cannot read the size of volume %s",
				 virStorageVolGetName(vol));
	}
	info->capacity = vi.capacity;
	path = virStorageVolGetPath(vol);
	if (!path)
		return virt_fail(err, "cannot read the path of volume %s",
				 virStorageVolGetName(vol));
	snprintf(info->path, sizeof(info->path), "%s", path);
	free(path);
	return 0;
}

int virt_vol_lookup(struct virt *v, const char *pool, const char *name, struct virt_vol_info *info,
		    struct tuap_err *err)
{
	virStoragePoolPtr p = pool_get(v, pool, err);
	virStorageVolPtr vol = NULL;
	int rc;

	if (!p)
		return -1;
	rc = vol_get(p, pool, name, &vol, err);
	if (rc == 1 && info && vol_info(vol, info, err) < 0)
		rc = -1;
	if (vol)
		virStorageVolFree(vol);
	virStoragePoolFree(p);
	return rc;
}

int virt_vol_delete(struct virt *v, const char *pool, const char *name, struct tuap_err *err)
{
	virStoragePoolPtr p = pool_get(v, pool, err);
	virStorageVolPtr vol = NULL;
	int rc;

	if (!p)
		return -1;
	rc = vol_get(p, pool, name, &vol, err);
	if (rc == 1 && virStorageVolDelete(vol, 0) < 0)
		rc = virt_fail(err, "cannot delete volume %s of storage pool %s", name, pool);
	if (vol)
		virStorageVolFree(vol);
	virStoragePoolFree(p);
	return rc < 0 ? -1 : 0;
}

static char *vol_xml(const char *name, uint64_t capacity, const char *format, const char *backing,
		     const char *backing_format, struct tuap_err *err)
{
	struct xw x;

	xw_open(&x);
	xw_start(&x, "volume");
	xw_elem(&x, "name", name);
	xw_start(&x, "capacity");
	xw_attr(&x, "unit", "bytes");
	if (x.w && xmlTextWriterWriteFormatString(x.w, "%llu", (unsigned long long)capacity) < 0)
		x.bad = 1;
	xw_end(&x);
	if (!backing) {
		/* nothing preallocated: the upload writes every byte */
		xw_start(&x, "allocation");
		xw_attr(&x, "unit", "bytes");
		if (x.w && xmlTextWriterWriteString(x.w, BAD_CAST "0") < 0)
			x.bad = 1;
		xw_end(&x);
	}
	xw_start(&x, "target");
	xw_start(&x, "format");
	xw_attr(&x, "type", format);
	xw_end(&x);
	xw_end(&x);
	if (backing) {
		xw_start(&x, "backingStore");
		xw_elem(&x, "path", backing);
		xw_start(&x, "format");
		xw_attr(&x, "type", backing_format);
		xw_end(&x);
		xw_end(&x);
	}
	xw_end(&x);
	return xw_finish(&x, "volume", err);
}

/* Streams fd (size bytes) into vol. */
static int stream_upload(virConnectPtr conn, virStorageVolPtr vol, int fd, uint64_t size,
			 const char *src, file_progress_fn progress, void *arg,
			 struct tuap_err *err)
{
	virStreamPtr st = virStreamNew(conn, 0);
	char *chunk = malloc(UPLOAD_CHUNK);
	uint64_t done = 0;
	int rc = -1, started = 0;

	if (!st || !chunk) {
		virt_fail(err, "cannot open a stream to upload %s", src);
		goto out;
	}
	if (virStorageVolUpload(vol, st, 0, size, 0) < 0) {
		virt_fail(err, "cannot start uploading %s", src);
		goto out;
	}
	started = 1;
	if (progress)
		progress(0, size, arg);
	while (done < size) {
		ssize_t n = read(fd, chunk, UPLOAD_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err_set(err, "cannot read %s: %s", src,
				n < 0 ? strerror(errno) : "file shrank while uploading");
			goto out;
		}
		for (ssize_t off = 0; off < n;) {
			int sent = virStreamSend(st, chunk + off, (size_t)(n - off));
			if (sent < 0) {
				virt_fail(err, "cannot upload %s", src);
				goto out;
			}
			off += sent;
		}
		done += (uint64_t)n;
		if (progress && !progress(done, size, arg)) {
			err_set(err, "upload of %s %s", src, FILE_STOPPED);
			goto out;
		}
	}
	if (virStreamFinish(st) < 0) {
		virt_fail(err, "cannot finish uploading %s", src);
		goto out;
	}
	started = 0;
	rc = 0;
out:
	if (st && started)
		virStreamAbort(st);
	if (st)
		virStreamFree(st);
	free(chunk);
	return rc;
}

int virt_vol_upload(struct virt *v, const char *pool, const char *name, const char *src_path,
		    file_progress_fn progress, void *arg, struct tuap_err *err)
{
	virStoragePoolPtr p = NULL;
	virStorageVolPtr vol = NULL;
	struct virt_vol_info info;
	struct stat sb;
	char *xml = NULL;
	int rc = -1, fd = -1, created = 0;

	if (!virt_name_ok(name))
		return err_set(err, "'%s' is not a valid volume name", name);
	fd = open(src_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &sb) < 0) {
		err_set(err, "cannot open %s: %s", src_path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(sb.st_mode) || sb.st_size == 0) {
		err_set(err, "%s is not a non-empty regular file", src_path);
		goto out;
	}
	p = pool_get(v, pool, err);
	if (!p)
		goto out;
	if (virStoragePoolRefresh(p, 0) < 0) {
		virt_fail(err, "cannot refresh storage pool %s", pool);
		goto out;
	}
	switch (vol_get(p, pool, name, &vol, err)) {
	case -1:
		goto out;
	case 1:
		if (vol_info(vol, &info, err) < 0)
			goto out;
		if (info.physical == (uint64_t)sb.st_size) {
			if (progress)
				progress(info.physical, info.physical, arg);
			rc = 0;
			goto out;
		}
		if (virStorageVolDelete(vol, 0) < 0) {
			virt_fail(err, "cannot delete the incomplete volume %s", name);
			goto out;
		}
		virStorageVolFree(vol);
		vol = NULL;
	}
	/* Created empty (capacity 0, not the source's size), so the file grows only as bytes
	 * arrive: a volume whose size equals the source's was uploaded to the end, and one left
	 * by a crash or kill mid-upload is shorter and gets replaced above. */
	xml = vol_xml(name, 0, "raw", NULL, NULL, err);
	if (!xml)
		goto out;
	vol = virStorageVolCreateXML(p, xml, 0);
	if (!vol) {
		virt_fail(err, "cannot create volume %s in storage pool %s", name, pool);
		goto out;
	}
	created = 1;
	if (stream_upload(v->conn, vol, fd, (uint64_t)sb.st_size, src_path, progress, arg, err) < 0)
		goto out;
	/* The refresh makes libvirt probe the uploaded bytes, so a qcow2 shows as qcow2. */
	if (virStoragePoolRefresh(p, 0) < 0) {
		virt_fail(err, "cannot refresh storage pool %s", pool);
		goto out;
	}
	created = 0;
	rc = 0;
out:
	if (created) {
		/* A lookup again: the refresh may have replaced the object. */
		virStorageVolPtr again = virStorageVolLookupByName(p, name);
		if (again) {
			virStorageVolDelete(again, 0);
			virStorageVolFree(again);
		}
	}
	if (vol)
		virStorageVolFree(vol);
	if (p)
		virStoragePoolFree(p);
	if (fd >= 0)
		close(fd);
	free(xml);
	return rc;
}

int virt_vol_create_overlay(struct virt *v, const char *pool, const char *name,
			    const char *base_path, uint64_t size, struct tuap_err *err)
{
	virStoragePoolPtr p = NULL;
	virStorageVolPtr base = NULL, vol = NULL;
	virStorageVolInfo bi;
	char *bxml = NULL, *xml = NULL, bformat[32] = "";
	xmlDocPtr doc = NULL;
	int rc = -1;

	if (!virt_name_ok(name))
		return err_set(err, "'%s' is not a valid volume name", name);
	p = pool_get(v, pool, err);
	if (!p)
		goto out;
	switch (vol_get(p, pool, name, &vol, err)) {
	case -1:
		goto out;
	case 1:
		err_set(err, "volume %s already exists in storage pool %s", name, pool);
		goto out;
	}
	base = virStorageVolLookupByPath(v->conn, base_path);
	if (!base) {
		virt_fail(err, "base image %s is not a volume of any storage pool", base_path);
		goto out;
	}
	bxml = virStorageVolGetXMLDesc(base, 0);
	if (!bxml || virStorageVolGetInfo(base, &bi) < 0) {
		virt_fail(err, "cannot read base image volume %s", base_path);
		goto out;
	}
	doc = xr_parse(bxml, strlen(bxml), "volume", err);
	if (!doc)
		goto out;
	if (xr_str(doc, "/volume/target/format/@type", bformat, sizeof(bformat)) != 1)
		snprintf(bformat, sizeof(bformat), "raw");
	if (size < bi.capacity) {
		err_set(err,
			"disk size %llu bytes is smaller than the base image's %llu bytes (%s)",
			(unsigned long long)size, (unsigned long long)bi.capacity, base_path);
		goto out;
	}
	xml = vol_xml(name, bi.capacity, "qcow2", base_path, bformat, err);
	if (!xml)
		goto out;
	vol = virStorageVolCreateXML(p, xml, 0);
	if (!vol) {
		virt_fail(err, "cannot create overlay %s on %s in storage pool %s", name, base_path,
			  pool);
		goto out;
	}
	if (size > bi.capacity && virStorageVolResize(vol, size, 0) < 0) {
		virt_fail(err, "cannot resize overlay %s to %llu bytes", name,
			  (unsigned long long)size);
		virStorageVolDelete(vol, 0);
		goto out;
	}
	rc = 0;
out:
	xmlFreeDoc(doc);
	free(bxml);
	free(xml);
	if (vol)
		virStorageVolFree(vol);
	if (base)
		virStorageVolFree(base);
	if (p)
		virStoragePoolFree(p);
	return rc;
}

int virt_vol_name(char *out, size_t len, const char *prefix, const char *sha256_hex,
		  const char *ext, struct tuap_err *err)
{
	size_t ne = strlen(ext);

	if (!virt_name_ok(prefix) || strlen(prefix) > 128)
		return err_set(err,
			       "'%s' cannot start a volume name (use letters, digits, '.', "
			       "'_', '-', at most 128)",
			       prefix);
	if (strlen(sha256_hex) != 64 || strspn(sha256_hex, "0123456789abcdef") != 64)
		return err_set(err, "'%s' is not a lower-case hex sha256", sha256_hex);
	if (ne == 0 || ne > 8 || strspn(ext, "abcdefghijklmnopqrstuvwxyz0123456789") != ne)
		return err_set(err, "'%s' is not a volume name extension", ext);
	if ((size_t)snprintf(out, len, "%s-%.16s.%s", prefix, sha256_hex, ext) >= len)
		return err_set(err, "volume name buffer too small");
	return 0;
}

int virt_vol_read_tail(struct virt *v, const char *pool, const char *name, size_t max, char *out,
		       size_t *len, uint64_t *from, struct tuap_err *err)
{
	virStoragePoolPtr p = virStoragePoolLookupByName(v->conn, pool);
	virStorageVolPtr vol = NULL;
	virStreamPtr st = NULL;
	virStorageVolInfo info;
	unsigned long long size, off;
	int rc = -1;

	*len = 0;
	*from = 0;
	if (!p)
		return virt_last_error_is(VIR_ERR_NO_STORAGE_POOL)
			       ? 0
			       : virt_fail(err, "cannot look storage pool %s up", pool);
	/* the file grows without libvirt knowing: its size is read afresh */
	if (virStoragePoolRefresh(p, 0) < 0) {
		virt_fail(err, "cannot refresh storage pool %s", pool);
		goto out;
	}
	if (!(vol = virStorageVolLookupByName(p, name))) {
		rc = virt_last_error_is(VIR_ERR_NO_STORAGE_VOL)
			     ? 0
			     : virt_fail(err, "cannot look volume %s of %s up", name, pool);
		goto out;
	}
	if (virStorageVolGetInfo(vol, &info) < 0) {
		virt_fail(err, "cannot read volume %s of %s", name, pool);
		goto out;
	}
	size = info.capacity;
	off = size > max ? size - max : 0;
	if (size == off) {
		rc = 1;
		goto out;
	}
	if (!(st = virStreamNew(v->conn, 0)) ||
	    virStorageVolDownload(vol, st, off, size - off, 0) < 0) {
		virt_fail(err, "cannot download volume %s of %s", name, pool);
		goto out;
	}
	while (*len < max) {
		int n = virStreamRecv(st, out + *len, max - *len);

		if (n < 0) {
			virt_fail(err, "downloading volume %s of %s", name, pool);
			virStreamAbort(st);
			goto out;
		}
		if (n == 0)
			break;
		*len += (size_t)n;
	}
	if (*len < max)
		virStreamFinish(st);
	else
		virStreamAbort(st);
	*from = off;
	rc = 1;
out:
	if (st)
		virStreamFree(st);
	if (vol)
		virStorageVolFree(vol);
	virStoragePoolFree(p);
	return rc;
}
