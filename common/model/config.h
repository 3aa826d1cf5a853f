/*
 * A reader for Perl's Config::Simple files, the format of provision.conf. It follows
 * Config::Simple 4.58 as described in shared/notes/upstream.md §7: the syntax (simple
 * `key value` / `key=value`, INI `[block]` with keys seen as `block.key`, HTTP-like `key: value`)
 * is detected from the first meaningful line as Config::Simple does, `#` starts a comment line,
 * values may be double-quoted, and an unquoted comma-separated value is a list. The reader knows
 * nothing of provision.conf's keys: domain.c gives them meaning.
 */
#ifndef TUAP_CONFIG_H
#define TUAP_CONFIG_H

#include <stddef.h>

#include "err.h"

enum config_syntax { CONFIG_SIMPLE, CONFIG_INI, CONFIG_HTTP };

/* Bounds: a larger file, a longer line, more keys or list items are errors. */
#define CONFIG_MAX_BYTES   (1024 * 1024)
#define CONFIG_MAX_LINE	   16384
#define CONFIG_MAX_ENTRIES 1024
#define CONFIG_MAX_VALUES  1024

struct config_entry {
	char *key;     /* "key", or "block.key" in INI files ("default.key" before any [block]) */
	char **values; /* one element for a scalar; several for a comma list; none for `key=` */
	size_t n_values;
	int line; /* 1-based line of the key in the file */
};

struct config {
	char *path;
	enum config_syntax syntax;
	struct config_entry *entries; /* in file order; a repeated key keeps its last value,
				       * like Config::Simple, and is reported by domain.c */
	size_t n_entries;
};

/* Parses text (len bytes, need not be NUL-terminated) read from path (used in messages).
 * Syntax errors go to d; returns 0 when none. cfg is filled either way; free with config_free. */
int config_parse(const char *path, const char *text, size_t len, struct config *cfg,
		 struct diags *d);
/* Reads and parses path. */
int config_load(const char *path, struct config *cfg, struct diags *d);
/* The last entry for key (Config::Simple's param()): in INI files a key without a dot means
 * "default.key". NULL when absent. */
const struct config_entry *config_get(const struct config *cfg, const char *key);
void config_free(struct config *cfg);

#endif
