# shellcheck shell=bash
# tests/lib/harness.sh — the test harness, sourced (bash) by every integration and e2e test
# script (the other files in tests/lib are sourced after it). Owns the test's process and
# namespace bookkeeping: uniquely named network namespaces (prefix tuapt-), veth pairs
# and bridges inside them (TEST-NET addresses only), background commands whose PIDs are recorded,
# bounded waits that name the phase that stalled, phase timing, and one EXIT trap that undoes it
# all: cleanup hooks (LIFO), recorded PIDs (TERM, then KILL after a deadline), leftover processes
# in our own namespaces, the namespaces, late hooks (unmounts), temp dirs.
#
# Traffic never leaves the namespaces: there is no veth to the host namespace, no default route,
# and netns_veth/netns_bridge refuse addresses outside 192.0.2.0/24, 198.51.100.0/24 and
# 203.0.113.0/24 (RFC 5737).
#
# Tests skip (exit 77, ctest SKIP_RETURN_CODE) when not root or without netns support.
#
#   . "$TUAP_SRC/tests/lib/harness.sh"        (or relative to the test script)
#   skip_unless_root; skip_unless_netns; skip_unless_cmd virsh qemu-system-x86_64
#   netns_new NS pub                          # NS=tuapt-pub-<pid>-1
#   tmpdir_new T
#   netns_bg NS HTTP_PID python3 -m http.server --bind 192.0.2.1 8080
#   wait_for "http server" 10 port_open NS 192.0.2.1 8080

[ -n "${BASH_VERSION:-}" ] || { echo "harness.sh needs bash" >&2; exit 1; }
[ -z "${TUAPT_HARNESS_SH:-}" ] || return 0
TUAPT_HARNESS_SH=1

TUAPT_SKIP=77
TUAPT_KILL_DEADLINE=${TUAPT_KILL_DEADLINE:-10}
TUAPT_TMPBASE=${TUAPT_TMPBASE:-/var/tmp}
TUAPT_PIDS=()        # background processes we started, in start order
TUAPT_NETNS=()       # namespaces we created
TUAPT_TMPDIRS=()     # temp dirs we created
TUAPT_HOOKS=()       # early cleanup hooks (run LIFO, before killing PIDs)
TUAPT_LATE_HOOKS=()  # late cleanup hooks (run LIFO, after the namespaces are gone)
TUAPT_SEQ=0
TUAPT_T0=$(date +%s.%N)
TUAPT_PHASE=
TUAPT_PHASE_T0=

tuapt_log() { printf '# %s\n' "$*" >&2; }
tuapt_die() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
tuapt_skip() { printf 'SKIP: %s\n' "$*" >&2; exit "$TUAPT_SKIP"; }

# --- skipping -----------------------------------------------------------------------------
skip_unless_root() {
	[ "$(id -u)" = 0 ] || tuapt_skip "needs root (network namespaces, chroot, libvirtd)"
}

# Creates and deletes a probe namespace; skips when the kernel or container does not allow it.
skip_unless_netns() {
	command -v ip >/dev/null || tuapt_skip "no 'ip' (iproute2)"
	local probe=tuapt-probe-$$
	ip netns add "$probe" 2>/dev/null || tuapt_skip "cannot create network namespaces here"
	if ! ip netns exec "$probe" ip link set lo up 2>/dev/null; then
		ip netns del "$probe" 2>/dev/null
		tuapt_skip "cannot enter network namespaces here"
	fi
	ip netns del "$probe"
}

skip_unless_cmd() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null || tuapt_skip "'$c' not installed (deploy/install-deps)"
	done
}

# --- timing -------------------------------------------------------------------------------
now() { date +%s.%N; }
secs_since() { echo "$(now) $1" | awk '{printf "%.1f", $1 - $2}'; }

# phase NAME: ends the running phase (printing its time) and starts NAME. "phase" alone ends it.
phase() {
	if [ -n "$TUAPT_PHASE" ]; then
		printf 'PHASE %-24s %7ss   (total %7ss)\n' "$TUAPT_PHASE" "$(secs_since "$TUAPT_PHASE_T0")" \
			"$(secs_since "$TUAPT_T0")" >&2
	fi
	TUAPT_PHASE=${1:-}
	TUAPT_PHASE_T0=$(now)
}

# --- waiting ------------------------------------------------------------------------------
# wait_for PHASE SECONDS CMD [ARG...]: runs CMD until it succeeds, at most SECONDS in all.
# External commands are each bounded by the time left; shell functions must bound themselves.
# On timeout prints "timeout after Ns waiting for PHASE" and returns 1.
wait_for() {
	local what=$1 deadline=$2 start end left
	shift 2
	start=$(date +%s)
	end=$((start + deadline))
	while :; do
		left=$((end - $(date +%s)))
		[ "$left" -ge 1 ] || left=1
		if [ "$(type -t "$1")" = function ]; then
			"$@" && return 0
		else
			timeout "$left" "$@" && return 0
		fi
		if [ "$(date +%s)" -ge "$end" ]; then
			printf 'timeout after %ss waiting for %s\n' "$deadline" "$what" >&2
			return 1
		fi
		sleep 0.5
	done
}

