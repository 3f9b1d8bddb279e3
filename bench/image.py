#!/usr/bin/env python3
"""The whole-image row of `make bench` (issue 12); scripts/image-bench.sh builds the tools.

    image.py build DIR MIB      write the bench images into DIR (cached until the layers change)
    image.py run DIR DIFFID VALIDATE
                                time them, write DIR/image.md and DIR/image.json

The images: six layers cut from one deterministic choice of installed files (compare.py's
`select`, about MIB MiB in all; each layer a tar with sorted names, mtime 0, owner 0), so that
every run on the same system builds the same bytes. Two sets of the same six tars:

  mixed   gzip (pigz -6), zstd (-3), xz (-6 -T2, blocks), bzip2 (-9), plain tar, gzip
  gzip    all six gzip (pigz -6): the only image go-containerregistry's validate.Image can
          read, since it opens every layer with compress/gzip

and each set written twice: as an OCI image layout (a directory: oci-layout, index.json,
blobs/sha256/) and as a classic `docker save` archive (manifest.json, the config, one
`<id>/layer.tar` per layer, stored as compressed as the layout has it, as `docker load` and
containers/image's docker-archive accept). The JSON documents are written here with the
standard library (a benchmark fixture, not an image parser; diffid and go-containerregistry
check them).

Timed, on each of the four, best wall time of BENCH_RUNS rounds (default 3):
  diffid image PATH                         every layer at once under one worker budget
  diffid LAYER1 ... LAYER6                  the same blobs digested one after another
  validate.Image (bench/image-validate)     what `crane validate` runs

The run checks what each one says: diffid image must verify every image, the sequential
diffid must give the config's diff_ids, and validate.Image must pass on the gzip image (on the
mixed one it refuses the first layer it cannot gunzip; that error is recorded in the table).
"""

import datetime
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402  (select, timed, machine, loadavg, fmt_s)

LAYERS = 6
# (format, file suffix, command reading the tar on stdin, OCI media type). An xz or bzip2
# layer gets the `+gzip` type: containers/image labels them so (it has no other name for
# them), and diffid checks the type against that label.
CODECS = {
    "gzip": (".tar.gz", ["pigz", "-6", "-n", "-c"], "application/vnd.oci.image.layer.v1.tar+gzip"),
    "zstd": (".tar.zst", ["zstd", "-3", "-q", "-c"], "application/vnd.oci.image.layer.v1.tar+zstd"),
    "xz": (".tar.xz", ["xz", "-6", "-T2", "-c"], "application/vnd.oci.image.layer.v1.tar+gzip"),
    "bzip2": (".tar.bz2", ["bzip2", "-9", "-c"], "application/vnd.oci.image.layer.v1.tar+gzip"),
    "none": (".tar", None, "application/vnd.oci.image.layer.v1.tar"),
}
SETS = {
    "mixed": ["gzip", "zstd", "xz", "bzip2", "none", "gzip"],
    "gzip": ["gzip"] * LAYERS,
}
SHAPES = ["oci", "docker"]


def say(msg):
    print(f"\033[1mimage-bench:\033[0m {msg}", file=sys.stderr)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def split_list(list_path, parts):
    """Cuts compare.py's sorted list into `parts` runs of files of about equal total size;
    each run also gets every directory above its files (so each layer is a tar a runtime
    could apply on its own)."""
    with open(list_path, "rb") as f:
        entries = [e for e in f.read().split(b"\0") if e]
    files = []
    for e in entries:
        p = b"/" + e
        try:
            st = os.lstat(p)
        except OSError:
            continue
        if not os.path.isdir(p) or os.path.islink(p):
            files.append((e, st.st_size))
    total = sum(s for _, s in files)
    runs, cur, acc = [], [], 0
    for e, s in files:
        cur.append(e)
        acc += s
        if acc >= total * (len(runs) + 1) / parts and len(runs) < parts - 1:
            runs.append(cur)
            cur = []
    runs.append(cur)
    out = []
    for run in runs:
        dirs = set()
        for e in run:
            d = os.path.dirname(e)
            while d not in (b"", b"/"):
                dirs.add(d)
                d = os.path.dirname(d)
        out.append(sorted(set(run) | dirs))
    return out


