#!/usr/bin/env python3
"""The timing half of `make bench` (scripts/compare.sh prepares the files and tools).

    compare.py select OUT_LIST MIB          choose the installed files the layer is made of
    compare.py run DIR DIFFID GOPATH NAIVE  time every tool on every file in DIR, write
                                            DIR/results.md, DIR/results.json, DIR/throughput.svg

Standard library only. Every command is timed as a child process: wall clock from
time.perf_counter, CPU and peak RSS from wait4's rusage of that child. Each round runs every
command once, in a fixed order, so that load from other processes on a shared machine spreads
over all the tools alike; the best (least) wall time of the rounds counts.
"""

import datetime
import hashlib
import html
import json
import os
import platform
import shlex
import shutil
import stat
import subprocess
import sys
import time

# --------------------------------------------------------------------------------------------
# The layer: which installed files go in.

ROOTS = [("usr/share", 0.45), ("usr/lib", 0.40), ("usr/bin", 0.15)]


def select(out_list, mib):
    """Writes a NUL-separated, sorted list of paths (relative to /) that make a layer of about
    `mib` MiB: from each root its share of the budget, files picked by a hash of their path
    (so the sample spreads over every package, and the same files are picked on every run of
    the same system), plus every directory above a picked file."""
    budget = mib << 20
    chosen = set()
    for root, share in ROOTS:
        files = []
        total = 0
        for dirpath, dirnames, filenames in os.walk("/" + root):
            dirnames.sort()
            for name in sorted(filenames):
                path = os.path.join(dirpath, name)
                try:
                    st = os.lstat(path)
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    if not os.access(path, os.R_OK):
                        continue
                    files.append((path, st.st_size))
                    total += st.st_size
                elif stat.S_ISLNK(st.st_mode):
                    files.append((path, 0))
        want = budget * share
        p = min(1.0, want / max(total, 1))
        got = 0
        for path, size in files:
            h = int.from_bytes(hashlib.sha1(path.encode("utf-8", "surrogateescape")).digest()[:8], "big")
            if h / 2**64 < p and got + size <= want * 1.05:
                chosen.add(path)
                got += size
    dirs = set()
    for path in chosen:
        d = os.path.dirname(path)
        while d not in ("/", ""):
            dirs.add(d)
            d = os.path.dirname(d)
    entries = sorted((p[1:].encode("utf-8", "surrogateescape") for p in chosen | dirs))
    with open(out_list, "wb") as f:
        for e in entries:
            f.write(e + b"\0")


# --------------------------------------------------------------------------------------------
# What is timed.

# The files compare.sh writes, in table order: (key, file, label, reference decoder command,
# the targets from issue 4). Ratios: diffid / reference decoder alone (at most), Go path /
# diffid (at least), diffid -j1 / diffid (at least).
FORMATS = [
    ("gz", "layer.tar.gz", ".tar.gz (pigz -6, one member)", "igzip -dc",
     {"vs_dec": 1.10, "vs_go": 3.5}),
    ("zst", "layer.tar.zst", ".tar.zst (zstd -3, one frame)", "zstd -dcq",
     {"vs_dec": 1.10, "vs_go": 3.0}),
    ("zst-frames", "layer-frames.tar.zst", ".tar.zst (zstd -3 per 8 MiB, several frames)",
     "zstd -dcq",
     {"scaling": 1.7}),
    ("xz", "layer.tar.xz", ".tar.xz (xz -6 -T2, several blocks)", "xz -dc -T2",
     {"vs_dec": 0.85, "vs_go": 6.0, "scaling": 1.7}),
    ("xz-1", "layer-1block.tar.xz", ".tar.xz (xz -6 -T1, one block)", "xz -dc -T1",
     {"vs_dec": 0.75, "vs_go": 3.3}),
    ("bz2", "layer.tar.bz2", ".tar.bz2 (bzip2 -9)", "bzip2 -dc",
     {"vs_dec": 0.65, "vs_go": 2.8, "scaling": 1.7}),
    ("tar", "layer.tar", ".tar (uncompressed)", "openssl dgst -sha256",
     {"vs_dec": 1.10}),
]

