/*
 * Getting a base image's bytes: libcurl downloads into a temp file in the cache directory
 * while hashing them, and only a file whose sha256 matches the catalog is renamed into
 * place. Local images are hashed in place. Downloads are bounded in time by a connect timeout
 * and a low-speed limit (a stalled mirror fails within a minute instead of hanging tuapd's
 * image phase), in size by IMAGE_MAX_BYTES, and in protocol to http, https and file.
 * http is acceptable because the hash, not the transport, is what we trust.
 */
#include "image.h"

#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"

struct download {
	int fd;
	struct sha256 h;
	uint64_t bytes;
	int werr;     /* errno of a failed write */
	bool stopped; /* progress said stop */
	file_progress_fn progress;
	void *arg;
};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static CURLcode init_rc;

static void init(void)
{
	init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t on_data(char *p, size_t size, size_t nmemb, void *opaque)
{
	struct download *dl = opaque;
	size_t n = size * nmemb, done = 0;

	while (done < n) {
		ssize_t w = write(dl->fd, p + done, n - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			dl->werr = errno;
			return 0; /* curl aborts with CURLE_WRITE_ERROR */
		}
		done += (size_t)w;
	}
	sha256_update(&dl->h, p, n);
	dl->bytes += n;
	return n;
}

static int on_progress(void *opaque, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	struct download *dl = opaque;

	(void)ultotal;
	(void)ulnow;
	/* called about once a second even when no byte arrives: the stop is seen in time */
	if (dl->progress && !dl->progress((uint64_t)dlnow, (uint64_t)dltotal, dl->arg)) {
		dl->stopped = true;
		return 1; /* curl aborts with CURLE_ABORTED_BY_CALLBACK */
	}
	return 0;
}

static int curl_get(const char *url, struct download *dl, struct tuap_err *err)
{
	char ebuf[CURL_ERROR_SIZE] = "";
	CURL *c;
	CURLcode rc;

	pthread_once(&once, init);
	if (init_rc != CURLE_OK)
		return err_set(err, "cannot initialise libcurl: %s", curl_easy_strerror(init_rc));
	c = curl_easy_init();
	if (!c)
		return err_set(err, "cannot initialise libcurl");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https,file");
	curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
	curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)IMAGE_CONNECT_TIMEOUT);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, (long)IMAGE_LOW_SPEED);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)IMAGE_LOW_SPEED_TIME);
	curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)IMAGE_MAX_BYTES);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "tuap/" TUAP_VERSION);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, dl);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, dl);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	rc = curl_easy_perform(c);
	curl_easy_cleanup(c);
	if (dl->stopped)
		return err_set(err, "download of %s %s", url, FILE_STOPPED);
	if (rc == CURLE_WRITE_ERROR && dl->werr)
		return err_set(err, "cannot download %s: writing the cache file: %s", url,
			       strerror(dl->werr));
	if (rc != CURLE_OK)
		return err_set(err, "cannot download %s: %s", url,
			       ebuf[0] ? ebuf : curl_easy_strerror(rc));
	if (dl->progress)
		dl->progress(dl->bytes, dl->bytes, dl->arg);
	return 0;
}

