#!/bin/bash
# tuap-agent is copied into guests and existing hosts built by others: its dynamic dependencies
# must be libraries every supported system has (Debian 12, Ubuntu 22.04 and 24.04), and it must
# not ask for newer symbol versions than Ubuntu 22.04 provides (glibc 2.35, libstdc++ of GCC 12).
# Everything else (zmq, sodium, protobuf-c, libarchive, OpenSSL, ...) is linked in statically.
# Skipped (77) when the build has no tuap-agent or links it for a sanitizer.
set -eu -o pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=${TUAP_SRC:-$(cd "$here/../.." && pwd)}
. "$src/tests/lib/harness.sh"

MAX_GLIBC=2.35
MAX_GLIBCXX=3.4.30
MAX_CXXABI=1.3.13
ALLOWED="libc.so.6 libm.so.6 libstdc++.so.6 libgcc_s.so.1 libgssapi_krb5.so.2
ld-linux-x86-64.so.2 libpthread.so.0 libdl.so.2"

bin=${1:-${TUAP_SHIP_AGENT:-${TUAP_AGENT:-}}}
[ -n "$bin" ] || tuapt_skip "TUAP_AGENT is not set (this build has no tuap-agent)"
[ -f "$bin" ] || tuapt_die "$bin does not exist"

needed=$(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
case $needed in
*libasan* | *libubsan*)
	tuapt_skip "$bin is a sanitizer build (linked dynamically on purpose)"
	;;
esac

rc=0
for lib in $needed; do
	ok=0
	for a in $ALLOWED; do
		[ "$lib" = "$a" ] && ok=1
	done
	if [ $ok = 0 ]; then
		echo "FAIL: $bin needs $lib (allowed: $(echo $ALLOWED))"
		rc=1
	fi
done

# Highest version of each versioned family the binary asks for (version-needs section).
highest() {
	readelf -V --wide "$bin" | sed -n "s/.*Name: $1_\([0-9.]*\).*/\1/p" | sort -V | tail -1
}
check() { # family limit
	v=$(highest "$1")
	[ -n "$v" ] || return 0
	top=$(printf '%s\n%s\n' "$v" "$2" | sort -V | tail -1)
	if [ "$top" != "$2" ]; then
		echo "FAIL: $bin needs $1_$v, newer than $1_$2"
		readelf -V --wide "$bin" | grep "Name: $1_$v" | head -3
		rc=1
	else
		echo "ok: highest $1 version $v <= $2"
	fi
}
check GLIBC $MAX_GLIBC
check GLIBCXX $MAX_GLIBCXX
check CXXABI $MAX_CXXABI

# The libraries meant to be static must really be inside (not just absent from NEEDED by luck):
# the link code uses these on every run.
if grep -q '\.symtab' <<<"$(readelf -S --wide "$bin")"; then
	syms=$(nm "$bin")
	for sym in zmq_ctx_new sodium_init protobuf_c_message_unpack; do
		if ! grep -q " T $sym\$" <<<"$syms"; then
			echo "FAIL: $sym is not defined in $bin (not linked statically?)"
			rc=1
		fi
	done
fi

[ $rc = 0 ] && echo "ok: $bin needs only: $(echo $needed)"
exit $rc
