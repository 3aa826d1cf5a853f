# shellcheck shell=bash
# tests/lib/chroot.sh — sourced (bash) after harness.sh. Throwaway Debian 12 roots for tests that
# need a real system without booting one (the loopback controller<->agent integration tests:
# real user creation, real make, real apt from the local repository).
#
# The root is built once by debootstrap (minbase + TUAPT_ROOT_PACKAGES) and cached under
# ${TUAP_CACHE:-/var/cache/tuap}/roots/<hash>/root (hash of the package list, suite, mirror and
# the build function). Each test gets its own writable view of it, an overlayfs mount in its temp
# dir (or a `cp -a --reflink=auto` copy with TUAPT_ROOT_COPY=1), so tests never modify the cache.
# Commands run chrooted inside one of the test's network namespaces, in a private mount namespace
# (the one `ip netns exec` creates) where /proc, /sys and /dev are mounted: those mounts vanish
# with the command's last process, never appear in the host's mount table, and need no unmount.
# The overlay itself is unmounted at exit (before the temp dir is removed).
#
#   chroot_root_cached BASEVAR [EXTRA]  # the cached root (read-only for tests), built if needed
#   chroot_new ROOTVAR [EXTRA]      # a per-test writable root
#   chroot_run NS ROOT CMD [ARG...] # foreground
#   chroot_run_for SECS NS ROOT CMD [ARG...]  # foreground, killed after SECS
#   chroot_bg NS ROOT PIDVAR CMD [ARG...]  # background; PID recorded and stopped at exit
# The root's dpkg manifest ("name version" lines) is $(dirname BASE)/packages.txt.
# EXTRA (optional) is a comma-separated list of packages a test needs on top of
# TUAPT_ROOT_PACKAGES (e.g. cloud-init); such a root has its own hash, so it is a separate cached
# root and the default one is unchanged.

TUAPT_ROOT_PACKAGES=${TUAPT_ROOT_PACKAGES:-sudo,make,passwd,adduser,openssh-server,python3,ca-certificates,iproute2,libgssapi-krb5-2,libstdc++6}
TUAPT_ROOT_SUITE=bookworm
TUAPT_ROOT_DEADLINE=${TUAPT_ROOT_DEADLINE:-1800}

tuapt_mirror() {
	local m
	m=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
	[ -n "$m" ] || m=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
	printf '%s\n' "${m:-http://deb.debian.org/debian}"
}

