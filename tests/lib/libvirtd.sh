# shellcheck shell=bash
# tests/lib/libvirtd.sh — sourced (bash) after harness.sh. Starts a private system-mode libvirtd
# and virtlogd inside one of the test's network namespaces, each under `tini -s` (a child
# subreaper: PID 1 on these hosts does not reap libvirt's daemonized probe processes, and libvirt
# then hangs on its own zombies).
#
# Private state without touching the host's libvirt: libvirt 9.0 hard-codes its system-mode paths
# (/etc/libvirt, /run/libvirt, /var/lib/libvirt, /var/cache/libvirt, /var/log/libvirt), so both
# daemons run in one private mount namespace (the one `ip netns exec` creates) in which those five
# directories are bind mounts of directories under the test's temp dir. The unix socket is
# therefore the file DIR/run/libvirt-sock, reachable from any namespace with
#   qemu:///system?socket=DIR/run/libvirt-sock
# Pid files go to the private /run/libvirt. Nothing is written to the host's libvirt directories
# (the empty /run/libvirt mount point is created if missing). Paths of disks, kernels and seed
# ISOs are the host's (qemu runs in that mount namespace, which is a slave copy of the host's).
#
#   libvirtd_start NS URIVAR        # daemons up and answering; URI stored in URIVAR, the
#                                   # state dir in TUAPT_LIBVIRT_DIR, libvirtd's PID in
#                                   # TUAPT_LIBVIRTD_PID
#   libvirt_net_nat URI NAME BRIDGE ADDR/P DHCP_FIRST DHCP_LAST   # NAT network, inside NS only
#   libvirtd_start_default NS URIVAR  # both plus the standard layout (below)
#   libvirtd_kill DIR               # SIGKILL the libvirtd of state dir DIR (a crash); its
#                                   # guests (qemu), dnsmasq and virtlogd go on
#   libvirtd_restart DIR            # that libvirtd again, on the same state, answering
#
# Optional, in the environment of libvirtd_start / libvirtd_start_default:
#   TUAPT_LIBVIRT_LISTEN=ADDR       # libvirtd also listens on TCP ADDR:16509 without
#                                   # authentication (listen_tcp, auth_tcp "none", --listen):
#                                   # qemu+tcp://ADDR/system, in TUAPT_LIBVIRT_TCP_URI. ADDR
#                                   # must be a TEST-NET address NS already has.
#   TUAPT_LIBVIRT_RESTARTABLE=1     # libvirtd runs under a supervisor shell (under tini -s),
#                                   # for libvirtd_kill / libvirtd_restart: the qemu processes
#                                   # libvirtd started stay children of that same tini, which
#                                   # outlives libvirtd and reaps them (a libvirtd that dies
#                                   # under a plain tini takes its subreaper with it, and a
#                                   # qemu orphaned to PID 1 here is not reaped: libvirt then
#                                   # hangs on its zombie when it kills it).
# Several libvirtds in one test: save TUAPT_LIBVIRT_DIR (and TUAPT_LIBVIRT_TCP_URI) after each
# libvirtd_start; libvirt_net_nat uses the last one's directory for its XML.
#
# Standard layout (libvirtd_start_default), shared by the e2e tests:
#   mgmt   libvirt NAT network "tuap-mgmt", bridge virbr-mgmt, 198.51.100.1/24, DHCP .100-.199
#   br-pub plain bridge in the netns, 192.0.2.1/24, for guests' public NICs (static addresses)

TUAPT_LIBVIRT_DEADLINE=${TUAPT_LIBVIRT_DEADLINE:-60}
TUAPT_MGMT_NET=tuap-mgmt
TUAPT_MGMT_BRIDGE=virbr-mgmt
TUAPT_MGMT_ADDR=198.51.100.1
TUAPT_PUB_BRIDGE="br-pub"
TUAPT_PUB_ADDR=192.0.2.1

# virsh_ URI ARG...: virsh against URI, bounded.
virsh_() {
	local uri=$1
	shift
	timeout "${TUAPT_VIRSH_DEADLINE:-120}" virsh -q -c "$uri" "$@"
}

libvirtd_ready() { timeout 5 virsh -q -c "$1" version >/dev/null 2>&1; }

# The supervisor of a restartable libvirtd (TUAPT_LIBVIRT_RESTARTABLE=1), run by sh under tini -s
# in the private namespaces: `sh DIR CMD...` runs CMD (libvirtd), writes its PID to
# DIR/supervised.pid, and once it is gone waits for DIR/supervised.go (libvirtd_restart) to run
# it again. TERM/INT (the harness stopping tini, which forwards it to sh) stop libvirtd, then sh.
# shellcheck disable=SC2016 # expanded by the inner sh
TUAPT_LIBVIRTD_SUPERVISOR='d=$1; shift
pid=
trap "[ -z \"\$pid\" ] || { kill -TERM \"\$pid\"; wait \"\$pid\"; }; exit 0" TERM INT
while :; do
	rm -f "$d/supervised.go"
	"$@" </dev/null &
	pid=$!
	echo "$pid" >"$d/supervised.pid"
	wait "$pid"
	pid=
	while [ ! -e "$d/supervised.go" ]; do sleep 0.2; done
