#!/usr/bin/python3
"""Writes a synthetic site's data.tar.gz tar stream (uncompressed) to stdout.

The site looks like real site data to gzip and to tar: many small text files (HTML, PHP, CSS,
JS-like lines built from a Zipf-weighted vocabulary; gzip gets about 3-4x on them), many
media-like blobs (bytes with a skewed distribution, so gzip gets only a few percent, as on
JPEG/PNG/MP4, and still has to Huffman-decode them), a few large files (a compressible SQL
dump, incompressible videos) and a top-level Makefile whose default target does nothing.

Deterministic: the same parameters give the same bytes (fixed seed, mtimes, owners, order),
so the caller can cache the compressed result keyed by them. --scale multiplies file counts
and large-file sizes (1.0 gives about 1 GiB of data.tar.gz with gzip -6).

    gendata.py [--seed N] [--scale F] | gzip -6 -n > data.tar.gz
"""
import argparse
import io
import random
import sys
import tarfile

MTIME = 1700000000
CORPUS_SIZE = 8 << 20


def params():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--describe", action="store_true",
                    help="print the effective parameters (the cache key) and exit")
    a = ap.parse_args()
    s = a.scale
    p = {
        "seed": a.seed,
        "text_files": max(1, int(24000 * s)),
        "text_min": 256,
        "text_max": 96 << 10,
        "blob_files": max(1, int(1600 * s)),
        "blob_min": 16 << 10,
        "blob_max": 2 << 20,
        "videos": 2,
        "video_size": max(1 << 20, int((80 << 20) * s)),
        "dump_size": max(1 << 20, int((384 << 20) * s)),
    }
    return a, p


def make_vocab(rng):
    letters = "etaoinshrdlcumwfgypbvkjxqz"
    weights = [12, 9, 8, 8, 7, 7, 6, 6, 6, 4, 4, 3, 3, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1]
    words = set()
    while len(words) < 2000:
        n = max(2, min(14, int(rng.gauss(6.5, 2.5))))
        words.add("".join(rng.choices(letters, weights, k=n)))
    words = sorted(words)
    rng.shuffle(words)
    cum, t = [], 0.0
    for i in range(len(words)):
        t += 1.0 / (i + 1)
        cum.append(t)
    return words, cum


def make_corpus(rng):
    """About CORPUS_SIZE bytes of text in several dialects (markup, code, prose)."""
    words, cum = make_vocab(rng)
    tags = ["div", "span", "p", "a", "li", "td", "section", "article", "h2", "strong"]
    kw = ["function", "return", "if", "else", "foreach", "echo", "var", "const", "class",
          "public", "private", "static", "new", "null", "true", "false", "$this->"]
    out = []
    size = 0
    while size < CORPUS_SIZE:
        kind = rng.random()
        ws = rng.choices(words, cum_weights=cum, k=rng.randint(4, 18))
        if kind < 0.4:
            t = rng.choice(tags)
            line = '    <%s class="%s-%s"><a href="/%s/%s.html" title="%s">%s</a></%s>\n' % (
                t, ws[0], ws[1], ws[0], ws[2], ws[2], " ".join(ws[2:]), t)
        elif kind < 0.7:
            line = "    %s %s(%s) { %s; }\n" % (rng.choice(kw), ws[0], ", ".join(
                "$" + w for w in ws[1:3]), " ".join(rng.choice(kw) + " " + w for w in ws[3:]))
        elif kind < 0.8:
            line = ".%s-%s { margin: %dpx %dpx; color: #%06x; }\n" % (
                ws[0], ws[1], rng.randint(0, 40), rng.randint(0, 40), rng.getrandbits(24))
        else:
            line = " ".join(ws).capitalize() + ".\n"
        out.append(line)
        size += len(line)
    return "".join(out).encode()


def text_bytes(rng, corpus, n):
    """n bytes made of random slices of the corpus (gzip's 32 KiB window sees no repeats)."""
    parts = []
    left = n
    while left > 0:
        k = min(left, rng.randint(4 << 10, 64 << 10))
        off = rng.randrange(0, len(corpus) - k)
        parts.append(corpus[off:off + k])
        left -= k
    return b"".join(parts)


# Media-like bytes: a skewed byte distribution (one value 17 times as likely as most, 15 never
# seen), so deflate emits Huffman blocks that save about 3%, like on JPEG or H.264 data.
SKEW = bytes(0 if i % 16 == 15 else i for i in range(256))


def blob_bytes(rng, n):
    return rng.randbytes(n).translate(SKEW)


def logu(rng, lo, hi):
    return int(lo * (hi / lo) ** rng.random())


def add(tar, name, data, mode=0o644):
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    ti.mtime = MTIME
    ti.mode = mode
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = "root"
    tar.addfile(ti, io.BytesIO(data))


def add_dir(tar, name):
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.DIRTYPE
    ti.mtime = MTIME
    ti.mode = 0o755
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = "root"
    tar.addfile(ti)


def main():
    a, p = params()
    if a.describe:
        print(" ".join("%s=%s" % kv for kv in sorted(p.items())))
        return 0
    rng = random.Random(p["seed"])
    corpus = make_corpus(rng)
    out = sys.stdout.buffer
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.GNU_FORMAT,
                      bufsize=1 << 20) as tar:
        add(tar, "Makefile", b"# bench site: the default target does nothing\nall:\n\t@:\n")
        ext = [".html", ".php", ".css", ".js", ".txt"]
        dirs = set()
        for i in range(p["text_files"]):
            d = "public/%02d/%03d" % (i // 2400, (i // 60) % 40)
            if d not in dirs:
                for k in range(1, d.count("/") + 2):
                    sub = "/".join(d.split("/")[:k])
                    if sub not in dirs:
                        add_dir(tar, sub)
                        dirs.add(sub)
            n = logu(rng, p["text_min"], p["text_max"])
            add(tar, "%s/page%05d%s" % (d, i, rng.choice(ext)), text_bytes(rng, corpus, n))
        for i in range(p["blob_files"]):
            d = "media/img/%02d" % (i // 200)
            for sub in ("media", "media/img", d):
                if sub not in dirs:
                    add_dir(tar, sub)
                    dirs.add(sub)
            n = logu(rng, p["blob_min"], p["blob_max"])
            add(tar, "%s/img%05d%s" % (d, i, rng.choice([".jpg", ".png", ".webp"])),
                blob_bytes(rng, n))
        add_dir(tar, "media/video")
        for i in range(p["videos"]):
            add(tar, "media/video/clip%d.mp4" % i, blob_bytes(rng, p["video_size"]))
        add_dir(tar, "db")
        add(tar, "db/dump.sql", text_bytes(rng, corpus, p["dump_size"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