# port_open NS ADDR PORT: true when something listens on ADDR:PORT (TCP) inside NS.
port_open() {
	ip netns exec "$1" bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$2" "$3" 2>/dev/null
}

# --- cleanup ------------------------------------------------------------------------------
# cleanup_push CMD [ARG...]: run at exit, LIFO, before recorded PIDs are killed (libvirt objects).
cleanup_push() { TUAPT_HOOKS+=("$(printf '%q ' "$@")"); }
# cleanup_push_late CMD [ARG...]: run at exit, LIFO, after processes and namespaces are gone.
cleanup_push_late() { TUAPT_LATE_HOOKS+=("$(printf '%q ' "$@")"); }

pid_record() { TUAPT_PIDS+=("$1"); }

# stop_pid PID: TERM, wait up to TUAPT_KILL_DEADLINE s, then KILL. Reaps it if it is our child.
stop_pid() {
	local p=$1 i
	# (wait fails for a PID that is not our child: fine, also under set -e)
	kill -0 "$p" 2>/dev/null || { wait "$p" 2>/dev/null || true; return 0; }
	kill -TERM "$p" 2>/dev/null
	for ((i = 0; i < TUAPT_KILL_DEADLINE * 5; i++)); do
		kill -0 "$p" 2>/dev/null || break
		# a zombie child counts as gone once reaped
		[ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" = Z ] && break
		sleep 0.2
	done
	if kill -0 "$p" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" != Z ]; then
		tuapt_log "pid $p still alive ${TUAPT_KILL_DEADLINE}s after TERM: KILL"
		kill -KILL "$p" 2>/dev/null
	fi
	wait "$p" 2>/dev/null || true
	return 0
}

tuapt_cleanup() {
	local rc=$? i ns p left
	set +e
	trap - EXIT INT TERM
	if [ "$rc" != 0 ] && [ "$rc" != "$TUAPT_SKIP" ]; then
		printf 'FAIL: exit %s%s\n' "$rc" "${TUAPT_PHASE:+ in phase $TUAPT_PHASE}" >&2
	fi
	if [ "${TUAPT_KEEP:-0}" = 1 ]; then
		tuapt_log "TUAPT_KEEP=1: leaving namespaces (${TUAPT_NETNS[*]}), pids (${TUAPT_PIDS[*]}), dirs (${TUAPT_TMPDIRS[*]})"
		return "$rc"
	fi
	for ((i = ${#TUAPT_HOOKS[@]} - 1; i >= 0; i--)); do eval "${TUAPT_HOOKS[i]}" >/dev/null 2>&1; done
	for ((i = ${#TUAPT_PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${TUAPT_PIDS[i]}"; done
	for ns in "${TUAPT_NETNS[@]}"; do
		# processes our daemons started inside our own namespace (dnsmasq, qemu, ...)
		left=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
		if [ -n "$left" ]; then
			tuapt_log "processes left in $ns: $left- stopping them"
			for p in $left; do stop_pid "$p"; done
		fi
		ip netns del "$ns" 2>/dev/null || tuapt_log "could not delete netns $ns"
	done
	for ((i = ${#TUAPT_LATE_HOOKS[@]} - 1; i >= 0; i--)); do eval "${TUAPT_LATE_HOOKS[i]}" >/dev/null 2>&1; done
	for d in "${TUAPT_TMPDIRS[@]}"; do
		[ "${TUAPT_KEEP_TMP:-0}" = 1 ] && { tuapt_log "kept $d"; continue; }
		rm -rf --one-file-system "$d"
	done
	return "$rc"
}
trap tuapt_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- namespaces, links --------------------------------------------------------------------
# netns_new VAR [LABEL]: creates netns tuapt-LABEL-<pid>-<n> with lo up; its name goes to VAR.
netns_new() {
	local _nn_ns
	TUAPT_SEQ=$((TUAPT_SEQ + 1))
	_nn_ns=tuapt-${2:-t}-$$-$TUAPT_SEQ
	ip netns add "$_nn_ns" || tuapt_die "ip netns add $_nn_ns failed"
	TUAPT_NETNS+=("$_nn_ns")
	ip netns exec "$_nn_ns" ip link set lo up
	printf -v "$1" '%s' "$_nn_ns"
}

# testnet_ok ADDR/PREFIX: true for addresses in the RFC 5737 documentation ranges.
testnet_ok() {
	case $1 in
	192.0.2.*/* | 198.51.100.*/* | 203.0.113.*/*) [ "${1#*/}" -ge 24 ] 2>/dev/null ;;
	*) return 1 ;;
	esac
}

# netns_veth NS1 IF1 ADDR1/P NS2 IF2 ADDR2/P: a veth pair between two of our namespaces.
# Pass "-" as an address to leave that end without one (e.g. when it goes into a bridge).
netns_veth() {
	local ns1=$1 if1=$2 a1=$3 ns2=$4 if2=$5 a2=$6 tmpif
	[ "$ns1" != "$ns2" ] || tuapt_die "netns_veth: both ends in $ns1"
	for a in "$a1" "$a2"; do
		[ "$a" = - ] || testnet_ok "$a" || tuapt_die "netns_veth: $a is not a TEST-NET address (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24)"
	done
	TUAPT_SEQ=$((TUAPT_SEQ + 1))
	tmpif=tv$$x$TUAPT_SEQ
	# create inside ns1 so no interface ever appears in the host namespace
	ip -n "$ns1" link add "$if1" type veth peer name "$tmpif" || tuapt_die "veth $if1 in $ns1 failed"
	ip -n "$ns1" link set "$tmpif" netns "$ns2"
	ip -n "$ns2" link set "$tmpif" name "$if2"
	[ "$a1" = - ] || ip -n "$ns1" addr add "$a1" dev "$if1"
	[ "$a2" = - ] || ip -n "$ns2" addr add "$a2" dev "$if2"
	ip -n "$ns1" link set "$if1" up
	ip -n "$ns2" link set "$if2" up
}

# netns_bridge NS NAME [ADDR/P]: a bridge inside NS (STP off, no forward delay), up.
netns_bridge() {
	local ns=$1 br=$2 a=${3:-}
	[ -z "$a" ] || testnet_ok "$a" || tuapt_die "netns_bridge: $a is not a TEST-NET address"
	ip -n "$ns" link add "$br" type bridge stp_state 0 forward_delay 0 || tuapt_die "bridge $br in $ns failed"
	[ -z "$a" ] || ip -n "$ns" addr add "$a" dev "$br"
	ip -n "$ns" link set "$br" up
}

# --- processes, temp dirs -----------------------------------------------------------------
# tmpdir_new VAR: a fresh directory (mode 0755, so qemu's user can reach files in it) that is
# deleted at exit.
tmpdir_new() {
	local _tn_d
	_tn_d=$(mktemp -d "$TUAPT_TMPBASE/tuapt.XXXXXX") || tuapt_die "mktemp failed"
	chmod 0755 "$_tn_d"
	TUAPT_TMPDIRS+=("$_tn_d")
	printf -v "$1" '%s' "$_tn_d"
}

# netns_bg NS VAR CMD [ARG...]: runs CMD in the background inside NS, records its PID (stopped at
# exit) and stores it in VAR. stdout+stderr go to $TUAPT_LOGDIR/<name>.<seq>.log (or /dev/null
# when TUAPT_LOGDIR is unset), or are appended to $TUAPT_BG_LOG when that is set (a daemon that
# is restarted keeps one log). `ip netns exec` execs CMD, so the PID is CMD's own.
netns_bg() {
	local _nb_ns=$1 _nb_var=$2 _nb_log=/dev/null
	shift 2
	if [ -n "${TUAPT_BG_LOG:-}" ]; then
		_nb_log=$TUAPT_BG_LOG
	elif [ -n "${TUAPT_LOGDIR:-}" ]; then
		TUAPT_SEQ=$((TUAPT_SEQ + 1))
		_nb_log=$TUAPT_LOGDIR/${1##*/}.$TUAPT_SEQ.log
	fi
	: >>"$_nb_log" # exists on return (the redirection below happens in the background job)
	ip netns exec "$_nb_ns" "$@" >>"$_nb_log" 2>&1 </dev/null &
	TUAPT_PIDS+=("$!")
	printf -v "$_nb_var" '%s' "$!"
}

# netns_check_pid NS PID: fails unless PID lives in network namespace NS.
netns_check_pid() {
	local got
	got=$(ip netns identify "$2" 2>/dev/null)
	[ "$got" = "$1" ] || tuapt_die "pid $2 is in netns '${got:-host}', expected $1"
}

# host_firewall_snapshot FILE: the host namespace's iptables and nftables rulesets (to prove a
# test left them alone).
host_firewall_snapshot() {
	{
		echo "## iptables-save"
		iptables-save 2>/dev/null | sed '/^#/d'
		echo "## ip6tables-save"
		ip6tables-save 2>/dev/null | sed '/^#/d'
		echo "## nft list ruleset"
		nft list ruleset 2>/dev/null || true
		echo "## ip_forward=$(cat /proc/sys/net/ipv4/ip_forward)"
	} >"$1"
}
