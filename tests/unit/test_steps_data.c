/*
 * The data step end to end in scratch directories: a real tar.gz (made with tar czf) pulled in
 * chunks through the credit window, out of order and repeated chunks, resume after the run is
 * freed and after a torn spool, a wrong sha256, hostile tarballs (made here with libarchive),
 * the previous tree kept on replace, extraction while the data arrives, the forms the gzip
 * stream may take, and the entry rule itself.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "agent_steps_util.h"
#include "fsutil.h"
#include "hash.h"
#include "stepjournal.h"
#include "steps.h"
#include "steps/data.h"

#define DOMAIN "site.example"

struct t {
	struct scratch sc;
	char tgz[128], src[128], out[256];
	unsigned char *data;
	size_t size;
	unsigned char sha[32];
	uint32_t chunk_size; /* DataArgs.chunk_size when not 0 */
};

static void hex_to_bytes(const char *hex, unsigned char *out)
{
	for (int i = 0; i < 32; i++)
		sscanf(hex + 2 * i, "%2hhx", &out[i]);
}

static void t_load(struct t *t, const char *path)
{
	char hex[SHA256_HEX_LEN];

	free(t->data);
	t->data = (unsigned char *)fs_read_file(path, 256 << 20, &t->size, NULL);
	assert_non_null(t->data);
	sha256_hex(t->data, t->size, hex);
	hex_to_bytes(hex, t->sha);
}

static void t_init(struct t *t)
{
	memset(t, 0, sizeof(*t));
	scratch_init(&t->sc, "data", false);
	snprintf(t->tgz, sizeof(t->tgz), "%s/data.tar.gz", t->sc.dir);
	snprintf(t->src, sizeof(t->src), "%s/src", t->sc.dir);
	snprintf(t->out, sizeof(t->out), "%s/srv/" DOMAIN, t->sc.dir);
}

static void t_free(struct t *t)
{
	free(t->data);
	scratch_free(&t->sc);
}

/* A site tree with a Makefile, a symlink, and `big` bytes of incompressible data, as tar.gz. */
static void make_site_tgz(struct t *t, size_t big)
{
	char cmd[1024], path[256];
	FILE *f;

	snprintf(cmd, sizeof(cmd), "mkdir -p %s/sub/deeper && cd %s && ln -s sub/deeper/f.txt link",
		 t->src, t->src);
	assert_int_equal(system(cmd), 0);
	snprintf(path, sizeof(path), "%s/Makefile", t->src);
	write_text(path, "all:\n\techo built\n");
	snprintf(path, sizeof(path), "%s/sub/deeper/f.txt", t->src);
	write_text(path, "hello\n");
	snprintf(path, sizeof(path), "%s/big.bin", t->src);
	assert_non_null(f = fopen(path, "w"));
	srand(7);
	for (size_t i = 0; i < big; i++)
		fputc(rand() & 0xff, f);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "tar czf %s -C %s .", t->tgz, t->src);
	assert_int_equal(system(cmd), 0);
	t_load(t, t->tgz);
}

static struct step_run *t_start(struct t *t, const char *job, const unsigned char *sha)
{
	Tuap__StepRequest req = TUAP__STEP_REQUEST__INIT;
	Tuap__DataArgs da = TUAP__DATA_ARGS__INIT;
	struct step_run *run;
	struct tuap_err err;

	req.step = TUAP__STEP__STEP_DATA;
	req.args_case = TUAP__STEP_REQUEST__ARGS_DATA;
	req.data = &da;
	da.size = t->size;
	da.sha256.len = 32;
	da.sha256.data = (uint8_t *)(sha ? sha : t->sha);
	if (t->chunk_size) {
		da.has_chunk_size = 1;
		da.chunk_size = t->chunk_size;
	}
	assert_int_equal(step_start(&t->sc.env, job, DOMAIN, &req, &run, &err), 0);
	return run;
}

/* Answers the run's chunk requests in order with chunks of `chunk` bytes until it has
 * received `limit` bytes (or all), checking the credit window. */
