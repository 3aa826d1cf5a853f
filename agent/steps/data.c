/*
 * The data step: data.tar.gz pulled in chunks with a credit window, appended to a spool file
 * STATE_DIR/jobs/JOB/data.tar.gz and hashed as it grows. The spool is fdatasync'd every
 * SYNC_EVERY bytes and its confirmed length recorded in data.mark ("LEN SIZE SHA256\n"), so a
 * restarted agent resumes from the confirmed length (what lies beyond it is cut off and the
 * kept part re-hashed).
 *
 * Extraction overlaps the transfer, in two threads so that gunzip and the writing of the tree
 * use two CPUs as `tar xzf` does: an inflater reads the spool right behind the receiver and
 * gunzips it (zlib) into a ring of RING_BLOCKS blocks; an extractor reads the ring and writes
 * the tree with libarchive into the staging directory
 * SITE_ROOT/DOMAIN.new-JOB (every entry checked by data_entry_check, no owners, no
 * setuid/setgid bits, libarchive's symlink and '..' guards on), then syncs it. Nothing of it is
 * visible as the site until every byte is in and the sha256 of the whole file matches: only then
 * is the staging tree swapped in (the previous SITE_ROOT/DOMAIN is renamed
 * DOMAIN.prev-TIMESTAMP, of which the newest STEP_PREV_KEEP are kept). A mismatch, a refused
 * entry or a cancel stops the extractor and removes the staging tree; a restarted agent
 * extracts again from the first byte. The threads touch only the spool (read), the staging
 * tree and their own fields (the shared ones under mu); they never emit events.
 */
#include "data.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "fsutil.h"
#include "hash.h"
#include "run.h"

#define SYNC_EVERY    (64ull << 20)
#define READ_BLOCK    (1 << 20)
#define RING_BLOCKS   4 /* gunzipped blocks between the inflater and the extractor */
#define RING_BLOCK    (1 << 20)
#define PROGRESS_MS   250
#define PENDING_MAX   (2 * STEP_DATA_WINDOW)
#define DEFAULT_CHUNK (256u << 10) /* bytes per ChunkRequest when tuapd names no chunk size */
/* Free space kept on the site's filesystem beyond each file written (for make, logs and the
 * system itself): a file that would leave less fails the step before it is written. */
#define FREE_RESERVE (32ull << 20)

/* ------------------------------------------------------------------------------------------ */
/* The entry rule */

static int fail_why(char *why, size_t len, const char *msg)
{
	snprintf(why, len, "%s", msg);
	return -1;
}

/* Counts path's components; -1 when one is '..' or the path is absolute or empty. */
static int plain_depth(const char *p)
{
	int depth = 0;

	if (!p || !*p || *p == '/')
		return -1;
	while (*p) {
		size_t n = strcspn(p, "/");

		if (n == 2 && p[0] == '.' && p[1] == '.')
			return -1;
		if (n > 0 && !(n == 1 && p[0] == '.'))
			depth++;
		p += n;
		while (*p == '/')
			p++;
	}
	return depth;
}

