#!/bin/bash
# tuap-ctl's offline commands, driven as an operator would: validate (exit codes, every error
# as FILE:LINE: key: message), new, pack, provision --dry-run (what it prints and writes, and
# that it creates nothing else), the rendered files through cloud-init's and libvirt's own
# validators, and provision without tuapd.
set -eu -o pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=${TUAP_SRC:-$(cd "$here/../.." && pwd)}
. "$src/tests/lib/harness.sh"
: "${TUAP_CTL:?}"
TUAP_SRC=$src
tmpdir_new work
cd "$work"

# The example validates; pack builds its data.tar.gz from site/.
cp -r "$TUAP_SRC/examples/example.test" .
rm -f example.test/data.tar.gz
"$TUAP_CTL" pack example.test >pack.out
grep -q "example.test/data.tar.gz: 4 entries" pack.out || tuapt_die "pack: $(cat pack.out)"
"$TUAP_CTL" validate example.test >val.out 2>val.err || tuapt_die "example invalid: $(cat val.err)"
grep -q "^example.test: valid: 1 address, 1024 MiB, 2 cpus, image debian-12, 1 user" val.out \
	|| tuapt_die "validate summary: $(cat val.out)"

# Upstream's own files validate unchanged.
mkdir upstream.test
cp "$TUAP_SRC/tests/data/upstream/provision.conf" "$TUAP_SRC/tests/data/upstream/users.yaml" \
	upstream.test/
"$TUAP_CTL" validate upstream.test >/dev/null || tuapt_die "upstream example refused"

# cloud-init's own users example (its Debian package's doc/examples) validates unchanged, with
# warnings only (deprecated forms, ssh_redirect_user without metadata keys).
mkdir ci-example.test
cp upstream.test/provision.conf ci-example.test/
cp "$TUAP_SRC/tests/data/upstream/cloud-config-user-groups.txt" ci-example.test/users.yaml
"$TUAP_CTL" validate ci-example.test >out 2>err || tuapt_die "cloud-init's example refused: $(cat err)"
grep -q ", 7 users," out || tuapt_die "cloud-init's example: $(cat out)"

# Schema drift (14.2): against the installed cloud-init's users schema tuap knows every key;
# a schema with a key more is said, naming it; a file that is not the schema is a warning.
schema=/usr/lib/python3/dist-packages/cloudinit/config/schemas/schema-cloud-config-v1.json
if [ -f "$schema" ]; then
	"$TUAP_CTL" validate example.test >/dev/null 2>err || tuapt_die "validate: $(cat err)"
	! grep -q "does not know" err || tuapt_die "drift against the installed cloud-init: $(cat err)"
	python3 - "$schema" newer.json <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
s["$defs"]["users_groups.user"]["properties"]["passkeys"] = {"type": "array"}
json.dump(s, open(sys.argv[2], "w"))
PY
	TUAP_CLOUDINIT_SCHEMA=newer.json "$TUAP_CTL" validate example.test >/dev/null 2>err ||
		tuapt_die "validate with a newer schema: $(cat err)"
	grep -q "^tuap-ctl: warning: newer.json: the installed cloud-init's users schema has 1 key tuap does not know: passkeys (users.yaml refuses it)$" err ||
		tuapt_die "no drift warning: $(cat err)"
	echo '{}' >other.json
	TUAP_CLOUDINIT_SCHEMA=other.json "$TUAP_CTL" validate example.test >/dev/null 2>err ||
		tuapt_die "validate with a bad schema: $(cat err)"
	grep -q "users schema not checked: other.json: no \$defs.users_groups.user.properties" err ||
		tuapt_die "bad schema: $(cat err)"
else
	echo "# no cloud-init schema at $schema: drift not checked" >&2
fi

# Every error of a bad domain, one FILE:LINE: key: message line each, exit 1.
mkdir bad.test
printf 'ips=192.0.2.300\ngateway=192.0.2.1\nsize=big\nmemroy=512\n' >bad.test/provision.conf
printf 'users:\n  - name: Bad User\n    shell: bash\n' >bad.test/users.yaml
if "$TUAP_CTL" validate bad.test >out 2>err; then tuapt_die "bad.test validated"; fi
grep -qx "bad.test/provision.conf:1: ips: .*" err || tuapt_die "no ips error: $(cat err)"
grep -qx "bad.test/provision.conf:3: size: .*" err || tuapt_die "no size error: $(cat err)"
grep -qx "bad.test/provision.conf:4: memroy: unknown key 'memroy' (did you mean 'memory'?)" err \
	|| tuapt_die "no did-you-mean: $(cat err)"
grep -q "^bad.test/users.yaml:2: users\[0\].name: " err || tuapt_die "no users.yaml error: $(cat err)"
grep -q "^bad.test/users.yaml:3: users\[0\].shell: " err || tuapt_die "no shell error: $(cat err)"

# A data.tar.gz that unpacks to more than the VM's disk is refused at validate.
cp -r example.test small.test
sed -i 's/^size=.*/size=2M/' small.test/provision.conf
head -c $((3 * 1024 * 1024)) /dev/zero >small.test/site/zeros.bin
"$TUAP_CTL" pack small.test >/dev/null
if "$TUAP_CTL" validate small.test 2>err; then tuapt_die "a tarball larger than the disk validated"; fi
grep -q "^small.test/data.tar.gz: unpacks to [0-9]* bytes (0.0 GiB), more than the VM's whole disk (size=2097152 bytes" err ||
	tuapt_die "$(cat err)"

