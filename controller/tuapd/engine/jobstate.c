/* The job engine's state: the journal, the jobs in memory, resume after a restart (job.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "domain.h"
#include "fsutil.h"
#include "hash.h"
#include "job_impl.h"
#include "journal.h"
#include "keys.h"
#include "log.h"
#include "users.h"
#include "valid.h"

/* ---- journal: STATE_DIR/domains/DOMAIN/journal ---- */

static int domain_dir(const struct engine *e, const char *domain, char *out, size_t len)
{
	return fs_path(out, len, NULL, "%s/domains/%s", e->state_dir, domain);
}

void job_journal(struct engine *e, struct job *job, const char *kind, const char *name,
		 const char *state, const char *detail)
{
	char path[PATH_MAX], ms[32];
	const char *rec[] = {kind, job->id, name, state, detail ? detail : "", ms};
	struct tuap_err err;

	snprintf(ms, sizeof(ms), "%" PRId64, engine_now_ms());
	if (!strcmp(kind, "phase")) /* every phase's start and end, with journald's fields */
		log_job(!strcmp(state, "failed") ? LOG_LVL_WARN : LOG_LVL_INFO,
			&(struct log_about){job->domain, job->id, name}, "job %s: %s %s%s%s",
			job->id, name, state, detail ? ": " : "", detail ? detail : "");
	/* durable at the loop's group commit (commit.c), before anything that follows from it is
	 * sent: a phase boundary must survive a crash of tuapd or the machine */
	if (domain_dir(e, job->domain, path, sizeof(path)) < 0 ||
	    fs_path(path, sizeof(path), &err, "%s/domains/%s/journal", e->state_dir, job->domain) <
		    0 ||
	    engine_commit_record(e, path, rec, 6, &err) < 0)
		log_job(LOG_LVL_ERROR, JOB_ABOUT(job), "journal: %s", err.msg);
}

/* ---- jobs ---- */

uint32_t engine_domain_hash(const char *domain)
{
	return (uint32_t)hash_fnv1a(domain, strlen(domain));
}

struct job *engine_running_job(struct engine *e, const char *domain)
{
	uint32_t h = engine_domain_hash(domain);

	for (struct job *j = e->jobs; j; j = j->next)
		if (j->dhash == h && j->state == JOB_RUNNING && !strcmp(j->domain, domain))
			return j;
	return NULL;
}

struct job *engine_find_job(struct engine *e, const char *domain, const char *job_id)
{
	struct job *j = engine_running_job(e, domain);

	return j && (!job_id || !strcmp(j->id, job_id)) ? j : NULL;
}

enum job_phase job_current_phase(const struct job *job)
{
	return job->phase;
}

bool job_phase_is_running(const struct job *job)
{
	return job->state == JOB_RUNNING && job->phase_running;
}

/* The newest job: the one made last (journals are replayed in order, so that holds after a
 * restart). Ids cannot tell: two jobs of one second differ only in their random suffix. */
struct job *engine_last_job(struct engine *e, const char *domain)
{
	struct job *best = NULL;
	uint32_t h = engine_domain_hash(domain);

	for (struct job *j = e->jobs; j; j = j->next)
		if (j->dhash == h && (!best || j->seq > best->seq) && !strcmp(j->domain, domain))
			best = j;
	return best;
}

struct agent_info *engine_agent(struct engine *e, const char *domain, bool create)
{
	struct agent_info *a;
	uint32_t h = engine_domain_hash(domain);

	for (a = e->agents; a; a = a->next)
		if (a->dhash == h && !strcmp(a->domain, domain))
			return a;
	if (!create || !(a = calloc(1, sizeof(*a))))
		return NULL;
	a->dhash = h;
	snprintf(a->domain, sizeof(a->domain), "%s", domain);
	a->next = e->agents;
	e->agents = a;
	return a;
}

void job_free(struct job *job)
{
	if (job->upload_fd >= 0)
		close(job->upload_fd);
	if (job->data_fd >= 0)
		close(job->data_fd);
	if (job->uploading)
		sha256_free(&job->upload_hash);
	domain_free(&job->dom);
	free(job);
}

struct job *job_alloc(struct engine *e, const char *domain, const char *id)
{
	struct job *job = calloc(1, sizeof(*job));