def tar_layer(names, dest):
    lst = dest + ".list"
    with open(lst, "wb") as f:
        for n in names:
            f.write(n + b"\0")
    r = subprocess.run(["tar", "-C", "/", "--null", "--no-recursion", "-T", lst, "--sort=name",
                        "--mtime=@0", "--owner=0", "--group=0", "--numeric-owner", "--format=pax",
                        "--pax-option=delete=atime,delete=ctime", "-cf", dest + ".tmp"])
    # Exit status 1: a file changed while read (a package being installed); the tar is whole.
    if r.returncode not in (0, 1):
        sys.exit(f"image-bench: tar failed for {dest}")
    os.replace(dest + ".tmp", dest)
    os.unlink(lst)


def compress(src, codec):
    suffix, argv, _ = CODECS[codec]
    if argv is None:
        return src
    dest = src[: -len(".tar")] + suffix
    if not os.path.exists(dest) or os.path.getmtime(dest) < os.path.getmtime(src):
        say(f"{' '.join(argv)} < {os.path.basename(src)}")
        with open(src, "rb") as i, open(dest + ".tmp", "wb") as o:
            subprocess.run(argv, stdin=i, stdout=o, check=True)
        os.replace(dest + ".tmp", dest)
    return dest


def canonical(doc):
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def write_images(d, name, blobs, diff_ids):
    """Writes image-NAME-oci/ and image-NAME-docker.tar from the layer files `blobs`."""
    codecs = SETS[name]
    config = canonical({
        "architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/usr/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{x}" for x in diff_ids]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": f"layer {i} ({c})"}
                    for i, c in enumerate(codecs)],
    })
    config_hex = hashlib.sha256(config).hexdigest()
    layer_descs = []
    for path, codec in zip(blobs, codecs):
        layer_descs.append({"mediaType": CODECS[codec][2], "digest": f"sha256:{sha256_file(path)}",
                            "size": os.path.getsize(path)})
    manifest = canonical({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": f"sha256:{config_hex}", "size": len(config)},
        "layers": layer_descs,
    })
    manifest_hex = hashlib.sha256(manifest).hexdigest()
    index = canonical({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": f"sha256:{manifest_hex}", "size": len(manifest),
                       "platform": {"architecture": "amd64", "os": "linux"},
                       "annotations": {"org.opencontainers.image.ref.name": name}}],
    })

    # The OCI layout: layer blobs are hard links to the layer files (no second copy).
    oci = os.path.join(d, f"image-{name}-oci")
    shutil.rmtree(oci, ignore_errors=True)
    bdir = os.path.join(oci, "blobs", "sha256")
    os.makedirs(bdir)
    with open(os.path.join(oci, "oci-layout"), "wb") as f:
        f.write(canonical({"imageLayoutVersion": "1.0.0"}))
    with open(os.path.join(oci, "index.json"), "wb") as f:
        f.write(index)
    for data, hexd in ((config, config_hex), (manifest, manifest_hex)):
        with open(os.path.join(bdir, hexd), "wb") as f:
            f.write(data)
    for path, desc in zip(blobs, layer_descs):
        target = os.path.join(bdir, desc["digest"].split(":")[1])
        if not os.path.exists(target):
            os.link(path, target)

    # The `docker save` archive (moby's layout before Docker 25: <id>/layer.tar, <hex>.json).
    ids = [hashlib.sha256(f"{name}/{i}/{x}".encode()).hexdigest() for i, x in enumerate(diff_ids)]
    entry = [{"Config": f"{config_hex}.json", "RepoTags": [f"bench/image:{name}"],
              "Layers": [f"{i}/layer.tar" for i in ids]}]
    tmp = os.path.join(d, f"image-{name}-docker.tar.tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as t:
        def add_bytes(arc, data):
            ti = tarfile.TarInfo(arc)
            ti.size, ti.mtime, ti.mode = len(data), 0, 0o644
            t.addfile(ti, io.BytesIO(data))
        for i, path in zip(ids, blobs):
            ti = tarfile.TarInfo(i)
            ti.type, ti.mtime, ti.mode = tarfile.DIRTYPE, 0, 0o755
            t.addfile(ti)
            ti = t.gettarinfo(path, f"{i}/layer.tar")
            ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname, ti.mode = 0, 0, 0, "", "", 0o644
            with open(path, "rb") as f:
                t.addfile(ti, f)
        add_bytes(f"{config_hex}.json", config)
        add_bytes("manifest.json", json.dumps(entry).encode())
        add_bytes("repositories", json.dumps({"bench/image": {name: ids[-1]}}).encode())
    os.replace(tmp, os.path.join(d, f"image-{name}-docker.tar"))
    return {"oci": oci, "docker": os.path.join(d, f"image-{name}-docker.tar"),
            "blobs": blobs, "diff_ids": [f"sha256:{x}" for x in diff_ids], "codecs": codecs,
            "blob_bytes": sum(x["size"] for x in layer_descs)}


def build(d, mib):
    os.makedirs(d, exist_ok=True)
    stamp = os.path.join(d, "image.mib")
    tars = [os.path.join(d, f"image-layer{i}.tar") for i in range(LAYERS)]
    if not all(os.path.exists(t) for t in tars) or not os.path.exists(stamp) or \
            open(stamp).read().strip() != str(mib):
        say(f"choosing about {mib} MiB of installed files for {LAYERS} layers")
        lst = os.path.join(d, "image.list")
        compare.select(lst, mib)
        for i, names in enumerate(split_list(lst, LAYERS)):
            say(f"writing {os.path.basename(tars[i])} ({len(names)} entries)")
            tar_layer(names, tars[i])
        os.unlink(lst)
        with open(stamp, "w") as f:
            f.write(f"{mib}\n")
    diff_ids = [sha256_file(t) for t in tars]  # openssl-independent: hashlib of the tar
    images = {}
    for name, codecs in SETS.items():
        blobs = [compress(t, c) for t, c in zip(tars, codecs)]
        images[name] = write_images(d, name, blobs, diff_ids)
    images["tar_bytes"] = sum(os.path.getsize(t) for t in tars)
    with open(os.path.join(d, "image.info"), "w") as f:
        json.dump(images, f, indent=1)
    say("wrote " + ", ".join(f"image-{n}-{s}" for n in SETS for s in SHAPES))


# --------------------------------------------------------------------------------------------

def check(label, shape, name, info, r):
    """What the command said must be what the image is; returns validate.Image's error for a
    run expected to fail (the mixed image), else None."""
    out = r["out"]
    if label == "diffid image":
        docs = [json.loads(x) for x in out.splitlines() if x.strip()]
        if r["rc"] != 0 or not docs or not all(x.get("verified") for x in docs):
            sys.exit(f"image-bench: diffid image did not verify {name}/{shape}: {out[:2000]}")
        got = [x["diff_id"] for x in docs[0]["layers"]]
        if got != info["diff_ids"]:
            sys.exit(f"image-bench: diffid image reported {got}, the tars hash to {info['diff_ids']}")
    elif label.startswith("diffid, layers"):
        docs = [json.loads(x) for x in out.splitlines() if x.strip()]
        got = [x.get("diff_id") for x in docs]
        if r["rc"] != 0 or got != info["diff_ids"]:
            sys.exit(f"image-bench: diffid on the layers gave {got}, the tars hash to {info['diff_ids']}")
    else:  # validate.Image
        if r["rc"] == 0:
            if "ok" not in out:
                sys.exit(f"image-bench: validate.Image said {out!r}")
            return None
        if name == "gzip":
            sys.exit(f"image-bench: validate.Image failed on the gzip image: {out[:2000]}")
        msg = out.strip().splitlines()[-1] if out.strip() else f"exit {r['rc']}"
        # validate.Index wraps the image's error in "validating children: ... Manifests[0]
        # (sha256:...): "; the table keeps the part that says what was wrong.
        at = msg.find("validating layers")
        return msg[at:] if at >= 0 else msg
    return None


def run(d, diffid, validate, rounds):
    with open(os.path.join(d, "image.info")) as f:
        info = json.load(f)
    started = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    cmds = []
    for name in SETS:
        for shape in SHAPES:
            path = info[name][shape]
            cmds.append((name, shape, "diffid image", [diffid, "image", "--json", path]))
            cmds.append((name, shape, "diffid, layers one after another",
                         [diffid, "-q", "--json", *info[name]["blobs"]]))
            cmds.append((name, shape, "validate.Image", [validate, path]))
    load_before = compare.loadavg()
    say(f"{len(cmds)} commands x {rounds} rounds; load average {load_before}")
    for name in SETS:  # warm the page cache
        for p in info[name]["blobs"] + [info[name]["docker"]]:
            with open(p, "rb") as f:
                while f.read(1 << 24):
                    pass
    res = {}
    for rnd in range(rounds):
        for name, shape, label, argv in cmds:
            r = compare.timed(argv)
            fail = check(label, shape, name, info[name], r)
            slot = res.setdefault((name, shape, label), {"walls": [], "cpus": [], "rss_kib": 0})
            slot["walls"].append(r["wall"])
            slot["cpus"].append(r["cpu"])
            slot["rss_kib"] = max(slot["rss_kib"], r["rss_kib"])
            slot["error"] = fail
            say(f"round {rnd + 1}/{rounds}  {name:5} {shape:6} {label:34} {r['wall']:7.2f} s  "
                f"cpu {r['cpu']:6.2f} s  rss {r['rss_kib'] / 1024:5.0f} MiB"
                + (f"  (refused: {fail[:80]})" if fail else ""))
    load_after = compare.loadavg()
    mach = compare.machine(diffid)
    lines = [
        "# Whole images: `diffid image` beside validate.Image and per-layer diffid",
        "",
        f"Run {started}; {mach['cpu']}, {mach['nproc']} cores, {mach['memory']}; diffid "
        f"{(mach['versions']['diffid'].splitlines() or [''])[0]} "
        f"({mach['versions']['diffid commit']}); load average "
        f"{load_before} before, {load_after} after. Best wall seconds of {rounds} rounds "
        f"(CPU seconds, user + system, of that round), page cache warm. Six layers, "
        f"{info['tar_bytes'] / 1e6:.0f} MB of tar in all; compressed: mixed "
        f"{info['mixed']['blob_bytes'] / 1e6:.0f} MB ({', '.join(SETS['mixed'])}), gzip "
        f"{info['gzip']['blob_bytes'] / 1e6:.0f} MB.",
        "",
        "| image | `diffid image` | diffid, layers one after another | validate.Image "
        "(go-containerregistry) | one after another / image | validate.Image / image |",
        "|---|---|---|---|---|---|",
    ]
    out = {"started": started, "machine": mach, "load_before": load_before,
           "load_after": load_after, "rounds": rounds, "rows": []}

    def best(slot):
        i = min(range(len(slot["walls"])), key=lambda k: slot["walls"][k])
        return slot["walls"][i], slot["cpus"][i]

    for name in SETS:
        for shape in SHAPES:
            im = res[(name, shape, "diffid image")]
            sq = res[(name, shape, "diffid, layers one after another")]
            va = res[(name, shape, "validate.Image")]
            (iw, ic), (sw, sc), (vw, vc) = best(im), best(sq), best(va)
            what = "OCI layout" if shape == "oci" else "`docker save` archive"
            vcell = f"{vw:.2f} ({vc:.2f})" if not va["error"] else \
                f"refused in {vw:.2f}: {va['error'][:90]}"
            lines.append(f"| {name}, {what} | **{iw:.2f}** ({ic:.2f}) | {sw:.2f} ({sc:.2f}) | "
                         f"{vcell} | {sw / iw:.2f}x | "
                         f"{'—' if va['error'] else f'{vw / iw:.2f}x'} |")
            out["rows"].append({"image": name, "shape": shape, "diffid_image": im,
                                "diffid_sequential": sq, "validate_image": va,
                                "ratio_sequential": sw / iw,
                                "ratio_validate": None if va["error"] else vw / iw})
    lines += ["", "validate.Image opens every layer with Go's compress/gzip, so it refuses "
              "the mixed image at its first zstd, xz, bzip2 or plain layer; its column on "
              "those rows is the time until that refusal."]
    text = "\n".join(lines) + "\n"
    with open(os.path.join(d, "image.md"), "w") as f:
        f.write(text)
    with open(os.path.join(d, "image.json"), "w") as f:
        json.dump(out, f, indent=1)
    print(text)


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "build":
        build(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) == 5 and sys.argv[1] == "run":
        run(sys.argv[2], sys.argv[3], sys.argv[4], int(os.environ.get("BENCH_RUNS", "3")))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