# Other decoders, timed alone for reference when installed.
OTHER_DECODERS = {
    "gz": ["gzip -dc", "pigz -dc", "libdeflate-gunzip -c"],
    "zst": [],
    "zst-frames": [],
    "xz": ["xz -dc -T1"],
    "xz-1": ["xz -dc -T2"],
    "bz2": ["lbzip2 -dc -n 2"],
    "tar": [],
}

# The decoder the best shell pipeline uses.
PIPELINE_DECODER = {
    "gz": "igzip -dc", "zst": "zstd -dcq", "zst-frames": "zstd -dcq", "xz": "xz -dc -T2",
    "xz-1": "xz -dc -T2", "bz2": "bzip2 -dc", "tar": None,
}


def have(cmd):
    return shutil.which(shlex.split(cmd)[0]) is not None


GNU_TIME = "/usr/bin/time"


def timed(argv):
    """Runs argv as a child; returns dict(wall, cpu, rss_kib, out, rc).

    Wall time is measured here. CPU time and peak RSS come from GNU time, which forks the
    command from its own small process: Linux carries the peak RSS of a process across
    exec, so a child forked straight from this Python process would report at least
    Python's own ~30 MiB. Without GNU time, wait4's rusage is used (RSS then has that floor).
    """
    use_time = os.access(GNU_TIME, os.X_OK)
    rfd, wfd = os.pipe()  # GNU time's report
    if use_time:
        argv = [GNU_TIME, "-f", "%U %S %M", "-o", f"/dev/fd/{wfd}", *argv]
    out_r, out_w = os.pipe()
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
            os.dup2(out_w, 1)
            os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
            os.close(out_r)
            os.close(rfd)
            os.set_inheritable(wfd, True)
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    os.close(out_w)
    os.close(wfd)
    chunks = []
    while True:
        b = os.read(out_r, 1 << 16)
        if not b:
            break
        chunks.append(b)
    os.close(out_r)
    _, status, ru = os.wait4(pid, 0)
    wall = time.perf_counter() - t0
    report = os.read(rfd, 4096).decode().split()
    os.close(rfd)
    cpu, rss = ru.ru_utime + ru.ru_stime, ru.ru_maxrss
    if use_time and len(report) >= 3:
        cpu, rss = float(report[-3]) + float(report[-2]), int(report[-1])
    return {
        "wall": wall,
        "cpu": cpu,
        "rss_kib": rss,
        "out": b"".join(chunks).decode("utf-8", "replace"),
        "rc": os.waitstatus_to_exitcode(status),
    }


def bash(script):
    return ["bash", "-c", "set -o pipefail; " + script]


def commands(d, diffid, gopath, naive):
    """Every (format key, tool label, argv, role) to time, in run order."""
    out = []
    for key, name, _, ref, _ in FORMATS:
        path = os.path.join(d, name)
        q = shlex.quote(path)
        out.append((key, "diffid", [diffid, "-q", "--json", path], "diffid"))
        out.append((key, "diffid -j1", [diffid, "-q", "--json", "-j1", path], "diffid-j1"))
        if key != "tar":
            # The decoded stream out (issue 8), discarded like the decoder's; the report (JSON,
            # on stderr) goes to the pipe so the digests are checked.
            out.append((key, "diffid -d", bash(f"{diffid} -d -q --json {q} 2>&1 >/dev/null"),
                        "diffid-d"))
        out.append((key, "Go (containers/image)", [gopath, path], "go"))
        out.append((key, "naive Rust", [naive, path], "naive"))
        dec = PIPELINE_DECODER[key]
        if dec and have(dec):
            out.append((key, f"tee | {dec.split()[0]} | openssl",
                        bash(f"tee >(openssl dgst -sha256 >/dev/null) < {q} | {dec} | "
                             f"openssl dgst -sha256; wait $!"), "pipeline"))
        if have(ref):
            if key == "tar":
                out.append((key, ref, bash(f"{ref} < {q}"), "decoder"))
            else:
                out.append((key, ref, bash(f"{ref} {q} > /dev/null"), "decoder"))
        for other in OTHER_DECODERS[key]:
            if have(other):
                out.append((key, other, bash(f"{other} {q} > /dev/null"), "other"))
    return out


