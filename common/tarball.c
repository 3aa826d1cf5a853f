/*
 * data.tar.gz checks. tar_entry_check is the per-entry rule (pure, shared with the agent's
 * extraction). tarball_check walks the headers with libarchive without extracting anything and
 * adds what a single entry cannot show: an entry written through a symlink the archive made
 * earlier, and symlinks that escape the tree only when other symlinks of the archive are
 * followed (`d -> .` then `e -> d/x/../..`). The sha256 is computed over the same bytes
 * libarchive reads, so the hash names exactly what was checked.
 */
#include "tarball.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "hash.h"

#define TARBALL_MAX_SYMLINKS 100000
#define SYMLINK_MAX_HOPS     40
#define RESOLVE_BUDGET	     (64 << 20) /* bytes of targets walked, over all symlinks */

/* ---- the entry rule ---- */

/* Calls fn for each component of s that is not empty and not ".". Stops when fn returns
 * non-zero and returns that. */
static int each_component(const char *s, int (*fn)(const char *c, size_t n, void *arg), void *arg)
{
	while (*s) {
		size_t n = strcspn(s, "/");
		int r;

		if (n && !(n == 1 && s[0] == '.') && (r = fn(s, n, arg)) != 0)
			return r;
		s += n;
		while (*s == '/')
			s++;
	}
	return 0;
}

static int is_dotdot(const char *c, size_t n, void *arg)
{
	return n == 2 && c[0] == '.' && c[1] == '.';
}

static int count_one(const char *c, size_t n, void *arg)
{
	(*(long *)arg)++;
	return 0;
}

/* Walks a symlink target from depth (components above it); 1 when it climbs out. */
static int climb(const char *c, size_t n, void *arg)
{
	long *depth = arg;

	if (is_dotdot(c, n, NULL))
		return --*depth < 0;
	++*depth;
	return 0;
}

const char *tar_shown(const char *s, char *buf, size_t len)
{
	size_t o = 0, i;

	for (i = 0; i < TAR_SHOWN_MAX && s[i] && o + 4 < len; i++)
		buf[o++] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
	snprintf(buf + o, len - o, "%s", s[i] ? "..." : "");
	return buf;
}

static bool has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

int tar_entry_check(const char *path, enum tar_entry_type type, const char *link, char *why,
		    size_t len)
{
	char b[TAR_SHOWN_MAX + 8];
	long depth = 0;

	if (!path || !*path)
		return snprintf(why, len, "empty name"), -1;
	if (strlen(path) > TARBALL_MAX_PATH)
		return snprintf(why, len, "name longer than %d bytes", TARBALL_MAX_PATH), -1;
	if (path[0] == '/')
		return snprintf(why, len, "absolute path"), -1;
	if (each_component(path, is_dotdot, NULL))
		return snprintf(why, len, "'..' component"), -1;
	if (has_control(path))
		return snprintf(why, len, "control character in name"), -1;
	if (link && has_control(link))
		return snprintf(why, len, "control character in link target"), -1;
	each_component(path, count_one, &depth);
	if (depth == 0 && type != TAR_DIR)
		return snprintf(why, len, "names the top directory but is not a directory"), -1;
	switch (type) {
	case TAR_FILE:
	case TAR_DIR:
		return 0;
	case TAR_OTHER:
		return snprintf(why, len, "device, fifo or socket"), -1;
	case TAR_SYMLINK:
		if (!link || !*link)
			return snprintf(why, len, "symlink with an empty target"), -1;
		if (strlen(link) > TARBALL_MAX_PATH)
			return snprintf(why, len, "symlink target longer than %d bytes",
					TARBALL_MAX_PATH),
			       -1;
		if (link[0] == '/')
			return snprintf(why, len, "symlink to absolute path '%s'",
					tar_shown(link, b, sizeof(b))),
			       -1;
		depth--; /* the link's directory */
		if (each_component(link, climb, &depth))
			return snprintf(why, len, "symlink escapes the tree ('%s')",
					tar_shown(link, b, sizeof(b))),
			       -1;
		return 0;
	case TAR_HARDLINK:
		if (!link || !*link)
			return snprintf(why, len, "hardlink with an empty target"), -1;
		if (strlen(link) > TARBALL_MAX_PATH)
			return snprintf(why, len, "hardlink target longer than %d bytes",
					TARBALL_MAX_PATH),
			       -1;
		if (link[0] == '/')
			return snprintf(why, len, "hardlink to absolute path '%s'",
					tar_shown(link, b, sizeof(b))),
			       -1;
		if (each_component(link, is_dotdot, NULL))
			return snprintf(why, len, "hardlink target has a '..' component ('%s')",
					tar_shown(link, b, sizeof(b))),
			       -1;
		depth = 0;
		each_component(link, count_one, &depth);
		if (depth == 0)
			return snprintf(why, len, "hardlink to the top directory"), -1;
		return 0;
	}
	return snprintf(why, len, "unknown entry type"), -1;
}