int data_entry_check(const char *path, enum tar_entry_type type, const char *link, char *why,
		     size_t len)
{
	const char *p = link;

	if (tar_entry_check(path, type, link, why, len) < 0)
		return -1;
	if (type != TAR_SYMLINK)
		return 0;
	/* tarball_check follows the archive's own symlinks to see where a target ends up; one
	 * entry at a time, the agent cannot: '..' only as leading components, and no further up
	 * than the link's own directory (tar_entry_check made sure of that) */
	for (;;) {
		while (p[0] == '.' && p[1] == '/')
			p += 2;
		while (*p == '/')
			p++;
		if (p[0] == '.' && p[1] == '.' && (p[2] == '/' || p[2] == '\0')) {
			p += 2;
			continue;
		}
		break;
	}
	if (*p && strcmp(p, ".") != 0 && plain_depth(p) < 0)
		return fail_why(why, len, "symlink with '..' after a name");
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* The run */

struct piece {
	uint64_t off;
	size_t len;
	unsigned char *data;
};

/* RECEIVING: chunks arrive and the extractor reads behind them; EXTRACTING: every byte is in
 * and the sha256 matched, the extractor is finishing. */
enum phase { RECEIVING, EXTRACTING };

struct data_run {
	/* the receiver: the main thread only */
	enum phase phase;
	uint64_t size;
	char want_hex[SHA256_HEX_LEN];
	char spool[PATH_MAX], mark[PATH_MAX];
	int fd;
	uint64_t have, synced, asked_end, fill_end;
	uint32_t chunk; /* bytes per ChunkRequest: the controller's chunk size */
	struct sha256 h;
	struct piece *pend;
	size_t n_pend, pend_bytes;
	uint64_t last_progress_ms;
	char site[PATH_MAX], staging[PATH_MAX];
	bool staged;	 /* staging exists and is ours to remove */
	bool th_running; /* the extractor was created and not yet joined */
	bool extracted;	 /* it was joined after extracting the whole archive */
	int wake[2];	 /* it writes a byte to wake[1] as it ends */
	pthread_t th;

	/* shared: under mu */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_cond_t cv_out;
	uint64_t avail;	   /* spool bytes the inflater may read (the receiver's have) */
	uint64_t consumed; /* spool bytes it has read */
	bool stop;	   /* the extractor (and so the inflater) is to give up */
	bool inflate_stop; /* the extractor is done with the inflater */
	unsigned char *ring[RING_BLOCKS]; /* gunzipped blocks from the inflater to the extractor */
	size_t ring_len[RING_BLOCKS];
	unsigned ring_head, ring_count; /* the oldest block and how many are full */
	bool ring_held;			/* libarchive has ring_head (given back on its next read) */
	bool ring_end; /* the inflater has put its last block; inflate_rc says how */
	int inflate_rc;
	char inflate_err[300];

	/* the extractor's own until joined (rfd and rbuf: its inflater's) */
	pthread_t inflate_th;
	struct archive *ar, *aw;
	int rfd;
	unsigned char *rbuf;
	uint64_t entries, bytes_out;
	char cur[TAR_SHOWN_MAX + 8]; /* the entry being written, as shown to the operator */
	int rc; /* how it ended (with th_err): written before its byte to wake[1] */
	char th_err[600];
	uint64_t written_ms, synced_ms; /* when the tree was written, and synced */
	uint64_t started_ms;		/* when the step began (main thread) */
};

static void remove_tree(const char *path);

static int write_mark(struct data_run *d, uint64_t len, struct tuap_err *err)
{
	char text[128];
	int n = snprintf(text, sizeof(text), "%" PRIu64 " %" PRIu64 " %s\n", len, d->size,
			 d->want_hex);

	return fs_write_atomic(d->mark, text, (size_t)n, 0600, err);
}

/* Makes what is written durable and records its length. */
static int confirm(struct data_run *d, struct tuap_err *err)
{
	if (d->synced == d->have)
		return 0;
	if (fdatasync(d->fd) < 0)
		return err_set(err, "%s: fsync: %s", d->spool, strerror(errno));
	if (write_mark(d, d->have, err) < 0)
		return -1;
	d->synced = d->have;
	return 0;
}

/* Bytes of data.tar.gz the extractor has read: the step's progress (it never runs ahead of
 * what is received). */
static uint64_t consumed(struct data_run *d)
{
	uint64_t n;

	pthread_mutex_lock(&d->mu);
	n = d->consumed;
	pthread_mutex_unlock(&d->mu);
	return n;
}

static void progress(struct step_run *r, struct data_run *d, const char *msg, bool force)
{
	uint64_t now = run_now_ms();

	if (!force && now < d->last_progress_ms + PROGRESS_MS)
		return;
	d->last_progress_ms = now;
	run_progress(r, consumed(d), d->size, msg);
}

/* Lets the extractor read what is stored. */
static void publish(struct data_run *d)
{
	pthread_mutex_lock(&d->mu);
	d->avail = d->have;
	pthread_cond_signal(&d->cv);
	pthread_mutex_unlock(&d->mu);
}

/* Stops the extractor, when it runs, and waits for it. */
static void stop_extractor(struct data_run *d)
{
	if (!d->th_running)
		return;
	pthread_mutex_lock(&d->mu);
	d->stop = true;
	pthread_cond_broadcast(&d->cv);
	pthread_cond_broadcast(&d->cv_out);
	pthread_mutex_unlock(&d->mu);
	pthread_join(d->th, NULL);
	d->th_running = false;
}

static void fail(struct step_run *r, const char *fmt, ...) TUAP_PRINTF(2, 3);

static void fail(struct step_run *r, const char *fmt, ...)
{
	struct data_run *d = r->priv;
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	stop_extractor(d);
	if (d->staged) {
		remove_tree(d->staging);
		d->staged = false;
	}
	run_finish(r, TUAP__STEP_STATE__STATE_FAILED, true, -1, "%s", msg);
}

/* Rehashes the spool's first len bytes (resume). */
static int rehash(struct data_run *d, uint64_t len, struct tuap_err *err)
{
	unsigned char *buf = malloc(READ_BLOCK);
	uint64_t off = 0;
	int rc = -1;

	if (!buf)
		return err_set(err, "out of memory");
	while (off < len) {
		size_t want = len - off < READ_BLOCK ? (size_t)(len - off) : READ_BLOCK;
		ssize_t n = pread(d->fd, buf, want, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err_set(err, "%s: read: %s", d->spool, n < 0 ? strerror(errno) : "short");
			goto out;
		}
		sha256_update(&d->h, buf, (size_t)n);
		off += (uint64_t)n;
	}
	rc = 0;
out:
	free(buf);
	return rc;
}

/* The confirmed length of an earlier spool of the same data, or 0. */
static uint64_t resume_length(struct data_run *d)
{
	char *text = fs_read_file(d->mark, 256, NULL, NULL), hex[SHA256_HEX_LEN + 1];
	unsigned long long len = 0, size = 0;
	struct stat st;

	if (!text)
		return 0;
	if (sscanf(text, "%llu %llu %65s", &len, &size, hex) != 3 || size != d->size ||
	    strcmp(hex, d->want_hex) != 0 || len > size)
		len = 0;
	free(text);
	if (fstat(d->fd, &st) < 0 || (uint64_t)st.st_size < len)
		return 0;
	return len;
}

/* Every byte is there: check the hash; the tree is put in place once the extractor is done. */
static void received_all(struct step_run *r, struct data_run *d)
{
	char got[SHA256_HEX_LEN];
	struct tuap_err err;

	sha256_final_hex(&d->h, got);
	if (strcmp(got, d->want_hex) != 0) {
		unlink(d->spool);
		unlink(d->mark);
		fail(r, "data.tar.gz: sha256 %s, expected %s; nothing was put in place", got,
		     d->want_hex);
		return;
	}
	if (confirm(d, &err) < 0) {
		fail(r, "%s", err.msg);
		return;
	}
	d->phase = EXTRACTING;
	progress(r, d, "received, sha256 verified", true);
	run_log(r, "data.tar.gz: %" PRIu64 " bytes, sha256 %s verified", d->size, got);
}

static int append(struct step_run *r, struct data_run *d, const unsigned char *p, size_t len,
		  struct tuap_err *err)
{
	while (len > 0) {
		ssize_t n = pwrite(d->fd, p, len, (off_t)d->have);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return err_set(err, "%s: write: %s", d->spool,
				       n < 0 ? strerror(errno) : "short");
		sha256_update(&d->h, p, (size_t)n);
		d->have += (uint64_t)n;
		p += n;
		len -= (size_t)n;
	}
	if (d->have - d->synced >= SYNC_EVERY)
		return confirm(d, err);
	return 0;
}

/* Writes held pieces that now join what is stored. */
static int join_pending(struct step_run *r, struct data_run *d, struct tuap_err *err)
{
	bool again = true;

	while (again) {
		again = false;
		for (size_t i = 0; i < d->n_pend; i++) {
			struct piece pc = d->pend[i];

			if (pc.off > d->have)
				continue;
			d->pend[i] = d->pend[--d->n_pend];
			d->pend_bytes -= pc.len;
			if (pc.off + pc.len > d->have &&
			    append(r, d, pc.data + (d->have - pc.off),
				   (size_t)(pc.off + pc.len - d->have), err) < 0) {
				free(pc.data);
				return -1;
			}
			free(pc.data);
			again = true;
			break;
		}
	}
	return 0;
}

static void hold(struct data_run *d, uint64_t off, const void *data, size_t len)
{
	struct piece *v;
	unsigned char *copy;

	for (size_t i = 0; i < d->n_pend; i++)
		if (d->pend[i].off == off && d->pend[i].len >= len)
			return; /* a repeat */
	if (d->pend_bytes + len > PENDING_MAX || !(copy = malloc(len)))
		return; /* asked for again after a rewind */
	v = realloc(d->pend, (d->n_pend + 1) * sizeof(*v));
	if (!v) {
		free(copy);
		return;
	}
	memcpy(copy, data, len);
	d->pend = v;
	d->pend[d->n_pend++] = (struct piece){off, len, copy};
	d->pend_bytes += len;
}

int step_data_chunk(struct step_run *r, uint64_t off, const void *data, size_t len,
		    struct tuap_err *err)
{
	struct data_run *d = r->priv;
	const unsigned char *p = data;

	if (r->step != TUAP__STEP__STEP_DATA)
		return err_set(err, "job %s: no data step is waiting for chunks", r->job);
	if (d && (off > d->size || len > d->size - off))
		return err_set(err,
			       "job %s: chunk at %" PRIu64
			       " of %zu bytes is beyond the size %" PRIu64,
			       r->job, off, len, d->size);
	if (r->finished || !d || d->phase != RECEIVING)
		return 0; /* a late repeat of a chunk already received */
	if (off + len <= d->have || len == 0)
		return 0; /* a repeat of what is stored */
	if (off > d->have) {
		if (off < d->have + STEP_DATA_WINDOW)
			hold(d, off, data, len);
		return 0;
	}
	if (append(r, d, p + (d->have - off), (size_t)(off + len - d->have), err) < 0 ||
	    join_pending(r, d, err) < 0) {
		char msg[600];

		snprintf(msg, sizeof(msg), "%s", err->msg);
		fail(r, "%s", msg);
		return 0;
	}
	publish(d);
	if (d->have == d->size)
		received_all(r, d);
	else
		progress(r, d, "receiving", false);
	run_flush(r);
	return 0;
}

int step_data_want(struct step_run *r, uint64_t *offset, uint32_t *credit)
{
	struct data_run *d = r->priv;
	uint64_t end;

	if (r->step != TUAP__STEP__STEP_DATA || r->finished || !d || d->phase != RECEIVING)
		return 0;
	if (d->asked_end < d->have)
		d->asked_end = d->have;
	/* once no more than half the window is outstanding, ask up to a window ahead again, one
	 * chunk per request: the controller caps what a single request gets */
	if (d->asked_end - d->have <= STEP_DATA_WINDOW / 2) {
		end = d->have + STEP_DATA_WINDOW < d->size ? d->have + STEP_DATA_WINDOW : d->size;
		if (end > d->fill_end)
			d->fill_end = end;
	}
	if (d->asked_end >= d->fill_end)
		return 0;
	*offset = d->asked_end;
	*credit = d->fill_end - d->asked_end < d->chunk ? (uint32_t)(d->fill_end - d->asked_end)
							: d->chunk;
	d->asked_end += *credit;
	return 1;
}

void step_data_rewind(struct step_run *r)
{
	struct data_run *d = r->priv;

	if (r->step == TUAP__STEP__STEP_DATA && d)
		d->asked_end = d->fill_end = d->have;
}

/* ------------------------------------------------------------------------------------------ */
/* The extractor: a thread that reads the spool as it grows (waiting for the receiver when it
 * catches up) and writes the tree into the staging directory, then syncs it. */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void remove_tree(const char *path)
{
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

/* True when the inflater is to give up (under mu). */
static bool halted(const struct data_run *d)
{
	return d->stop || d->inflate_stop;
}

/* The inflater's input: the next stored bytes of the spool, waiting for them; 0 at the end, -1
 * when told to stop or on a read error (why filled). */
static ssize_t spool_next(struct data_run *d, const unsigned char **buf, char *why, size_t len)
{
	uint64_t off, avail;
	size_t want;
	ssize_t n;

	pthread_mutex_lock(&d->mu);
	off = d->consumed;
	while (!halted(d) && off < d->size && d->avail <= off)
		pthread_cond_wait(&d->cv, &d->mu);
	avail = d->avail;
	if (halted(d)) {
		pthread_mutex_unlock(&d->mu);
		return fail_why(why, len, "extraction stopped");
	}
	pthread_mutex_unlock(&d->mu);
	if (off >= d->size)
		return 0;
	want = avail - off < READ_BLOCK ? (size_t)(avail - off) : READ_BLOCK;
	do
		n = pread(d->rfd, d->rbuf, want, (off_t)off);
	while (n < 0 && errno == EINTR);
	if (n <= 0) {
		snprintf(why, len, "the spooled data.tar.gz: read: %s",
			 n < 0 ? strerror(errno) : "short");
		return -1;
	}
	pthread_mutex_lock(&d->mu);
	d->consumed = off + (uint64_t)n;
	pthread_mutex_unlock(&d->mu);
	*buf = d->rbuf;
	return n;
}

/* The inflater's next free ring block, waiting for one; -1 when told to stop. */
static int ring_space(struct data_run *d)
{
	int idx = -1;

	pthread_mutex_lock(&d->mu);
	while (!halted(d) && d->ring_count == RING_BLOCKS)
		pthread_cond_wait(&d->cv, &d->mu);
	if (!halted(d))
		idx = (int)((d->ring_head + d->ring_count) % RING_BLOCKS);
	pthread_mutex_unlock(&d->mu);
	return idx;
}

static void ring_put(struct data_run *d, int idx, size_t len)
{
	pthread_mutex_lock(&d->mu);
	d->ring_len[idx] = len;
	d->ring_count++;
	pthread_cond_signal(&d->cv_out);
	pthread_mutex_unlock(&d->mu);
}

/* Gunzips the spool into the ring as it grows, gzip members one after another; what follows the
 * last member and is not gzip is ignored, as gzip(1) does. A file that is not gzip at all is
 * passed through as it is (a plain tar, which tuap-ctl validate also accepts). */
static int inflate_all(struct data_run *d, char *why, size_t len)
{
	const unsigned char *in = NULL;
	bool gz, member_done = false, in_end = false;
	size_t fill = 0;
	ssize_t n;
	int idx = -1, rc = -1;
	z_stream z;

	memset(&z, 0, sizeof(z));
	if ((n = spool_next(d, &in, why, len)) < 0)
		return -1;
	gz = n >= 2 && in[0] == 0x1f && in[1] == 0x8b;
	if (gz && inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
		return fail_why(why, len, "gzip: cannot initialise zlib");
	z.next_in = (unsigned char *)in;
	z.avail_in = (unsigned)n;
	in_end = n == 0;
	while (!in_end || fill > 0) {
		if (z.avail_in == 0 && !in_end) {
			if ((n = spool_next(d, &in, why, len)) < 0)
				goto out;
			z.next_in = (unsigned char *)in;
			z.avail_in = (unsigned)n;
			in_end = n == 0;
		}
		if (idx < 0 && (idx = ring_space(d)) < 0) {
			fail_why(why, len, "extraction stopped");
			goto out;
		}
		if (!gz) {
			size_t k = RING_BLOCK - fill < z.avail_in ? RING_BLOCK - fill : z.avail_in;

			memcpy(d->ring[idx] + fill, z.next_in, k);
			fill += k;
			z.next_in += k;
			z.avail_in -= (unsigned)k;
		} else if (z.avail_in > 0) {
			int ret;

			z.next_out = d->ring[idx] + fill;
			z.avail_out = (unsigned)(RING_BLOCK - fill);
			ret = inflate(&z, Z_NO_FLUSH);
			fill = RING_BLOCK - z.avail_out;
			if (ret == Z_STREAM_END) {
				member_done = true;
				inflateReset(&z);
			} else if (ret == Z_DATA_ERROR && member_done) {
				z.avail_in = 0; /* trailing bytes after the last member */
				in_end = true;
			} else if (ret != Z_OK) {
				snprintf(why, len, "gzip: %s", z.msg ? z.msg : "corrupt data");
				goto out;
			} else if (z.total_out > 0) {
				member_done = false; /* inside a further member */
			}
		}
		if (in_end && gz && !member_done) {
			fail_why(why, len, "gzip: unexpected end of data");
			goto out;
		}
		if (fill == RING_BLOCK || (in_end && z.avail_in == 0)) {
			if (fill > 0)
				ring_put(d, idx, fill);
			idx = -1;
			fill = 0;
		}
		if (in_end && z.avail_in == 0 && fill == 0)
			break;
	}
	rc = 0;
out:
	if (gz)
		inflateEnd(&z);
	return rc;
}

static void *inflater(void *arg)
{
	struct data_run *d = arg;
	char why[sizeof(d->inflate_err)];
	int rc = inflate_all(d, why, sizeof(why));

	pthread_mutex_lock(&d->mu);
	d->ring_end = true;
	d->inflate_rc = rc;
	snprintf(d->inflate_err, sizeof(d->inflate_err), "%s", rc < 0 ? why : "");
	pthread_cond_signal(&d->cv_out);
	pthread_mutex_unlock(&d->mu);
	return NULL;
}

/* libarchive's read callback: the next block of the ring (the one it had is given back). */
static la_ssize_t ring_read(struct archive *a, void *ctx, const void **buf)
{
	struct data_run *d = ctx;
	la_ssize_t n = 0;

	pthread_mutex_lock(&d->mu);
	if (d->ring_held) {
		d->ring_head = (d->ring_head + 1) % RING_BLOCKS;
		d->ring_count--;
		d->ring_held = false;
		pthread_cond_signal(&d->cv);
	}
	while (!d->stop && d->ring_count == 0 && !d->ring_end)
		pthread_cond_wait(&d->cv_out, &d->mu);
	if (d->stop) {
		archive_set_error(a, ECANCELED, "extraction stopped");
		n = -1;
	} else if (d->ring_count > 0) {
		d->ring_held = true;
		*buf = d->ring[d->ring_head];
		n = (la_ssize_t)d->ring_len[d->ring_head];
	} else if (d->inflate_rc < 0) {
		archive_set_error(a, EIO, "%s", d->inflate_err);
		n = -1;
	}
	pthread_mutex_unlock(&d->mu);
	return n;
}

/* Whether the site's filesystem can take a file of size bytes and keep FREE_RESERVE free:
 * the step fails with the figures before anything of it is written (a full disk must never
 * become a truncated file under a "data done"). */
static int room_for(struct data_run *d, const char *name, la_int64_t size, struct tuap_err *err)
{
	struct statvfs vfs;
	uint64_t free_bytes, need = size > 0 ? (uint64_t)size : 0;
	char show[TAR_SHOWN_MAX + 8];

	if (statvfs(d->staging, &vfs) < 0)
		return err_set(err, "%s: statvfs: %s", d->staging, strerror(errno));
	free_bytes = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	if (free_bytes >= need && free_bytes - need >= FREE_RESERVE)
		return 0;
	return err_set(err,
		       "data.tar.gz: no room for '%s' (%" PRIu64 " bytes): %" PRIu64
		       " bytes free on %s after %" PRIu64 " bytes unpacked, and %llu MiB are kept "
		       "free; the site's tree was not changed",
		       tar_shown(name, show, sizeof(show)), need, free_bytes, d->site, d->bytes_out,
		       FREE_RESERVE >> 20);
}

/* What libarchive's writer said, with the system's reason when it left one out ("Can't create
 * 'x'" says nothing of ENOSPC), and what to do about a full disk. */
static const char *write_why(struct archive *aw, char *buf, size_t len)
{
	const char *msg = archive_error_string(aw) ? archive_error_string(aw) : "write failed";
	int e = archive_errno(aw);

	if (e > 0 && !strstr(msg, strerror(e)))
		snprintf(buf, len, "%s: %s", msg, strerror(e));
	else
		snprintf(buf, len, "%s", msg);
	if (e == ENOSPC || e == EDQUOT) {
		size_t n = strlen(buf);

		snprintf(buf + n, len - n,
			 " (the site's disk is full, in bytes or inodes: make room, then "
			 "'tuap-ctl provision --resume')");
	}
	return buf;
}

/* Checks and writes one header; 1 when the entry is the tree's root (skipped). */
static int next_header(struct data_run *d, struct archive_entry *e, struct tuap_err *err)
{
	enum tar_entry_type type = tar_entry_type_of(e);
	const char *pn = archive_entry_pathname(e), *ln = NULL;
	char why[128], full[PATH_MAX * 2], name[TARBALL_MAX_PATH], link[TARBALL_MAX_PATH] = "";
	char show[TAR_SHOWN_MAX + 8];
	int ret;

	if (type == TAR_SYMLINK)
		ln = archive_entry_symlink(e);
	else if (type == TAR_HARDLINK)
		ln = archive_entry_hardlink(e);
	/* checked before the copies below, which would cut a longer name to a shorter, other one */
	if ((pn && strlen(pn) >= sizeof(name)) || (ln && strlen(ln) >= sizeof(link)))
		return err_set(err, "data.tar.gz: entry '%s': %s longer than %d bytes",
			       tar_shown(pn ? pn : "", show, sizeof(show)),
			       pn && strlen(pn) >= sizeof(name) ? "name" : "link target",
			       TARBALL_MAX_PATH - 1);
	/* copies: the entry's strings change when the paths are rewritten below */
	snprintf(name, sizeof(name), "%s", pn ? pn : "");
	if (ln)
		snprintf(link, sizeof(link), "%s", ln);
	if (data_entry_check(name, type, ln ? link : NULL, why, sizeof(why)) < 0)
		return err_set(err, "data.tar.gz: entry '%s': %s",
			       tar_shown(name, show, sizeof(show)), why);
	if (plain_depth(name) == 0)
		return 1; /* "./" */
	tar_shown(name, d->cur, sizeof(d->cur));
	snprintf(full, sizeof(full), "%s/%s", d->staging, name);
	archive_entry_copy_pathname(e, full);
	if (type == TAR_HARDLINK) {
		snprintf(full, sizeof(full), "%s/%s", d->staging, link);
		archive_entry_copy_hardlink(e, full);
	}
	archive_entry_set_perm(e, archive_entry_perm(e) & ~(mode_t)(S_ISUID | S_ISGID));
	archive_entry_set_uid(e, 0);
	archive_entry_set_gid(e, 0);
	if (type == TAR_FILE && room_for(d, name, archive_entry_size(e), err) < 0)
		return -1;
	ret = archive_write_header(d->aw, e);
	if (ret != ARCHIVE_OK) { /* a warning too: the entry is not what the tarball says */
		char wb[512];

		return err_set(err, "data.tar.gz: entry '%s': %s",
			       tar_shown(name, show, sizeof(show)),
			       write_why(d->aw, wb, sizeof(wb)));
	}
	d->entries++;
	return 0;
}

static int copy_data(struct data_run *d, struct tuap_err *err)
{
	char why[512];

	for (;;) {
		const void *buf;
		size_t len;
		la_int64_t off;
		int ret = archive_read_data_block(d->ar, &buf, &len, &off);

		if (ret == ARCHIVE_EOF)
			break;
		if (ret < ARCHIVE_WARN)
			return err_set(err, "data.tar.gz: %s", archive_error_string(d->ar));
		/* libarchive reports a failed write(2) (ENOSPC, EFBIG, EIO) as ARCHIVE_WARN */
		if (archive_write_data_block(d->aw, buf, len, off) != ARCHIVE_OK)
			return err_set(err, "data.tar.gz: writing '%s': %s", d->cur,
				       write_why(d->aw, why, sizeof(why)));
		d->bytes_out += len;
	}
	if (archive_write_finish_entry(d->aw) != ARCHIVE_OK)
		return err_set(err, "data.tar.gz: writing '%s': %s", d->cur,
			       write_why(d->aw, why, sizeof(why)));
	return 0;
}

/* Extracts the whole archive into the staging tree and makes it durable. */
static int extract_all(struct data_run *d, struct tuap_err *err)
{
	struct archive_entry *e;
	int ret, fd;

	if (archive_read_open(d->ar, d, NULL, ring_read, NULL) != ARCHIVE_OK)
		return err_set(err, "data.tar.gz: %s", archive_error_string(d->ar));
	while ((ret = archive_read_next_header(d->ar, &e)) != ARCHIVE_EOF) {
		if (ret < ARCHIVE_WARN)
			return err_set(err, "data.tar.gz: %s", archive_error_string(d->ar));
		ret = next_header(d, e, err);
		if (ret < 0 || (ret == 0 && copy_data(d, err) < 0))
			return -1;
	}
	if (archive_write_close(d->aw) != ARCHIVE_OK) {
		char why[512];

		return err_set(err, "%s: %s", d->staging, write_why(d->aw, why, sizeof(why)));
	}
	d->written_ms = run_now_ms();
	fd = open(d->staging, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || syncfs(fd) < 0) {
		err_set(err, "%s: sync: %s", d->staging, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	d->synced_ms = run_now_ms();
	return 0;
}

static void *extractor(void *arg)
{
	struct data_run *d = arg;
	struct tuap_err err;
	int rc;

	memset(&err, 0, sizeof(err));
	rc = pthread_create(&d->inflate_th, NULL, inflater, d);
	if (rc != 0) {
		err_set(&err, "cannot start the inflater: %s", strerror(rc));
		rc = -1;
	} else {
		rc = extract_all(d, &err);
		/* the archive may end before the file does: the inflater is not needed any more */
		pthread_mutex_lock(&d->mu);
		d->inflate_stop = true;
		pthread_cond_broadcast(&d->cv);
		pthread_mutex_unlock(&d->mu);
		pthread_join(d->inflate_th, NULL);
	}
	d->rc = rc;
	snprintf(d->th_err, sizeof(d->th_err), "%s", rc < 0 ? err.msg : "");
	while (write(d->wake[1], "x", 1) < 0 && errno == EINTR)
		;
	return NULL;
}

/* Makes the staging tree and starts the extractor on the spool. */
static int start_extract(struct step_run *r, struct data_run *d, struct tuap_err *err)
{
	char real[PATH_MAX];
	int flags = ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_SECURE_SYMLINKS |
		    ARCHIVE_EXTRACT_SECURE_NODOTDOT;
	sigset_t all, old;
	int rc;

	if (fs_mkdir_p(r->env.site_root, 0755, err) < 0)
		return -1;
	/* libarchive refuses to write through any symlink on the path, the site root's too */
	if (!realpath(r->env.site_root, real))
		return err_set(err, "%s: %s", r->env.site_root, strerror(errno));
	if ((size_t)snprintf(d->site, sizeof(d->site), "%s/%s", real, r->domain) >=
		    sizeof(d->site) ||
	    (size_t)snprintf(d->staging, sizeof(d->staging), "%s/%s.new-%s", real, r->domain,
			     r->job) >= sizeof(d->staging))
		return err_set(err, "%s: path too long", real);
	remove_tree(d->staging); /* a half extraction of an earlier agent */
	if (mkdir(d->staging, 0755) < 0)
		return err_set(err, "%s: %s", d->staging, strerror(errno));
	d->staged = true;
	d->rfd = open(d->spool, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (d->rfd < 0)
		return err_set(err, "%s: %s", d->spool, strerror(errno));
	if (pipe2(d->wake, O_CLOEXEC | O_NONBLOCK) < 0)
		return err_set(err, "pipe: %s", strerror(errno));
	d->rbuf = malloc(READ_BLOCK);
	for (int i = 0; i < RING_BLOCKS; i++)
		if (!(d->ring[i] = malloc(RING_BLOCK)))
			return err_set(err, "out of memory");
	d->ar = archive_read_new();
	d->aw = archive_write_disk_new();
	if (!d->rbuf || !d->ar || !d->aw)
		return err_set(err, "out of memory");
	archive_read_support_filter_none(d->ar); /* the inflater gunzips */
	archive_read_support_format_tar(d->ar);
	archive_write_disk_set_options(d->aw, flags);
	/* signals are for the main loop */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&d->th, NULL, extractor, d);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0)
		return err_set(err, "cannot start the extractor: %s", strerror(rc));
	d->th_running = true;
	run_log(r, "extracting into %s as the data arrives", d->staging);
	return 0;
}

/* Joins the extractor once it has ended (its byte is in wake[0]; the join makes rc and
 * th_err visible): 0 when it ended well (or still runs), -1 with err. */
static int reap_extractor(struct data_run *d, struct tuap_err *err)
{
	char c;

	if (!d->th_running || read(d->wake[0], &c, 1) != 1)
		return 0;
	pthread_join(d->th, NULL);
	d->th_running = false;
	if (d->rc < 0)
		return err_set(err, "%s", d->th_err);
	d->extracted = true;
	return 0;
}

static void prune_prev(struct step_run *r, struct data_run *d)
{
	char dir[PATH_MAX], prefix[PATH_MAX], *names[64], path[PATH_MAX * 2];
	size_t n = 0, plen;
	struct dirent *de;
	DIR *dh;

	snprintf(dir, sizeof(dir), "%s", d->site);
	*strrchr(dir, '/') = '\0';
	plen = (size_t)snprintf(prefix, sizeof(prefix), "%s.prev-", r->domain);
	if (!(dh = opendir(dir)))
		return;
	while ((de = readdir(dh)) && n < 64)
		if (strncmp(de->d_name, prefix, plen) == 0 && (names[n] = strdup(de->d_name)))
			n++;
	closedir(dh);
	/* the names end in a UTC timestamp: sorted by name is sorted by age */
	for (size_t i = 1; i < n; i++)
		for (size_t k = i; k > 0 && strcmp(names[k - 1], names[k]) > 0; k--) {
			char *t = names[k];
			names[k] = names[k - 1];
			names[k - 1] = t;
		}
	for (size_t i = 0; i + STEP_PREV_KEEP < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		remove_tree(path);
		run_log(r, "removed %s (the newest %d previous trees are kept)", path,
			STEP_PREV_KEEP);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
}

/* The staging tree is complete and durable: put it in place. */
static int swap_in(struct step_run *r, struct data_run *d, struct tuap_err *err)
{
	char prev[PATH_MAX + 64], stamp[32];
	time_t now = time(NULL);
	struct tm tm;

	if (fs_exists(d->site)) {
		gmtime_r(&now, &tm);
		strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
		snprintf(prev, sizeof(prev), "%s.prev-%s", d->site, stamp);
		for (int i = 2; fs_exists(prev) && i < 100; i++)
			snprintf(prev, sizeof(prev), "%s.prev-%s-%02d", d->site, stamp, i);
		if (rename(d->site, prev) < 0)
			return err_set(err, "rename %s to %s: %s", d->site, prev, strerror(errno));
		run_log(r, "previous tree kept as %s", prev);
	}
	if (rename(d->staging, d->site) < 0)
		return err_set(err, "rename %s to %s: %s", d->staging, d->site, strerror(errno));
	d->staged = false;
	if (fs_sync_parent(d->site, err) < 0)
		return -1;
	prune_prev(r, d);
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* step_ops */

static size_t data_pollfds(struct step_run *r, struct pollfd *fds, size_t max)
{
	struct data_run *d = r->priv;

	if (!d->th_running || max == 0)
		return 0;
	fds[0] = (struct pollfd){.fd = d->wake[0], .events = POLLIN};
	return 1;
}

static int data_timeout(const struct step_run *r)
{
	const struct data_run *d = r->priv;
	uint64_t now = run_now_ms();
	int t = -1;

	if (d->phase == EXTRACTING) {
		if (d->extracted)
			return 0;
		t = PROGRESS_MS;
	}
	if (r->deadline_ms) {
		int left = r->deadline_ms > now ? (int)(r->deadline_ms - now) : 0;

		if (t < 0 || left < t)
			t = left;
	}
	return t;
}

static void data_service(struct step_run *r)
{
	struct data_run *d = r->priv;
	struct tuap_err err;

	if (r->finished)
		return;
	if (r->deadline_ms && run_now_ms() >= r->deadline_ms) {
		fail(r, "deadline of %us passed", r->deadline_s);
		return;
	}
	if (reap_extractor(d, &err) < 0) {
		fail(r, "%s", err.msg);
		return;
	}
	if (d->phase != EXTRACTING)
		return;
	if (!d->extracted) {
		progress(r, d, "extracting", false);
		return;
	}
	run_log(r, "tree written %.1fs after the step began, then synced in %.1fs",
		(double)(d->written_ms - d->started_ms) / 1000,
		(double)(d->synced_ms - d->written_ms) / 1000);
	if (swap_in(r, d, &err) < 0) {
		fail(r, "%s", err.msg);
		return;
	}
	unlink(d->spool);
	unlink(d->mark);
	run_progress(r, d->size, d->size, "extracted");
	run_finish(r, TUAP__STEP_STATE__STATE_DONE, true, 0,
		   "%" PRIu64 " entries, %" PRIu64 " bytes in %s", d->entries, d->bytes_out,
		   d->site);
}

static void data_cancel(struct step_run *r, const char *reason)
{
	fail(r, "cancelled: %s", reason);
}

static void data_free(struct step_run *r)
{
	struct data_run *d = r->priv;
	struct tuap_err err;

	if (!d)
		return;
	stop_extractor(d);
	if (d->fd >= 0) {
		if (d->phase == RECEIVING && !r->finished)
			confirm(d, &err); /* so a restarted agent resumes from here */
		close(d->fd);
	}
	if (d->ar)
		archive_read_free(d->ar);
	if (d->aw)
		archive_write_free(d->aw);
	if (d->staged)
		remove_tree(d->staging);
	for (int i = 0; i < 2; i++)
		if (d->wake[i] >= 0)
			close(d->wake[i]);
	if (d->rfd >= 0)
		close(d->rfd);
	free(d->rbuf);
	for (int i = 0; i < RING_BLOCKS; i++)
		free(d->ring[i]);
	sha256_free(&d->h);
	for (size_t i = 0; i < d->n_pend; i++)
		free(d->pend[i].data);
	free(d->pend);
	pthread_cond_destroy(&d->cv);
	pthread_cond_destroy(&d->cv_out);
	pthread_mutex_destroy(&d->mu);
	free(d);
}

static const struct step_ops data_ops = {
	data_pollfds, data_timeout, data_service, data_cancel, data_free,
};

int data_start(struct step_run *r, const Tuap__DataArgs *a, struct tuap_err *err)
{
	char dir[PATH_MAX];
	struct data_run *d;
	struct statvfs vfs;
	uint64_t len;

	if (a->sha256.len != 32)
		return err_at(err, NULL, 0, "sha256", "%zu bytes; a sha256 has 32", a->sha256.len);
	if (a->size == 0)
		return err_at(err, NULL, 0, "size", "data.tar.gz is empty");
	if (!(d = calloc(1, sizeof(*d))))
		return err_set(err, "out of memory");
	d->fd = d->rfd = d->wake[0] = d->wake[1] = -1;
	pthread_mutex_init(&d->mu, NULL);
	pthread_cond_init(&d->cv, NULL);
	pthread_cond_init(&d->cv_out, NULL);
	r->priv = d;
	r->ops = &data_ops;
	d->started_ms = run_now_ms();
	d->size = a->size;
	d->chunk = a->has_chunk_size && a->chunk_size > 0 ? a->chunk_size : DEFAULT_CHUNK;
	if (d->chunk > STEP_DATA_WINDOW)
		d->chunk = STEP_DATA_WINDOW;
	sha256_digest_hex(a->sha256.data, d->want_hex);
	if (run_job_dir(r, dir, sizeof(dir), true, err) < 0)
		return -1;
	if ((size_t)snprintf(d->spool, sizeof(d->spool), "%s/data.tar.gz", dir) >=
		    sizeof(d->spool) ||
	    (size_t)snprintf(d->mark, sizeof(d->mark), "%s/data.mark", dir) >= sizeof(d->mark))
		return err_set(err, "%s: path too long", dir);
	d->fd = open(d->spool, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (d->fd < 0)
		return err_set(err, "%s: %s", d->spool, strerror(errno));
	if (sha256_init(&d->h) < 0)
		return err_set(err, "sha256: cannot initialise");
	len = resume_length(d);
	if (ftruncate(d->fd, (off_t)len) < 0)
		return err_set(err, "%s: truncate: %s", d->spool, strerror(errno));
	if (len > 0 && rehash(d, len, err) < 0)
		return -1;
	d->have = d->synced = d->asked_end = d->fill_end = d->avail = len;
	if (fstatvfs(d->fd, &vfs) == 0 && (uint64_t)vfs.f_bavail * vfs.f_frsize < d->size - len)
		return err_set(err, "%s: %" PRIu64 " bytes needed, %" PRIu64 " free", dir,
			       d->size - len, (uint64_t)vfs.f_bavail * vfs.f_frsize);
	if (len > 0)
		run_log(r, "resuming data.tar.gz at byte %" PRIu64 " of %" PRIu64, len, d->size);
	if (start_extract(r, d, err) < 0)
		return -1;
	progress(r, d, "receiving", true);
	if (len == d->size)
		received_all(r, d);
	return 0;
}
