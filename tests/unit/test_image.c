/*
 * image: catalog parsing (good and bad, with exact lines), resolving provision.conf values,
 * and image_fetch from a python3 http.server this test starts on 127.0.0.1 (ephemeral port,
 * killed by PID) and from file:// URLs: good hash, bad hash refused with both hashes and
 * nothing left in the cache, a damaged cache file fetched again, 404, refused connection.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fsutil.h"
#include "hash.h"
#include "image.h"

static char dir[64], srv[96], cache[96];
static pid_t server = -1;
static int port;
static unsigned char base[300000];
static char base_sha[SHA256_HEX_LEN];

static char *diag_text(const struct diags *d)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	diags_print(d, f);
	fclose(f);
	return out;
}

static void expect_line(const char *text, const char *line)
{
	if (!strstr(text, line)) {
		fprintf(stderr, "expected \"%s\" in:\n%s", line, text);
		fail();
	}
}

/* ---- catalog ---- */

static const char good[] =
	"# the catalog\n"
	"images = (\n"
	"  { name = \"debian-12\";\n"
	"    url = \"https://cloud.debian.org/images/cloud/bookworm/latest/"
	"debian-12-genericcloud-amd64.qcow2\";\n"
	"    sha256 = \"0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef\"; },\n"
	"  { name = \"local.raw\"; path = \"/var/lib/tuap/base.img\"; format = \"raw\";\n"
	"    kernel = \"/boot/vmlinuz\"; initrd = \"/boot/initrd.img\";\n"
	"    cmdline = \"root=/dev/vda rw console=ttyS0\"; }\n"
	");\n";