/* ---- the archive's symlinks: normalized path -> target, in archive order ---- */

struct link {
	uint64_t hash;
	bool refused; /* its own target was refused (and reported) already */
	char *path;   /* normalized: "a/b", no "." or empty components */
	size_t len;
	char *target;
};

struct links {
	struct link *v; /* in archive order */
	size_t n, cap;
	size_t *slots; /* open addressing: index into v plus one, 0 = empty */
	size_t nslots; /* a power of two, at least twice n */
};

#define HASH_INIT 14695981039346656037ULL

static uint64_t hash_step(uint64_t h, unsigned char ch)
{
	return (h ^ ch) * 1099511628211ULL; /* FNV-1a */
}

static uint64_t hash_of(const char *p, size_t n)
{
	uint64_t h = HASH_INIT;

	for (size_t i = 0; i < n; i++)
		h = hash_step(h, (unsigned char)p[i]);
	return h;
}

static struct link *links_find(const struct links *l, uint64_t h, const char *p, size_t n)
{
	if (!l->n)
		return NULL;
	for (size_t i = h & (l->nslots - 1);; i = (i + 1) & (l->nslots - 1)) {
		struct link *e;

		if (!l->slots[i])
			return NULL;
		e = &l->v[l->slots[i] - 1];
		if (e->hash == h && e->len == n && memcmp(e->path, p, n) == 0)
			return e;
	}
}

static void slot_insert(size_t *slots, size_t nslots, uint64_t h, size_t index)
{
	size_t i;

	for (i = h & (nslots - 1); slots[i]; i = (i + 1) & (nslots - 1))
		;
	slots[i] = index + 1;
}

static int links_grow(struct links *l)
{
	size_t cap = l->cap ? l->cap * 2 : 32, nslots = cap * 2;
	struct link *v = realloc(l->v, cap * sizeof(*v));
	size_t *slots;

	if (!v)
		return -1;
	l->v = v;
	if (!(slots = calloc(nslots, sizeof(*slots))))
		return -1;
	for (size_t i = 0; i < l->n; i++)
		slot_insert(slots, nslots, l->v[i].hash, i);
	free(l->slots);
	l->slots = slots;
	l->nslots = nslots;
	l->cap = cap;
	return 0;
}

/* Records path -> target; a later entry of the same name replaces the target. Returns the
 * record, NULL when out of memory. */
static struct link *links_put(struct links *l, const char *p, const char *target)
{
	size_t n = strlen(p);
	uint64_t h = hash_of(p, n);
	struct link *e = links_find(l, h, p, n);
	char *t = strdup(target);

	if (!t)
		return NULL;
	if (e) {
		free(e->target);
		e->target = t;
		return e;
	}
	if (l->n == l->cap && links_grow(l) < 0) {
		free(t);
		return NULL;
	}
	e = &l->v[l->n];
	if (!(e->path = strdup(p))) {
		free(t);
		return NULL;
	}
	e->hash = h;
	e->refused = false;
	e->len = n;
	e->target = t;
	slot_insert(l->slots, l->nslots, h, l->n++);
	return e;
}

