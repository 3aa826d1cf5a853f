/* The agent's step journal; see journal.h. */
#include "stepjournal.h"

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
#include "fsutil.h"
#include "hash.h"
#include "names.h"
#include "valid.h"

#define LINE_MAX_LEN  512
#define FILE_READ_MAX (4 * STEPJOURNAL_MAX_BYTES)

struct stepjournal {
	char path[PATH_MAX];
	int fd;
	uint64_t size;
	struct stepjournal_rec *v; /* latest record per (job, step) */
	uint64_t *seq;		   /* when v[i] was last updated, to forget the oldest first */
	uint64_t next_seq;
	size_t n;
};

static int ended(Tuap__StepState st)
{
	return st == TUAP__STEP_STATE__STATE_DONE || st == TUAP__STEP_STATE__STATE_FAILED ||
	       st == TUAP__STEP_STATE__STATE_INTERRUPTED;
}

/* Formats rec as a journal line into out; returns its length, or 0 when rec is not valid. */
static size_t format_line(const struct stepjournal_rec *rec, char *out, size_t len)
{
	char code[16] = "-";
	int n;

	if (valid_job_id(rec->job, NULL, 0) < 0 ||
	    (rec->domain[0] && valid_domain_name(rec->domain, NULL, 0) < 0) ||
	    rec->step <= TUAP__STEP__STEP_UNKNOWN || rec->step > TUAP__STEP__STEP_MAKE ||
	    (rec->state != TUAP__STEP_STATE__STATE_STARTED && !ended(rec->state)))
		return 0;
	if (rec->has_exit_code)
		snprintf(code, sizeof(code), "%d", rec->exit_code);
	n = snprintf(out, len, "J1 %" PRIu64 " %s %s %s %s %s", rec->unix_time, rec->job,
		     rec->domain[0] ? rec->domain : "-", step_name(rec->step),
		     step_state_name(rec->state), code);
	if (n < 0 || (size_t)n + 11 >= len)
		return 0;
	n += snprintf(out + n, len - (size_t)n, " %08" PRIx32 "\n", hash_fnv1a(out, (size_t)n));
	return (size_t)n;
}

/* Parses one line (without its newline); 0 when it is a valid record. */
static int parse_line(const char *line, size_t len, struct stepjournal_rec *rec)
{
	char copy[LINE_MAX_LEN], *f[8], *save = NULL, *tok, *end;
	size_t nf = 0, body;
	unsigned long long t;
	long code;
	int idx;

	if (len == 0 || len >= sizeof(copy) || len < 10)
		return -1;
	memcpy(copy, line, len);
	copy[len] = '\0';
	body = len - 9;
	if (copy[body] != ' ' || strtoul(copy + body + 1, &end, 16) != hash_fnv1a(copy, body) ||
	    *end != '\0')
		return -1;
	copy[body] = '\0';
	for (tok = strtok_r(copy, " ", &save); tok && nf < 8; tok = strtok_r(NULL, " ", &save))
		f[nf++] = tok;
	if (nf != 7 || tok || strcmp(f[0], "J1") != 0)
		return -1;
	memset(rec, 0, sizeof(*rec));
	errno = 0;
	t = strtoull(f[1], &end, 10);
	if (errno || *end)
		return -1;
	rec->unix_time = t;
	if (valid_job_id(f[2], NULL, 0) < 0)
		return -1;
	snprintf(rec->job, sizeof(rec->job), "%s", f[2]);
	if (strcmp(f[3], "-") != 0) {
		if (valid_domain_name(f[3], NULL, 0) < 0)
			return -1;
		snprintf(rec->domain, sizeof(rec->domain), "%s", f[3]);
	}
	if ((idx = step_from_name(f[4])) <= 0) /* "unknown" is never journaled */
		return -1;
	rec->step = (Tuap__Step)idx;
	if ((idx = step_state_from_name(f[5])) <= 0)
		return -1;
	rec->state = (Tuap__StepState)idx;
	if (rec->state != TUAP__STEP_STATE__STATE_STARTED && !ended(rec->state))
		return -1;
	if (strcmp(f[6], "-") != 0) {
		code = strtol(f[6], &end, 10);
		if (*end || code < INT_MIN || code > INT_MAX)
			return -1;
		rec->has_exit_code = true;
		rec->exit_code = (int)code;
	}
	return 0;
}