static void feed(struct t *t, struct step_run *run, size_t chunk, uint64_t limit)
{
	uint64_t off, pos = 0, asked_end = 0;
	uint32_t credit;
	struct tuap_err err;

	while (!step_done(run) && step_data_want(run, &off, &credit)) {
		assert_true(off >= pos);
		assert_int_equal(off, asked_end ? asked_end : off);
		assert_true(credit <= STEP_DATA_WINDOW);
		asked_end = off + credit;
		for (uint64_t p = off; p < off + credit && p < limit; p += chunk) {
			size_t n = off + credit - p < chunk ? (size_t)(off + credit - p) : chunk;

			assert_int_equal(step_data_chunk(run, p, t->data + p, n, &err), 0);
			pos = p + n;
		}
		if (pos >= limit)
			break;
	}
}

static void test_entry_rule(void **state)
{
	static const struct {
		const char *path;
		enum tar_entry_type type;
		const char *link;
		int ok;
	} cases[] = {
		{"Makefile", TAR_FILE, NULL, 1},
		{"./a/b/c.txt", TAR_FILE, NULL, 1},
		{"./", TAR_DIR, NULL, 1},
		{"/etc/passwd", TAR_FILE, NULL, 0},
		{"../x", TAR_FILE, NULL, 0},
		{"a/../../x", TAR_FILE, NULL, 0},
		{"a/..", TAR_DIR, NULL, 0},
		{"dev", TAR_OTHER, NULL, 0},
		{"a/l", TAR_SYMLINK, "../b", 1},
		{"a/l", TAR_SYMLINK, "../../b", 0},
		{"l", TAR_SYMLINK, "..", 0},
		{"l", TAR_SYMLINK, "/etc", 0},
		{"l", TAR_SYMLINK, "a/b/c", 1},
		{"l", TAR_SYMLINK, "d/..", 0}, /* d may itself be a symlink */
		{"a/b/l", TAR_SYMLINK, "./../../x", 1},
		{"l", TAR_SYMLINK, ".", 1},
		{"l", TAR_SYMLINK, "", 0},
		{"h", TAR_HARDLINK, "a/b", 1},
		{"h", TAR_HARDLINK, "../b", 0},
		{"h", TAR_HARDLINK, "/etc/shadow", 0},
		/* the rule of tar_entry_check: a newline in a name would forge lines of the setup
		 * log, where names are shown (regression: the agent extracted such a file) */
		{"evil\nname", TAR_FILE, NULL, 0},
		{"a/\033[2Jx", TAR_FILE, NULL, 0},
		{"l", TAR_SYMLINK, "a\rb", 0},
	};
	char why[128];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = data_entry_check(cases[i].path, cases[i].type, cases[i].link, why,
					  sizeof(why));

		if ((rc == 0) != cases[i].ok)
			fail_msg("case %zu (%s -> %s): got %d (%s)", i, cases[i].path,
				 cases[i].link ? cases[i].link : "", rc, rc ? why : "");
	}
}

static void test_data_end_to_end(void **state)
{
	struct t t;
	struct step_run *run;
	char path[300], *text, spool[300];
	struct stat st;
	uint64_t off;
	uint32_t credit;

	t_init(&t);
	make_site_tgz(&t, 12 << 20); /* more than the window */
	run = t_start(&t, "job1", NULL);
	assert_int_equal(t.sc.log.started, 1);
	feed(&t, run, 1 << 20, UINT64_MAX);
	assert_true(drive(run, 60000));
	assert_true(evlog_final_is(&t.sc.log, TUAP__STEP_STATE__STATE_DONE));
	assert_true(t.sc.log.progress_monotonic);
	assert_int_equal(t.sc.log.done, t.size);
	assert_int_equal(t.sc.log.total, t.size);
	assert_int_equal(step_data_want(run, &off, &credit), 0);
	step_free(run);

	snprintf(path, sizeof(path), "%s/sub/deeper/f.txt", t.out);
	text = fs_read_file(path, 100, NULL, NULL);
	assert_string_equal(text, "hello\n");
	free(text);
	snprintf(path, sizeof(path), "%s/link", t.out);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	snprintf(path, sizeof(path), "%s/big.bin", t.out);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 12 << 20);
	{
		char cmd[600];

		snprintf(cmd, sizeof(cmd), "cmp -s %s/big.bin %s/big.bin", t.src, t.out);
		assert_int_equal(system(cmd), 0);
	}
	snprintf(spool, sizeof(spool), "%s/jobs/job1/data.tar.gz", t.sc.state);
	assert_false(fs_exists(spool)); /* removed once in place */
	assert_int_equal(stepjournal_get(t.sc.j, "job1", TUAP__STEP__STEP_DATA)->state,
			 TUAP__STEP_STATE__STATE_DONE);

	/* the same job again: done, nothing asked */
	evlog_free(&t.sc.log);
	run = t_start(&t, "job1", NULL);
	assert_true(step_done(run));
	assert_string_equal(t.sc.log.msg, "already done");
	assert_int_equal(step_data_want(run, &off, &credit), 0);
	step_free(run);
	t_free(&t);
}