static void links_free(struct links *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].path);
		free(l->v[i].target);
	}
	free(l->v);
	free(l->slots);
	memset(l, 0, sizeof(*l));
}

/* Writes the normalized form of p into out (at most len bytes); -1 if it does not fit. */
static int normalize(const char *p, char *out, size_t len)
{
	size_t o = 0;

	while (*p) {
		size_t n = strcspn(p, "/");

		if (n && !(n == 1 && p[0] == '.')) {
			if (o + (o > 0) + n + 1 > len)
				return -1;
			if (o)
				out[o++] = '/';
			memcpy(out + o, p, n);
			o += n;
		}
		p += n;
		while (*p == '/')
			p++;
	}
	out[o] = '\0';
	return 0;
}

/* The longest proper prefix of a normalized path that is a recorded symlink, or NULL. */
static const struct link *through_link(const struct links *l, const char *norm)
{
	uint64_t h = HASH_INIT;

	if (!l->n)
		return NULL;
	for (size_t i = 0; norm[i]; i++) {
		const struct link *e;

		if (norm[i] == '/' && (e = links_find(l, h, norm, i)))
			return e;
		h = hash_step(h, (unsigned char)norm[i]);
	}
	return NULL;
}

/* Resolution state, allocated once per archive: the resolved prefix with the end and hash of
 * each of its components (so a lookup costs O(1) more per component), the rest of the target
 * still to walk, and a work budget over the whole archive. */
struct resolver {
	char cur[2 * TARBALL_MAX_PATH + 2];
	size_t clen, depth;
	size_t ends[TARBALL_MAX_PATH + 2];
	uint64_t hashes[TARBALL_MAX_PATH + 2];
	char rest[(SYMLINK_MAX_HOPS + 1) * (TARBALL_MAX_PATH + 1) + 2];
	uint64_t budget;
};

enum { RESOLVED, ESCAPES, LOOPS, TOO_COMPLEX };

static int push(struct resolver *r, const char *c, size_t n)
{
	uint64_t h = r->depth ? hash_step(r->hashes[r->depth - 1], '/') : HASH_INIT;

	if (r->clen + 1 + n > 2 * TARBALL_MAX_PATH || r->depth >= TARBALL_MAX_PATH + 1)
		return -1;
	if (r->depth)
		r->cur[r->clen++] = '/';
	for (size_t i = 0; i < n; i++)
		h = hash_step(h, (unsigned char)c[i]);
	memcpy(r->cur + r->clen, c, n);
	r->clen += n;
	r->ends[r->depth] = r->clen;
	r->hashes[r->depth++] = h;
	return 0;
}

static void pop(struct resolver *r)
{
	r->depth--;
	r->clen = r->depth ? r->ends[r->depth - 1] : 0;
}

/* Resolves a symlink's target following the archive's other symlinks, purely on the archive's
 * names (nothing on disk is looked at). */
static int resolve(struct resolver *r, const struct links *l, const struct link *start)
{
	const char *dir = start->path;
	char *p;

	r->clen = r->depth = 0;
	/* start from the link's directory */
	for (size_t n; (n = strcspn(dir, "/")) && dir[n] == '/'; dir += n + 1)
		if (push(r, dir, n) < 0)
			return LOOPS;
	snprintf(r->rest, TARBALL_MAX_PATH + 2, "%s", start->target);
	p = r->rest;
	for (size_t hops = 0; *p;) {
		size_t n = strcspn(p, "/");
		const struct link *e;
		const char *c = p;

		p += n + (p[n] == '/');
		if (r->budget < n + 1)
			return TOO_COMPLEX;
		r->budget -= n + 1;
		if (n == 0 || (n == 1 && c[0] == '.'))
			continue;
		if (n == 2 && c[0] == '.' && c[1] == '.') {
			if (!r->depth)
				return ESCAPES;
			pop(r);
			continue;
		}
		if (push(r, c, n) < 0)
			return LOOPS;
		if (!(e = links_find(l, r->hashes[r->depth - 1], r->cur, r->clen)))
			continue;
		/* a symlink of the archive: go on with its target, from its directory */
		pop(r);
		if (++hops > SYMLINK_MAX_HOPS)
			return LOOPS;
		if (e->target[0] == '/')
			return ESCAPES;
		{
			size_t tl = strlen(e->target), rl = strlen(p);

			memmove(r->rest + tl + 1, p, rl + 1);
			memcpy(r->rest, e->target, tl);
			r->rest[tl] = '/';
			p = r->rest;
		}
	}
	return RESOLVED;
}

