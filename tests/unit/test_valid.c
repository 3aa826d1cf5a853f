/*
 * Unit tests for common/valid.c: every name, address and path rule that tuap-ctl, tuapd and
 * tuap-agent share (one function each, so a rule cannot differ between the programs).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "valid.h"

/* The rule's verdict and, when it refuses, that its reason holds want. */
static void expect(int (*rule)(const char *, char *, size_t), const char *s, const char *want)
{
	char why[256] = "";
	int rc = rule(s, why, sizeof(why));

	if (!want && rc != 0) {
		fprintf(stderr, "'%s' refused: %s\n", s, why);
		fail();
	}
	if (want && (rc != -1 || !strstr(why, want))) {
		fprintf(stderr, "'%s': rc %d, why '%s', want '%s'\n", s, rc, why, want);
		fail();
	}
}

static void test_valid_names(void **state)
{
	static const char *const dom_ok[] = {"example.test", "a",      "xn--bcher-kva.example",
					     "1.example",    "a-b.c0", "localhost"};
	static const char *const dom_bad[] = {"",
					      ".x",
					      "x.",
					      "a..b",
					      "-a.b",
					      "a-.b",
					      "a_b.c",
					      "1.2.3.4",
					      "a b",
					      "ex\xc3\xa9.test",
					      "Example.test"};
	static const char *const user_ok[] = {"root",  "_apt", "www-data",
					      "user$", "a",    "abcdefghijklmnopqrstuvwxyz012345"};
	static const char *const user_bad[] = {"",
					       "Root",
					       "1user",
					       "us$er",
					       "a.b",
					       "user name",
					       "abcdefghijklmnopqrstuvwxyz0123456",
					       "-x"};
	char why[256], label[80], longname[300];

	for (size_t i = 0; i < sizeof(dom_ok) / sizeof(dom_ok[0]); i++)
		assert_int_equal(valid_domain_name(dom_ok[i], why, sizeof(why)), 0);
	for (size_t i = 0; i < sizeof(dom_bad) / sizeof(dom_bad[0]); i++) {
		why[0] = '\0';
		assert_int_equal(valid_domain_name(dom_bad[i], why, sizeof(why)), -1);
		assert_true(why[0] != '\0');
	}
	memset(label, 'a', 64);
	strcpy(label + 64, ".test");
	assert_int_equal(valid_domain_name(label, why, sizeof(why)), -1);
	assert_string_equal(why, "a label is longer than 63 characters");
	strcpy(label + 63, ".test"); /* 63 characters are fine */
	assert_int_equal(valid_domain_name(label, why, sizeof(why)), 0);
	for (int i = 0; i < 254; i += 2)
		memcpy(longname + i, "a.", 2);
	longname[253] = '\0'; /* 253 characters ending in "a" */
	assert_int_equal(valid_domain_name(longname, why, sizeof(why)), 0);
	longname[253] = 'a';
	longname[254] = '\0';
	assert_int_equal(valid_domain_name(longname, why, sizeof(why)), -1);
	for (size_t i = 0; i < sizeof(user_ok) / sizeof(user_ok[0]); i++)
		assert_int_equal(valid_user_name(user_ok[i], why, sizeof(why)), 0);
	for (size_t i = 0; i < sizeof(user_bad) / sizeof(user_bad[0]); i++)
		assert_int_equal(valid_user_name(user_bad[i], why, sizeof(why)), -1);
}