# --------------------------------------------------------------------------------------------
# The machine.

def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True,
                              timeout=30).stdout.strip()
    except Exception:
        return ""


def machine(diffid):
    flags = set()
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
            if line.startswith("model name") and not model:
                model = line.split(":", 1)[1].strip()
    mem = ""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 2**20:.0f} GiB"
    simd = [x for x in ("sha_ni", "avx2", "avx512f", "avx512bw", "vaes", "vpclmulqdq",
                         "bmi2") if x in flags]
    return {
        "cpu": model,
        "nproc": os.cpu_count(),
        "cpu_flags": simd,
        "sha_ni": "sha_ni" in flags,
        "memory": mem,
        "kernel": platform.release(),
        "os": sh(". /etc/os-release && echo $PRETTY_NAME"),
        "l2_l3": sh("lscpu | sed -n 's/^L[23] cache: *//p' | paste -sd, -"),
        "versions": {
            "diffid": sh(f"{shlex.quote(diffid)} --version | sed 's/^diffid //'"),
            "diffid commit": sh("git rev-parse --short HEAD 2>/dev/null"),
            "rustc": sh("rustc -V"),
            "go": sh("go env GOVERSION"),
            "igzip": sh("igzip --version 2>&1 | grep -o '[0-9][0-9.]*' | head -1"),
            "gzip": sh("gzip --version | head -1"),
            "pigz": sh("pigz --version 2>&1"),
            "zstd": sh("zstd -V | grep -o 'v[0-9.]*'"),
            "xz": sh("xz -V | head -1"),
            "bzip2": sh("bzip2 --version 2>&1 < /dev/null | grep -o 'Version [0-9.]*'"),
            "openssl": sh("openssl version"),
        },
    }


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# --------------------------------------------------------------------------------------------
# The report.

def once(v):
    """A mark for a command timed once only (longer than BENCH_SLOW seconds)."""
    return "¹" if v and len(v["walls"]) == 1 and v["rounds"] > 1 else ""


def fmt_s(x, ms=False):
    """Seconds for a table: "—" for None, 2 decimals below 10 s, 1 above; with ms=True 3
    decimals below 1 s (sweep.py's small layers take well under a second)."""
    if x is None:
        return "—"
    return f"{x:.3f}" if ms and x < 1 else f"{x:.2f}" if x < 10 else f"{x:.1f}"


def verdict(value, target, at_most):
    if value is None or target is None:
        return ""
    ok = value <= target if at_most else value >= target
    return "PASS" if ok else "MISS"


TOOLS = ["diffid", "diffid -j1", "decoder alone", "shell pipeline", "naive Rust",
         "Go (containers/image)"]
COLORS = ["#1f6feb", "#7aa7f0", "#8c8c8c", "#c9a227", "#d9822b", "#2da44e"]
TITLE = ("Throughput in MB/s of decompressed layer, log scale (whole job; decoder alone: "
         "decoding only)")


