/*
 * push: brings a site's agent to an existing host (provision.conf depends_on) over SSH. It is
 * the job engine's PH_PUSH provider (job.h, struct push_provider); the steps then run through
 * the pushed agent as on a VM. docs/provision.conf.5 (EXISTING HOSTS) is the operator's view.
 *
 * Target: depends_on names a host (a name or an address), or another domain tuapd manages, whose
 * host is used: that domain's own depends_on (followed), else the first address of its ips,
 * else its name. Such a domain's newest job must have finished successfully; while it runs or
 * after it failed, the push is refused (the site builds on it).
 *
 * How: the system OpenSSH client, run as a child of tuapd with tuapd's own key
 * (SSH_DIR/id_ed25519, made by push_new) and only the host keys in SSH_DIR/known_hosts
 * (StrictHostKeyChecking=yes: an unknown or changed host key is refused before anything is
 * sent, with the fingerprint the host offered). Two connections as admin_user: `sudo -n true`
 * (skipped for root), so that a user without passwordless sudo gets a clear error and nothing
 * on the host changes; then one fixed one-line sh script whose stdin is a tar of tuap-agent,
 * its config (fresh keys from engine_enroll_keys, endpoint public_endpoint, state in
 * /var/lib/tuap-agent/domains/DOMAIN), the machine it is built for, and deploy/push/ (installer,
 * supervisor, systemd unit; compiled in as push_files[]). The script extracts into a private
 * temporary directory, runs the installer (one agent per domain: tuap-agent@DOMAIN.service, or
 * the supervise script where systemd is not running) and removes the directory. Every remote
 * argument is single-quoted by push_shell_quote; operator text never reaches a shell unquoted.
 *
 * Never blocks tuapd: each ssh child's output pipe goes into tuapd's poll loop
 * (push_pollitems), its exit is reaped from push_service, and each push is bounded by the push
 * deadline (the child is killed, the phase fails).
 */
#ifndef TUAP_PUSH_H
#define TUAP_PUSH_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <zmq.h>

#include "buf.h"
#include "err.h"
#include "strlist.h"

struct engine;
struct job;

#define PUSH_MAX_RUNS  64 /* pushes at once; more are refused */
#define PUSH_TAIL      16 /* output lines kept for an error report */
#define PUSH_LINE_MAX  1024
#define PUSH_DEPTH_MAX 8 /* domains followed through depends_on */
#define PUSH_AGENT_MAX (256u << 20)

struct push_conf {
	const char *ssh_client; /* "/usr/bin/ssh"; ssh-keygen is taken from the same directory */
	const char *ssh_dir;	/* id_ed25519, id_ed25519.pub, known_hosts, config (optional) */
	unsigned connect_timeout_s; /* ssh's ConnectTimeout; 0: 15 */
	const char *agent_binary;   /* the tuap-agent sent to hosts */
	const char *endpoint;	    /* what pushed agents connect to (public_endpoint) */
	unsigned deadline_s;	    /* the push deadline (PH_PUSH); 0: 600 */
};

/* Makes SSH_DIR (0700), tuapd's key there when it has none (ssh-keygen, ed25519) and an empty
 * known_hosts, then registers itself as e's push provider. */
struct push *push_new(const struct push_conf *c, struct engine *e, struct tuap_err *err);
/* Stops every ssh child (TERM, then KILL) and frees p. */
void push_free(struct push *p);

/* tuapd's poll loop: the pipes to watch (returns how many were written, at most max), the
 * milliseconds until push_service is due anyway (-1: no push running), and the work. */
size_t push_pollitems(struct push *p, zmq_pollitem_t *items, size_t max);
long push_timeout(const struct push *p);
void push_service(struct push *p);

/* ---- the pieces, public for the tests ---- */

/* Starts argv (argv[0] an absolute path; environment PATH and LC_ALL=C only) with stdin from
 * in_fd (-1: /dev/null) and stdout + stderr into one pipe, whose non-blocking read end goes to
 * *out_fd. The child gets SIGTERM when tuapd dies. */
pid_t push_spawn(char *const *argv, int in_fd, int *out_fd, struct tuap_err *err);
/* Makes SSH_DIR (0750), known_hosts (0664, comments only) and the key id_ed25519 (0600, with
 * ssh-keygen from the client's directory) where they are missing. */
int push_ssh_setup(const struct push_conf *c, struct tuap_err *err);

/* deploy/push/ as compiled in (push_files.c in the build tree, made by embed.cmake). */
struct push_file {
	const char *name;
	const unsigned char *data;
	size_t len;
	unsigned mode;
};
extern const struct push_file push_files[];
extern const size_t push_n_files;

/* Appends arg single-quoted for a POSIX shell ('it'\''s'), safe in sh, bash, dash, zsh. */
void push_shell_quote(struct buf *out, const char *arg);
/* Appends argv[0..n) quoted and separated by blanks: ssh's remote command, which the remote
 * login shell parses back into exactly these words. */
void push_remote_command(struct buf *out, const char *const *argv, size_t n);

/* The host to ssh to for job's depends_on (see above); -1 with a message for the operator. */
int push_resolve(struct engine *e, const struct job *job, char *host, size_t len,
		 struct tuap_err *err);

/* The ssh command line: conf's client and options, login user, host and remote command. With
 * verbose, ssh logs at DEBUG1 (the offered host key appears as "debug1: Server host key: ..."). */
void push_ssh_argv(const struct push_conf *c, const char *user, const char *host,
		   const char *remote, bool verbose, struct strlist *out);
/* 0 when dir can be handed to ssh as is (-i, UserKnownHostsFile), else -1 with why. */
int push_ssh_dir_ok(const char *dir, struct tuap_err *err);

enum push_ssh_problem {
	PUSH_SSH_NONE,		  /* no ssh error recognized */
	PUSH_SSH_HOSTKEY_UNKNOWN, /* not in known_hosts */
	PUSH_SSH_HOSTKEY_CHANGED, /* differs from known_hosts */
	PUSH_SSH_AUTH,		  /* our key was refused */
	PUSH_SSH_RESOLVE,	  /* the name does not resolve */
	PUSH_SSH_CONNECT,	  /* refused, unreachable, timed out */
	PUSH_SSH_LOCAL,		  /* our side: key file, known_hosts, config */
};
/* Recognizes ssh's own error messages (LC_ALL=C) among the output lines. */
enum push_ssh_problem push_ssh_diagnose(char *const *lines, size_t n);

/* The payload sent to the host: a tar (ustar) in an anonymous memory file, read from offset 0,
 * holding tuap-agent (read from agent_binary), agent.conf (conf_text, mode 0600), machine and
 * push_files[]. Returns the fd (caller closes) or -1. */
int push_payload(const char *agent_binary, const char *conf_text, size_t conf_len,
		 struct tuap_err *err);
/* The `uname -m` an ELF executable runs on ("x86_64", "aarch64", ...); -1 when path is not an
 * ELF executable this knows. */
int push_elf_machine(const char *path, char *out, size_t len, struct tuap_err *err);

#endif