done'

# libvirtd_start NS URIVAR
libvirtd_start() {
	local ns=$1 d uri vlog_pid lvd_pid sub group listen=${TUAPT_LIBVIRT_LISTEN:-} tcp=0 args=()
	# shellcheck disable=SC2016 # expanded by the inner sh
	local bind='set -e
d=$1; shift
for sub in etc:/etc/libvirt run:/run/libvirt lib:/var/lib/libvirt cache:/var/cache/libvirt log:/var/log/libvirt; do
	mount --bind "$d/${sub%%:*}" "${sub#*:}"
done
exec "$@"'
	skip_unless_cmd libvirtd virtlogd tini virsh nsenter
	if [ -n "$listen" ]; then
		testnet_ok "$listen/24" || tuapt_die "libvirtd_start: TUAPT_LIBVIRT_LISTEN=$listen is not a TEST-NET address"
		tcp=1
		args=(--listen)
	fi
	tmpdir_new d
	for sub in etc run lib cache log; do mkdir -p "$d/$sub"; done
	mkdir -p "$d/etc/qemu/networks/autostart" "$d/etc/hooks" "$d/lib/qemu" "$d/lib/dnsmasq" \
		"$d/lib/images" "$d/cache/qemu" "$d/log/qemu"
	mkdir -p /run/libvirt # mount point only; stays empty on the host
	# group libvirt (when it exists) may use the socket: a tuapd running as user tuap in it
	group=root
	getent group libvirt >/dev/null && group=libvirt
	cat >"$d/etc/libvirtd.conf" <<EOF
# private libvirtd of a tuap test (tests/lib/libvirtd.sh)
listen_tls = 0
listen_tcp = $tcp
unix_sock_group = "$group"
unix_sock_rw_perms = "0770"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:stderr"
EOF
	if [ -n "$listen" ]; then
		cat >>"$d/etc/libvirtd.conf" <<EOF
# TUAPT_LIBVIRT_LISTEN: a TEST-NET address inside the test's namespaces; no authentication
listen_addr = "$listen"
auth_tcp = "none"
EOF
	fi
	cat >"$d/etc/virtlogd.conf" <<'EOF'
log_outputs = "3:stderr"
EOF
	cat >"$d/etc/qemu.conf" <<'EOF'
# private libvirtd of a tuap test: guests run under TCG (domain type='qemu')
EOF
	: >"$d/etc/libvirt.conf"
	# Without this libvirt sees /dev/kvm (0600 here) as "changed" and re-probes QEMU on every call
	# (~12 s per define). The guests still run TCG.
	if [ -c /dev/kvm ]; then
		chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
	fi
	ip netns exec "$ns" sh -c "$bind" sh "$d" tini -s -- virtlogd -p /run/libvirt/virtlogd.pid \
		>"$d/log/virtlogd.out" 2>&1 </dev/null &
	vlog_pid=$!
	pid_record "$vlog_pid"
	# libvirtd joins virtlogd's mount and network namespaces (its private /run/libvirt)
	wait_for "virtlogd socket" "$TUAPT_LIBVIRT_DEADLINE" test -S "$d/run/virtlogd-sock" ||
		{ tail -n 20 "$d/log/virtlogd.out" >&2; return 1; }
	if [ "${TUAPT_LIBVIRT_RESTARTABLE:-0}" = 1 ]; then
		nsenter -t "$vlog_pid" -m -n -- tini -s -- sh -c "$TUAPT_LIBVIRTD_SUPERVISOR" sh "$d" \
			libvirtd -p /run/libvirt/libvirtd.pid "${args[@]}" >"$d/log/libvirtd.out" 2>&1 </dev/null &
	else
		nsenter -t "$vlog_pid" -m -n -- tini -s -- libvirtd -p /run/libvirt/libvirtd.pid "${args[@]}" \
			>"$d/log/libvirtd.out" 2>&1 </dev/null &
	fi
	lvd_pid=$!
	pid_record "$lvd_pid"
	uri="qemu:///system?socket=$d/run/libvirt-sock"
	wait_for "libvirtd ready ($uri)" "$TUAPT_LIBVIRT_DEADLINE" libvirtd_ready "$uri" ||
		{ tail -n 20 "$d/log/libvirtd.out" >&2; return 1; }
	netns_check_pid "$ns" "$vlog_pid"
	netns_check_pid "$ns" "$lvd_pid"
	TUAPT_LIBVIRT_TCP_URI=
	if [ -n "$listen" ]; then
		printf '%s %s\n' "$ns" "$listen" >"$d/listen"
		wait_for "libvirtd listening on $listen:16509" "$TUAPT_LIBVIRT_DEADLINE" port_open "$ns" "$listen" 16509 ||
			{ tail -n 20 "$d/log/libvirtd.out" >&2; return 1; }
		# shellcheck disable=SC2034 # for the test
		TUAPT_LIBVIRT_TCP_URI=qemu+tcp://$listen/system
	fi
	TUAPT_LIBVIRT_DIR=$d
	TUAPT_LIBVIRTD_PID=$lvd_pid
	printf -v "$2" '%s' "$uri"
}