def svg_chart(rows, path, tools=TOOLS, colors=COLORS, title=TITLE, label="label",
              legend_per_line=None, bar=13, gap=16, left=270, width=560):
    """Horizontal bars, log scale: MB/s of decompressed layer per tool, one group per row.

    rows: dicts with the group's name under `label` and "mbps": {tool: MB/s or None}; a tool
    missing or None gets no bar. tools and colors pair up in legend and bar order. The legend
    is one line, or starts a new line every legend_per_line entries (the space above the bars
    grows by one line per len(tools) // legend_per_line). bar, gap, left, width are pixels: a
    bar's pitch, the gap after a group, the margin for the group names, the width of the
    scale. Grid lines at 1, 3, 10, 30, ... MB/s. Writes the SVG to path, even with no values.
    Used by this script (throughput.svg) and by sweep.py (sweep.svg)."""
    import math
    values = [v for r in rows for v in r["mbps"].values() if v]
    lo = 10 ** math.floor(math.log10(max(min(values, default=1), 1e-3)))
    hi = 10 ** math.ceil(math.log10(max(values, default=10)))
    if hi / 3 >= max(values, default=10):
        hi /= 3 + 1e-9  # end at 3 x 10^k when that is enough
    scale = lambda v: (math.log10(max(v, lo)) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * width
    top = 62 + (16 * (len(tools) // legend_per_line) if legend_per_line else 0)
    bottom = top + len(rows) * (len(tools) * bar + gap)
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 60}" '
         f'height="{bottom + 40}" font-family="sans-serif" font-size="11">',
         '<rect width="100%" height="100%" fill="white"/>',
         f'<text x="10" y="20" font-size="14" font-weight="bold">{html.escape(title)}</text>']
    x, y0 = 10, 32
    for i, (t, c) in enumerate(zip(tools, colors)):
        if legend_per_line and i and i % legend_per_line == 0:
            x, y0 = 10, y0 + 16
        o.append(f'<rect x="{x}" y="{y0}" width="10" height="10" fill="{c}"/>'
                 f'<text x="{x + 14}" y="{y0 + 9}">{html.escape(t)}</text>')
        x += 14 + 7 * len(t) + 18
    # Grid lines at 1, 3, 10, 30, ... MB/s.
    v = lo
    while v <= hi * 1.001:
        for g in (v, 3 * v):
            if g <= hi * 1.01:
                gx = left + scale(g)
                o.append(f'<line x1="{gx:.1f}" x2="{gx:.1f}" y1="{top - 4}" y2="{bottom}" '
                         f'stroke="{"#ccc" if g == v else "#eee"}"/>'
                         f'<text x="{gx:.1f}" y="{bottom + 14}" text-anchor="middle" '
                         f'fill="#555">{g:g}</text>')
        v *= 10
    y = top
    for r in rows:
        o.append(f'<text x="10" y="{y + len(tools) * bar / 2 + 4}" font-weight="bold">'
                 f'{html.escape(r[label])}</text>')
        for t, c in zip(tools, colors):
            v = r["mbps"].get(t)
            if v:
                w = max(1.0, scale(v))
                o.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar - 2}" '
                         f'fill="{c}"><title>{html.escape(t)}: {v:.0f} MB/s</title></rect>'
                         f'<text x="{left + w + 4:.1f}" y="{y + bar - 3}">{v:.0f}</text>')
            y += bar
        y += gap
    o.append(f'<line x1="{left}" x2="{left}" y1="{top - 4}" y2="{bottom}" stroke="#444"/>')
    o.append(f'<text x="{left + width / 2}" y="{bottom + 30}" text-anchor="middle">MB/s '
             f'(decompressed bytes / wall seconds)</text>')
    o.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(o) + "\n")


