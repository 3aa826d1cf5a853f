# shellcheck shell=bash
# tests/lib/aptrepo.sh — sourced (bash) after harness.sh. A local flat apt repository for guests and
# test roots, which have no internet: the .debs are fetched on the host with `apt-get download`
# (from the host's configured mirror, verified against its apt lists) and cached in
# ${TUAP_CACHE:-/var/cache/tuap}/apt; the repository index is made with dpkg-scanpackages
# (package dpkg-dev, pulled in by build-essential) and served by `python3 -m http.server` bound
# to an address inside one of the test's namespaces.
#
#   aptrepo_build DIR MANIFEST PKG...     # PKG and its dependency closure, minus what MANIFEST
#                                         # (lines "name version") already has at >= version
#   aptrepo_serve NS ADDR PORT DIR VAR    # serves DIR; VAR = the sources.list line
#                                         # "deb [trusted=yes] http://ADDR:PORT/ ./"
#
# The closure comes from `apt-cache depends --recurse` on the host (Depends + Pre-Depends, no
# Recommends), so it is what `apt-get install --no-install-recommends PKG` needs on a system
# holding MANIFEST. Guest manifests: IMAGE_DIR/packages.txt (build-image) or
# $(dirname ROOT)/packages.txt (chroot.sh).

TUAPT_APT_DEADLINE=${TUAPT_APT_DEADLINE:-600}

# aptrepo_closure PKG...: prints "name version arch" for PKG and everything it depends on.
aptrepo_closure() {
	local names
	names=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
		--no-replaces --no-enhances "$@" | grep -E '^[A-Za-z0-9]' | sort -u) || return 1
	[ -n "$names" ] || return 1
	# shellcheck disable=SC2086 # one argument per package name
	apt-cache show --no-all-versions $names 2>/dev/null |
		awk '/^Package: / {p = $2} /^Version: / {v = $2} /^Architecture: / {a = $2}
		     /^$/ {if (p != "") print p, v, a; p = ""} END {if (p != "") print p, v, a}'
}

# aptrepo_build DIR MANIFEST PKG...
aptrepo_build() {
	local dir=$1 manifest=$2 cache=${TUAP_CACHE:-/var/cache/tuap}/apt p v a have f want=() n=0 closure
	shift 2
	skip_unless_cmd apt-get apt-cache dpkg-scanpackages gzip
	[ -r "$manifest" ] || tuapt_die "aptrepo_build: cannot read manifest $manifest"
	mkdir -p "$dir" "$cache"
	closure=$(aptrepo_closure "$@") ||
		tuapt_die "aptrepo_build: apt-cache knows no '$*' (run apt-get update on the host?)"
	: >"$dir/contents.txt"
	while read -r p v a; do
		have=$(awk -v p="$p" '$1 == p {print $2; exit}' "$manifest")
		if [ -n "$have" ] && dpkg --compare-versions "$have" ge "$v"; then
			continue
		fi
		f=${p}_${v/:/%3a}_$a.deb
		[ -s "$cache/$f" ] || want+=("$p=$v")
		printf '%s\n' "$f" >>"$dir/contents.txt"
	done <<<"$closure"
	if [ "${#want[@]}" -gt 0 ]; then
		tuapt_log "apt-get download ${want[*]}"
		(cd "$cache" && timeout "$TUAPT_APT_DEADLINE" apt-get download -q -o APT::Sandbox::User=root "${want[@]}" >&2) ||
			tuapt_die "apt-get download failed or timed out after ${TUAPT_APT_DEADLINE}s: ${want[*]}"
	fi
	while read -r f; do
		[ -s "$cache/$f" ] || tuapt_die "aptrepo_build: $cache/$f missing after download"
		ln -f "$cache/$f" "$dir/$f" 2>/dev/null || cp "$cache/$f" "$dir/$f"
		n=$((n + 1))
	done <"$dir/contents.txt"
	[ "$n" -gt 0 ] || tuapt_die "aptrepo_build: nothing to put in the repository for '$*' (all in $manifest)"
	(cd "$dir" && dpkg-scanpackages --multiversion . /dev/null >Packages 2>/dev/null) ||
		tuapt_die "dpkg-scanpackages failed in $dir"
	gzip -9 -k -f "$dir/Packages"
	{
		printf 'Origin: tuap-test\nLabel: tuap-test\nDate: %s\nSHA256:\n' "$(date -u -R)"
		for f in Packages Packages.gz; do
			printf ' %s %s %s\n' "$(sha256sum <"$dir/$f" | cut -d' ' -f1)" "$(stat -c %s "$dir/$f")" "$f"
		done
	} >"$dir/Release"
	chmod -R a+rX "$dir"
	tuapt_log "apt repository $dir: $n packages"
}

# aptrepo_serve NS ADDR PORT DIR VAR
aptrepo_serve() {
	local _as_pid
	testnet_ok "$2/24" || [ "$2" = 127.0.0.1 ] || tuapt_die "aptrepo_serve: $2 is not a test address"
	netns_bg "$1" _as_pid /usr/bin/python3 -m http.server --bind "$2" --directory "$4" "$3"
	wait_for "apt repository http server on $2:$3" 20 port_open "$1" "$2" "$3" || return 1
	printf -v "$5" 'deb [trusted=yes] http://%s:%s/ ./' "$2" "$3"
}