static void test_data_out_of_order(void **state)
{
	struct t t;
	struct step_run *run;
	struct tuap_err err;
	uint64_t off;
	uint32_t credit;
	const size_t chunk = 64 << 10;
	int rounds = 0;

	t_init(&t);
	make_site_tgz(&t, 3 << 20);
	run = t_start(&t, "job1", NULL);
	while (!step_done(run) && step_data_want(run, &off, &credit) && rounds++ < 100) {
		uint64_t end = off + credit;
		size_t n = (size_t)((credit + chunk - 1) / chunk);

		/* backwards, each chunk twice, and an overlapping half chunk */
		for (size_t i = n; i-- > 0;) {
			uint64_t p = off + i * chunk;
			size_t len = end - p < chunk ? (size_t)(end - p) : chunk;

			assert_int_equal(step_data_chunk(run, p, t.data + p, len, &err), 0);
			assert_int_equal(step_data_chunk(run, p, t.data + p, len, &err), 0);
			if (p >= chunk / 2) {
				uint64_t q = p - chunk / 2;
				size_t qn = t.size - q < chunk ? (size_t)(t.size - q) : chunk;

				assert_int_equal(step_data_chunk(run, q, t.data + q, qn, &err), 0);
			}
		}
	}
	/* beyond the size is refused */
	if (!step_done(run))
		assert_int_equal(step_data_chunk(run, t.size, t.data, 1, &err), -1);
	assert_true(drive(run, 60000));
	assert_true(evlog_final_is(&t.sc.log, TUAP__STEP_STATE__STATE_DONE));
	step_free(run);
	t_free(&t);
}

/* A controller that gives each request at most two chunks (tuapd's data_window cap) and sends
 * nothing unasked: the agent must ask in requests it can get whole, or it waits forever for
 * bytes it believes are on their way. */
static void test_data_capped_requests(void **state)
{
	const size_t chunk = 64 << 10;
	struct t t;
	struct step_run *run;
	struct tuap_err err;
	uint64_t off, asked = 0, got = 0;
	uint32_t credit;
	int rounds = 0;

	t_init(&t);
	t.chunk_size = chunk;
	make_site_tgz(&t, 12 << 20); /* more than the window */
	run = t_start(&t, "job1", NULL);
	while (!step_done(run) && rounds++ < 10000) {
		uint64_t end;

		if (!step_data_want(run, &off, &credit))
			break;
		assert_int_equal(off, asked); /* in order, no gaps, no overlap */
		assert_true(credit > 0 && credit <= chunk);
		asked = off + credit;
		end = off + (credit < 2 * chunk ? credit : 2 * chunk);
		for (uint64_t p = off; p < end; p += chunk) {
			size_t n = end - p < chunk ? (size_t)(end - p) : chunk;

			assert_int_equal(step_data_chunk(run, p, t.data + p, n, &err), 0);
			got = p + n;
		}
		/* the window: never more than STEP_DATA_WINDOW asked beyond what arrived */
		assert_true(asked - got <= STEP_DATA_WINDOW);
	}
	assert_int_equal(got, t.size);
	assert_true(drive(run, 60000));
	assert_true(evlog_final_is(&t.sc.log, TUAP__STEP_STATE__STATE_DONE));
	step_free(run);
	t_free(&t);
}