/* Downloads e->url to final via a temp file in the same directory. */
static int download(const struct image_entry *e, const char *final, file_progress_fn progress,
		    void *arg, struct tuap_err *err)
{
	struct download dl = {.fd = -1, .progress = progress, .arg = arg};
	char tmp[PATH_MAX], got[SHA256_HEX_LEN];
	const char *slash = strrchr(final, '/');
	int rc = -1, hashing = 0;

	if (snprintf(tmp, sizeof(tmp), "%.*s/.%s.XXXXXX", (int)(slash - final), final, slash + 1) >=
	    (int)sizeof(tmp))
		return err_set(err, "%s: path too long", final);
	dl.fd = mkstemp(tmp);
	if (dl.fd < 0)
		return err_set(err, "cannot create a file in the image cache: %s: %s", tmp,
			       strerror(errno));
	if (sha256_init(&dl.h) < 0) {
		err_set(err, "cannot start sha256");
		goto out;
	}
	hashing = 1;
	if (curl_get(e->url, &dl, err) < 0)
		goto out;
	hashing = 0;
	sha256_final_hex(&dl.h, got);
	if (strcmp(got, e->sha256) != 0) {
		err_at(err, e->file, e->line, "sha256",
		       "the download of %s does not match the catalog: expected sha256 %s, got %s "
		       "(%llu bytes); the file was deleted. Check the URL and the sha256 in the "
		       "catalog",
		       e->url, e->sha256, got, (unsigned long long)dl.bytes);
		goto out;
	}
	if (fchmod(dl.fd, 0644) < 0 || fsync(dl.fd) < 0) {
		err_set(err, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	if (rename(tmp, final) < 0) {
		err_set(err, "cannot rename %s to %s: %s", tmp, final, strerror(errno));
		goto out;
	}
	rc = fs_sync_parent(final, err);
out:
	if (hashing)
		sha256_free(&dl.h);
	close(dl.fd);
	if (rc < 0)
		unlink(tmp);
	return rc;
}

/* 0 when path's sha256 is want, 1 when it differs (got filled), -1 on error. */
static int verify(const char *path, const char *want, char got[SHA256_HEX_LEN], uint64_t *size,
		  file_progress_fn progress, void *arg, struct tuap_err *err)
{
	if (sha256_file_hex_progress(path, got, size, progress, arg, err) < 0)
		return -1;
	return strcmp(got, want) != 0;
}

static int check_boot_files(const struct image_entry *e, struct tuap_err *err)
{
	if (e->kernel[0] && access(e->kernel, R_OK) < 0)
		return err_at(err, e->file, e->line, "kernel", "cannot read %s: %s", e->kernel,
			      strerror(errno));
	if (e->initrd[0] && access(e->initrd, R_OK) < 0)
		return err_at(err, e->file, e->line, "initrd", "cannot read %s: %s", e->initrd,
			      strerror(errno));
	return 0;
}

/* A local image, verified in place unless image_resolve hashed it just now. */
static int local_image(const struct image_entry *e, file_progress_fn progress, void *arg,
		       char *path, size_t pathlen, struct tuap_err *err)
{
	char got[SHA256_HEX_LEN];
	uint64_t size;
	struct stat st;
	int r;

	if (e->hashed) {
		if (stat(e->path, &st) < 0)
			return err_set(err, "%s: %s", e->path, strerror(errno));
		size = (uint64_t)st.st_size;
	} else {
		r = verify(e->path, e->sha256, got, &size, progress, arg, err);
		if (r < 0)
			return -1;
		if (r > 0 && e->sha256[0])
			return err_at(err, e->file, e->line, "sha256",
				      "%s does not match the catalog: expected sha256 %s, got %s",
				      e->path, e->sha256, got);
	}
	if ((size_t)snprintf(path, pathlen, "%s", e->path) >= pathlen)
		return err_set(err, "image path buffer too small");
	if (progress)
		progress(size, size, arg);
	return 0;
}

int image_fetch(const struct image_entry *e, const char *cache_dir, file_progress_fn progress,
		void *arg, char *path, size_t pathlen, struct tuap_err *err)
{
	char vol[IMAGE_NAME_MAX + 32], final[PATH_MAX], got[SHA256_HEX_LEN];
	uint64_t size = 0;
	int r;

	if (check_boot_files(e, err) < 0)
		return -1;
	if (e->path[0])
		return local_image(e, progress, arg, path, pathlen, err);
	if (!e->url[0] || strlen(e->sha256) != 64)
		return err_at(err, e->file, e->line, "sha256",
			      "image '%s' has no url or no sha256: not downloaded", e->name);
	if (image_volume_name(e, vol, sizeof(vol), err) < 0 || fs_mkdir_p(cache_dir, 0755, err) < 0)
		return -1;
	if (snprintf(final, sizeof(final), "%s/%s", cache_dir, vol) >= (int)sizeof(final))
		return err_set(err, "%s: path too long", cache_dir);
	if (fs_exists(final)) {
		r = verify(final, e->sha256, got, &size, progress, arg, err);
		if (r < 0)
			return -1;
		if (r > 0 && unlink(final) < 0) /* damaged in the cache: fetch it again */
			return err_set(err, "cannot remove %s: %s", final, strerror(errno));
		if (r == 0 && progress)
			progress(size, size, arg);
	}
	if (!fs_exists(final) && download(e, final, progress, arg, err) < 0)
		return -1;
	if ((size_t)snprintf(path, pathlen, "%s", final) >= pathlen)
		return err_set(err, "image path buffer too small");
	return 0;
}
