/*
 * Every name, path and address rule of tuap, once: what a domain, user, group, package, mail
 * address, job id, HOST:PORT, size and IP address may be. tuapd, tuap-ctl and the agent all call
 * these, so what validate accepts is what the agent accepts. Each returns 0, or -1 with a short
 * phrase in why ("it holds ';' ...") for the caller's FILE:LINE: KEY: message; why may be NULL.
 * ASCII only, whatever the locale.
 */
#ifndef TUAP_VALID_H
#define TUAP_VALID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define VALID_DOMAIN_MAX 253 /* RFC 1035 */
#define VALID_USER_MAX	 32  /* useradd's limit on Debian */
#define VALID_JOB_MAX	 64
/* uids and gids from 0 to 2^31-2: tools that keep them in a signed int (and NFS, and systemd's
 * "invalid" 2^31-1 and above in some paths) do not break on any we accept. */
#define VALID_UID_MAX 2147483646UL

/* A lower-case RFC 1123 host name of at least one label: a-z, 0-9, '-' inside labels of 1 to
 * 63 characters, not all digits in the last. A libvirt domain, a host name and a directory name
 * at once, so upper case is refused rather than folded (Example.test and example.test would be
 * two directories but one host). */
int valid_domain_name(const char *s, char *why, size_t len);
/* A user or group name as Debian's adduser takes it: [a-z_][a-z0-9_-]*, an optional final '$',
 * at most 32 characters. */
int valid_user_name(const char *s, char *why, size_t len);
/* name[:arch][=version], as apt takes it. */
int valid_package_name(const char *s, char *why, size_t len);
/* A plain address whose local part is inert in /etc/aliases. */
int valid_email(const char *s, char *why, size_t len);
/* A make target for `tuap-ctl run DOMAIN make TARGET`: 1 to 255 of [A-Za-z0-9._/+-], not
 * starting with '-' (make would take it as an option). */
int valid_make_target(const char *s, char *why, size_t len);
/* A job id made by tuapd: 1 to 64 of [A-Za-z0-9._-], not starting with '.' or '-'. */
int valid_job_id(const char *s, char *why, size_t len);
/* HOST:PORT or [IPV6]:PORT with a port from 1 to 65535; wildcard allows '*' as the host. */
int valid_host_port(const char *s, bool wildcard, char *why, size_t len);
/* An absolute path with no "." or ".." component, no empty component ("//"), no control
 * character and no trailing '/' (except "/" itself). */
int valid_abs_path(const char *s, char *why, size_t len);
/* One line of text for /etc/passwd, sudoers or authorized_keys: at most max bytes, no newline,
 * no control character but tab, and no ':' unless colon_ok. */
int valid_text_line(const char *s, size_t max, bool colon_ok, char *why, size_t len);
/* A sudo rule as cloud-init writes it after the user's name ("USER RULE" in sudoers.d): one
 * line with a '=', neither starting with ',' (which would add users to the rule) nor ending in
 * '\' (which would join the next user's line). */
int valid_sudo_rule(const char *s, char *why, size_t len);
/* A home directory for a new user: valid_abs_path, and neither a system directory ("/",
 * "/root", "/var", "/usr/local", ...) nor anything under one that root owns by design (/etc,
 * /root, /usr/bin, /proc, ...). Whether it exists and whose it is is the agent's check. */
int valid_home_dir(const char *s, char *why, size_t len);

/* "10G", "512M", "42949672960" (bytes), "1.5T": binary units K/M/G/T, optional "iB"/"B". */
int parse_size(const char *s, uint64_t *out, char *why, size_t len);

struct ip_addr {
	int family;		/* AF_INET or AF_INET6 */
	unsigned char addr[16]; /* network byte order; first 4 bytes for IPv4 */
	int prefix;		/* given or defaulted: /24 for IPv4, /64 for IPv6 */
	bool prefix_given;
	char text[64]; /* canonical "addr/prefix" */
};

/* IPv4/IPv6 with an optional /prefix. */
int parse_ip(const char *s, bool allow_prefix, struct ip_addr *out, char *why, size_t len);

/* For the validators of other inputs (provision.conf, users.yaml): fills why (may be NULL) and
 * returns -1. */
int valid_why(char *why, size_t len, const char *fmt, ...) TUAP_PRINTF(3, 4);
/* A character for a message: 'x', "a space", or 0xNN for what would not print. */
const char *valid_show_char(int c, char buf[8]);

static inline bool is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static inline bool is_lower_alnum(int c)
{
	return (c >= 'a' && c <= 'z') || is_digit(c);
}

static inline bool is_alnum(int c)
{
	return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

#endif
