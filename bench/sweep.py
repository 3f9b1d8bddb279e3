#!/usr/bin/env python3
"""The thread sweep and the cost model of `make bench` (scripts/sweep.sh makes the layers).

    sweep.py select-small OUT_LIST MIB   choose many small, compressible installed files
    sweep.py run OUT DIFFID LAYERDIR...  time diffid at each thread count beside the decoder
                                         alone and the best parallel peer on every layer;
                                         write OUT/sweep.md, sweep.json, sweep.svg, model.md

Each LAYERDIR holds layer.tar, its compressed forms (the names of compare.py's FORMATS) and
layer.info ({"corpus", "mib", "layer_entries", "layer_diffid"}). Standard library only; the
timing (`timed`: wall from perf_counter, CPU from GNU time) is compare.py's. Each round runs
every command of every layer once, in a fixed order, so load from other processes spreads over
all the commands alike; the best (least) wall of the rounds counts, and the CPU seconds of that
run.

Environment: BENCH_RUNS (3), BENCH_THREADS (comma-separated thread counts; default 1, 2, 4,
... up to the cores, and the cores), BENCH_FORMATS (all of compare.py's FORMATS), BENCH_SLOW
(60: a command longer than this many seconds runs once).

Thread counts above the default worker budget (the cores) are run with DIFFID_WORKERS set to
the count, so `-jN` gets N workers even where that oversubscribes the machine.
"""

import datetime
import hashlib
import json
import os
import shlex
import stat
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402  (timed, have, bash, machine, loadavg, FORMATS)

# --------------------------------------------------------------------------------------------
# The second corpus: many small, highly compressible files.

SMALL_ROOTS = [("usr/share", 0.6), ("usr/lib", 0.4)]
SMALL_MAX = 64 << 10  # a file larger than this is not "small"
# Already-compressed content, by name and by magic: left out so the corpus stays compressible.
COMPRESSED_EXT = (".gz", ".tgz", ".xz", ".bz2", ".zst", ".lz4", ".lzma", ".zip", ".jar",
                  ".png", ".jpg", ".jpeg", ".gif", ".webp", ".ico", ".woff", ".woff2",
                  ".ogg", ".oga", ".mp3", ".pyc", ".whl", ".deb", ".cab", ".zsync")
COMPRESSED_MAGIC = (b"\x1f\x8b", b"\xfd7zXZ", b"BZh", b"\x28\xb5\x2f\xfd", b"PK\x03\x04",
                    b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"wOF")


def select_small(out_list, mib):
    """Writes a NUL-separated, sorted list of paths (relative to /) of about `mib` MiB of
    regular files of at most 64 KiB under /usr/share and /usr/lib that are not already
    compressed, plus the directories above them. Files are picked by a hash of their path,
    so the same system gives the same list, and the sample spreads over every package."""
    budget = mib << 20
    chosen = set()
    for root, share in SMALL_ROOTS:
        files, total = [], 0
        for dirpath, dirnames, filenames in os.walk("/" + root):
            dirnames.sort()
            for name in sorted(filenames):
                if name.lower().endswith(COMPRESSED_EXT):
                    continue
                path = os.path.join(dirpath, name)
                try:
                    st = os.lstat(path)
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode) and 0 < st.st_size <= SMALL_MAX \
                        and os.access(path, os.R_OK):
                    files.append((path, st.st_size))
                    total += st.st_size
        want = budget * share
        p = min(1.0, want / max(total, 1))
        got = 0
        for path, size in files:
            h = int.from_bytes(hashlib.sha1(path.encode("utf-8", "surrogateescape")).digest()[:8],
                               "big")
            if h / 2**64 >= p or got + size > want * 1.05:
                continue
            try:
                with open(path, "rb") as f:
                    head = f.read(8)
            except OSError:
                continue
            if head.startswith(COMPRESSED_MAGIC):
                continue
            chosen.add(path)
            got += size
    dirs = set()
    for path in chosen:
        d = os.path.dirname(path)
        while d not in ("/", ""):
            dirs.add(d)
            d = os.path.dirname(d)
    entries = sorted(p[1:].encode("utf-8", "surrogateescape") for p in chosen | dirs)
    with open(out_list, "wb") as f:
        for e in entries:
            f.write(e + b"\0")


# --------------------------------------------------------------------------------------------
# What is timed.