def report(d, results, mach, rounds, started, load_before, load_after, mem4g, slow):
    rows = []
    lines = []
    for key, name, label, ref, targets in FORMATS:
        r = {k: v for k, v in results.items() if k[0] == key}
        if not r:
            continue

        def best(role_or_label):
            xs = [v for (k, lab), v in r.items() if v["role"] == role_or_label or lab == role_or_label]
            return min(xs, key=lambda v: v["wall"]) if xs else None

        dif, j1, go, naive = best("diffid"), best("diffid-j1"), best("go"), best("naive")
        dd = best("diffid-d")
        pipe, dec = best("pipeline"), best("decoder")
        others = [(lab, v) for (k, lab), v in r.items() if v["role"] == "other"]
        size = os.path.getsize(os.path.join(d, name))
        layer = os.path.getsize(os.path.join(d, "layer.tar"))
        w = lambda v: v["wall"] if v else None
        vs_dec = w(dif) / w(dec) if dif and dec else None
        vs_go = w(go) / w(dif) if dif and go else None
        scaling = w(j1) / w(dif) if dif and j1 else None
        mbps = lambda v: layer / 1e6 / v["wall"] if v else None
        rows.append({
            "key": key, "label": label, "file": name, "compressed_bytes": size,
            "layer_bytes": layer, "reference_decoder": ref, "targets": targets,
            "wall": {lab: v["wall"] for (k, lab), v in r.items()},
            "cpu": {lab: v["cpu"] for (k, lab), v in r.items()},
            "diffid_peak_rss_mib": dif["rss_max_kib"] / 1024 if dif else None,
            "diffid_j1_peak_rss_mib": j1["rss_max_kib"] / 1024 if j1 else None,
            "vs_decoder": vs_dec, "vs_go": vs_go, "scaling": scaling,
            "mbps": {"diffid": mbps(dif), "diffid -j1": mbps(j1), "decoder alone": mbps(dec),
                     "shell pipeline": mbps(pipe), "naive Rust": mbps(naive),
                     "Go (containers/image)": mbps(go)},
            "_best": (dif, j1, go, pipe, dec, naive, others, dd),
        })

    m = mach
    out = []
    # Rows that timed the digest-only diffid (all of them, unless BENCH_ROWS narrowed the run).
    main_rows = [row for row in rows if row["_best"][0] and row["_best"][1]]
    out.append(f"## diffid vs. the peers ({started})\n")
    out.append(f"Machine: {m['cpu']}, {m['nproc']} cores ({m['l2_l3']}), {m['memory']} RAM, "
               f"SHA-NI: {'yes' if m['sha_ni'] else 'no'}, flags: {' '.join(m['cpu_flags'])}; "
               f"{m['os']}, Linux {m['kernel']}. Load average before/after: {load_before} / "
               f"{load_after}. Best of {rounds} runs, wall seconds, page cache warm.\n")
    layer = rows[0]["layer_bytes"] if rows else 0
    out.append(f"Layer: {layer / 1e6:.0f} MB tar of files installed under /usr/share, /usr/lib "
               f"and /usr/bin (`scripts/compare.sh`), {m.get('layer_entries', '?')} entries, "
               f"DiffID `{m.get('layer_diffid', '?')}`.\n")
    out.append("| input (compressed MB) | diffid | diffid -j1 | Go (containers/image) | "
               "shell pipeline | decoder alone | other decoders alone | naive Rust |")
    out.append("|---|---|---|---|---|---|---|---|")
    for row in main_rows:
        dif, j1, go, pipe, dec, naive, others, _ = row["_best"]
        t = lambda v: fmt_s(v and v["wall"]) + once(v)
        oth = "; ".join(f"{t(v)} `{lab}`" for lab, v in others) or "—"
        dec_s = f"{t(dec)} `{row['reference_decoder']}`" if dec else "—"
        out.append(f"| {row['label']} ({row['compressed_bytes'] / 1e6:.0f}) | "
                   f"**{t(dif)}** | {t(j1)} | {t(go)} | {t(pipe)} | {dec_s} | {oth} | "
                   f"{t(naive)} |")
    out.append("")
    out.append("| input | diffid / decoder alone (target) | Go / diffid (target) | "
               "scaling -j1 → -j" + str(m["nproc"]) + " (target) | diffid MB/s | "
               "CPU s: diffid / -j1 / decoder | peak RSS diffid / -j1 |")
    out.append("|---|---|---|---|---|---|---|")
    for row in main_rows:
        t = row["targets"]
        dif = row["_best"][0]

        def cell(v, tk, at_most, unit="x"):
            if v is None:
                return "—"
            s = f"{v:.2f}{unit}"
            if tk in t:
                s += f" ({'≤' if at_most else '≥'} {t[tk]:.2f}x) **{verdict(v, t[tk], at_most)}**"
            return s

        rss = row["diffid_peak_rss_mib"]
        rss1 = row["diffid_j1_peak_rss_mib"]
        j1, dec = row["_best"][1], row["_best"][4]
        cpus = " / ".join(fmt_s(v and v["cpu"]) for v in (dif, j1, dec))
        out.append(f"| {row['label']} | {cell(row['vs_decoder'], 'vs_dec', True)} | "
                   f"{cell(row['vs_go'], 'vs_go', False)} | "
                   f"{cell(row['scaling'], 'scaling', False)} | "
                   f"{row['mbps']['diffid']:.0f} | {cpus} | "
                   f"{rss:.0f} / {rss1:.0f} MiB |")
    out.append("")
    drows = [row for row in rows if row["_best"][7]]
    if drows:
        out.append("The decoded stream out: `diffid -d FILE > /dev/null` (decodes, writes the "
                   "stream, computes both digests and the tar verdict) against the decoder "
                   "alone, `DECODER FILE > /dev/null`, timed side by side.\n")
        out.append("| input | diffid -d | decoder alone | diffid -d / decoder (target) | "
                   "diffid -d / diffid | CPU s: diffid -d / decoder | peak RSS diffid -d |")
        out.append("|---|---|---|---|---|---|---|")
        for row in drows:
            dif, dec, dd = row["_best"][0], row["_best"][4], row["_best"][7]
            t = row["targets"]
            ratio = dd["wall"] / dec["wall"] if dec else None
            cell = "—" if ratio is None else f"{ratio:.2f}x"
            if ratio is not None and "vs_dec" in t:
                cell += f" (≤ {t['vs_dec']:.2f}x) **{verdict(ratio, t['vs_dec'], True)}**"
            vs_digest = f"{dd['wall'] / dif['wall']:.2f}x" if dif else "—"
            dec_s = f"{fmt_s(dec['wall'])} `{row['reference_decoder']}`" if dec else "—"
            cpus = " / ".join(fmt_s(v and v["cpu"]) for v in (dd, dec))
            out.append(f"| {row['label']} | **{fmt_s(dd['wall'])}**{once(dd)} | {dec_s} | {cell} | "
                       f"{vs_digest} | {cpus} | {dd['rss_max_kib'] / 1024:.0f} MiB |")
        out.append("")
    if mem4g.get("slow"):
        v = mem4g.pop("slow")
        out.append(f"Peak RSS of `diffid -d` on a {v['diff_size'] / 2**30:.0f} GiB zstd bomb "
                   f"piped into a consumer reading at most {v['rate_mib']} MiB/s: "
                   f"{v['rss_kib'] / 1024:.0f} MiB ({v['secs']:.0f} s, every byte received).\n")
    if mem4g:
        out.append("Peak RSS of `diffid -` on a stream of more than 4 GiB decoded (the layer's "
                   "tar over and over, piped in): " + "; ".join(
                       f"{k} ({(v['diff_size'] or 0) / 2**30:.1f} GiB): {v['rss_kib'] / 1024:.0f} MiB"
                       for k, v in mem4g.items()) + ".\n")
    if any(once(v) for v in results.values()):
        out.append(f"¹ One run only: longer than {slow:g} s (`BENCH_SLOW`).\n")
    out.append("diffid: `diffid FILE` (default threads = cores) and `diffid -j1 FILE` (every "
               "stage on one thread). Go: `bench/go-path`, containers/image v5.36.2 "
               "`pkg/compression` + go-digest, io.Copy, serial. Shell pipeline: `tee >(openssl "
               "dgst -sha256) < FILE | DECODER | openssl dgst -sha256`. Decoder alone: "
               "`DECODER FILE > /dev/null` (`openssl dgst -sha256 < FILE` for the plain tar). "
               "Naive Rust: `bench/baseline/naive.rs`, flate2/zstd/liblzma/bzip2 `Read` "
               "adapters and sha2 through io::copy on one thread. Scaling: diffid -j1 time / "
               "diffid time. CPU: user + system seconds of the best run (less sensitive than wall "
               "time to other load on the machine). Peak RSS: GNU time's maximum resident set "
               "size, the largest of the runs.\n")
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v)
    out.append(f"Versions: {versions}.\n")
    text = "\n".join(out)
    with open(os.path.join(d, "results.md"), "w") as f:
        f.write(text)
    for row in rows:
        del row["_best"]
    with open(os.path.join(d, "results.json"), "w") as f:
        json.dump({"machine": mach, "rounds": rounds, "started": started,
                   "load_before": load_before, "load_after": load_after, "rows": rows,
                   "mem_4gib": mem4g}, f, indent=1)
    svg_chart(rows, os.path.join(d, "throughput.svg"))
    return text