	if (!job)
		return NULL;
	job->upload_fd = job->data_fd = -1;
	job->seq = ++e->job_seq;
	snprintf(job->domain, sizeof(job->domain), "%s", domain);
	job->dhash = engine_domain_hash(job->domain);
	snprintf(job->id, sizeof(job->id), "%s", id);
	if (fs_path(job->dir, sizeof(job->dir), NULL, "%s/domains/%s/jobs/%s", e->state_dir, domain,
		    id) < 0) {
		free(job);
		return NULL;
	}
	job->next = e->jobs;
	e->jobs = job;
	return job;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw);

struct job_dir {
	char *id;
	bool held; /* a job tuapd holds (running, or the domain's last) */
};

/* Newest first by the id's time (YYYYMMDDTHHMMSS); within one second, held jobs first: ids of
 * one second do not tell which came last, and a held job is the newest of its domain. */
static int newest_first(const void *pa, const void *pb)
{
	const struct job_dir *a = pa, *b = pb;
	int t = -strncmp(a->id, b->id, 15);

	return t ? t : (int)b->held - (int)a->held;
}

/* The setup logs' rotation: of a domain's job directories (inputs, setup.log) the newest
 * keep_jobs stay, and in any case every job tuapd still holds (the running and the last one);
 * the older ones go. */
static void rotate_job_dirs(struct engine *e, const char *domain)
{
	unsigned keep = e->conf.keep_jobs ? e->conf.keep_jobs : 10;
	char dir[PATH_MAX], path[PATH_MAX];
	struct strlist ids = {0};
	struct job_dir *v;
	struct dirent *de;
	DIR *d;

	if (fs_path(dir, sizeof(dir), NULL, "%s/domains/%s/jobs", e->state_dir, domain) < 0 ||
	    !(d = opendir(dir)))
		return;
	while ((de = readdir(d)))
		if (valid_job_id(de->d_name, NULL, 0) == 0)
			strlist_add(&ids, de->d_name);
	closedir(d);
	if (!(v = calloc(ids.n ? ids.n : 1, sizeof(*v))))
		abort();
	for (size_t i = 0; i < ids.n; i++) {
		v[i].id = ids.v[i];
		for (struct job *j = e->jobs; j && !v[i].held; j = j->next)
			v[i].held = !strcmp(j->domain, domain) && !strcmp(j->id, ids.v[i]);
	}
	qsort(v, ids.n, sizeof(*v), newest_first);
	for (size_t i = keep; i < ids.n; i++) {
		if (v[i].held || fs_path(path, sizeof(path), NULL, "%s/%s", dir, v[i].id) < 0 ||
		    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
			continue;
		log_job(LOG_LVL_DEBUG, &(struct log_about){domain, v[i].id, NULL},
			"job %s: its directory is rotated out (keep_jobs %u)", v[i].id, keep);
	}
	free(v);
	strlist_free(&ids);
}

/* Drops finished jobs of a domain except the newest, so memory stays bounded. */
void engine_prune_jobs(struct engine *e, const char *name)
{
	char domain[DOMAIN_NAME_MAX + 1];
	struct job *keep, **pp = &e->jobs;

	snprintf(domain, sizeof(domain), "%s", name); /* name may belong to a job freed here */
	keep = engine_last_job(e, domain);
	while (*pp) {
		struct job *j = *pp;

		if (!strcmp(j->domain, domain) && j != keep && j->state != JOB_RUNNING) {
			*pp = j->next;
			job_free(j);
			continue;
		}
		pp = &j->next;
	}
	rotate_job_dirs(e, domain);
}

void job_new_id(char *out, size_t len)
{
	time_t now = time(NULL);
	struct tm tm;
	unsigned char r[3];
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);

	if (fd < 0 || read(fd, r, sizeof(r)) != (ssize_t)sizeof(r))
		memset(r, 0, sizeof(r));
	if (fd >= 0)
		close(fd);
	gmtime_r(&now, &tm);
	snprintf(out, len, "%04d%02d%02dT%02d%02d%02d-%02x%02x%02x", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, r[0], r[1], r[2]);
}

