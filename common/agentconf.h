/*
 * The agent's config file (/etc/tuap-agent/agent.conf): what tuap-agent needs to reach its
 * controller and prove who it is. tuapd writes it (into the seed, or over ssh for an existing
 * host); tuap-agent reads it at start. It holds the agent's secret key, so it is written 0600
 * and refused when others could read it.
 *
 *     # tuap-agent configuration
 *     endpoint = tcp://192.0.2.1:7787
 *     server_public_key = <40-char Z85>
 *     public_key = <40-char Z85>
 *     secret_key = <40-char Z85>
 *     domain = www.example.org
 *     state_dir = /var/lib/tuap-agent
 *     max_message = 1052672            (optional, bytes; K and M suffixes allowed)
 *
 * One `key = value` per line; blank lines and lines starting with '#' are ignored. There are no
 * trailing comments (Z85 keys contain '#') and no quoting. Unknown and repeated keys are errors.
 */
#ifndef TUAP_AGENTCONF_H
#define TUAP_AGENTCONF_H

#include <stddef.h>

#include "buf.h"
#include "err.h"
#include "keys.h"

#define AGENTCONF_MAX_SIZE (64 * 1024)

struct agentconf {
	char endpoint[256]; /* tcp://HOST:PORT */
	char server_public_key[KEYS_Z85_SIZE];
	char public_key[KEYS_Z85_SIZE];
	char secret_key[KEYS_Z85_SIZE];
	char domain[254];
	char state_dir[256]; /* absolute path */
	size_t max_message;  /* ZMQ_MAXMSGSIZE; default WIRE_MAX_MESSAGE */
};

/* Empty config with max_message = WIRE_MAX_MESSAGE. */
void agentconf_init(struct agentconf *c);

/* Parses text (len bytes) read from path (used in messages only) into c, which is initialized
 * first. Errors are "PATH:LINE: key: message"; a missing key has line 0. */
int agentconf_parse(struct agentconf *c, const char *path, const char *text, size_t len,
		    struct tuap_err *err);

/* Reads path (which must be 0600-like, see keys_read_private) and parses it. */
int agentconf_load(struct agentconf *c, const char *path, struct tuap_err *err);

/* Checks every value the way agentconf_parse would (all keys present, public_key matching
 * secret_key) and appends the file text to out. The caller wipes out (keys_wipe) when done. */
int agentconf_format(const struct agentconf *c, struct buf *out, struct tuap_err *err);

/* agentconf_format, written atomically with mode 0600. */
int agentconf_write(const struct agentconf *c, const char *path, struct tuap_err *err);

/* Wipes the secret key (and everything else) from c. */
void agentconf_wipe(struct agentconf *c);

#endif