# chroot_root_build DIR MIRROR: debootstrap + configuration into DIR/root (DIR is fresh).
chroot_root_build() {
	local dir=$1 mirror=$2 cache=${TUAP_CACHE:-/var/cache/tuap} rc=0 r=$1/root
	mkdir -p "$cache/debootstrap/root"
	timeout "$TUAPT_ROOT_DEADLINE" debootstrap --variant=minbase --cache-dir="$cache/debootstrap/root" \
		--include="$TUAPT_ROOT_PACKAGES" "$TUAPT_ROOT_SUITE" "$r" "$mirror" >"$dir/debootstrap.log" 2>&1 || rc=$?
	if [ "$rc" != 0 ]; then
		tail -n 25 "$dir/debootstrap.log" >&2
		[ "$rc" = 124 ] && { echo "timeout after ${TUAPT_ROOT_DEADLINE}s waiting for debootstrap" >&2; return 1; }
		echo "debootstrap of the test root failed (exit $rc)" >&2
		return 1
	fi
	echo tuap-root >"$r/etc/hostname"
	printf '127.0.0.1\tlocalhost tuap-root\n' >"$r/etc/hosts"
	rm -f "$r/etc/resolv.conf" && : >"$r/etc/resolv.conf"
	printf '# tuap test root: no default mirror (no internet in test namespaces)\n' >"$r/etc/apt/sources.list"
	mkdir -p "$r/run/sshd" # normally made by ssh.service's RuntimeDirectory
	rm -f "$r"/var/cache/apt/archives/*.deb "$r"/var/cache/apt/*.bin
	find "$r/var/lib/apt/lists" -maxdepth 1 -type f ! -name lock -delete
	chroot "$r" dpkg-query -W -f '${Package} ${Version}\n' >"$dir/packages.txt"
}

# chroot_root_cached VAR [EXTRA]: sets VAR to the cached root directory (with the EXTRA
# packages), building it on first use.
chroot_root_cached() {
	local cache=${TUAP_CACHE:-/var/cache/tuap} mirror hash dir tmp
	# chroot_root_build reads the list from here (dynamic scope); unchanged without EXTRA
	local TUAPT_ROOT_PACKAGES=$TUAPT_ROOT_PACKAGES${2:+,$2}
	skip_unless_cmd debootstrap chroot flock
	mirror=$(tuapt_mirror)
	hash=$(printf '%s\n' "$TUAPT_ROOT_SUITE" "$mirror" "$TUAPT_ROOT_PACKAGES" "$(declare -f chroot_root_build)" |
		sha256sum | cut -c1-16)
	dir=$cache/roots/$hash
	mkdir -p "$cache/roots"
	if [ ! -s "$dir/packages.txt" ]; then
		(
			flock -w "$TUAPT_ROOT_DEADLINE" 9 ||
				{ echo "timeout after ${TUAPT_ROOT_DEADLINE}s waiting for the lock $cache/roots/.$hash.lock" >&2; exit 1; }
			[ -s "$dir/packages.txt" ] && exit 0
			tuapt_log "building the test root $dir (debootstrap, ~1-2 min)"
			tmp=$(mktemp -d "$cache/roots/.build-$hash.XXXXXX")
			if ! chroot_root_build "$tmp" "$mirror"; then
				findmnt -rn -o TARGET | grep -F "$tmp/" | sort -r | while read -r m; do umount -l "$m"; done
				rm -rf --one-file-system "$tmp"
				exit 1
			fi
			chmod 0755 "$tmp"
			mv "$tmp" "$dir"
		) 9>"$cache/roots/.$hash.lock" || return 1
	fi
	printf -v "$1" '%s' "$dir/root"
}

# chroot_new VAR [EXTRA]: sets VAR to a fresh writable root for this test (overlay on the cached
# root with the EXTRA packages).
chroot_new() {
	local _cn_base _cn_t
	chroot_root_cached _cn_base "${2:-}" || return 1
	tmpdir_new _cn_t
	mkdir -p "$_cn_t/root"
	if [ "${TUAPT_ROOT_COPY:-0}" != 1 ]; then
		mkdir -p "$_cn_t/upper" "$_cn_t/work"
		if mount -t overlay overlay \
			-o "lowerdir=$_cn_base,upperdir=$_cn_t/upper,workdir=$_cn_t/work" "$_cn_t/root" 2>/dev/null; then
			cleanup_push_late umount "$_cn_t/root"
			printf -v "$1" '%s' "$_cn_t/root"
			return 0
		fi
		tuapt_log "overlayfs mount failed; copying the root instead"
	fi
	cp -a --reflink=auto "$_cn_base/." "$_cn_t/root/" || tuapt_die "copying $_cn_base failed"
	printf -v "$1" '%s' "$_cn_t/root"
}

# The inner script: mounts /proc, /sys (this netns's view) and /dev in the private mount
# namespace of `ip netns exec`, then execs chroot (so the PID stays the command's).
# shellcheck disable=SC2016 # expanded by the inner sh
TUAPT_CHROOT_SH='set -e
r=$1; shift
mount -t proc proc "$r/proc"
mount -t sysfs sysfs "$r/sys"
mount --rbind /dev "$r/dev"
exec chroot "$r" "$@"'

# chroot_run NS ROOT CMD [ARG...]: runs CMD chrooted in ROOT inside NS; returns its status.
chroot_run() {
	local ns=$1 root=$2
	shift 2
	ip netns exec "$ns" sh -c "$TUAPT_CHROOT_SH" sh "$root" "$@"
}

# chroot_run_for SECS NS ROOT CMD [ARG...]: chroot_run bounded by SECS seconds (then TERM, and
# "timeout after SECS s waiting for CMD"); returns CMD's status (124 on timeout).
chroot_run_for() {
	local secs=$1 ns=$2 root=$3 rc=0
	shift 3
	timeout "$secs" ip netns exec "$ns" sh -c "$TUAPT_CHROOT_SH" sh "$root" "$@" || rc=$?
	[ "$rc" != 124 ] || echo "timeout after ${secs}s waiting for $*" >&2
	return "$rc"
}

# chroot_bg NS ROOT VAR CMD [ARG...]: like chroot_run, in the background; the PID goes to VAR
# and is stopped at exit. Output goes to $TUAPT_LOGDIR/<cmd>.<n>.log when TUAPT_LOGDIR is set.
chroot_bg() {
	local _cb_ns=$1 _cb_root=$2 _cb_var=$3
	shift 3
	netns_bg "$_cb_ns" "$_cb_var" sh -c "$TUAPT_CHROOT_SH" sh "$_cb_root" "$@"
}