void job_created_detail(const struct job *job, char *out, size_t len)
{
	snprintf(out, len,
		 "kind=%d existing=%d rerun_make=%d rebuild=%d force_users=%d data=%s:%" PRIu64
		 " target=%s",
		 (int)job->kind, job->existing, job->rerun_make, job->rebuild, job->force_users,
		 job->has_data ? job->data_sha : "-", job->data_size, job->make_target);
}

void job_parse_created(struct job *job, const char *detail)
{
	int kind = 0, existing = 0, rerun = 0, rebuild = 0, force = 0;
	char data[80] = "-", target[256] = "";

	if (strstr(detail, " force_users="))
		sscanf(detail,
		       "kind=%d existing=%d rerun_make=%d rebuild=%d force_users=%d data=%79s "
		       "target=%255s",
		       &kind, &existing, &rerun, &rebuild, &force, data, target);
	else /* journals of tuap before --force-users */
		sscanf(detail,
		       "kind=%d existing=%d rerun_make=%d rebuild=%d data=%79s target=%255s", &kind,
		       &existing, &rerun, &rebuild, data, target);
	job->force_users = force;
	job->rebuild = rebuild;
	job->kind = (enum job_kind)kind;
	job->existing = existing;
	job->rerun_make = rerun;
	snprintf(job->make_target, sizeof(job->make_target), "%s", target);
	if (strcmp(data, "-") && strlen(data) > 65 && data[64] == ':') {
		job->has_data = true;
		memcpy(job->data_sha, data, 64);
		job->data_sha[64] = '\0';
		job->data_size = strtoull(data + 65, NULL, 10);
	}
}

void job_set_data_path(struct engine *e, struct job *job)
{
	if (job->has_data)
		fs_path(job->data_path, sizeof(job->data_path), NULL, "%s/%s/data-%s.tar.gz",
			e->pool_root, job->domain, job->data_sha);
}

/* ---- startup: replay the journals ---- */

struct replay {
	struct engine *e;
	const char *domain;
	struct job *job; /* the newest job seen so far */
	enum job_phase phase;
	bool phase_done;
};

static enum job_phase phase_by_name(const char *name)
{
	for (int i = 0; i < PH_COUNT; i++)
		if (!strcmp(job_phase_name((enum job_phase)i), name))
			return (enum job_phase)i;
	return PH_COUNT;
}

static int replay_record(void *ctx, char **f, size_t n, int lineno)
{
	struct replay *rp = ctx;

	if (n < 4)
		return 0;
	if (!strcmp(f[0], "job") && !strcmp(f[3], "created")) {
		if (rp->job && rp->job->state == JOB_RUNNING)
			rp->job->state = JOB_FAILED; /* superseded without an end record */
		rp->job = job_alloc(rp->e, rp->domain, f[1]);
		if (!rp->job)
			return -1;
		rp->job->state = JOB_RUNNING;
		job_parse_created(rp->job, n > 4 ? f[4] : "");
		if (n > 5)
			rp->job->started_ms = strtoll(f[5], NULL, 10);
		rp->phase = PH_UPLOAD;
		rp->phase_done = false;
		return 0;
	}
	if (!rp->job || strcmp(f[1], rp->job->id))
		return 0;
	if (!strcmp(f[0], "phase")) {
		enum job_phase ph = phase_by_name(f[2]);

		if (ph < PH_COUNT) {
			rp->phase = ph;
			rp->phase_done = !strcmp(f[3], "done");
		}
	} else if (!strcmp(f[0], "job")) {
		if (!strcmp(f[3], "done"))
			rp->job->state = JOB_DONE;
		else if (!strcmp(f[3], "failed"))
			rp->job->state = JOB_FAILED;
		else if (!strcmp(f[3], "resumed")) {
			rp->job->state = JOB_RUNNING;
			rp->job->rerun_make = n > 4 && strstr(f[4], "rerun_make=1");
			rp->job->force_users = n > 4 && strstr(f[4], "force_users=1");
		}
	}
	rp->job->phase = rp->phase;
	return 0;
}