# The decoder alone, one thread (the reference of compare.py, but xz always -T1): the first
# one installed counts.
DECODER = {
    "gz": ["igzip -dc", "gzip -dc"], "zst": ["zstd -dcq"], "zst-frames": ["zstd -dcq"],
    "xz": ["xz -dc -T1"], "xz-1": ["xz -dc -T1"], "bz2": ["bzip2 -dc"],
    "tar": ["openssl dgst -sha256"],
}
# The best parallel peer at N threads ({n}), where installed. rapidgzip decodes one gzip member
# on many cores; pzstd decodes only the frames it wrote itself in parallel (one thread on
# others); xz only files of several blocks; lbzip2 every bzip2 file.
PEER = {
    "gz": "rapidgzip -d -c -P {n}", "zst": "pzstd -dcq -p {n}", "zst-frames": "pzstd -dcq -p {n}",
    "xz": "xz -dc -T{n}", "xz-1": "xz -dc -T{n}", "bz2": "lbzip2 -dc -n {n}", "tar": None,
}


def default_threads():
    n = os.cpu_count() or 1
    ts, k = [], 1
    while k < n:
        ts.append(k)
        k *= 2
    ts.append(n)
    return ts


def commands(layer_dirs, diffid, threads, only):
    """Every (layer dir, format key, label, argv, role, threads) to time, in run order."""
    budget = os.cpu_count() or 1
    out = []
    for d in layer_dirs:
        for key, name, *_ in compare.FORMATS:
            path = os.path.join(d, name)
            if (only and key not in only) or not os.path.exists(path):
                continue
            q = shlex.quote(path)
            for n in threads:
                env = f"DIFFID_WORKERS={n} " if n > budget else ""
                argv = compare.bash(f"{env}exec {shlex.quote(diffid)} -q --json -j{n} {q}")
                out.append((d, key, f"diffid -j{n}", argv, "diffid", n))
            dec = next((c for c in DECODER[key] if compare.have(c)), None)
            if dec:
                redirect = f"< {q}" if key == "tar" else f"{q} > /dev/null"
                out.append((d, key, dec, compare.bash(f"{dec} {redirect}"), "decoder", 1))
            peer = PEER[key]
            if peer and compare.have(peer):
                for n in threads:
                    if n == 1 and key != "gz":
                        continue  # the decoder alone is the one-thread peer
                    cmd = peer.format(n=n)
                    out.append((d, key, cmd, compare.bash(f"{cmd} {q} > /dev/null"), "peer", n))
    return out


# --------------------------------------------------------------------------------------------
# The model: per-stage CPU cost per GB, and the predicted wall on k cores.

SPLITS = {"gz": False, "zst": False, "zst-frames": True, "xz": True, "xz-1": False,
          "bz2": True, "tar": None}


def criterion_rate(top, group, name):
    """Bytes per second of a criterion bench (target/criterion/GROUP/NAME), or None."""
    base = os.path.join(top, "target", "criterion", group, name, "new")
    try:
        with open(os.path.join(base, "estimates.json")) as f:
            ns = json.load(f)["mean"]["point_estimate"]
        with open(os.path.join(base, "benchmark.json")) as f:
            tp = json.load(f).get("throughput") or {}
        return tp["Bytes"] / (ns / 1e9)
    except (OSError, KeyError, ValueError, TypeError):
        return None


