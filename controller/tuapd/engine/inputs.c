/* A job's inputs: provision.conf and users.yaml as tuap-ctl sent them, validated and saved
 * into the job's directory (job_impl.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
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
#include "agentconf.h"
#include "job_impl.h"
#include "journal.h"
#include "keys.h"
#include "log.h"
#include "users.h"

/* Sends the diagnostics of an invalid domain, then the final error. */
static void reply_invalid(struct engine *e, const struct ctl_peer *peer, const struct diags *d)
{
	Tuap__CtlEvent ev = TUAP__CTL_EVENT__INIT;
	Tuap__TextReply text = TUAP__TEXT_REPLY__INIT;
	char **lines = calloc(d->n ? d->n : 1, sizeof(*lines));
	char buf[1024];

	if (!lines)
		abort();
	for (size_t i = 0; i < d->n; i++) {
		err_str(&d->v[i].e, buf, sizeof(buf));
		if (asprintf(&lines[text.n_lines], "%s%s",
			     d->v[i].level == DIAG_WARNING ? "warning: " : "", buf) >= 0)
			text.n_lines++;
	}
	text.lines = lines;
	ev.ev_case = TUAP__CTL_EVENT__EV_TEXT;
	ev.text = &text;
	e->io.ctl_send(e->io.ctx, peer, &ev);
	for (size_t i = 0; i < text.n_lines; i++)
		free(lines[i]);
	free(lines);
	engine_reply_error(e, peer, TUAP__ERROR__CODE__INVALID, "%zu error%s in the domain's files",
			   d->errors, d->errors == 1 ? "" : "s");
}

/* Parses the submitted texts into dom; on errors replies and returns -1. */
int engine_load_inputs(struct engine *e, const struct ctl_peer *peer, const char *domain,
		       const char *conf_path, const char *conf, size_t conf_len,
		       const char *users_path, const char *users, size_t users_len,
		       struct domain *dom)
{
	struct diags d;
	int rc = 0;

	memset(dom, 0, sizeof(*dom));
	diags_init(&d);
	domain_conf_parse(conf_path, domain, conf, conf_len, &dom->conf, &d);
	if (users) {
		dom->has_users_file = true;
		users_parse(users_path ? users_path : "users.yaml", users, users_len, &dom->users,
			    &d);
	}
	if (d.errors) {
		if (peer)
			reply_invalid(e, peer, &d);
		else
			diags_print(&d, stderr);
		rc = -1;
	}
	diags_free(&d);
	return rc;
}

int job_make_dir(struct engine *e, struct job *job)
{
	struct tuap_err err;

	if (fs_mkdir_p(job->dir, 0750, &err) < 0) {
		log_job(LOG_LVL_ERROR, JOB_ABOUT(job), "%s", err.msg);
		return -1;
	}
	/* durable (with its entry in the domain's jobs/) before the job's first record */
	return engine_commit_file(e, job->dir);
}

int job_save_input(struct engine *e, struct job *job, const char *name, const void *data,
		   size_t len)
{
	char path[PATH_MAX];
	struct tuap_err err;

	/* synced by the loop's group commit, before the job's first record is written */
	if (fs_path(path, sizeof(path), &err, "%s/%s", job->dir, name) < 0 ||
	    fs_write_renamed(path, data, len, 0640, &err) < 0) {
		log_job(LOG_LVL_ERROR, JOB_ABOUT(job), "%s", err.msg);
		return -1;
	}
	return engine_commit_file(e, path);
}

/* name of job `from` into job `to`: a hard link (the file never changes once written, and a
 * link costs no inode and no data to sync), else a copy of data. */
static int job_link_input(struct engine *e, const struct job *from, struct job *to,
			  const char *name, const void *data, size_t len)
{
	char src[PATH_MAX], dst[PATH_MAX];

	if (fs_path(src, sizeof(src), NULL, "%s/%s", from->dir, name) == 0 &&
	    fs_path(dst, sizeof(dst), NULL, "%s/%s", to->dir, name) == 0 && link(src, dst) == 0)
		return engine_commit_file(e, dst);
	return job_save_input(e, to, name, data, len);
}

int job_copy_inputs(struct engine *e, const struct ctl_peer *peer, const struct job *from,
		    struct job *to)
{
	char path[PATH_MAX];
	struct tuap_err err;
	size_t len = 0;
	char *conf = NULL;
	int rc = -1;

	if (fs_path(path, sizeof(path), &err, "%s/provision.conf", from->dir) < 0 ||
	    !(conf = fs_read_file(path, CONF_MAX, &len, &err))) {
		engine_reply_error(e, peer, TUAP__ERROR__CODE__INTERNAL, "%s", err.msg);
		return -1;
	}
	if (job_link_input(e, from, to, "provision.conf", conf, len) == 0 &&
	    engine_load_inputs(e, peer, to->domain, "provision.conf", conf, len, NULL, NULL, 0,
			       &to->dom) == 0)
		rc = 0;
	free(conf);
	return rc;
}