def check_digests(results, d):
    """The DiffIDs from diffid, the Go path and the naive baseline agree on every file."""
    problems = []
    info = os.path.join(d, "layer.info")
    want = json.load(open(info)).get("layer_diffid") if os.path.exists(info) else None
    for (k, lab), v in results.items():
        if v["role"] == "diffid-d":
            try:
                got = json.loads(v["first_out"])["diff_id"]
            except Exception:
                got = "?"
            if got != want:
                problems.append(f"{k}: diffid -d reported {got}, the layer is {want}")
    for key, name, *_ in FORMATS:
        seen = {}
        for (k, lab), v in results.items():
            if k != key or v["role"] not in ("diffid", "diffid-j1", "go", "naive"):
                continue
            out = v["first_out"]
            if v["role"].startswith("diffid"):
                try:
                    j = json.loads(out)
                    seen[lab] = (j["blob_digest"], j["diff_id"])
                except Exception:
                    seen[lab] = ("?", "?")
            else:
                parts = out.split()
                seen[lab] = tuple(parts[:2]) if len(parts) >= 2 else ("?", "?")
        if len(set(seen.values())) > 1:
            problems.append(f"{name}: " + "; ".join(f"{lab}: {b} {dd}" for lab, (b, dd) in seen.items()))
    return problems