static int reload_inputs(struct engine *e, struct job *job)
{
	char path[PATH_MAX];
	size_t clen = 0, ulen = 0;
	char *conf, *users = NULL;
	int rc;

	if (fs_path(path, sizeof(path), NULL, "%s/provision.conf", job->dir) < 0 ||
	    !(conf = fs_read_file(path, CONF_MAX, &clen, NULL)))
		return -1;
	if (fs_path(path, sizeof(path), NULL, "%s/users.yaml", job->dir) == 0 && fs_exists(path))
		users = fs_read_file(path, CONF_MAX, &ulen, NULL);
	rc = engine_load_inputs(e, NULL, job->domain, "provision.conf", conf, clen, "users.yaml",
				users, ulen, &job->dom);
	free(conf);
	free(users);
	return rc;
}

static void resume_domain(struct engine *e, const char *domain)
{
	char path[PATH_MAX];
	struct replay rp = {.e = e, .domain = domain};
	struct tuap_err err;
	struct job *job;

	if (fs_path(path, sizeof(path), &err, "%s/domains/%s/journal", e->state_dir, domain) < 0 ||
	    journal_replay(path, replay_record, &rp, &err) < 0) {
		log_error("%s: cannot replay the journal: %s", domain, err.msg);
		return;
	}
	engine_prune_jobs(e, domain);
	if (!(job = engine_last_job(e, domain)))
		return;
	job_set_data_path(e, job);
	if (reload_inputs(e, job) < 0) {
		log_job(LOG_LVL_ERROR, JOB_ABOUT(job),
			"job %s: its inputs in %s are unreadable; not resumed", job->id, job->dir);
		if (job->state == JOB_RUNNING)
			job->state = JOB_FAILED;
		return;
	}
	if (job->state != JOB_RUNNING)
		return;
	log_job(LOG_LVL_INFO, JOB_ABOUT(job), "resuming job %s at %s", job->id,
		job_phase_name(job->phase));
	job->resumed = true;
	if (!job->started_ms)
		job->started_ms = engine_now_ms();
	job_enter_phase(e, job, rp.phase_done ? rp.phase + 1 : rp.phase);
}

int engine_domain_ok(const char *domain, char *why, size_t len)
{
	if (valid_domain_name(domain, why, len) < 0)
		return -1;
	if (!strcmp(domain, ENGINE_SERVER_KEY)) {
		snprintf(why, len, "it names tuapd's own keys (STATE_DIR/keys/%s.*)",
			 ENGINE_SERVER_KEY);
		return -1;
	}
	return 0;
}

bool engine_enrolled(struct engine *e, const char *domain)
{
	char pub[PATH_MAX];

	return fs_path(pub, sizeof(pub), NULL, "%s/keys/%s.pub", e->state_dir, domain) == 0 &&
	       fs_exists(pub);
}

void engine_each_enrolled(struct engine *e,
			  void (*fn)(struct engine *e, const char *domain, const char *pub,
				     void *arg),
			  void *arg)
{
	char dir[PATH_MAX], path[PATH_MAX], name[DOMAIN_NAME_MAX + 8];
	struct dirent *de;
	DIR *d;

	if (fs_path(dir, sizeof(dir), NULL, "%s/keys", e->state_dir) < 0 || !(d = opendir(dir)))
		return;
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		char why[128];

		if (n < 5 || n - 4 > DOMAIN_NAME_MAX || strcmp(de->d_name + n - 4, ".pub"))
			continue;
		snprintf(name, sizeof(name), "%.*s", (int)(n - 4), de->d_name);
		if (engine_domain_ok(name, why, sizeof(why)) < 0 ||
		    fs_path(path, sizeof(path), NULL, "%s/%s", dir, de->d_name) < 0)
			continue;
		fn(e, name, path, arg);
	}
	closedir(d);
}

static void allow_one(struct engine *e, const char *domain, const char *path, void *arg)
{
	char pub[KEYS_Z85_SIZE];
	struct tuap_err err;

	if (keys_load_public(path, pub, &err) < 0) {
		log_warn("%s: %s", domain, err.msg);
		return;
	}
	e->io.agent_allow(e->io.ctx, domain, pub);
}

/* Allows every enrolled domain's agent key again (STATE_DIR/keys/DOMAIN.pub). */
static void allow_enrolled(struct engine *e)
{
	engine_each_enrolled(e, allow_one, NULL);
}