static void test_data_resume(void **state)
{
	struct t t;
	struct step_run *run;
	char spool[300], mark[300];
	uint64_t off;
	uint32_t credit;
	struct stat st;
	int fd;

	t_init(&t);
	make_site_tgz(&t, 12 << 20);
	run = t_start(&t, "job1", NULL);
	feed(&t, run, 1 << 20, 5 << 20);
	assert_false(step_done(run));
	step_free(run); /* the agent stops: what it has is kept */

	run = t_start(&t, "job1", NULL);
	assert_int_equal(step_data_want(run, &off, &credit), 1);
	assert_int_equal(off, 5 << 20);
	step_data_rewind(run); /* a reconnect: ask again from the same place */
	assert_int_equal(step_data_want(run, &off, &credit), 1);
	assert_int_equal(off, 5 << 20);
	/* receive up to 7 MiB but "crash": torn bytes past the confirmed length */
	step_data_rewind(run);
	feed(&t, run, 1 << 20, 7 << 20);
	step_free(run);
	snprintf(spool, sizeof(spool), "%s/jobs/job1/data.tar.gz", t.sc.state);
	snprintf(mark, sizeof(mark), "%s/jobs/job1/data.mark", t.sc.state);
	write_text(mark, "6291456 0 0\n"); /* another size: not ours, start over */
	run = t_start(&t, "job1", NULL);
	assert_int_equal(step_data_want(run, &off, &credit), 1);
	assert_int_equal(off, 0);
	step_data_rewind(run);
	feed(&t, run, 1 << 20, 3 << 20);
	step_free(run);
	/* garbage after the confirmed 3 MiB, as a crash between write and sync leaves */
	fd = open(spool, O_WRONLY | O_APPEND);
	assert_true(write(fd, "garbage!", 8) == 8);
	close(fd);
	run = t_start(&t, "job1", NULL);
	assert_int_equal(stat(spool, &st), 0);
	assert_int_equal(st.st_size, 3 << 20);
	assert_int_equal(step_data_want(run, &off, &credit), 1);
	assert_int_equal(off, 3 << 20);
	step_data_rewind(run);
	feed(&t, run, 1 << 20, UINT64_MAX);
	assert_true(drive(run, 60000));
	assert_true(evlog_final_is(&t.sc.log, TUAP__STEP_STATE__STATE_DONE));
	assert_true(evlog_find(&t.sc.log, "resuming data.tar.gz at byte 3145728", 0) >= 0);
	step_free(run);
	t_free(&t);
}

static void test_data_bad_sha(void **state)
{
	unsigned char wrong[32] = {1, 2, 3};
	struct t t;
	struct step_run *run;
	char staging[300];

	t_init(&t);
	make_site_tgz(&t, 1000);
	run = t_start(&t, "job1", wrong);
	feed(&t, run, 4096, UINT64_MAX);
	assert_true(drive(run, 10000));
	assert_int_equal(t.sc.log.final, TUAP__STEP_STATE__STATE_FAILED);
	assert_non_null(strstr(t.sc.log.msg, "sha256"));
	step_free(run);
	assert_false(fs_exists(t.out));
	snprintf(staging, sizeof(staging), "%s.new-job1", t.out);
	assert_false(fs_exists(staging));
	assert_int_equal(stepjournal_get(t.sc.j, "job1", TUAP__STEP__STEP_DATA)->state,
			 TUAP__STEP_STATE__STATE_FAILED);
	t_free(&t);
}

struct entry {
	const char *name;
	unsigned type; /* AE_IF* */
	const char *link;
	const char *text;
	bool hard;
};