static void test_valid_packages_and_mail(void **state)
{
	static const char *const pkg_ok[] = {
		"git",	   "libc6:amd64", "nginx=1.24.0-1", "nginx:amd64=1:1.2~rc1+b2",
		"gcc-c++", "python3.11",  "NetworkManager", "perl-Data-Dumper",
		"R",	   "g++",	  "lib_x"};
	static const char *const pkg_bad[] = {
		"",    "nginx; rm -rf /", "-x",	  "a b",  "$(reboot)", "a:", "a=", "a=x1", "a|b",
		"a>b", "a:AMD64",	  "a`b`", "a\nb", "a&&b"};
	static const char *const mail_ok[] = {"george@troglodyne.net", "a.b+tag@sub.example.com",
					      "x_y%z-1@example.test"};
	static const char *const mail_bad[] = {
		"",	    "x",	  "a@b@c.de",	 "@x.com",     ".a@x.com",
		"a.@x.com", "a..b@x.com", "a@localhost", "|cmd@x.com", "a/b@x.com",
		"a@-x.com", "a b@x.com",  "a@x.com\n"};
	char why[256];

	for (size_t i = 0; i < sizeof(pkg_ok) / sizeof(pkg_ok[0]); i++)
		if (valid_package_name(pkg_ok[i], why, sizeof(why)) != 0)
			fail_msg("%s: %s", pkg_ok[i], why);
	for (size_t i = 0; i < sizeof(pkg_bad) / sizeof(pkg_bad[0]); i++)
		if (valid_package_name(pkg_bad[i], why, sizeof(why)) != -1)
			fail_msg("'%s' passed", pkg_bad[i]);
	for (size_t i = 0; i < sizeof(mail_ok) / sizeof(mail_ok[0]); i++)
		if (valid_email(mail_ok[i], why, sizeof(why)) != 0)
			fail_msg("%s: %s", mail_ok[i], why);
	for (size_t i = 0; i < sizeof(mail_bad) / sizeof(mail_bad[0]); i++)
		if (valid_email(mail_bad[i], why, sizeof(why)) != -1)
			fail_msg("'%s' passed", mail_bad[i]);
}

static void test_parse_size(void **state)
{
	static const struct {
		const char *s;
		uint64_t v;
	} ok[] = {
		{"42949672960", 42949672960ULL},
		{"40G", 40ULL << 30},
		{"40GiB", 40ULL << 30},
		{"40GB", 40ULL << 30},
		{"40gb", 40ULL << 30},
		{"40Gi", 40ULL << 30},
		{"40 G", 40ULL << 30},
		{"512M", 512ULL << 20},
		{"1.5T", 3ULL << 39},
		{"1K", 1024},
		{"100B", 100},
		{"0.5k", 512},
		{"1.3M", 1363148}, /* 1.3 * 1048576 = 1363148.8, rounded down */
		{"18446744073709551615", UINT64_MAX},
		{"16777215T", 16777215ULL << 40},
	};
	static const struct {
		const char *s;
		const char *why;
	} bad_sizes[] = {
		{"", "it is empty"},
		{"0", "it is zero"},
		{"0G", "it is zero"},
		{"-1G", "it is negative"},
		{"G", "it does not start with a number"},
		{" 1G", "it does not start with a number"},
		{"10X", "'X' is not a unit (use K, M, G or T)"},
		{"10GiBs", "'GiBs' is not a unit (use K, M, G or T)"},
		{"10P", "'P' is not a unit (use K, M, G or T)"},
		{"1.5", "a fraction needs a unit, as in 1.5G"},
		{"1.G", "a digit must follow the '.'"},
		{"1.0000001G", "it has more than 6 decimals"},
		{"18446744073709551616", "it is too large"},
		{"16777216T", "it is too large"},
		{"0x10", "'x10' is not a unit (use K, M, G or T)"},
	};
	char why[256];
	uint64_t v;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		if (parse_size(ok[i].s, &v, why, sizeof(why)) != 0)
			fail_msg("%s: %s", ok[i].s, why);
		assert_int_equal(v, ok[i].v);
	}
	for (size_t i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++) {
		assert_int_equal(parse_size(bad_sizes[i].s, &v, why, sizeof(why)), -1);
		assert_string_equal(why, bad_sizes[i].why);
	}
}