def mem_4gib(d, diffid):
    """diffid's peak RSS on a 4 GiB+ decoded stream read from a pipe, plain and zstd: GNU
    time wraps diffid alone, not the producer (cat, zstd) in front of it."""
    tar = shlex.quote(os.path.join(d, "layer.tar"))
    n = (4 << 30) // os.path.getsize(os.path.join(d, "layer.tar")) + 1
    gen = f"for i in $(seq {n}); do cat {tar}; done"
    res = {}
    if not os.access(GNU_TIME, os.X_OK):
        return res
    for label, producer in (("tar", gen), ("zstd -3", gen + " | zstd -3 -T1 -q -c")):
        rfd, wfd = os.pipe()
        os.set_inheritable(wfd, True)
        proc = subprocess.Popen(
            bash(f"{producer} | {GNU_TIME} -f %M -o /dev/fd/{wfd} {shlex.quote(diffid)} --json -q -"),
            stdout=subprocess.PIPE, pass_fds=(wfd,))
        out = proc.communicate()[0].decode()
        os.close(wfd)
        rss = os.read(rfd, 4096).decode().split()
        os.close(rfd)
        try:
            size = json.loads(out)["diff_size"]
        except Exception:
            size = None
        res[label] = {"rss_kib": int(rss[-1]) if rss else 0, "diff_size": size}
    return res


def mem_decompress_slow(d, diffid, rate_mib=200):
    """Peak RSS of `diffid -d` on a 4 GiB zstd bomb (zeros) piped into a consumer that reads
    at most `rate_mib` MiB/s: back-pressure must keep it flat. GNU time wraps diffid alone."""
    bomb = os.path.join(d, "bomb-4gib.zst")
    if not os.path.exists(bomb):
        piece = subprocess.run(["zstd", "-1", "-q", "-c"], input=bytes(64 << 20),
                               capture_output=True, check=True).stdout
        with open(bomb + ".tmp", "wb") as f:
            for _ in range(64):
                f.write(piece)
        os.rename(bomb + ".tmp", bomb)
    if not os.access(GNU_TIME, os.X_OK):
        return {}
    consumer = ("import sys, time\n"
                "f, n, t = sys.stdin.buffer, 0, time.monotonic()\n"
                "while True:\n"
                "    b = f.read(1 << 20)\n"
                "    if not b: break\n"
                "    n += len(b)\n"
                f"    time.sleep(max(0.0, t + n / ({rate_mib} * 2**20) - time.monotonic()))\n"
                "print(n)\n")
    rfd, wfd = os.pipe()
    os.set_inheritable(wfd, True)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        bash(f"{GNU_TIME} -f %M -o /dev/fd/{wfd} {shlex.quote(diffid)} -d -q {shlex.quote(bomb)} "
             f"2>/dev/null | python3 -c {shlex.quote(consumer)}"),
        stdout=subprocess.PIPE, pass_fds=(wfd,))
    out = proc.communicate()[0].decode().split()
    secs = time.perf_counter() - t0
    os.close(wfd)
    rss = os.read(rfd, 4096).decode().split()
    os.close(rfd)
    size = int(out[-1]) if out else 0
    if proc.returncode != 0 or size != 4 << 30:
        print(f"compare: diffid -d on the bomb failed (exit {proc.returncode}, {size} bytes)",
              file=sys.stderr)
        sys.exit(1)
    return {"rss_kib": int(rss[-1]) if rss else 0, "diff_size": size, "rate_mib": rate_mib,
            "secs": secs}