static void test_catalog_good(void **state)
{
	struct image_catalog cat;
	struct diags d;

	diags_init(&d);
	assert_int_equal(image_catalog_parse(good, "images.conf", &cat, &d), 0);
	assert_int_equal(d.errors, 0);
	assert_int_equal(cat.n, 2);
	assert_string_equal(cat.v[0].name, "debian-12");
	assert_string_equal(cat.v[0].sha256,
			    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
	assert_string_equal(cat.v[0].format, "qcow2");
	assert_int_equal(cat.v[0].line, 3);
	assert_string_equal(cat.v[0].file, "images.conf");
	assert_string_equal(cat.v[1].path, "/var/lib/tuap/base.img");
	assert_string_equal(cat.v[1].format, "raw");
	assert_string_equal(cat.v[1].kernel, "/boot/vmlinuz");
	assert_string_equal(cat.v[1].initrd, "/boot/initrd.img");
	assert_string_equal(cat.v[1].cmdline, "root=/dev/vda rw console=ttyS0");
	assert_string_equal(cat.v[1].sha256, "");
	assert_int_equal(cat.v[1].line, 6);

	char vol[128];
	struct tuap_err err;
	assert_int_equal(image_volume_name(&cat.v[0], vol, sizeof(vol), &err), 0);
	assert_string_equal(vol, "debian-12-0123456789abcdef.qcow2");
	assert_int_equal(image_volume_name(&cat.v[1], vol, sizeof(vol), &err), -1);
	image_catalog_free(&cat);
	diags_free(&d);
}

static void test_catalog_bad(void **state)
{
	static const char bad[] =
		"images = (\n"							 /* 1 */
		"  {\n"								 /* 2 */
		"    name = \"Debian 12\";\n"					 /* 3 */
		"    url = \"ftp://x\";\n"					 /* 4 */
		"    sha256 = \"xyz\";\n"					 /* 5 */
		"    colour = \"blue\";\n"					 /* 6 */
		"  },\n"							 /* 7 */
		"  {\n"								 /* 8 */
		"    name = \"dup\";\n"						 /* 9 */
		"    url = \"https://example.org/a.qcow2\";\n"			 /* 10 */
		"  },\n"							 /* 11 */
		"  {\n"								 /* 12 */
		"    name = \"dup\";\n"						 /* 13 */
		"    path = \"relative.img\";\n"				 /* 14 */
		"    format = \"vmdk\";\n"					 /* 15 */
		"    size = 5;\n"						 /* 16 */
		"  },\n"							 /* 17 */
		"  { name = \"k\"; path = \"/a\"; initrd = \"/i\"; },\n"	 /* 18 */
		"  { path = \"/b\"; url = \"https://e.org/b\"; sha256 = 5; },\n" /* 19 */
		"  \"not a group\",\n"						 /* 20 */
		"  { name = \"z\"; path = \"/z\"; }\n"				 /* 21 */
		");\n"								 /* 22 */
		"other = 1;\n";							 /* 23 */
	struct image_catalog cat;
	struct diags d;
	char *out;

	diags_init(&d);
	assert_int_equal(image_catalog_parse(bad, "cat.conf", &cat, &d), -1);
	assert_int_equal(cat.n, 0);
	assert_null(cat.v);
	out = diag_text(&d);
	expect_line(out, "cat.conf:23: other: unknown key (the catalog has only images)\n");
	expect_line(out, "cat.conf:3: name: 'Debian 12' is not a valid image name");
	expect_line(out, "cat.conf:4: url: 'ftp://x' is not an http, https or file:/// URL\n");
	expect_line(out, "cat.conf:5: sha256: 'xyz' is not a sha256 (64 hex digits, as sha256sum "
			 "prints)\n");
	expect_line(out, "cat.conf:6: colour: unknown key (known: name, url, path, sha256, "
			 "format, kernel, initrd, cmdline)\n");
	expect_line(out, "cat.conf:8: sha256: missing for url https://example.org/a.qcow2: ");
	expect_line(out, "cat.conf:13: name: image 'dup' is already defined at line 8\n");
	expect_line(out, "cat.conf:14: path: 'relative.img': it is not an absolute path\n");
	expect_line(out, "cat.conf:15: format: 'vmdk' is not a supported format (qcow2 or raw)\n");
	expect_line(out, "cat.conf:16: size: unknown key");
	expect_line(out, "cat.conf:18: initrd: needs kernel as well\n");
	expect_line(out, "cat.conf:19: sha256: must be a string (in double quotes)\n");
	expect_line(out, "cat.conf:19: name: missing (every image needs a name)\n");
	expect_line(out, "cat.conf:19: path: give either url or path, not both\n");
	/* sha256 = 5 was refused above, so the url also has none */
	expect_line(out, "cat.conf:19: sha256: missing for url https://e.org/b: ");
	expect_line(out, "cat.conf:20: images: entry 6 is not a group in braces");
	assert_int_equal(d.errors, 16); /* exactly the lines above */
	free(out);
	diags_free(&d);
}

static void test_catalog_syntax(void **state)
{
	struct image_catalog cat;
	struct diags d;
	char *out;

	diags_init(&d);
	assert_int_equal(image_catalog_parse("images = (\n  { name = \"a\" }\n  { }\n);\n",
					     "s.conf", &cat, &d),
			 -1);
	out = diag_text(&d);
	expect_line(out, "s.conf:3: ");
	free(out);
	diags_free(&d);

	diags_init(&d);
	assert_int_equal(
		image_catalog_parse("# x\n  @include \"/etc/passwd\"\n", "s.conf", &cat, &d), -1);
	out = diag_text(&d);
	assert_string_equal(out, "s.conf:2: @include is not supported in the image catalog\n");
	free(out);
	diags_free(&d);

	diags_init(&d);
	assert_int_equal(image_catalog_parse("# nothing\n", "s.conf", &cat, &d), -1);
	out = diag_text(&d);
	expect_line(out, "s.conf: images: missing");
	free(out);
	diags_free(&d);

	diags_init(&d);
	assert_int_equal(image_catalog_parse("\nimages = { name = \"a\"; };\n", "s.conf", &cat, &d),
			 -1);
	out = diag_text(&d);
	expect_line(out, "s.conf:2: images: must be a list in parentheses");
	free(out);
	diags_free(&d);

	diags_init(&d);
	assert_int_equal(image_catalog_parse("images = ();\n", "s.conf", &cat, &d), 0);
	assert_int_equal(cat.n, 0);
	image_catalog_free(&cat);
	assert_int_equal(image_catalog_load("/nonexistent/images.conf", &cat, &d), -1);
	out = diag_text(&d);
	expect_line(out, "/nonexistent/images.conf: cannot read the image catalog: ");
	free(out);
	diags_free(&d);
}

static void test_deploy_example(void **state)
{
	/* deploy/images.conf must parse: it is what gets installed */
	const char *src = getenv("TUAP_SRC");
	char path[512];
	struct image_catalog cat;
	struct diags d;

	if (!src) {
		fprintf(stderr, "TUAP_SRC not set (run through ctest): skipped\n");
		skip();
	}
	snprintf(path, sizeof(path), "%s/deploy/images.conf", src);
	diags_init(&d);
	if (image_catalog_load(path, &cat, &d) < 0) {
		char *out = diag_text(&d);
		fail_msg("%s", out);
	}
	assert_true(cat.n >= 1);
	image_catalog_free(&cat);
	diags_free(&d);
}

/* ---- resolve ---- */

static void test_resolve(void **state)
{
	struct image_catalog cat;
	struct image_entry e;
	struct tuap_err err;
	struct diags d;
	char qcow[128], raw[128], sha[SHA256_HEX_LEN];

	diags_init(&d);
	assert_int_equal(image_catalog_parse(good, "/etc/tuap/images.conf", &cat, &d), 0);

	assert_int_equal(image_resolve(&cat, dir, "debian-12", &e, &err), 0);
	assert_string_equal(e.name, "debian-12");
	assert_int_equal(image_resolve(&cat, dir, cat.v[0].url, &e, &err), 0);
	assert_string_equal(e.name, "debian-12");

	assert_int_equal(image_resolve(&cat, dir, "https://example.org/other.qcow2", &e, &err), -1);
	assert_string_equal(err.key, "image");
	assert_string_equal(
		err.msg, "https://example.org/other.qcow2 is not in the image catalog "
			 "/etc/tuap/images.conf; tuap downloads only images with a known "
			 "sha256: add { name = \"...\"; url = \"https://example.org/other.qcow2\"; "
			 "sha256 = \"...\"; } to its images list and use the name");
	assert_int_equal(image_resolve(&cat, dir, "ubuntu", &e, &err), -1);
	assert_string_equal(err.msg, "unknown image 'ubuntu' (the catalog /etc/tuap/images.conf "
				     "has: debian-12, local.raw)");
	assert_int_equal(image_resolve(&cat, dir, "", &e, &err), -1);
	/* a catalog path that does not exist cannot be hashed */
	assert_int_equal(image_resolve(&cat, dir, "local.raw", &e, &err), -1);
	assert_string_equal(err.key, "path");
	assert_int_equal(err.line, 6);

	/* absolute paths outside the catalog: hashed, format probed */
	snprintf(qcow, sizeof(qcow), "%s/My Image.v2.qcow2", dir);
	snprintf(raw, sizeof(raw), "%s/disk.img", dir);
	assert_int_equal(fs_write_atomic(qcow, "QFI\xfb\0\0\0\3rest", 12, 0644, &err), 0);
	assert_int_equal(fs_write_atomic(raw, "plain bytes", 11, 0644, &err), 0);
	assert_int_equal(image_resolve(&cat, dir, qcow, &e, &err), 0);
	assert_string_equal(e.format, "qcow2");
	assert_string_equal(e.name, "my-image");
	assert_string_equal(e.path, qcow);
	sha256_hex("QFI\xfb\0\0\0\3rest", 12, sha);
	assert_string_equal(e.sha256, sha);
	assert_int_equal(image_resolve(&cat, dir, raw, &e, &err), 0);
	assert_string_equal(e.format, "raw");
	assert_string_equal(e.name, "disk");
	assert_int_equal(image_resolve(&cat, dir, "/nonexistent.qcow2", &e, &err), -1);
	assert_non_null(strstr(err.msg, "/nonexistent.qcow2"));

	/* a site names only what the operator put below image_dir (17.5) */
	char link[160], fifo[160], dotdot[200];
	assert_int_equal(image_resolve(&cat, "/tmp", "/etc/passwd", &e, &err), -1);
	assert_non_null(strstr(err.msg, "/etc/passwd is neither in the image catalog nor below "
					"tuapd's image_dir /tmp"));
	assert_int_equal(image_resolve(&cat, dir, "/dev/zero", &e, &err), -1);
	assert_non_null(strstr(err.msg, "neither in the image catalog nor below"));
	snprintf(link, sizeof(link), "%s/key.qcow2", dir);
	assert_int_equal(symlink("/etc/passwd", link), 0);
	assert_int_equal(image_resolve(&cat, dir, link, &e, &err), -1);
	assert_non_null(strstr(err.msg, "neither in the image catalog nor below"));
	unlink(link);
	snprintf(fifo, sizeof(fifo), "%s/fifo.raw", dir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	assert_int_equal(image_resolve(&cat, dir, fifo, &e, &err), -1);
	assert_non_null(strstr(err.msg, "is not a regular file"));
	unlink(fifo);
	snprintf(dotdot, sizeof(dotdot), "%s/../%s", dir, strrchr(dir, '/') + 1);
	assert_int_equal(image_resolve(&cat, dir, dotdot, &e, &err), -1);
	assert_non_null(strstr(err.msg, "a '..' component"));
	assert_int_equal(image_resolve(&cat, "/nonexistent-dir", raw, &e, &err), -1);
	assert_non_null(strstr(err.msg, "image_dir /nonexistent-dir does not exist"));
	image_catalog_free(&cat);
	diags_free(&d);
}

/* ---- fetch ---- */

static void start_server(void)
{
	int p[2];
	char line[256] = "";
	size_t n = 0;

	assert_int_equal(pipe(p), 0);
	server = fork();
	assert_true(server >= 0);
	if (server == 0) {
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		execlp("python3", "python3", "-u", "-m", "http.server", "0", "--bind", "127.0.0.1",
		       "--directory", srv, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	/* "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ..." within 20 s */
	while (n + 1 < sizeof(line) && !strchr(line, '\n')) {
		struct pollfd pf = {.fd = p[0], .events = POLLIN};
		if (poll(&pf, 1, 20000) != 1)
			fail_msg("python3 http.server did not start within 20 s");
		ssize_t r = read(p[0], line + n, sizeof(line) - n - 1);
		if (r <= 0)
			fail_msg("python3 http.server exited: %s", line);
		n += (size_t)r;
		line[n] = '\0';
	}
	close(p[0]); /* it logs requests to stderr, not here */
	const char *s = strstr(line, " port ");
	assert_non_null(s);
	port = atoi(s + 6);
	assert_true(port > 0);
}

static int setup(void **state)
{
	struct tuap_err err;
	char path[160];

	snprintf(dir, sizeof(dir), "/tmp/tuap-image-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(srv, sizeof(srv), "%s/srv", dir);
	snprintf(cache, sizeof(cache), "%s/cache", dir);
	if (fs_mkdir_p(srv, 0755, &err) < 0)
		return -1;
	memcpy(base, "QFI\xfb", 4);
	for (size_t i = 4; i < sizeof(base); i++)
		base[i] = (unsigned char)(i * 7 + (i >> 9));
	sha256_hex(base, sizeof(base), base_sha);
	snprintf(path, sizeof(path), "%s/base.qcow2", srv);
	if (fs_write_atomic(path, base, sizeof(base), 0644, &err) < 0)
		return -1;
	/* requests to 127.0.0.1 must not go through a proxy from the environment */
	unsetenv("http_proxy");
	unsetenv("HTTP_PROXY");
	unsetenv("https_proxy");
	unsetenv("all_proxy");
	unsetenv("ALL_PROXY");
	setenv("no_proxy", "127.0.0.1,localhost", 1);
	return 0;
}

static int teardown(void **state)
{
	if (server > 0) {
		kill(server, SIGTERM);
		waitpid(server, NULL, 0);
	}
	char *argv[] = {"rm", "-rf", dir, NULL};
	pid_t pid = fork();
	if (pid == 0) {
		execvp("rm", argv);
		_exit(127);
	}
	waitpid(pid, NULL, 0);
	return 0;
}

static struct image_entry url_entry(const char *url, const char *sha)
{
	struct image_entry e = {0};

	snprintf(e.name, sizeof(e.name), "base");
	snprintf(e.url, sizeof(e.url), "%s", url);
	snprintf(e.sha256, sizeof(e.sha256), "%s", sha);
	snprintf(e.format, sizeof(e.format), "qcow2");
	snprintf(e.file, sizeof(e.file), "/etc/tuap/images.conf");
	e.line = 7;
	return e;
}

struct prog {
	uint64_t done, total;
	int calls;
	int stop_at; /* the call that says stop; 0: never */
};

static bool on_progress(uint64_t done, uint64_t total, void *arg)
{
	struct prog *p = arg;

	assert_true(done >= p->done); /* never goes back */
	p->done = done;
	p->total = total;
	p->calls++;
	return p->calls != p->stop_at;
}

static size_t count_files(const char *d)
{
	DIR *dp = opendir(d);
	struct dirent *de;
	size_t n = 0;

	if (!dp)
		return 0;
	while ((de = readdir(dp)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(dp);
	return n;
}

static void check_content(const char *path)
{
	struct tuap_err err;
	size_t len;
	char *d = fs_read_file(path, 1 << 20, &len, &err);

	assert_non_null(d);
	assert_int_equal(len, sizeof(base));
	assert_memory_equal(d, base, len);
	free(d);
}

static void test_fetch_http(void **state)
{
	char url[128], path[512], want[512];
	struct tuap_err err;
	struct prog p = {0};

	start_server();
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/base.qcow2", port);
	struct image_entry e = url_entry(url, base_sha);
	if (image_fetch(&e, cache, on_progress, &p, path, sizeof(path), &err) < 0)
		fail_msg("image_fetch: %s", err.msg);
	snprintf(want, sizeof(want), "%s/base-%.16s.qcow2", cache, base_sha);
	assert_string_equal(path, want);
	check_content(path);
	assert_true(p.calls >= 1);
	assert_int_equal(p.done, sizeof(base));
	assert_int_equal(p.total, sizeof(base));
	assert_int_equal(count_files(cache), 1); /* no temp file left */

	/* cached: works with the file gone from the server */
	char served[160], aside[160];
	snprintf(served, sizeof(served), "%s/base.qcow2", srv);
	snprintf(aside, sizeof(aside), "%s/aside", dir);
	assert_int_equal(rename(served, aside), 0);
	memset(&p, 0, sizeof(p));
	assert_int_equal(image_fetch(&e, cache, on_progress, &p, path, sizeof(path), &err), 0);
	assert_int_equal(p.done, sizeof(base));

	/* a damaged cache file is noticed and fetched again */
	FILE *f = fopen(path, "r+");
	assert_non_null(f);
	fputc('X', f);
	fclose(f);
	assert_int_equal(image_fetch(&e, cache, NULL, NULL, path, sizeof(path), &err), -1);
	assert_non_null(strstr(err.msg, "The requested URL returned error: 404"));
	assert_int_equal(count_files(cache), 0); /* the damaged file went, nothing came */
	assert_int_equal(rename(aside, served), 0);
	assert_int_equal(image_fetch(&e, cache, NULL, NULL, path, sizeof(path), &err), 0);
	check_content(path);
}

static void test_fetch_bad_sha(void **state)
{
	char url[128], path[512], bad_cache[128];
	const char *wrong = "1111111111111111111111111111111111111111111111111111111111111111";
	struct tuap_err err;
	char buf[1024];

	if (server <= 0)
		start_server();
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/base.qcow2", port);
	snprintf(bad_cache, sizeof(bad_cache), "%s/bad-cache", dir);
	struct image_entry e = url_entry(url, wrong);
	assert_int_equal(image_fetch(&e, bad_cache, NULL, NULL, path, sizeof(path), &err), -1);
	assert_string_equal(err.file, "/etc/tuap/images.conf");
	assert_int_equal(err.line, 7);
	assert_string_equal(err.key, "sha256");
	err_str(&err, buf, sizeof(buf));
	assert_non_null(strstr(buf,
			       "expected sha256 "
			       "1111111111111111111111111111111111111111111111111111111111111111"));
	char got[100];
	snprintf(got, sizeof(got), "got %s (%zu bytes)", base_sha, sizeof(base));
	assert_non_null(strstr(buf, got));
	assert_non_null(strstr(buf, "the file was deleted"));
	assert_int_equal(count_files(bad_cache), 0);

	/* 404 and a closed port: errors, nothing left */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/missing.qcow2", port);
	e = url_entry(url, base_sha);
	assert_int_equal(image_fetch(&e, bad_cache, NULL, NULL, path, sizeof(path), &err), -1);
	assert_non_null(strstr(err.msg, "cannot download http://127.0.0.1:"));
	assert_int_equal(count_files(bad_cache), 0);
	e = url_entry("http://127.0.0.1:1/x.qcow2", base_sha);
	assert_int_equal(image_fetch(&e, bad_cache, NULL, NULL, path, sizeof(path), &err), -1);
	assert_non_null(strstr(err.msg, "cannot download http://127.0.0.1:1/x.qcow2: "));
	assert_int_equal(count_files(bad_cache), 0);

	/* no sha256: never downloaded */
	e = url_entry(url, "");
	assert_int_equal(image_fetch(&e, bad_cache, NULL, NULL, path, sizeof(path), &err), -1);
	assert_non_null(strstr(err.msg, "not downloaded"));
}

static void test_fetch_file_url_and_path(void **state)
{
	char url[256], path[512], local[160], file_cache[128];
	struct tuap_err err;
	struct prog p = {0};

	snprintf(local, sizeof(local), "%s/base.qcow2", srv);
	snprintf(url, sizeof(url), "file://%s", local);
	snprintf(file_cache, sizeof(file_cache), "%s/file-cache", dir);
	struct image_entry e = url_entry(url, base_sha);
	assert_int_equal(image_fetch(&e, file_cache, NULL, NULL, path, sizeof(path), &err), 0);
	check_content(path);
	e = url_entry(url, "2222222222222222222222222222222222222222222222222222222222222222");
	assert_int_equal(image_fetch(&e, file_cache, NULL, NULL, path, sizeof(path), &err), -1);
	assert_non_null(strstr(err.msg, base_sha));
	assert_int_equal(count_files(file_cache), 1); /* only the good one */

	/* a local image is verified in place and never deleted */
	struct image_entry l = {0};
	snprintf(l.name, sizeof(l.name), "local");
	snprintf(l.path, sizeof(l.path), "%s", local);
	snprintf(l.sha256, sizeof(l.sha256), "%s", base_sha);
	snprintf(l.format, sizeof(l.format), "qcow2");
	assert_int_equal(image_fetch(&l, cache, on_progress, &p, path, sizeof(path), &err), 0);
	assert_string_equal(path, local);
	assert_int_equal(p.done, sizeof(base));
	snprintf(l.sha256, sizeof(l.sha256),
		 "3333333333333333333333333333333333333333333333333333333333333333");
	assert_int_equal(image_fetch(&l, cache, NULL, NULL, path, sizeof(path), &err), -1);
	assert_non_null(strstr(err.msg, "does not match the catalog: expected sha256 3333"));
	assert_non_null(strstr(err.msg, base_sha));
	assert_int_equal(fs_exists(local), 1);

	/* boot files must be readable */
	snprintf(l.sha256, sizeof(l.sha256), "%s", base_sha);
	snprintf(l.kernel, sizeof(l.kernel), "%s/vmlinuz", dir);
	assert_int_equal(image_fetch(&l, cache, NULL, NULL, path, sizeof(path), &err), -1);
	assert_string_equal(err.key, "kernel");
}

/* 17.5: the worker gives an image up when its job no longer waits: a progress callback that
 * says stop ends the hashing, the download and the verification, leaving nothing behind. */
static void test_stop(void **state)
{
	char big[160], url[128], path[512], stop_cache[160];
	struct image_catalog cat = {0};
	struct image_entry e;
	struct tuap_err err;
	struct prog p = {.stop_at = 2};
	static char mib[1 << 20];
	FILE *f;

	snprintf(big, sizeof(big), "%s/big.raw", dir);
	f = fopen(big, "w");
	assert_non_null(f);
	for (int i = 0; i < 8; i++)
		assert_int_equal(fwrite(mib, 1, sizeof(mib), f), sizeof(mib));
	assert_int_equal(fclose(f), 0);

	/* hashing a path below image_dir: stopped at the second MiB */
	assert_int_equal(image_resolve_progress(&cat, dir, big, on_progress, &p, &e, &err), -1);
	assert_non_null(strstr(err.msg, FILE_STOPPED));
	assert_int_equal(p.calls, 2);
	assert_int_equal(p.done, 2u << 20);
	assert_int_equal(p.total, 8u << 20);
	/* not stopped: hashed once, by resolve; fetch does not read it again */
	memset(&p, 0, sizeof(p));
	assert_int_equal(image_resolve_progress(&cat, dir, big, on_progress, &p, &e, &err), 0);
	assert_true(e.hashed);
	assert_int_equal(p.calls, 8);
	memset(&p, 0, sizeof(p));
	assert_int_equal(image_fetch(&e, cache, on_progress, &p, path, sizeof(path), &err), 0);
	assert_int_equal(p.calls, 1);
	assert_int_equal(p.done, 8u << 20);
	/* a catalog image is verified by fetch, and that can be stopped too */
	e.hashed = false;
	p = (struct prog){.stop_at = 1};
	assert_int_equal(image_fetch(&e, cache, on_progress, &p, path, sizeof(path), &err), -1);
	assert_non_null(strstr(err.msg, FILE_STOPPED));

	/* a download: stopped at curl's first progress call, no temp file left */
	if (server <= 0)
		start_server();
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/base.qcow2", port);
	snprintf(stop_cache, sizeof(stop_cache), "%s/stop-cache", dir);
	e = url_entry(url, base_sha);
	p = (struct prog){.stop_at = 1};
	assert_int_equal(image_fetch(&e, stop_cache, on_progress, &p, path, sizeof(path), &err),
			 -1);
	assert_non_null(strstr(err.msg, FILE_STOPPED));
	assert_int_equal(count_files(stop_cache), 0);
	unlink(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_catalog_good),
		cmocka_unit_test(test_catalog_bad),
		cmocka_unit_test(test_catalog_syntax),
		cmocka_unit_test(test_deploy_example),
		cmocka_unit_test(test_resolve),
		cmocka_unit_test(test_fetch_http),
		cmocka_unit_test(test_fetch_bad_sha),
		cmocka_unit_test(test_fetch_file_url_and_path),
		cmocka_unit_test(test_stop),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