static void test_parse_ip(void **state)
{
	static const struct {
		const char *s;
		int family, prefix;
		bool given;
		const char *text;
	} ok[] = {
		{"192.0.2.1", AF_INET, 24, false, "192.0.2.1/24"},
		{"192.0.2.1/32", AF_INET, 32, true, "192.0.2.1/32"},
		{"10.0.0.1/0", AF_INET, 0, true, "10.0.0.1/0"},
		{"2001:DB8:0:0::1", AF_INET6, 64, false, "2001:db8::1/64"},
		{"2001:db8::1/128", AF_INET6, 128, true, "2001:db8::1/128"},
		{"::ffff:192.0.2.1/96", AF_INET6, 96, true, "::ffff:192.0.2.1/96"},
	};
	static const char *const bad_ips[] = {"",
					      "/24",
					      "192.0.2.1/33",
					      "2001:db8::1/129",
					      "192.0.2.1/",
					      "192.0.2.1/ 24",
					      "192.0.2.1/2a",
					      "192.0.2",
					      "1.2.3.4.5",
					      "fe80::1%eth0",
					      "256.1.1.1",
					      "1.2.3.4/-1",
					      "1.2.3.4/0032",
					      "::g",
					      "example.com"};
	struct ip_addr ip;
	char why[256];

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		if (parse_ip(ok[i].s, true, &ip, why, sizeof(why)) != 0)
			fail_msg("%s: %s", ok[i].s, why);
		assert_int_equal(ip.family, ok[i].family);
		assert_int_equal(ip.prefix, ok[i].prefix);
		assert_int_equal(ip.prefix_given, ok[i].given);
		assert_string_equal(ip.text, ok[i].text);
	}
	for (size_t i = 0; i < sizeof(bad_ips) / sizeof(bad_ips[0]); i++) {
		if (parse_ip(bad_ips[i], true, &ip, why, sizeof(why)) != -1)
			fail_msg("'%s' passed", bad_ips[i]);
		assert_int_equal(ip.family, 0);
	}
	assert_int_equal(parse_ip("192.0.2.1/24", false, &ip, why, sizeof(why)), -1);
	assert_string_equal(why, "it has a /prefix, which does not belong here");
	assert_int_equal(parse_ip("192.0.2.1", false, &ip, why, sizeof(why)), 0);
	assert_int_equal(ip.addr[3], 1);
}

static void test_job_id(void **state)
{
	(void)state;
	expect(valid_job_id, "job-1.2_x", NULL);
	expect(valid_job_id, "p-20260101T120000Z-0001", NULL);
	expect(valid_job_id, "../x", "");
	expect(valid_job_id, ".x", "");
	expect(valid_job_id, "", "");
	expect(valid_job_id, "a/b", "");
}

static void test_make_target(void **state)
{
	(void)state;
	expect(valid_make_target, "reload", NULL);
	expect(valid_make_target, "sub/dir.o", NULL);
	expect(valid_make_target, "", "empty");
	expect(valid_make_target, "-j8", "starts with '-'");
	expect(valid_make_target, "CC=evil", "holds '='");
	expect(valid_make_target, "a b", "holds a space");
	expect(valid_make_target, "a;rm", "holds ';'");
}

static void test_mail_inert(void **state)
{
	(void)state;
	expect(valid_email, "first.last+tag@example.org", NULL);
	expect(valid_email, "|/bin/sh@x", "");
	expect(valid_email, "/tmp/f@x", "");
	expect(valid_email, "a b@c", "");
	expect(valid_email, "nobody", "");
	expect(valid_email, "a@b\nroot: evil", "");
	expect(valid_email, "a,b@c", "");
}

static int host_port(const char *s, char *why, size_t len)
{
	return valid_host_port(s, false, why, len);
}

static int host_port_wild(const char *s, char *why, size_t len)
{
	return valid_host_port(s, true, why, len);
}

static void test_host_port(void **state)
{
	(void)state;
	expect(host_port, "tuapd.example.org:5555", NULL);
	expect(host_port, "127.0.0.1:1", NULL);
	expect(host_port, "[::1]:65535", NULL);
	expect(host_port, "*:5555", "the host holds '*'");
	expect(host_port_wild, "*:5555", NULL);
	expect(host_port, "host", "not HOST:PORT");
	expect(host_port, ":5555", "not HOST:PORT");
	expect(host_port, "a b:1", "the host holds a space");
	expect(host_port, "[::1:5", "[ADDRESS]:PORT");
	expect(host_port, "[nope]:5", "'nope' is not an IPv6 address");
	expect(host_port, "h:0", "from 1 to 65535");
	expect(host_port, "h:65536", "from 1 to 65535");
	expect(host_port, "h:99999999999999999999", "from 1 to 65535");
	expect(host_port, "h:", "from 1 to 65535");
	expect(host_port, "h:1x", "from 1 to 65535");
}