def run(d, diffid, gopath, naive, rounds, only, skip_mem, slow):
    started = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    cmds = [c for c in commands(d, diffid, gopath, naive) if not only or c[0] in only]
    rows_only = os.environ.get("BENCH_ROWS", "")
    if rows_only == "decompress":
        # Only `diffid -d`, the decoder it is compared with, and the digest-only diffid (what
        # the tap costs).
        cmds = [c for c in cmds if c[3] in ("diffid-d", "decoder", "diffid") and c[0] != "tar"]
    mach = machine(diffid)
    info = os.path.join(d, "layer.info")
    if os.path.exists(info):
        with open(info) as f:
            mach.update(json.load(f))
    load_before = loadavg()
    print(f"compare: {len(cmds)} commands x {rounds} rounds; load average {load_before}",
          file=sys.stderr)
    # Warm the page cache.
    for _, name, *_ in FORMATS:
        with open(os.path.join(d, name), "rb") as f:
            while f.read(1 << 24):
                pass
    results = {}
    for rnd in range(rounds):
        for key, label, argv, role in cmds:
            slot = results.get((key, label))
            if slot and slot["walls"][0] > slow:
                continue  # a run this long is not repeated: noise is small beside it
            r = timed(argv)
            slot = results.setdefault((key, label), {"role": role, "walls": [], "first_out": r["out"],
                                                     "rss_max_kib": 0, "rounds": rounds})
            if r["rc"] != 0:
                print(f"compare: {label} on {key} failed (exit {r['rc']}): {' '.join(argv)}",
                      file=sys.stderr)
                sys.exit(1)
            slot["walls"].append(r["wall"])
            slot["rss_max_kib"] = max(slot["rss_max_kib"], r["rss_kib"])
            if r["wall"] <= min(slot["walls"]):
                slot["wall"], slot["cpu"] = r["wall"], r["cpu"]
            print(f"  round {rnd + 1}/{rounds}  {key:10} {label:28} {r['wall']:7.2f} s  "
                  f"cpu {r['cpu']:6.2f} s  rss {r['rss_kib'] / 1024:6.0f} MiB", file=sys.stderr)
    problems = check_digests(results, d)
    if problems:
        print("compare: the tools disagree on the digests:\n  " + "\n  ".join(problems),
              file=sys.stderr)
        sys.exit(1)
    mem = {} if skip_mem or rows_only == "decompress" else mem_4gib(d, diffid)
    if not skip_mem and rows_only in ("", "decompress"):
        mem["slow"] = mem_decompress_slow(d, diffid)
    load_after = loadavg()
    text = report(d, results, mach, rounds, started, load_before, load_after, mem, slow)
    print(text)


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "select":
        select(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) >= 2 and sys.argv[1] == "run":
        d, diffid, gopath, naive = sys.argv[2:6]
        rounds = int(os.environ.get("BENCH_RUNS", "3"))
        only = set(filter(None, os.environ.get("BENCH_FORMATS", "").replace(",", " ").split()))
        skip_mem = os.environ.get("BENCH_SKIP_MEM", "") not in ("", "0")
        slow = float(os.environ.get("BENCH_SLOW", "60"))
        run(d, diffid, gopath, naive, rounds, only, skip_mem, slow)
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