static void write_tgz(const char *path, const struct entry *e, size_t n)
{
	struct archive *a = archive_write_new();

	archive_write_add_filter_gzip(a);
	archive_write_set_format_pax_restricted(a);
	assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
	for (size_t i = 0; i < n; i++) {
		struct archive_entry *ae = archive_entry_new();
		size_t len = e[i].text ? strlen(e[i].text) : 0;

		archive_entry_set_pathname(ae, e[i].name);
		archive_entry_set_filetype(ae, e[i].type);
		archive_entry_set_perm(ae, e[i].type == AE_IFDIR ? 0755 : 04755);
		archive_entry_set_size(ae, (la_int64_t)len);
		if (e[i].type == AE_IFLNK)
			archive_entry_set_symlink(ae, e[i].link);
		if (e[i].hard)
			archive_entry_set_hardlink(ae, e[i].link);
		if (e[i].type == AE_IFCHR)
			archive_entry_set_rdev(ae, makedev(1, 3));
		assert_true(archive_write_header(a, ae) >= ARCHIVE_WARN);
		if (len)
			assert_int_equal(archive_write_data(a, e[i].text, len), (la_ssize_t)len);
		archive_entry_free(ae);
	}
	archive_write_close(a);
	archive_write_free(a);
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static void test_data_hostile(void **state)
{
	char abs_target[256], outside[256];
	struct entry mk = {"Makefile", AE_IFREG, NULL, "all:\n", false};
	struct entry cases[][3] = {
		{mk, {abs_target, AE_IFREG, NULL, "pwned", false}},
		{mk, {"../escape", AE_IFREG, NULL, "pwned", false}},
		{mk, {"a/../../escape", AE_IFREG, NULL, "pwned", false}},
		{mk, {"etc", AE_IFLNK, "/etc", NULL, false}},
		{mk, {"up", AE_IFLNK, "../..", NULL, false}},
		{{"sub", AE_IFDIR, NULL, NULL, false},
		 {"l", AE_IFLNK, "sub", NULL, false},
		 {"l/written-through", AE_IFREG, NULL, "x", false}},
		{{"d", AE_IFLNK, "..", NULL, false}, {"d/escape", AE_IFREG, NULL, "pwned", false}},
		{mk, {"null", AE_IFCHR, NULL, NULL, false}},
		{mk, {"fifo", AE_IFIFO, NULL, NULL, false}},
		{mk, {"h", AE_IFREG, "/etc/passwd", NULL, true}},
		{mk, {"h", AE_IFREG, "../outside", NULL, true}},
	};
	size_t sizes[] = {2, 2, 2, 2, 2, 3, 2, 2, 2, 2, 2};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct t t;
		struct step_run *run;
		char staging[300], job[16];

		t_init(&t);
		snprintf(abs_target, sizeof(abs_target), "%s/abs-pwned", t.sc.dir);
		snprintf(outside, sizeof(outside), "%s/escape", t.sc.site);
		write_tgz(t.tgz, cases[i], sizes[i]);
		t_load(&t, t.tgz);
		snprintf(job, sizeof(job), "job%zu", i);
		run = t_start(&t, job, NULL);
		feed(&t, run, 1 << 16, UINT64_MAX);
		assert_true(drive(run, 10000));
		if (!evlog_final_is(&t.sc.log, TUAP__STEP_STATE__STATE_FAILED))
			fail_msg("case %zu was extracted", i);
		assert_non_null(strstr(t.sc.log.msg, "entry"));
		step_free(run);
		/* nothing outside, no site, no staging left */
		assert_false(fs_exists(abs_target));
		assert_false(fs_exists(outside));
		snprintf(outside, sizeof(outside), "%s/escape", t.sc.dir);
		assert_false(fs_exists(outside));
		assert_false(fs_exists(t.out));
		snprintf(staging, sizeof(staging), "%s.new-%s", t.out, job);
		assert_false(fs_exists(staging));
		assert_int_equal(count_entries(t.sc.site), 0);
		t_free(&t);
	}
}

/* Letters, so that the text survives write_tgz; about 0.75 of it is left after gzip. */
static char *random_text(size_t n)
{
	char *s = malloc(n + 1);

	assert_non_null(s);
	srand(11);
	for (size_t i = 0; i < n; i++)
		s[i] = (char)('a' + rand() % 26);
	s[n] = '\0';
	return s;
}

/* Waits (servicing the run) until path exists or the run ends; bounded. */
static bool wait_exists(struct step_run *run, const char *path, int max_ms)
{
	uint64_t end = test_now_ms() + (uint64_t)max_ms;

	while (!fs_exists(path) && !step_done(run) && test_now_ms() < end) {
		struct pollfd fds[8];
		size_t n = step_pollfds(run, fds, 8);

		poll(fds, n, 20);
		step_service(run);
	}
	return fs_exists(path);
}