static void remember(struct stepjournal *j, const struct stepjournal_rec *rec)
{
	size_t i;

	for (i = 0; i < j->n; i++)
		if (j->v[i].step == rec->step && strcmp(j->v[i].job, rec->job) == 0)
			break;
	if (i == j->n && j->n == STEPJOURNAL_MAX_RECORDS) {
		i = 0; /* forget the least recently updated record */
		for (size_t k = 1; k < j->n; k++)
			if (j->seq[k] < j->seq[i])
				i = k;
	} else if (i == j->n) {
		j->n++;
	}
	j->v[i] = *rec;
	j->seq[i] = ++j->next_seq;
}

static const uint64_t *sort_seq;

static int by_seq(const void *a, const void *b)
{
	uint64_t x = sort_seq[*(const size_t *)a], y = sort_seq[*(const size_t *)b];

	return x < y ? -1 : x > y;
}

static int load(struct stepjournal *j, struct tuap_err *err)
{
	size_t len, start = 0, keep = 0;
	char *data = fs_read_file(j->path, FILE_READ_MAX, &len, err);

	if (!data)
		return -1;
	for (size_t i = 0; i < len; i++) {
		struct stepjournal_rec rec;

		if (data[i] != '\n')
			continue;
		if (parse_line(data + start, i - start, &rec) == 0)
			remember(j, &rec);
		start = i + 1;
		keep = start;
	}
	free(data);
	/* A torn last line (no newline) is dropped so that the next record starts a line. */
	if (keep < len && ftruncate(j->fd, (off_t)keep) < 0)
		return err_set(err, "%s: cannot cut torn record: %s", j->path, strerror(errno));
	j->size = keep;
	return 0;
}

