/* The job engine's upload of data.tar.gz from tuap-ctl, in chunks it asks for (job.h). */
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

static void ask_upload(struct engine *e, struct job *job)
{
	Tuap__CtlEvent ev;
	Tuap__UploadRequest up = TUAP__UPLOAD_REQUEST__INIT;

	job_event_init(job, &ev);
	/* credit is in bytes: tuap-ctl may send that much from offset, in chunks of its choice
	 * up to the message size limit */
	up.offset = job->upload_offset;
	up.credit = e->conf.upload_chunk * e->conf.data_window;
	job->upload_granted = job->upload_offset + up.credit;
	ev.ev_case = TUAP__CTL_EVENT__EV_UPLOAD;
	ev.upload = &up;
	if (e->io.ctl_send(e->io.ctx, &job->uploader, &ev) < 0)
		job_upload_gone(e, job);
}

void job_upload_gone(struct engine *e, struct job *job)
{
	engine_phase_failed(e, job,
			    "tuap-ctl went away during the upload; run 'tuap-ctl provision "
			    "--resume DOMAIN' to continue",
			    NULL, 0);
}

void job_start_upload(struct engine *e, struct job *job)
{
	char part[PATH_MAX + 8], dir[PATH_MAX];
	struct tuap_err err;

	if (fs_exists(job->data_path)) {
		engine_phase_done(e, job, "already in the pool");
		return;
	}
	if (job->n_subs == 0) {
		engine_phase_failed(e, job,
				    "data.tar.gz is not in the pool and no tuap-ctl is attached to "
				    "send it; run 'tuap-ctl provision --resume DOMAIN'",
				    NULL, 0);
		return;
	}
	snprintf(part, sizeof(part), "%s.part", job->data_path);
	if (fs_path(dir, sizeof(dir), &err, "%s/%s", e->pool_root, job->domain) < 0 ||
	    fs_mkdir_p(dir, 0750, &err) < 0) {
		engine_phase_failed(e, job, err.msg, NULL, 0);
		return;
	}
	job->upload_fd = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (job->upload_fd < 0 || sha256_init(&job->upload_hash) < 0) {
		char msg[sizeof(part) + 128];

		snprintf(msg, sizeof(msg), "%s: %s", part, strerror(errno));
		engine_phase_failed(e, job, msg, NULL, 0);
		return;
	}
	job->uploading = true;
	job->upload_offset = 0;
	job->uploader = job->subs[job->n_subs - 1];
	ask_upload(e, job);
}

static void finish_upload(struct engine *e, struct job *job)
{
	char hex[SHA256_HEX_LEN], part[PATH_MAX + 8], msg[256];

	sha256_final_hex(&job->upload_hash, hex);
	job->uploading = false;
	snprintf(part, sizeof(part), "%s.part", job->data_path);
	if (fsync(job->upload_fd) < 0 || close(job->upload_fd) < 0) {
		job->upload_fd = -1;
		engine_phase_failed(e, job, "cannot write data.tar.gz to the pool", NULL, 0);
		return;
	}
	job->upload_fd = -1;
	if (strcmp(hex, job->data_sha)) {
		unlink(part);
		snprintf(msg, sizeof(msg),
			 "data.tar.gz changed during the upload: sha256 %s, "
			 "expected %s",
			 hex, job->data_sha);
		engine_phase_failed(e, job, msg, NULL, 0);
		return;
	}
	if (rename(part, job->data_path) < 0) {
		engine_phase_failed(e, job, strerror(errno), NULL, 0);
		return;
	}
	fs_sync_parent(job->data_path, NULL);
	engine_phase_done(e, job, "sha256 verified");
}

void engine_ctl_upload(struct engine *e, const struct ctl_peer *peer, const Tuap__UploadChunk *c)
{
	struct job *job = engine_running_job(e, c->domain);

	if (!job || job->phase != PH_UPLOAD || !job->uploading || job->uploader.len != peer->len ||
	    memcmp(job->uploader.id, peer->id, peer->len)) {
		log_warn("upload chunk for %s that nobody asked for; ignored", c->domain);
		return;
	}
	if (c->offset != job->upload_offset || c->data.len == 0 ||
	    job->upload_offset + c->data.len > job->data_size ||
	    job->upload_offset + c->data.len > job->upload_granted) {
		engine_phase_failed(e, job, "upload out of order or too long", NULL, 0);
		return;
	}
	if (write(job->upload_fd, c->data.data, c->data.len) != (ssize_t)c->data.len) {
		engine_phase_failed(e, job, "cannot write data.tar.gz to the pool", NULL, 0);
		return;
	}
	sha256_update(&job->upload_hash, c->data.data, c->data.len);
	job->upload_offset += c->data.len;
	job->deadline_ms = engine_now_ms() + (int64_t)engine_deadline(e, PH_UPLOAD) * 1000;
	engine_phase_progress(e, job, job->upload_offset, job->data_size, NULL);
	if (job->upload_offset == job->data_size)
		finish_upload(e, job);
	else if (job->upload_offset == job->upload_granted)
		ask_upload(e, job);
}