def model(rows, top):
    """Per corpus, from its largest layer: the CPU seconds per GB of decompressed layer of
    each stage, and the predicted wall time per GB on 4, 16 and 64 cores.

    Measured (CPU = user + system seconds of the best run, GB = 1e9 decompressed bytes U;
    C = compressed bytes, r = C / U):
      sha  = openssl dgst -sha256 on the tar, per GB (or criterion hash/sha256 when present)
      tar  = diffid -j1 on the plain tar, per GB, minus sha: the tar parse, reads, hand-offs
      dec  = diffid -j1 on the format, per GB, minus sha * (1 + r) and tar: diffid's decoder
    Predicted wall per GB on k cores, each stage on its own thread where diffid lays it out so:
      max( sha + tar          the DiffID hash and the tar parse: one stream, one thread
           sha * r            the blob hash: one stream, one thread
           dec                when the format decodes on one thread (one member, frame, block)
           (dec + sha * (1 + r) + tar) / k )   all the work shared by k cores
    """
    out = {}
    for corpus in sorted({r["corpus"] for r in rows}):
        cr = [r for r in rows if r["corpus"] == corpus]
        mib = max(r["mib"] for r in cr)
        cr = {r["key"]: r for r in cr if r["mib"] == mib}
        tar = cr.get("tar")
        if not tar or "diffid -j1" not in tar["cpu"] or not tar.get("decoder_cpu"):
            continue
        gb = tar["layer_bytes"] / 1e9
        sha = tar["decoder_cpu"] / gb
        sha_src = "`openssl dgst -sha256` CPU on the tar"
        rate = criterion_rate(top, "hash", "sha256")
        if rate:
            sha, sha_src = 1e9 / rate, "criterion `hash/sha256`"
        tarp = max(tar["cpu"]["diffid -j1"] / gb - sha, 0.0)
        stages = [("SHA-256", sha, sha_src),
                  ("tar parse, reads, hand-offs", tarp, "`diffid -j1` CPU on the tar − SHA-256")]
        preds = []
        for key, row in cr.items():
            if key == "tar" or "diffid -j1" not in row["cpu"]:
                continue
            r = row["compressed_bytes"] / row["layer_bytes"]
            dec = max(row["cpu"]["diffid -j1"] / gb - sha * (1 + r) - tarp, 0.0)
            alone = row["decoder_cpu"] / gb if row.get("decoder_cpu") else None
            stages.append((f"decode {key} (r = {r:.3f})", dec,
                           f"`diffid -j1` CPU − SHA-256 × (1 + r) − tar parse"
                           + (f"; `{row['decoder']}` alone: {alone:.2f}" if alone else "")))
            variants = [(key, SPLITS[key])]
            if key == "gz":
                variants.append(("gz, one member decoded in parallel (issue 11)", True))
            for label, splits in variants:
                work = dec + sha * (1 + r) + tarp
                walls = {}
                for k in (4, 16, 64, os.cpu_count() or 1):
                    terms = {"DiffID hash + tar": sha + tarp, "blob hash": sha * r,
                             f"all work / {k}": work / k}
                    if not splits:
                        terms["one-thread decode"] = dec
                    wall = max(terms.values())
                    walls[k] = {"s_per_gb": wall, "gb_s": 1 / wall,
                                "wall": max(terms, key=terms.get)}
                measured = None
                n = os.cpu_count() or 1
                if label == key and f"diffid -j{n}" in row["wall"]:
                    measured = row["wall"][f"diffid -j{n}"] / gb
                preds.append({"format": label, "work_cpu_s_per_gb": work, "walls": walls,
                              f"measured_s_per_gb_j{n}": measured})
        out[corpus] = {"mib": mib, "tar_cpu_s": tar["cpu"]["diffid -j1"],
                       "stages": [{"stage": s, "cpu_s_per_gb": v, "source": src}
                                  for s, v, src in stages],
                       "predictions": preds}
    return out


def model_md(m, mach, when):
    n = mach["nproc"]
    o = [f"## The cost model ({when})\n",
         f"Per-stage CPU seconds per GB of decompressed layer, measured on this machine "
         f"({mach['cpu']}, {n} cores, SHA-NI: {'yes' if mach['sha_ni'] else 'no'}; load "
         f"average {mach.get('load', '?')}), from the `-j1` runs of the sweep on the largest "
         f"layer of each corpus, and the wall time per GB they predict on k cores: the "
         f"largest of the DiffID hash with the tar parse (one stream, one thread: the last "
         f"wall), the blob hash, the decoder where the format decodes on one thread, and all "
         f"the work shared by k cores. `bench/sweep.py` computes it from the numbers in "
         f"`sweep.json`; nothing here is typed in.\n"]
    for corpus, c in m.items():
        o.append(f"### {corpus} corpus, {c['mib']} MiB layer\n")
        if c["tar_cpu_s"] < 0.3:
            o.append(f"Too small to measure: `diffid -j1` took {c['tar_cpu_s']:.2f} CPU s on the "
                     f"tar, GNU time counts in 0.01 s, and starting a process is a large part "
                     f"of it. Run the default sizes (400 and 300 MiB) for figures to quote.\n")
        o.append("| stage | CPU s per GB | from |")
        o.append("|---|---|---|")
        for s in c["stages"]:
            o.append(f"| {s['stage']} | {s['cpu_s_per_gb']:.3f} | {s['source']} |")
        o.append("")
        ks = [4, 16, 64]
        o.append("| format | CPU s per GB, all stages | " +
                 " | ".join(f"{k} cores: s per GB (GB/s), the wall" for k in ks) +
                 f" | {n} cores: predicted / measured `-j{n}` s per GB |")
        o.append("|---|---|" + "---|" * len(ks) + "---|")
        for p in c["predictions"]:
            cells = []
            for k in ks:
                w = p["walls"][k]
                cells.append(f"{w['s_per_gb']:.3f} ({w['gb_s']:.2f}), {w['wall']}")
            meas = p.get(f"measured_s_per_gb_j{n}")
            pred = p["walls"][n]["s_per_gb"]
            last = f"{pred:.3f} / {meas:.3f}" if meas else f"{pred:.3f} / —"
            o.append(f"| {p['format']} | {p['work_cpu_s_per_gb']:.3f} | " + " | ".join(cells) +
                     f" | {last} |")
        o.append("")
    o.append("The model assumes what diffid does today: the blob hash on one thread, the "
             "DiffID hash and the tar parse together on another (the pipeline's diff stage), a decoder that splits (several zstd frames, xz "
             "blocks, bzip2 blocks) on every free core, and no cost for the hand-offs beyond "
             "what the `-j1` runs already carry. It ignores memory bandwidth (ten times the "
             "hash rate) and the worker budget of other calls in the process. The last column "
             "checks it against this machine; a measured time far above the prediction "
             "under load is the other processes' share of the cores, not the model's.\n")
    return "\n".join(o)


