/* Sequence numbers, acks and the resend queue of the agent link; see session.h. */
#include "session.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t session_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void session_init(struct session *s, size_t max_msgs, size_t max_bytes)
{
	memset(s, 0, sizeof(*s));
	s->max_msgs = max_msgs ? max_msgs : SESSION_MAX_MSGS;
	s->max_bytes = max_bytes ? max_bytes : SESSION_MAX_BYTES;
}

static void drop_queue(struct session *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->q[i].data);
	s->n = s->next = s->bytes = 0;
}

void session_free(struct session *s)
{
	drop_queue(s);
	free(s->q);
	s->q = NULL;
	s->cap = 0;
}

void session_reset(struct session *s, const uint8_t *id, size_t id_len, uint64_t tx_seq,
		   uint64_t rx_seq)
{
	drop_queue(s);
	if (id_len > sizeof(s->id))
		id_len = sizeof(s->id);
	memcpy(s->id, id, id_len);
	s->id_len = id_len;
	s->tx_seq = tx_seq;
	s->rx_seq = rx_seq;
	s->ack_sent = rx_seq;
	s->ack_due = 0;
	s->progress = 0;
}

int session_is(const struct session *s, const uint8_t *id, size_t id_len)
{
	return s->id_len > 0 && s->id_len == id_len && memcmp(s->id, id, id_len) == 0;
}

int session_push(struct session *s, const Tuap__Envelope *env, struct tuap_err *err)
{
	Tuap__Envelope copy = *env;
	struct buf b = BUF_INIT;
	struct session_msg *m;

	if (s->n >= s->max_msgs || s->bytes >= s->max_bytes)
		return err_set(err,
			       "resend queue full (%zu messages, %zu bytes unacknowledged); "
			       "try again when the peer has caught up",
			       s->n, s->bytes);
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		struct session_msg *q = realloc(s->q, cap * sizeof(*q));

		if (!q)
			return err_set(err, "out of memory");
		s->q = q;
		s->cap = cap;
	}
	copy.seq = s->tx_seq + 1;
	copy.has_ack = 1;
	copy.ack = s->rx_seq;
	if (wire_encode(&copy, &b, err) < 0)
		return -1;
	m = &s->q[s->n++];
	m->seq = ++s->tx_seq;
	m->ack = s->rx_seq;
	m->data = buf_detach(&b, &m->len);
	s->bytes += m->len;
	return 0;
}

int session_ack(struct session *s, uint64_t ack, int64_t now)
{
	size_t k = 0;

	if (ack > s->tx_seq)
		return -1;
	while (k < s->n && s->q[k].seq <= ack) {
		s->bytes -= s->q[k].len;
		free(s->q[k].data);
		k++;
	}
	if (k == 0)
		return 0;
	memmove(s->q, s->q + k, (s->n - k) * sizeof(*s->q));
	s->n -= k;
	s->next = s->next > k ? s->next - k : 0;
	s->progress = now;
	return (int)k;
}

enum session_rx session_rx(struct session *s, uint64_t seq, int64_t now)
{
	if (seq > s->rx_seq + 1)
		return SESSION_GAP;
	if (seq <= s->rx_seq) {
		s->ack_due = now; /* the peer resends: tell it at once what we have */
		return SESSION_DUP;
	}
	s->rx_seq = seq;
	if (s->rx_seq - s->ack_sent >= SESSION_ACK_EVERY)
		s->ack_due = now;
	else if (!s->ack_due)
		s->ack_due = now + SESSION_ACK_DELAY_MS;
	return SESSION_NEW;
}

const struct session_msg *session_next(const struct session *s)
{
	return s->next < s->n ? &s->q[s->next] : NULL;
}

void session_sent(struct session *s, int64_t now)
{
	const struct session_msg *m = &s->q[s->next];

	if (s->next == 0)
		s->progress = now;
	if (m->ack > s->ack_sent)
		s->ack_sent = m->ack;
	if (s->ack_sent >= s->rx_seq)
		s->ack_due = 0;
	s->next++;
}

void session_rewind(struct session *s, int64_t now)
{
	s->next = 0;
	s->progress = now;
}

int session_tick(struct session *s, int64_t now)
{
	if (s->next == 0 || now - s->progress < SESSION_RTO_MS)
		return 0;
	session_rewind(s, now);
	return 1;
}

int session_ack_due(const struct session *s, int64_t now)
{
	return s->ack_due && now >= s->ack_due;
}

void session_encode_ack(struct session *s, struct buf *out)
{
	Tuap__Envelope env;

	wire_init(&env);
	env.has_ack = 1;
	env.ack = s->rx_seq;
	buf_reset(out);
	if (wire_encode(&env, out, NULL) < 0)
		abort(); /* a header-only envelope always encodes */
	s->ack_sent = s->rx_seq;
	s->ack_due = 0;
}

int session_timeout(const struct session *s, int64_t now)
{
	int64_t t = INT64_MAX;

	if (s->ack_due)
		t = s->ack_due - now;
	if (s->next > 0 && s->progress + SESSION_RTO_MS - now < t)
		t = s->progress + SESSION_RTO_MS - now;
	if (t == INT64_MAX)
		return -1;
	return t < 0 ? 0 : (int)(t > 60000 ? 60000 : t);
}

uint64_t session_next_seq(const struct session *s)
{
	return s->n ? s->q[0].seq : s->tx_seq + 1;
}

size_t session_unacked(const struct session *s)
{
	return s->n;
}