int engine_resume_all(struct engine *e, struct tuap_err *err)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *dir;

	if (fs_path(path, sizeof(path), err, "%s/domains", e->state_dir) < 0 ||
	    fs_mkdir_p(path, 0750, err) < 0)
		return -1;
	if (!(dir = opendir(path)))
		return err_set(err, "%s: %s", path, strerror(errno));
	allow_enrolled(e);
	while ((de = readdir(dir))) {
		char why[128];

		if (de->d_name[0] == '.' || valid_domain_name(de->d_name, why, sizeof(why)) < 0)
			continue;
		resume_domain(e, de->d_name);
	}
	closedir(dir);
	return 0;
}

/* ---- forgetting a domain (tuap-ctl destroy --purge) ---- */

/* One line for the operator about what was removed; removed may be NULL. */
#define said(removed, ...)                                                                         \
	do {                                                                                       \
		if (removed)                                                                       \
			strlist_addf(removed, __VA_ARGS__);                                        \
	} while (0)

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

/* What tuapd itself wrote into POOL_ROOT/DOMAIN (data tarballs, interrupted uploads); the
 * directory goes too when nothing else is left in it. */
static int forget_data(struct engine *e, const char *domain, struct strlist *v,
		       struct tuap_err *err)
{
	char dir[PATH_MAX], path[PATH_MAX];
	struct dirent *de;
	DIR *d;

	if (fs_path(dir, sizeof(dir), err, "%s/%s", e->pool_root, domain) < 0)
		return -1;
	if (!(d = opendir(dir)))
		return errno == ENOENT ? 0 : err_set(err, "%s: %s", dir, strerror(errno));
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);

		if (strncmp(de->d_name, "data-", 5) ||
		    !((len > 7 && !strcmp(de->d_name + len - 7, ".tar.gz")) ||
		      (len > 12 && !strcmp(de->d_name + len - 12, ".tar.gz.part"))))
			continue;
		if (fs_path(path, sizeof(path), NULL, "%s/%s", dir, de->d_name) < 0)
			continue;
		if (unlink(path) < 0) {
			closedir(d);
			return err_set(err, "cannot remove %s: %s", path, strerror(errno));
		}
		said(v, "removed %s", path);
	}
	closedir(d);
	if (rmdir(dir) == 0)
		said(v, "removed %s/", dir);
	return 0;
}

int engine_forget_domain(struct engine *e, const char *domain, struct strlist *removed,
			 struct tuap_err *err)
{
	char path[PATH_MAX], why[128];
	struct job **pp = &e->jobs;
	struct agent_info **ap = &e->agents;
	struct stat st;
	struct job *running = engine_running_job(e, domain);

	if (valid_domain_name(domain, why, sizeof(why)) < 0)
		return err_set(err, "'%s' is not a domain name: %s", domain, why);
	engine_commit(e); /* nothing of the domain's left to write into what is removed */
	if (running)
		return err_set(err, "%s: job %s is running (phase %s)", domain, running->id,
			       job_phase_name(running->phase));
	if (fs_path(path, sizeof(path), err, "%s/keys/%s.pub", e->state_dir, domain) < 0)
		return -1;
	if (unlink(path) == 0)
		said(removed, "removed the agent key %s", path);
	else if (errno != ENOENT)
		return err_set(err, "cannot remove %s: %s", path, strerror(errno));
	e->io.agent_allow(e->io.ctx, domain, NULL);
	if (fs_path(path, sizeof(path), err, "%s/domains/%s", e->state_dir, domain) < 0)
		return -1;
	if (lstat(path, &st) == 0) {
		if (nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
			return err_set(err, "cannot remove %s: %s", path, strerror(errno));
		said(removed, "removed the journal and job inputs %s/", path);
	}
	if (forget_data(e, domain, removed, err) < 0)
		return -1;
	while (*pp) {
		struct job *j = *pp;

		if (!strcmp(j->domain, domain)) {
			*pp = j->next;
			job_free(j);
			continue;
		}
		pp = &j->next;
	}
	while (*ap) {
		struct agent_info *a = *ap;

		if (!strcmp(a->domain, domain)) {
			*ap = a->next;
			free(a);
			continue;
		}
		ap = &a->next;
	}
	log_info("%s: forgotten (keys, journal, data)", domain);
	return 0;
}
