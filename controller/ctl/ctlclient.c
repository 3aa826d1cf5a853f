/* tuap-ctl's control-socket client; see ctlclient.h. */
#include "ctlclient.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "buf.h"
#include "cli.h"
#include "fsutil.h"
#include "settings.h"
#include "wire.h"

#define UPLOAD_CHUNK (256u << 10)

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
	interrupted = 1;
}

void ctlclient_socket_path(char *out, size_t len)
{
	const char *env = getenv("TUAP_SOCKET"), *conf = getenv("TUAP_CONFIG");
	struct settings s;
	struct tuap_err err;

	if (env && *env) {
		snprintf(out, len, "%s", env);
		return;
	}
	if (!conf)
		conf = "/etc/tuap/tuapd.conf";
	settings_defaults(&s);
	if (fs_exists(conf) && settings_load(conf, &s, &err) < 0) {
		fprintf(stderr, "tuap-ctl: %s (using the defaults)\n", err.msg);
		settings_defaults(&s);
	}
	if (settings_ctl_socket(&s, out, len, &err) < 0)
		snprintf(out, len, "/run/tuap/ctl.sock");
}

int ctlclient_open(struct ctlclient *c, const char *socket_path, struct tuap_err *err)
{
	char endpoint[4200], mon[64];
	int zero = 0;

	memset(c, 0, sizeof(*c));
	snprintf(c->path, sizeof(c->path), "%s", socket_path);
	if (access(socket_path, R_OK | W_OK) < 0)
		return err_set(
			err,
			errno == ENOENT
				? "tuapd is not running (no socket at %s)"
				: "cannot use tuapd's socket %s: %s (are you in group tuap?)",
			socket_path, strerror(errno));
	c->zctx = zmq_ctx_new();
	c->sock = zmq_socket(c->zctx, ZMQ_DEALER);
	zmq_setsockopt(c->sock, ZMQ_LINGER, &zero, sizeof(zero));
	/* the monitor tells us when tuapd goes away, instead of waiting forever */
	snprintf(mon, sizeof(mon), "inproc://ctl-monitor-%ld", (long)getpid());
	zmq_socket_monitor(c->sock, mon, ZMQ_EVENT_DISCONNECTED);
	c->mon = zmq_socket(c->zctx, ZMQ_PAIR);
	zmq_connect(c->mon, mon);
	snprintf(endpoint, sizeof(endpoint), "ipc://%s", socket_path);
	if (zmq_connect(c->sock, endpoint) < 0) {
		err_set(err, "cannot connect to %s: %s", socket_path, zmq_strerror(errno));
		ctlclient_close(c);
		return -1;
	}
	return 0;
}

void ctlclient_close(struct ctlclient *c)
{
	if (c->mon)
		zmq_close(c->mon);
	if (c->sock)
		zmq_close(c->sock);
	if (c->zctx)
		zmq_ctx_term(c->zctx);
	memset(c, 0, sizeof(*c));
}

static int send_env(struct ctlclient *c, Tuap__Envelope *env, struct tuap_err *err)
{
	struct buf b = BUF_INIT;
	int rc = 0;

	env->version = WIRE_VERSION;
	env->seq = ++c->seq;
	if (wire_encode(env, &b, err) < 0)
		rc = -1;
	else if (zmq_send(c->sock, b.s, b.len, 0) < 0)
		rc = err_set(err, "cannot send to tuapd: %s", zmq_strerror(errno));
	buf_free(&b);
	return rc;
}

int ctlclient_send(struct ctlclient *c, Tuap__CtlRequest *req, struct tuap_err *err)
{
	Tuap__Envelope env = TUAP__ENVELOPE__INIT;

	env.body_case = TUAP__ENVELOPE__BODY_CTL_REQUEST;
	env.ctl_request = req;
	return send_env(c, &env, err);
}

/* Sends [offset, offset+credit) of the data file in chunks. */
static int upload(struct ctlclient *c, const char *domain, int fd, uint64_t offset, uint32_t credit,
		  struct tuap_err *err)
{
	uint8_t *block = malloc(UPLOAD_CHUNK);
	int rc = 0;