/* ---- walking the archive ---- */

struct walk {
	const char *path;
	struct diags *d;
	struct tarball_info *info;
	struct links links;
};

enum tar_entry_type tar_entry_type_of(struct archive_entry *e)
{
	if (archive_entry_hardlink(e))
		return TAR_HARDLINK;
	switch (archive_entry_filetype(e)) {
	case AE_IFREG:
		return TAR_FILE;
	case AE_IFDIR:
		return TAR_DIR;
	case AE_IFLNK:
		return TAR_SYMLINK;
	default:
		return TAR_OTHER;
	}
}

static const char *other_kind(struct archive_entry *e)
{
	switch (archive_entry_filetype(e)) {
	case AE_IFCHR:
		return "character device";
	case AE_IFBLK:
		return "block device";
	case AE_IFIFO:
		return "fifo";
	case AE_IFSOCK:
		return "socket";
	default:
		return "unknown file type";
	}
}

static void entry_error(struct walk *w, const char *name, const char *why)
{
	char b[TAR_SHOWN_MAX + 8];

	diag_error(w->d, w->path, 0, "", "entry '%s': %s", tar_shown(name, b, sizeof(b)), why);
}

static bool is_makefile(const char *norm)
{
	return strcmp(norm, "Makefile") == 0 || strcmp(norm, "makefile") == 0 ||
	       strcmp(norm, "GNUmakefile") == 0;
}

static int remember(struct walk *w, const char *name, char *norm, size_t normlen,
		    const char *target, bool refused)
{
	struct link *e;

	if (w->links.n >= TARBALL_MAX_SYMLINKS) {
		diag_error(w->d, w->path, 0, "", "more than %d symlinks", TARBALL_MAX_SYMLINKS);
		return -1;
	}
	if (normalize(name, norm, normlen) < 0 || !(e = links_put(&w->links, norm, target))) {
		diag_error(w->d, w->path, 0, "", "out of memory");
		return -1;
	}
	e->refused = refused;
	return 0;
}

/* Checks one header; 0 to go on, -1 to stop (out of memory, too many symlinks). */
static int check_entry(struct walk *w, struct archive_entry *e, char *norm, size_t normlen)
{
	const char *name = archive_entry_pathname(e);
	enum tar_entry_type type = tar_entry_type_of(e);
	const char *link = type == TAR_HARDLINK	 ? archive_entry_hardlink(e)
			   : type == TAR_SYMLINK ? archive_entry_symlink(e)
						 : NULL;
	const struct link *via;
	char why[512], b[TAR_SHOWN_MAX + 8];

	if (!name)
		name = "";
	if (tar_entry_check(name, type, link, why, sizeof(why)) < 0) {
		entry_error(w, name, type == TAR_OTHER ? other_kind(e) : why);
		/* A refused symlink with a sound name is still remembered, so that an entry
		 * written through it is refused as well. */
		if (type == TAR_SYMLINK && link &&
		    tar_entry_check(name, TAR_DIR, NULL, why, 8) == 0)
			return remember(w, name, norm, normlen, link, true);
		return 0;
	}
	if (normalize(name, norm, normlen) < 0)
		return 0; /* cannot happen: the name is at most TARBALL_MAX_PATH */
	if ((via = through_link(&w->links, norm))) {
		snprintf(why, sizeof(why), "path goes through symlink '%s' of the archive",
			 tar_shown(via->path, b, sizeof(b)));
		entry_error(w, name, why);
		return 0;
	}
	if (type == TAR_HARDLINK) {
		char *t = malloc(TARBALL_MAX_PATH + 1);

		if (!t) {
			diag_error(w->d, w->path, 0, "", "out of memory");
			return -1;
		}
		normalize(link, t, TARBALL_MAX_PATH + 1);
		if ((via = through_link(&w->links, t))) {
			snprintf(why, sizeof(why),
				 "hardlink target goes through symlink '%s' of the archive",
				 tar_shown(via->path, b, sizeof(b)));
			entry_error(w, name, why);
		}
		free(t);
	}
	if (type == TAR_SYMLINK && remember(w, name, norm, normlen, link, false) < 0)
		return -1;
	if (type == TAR_FILE) {
		la_int64_t size = archive_entry_size(e);
		uint64_t sum = w->info->total_bytes + (uint64_t)(size > 0 ? size : 0);

		w->info->total_bytes = sum < w->info->total_bytes ? UINT64_MAX : sum;
	}
	if (type != TAR_DIR && type != TAR_OTHER && is_makefile(norm))
		w->info->has_makefile = true;
	return 0;
}