/* Extraction overlaps the transfer, but nothing is put in place before the whole file is in and
 * verified; a refused entry early in the archive fails the step before the rest is sent. */
static void test_data_streams(void **state)
{
	char *big = random_text(10 << 20), early[600], staging[300];
	struct entry ok[] = {
		{"Makefile", AE_IFREG, NULL, "all:\n", false},
		{"early.txt", AE_IFREG, NULL, "first\n", false},
		{"big.txt", AE_IFREG, NULL, big, false},
	};
	struct entry bad[] = {
		{"Makefile", AE_IFREG, NULL, "all:\n", false},
		{"../escape", AE_IFREG, NULL, "pwned", false},
		{"big.txt", AE_IFREG, NULL, big, false},
	};
	struct step_run *run;
	struct stat st;
	struct t t;

	t_init(&t);
	write_tgz(t.tgz, ok, 3);
	t_load(&t, t.tgz);
	assert_true(t.size > 4 << 20);
	run = t_start(&t, "job1", NULL);
	feed(&t, run, 1 << 16, t.size / 2);
	assert_false(step_done(run));
	snprintf(staging, sizeof(staging), "%s.new-job1", t.out);
	snprintf(early, sizeof(early), "%s/early.txt", staging);
	assert_true(wait_exists(run, early, 10000)); /* extracted with half the file in */
	assert_false(step_done(run));
	assert_false(fs_exists(t.out)); /* but not in place */
	step_data_rewind(run);		/* feed() sends only what it is asked for afresh */
	feed(&t, run, 1 << 16, UINT64_MAX);
	assert_true(drive(run, 60000));
	assert_true(evlog_final_is(&t.sc.log, TUAP__STEP_STATE__STATE_DONE));
	assert_true(t.sc.log.progress_monotonic);
	step_free(run);
	snprintf(early, sizeof(early), "%s/big.txt", t.out);
	assert_int_equal(stat(early, &st), 0);
	assert_int_equal(st.st_size, 10 << 20);
	assert_false(fs_exists(staging));
	t_free(&t);

	t_init(&t);
	write_tgz(t.tgz, bad, 3);
	t_load(&t, t.tgz);
	run = t_start(&t, "job1", NULL);
	feed(&t, run, 1 << 16, t.size / 2);
	assert_true(drive(run, 10000)); /* no more bytes are coming: it ends on its own */
	assert_int_equal(t.sc.log.final, TUAP__STEP_STATE__STATE_FAILED);
	assert_non_null(strstr(t.sc.log.msg, "'../escape'"));
	step_free(run);
	snprintf(staging, sizeof(staging), "%s.new-job1", t.out);
	assert_false(fs_exists(staging));
	assert_false(fs_exists(t.out));
	snprintf(early, sizeof(early), "%s/escape", t.sc.site);
	assert_false(fs_exists(early));
	t_free(&t);
	free(big);
}

/* The forms data.tar.gz may take: a plain tar, several gzip members, bytes after the last
 * member (ignored, as gzip does); and the ones refused: a cut-off or corrupt gzip stream (each
 * with a matching sha256, so that the gunzip is what must notice). */
