/*
 * Unit tests for config.c, the Config::Simple reader: syntax detection, the three syntaxes,
 * comments, quoting and lists as Text::ParseWords splits them, INI blocks, line numbers, errors
 * and bounds. Expected values follow Config::Simple 4.58 / Text::ParseWords (upstream.md §7).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "err.h"

/* Parses s; returns the number of errors. */
static size_t parse(const char *s, struct config *cfg, struct diags *d)
{
	diags_init(d);
	config_parse("p.conf", s, strlen(s), cfg, d);
	return d->errors;
}

static const char *printed(const struct diags *d)
{
	static char out[8192];
	FILE *f = fmemopen(out, sizeof(out), "w");

	assert_non_null(f);
	diags_print(d, f);
	fclose(f);
	return out;
}

/* Asserts that key holds exactly the n values given. */
static void check_values(const struct config *cfg, const char *key, size_t n, ...)
{
	const struct config_entry *e = config_get(cfg, key);
	va_list ap;

	assert_non_null(e);
	assert_int_equal(e->n_values, n);
	va_start(ap, n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(e->values[i], va_arg(ap, const char *));
	va_end(ap);
}

static void done(struct config *cfg, struct diags *d)
{
	config_free(cfg);
	diags_free(d);
}

static void test_simplified_ini(void **state)
{
	struct config cfg;
	struct diags d;

	assert_int_equal(parse("ips=192.168.1.1\n"
			       "gateway=192.168.1.254\n"
			       "resolvers= 192.168.1.253, 8.8.8.8\n"
			       "\n"
			       "# a comment\n"
			       "packages= git, tig, perlbrew\n",
			       &cfg, &d),
			 0);
	assert_int_equal(cfg.syntax, CONFIG_INI);
	assert_string_equal(cfg.path, "p.conf");
	assert_int_equal(cfg.n_entries, 4);
	assert_string_equal(cfg.entries[0].key, "default.ips");
	assert_int_equal(cfg.entries[0].line, 1);
	assert_int_equal(cfg.entries[3].line, 6);
	check_values(&cfg, "ips", 1, "192.168.1.1");
	check_values(&cfg, "default.ips", 1, "192.168.1.1");
	check_values(&cfg, "resolvers", 2, "192.168.1.253", "8.8.8.8");
	check_values(&cfg, "packages", 3, "git", "tig", "perlbrew");
	assert_null(config_get(&cfg, "size"));
	done(&cfg, &d);
}

static void test_ini_spacing_and_keys(void **state)
{
	struct config cfg;
	struct diags d;

	/* The key runs to the first '=' and must end in a word character; case is kept. */
	assert_int_equal(parse("  Size   =   10G   \n"
			       "my key = a = b\n"
			       "url=http://x/?a=b\n"
			       "\tindented=1\r\n",
			       &cfg, &d),
			 0);
	check_values(&cfg, "Size", 1, "10G");
	assert_null(config_get(&cfg, "size"));
	check_values(&cfg, "my key", 1, "a = b");
	check_values(&cfg, "url", 1, "http://x/?a=b");
	check_values(&cfg, "indented", 1, "1");
	done(&cfg, &d);
}

static void test_ini_blocks(void **state)
{
	struct config cfg;
	struct diags d;

	assert_int_equal(parse("top=1\n"
			       "[Web]\n"
			       "ips = 192.0.2.1\n"
			       "[ default ]\n"
			       "size=2\n"
			       "[  x  ]\n"
			       "k=3\n"
			       "[default]\n"
			       "top=4\n",
			       &cfg, &d),
			 0);
	assert_int_equal(cfg.syntax, CONFIG_INI);
	/* Block names keep their case; leading blanks go, trailing ones stay (Perl's regex). */
	assert_string_equal(cfg.entries[1].key, "Web.ips");
	assert_string_equal(cfg.entries[2].key, "default .size");
	assert_string_equal(cfg.entries[3].key, "x  .k");
	check_values(&cfg, "Web.ips", 1, "192.0.2.1");
	assert_null(config_get(&cfg, "ips"));
	/* "top" is in the default block twice: the last one wins. */
	check_values(&cfg, "top", 1, "4");
	assert_int_equal(config_get(&cfg, "top")->line, 9);
	done(&cfg, &d);
}

static void test_ini_block_first(void **state)
{
	struct config cfg;
	struct diags d;

	assert_int_equal(
		parse("; Config::Simple writes this comment\n[default]\nips=1\n", &cfg, &d), 0);
	assert_int_equal(cfg.syntax, CONFIG_INI);
	check_values(&cfg, "ips", 1, "1");
	assert_int_equal(cfg.entries[0].line, 3);
	done(&cfg, &d);
}

static void test_comments(void **state)
{
	struct config cfg;
	struct diags d;

	/* INI: '#' or ';' after blanks starts a comment; text after a value is the value. */
	assert_int_equal(parse("# c\n;c\n   # c\n\t; c\nips=1 # not a comment\n", &cfg, &d), 0);
	check_values(&cfg, "ips", 1, "1 # not a comment");
	done(&cfg, &d);
	/* The simple syntax skips only '#' in column 1. */
	assert_int_equal(parse("ips 1\n  # indented\n", &cfg, &d), 1);
	assert_non_null(strstr(printed(&d), "p.conf:2: syntax error: expected 'key value' as on "
					    "line 1, got '# indented' (a comment must start with "
					    "'#' in column 1)"));
	done(&cfg, &d);
	assert_int_equal(parse("ips: 1\n;x\n", &cfg, &d), 1);
	assert_non_null(strstr(printed(&d), "p.conf:2: syntax error"));
	done(&cfg, &d);
}

static void test_simple_syntax(void **state)
{
	struct config cfg;
	struct diags d;

	assert_int_equal(
		parse("# simple\nips 192.0.2.1, 192.0.2.2\nsize\t 10G\nbad-key x\n", &cfg, &d), 0);
	assert_int_equal(cfg.syntax, CONFIG_SIMPLE);
	assert_string_equal(cfg.entries[0].key, "ips");
	check_values(&cfg, "ips", 2, "192.0.2.1", "192.0.2.2");
	check_values(&cfg, "size", 1, "10G");
	check_values(&cfg, "bad-key", 1, "x");
	done(&cfg, &d);
	/* "key=value" does not fit the simple syntax; "key = value" does, with "= value". */
	assert_int_equal(parse("ips 1\nsize=10G\ncpus = 2\nflag\n", &cfg, &d), 2);
	assert_non_null(strstr(printed(&d), "p.conf:2: syntax error: expected 'key value' as on "
					    "line 1, got 'size=10G'\n"));
	assert_non_null(strstr(printed(&d), "p.conf:4: syntax error"));
	check_values(&cfg, "cpus", 1, "= 2");
	done(&cfg, &d);
}

static void test_http_syntax(void **state)
{
	struct config cfg;
	struct diags d;

	assert_int_equal(parse("ips: 192.0.2.1\nimage :https://x/y.img\ncpus:2\n", &cfg, &d), 0);
	assert_int_equal(cfg.syntax, CONFIG_HTTP);
	check_values(&cfg, "ips", 1, "192.0.2.1");
	check_values(&cfg, "image", 1, "https://x/y.img");
	check_values(&cfg, "cpus", 1, "2");
	done(&cfg, &d);
	assert_int_equal(parse("ips: 1\ngateway=2\n", &cfg, &d), 1);
	assert_non_null(strstr(printed(&d), "p.conf:2: syntax error: expected 'key: value' as on "
					    "line 1, got 'gateway=2'"));
	done(&cfg, &d);
}

static void test_detection(void **state)
{
	struct config cfg;
	struct diags d;

	/* Lines without a word character, and lines that fit no syntax, do not decide. */
	assert_int_equal(parse("----\na.b=1\nips: 2\n", &cfg, &d), 2);
	assert_int_equal(cfg.syntax, CONFIG_HTTP);
	assert_non_null(strstr(printed(&d), "p.conf:2: syntax error: expected 'key: value' as on "
					    "line 3, got 'a.b=1'"));
	done(&cfg, &d);
	/* The '=' rule comes before ':' */
	assert_int_equal(parse("a = b: c\n", &cfg, &d), 0);
	assert_int_equal(cfg.syntax, CONFIG_INI);
	check_values(&cfg, "a", 1, "b: c");
	done(&cfg, &d);
	assert_int_equal(parse("a b=c\n", &cfg, &d), 0);
	assert_int_equal(cfg.syntax, CONFIG_SIMPLE);
	check_values(&cfg, "a", 1, "b=c");
	done(&cfg, &d);
	/* "a-=1" looks like INI to the guess but its key does not end in a word character. */
	assert_int_equal(parse("a-=1\n", &cfg, &d), 1);
	done(&cfg, &d);
	/* Nothing at all: no entries, no error (domain.c reports the missing keys). */
	assert_int_equal(parse("", &cfg, &d), 0);
	assert_int_equal(cfg.n_entries, 0);
	done(&cfg, &d);
	assert_int_equal(parse("# only\n\n   \n; comments\n", &cfg, &d), 0);
	done(&cfg, &d);
	/* No line shows a syntax: every meaningful line is reported. */
	assert_int_equal(parse("# c\n=== x ===\n\n!! y\n", &cfg, &d), 2);
	assert_non_null(strstr(printed(&d), "p.conf:2: syntax error: '=== x ===' is not "
					    "'key=value', 'key: value', 'key value' or '[block]'"));
	assert_non_null(strstr(printed(&d), "p.conf:4: syntax error: '!! y'"));
	done(&cfg, &d);
}

static void test_lists_and_quotes(void **state)
{
	struct config cfg;
	struct diags d;

	assert_int_equal(parse("a=x , y,z\n"
			       "b=\"x, y\", z\n"
			       "c='x, \\y', z\n"
			       "d=x\\,y, z\n"
			       "e=ab\"c,d\"e\n"
			       "f=\"q\\\"uote\"\n"
			       "g=\n"
			       "h=\"\"\n"
			       "i=x,\n"
			       "j=,x\n"
			       "k=x,,y\n"
			       "l=\" padded \" , y\n"
			       "m=a b  c\n"
			       "n=x\\\\y\n",
			       &cfg, &d),
			 0);
	check_values(&cfg, "a", 3, "x", "y", "z");
	check_values(&cfg, "b", 2, "x, y", "z");
	/* Single quotes keep backslashes. */
	check_values(&cfg, "c", 2, "x, \\y", "z");
	check_values(&cfg, "d", 2, "x,y", "z");
	check_values(&cfg, "e", 1, "abc,de");
	check_values(&cfg, "f", 1, "q\"uote");
	check_values(&cfg, "g", 0);
	check_values(&cfg, "h", 1, "");
	check_values(&cfg, "i", 2, "x", "");
	check_values(&cfg, "j", 2, "", "x");
	check_values(&cfg, "k", 3, "x", "", "y");
	check_values(&cfg, "l", 2, " padded ", "y");
	check_values(&cfg, "m", 1, "a b  c");
	check_values(&cfg, "n", 1, "x\\y");
	done(&cfg, &d);
}

static void test_newline_escape(void **state)
{
	struct config cfg;
	struct diags d;

	/* parse_line eats one backslash, get_param turns the remaining "\n" into a newline. */
	assert_int_equal(parse("a=x\\ny\nb=x\\\\ny\nc='x\\ny'\nd=\"x\\\\ny\"\n", &cfg, &d), 0);
	check_values(&cfg, "a", 1, "xny");
	check_values(&cfg, "b", 1, "x\ny");
	check_values(&cfg, "c", 1, "x\ny");
	check_values(&cfg, "d", 1, "x\ny");
	done(&cfg, &d);
}

static void test_value_errors(void **state)
{
	struct config cfg;
	struct diags d;

	assert_int_equal(parse("ips=1\n"
			       "a=\"open\n"
			       "b=it's\n"
			       "c=x\\\n"
			       "d='x', \"y\n",
			       &cfg, &d),
			 4);
	assert_non_null(strstr(printed(&d), "p.conf:2: a: unterminated double quote in the "
					    "value"));
	assert_non_null(strstr(printed(&d), "p.conf:3: b: unterminated single quote"));
	assert_non_null(strstr(printed(&d), "p.conf:4: c: the value ends with a lone backslash"));
	assert_non_null(strstr(printed(&d), "p.conf:5: d: unterminated double quote"));
	/* The bad lines leave no entry; the good one stays. */
	assert_int_equal(cfg.n_entries, 1);
	check_values(&cfg, "ips", 1, "1");
	done(&cfg, &d);
	/* Keys in a non-default block are named with their block. */
	assert_int_equal(parse("[web]\nx=\"a\n", &cfg, &d), 1);
	assert_non_null(strstr(printed(&d), "p.conf:2: web.x: unterminated"));
	done(&cfg, &d);
}

static void test_every_error_reported(void **state)
{
	struct config cfg;
	struct diags d;

	assert_int_equal(parse("a=1\nnot a pair\nb=2\n[]\n[x]y]\nc=3\n", &cfg, &d), 3);
	assert_non_null(strstr(printed(&d), "p.conf:2: syntax error: expected 'key=value' or "
					    "'[block]' as on line 1, got 'not a pair'"));
	assert_non_null(strstr(printed(&d), "p.conf:4: syntax error"));
	assert_non_null(strstr(printed(&d), "p.conf:5: syntax error"));
	assert_int_equal(cfg.n_entries, 3);
	assert_int_equal(config_get(&cfg, "c")->line, 6);
	done(&cfg, &d);
}

static void test_repeated_keys(void **state)
{
	struct config cfg;
	struct diags d;

	assert_int_equal(parse("size=1\ncpus=2\nsize=3\n", &cfg, &d), 0);
	/* Both stay in the entries (domain.c warns); lookups give the last, as Config::Simple. */
	assert_int_equal(cfg.n_entries, 3);
	check_values(&cfg, "size", 1, "3");
	assert_int_equal(config_get(&cfg, "size")->line, 3);
	done(&cfg, &d);
}

static void test_line_numbers(void **state)
{
	struct config cfg;
	struct diags d;

	assert_int_equal(parse("\r\n# x\r\nips=1\r\n\r\n\r\ncpus=2", &cfg, &d), 0);
	assert_int_equal(config_get(&cfg, "ips")->line, 3);
	assert_int_equal(config_get(&cfg, "cpus")->line, 6);
	check_values(&cfg, "ips", 1, "1");
	check_values(&cfg, "cpus", 1, "2");
	done(&cfg, &d);
}

static void test_bounds(void **state)
{
	struct config cfg;
	struct diags d;
	struct buf b = BUF_INIT;
	char *big;

	/* File size. */
	big = calloc(1, CONFIG_MAX_BYTES + 2);
	assert_non_null(big);
	memset(big, '#', CONFIG_MAX_BYTES + 1);
	diags_init(&d);
	assert_int_equal(config_parse("p.conf", big, CONFIG_MAX_BYTES + 1, &cfg, &d), -1);
	assert_non_null(strstr(printed(&d), "p.conf: larger than 1048576 bytes"));
	done(&cfg, &d);
	free(big);
	/* Line length: the long line is reported, the rest is read. */
	buf_adds(&b, "a=");
	for (int i = 0; i < CONFIG_MAX_LINE; i++)
		buf_add(&b, "x", 1);
	buf_adds(&b, "\nb=1\n");
	assert_int_equal(parse(b.s, &cfg, &d), 1);
	assert_non_null(strstr(printed(&d), "p.conf:1: line longer than 16384 bytes"));
	check_values(&cfg, "b", 1, "1");
	done(&cfg, &d);
	buf_reset(&b);
	/* Entries. */
	for (int i = 0; i < CONFIG_MAX_ENTRIES + 5; i++)
		buf_addf(&b, "k%d=%d\n", i, i);
	assert_int_equal(parse(b.s, &cfg, &d), 1);
	assert_int_equal(cfg.n_entries, CONFIG_MAX_ENTRIES);
	assert_non_null(strstr(printed(&d), "p.conf:1025: more than 1024 keys"));
	done(&cfg, &d);
	buf_reset(&b);
	/* List items. */
	buf_adds(&b, "k=");
	for (int i = 0; i < CONFIG_MAX_VALUES + 1; i++)
		buf_adds(&b, "x,");
	buf_adds(&b, "\n");
	assert_int_equal(parse(b.s, &cfg, &d), 1);
	assert_non_null(strstr(printed(&d), "p.conf:1: k: more than 1024 list items"));
	done(&cfg, &d);
	buf_free(&b);
	/* A NUL byte. */
	diags_init(&d);
	assert_int_equal(config_parse("p.conf", "a=1\nb=\0\nc=3\n", 12, &cfg, &d), -1);
	assert_non_null(strstr(printed(&d), "p.conf:2: line holds a NUL byte"));
	check_values(&cfg, "c", 1, "3");
	done(&cfg, &d);
}

static void test_load(void **state)
{
	char path[] = "/tmp/tuap-config-XXXXXX";
	int fd = mkstemp(path);
	struct config cfg;
	struct diags d;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, "ips=192.0.2.1\n", 14), 14);
	close(fd);
	diags_init(&d);
	assert_int_equal(config_load(path, &cfg, &d), 0);
	assert_string_equal(cfg.path, path);
	check_values(&cfg, "ips", 1, "192.0.2.1");
	done(&cfg, &d);
	unlink(path);
	diags_init(&d);
	assert_int_equal(config_load(path, &cfg, &d), -1);
	assert_non_null(strstr(printed(&d), "No such file or directory"));
	done(&cfg, &d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simplified_ini),
		cmocka_unit_test(test_ini_spacing_and_keys),
		cmocka_unit_test(test_ini_blocks),
		cmocka_unit_test(test_ini_block_first),
		cmocka_unit_test(test_comments),
		cmocka_unit_test(test_simple_syntax),
		cmocka_unit_test(test_http_syntax),
		cmocka_unit_test(test_detection),
		cmocka_unit_test(test_lists_and_quotes),
		cmocka_unit_test(test_newline_escape),
		cmocka_unit_test(test_value_errors),
		cmocka_unit_test(test_every_error_reported),
		cmocka_unit_test(test_repeated_keys),
		cmocka_unit_test(test_line_numbers),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_load),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