	if (!block)
		abort();
	while (credit > 0 && rc == 0) {
		Tuap__Envelope env = TUAP__ENVELOPE__INIT;
		Tuap__UploadChunk ch = TUAP__UPLOAD_CHUNK__INIT;
		size_t want = credit < UPLOAD_CHUNK ? credit : UPLOAD_CHUNK;
		ssize_t r = pread(fd, block, want, (off_t)offset);

		if (r < 0) {
			rc = err_set(err, "cannot read data.tar.gz: %s", strerror(errno));
			break;
		}
		if (r == 0)
			break; /* end of file: tuapd knows the size */
		ch.domain = (char *)domain;
		ch.offset = offset;
		ch.data.data = block;
		ch.data.len = (size_t)r;
		env.body_case = TUAP__ENVELOPE__BODY_UPLOAD_CHUNK;
		env.upload_chunk = &ch;
		rc = send_env(c, &env, err);
		offset += (uint64_t)r;
		credit -= (uint32_t)r;
	}
	free(block);
	return rc;
}

int ctlclient_follow(struct ctlclient *c, struct progress *p, const char *domain,
		     const char *data_path, int idle_ms, bool detach)
{
	struct sigaction sa = {.sa_handler = on_sigint}, old;
	bool answered = false;
	int code = CLI_FAIL, fd = -1;
	struct tuap_err err;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old);
	for (;;) {
		zmq_pollitem_t items[] = {{c->sock, 0, ZMQ_POLLIN, 0}, {c->mon, 0, ZMQ_POLLIN, 0}};
		Tuap__Envelope *env = NULL;
		zmq_msg_t msg;
		int n = zmq_poll(items, 2, answered ? 1000 : idle_ms);

		if (interrupted) {
			progress_finish(p);
			fprintf(stderr,
				"tuap-ctl: detached; the job goes on in tuapd (follow it "
				"with 'tuap-ctl watch %s')\n",
				domain ? domain : "DOMAIN");
			code = CLI_OK;
			break;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0 && !answered) {
			fprintf(stderr, "tuap-ctl: tuapd did not answer within %d s (%s)\n",
				idle_ms / 1000, c->path);
			code = CLI_NO_DAEMON;
			break;
		}
		if (items[1].revents & ZMQ_POLLIN) {
			progress_finish(p);
			fprintf(stderr, "tuap-ctl: lost the connection to tuapd; a running job "
					"resumes when tuapd restarts\n");
			code = CLI_NO_DAEMON;
			break;
		}
		if (!(items[0].revents & ZMQ_POLLIN))
			continue;
		zmq_msg_init(&msg);
		if (zmq_msg_recv(&msg, c->sock, 0) < 0) {
			zmq_msg_close(&msg);
			continue;
		}
		answered = true;
		if (wire_decode(zmq_msg_data(&msg), zmq_msg_size(&msg), WIRE_TO_CTL, &env, &err) <
		    0) {
			zmq_msg_close(&msg);
			fprintf(stderr, "tuap-ctl: bad message from tuapd: %s\n", err.msg);
			code = CLI_FAIL;
			break;
		}
		zmq_msg_close(&msg);
		if (env->body_case == TUAP__ENVELOPE__BODY_ERROR) {
			fprintf(stderr, "tuap-ctl: %s\n",
				env->error->message ? env->error->message : "error");
			wire_free(env);
			code = CLI_FAIL;
			break;
		}
		if (env->ctl_event->ev_case == TUAP__CTL_EVENT__EV_UPLOAD) {
			if (fd < 0 &&
			    (!data_path || (fd = open(data_path, O_RDONLY | O_CLOEXEC)) < 0)) {
				fprintf(stderr, "tuap-ctl: tuapd asks for data.tar.gz: %s\n",
					data_path ? strerror(errno) : "none given");
				wire_free(env);
				break;
			}
			if (upload(c, domain, fd, env->ctl_event->upload->offset,
				   env->ctl_event->upload->credit, &err) < 0) {
				fprintf(stderr, "tuap-ctl: %s\n", err.msg);
				wire_free(env);
				break;
			}
		} else {
			progress_event(p, env->ctl_event);
		}
		if (detach && env->ctl_event->ev_case == TUAP__CTL_EVENT__EV_PHASE &&
		    strcmp(env->ctl_event->phase->phase, "upload")) {
			progress_finish(p);
			printf("detached: job %s goes on (follow it with 'tuap-ctl watch %s')\n",
			       env->ctl_event->job_id ? env->ctl_event->job_id : "?",
			       domain ? domain : "DOMAIN");
			wire_free(env);
			code = CLI_OK;
			break;
		}
		if (env->ctl_event->has_final && env->ctl_event->final) {
			code = env->ctl_event->exit_code ? CLI_FAIL : CLI_OK;
			wire_free(env);
			break;
		}
		wire_free(env);
	}
	progress_finish(p);
	if (fd >= 0)
		close(fd);
	sigaction(SIGINT, &old, NULL);
	return code;
}