/* After the walk: every symlink, resolved through the archive's other symlinks. */
static void check_chains(struct walk *w)
{
	char b[TAR_SHOWN_MAX + 8], why[512];
	struct resolver *r;

	if (!w->links.n)
		return;
	if (!(r = malloc(sizeof(*r)))) {
		diag_error(w->d, w->path, 0, "", "out of memory");
		return;
	}
	r->budget = RESOLVE_BUDGET;
	for (size_t i = 0; i < w->links.n; i++) {
		const struct link *e = &w->links.v[i];
		int res;

		if (e->refused || (res = resolve(r, &w->links, e)) == RESOLVED)
			continue;
		if (res == TOO_COMPLEX) {
			diag_error(w->d, w->path, 0, "",
				   "symlinks too many or too long to check (%d steps)",
				   RESOLVE_BUDGET);
			break;
		}
		snprintf(why, sizeof(why), "%s ('%s')",
			 res == ESCAPES
				 ? "symlink escapes the tree through other symlinks of the archive"
				 : "symlink chain too long or looping",
			 tar_shown(e->target, b, sizeof(b)));
		entry_error(w, e->path, why);
	}
	free(r);
}

/* gzip: whether the file is gzip, and why: what went wrong below libarchive, both known only
 * once reading has started (the struct source below). */
static int walk_archive(struct archive *a, const char *path, const bool *gzip, const char *why,
			struct tarball_info *info, struct diags *d)
{
	struct walk w = {.path = path, .d = d, .info = info};
	struct archive_entry *e;
	char *norm = malloc(TARBALL_MAX_PATH + 1);
	size_t errors = d->errors;
	bool complete = false, read_error = false;

	if (!norm) {
		diag_error(d, path, 0, "", "out of memory");
		return -1;
	}
	for (;;) {
		int r = archive_read_next_header(a, &e);

		if (r == ARCHIVE_EOF) {
			complete = true;
			break;
		}
		if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
			diag_error(d, path, 0, "", "cannot read: %s",
				   why[0]		     ? why
				   : archive_error_string(a) ? archive_error_string(a)
							     : "unknown libarchive error");
			read_error = true;
			break;
		}
		if (!*gzip)
			break;
		if (++info->entries > TARBALL_MAX_ENTRIES) {
			diag_error(d, path, 0, "", "more than %d entries", TARBALL_MAX_ENTRIES);
			break;
		}
		if (check_entry(&w, e, norm, TARBALL_MAX_PATH + 1) < 0)
			break;
	}
	if (!read_error && !*gzip) {
		diag_error(d, path, 0, "",
			   "not gzip-compressed (data.tar.gz is a tar archive "
			   "compressed with gzip: tar -czf)");
		complete = false;
	}
	if (complete)
		check_chains(&w);
	if (complete && !info->has_makefile)
		diag_error(d, path, 0, "",
			   "no top-level Makefile (make's default target sets the site up)");
	links_free(&w.links);
	free(norm);
	return d->errors == errors ? 0 : -1;
}