# A domain's files are never read through a symlink (users.yaml -> /etc/shadow printed
# shadow's lines as errors) nor from a FIFO.
cp -r example.test link.test
ln -sf /etc/shadow link.test/users.yaml
if "$TUAP_CTL" validate link.test >out 2>err; then tuapt_die "a symlinked users.yaml validated"; fi
grep -qx "link.test/users.yaml: is a symlink (to /etc/shadow): tuap reads a domain's own files only; copy it in instead" err ||
	tuapt_die "$(cat err)"
! grep -q "root:" err out || tuapt_die "shadow's lines were printed"
rm link.test/users.yaml
mkfifo link.test/users.yaml
timeout 10 "$TUAP_CTL" validate link.test 2>err && tuapt_die "a FIFO users.yaml validated"
grep -q "link.test/users.yaml: is not a regular file" err || tuapt_die "$(cat err)"

# A missing provision.conf is named; nothing is created by any of this.
mkdir empty.test
if "$TUAP_CTL" validate empty.test 2>err; then tuapt_die "empty.test validated"; fi
grep -q "^empty.test/provision.conf: missing" err || tuapt_die "$(cat err)"

# --dry-run prints the four documents; with --output it writes exactly them, and a bad domain
# gets no output directory at all.
"$TUAP_CTL" provision --dry-run example.test >dry.out
for doc in meta-data network-config user-data domain.xml; do
	grep -q "^==> $doc <==" dry.out || tuapt_die "dry-run lacks $doc"
done
before=$(find . | sort | md5sum)
"$TUAP_CTL" provision --dry-run --output rendered example.test >/dev/null
[ "$(ls rendered | tr '\n' ' ')" = "domain.xml meta-data network-config user-data " ] \
	|| tuapt_die "dry-run wrote $(ls rendered)"
rm -r rendered
[ "$(find . | sort | md5sum)" = "$before" ] || tuapt_die "dry-run created something else"
if "$TUAP_CTL" provision --dry-run --output nope bad.test 2>/dev/null; then tuapt_die "bad dry-run"; fi
[ ! -e nope ] || tuapt_die "an invalid domain got an output directory"

# What we render passes the real tools.
"$TUAP_CTL" provision --dry-run --output rendered example.test >/dev/null
cloud-init schema --config-file rendered/user-data | grep -q "Valid cloud-config" \
	|| tuapt_die "cloud-init schema refused user-data"
virt-xml-validate rendered/domain.xml domain >/dev/null || tuapt_die "virt-xml-validate refused"
grep -q "<tuap:domain xmlns:tuap=\"https://tuap.dev/xmlns/domain/1\">" rendered/domain.xml \
	|| tuapt_die "no tuap metadata"

# new: a skeleton that packs and validates; an existing directory is never touched.
"$TUAP_CTL" new shop.example.org >/dev/null
"$TUAP_CTL" pack shop.example.org >/dev/null
"$TUAP_CTL" validate shop.example.org >/dev/null || tuapt_die "skeleton invalid"
sum=$(find shop.example.org -type f -exec md5sum {} + | sort | md5sum)
if "$TUAP_CTL" new shop.example.org 2>/dev/null; then tuapt_die "new overwrote"; fi
[ "$(find shop.example.org -type f -exec md5sum {} + | sort | md5sum)" = "$sum" ] \
	|| tuapt_die "new changed an existing domain"
if "$TUAP_CTL" new 'no_such!' 2>/dev/null; then tuapt_die "new accepted a bad name"; fi

# pack refuses a symlink that leaves site/ and keeps the previous data.tar.gz.
old=$(md5sum <shop.example.org/data.tar.gz)
ln -s /etc/passwd shop.example.org/site/passwd
if "$TUAP_CTL" pack shop.example.org 2>err; then tuapt_die "pack packed an escaping symlink"; fi
grep -q "passwd" err || tuapt_die "$(cat err)"
[ "$(md5sum <shop.example.org/data.tar.gz)" = "$old" ] || tuapt_die "pack replaced data.tar.gz"
ls shop.example.org | grep -q tmp && tuapt_die "pack left a temporary file"

# Without tuapd, provision says so (exit 3) and changes nothing.
if TUAP_SOCKET="$work/no.sock" "$TUAP_CTL" provision example.test 2>err; then
	tuapt_die "provision without tuapd succeeded"
fi
grep -q "tuapd is not running" err || tuapt_die "$(cat err)"

# -n LINES is bounded and checked before anything is asked of tuapd (exit 2).
for n in 0 -3 abc 99999999999 1000001; do
	for cmd in log console-log; do
		rc=0
		TUAP_SOCKET="$work/no.sock" "$TUAP_CTL" "$cmd" -n "$n" example.test 2>err || rc=$?
		[ "$rc" = 2 ] && grep -q -- "-n wants a number of lines" err ||
			tuapt_die "$cmd -n $n: exit $rc, $(cat err)"
	done
done

# Every command has --help.
for cmd in validate provision status list watch log run update-data enroll new pack destroy snapshot restore console-log help completion version; do
	"$TUAP_CTL" "$cmd" --help | grep -q "^usage: tuap-ctl $cmd" || tuapt_die "$cmd --help"
done
echo "ok"