/* The next event of the request within idle_ms: 0 with *out (wire_free it), -1 with err for no
 * answer, a lost connection, a bad message or an error answer. */
static int next_event(struct ctlclient *c, int idle_ms, Tuap__Envelope **out, struct tuap_err *err)
{
	for (;;) {
		zmq_pollitem_t items[] = {{c->sock, 0, ZMQ_POLLIN, 0}, {c->mon, 0, ZMQ_POLLIN, 0}};
		Tuap__Envelope *env = NULL;
		zmq_msg_t msg;
		int n = zmq_poll(items, 2, idle_ms), rc;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return err_set(err, "tuapd did not answer within %d s", idle_ms / 1000);
		if (items[1].revents & ZMQ_POLLIN)
			return err_set(err, "lost the connection to tuapd");
		zmq_msg_init(&msg);
		if (zmq_msg_recv(&msg, c->sock, 0) < 0) {
			zmq_msg_close(&msg);
			continue;
		}
		rc = wire_decode(zmq_msg_data(&msg), zmq_msg_size(&msg), WIRE_TO_CTL, &env, err);
		zmq_msg_close(&msg);
		if (rc < 0)
			return -1;
		if (env->body_case == TUAP__ENVELOPE__BODY_ERROR) {
			err_set(err, "%s", env->error->message ? env->error->message : "error");
			wire_free(env);
			return -1;
		}
		if (env->ctl_event->ev_case == TUAP__CTL_EVENT__EV_ERROR) {
			err_set(err, "%s",
				env->ctl_event->error->message ? env->ctl_event->error->message
							       : "error");
			wire_free(env);
			return -1;
		}
		*out = env;
		return 0;
	}
}

int ctlclient_collect(struct ctlclient *c, struct buf *text, int idle_ms, struct tuap_err *err)
{
	for (;;) {
		Tuap__Envelope *env;
		int rc;

		if (next_event(c, idle_ms, &env, err) < 0)
			return -1;
		if (env->ctl_event->ev_case == TUAP__CTL_EVENT__EV_TEXT)
			for (size_t i = 0; i < env->ctl_event->text->n_lines; i++) {
				buf_adds(text, env->ctl_event->text->lines[i]);
				buf_adds(text, "\n");
			}
		if (env->ctl_event->has_final && env->ctl_event->final) {
			rc = env->ctl_event->exit_code;
			wire_free(env);
			return rc ? err_set(err, "tuapd: request failed") : 0;
		}
		wire_free(env);
	}
}

int ctlclient_status(struct ctlclient *c, int idle_ms, char *version, size_t len, size_t *n_domains,
		     struct tuap_err *err)
{
	Tuap__CtlRequest req = TUAP__CTL_REQUEST__INIT;
	Tuap__DomainRequest dr = TUAP__DOMAIN_REQUEST__INIT;

	version[0] = '\0';
	*n_domains = 0;
	dr.domain = "";
	req.req_case = TUAP__CTL_REQUEST__REQ_STATUS;
	req.status = &dr;
	if (ctlclient_send(c, &req, err) < 0)
		return -1;
	for (;;) {
		Tuap__Envelope *env;
		bool final;

		if (next_event(c, idle_ms, &env, err) < 0)
			return -1;
		if (env->ctl_event->ev_case == TUAP__CTL_EVENT__EV_STATUS) {
			const Tuap__StatusReply *st = env->ctl_event->status;

			/* a tuapd older than the field: its version is unknown */
			snprintf(version, len, "%s", st->tuapd_version ? st->tuapd_version : "");
			*n_domains = st->n_domains;
		}
		final = env->ctl_event->has_final && env->ctl_event->final;
		wire_free(env);
		if (final)
			return 0;
	}
}