static void test_data_compression_forms(void **state)
{
	static const struct {
		const char *make; /* shell, in t.sc.dir, from data.tar.gz to form.gz */
		const char *error;
	} forms[] = {
		{"gzip -dc data.tar.gz >form.gz", NULL},
		{"gzip -dc data.tar.gz >x.tar && head -c 70000 x.tar | gzip >form.gz && "
		 "tail -c +70001 x.tar | gzip >>form.gz",
		 NULL},
		{"cp data.tar.gz form.gz && printf 'trailing garbage' >>form.gz", NULL},
		{"head -c $(($(stat -c %s data.tar.gz) - 5000)) data.tar.gz >form.gz", "gzip"},
		{"cp data.tar.gz form.gz && printf 'corrupt!corrupt!' | dd of=form.gz bs=1 "
		 "seek=150000 conv=notrunc status=none",
		 "gzip"},
	};

	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		char cmd[1024], path[600], job[16];
		struct step_run *run;
		struct stat st;
		struct t t;

		t_init(&t);
		make_site_tgz(&t, 300000);
		snprintf(cmd, sizeof(cmd), "cd %s && %s", t.sc.dir, forms[i].make);
		assert_int_equal(system(cmd), 0);
		snprintf(path, sizeof(path), "%s/form.gz", t.sc.dir);
		t_load(&t, path);
		snprintf(job, sizeof(job), "job%zu", i);
		run = t_start(&t, job, NULL);
		feed(&t, run, 1 << 16, UINT64_MAX);
		assert_true(drive(run, 20000));
		if (forms[i].error) {
			if (t.sc.log.final != TUAP__STEP_STATE__STATE_FAILED)
				fail_msg("form %zu (%s) was extracted", i, forms[i].make);
			if (!strstr(t.sc.log.msg, forms[i].error))
				fail_msg("form %zu: '%s' lacks '%s'", i, t.sc.log.msg,
					 forms[i].error);
			assert_false(fs_exists(t.out));
		} else {
			if (!evlog_final_is(&t.sc.log, TUAP__STEP_STATE__STATE_DONE))
				fail_msg("form %zu (%s) failed", i, forms[i].make);
			snprintf(path, sizeof(path), "%s/big.bin", t.out);
			assert_int_equal(stat(path, &st), 0);
			assert_int_equal(st.st_size, 300000);
			snprintf(path, sizeof(path), "%s/sub/deeper/f.txt", t.out);
			assert_true(fs_exists(path));
		}
		step_free(run);
		t_free(&t);
	}
}

static void test_data_setuid_stripped_and_replace(void **state)
{
	struct entry e[] = {
		{"Makefile", AE_IFREG, NULL, "all:\n", false},
		{"tool", AE_IFREG, NULL, "#!/bin/sh\n", false},
		{"hard", AE_IFREG, "tool", NULL, true},
	};
	char path[600], prefix[300], marker[300];
	struct stat st;
	struct t t;

	t_init(&t);
	write_tgz(t.tgz, e, 3);
	t_load(&t, t.tgz);
	/* an existing tree, kept as DOMAIN.prev-* */
	snprintf(marker, sizeof(marker), "%s/old-marker", t.out);
	assert_int_equal(fs_mkdir_p(t.out, 0755, NULL), 0);
	write_text(marker, "old\n");
	for (int i = 0; i < 5; i++) {
		struct step_run *run;
		char job[16];

		snprintf(job, sizeof(job), "job%d", i);
		evlog_free(&t.sc.log);
		run = t_start(&t, job, NULL);
		feed(&t, run, 1 << 16, UINT64_MAX);
		assert_true(drive(run, 10000));
		assert_true(evlog_final_is(&t.sc.log, TUAP__STEP_STATE__STATE_DONE));
		step_free(run);
		if (i == 0) {
			DIR *d = opendir(t.sc.site);
			struct dirent *de;
			int found = 0;

			while ((de = readdir(d)))
				if (strncmp(de->d_name, DOMAIN ".prev-", strlen(DOMAIN ".prev-")) ==
				    0) {
					snprintf(path, sizeof(path), "%s/%s/old-marker", t.sc.site,
						 de->d_name);
					found = fs_exists(path);
				}
			closedir(d);
			assert_true(found);
			assert_false(fs_exists(marker));
		}
	}
	/* the site and at most STEP_PREV_KEEP previous trees */
	assert_int_equal(count_entries(t.sc.site), 1 + STEP_PREV_KEEP);
	snprintf(path, sizeof(path), "%s/tool", t.out);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0755); /* setuid dropped */
	assert_int_equal(st.st_nlink, 2);	    /* the hard link inside the tree */
	snprintf(prefix, sizeof(prefix), "%s.prev-", t.out);
	t_free(&t);
}

/* One data step of the tarball entries e[0..n) onto the site's filesystem; the step's final
 * state (its message in t->sc.log). */