static struct archive *reader_new(void)
{
	struct archive *a = archive_read_new();

	if (!a)
		return NULL;
	if (archive_read_support_format_tar(a) != ARCHIVE_OK ||
	    archive_read_support_format_gnutar(a) != ARCHIVE_OK) {
		archive_read_free(a);
		return NULL;
	}
	return a;
}

static void info_start(struct tarball_info *info, const char *path)
{
	memset(info, 0, sizeof(*info));
	info->present = true;
	snprintf(info->path, sizeof(info->path), "%s", path);
}

/*
 * The file as libarchive reads it: gunzipped here with zlib, not by libarchive's gzip filter,
 * which does not check the gzip trailer (a damaged archive whose deflate stream still decodes
 * would pass). zlib checks every member's CRC-32 and length; members follow one another and
 * what follows the last one and is not gzip is ignored, as gzip(1) and the agent do. A file
 * that is not gzip goes to libarchive as it is (and walk_archive refuses it). The raw bytes are
 * hashed on the way, so the sha256 names exactly what was checked.
 */
struct source {
	int fd; /* or -1: mem */
	const unsigned char *mem;
	size_t mem_len, mem_off;
	struct sha256 h;
	uint64_t size;
	z_stream z;
	bool started, gzip, z_live, member_done, in_end, trailing;
	char why[160]; /* the error source_read gave libarchive, which may report another */
	unsigned char in[1 << 16];
	unsigned char out[1 << 16];
};

/* The next raw bytes into s->in (hashed); 0 at the end, -1 with errno. */
static ssize_t raw_next(struct source *s)
{
	ssize_t r;

	if (s->fd < 0) {
		size_t k = s->mem_len - s->mem_off < sizeof(s->in) ? s->mem_len - s->mem_off
								   : sizeof(s->in);

		memcpy(s->in, s->mem + s->mem_off, k);
		s->mem_off += k;
		r = (ssize_t)k;
	} else {
		do
			r = read(s->fd, s->in, sizeof(s->in));
		while (r < 0 && errno == EINTR);
		if (r < 0)
			return -1;
	}
	sha256_update(&s->h, s->in, (size_t)r);
	s->size += (uint64_t)r;
	return r;
}

static la_ssize_t source_fail(struct archive *a, struct source *s, const char *msg)
{
	snprintf(s->why, sizeof(s->why), "%s", msg);
	archive_set_error(a, EIO, "%s", msg);
	return -1;
}