int stepjournal_open(struct stepjournal **jp, const char *state_dir, struct tuap_err *err)
{
	struct stepjournal *j = calloc(1, sizeof(*j));

	*jp = NULL;
	if (!j || !(j->v = calloc(STEPJOURNAL_MAX_RECORDS, sizeof(j->v[0]))) ||
	    !(j->seq = calloc(STEPJOURNAL_MAX_RECORDS, sizeof(j->seq[0])))) {
		if (j)
			free(j->v);
		free(j);
		return err_set(err, "journal: out of memory");
	}
	j->fd = -1;
	if ((size_t)snprintf(j->path, sizeof(j->path), "%s/journal", state_dir) >=
	    sizeof(j->path)) {
		err_set(err, "%s: path too long", state_dir);
		goto fail;
	}
	if (fs_mkdir_p(state_dir, 0700, err) < 0)
		goto fail;
	j->fd = open(j->path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (j->fd < 0) {
		err_set(err, "%s: %s", j->path, strerror(errno));
		goto fail;
	}
	if (load(j, err) < 0)
		goto fail;
	*jp = j;
	return 0;
fail:
	stepjournal_close(j);
	return -1;
}

void stepjournal_close(struct stepjournal *j)
{
	if (!j)
		return;
	if (j->fd >= 0)
		close(j->fd);
	free(j->v);
	free(j->seq);
	free(j);
}

/* Rewrites the file with the latest records only, least recently updated first. */
static int compact(struct stepjournal *j, struct tuap_err *err)
{
	struct buf b = BUF_INIT;
	char line[LINE_MAX_LEN];
	size_t order[STEPJOURNAL_MAX_RECORDS];
	int fd, rc = -1;

	for (size_t i = 0; i < j->n; i++)
		order[i] = i;
	sort_seq = j->seq;
	qsort(order, j->n, sizeof(order[0]), by_seq);
	for (size_t i = 0; i < j->n; i++) {
		size_t n = format_line(&j->v[order[i]], line, sizeof(line));

		buf_add(&b, line, n);
	}
	if (fs_write_atomic(j->path, b.s ? b.s : "", b.len, 0600, err) < 0)
		goto out;
	fd = open(j->path, O_RDWR | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		err_set(err, "%s: %s", j->path, strerror(errno));
		goto out;
	}
	close(j->fd);
	j->fd = fd;
	j->size = b.len;
	rc = 0;
out:
	buf_free(&b);
	return rc;
}

int stepjournal_append(struct stepjournal *j, const struct stepjournal_rec *in,
		       struct tuap_err *err)
{
	struct stepjournal_rec rec = *in;
	char line[LINE_MAX_LEN];
	size_t n;
	ssize_t w;

	if (!rec.unix_time)
		rec.unix_time = (uint64_t)time(NULL);
	n = format_line(&rec, line, sizeof(line));
	if (n == 0)
		return err_set(err, "journal: invalid record for job '%s'", rec.job);
	do
		w = write(j->fd, line, n);
	while (w < 0 && errno == EINTR);
	if (w != (ssize_t)n) {
		/* A short write leaves a torn line: cut it so the file stays line-aligned. */
		if (ftruncate(j->fd, (off_t)j->size) < 0) {
			/* the torn line is ignored at the next load */
		}
		return err_set(err, "%s: write: %s", j->path, w < 0 ? strerror(errno) : "short");
	}
	if (fdatasync(j->fd) < 0)
		return err_set(err, "%s: fsync: %s", j->path, strerror(errno));
	j->size += n;
	remember(j, &rec);
	if (j->size > STEPJOURNAL_MAX_BYTES)
		return compact(j, err);
	return 0;
}

const struct stepjournal_rec *stepjournal_get(const struct stepjournal *j, const char *job,
					      Tuap__Step step)
{
	for (size_t i = 0; i < j->n; i++)
		if (j->v[i].step == step && strcmp(j->v[i].job, job) == 0)
			return &j->v[i];
	return NULL;
}

size_t stepjournal_count(const struct stepjournal *j)
{
	return j->n;
}

const struct stepjournal_rec *stepjournal_at(const struct stepjournal *j, size_t i)
{
	return i < j->n ? &j->v[i] : NULL;
}

void stepjournal_records_free(Tuap__StepRecord **recs, size_t n)
{
	for (size_t i = 0; recs && i < n; i++) {
		if (recs[i])
			free(recs[i]->job_id);
		free(recs[i]);
	}
	free(recs);
}

int stepjournal_records(const struct stepjournal *j, bool interrupted_started,
			Tuap__StepRecord ***out, size_t *n, struct tuap_err *err)
{
	Tuap__StepRecord **v = calloc(j->n ? j->n : 1, sizeof(*v));
	size_t k = 0;

	*out = NULL;
	*n = 0;
	if (!v)
		return err_set(err, "journal: out of memory");
	for (size_t i = 0; i < j->n; i++) {
		const struct stepjournal_rec *r = &j->v[i];
		Tuap__StepRecord *s;

		if (!ended(r->state) && !interrupted_started)
			continue;
		s = malloc(sizeof(*s));
		if (!s || !(tuap__step_record__init(s), s->job_id = strdup(r->job))) {
			free(s);
			stepjournal_records_free(v, k);
			return err_set(err, "journal: out of memory");
		}
		s->step = r->step;
		s->state = ended(r->state) ? r->state : TUAP__STEP_STATE__STATE_INTERRUPTED;
		s->has_exit_code = r->has_exit_code;
		s->exit_code = r->exit_code;
		if (ended(r->state)) {
			s->has_finished_unix = true;
			s->finished_unix = r->unix_time;
		}
		v[k++] = s;
	}
	*out = v;
	*n = k;
	return 0;
}