# --------------------------------------------------------------------------------------------
# The report.

def fmt_s(x):
    return compare.fmt_s(x, ms=True)


def svg_chart(rows, threads, path):
    """compare.py's chart (as its throughput.svg): MB/s of decompressed layer of diffid at
    each thread count, the decoder alone and the peer at the most threads, one group per
    layer and format. No file when there is no value."""
    n = max(threads)
    tools = [f"diffid -j{t}" for t in threads] + ["decoder alone", f"peer, {n} threads"]
    blues = ["#c6dbf7", "#9cc0f2", "#7aa7f0", "#4f8ae8", "#1f6feb", "#1450b8", "#0b347a"]
    colors = [blues[min(len(blues) - 1, round(i * (len(blues) - 1) / max(len(threads) - 1, 1)))]
              for i in range(len(threads))] + ["#8c8c8c", "#c9a227"]
    if not any(v for r in rows for v in r["mbps"].values()):
        return
    compare.svg_chart(rows, path, tools, colors, label="title", legend_per_line=6,
                      bar=12, gap=14, left=300, width=540,
                      title="Thread sweep: MB/s of decompressed layer, log scale (diffid: "
                            "whole job; decoder, peer: decoding only)")


def report(out, results, layer_dirs, threads, mach, rounds, started, load_before, load_after,
           slow):
    labels = {key: label for key, _, label, *_ in compare.FORMATS}
    rows = []
    for d in layer_dirs:
        with open(os.path.join(d, "layer.info")) as f:
            info = json.load(f)
        layer = os.path.getsize(os.path.join(d, "layer.tar"))
        for key, name, *_ in compare.FORMATS:
            r = {lab: v for (dd, k, lab), v in results.items() if dd == d and k == key}
            if not r:
                continue
            dec = next(((lab, v) for lab, v in r.items() if v["role"] == "decoder"), (None, None))
            peers = {v["threads"]: (lab, v) for lab, v in r.items() if v["role"] == "peer"}
            walls = {lab: v["wall"] for lab, v in r.items()}
            n = max(threads)
            dn = r.get(f"diffid -j{n}")
            d1 = r.get("diffid -j1")
            peer_n = peers.get(n, (None, None))
            mbps = {f"diffid -j{t}": layer / 1e6 / r[f"diffid -j{t}"]["wall"]
                    for t in threads if f"diffid -j{t}" in r}
            if dec[1]:
                mbps["decoder alone"] = layer / 1e6 / dec[1]["wall"]
            if peer_n[1]:
                mbps[f"peer, {n} threads"] = layer / 1e6 / peer_n[1]["wall"]
            rows.append({
                "corpus": info["corpus"], "mib": info["mib"], "key": key, "file": name,
                "title": f"{info['corpus']} {layer / 1e6:.0f} MB: {key}",
                "label": labels[key], "layer_bytes": layer, "entries": info.get("layer_entries"),
                "compressed_bytes": os.path.getsize(os.path.join(d, name)),
                "wall": walls, "cpu": {lab: v["cpu"] for lab, v in r.items()},
                "runs": {lab: len(v["walls"]) for lab, v in r.items()},
                "decoder": dec[0], "decoder_wall": dec[1] and dec[1]["wall"],
                "decoder_cpu": dec[1] and dec[1]["cpu"],
                "peer": peer_n[0], "peer_walls": {t: v["wall"] for t, (_, v) in peers.items()},
                "scaling": d1["wall"] / dn["wall"] if d1 and dn else None,
                "vs_decoder": dn["wall"] / dec[1]["wall"] if dn and dec[1] else None,
                "vs_peer": dn["wall"] / peer_n[1]["wall"] if dn and peer_n[1] else None,
                "mbps": mbps,
            })
    mach = dict(mach, load=f"{load_before} / {load_after}")
    n = max(threads)
    o = [f"## Thread sweep ({started})\n",
         f"Machine: {mach['cpu']}, {mach['nproc']} cores ({mach['l2_l3']}), {mach['memory']} "
         f"RAM, SHA-NI: {'yes' if mach['sha_ni'] else 'no'}; {mach['os']}, Linux "
         f"{mach['kernel']}. Load average before/after: {load_before} / {load_after}. Best of "
         f"{rounds} runs, wall seconds, page cache warm; threads: "
         f"{', '.join(map(str, threads))}.\n",
         "Layers: `installed`, files installed under /usr/share, /usr/lib and /usr/bin "
         "(compare.sh's layer); `small`, files of at most 64 KiB under /usr/share and /usr/lib "
         "that are not already compressed (many small, highly compressible files). "
         "`scripts/sweep.sh` makes both, deterministic, at each size.\n"]
    head = ("| layer (MB, entries) | input (compressed MB) | decoder alone | "
            + " | ".join(f"diffid -j{t}" for t in threads)
            + f" | peer at {n} threads | scaling -j1 → -j{n} | -j{n} / decoder | -j{n} / peer |")
    o.append(head)
    o.append("|---" * (head.count("|") - 1) + "|")
    for r in rows:
        once = lambda lab: "¹" if r["runs"].get(lab) == 1 and rounds > 1 else ""
        cells = [f"{fmt_s(r['wall'].get(f'diffid -j{t}'))}{once(f'diffid -j{t}')}"
                 for t in threads]
        dec = f"{fmt_s(r['decoder_wall'])}{once(r['decoder'])} `{r['decoder']}`" \
            if r["decoder"] else "—"
        peer = f"{fmt_s(r['wall'][r['peer']])}{once(r['peer'])} `{r['peer']}`" \
            if r["peer"] else "— (none installed)" if PEER[r["key"]] else "—"
        x = lambda v: f"{v:.2f}x" if v else "—"
        o.append(f"| {r['corpus']} {r['layer_bytes'] / 1e6:.0f} ({r['entries']}) | "
                 f"{r['label']} ({r['compressed_bytes'] / 1e6:.1f}) | {dec} | "
                 + " | ".join(cells)
                 + f" | {peer} | {x(r['scaling'])} | {x(r['vs_decoder'])} | {x(r['vs_peer'])} |")
    o.append("")
    missing = sorted({PEER[k].split()[0] for k in PEER if PEER[k] and not compare.have(PEER[k])})
    if missing:
        o.append(f"Not installed, so left out: {', '.join(f'`{m}`' for m in missing)}.\n")
    if any(v == 1 for r in rows for v in r["runs"].values()) and rounds > 1:
        o.append(f"¹ One run only: longer than {slow:g} s (`BENCH_SLOW`).\n")
    o.append(f"diffid: `diffid -jN FILE`, the whole job (blob digest, DiffID, tar verdict); "
             f"`DIFFID_WORKERS=N` where N is above the cores. Decoder alone: one thread, output "
             f"to /dev/null (`openssl dgst -sha256 < FILE` for the plain tar). Peer: the "
             f"parallel decoder of the format at N threads, output to /dev/null (`pzstd` "
             f"decodes only frames it wrote itself in parallel, `xz` only several blocks). "
             f"Scaling: `-j1` wall / `-j{n}` wall.\n")
    versions = ", ".join(f"{k} {v}" for k, v in mach["versions"].items() if v)
    o.append(f"Versions: {versions}.\n")
    text = "\n".join(o)
    with open(os.path.join(out, "sweep.md"), "w") as f:
        f.write(text)
    top = os.path.dirname(os.path.dirname(os.path.abspath(out)))
    m = model(rows, top)
    mtext = model_md(m, mach, started)
    with open(os.path.join(out, "model.md"), "w") as f:
        f.write(mtext)
    with open(os.path.join(out, "sweep.json"), "w") as f:
        json.dump({"machine": mach, "rounds": rounds, "started": started, "threads": threads,
                   "rows": rows, "model": m}, f, indent=1)
    svg_chart(rows, threads, os.path.join(out, "sweep.svg"))
    return text + "\n" + mtext