# libvirtd_supervised_pid DIR: the PID of the libvirtd that DIR's supervisor runs or ran last
libvirtd_supervised_pid() {
	[ -s "$1/supervised.pid" ] ||
		tuapt_die "$1 is not the state dir of a libvirtd started with TUAPT_LIBVIRT_RESTARTABLE=1"
	cat "$1/supervised.pid"
}

# pid_gone PID: no such process (or only its zombie)
pid_gone() { [ ! -e "/proc/$1" ] || [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ]; }

# libvirtd_kill DIR: SIGKILL to the restartable libvirtd of state dir DIR, as a crash would;
# returns once it is gone. Its qemu guests, dnsmasq and virtlogd go on.
libvirtd_kill() {
	local pid
	pid=$(libvirtd_supervised_pid "$1")
	! pid_gone "$pid" || tuapt_die "libvirtd_kill: libvirtd $pid of $1 is not running"
	kill -KILL "$pid"
	wait_for "libvirtd $pid gone" 20 pid_gone "$pid"
}

# libvirtd_restarted DIR OLDPID: a libvirtd other than OLDPID runs for DIR and answers
libvirtd_restarted() {
	local pid
	pid=$(cat "$1/supervised.pid")
	[ "$pid" != "$2" ] && ! pid_gone "$pid" && libvirtd_ready "qemu:///system?socket=$1/run/libvirt-sock"
}

# libvirtd_restart DIR: the libvirtd that libvirtd_kill stopped runs again, on the same state and
# with the same options; returns once it answers (and listens, with TUAPT_LIBVIRT_LISTEN).
libvirtd_restart() {
	local d=$1 old ns addr
	old=$(libvirtd_supervised_pid "$d")
	pid_gone "$old" || tuapt_die "libvirtd_restart: libvirtd $old of $d still runs"
	: >"$d/supervised.go"
	wait_for "libvirtd of $d restarted" "$TUAPT_LIBVIRT_DEADLINE" libvirtd_restarted "$d" "$old" ||
		{ tail -n 20 "$d/log/libvirtd.out" >&2; return 1; }
	if [ -s "$d/listen" ]; then
		read -r ns addr <"$d/listen"
		wait_for "restarted libvirtd listening on $addr:16509" "$TUAPT_LIBVIRT_DEADLINE" \
			port_open "$ns" "$addr" 16509 || return 1
	fi
}

# libvirt_net_nat URI NAME BRIDGE ADDR DHCP_FIRST DHCP_LAST: defines and starts a /24 NAT network.
# Run by a libvirtd inside a netns without uplink, its bridge, dnsmasq and firewall rules exist
# only in that netns. Destroyed and undefined at exit. (Uses the last libvirtd_start's temp dir
# for the XML: one private libvirtd per test.)
libvirt_net_nat() {
	local uri=$1 name=$2 br=$3 addr=$4 first=$5 last=$6 f
	testnet_ok "$addr/24" || tuapt_die "libvirt_net_nat: $addr is not a TEST-NET address"
	f=$TUAPT_LIBVIRT_DIR/net-$name.xml
	cat >"$f" <<EOF
<network>
  <name>$name</name>
  <forward mode='nat'/>
  <bridge name='$br' stp='off' delay='0'/>
  <ip address='$addr' netmask='255.255.255.0'>
    <dhcp><range start='$first' end='$last'/></dhcp>
  </ip>
</network>
EOF
	virsh_ "$uri" net-define "$f" >/dev/null || return 1
	cleanup_push virsh_ "$uri" net-undefine "$name"
	virsh_ "$uri" net-start "$name" >/dev/null || return 1
	cleanup_push virsh_ "$uri" net-destroy "$name"
}

# libvirtd_start_default NS URIVAR: libvirtd_start plus the mgmt NAT network and br-pub.
libvirtd_start_default() {
	libvirtd_start "$1" "$2" || return 1
	libvirt_net_nat "${!2}" "$TUAPT_MGMT_NET" "$TUAPT_MGMT_BRIDGE" "$TUAPT_MGMT_ADDR" \
		198.51.100.100 198.51.100.199 || return 1
	netns_bridge "$1" "$TUAPT_PUB_BRIDGE" "$TUAPT_PUB_ADDR/24"
}

# libvirt_domain_cleanup URI NAME: at exit, destroy and undefine the domain (call after define).
libvirt_domain_cleanup() {
	cleanup_push virsh_ "$1" undefine "$2"
	cleanup_push virsh_ "$1" destroy "$2"
}