static void test_abs_path(void **state)
{
	char longpath[4200];

	(void)state;
	expect(valid_abs_path, "/", NULL);
	expect(valid_abs_path, "/vms", NULL);
	expect(valid_abs_path, "/var/lib/tuap/.x..y", NULL);
	expect(valid_abs_path, "vms", "not an absolute path");
	expect(valid_abs_path, "", "not an absolute path");
	expect(valid_abs_path, "/vms/../etc", "a '..' component");
	expect(valid_abs_path, "/vms/./x", "a '.' component");
	expect(valid_abs_path, "/vms/..", "a '..' component");
	expect(valid_abs_path, "/vms//x", "an empty component");
	expect(valid_abs_path, "/vms/", "ends with '/'");
	expect(valid_abs_path, "/vms\n/x", "");
	expect(valid_abs_path, "/vms\x7f", "");
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	expect(valid_abs_path, longpath, "longer than 4095");
}

static int line_no_colon(const char *s, char *why, size_t len)
{
	return valid_text_line(s, 16, false, why, len);
}

static int line_colon(const char *s, char *why, size_t len)
{
	return valid_text_line(s, 16, true, why, len);
}

static void test_text_line(void **state)
{
	(void)state;
	expect(line_no_colon, "Alice Example", NULL);
	expect(line_no_colon, "tab\there", NULL); /* both sides allow a tab */
	expect(line_no_colon, "a:b", "':'");
	expect(line_colon, "a:b", NULL);
	expect(line_colon, "two\nlines", "newline");
	expect(line_colon, "bell\a", "control character 0x07");
	expect(line_colon, "esc\x1b[2J", "control character 0x1b");
	expect(line_colon, "0123456789abcdef", NULL);
	expect(line_colon, "0123456789abcdefg", "longer than 16");
}

static void test_sudo_rule(void **state)
{
	(void)state;
	expect(valid_sudo_rule, "ALL=(ALL) NOPASSWD:ALL", NULL);
	expect(valid_sudo_rule, "ALL=(www-data) /usr/bin/systemctl reload nginx", NULL);
	/* cloud-init writes "USER RULE": a leading ',' gives the rule to www-data as well */
	expect(valid_sudo_rule, ", www-data ALL=(ALL) NOPASSWD:ALL", "starts with ','");
	expect(valid_sudo_rule, "  , root ALL=(ALL) ALL", "starts with ','");
	expect(valid_sudo_rule, "ALL=(ALL) ALL \\", "ends with '\\'");
	expect(valid_sudo_rule, "ALL=(ALL) ALL\nbob ALL=(ALL) ALL", "newline");
	expect(valid_sudo_rule, "", "empty");
	expect(valid_sudo_rule, "   ", "empty");
	expect(valid_sudo_rule, "NOPASSWD", "no '='");
}

static void test_home_dir(void **state)
{
	(void)state;
	expect(valid_home_dir, "/home/alice", NULL);
	expect(valid_home_dir, "/srv/www", NULL);
	expect(valid_home_dir, "/var/lib/postgresql", NULL);
	expect(valid_home_dir, "/rooted", NULL); /* a name that only starts like /root */
	expect(valid_home_dir, "/root", "the system directory /root");
	expect(valid_home_dir, "/root/x", "inside /root");
	expect(valid_home_dir, "/etc/ssh", "inside /etc");
	expect(valid_home_dir, "/usr/bin", "the system directory /usr/bin");
	expect(valid_home_dir, "/var/lib/tuap-agent/keys", "inside /var/lib/tuap-agent");
	expect(valid_home_dir, "/", "shared system directory");
	expect(valid_home_dir, "/home", "shared system directory");
	expect(valid_home_dir, "/tmp", "shared system directory");
	expect(valid_home_dir, "/home/../root", "a '..' component");
	expect(valid_home_dir, "home/alice", "not an absolute path");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_names), cmocka_unit_test(test_valid_packages_and_mail),
		cmocka_unit_test(test_parse_size),  cmocka_unit_test(test_parse_ip),
		cmocka_unit_test(test_job_id),	    cmocka_unit_test(test_mail_inert),
		cmocka_unit_test(test_make_target), cmocka_unit_test(test_host_port),
		cmocka_unit_test(test_abs_path),    cmocka_unit_test(test_text_line),
		cmocka_unit_test(test_sudo_rule),   cmocka_unit_test(test_home_dir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
