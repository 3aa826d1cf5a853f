/*
 * tuap-ctl doctor's core: the report (one result per check: OK, WARN or FAIL, what was found,
 * and for WARN/FAIL the fix), its text and JSON forms, and the pure judges of facts the command
 * (cmd/doctor.c) gathers from virsh, /proc, nft/iptables and the clock, so they can be tested
 * without a host.
 */
#ifndef TUAP_DOCTOR_H
#define TUAP_DOCTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "err.h"

enum doctor_level { DOCTOR_OK, DOCTOR_WARN, DOCTOR_FAIL };

struct doctor_result {
	char check[80]; /* "libvirt", "image NAME", ... */
	enum doctor_level level;
	char what[1024]; /* what was checked and what was found */
	char fix[1024];	 /* WARN/FAIL: the command or configuration line that fixes it; "" */
};

struct doctor_report {
	struct doctor_result *v;
	size_t n, cap;
};

/* Adds a result; the fix (may be NULL for OK) is formatted by doctor_fix on the last one. */
void doctor_add(struct doctor_report *r, const char *check, enum doctor_level level,
		const char *fmt, ...) TUAP_PRINTF(4, 5);
void doctor_fix(struct doctor_report *r, const char *fmt, ...) TUAP_PRINTF(2, 3);
void doctor_report_free(struct doctor_report *r);
/* "OK    check: what" lines, and "      fix: ..." below each WARN/FAIL. */
void doctor_print(const struct doctor_report *r, FILE *out);
/* A JSON array of {"check", "status", "message", "fix"} objects. */
void doctor_print_json(const struct doctor_report *r, FILE *out);
/* 1 when any result is FAIL, else 0. */
int doctor_exit_code(const struct doctor_report *r);

/* ---- judges of facts ---- */

enum doctor_fw { DOCTOR_FW_OPEN, DOCTOR_FW_DROPPED, DOCTOR_FW_POLICY_DROP };

/* Reads `nft list ruleset`: DROPPED when, in a chain hooked on input, the first rule naming TCP
 * port (a single port, a set or a range) drops or rejects; POLICY_DROP when such a chain's
 * policy is drop and no rule of it names the port. rule gets the rule (or "policy drop"), where
 * the chain as `nft insert rule` wants it ("inet filter input"). Rules that drop without
 * naming a port (by address or interface) are not judged. */
enum doctor_fw doctor_nft_judge(const char *ruleset, unsigned port, char *rule, size_t len,
				char *where, size_t wlen);
/* The same for `iptables -S INPUT`. */
enum doctor_fw doctor_iptables_judge(const char *rules, unsigned port, char *rule, size_t len);

/* Whether /proc/net/tcp (text) has a socket listening on port at addr (IPv4 dotted) or on
 * the wildcard address. */
bool doctor_tcp_listening(const char *proc_net_tcp, const char *addr, unsigned port);

/* From `virsh vol-list --details` output: the sum of capacity - allocation of its volumes (how
 * much they may still grow). -1 when a line cannot be read. */
int doctor_vol_growth(const char *vol_list, uint64_t *grow);
/* "10.00 GiB" (virsh's units: bytes, KiB, MiB, GiB, TiB, PiB, EiB) in bytes; -1 when not one. */
int doctor_virsh_size(const char *num, const char *unit, uint64_t *bytes);

/* When this tuap-ctl was built (TUAP_BUILD_EPOCH: SOURCE_DATE_EPOCH when set); a clock before
 * it is wrong. */
time_t doctor_build_time(void);

/* "1.5 GiB": n bytes for humans. */
void doctor_bytes(uint64_t n, char *out, size_t len);

#endif