static la_ssize_t source_read(struct archive *a, void *arg, const void **out)
{
	struct source *s = arg;
	ssize_t n;

	if (!s->started || !s->gzip || s->z.avail_in == 0) {
		if (s->in_end)
			n = 0;
		else if ((n = raw_next(s)) < 0) {
			return source_fail(a, s, strerror(errno));
		}
		s->in_end = n == 0;
		if (!s->started) {
			s->started = true;
			s->gzip = n >= 2 && s->in[0] == 0x1f && s->in[1] == 0x8b;
			if (s->gzip && inflateInit2(&s->z, 16 + MAX_WBITS) != Z_OK) {
				return source_fail(a, s, "cannot start zlib");
			}
			s->z_live = s->gzip;
		}
		if (!s->gzip) {
			*out = s->in;
			return n;
		}
		s->z.next_in = s->in;
		s->z.avail_in = (unsigned)n;
	}
	for (;;) {
		int ret;

		if (s->trailing) { /* read to the end for the hash, and drop it */
			while ((n = raw_next(s)) > 0)
				;
			if (n < 0) {
				return source_fail(a, s, strerror(errno));
			}
			s->in_end = true;
			return 0;
		}
		if (s->z.avail_in == 0) {
			if (s->in_end) {
				if (s->member_done)
					return 0;
				return source_fail(a, s, "truncated gzip input");
			}
			if ((n = raw_next(s)) < 0) {
				return source_fail(a, s, strerror(errno));
			}
			s->in_end = n == 0;
			s->z.next_in = s->in;
			s->z.avail_in = (unsigned)n;
			continue;
		}
		s->z.next_out = s->out;
		s->z.avail_out = sizeof(s->out);
		ret = inflate(&s->z, Z_NO_FLUSH);
		if (ret == Z_STREAM_END) {
			s->member_done = true;
			inflateReset(&s->z);
		} else if (ret == Z_DATA_ERROR && s->member_done) {
			s->z.avail_in = 0; /* what follows the last member */
			s->trailing = true;
		} else if (ret != Z_OK && ret != Z_BUF_ERROR) {
			char msg[128];

			snprintf(msg, sizeof(msg), "damaged gzip data: %s (the file is corrupt)",
				 s->z.msg ? s->z.msg : "inflate failed");
			return source_fail(a, s, msg);
		} else if (s->z.total_out > 0) {
			s->member_done = false; /* inside a further member */
		}
		if (s->z.avail_out < sizeof(s->out)) {
			*out = s->out;
			return (la_ssize_t)(sizeof(s->out) - s->z.avail_out);
		}
	}
}

/* Walks the archive of s, then reads what libarchive did not need (the rest of the stream up
 * to the last gzip trailer), so that every CRC is checked and every byte hashed. */
static int check_source(struct source *s, const char *path, struct tarball_info *info,
			struct diags *d)
{
	struct archive *a;
	int rc = -1;

	if (sha256_init(&s->h) < 0)
		return diag_error(d, path, 0, "", "cannot start sha256");
	if (!(a = reader_new()))
		diag_error(d, path, 0, "", "cannot start libarchive");
	else if (archive_read_open(a, s, NULL, source_read, NULL) != ARCHIVE_OK)
		diag_error(d, path, 0, "", "cannot read: %s", archive_error_string(a));
	else
		rc = walk_archive(a, path, &s->gzip, s->why, info, d);
	while (rc == 0) {
		const void *p;
		la_ssize_t r = source_read(a, s, &p);

		if (r < 0)
			rc = diag_error(d, path, 0, "", "cannot read: %s",
					s->why[0] ? s->why : archive_error_string(a));
		if (r <= 0)
			break;
	}
	sha256_final_hex(&s->h, info->sha256);
	info->file_size = s->fd < 0 ? s->mem_len : s->size;
	if (s->z_live)
		inflateEnd(&s->z);
	if (a)
		archive_read_free(a);
	return rc;
}

int tarball_check_memory(const char *name, const void *data, size_t size, struct tarball_info *info,
			 struct diags *d)
{
	struct source *s = calloc(1, sizeof(*s));
	int rc;

	info_start(info, name);
	if (!s)
		return diag_error(d, name, 0, "", "out of memory");
	s->fd = -1;
	s->mem = data;
	s->mem_len = size;
	rc = check_source(s, name, info, d);
	/* the hash is of the whole buffer, also where the walk stopped early */
	sha256_hex(data, size, info->sha256);
	free(s);
	return rc;
}

int tarball_check(const char *path, struct tarball_info *info, struct diags *d)
{
	struct source *s = calloc(1, sizeof(*s));
	struct stat st;
	int rc = -1;

	info_start(info, path);
	if (!s)
		return diag_error(d, path, 0, "", "out of memory");
	/* O_NONBLOCK: a fifo must not hang the check; it is refused below */
	if ((s->fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) < 0)
		diag_error(d, path, 0, "", "%s", strerror(errno));
	else if (fstat(s->fd, &st) < 0 || !S_ISREG(st.st_mode))
		diag_error(d, path, 0, "", "not a regular file");
	else
		rc = check_source(s, path, info, d);
	if (s->fd >= 0)
		close(s->fd);
	free(s);
	return rc;
}