def check_digests(results):
    """Every diffid run on one layer gives one DiffID, whatever the thread count and format."""
    seen = {}
    for (d, key, lab), v in results.items():
        if v["role"] != "diffid":
            continue
        try:
            j = json.loads(v["first_out"])
            seen.setdefault(d, set()).add(j["diff_id"])
        except (ValueError, KeyError):
            seen.setdefault(d, set()).add("?")
    return [f"{d}: {sorted(s)}" for d, s in seen.items() if len(s) > 1 or "?" in s]


def run(out, diffid, layer_dirs, rounds, threads, only, slow):
    started = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    cmds = commands(layer_dirs, diffid, threads, only)
    mach = compare.machine(diffid)
    # diffid --version names its decoders on more lines: the first is the version.
    mach["versions"]["diffid"] = mach["versions"]["diffid"].split("\n")[0]
    mach["versions"].update({
        "pzstd": compare.sh("pzstd -V 2>&1 | grep -o '[0-9][0-9.]*[0-9]' | head -1"),
        "lbzip2": compare.sh("lbzip2 -V 2>&1 | grep -o '[0-9][0-9.]*[0-9]' | head -1"),
        "rapidgzip": compare.sh("rapidgzip --version 2>&1 | grep -o '[0-9][0-9.]*[0-9]' | tail -1"),
    })
    load_before = compare.loadavg()
    print(f"sweep: {len(cmds)} commands x {rounds} rounds; load average {load_before}",
          file=sys.stderr)
    for d in layer_dirs:
        for _, name, *_ in compare.FORMATS:
            p = os.path.join(d, name)
            if os.path.exists(p):
                with open(p, "rb") as f:
                    while f.read(1 << 24):
                        pass
    results = {}
    for rnd in range(rounds):
        for d, key, label, argv, role, n in cmds:
            slot = results.get((d, key, label))
            if slot and slot["walls"][0] > slow:
                continue
            r = compare.timed(argv)
            if r["rc"] != 0:
                print(f"sweep: {label} on {d}/{key} failed (exit {r['rc']}): {' '.join(argv)}",
                      file=sys.stderr)
                sys.exit(1)
            slot = results.setdefault((d, key, label), {"role": role, "threads": n, "walls": [],
                                                        "first_out": r["out"]})
            slot["walls"].append(r["wall"])
            if r["wall"] <= min(slot["walls"]):
                slot["wall"], slot["cpu"] = r["wall"], r["cpu"]
            print(f"  round {rnd + 1}/{rounds}  {os.path.basename(d):14} {key:10} {label:26} "
                  f"{r['wall']:7.3f} s  cpu {r['cpu']:6.2f} s", file=sys.stderr)
    problems = check_digests(results)
    if problems:
        print("sweep: diffid gave different DiffIDs for one layer:\n  " + "\n  ".join(problems),
              file=sys.stderr)
        sys.exit(1)
    text = report(out, results, layer_dirs, threads, mach, rounds, started, load_before,
                  compare.loadavg(), slow)
    print(text)


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "select-small":
        select_small(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) >= 5 and sys.argv[1] == "run":
        out, diffid, dirs = sys.argv[2], sys.argv[3], sys.argv[4:]
        rounds = int(os.environ.get("BENCH_RUNS", "3"))
        threads = [int(t) for t in os.environ.get("BENCH_THREADS", "").replace(",", " ").split()]
        threads = sorted(set(threads or default_threads()))
        if threads[0] < 1:
            sys.exit("sweep: thread counts are positive")
        if 1 not in threads:
            threads.insert(0, 1)  # -j1 is the base of the scaling and of the model
        only = set(filter(None, os.environ.get("BENCH_FORMATS", "").replace(",", " ").split()))
        slow = float(os.environ.get("BENCH_SLOW", "60"))
        run(out, diffid, dirs, rounds, threads, only, slow)
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