static Tuap__StepState run_entries(struct t *t, const char *job, const struct entry *e, size_t n)
{
	struct step_run *run;

	write_tgz(t->tgz, e, n);
	t_load(t, t->tgz);
	evlog_free(&t->sc.log);
	run = t_start(t, job, NULL);
	feed(t, run, 1 << 16, UINT64_MAX);
	assert_true(drive(run, 30000));
	step_free(run);
	return t->sc.log.final;
}

/* The old tree is there as it was, and nothing half-written is left beside it. */
static void old_tree_kept(struct t *t, const char *marker)
{
	char *text = fs_read_file(marker, 100, NULL, NULL);

	assert_non_null(text);
	assert_string_equal(text, "old\n");
	free(text);
	assert_int_equal(count_entries(t->sc.site), 1);
}

/* A full disk is an error, never "data done" over a truncated file: a file that would not fit
 * fails before it is written (48 MiB tmpfs, 60 MiB file), and a write that fails anyway (here
 * RLIMIT_FSIZE makes write(2) fail with EFBIG, as ENOSPC would; libarchive reports both as a
 * mere ARCHIVE_WARN) fails the step; both times the previous tree stays and make never sees a
 * partial one. */
static void test_data_disk_full(void **state)
{
	struct entry e[] = {
		{"Makefile", AE_IFREG, NULL, "all:\n", false},
		{"big.bin", AE_IFREG, NULL, NULL, false},
	};
	size_t big = 60u << 20;
	char *text = malloc(big + 1), marker[300];
	struct rlimit old, lim;
	struct t t;

	if (geteuid() != 0)
		skip();
	assert_non_null(text);
	memset(text, 'a', big);
	text[big] = '\0';
	t_init(&t);
	assert_int_equal(fs_mkdir_p(t.sc.site, 0755, NULL), 0);
	if (mount("tuap-test", t.sc.site, "tmpfs", 0, "size=48m") < 0)
		fail_msg("mount tmpfs on %s: %s", t.sc.site, strerror(errno));
	assert_int_equal(fs_mkdir_p(t.out, 0755, NULL), 0);
	snprintf(marker, sizeof(marker), "%s/old-marker", t.out);
	write_text(marker, "old\n");

	/* a name longer than the agent's buffer is refused as such, not cut to a shorter one */
	char longname[5001];
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	struct entry named[] = {e[0], {longname, AE_IFREG, NULL, "x", false}};
	assert_int_equal(run_entries(&t, "job0", named, 2), TUAP__STEP_STATE__STATE_FAILED);
	if (!strstr(t.sc.log.msg, "name longer than 4095 bytes"))
		fail_msg("%s", t.sc.log.msg);
	old_tree_kept(&t, marker);

	e[1].text = text;
	assert_int_equal(run_entries(&t, "job1", e, 2), TUAP__STEP_STATE__STATE_FAILED);
	if (!strstr(t.sc.log.msg, "no room for 'big.bin' (62914560 bytes)"))
		fail_msg("%s", t.sc.log.msg);
	old_tree_kept(&t, marker);

	text[8u << 20] = '\0'; /* 8 MiB fit, but only 4 MiB can be written */
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 4u << 20;
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	Tuap__StepState st = run_entries(&t, "job2", e, 2);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_DFL);
	if (st != TUAP__STEP_STATE__STATE_FAILED)
		fail_msg("a failed write was reported as %d: %s", st, t.sc.log.msg);
	if (!strstr(t.sc.log.msg, "writing 'big.bin'"))
		fail_msg("%s", t.sc.log.msg);
	old_tree_kept(&t, marker);

	assert_int_equal(umount2(t.sc.site, MNT_DETACH), 0);
	free(text);
	t_free(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_entry_rule),
		cmocka_unit_test(test_data_end_to_end),
		cmocka_unit_test(test_data_out_of_order),
		cmocka_unit_test(test_data_capped_requests),
		cmocka_unit_test(test_data_resume),
		cmocka_unit_test(test_data_bad_sha),
		cmocka_unit_test(test_data_hostile),
		cmocka_unit_test(test_data_setuid_stripped_and_replace),
		cmocka_unit_test(test_data_streams),
		cmocka_unit_test(test_data_compression_forms),
		cmocka_unit_test(test_data_disk_full),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
