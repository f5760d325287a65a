#!/usr/bin/env python3
"""How far any filter of the detector's own incidents could take a NAB score.

    scripts/nab-bound.py [--category realTweets] [--ordinary-p 1e-5,1e-3,...]
                         [--with KEY=VALUE]... [--pairs] [--novelty]
                         [--bin target/release/outagewatch] [--nab DIR]

For each `ordinary_p` (the learned negative binomial's line; the other
`[detector]` settings at their defaults but for `--with`) it runs
`outagewatch series --explain` on every file of the category, cuts each
file's rows into incidents (a `firing` row and the `open`/`updated` rows
after it), and describes each incident by its peak surprise (the largest
-log10 p-value it reaches), its peak ratio (count over expectation) and its
length in buckets. It then scores, with the NAB copy's own `score.py`
functions:

- every firing, as `scripts/nab-score.sh` would;
- the best score reached by keeping only the incidents at or above a
  threshold on one feature, the threshold chosen *with hindsight* over all
  values seen (`--pairs`: two features at once, on a coarser grid).

A kept incident is detected at its first firing row, so the figures are an
upper bound for any rule that keeps or drops these incidents by how
strong, high or long they turn out to be: a rule that decides as they
happen decides later or with less. A rule that changes the detector itself
(what it learns, when an incident ends) changes the incidents, and is not
bounded by this; nor is a detector of another kind.

`--novelty` also scores a rule that does decide as the incident happens:
an incident pages only from its first row that stands out from the
file's incidents of the last few days (see `novelty`).

The NAB copy is looked up as `scripts/nab-score.sh` does; the binary is
`$OUTAGEWATCH_BIN` or target/release/outagewatch.
"""
import argparse, csv, glob, importlib.util, io, itertools, json, math, os, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FEATURES = ("peak_surprise", "peak_ratio", "buckets")


def find_nab(explicit):
    shared = os.environ.get("OUTAGEWATCH_SHARED")
    for c in (explicit, shared and os.path.join(shared, "nab"),
              os.path.join(ROOT, "..", "shared", "nab"), "/work/shared/nab"):
        if c and os.path.isfile(os.path.join(c, "score.py")) and os.path.isdir(os.path.join(c, "data")):
            return c
    sys.exit("nab-bound: no NAB copy found ($OUTAGEWATCH_SHARED/nab, ../shared/nab, /work/shared/nab)")


def load_scorer(nab):
    spec = importlib.util.spec_from_file_location("nab_score", os.path.join(nab, "score.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def number(text, default):
    try:
        return float(text)
    except ValueError:
        return default


def incidents(explain_rows):
    """(index of the firing row, features) for each incident of `--explain`'s rows."""
    out = []
    for i, row in enumerate(explain_rows):
        if row["state"] != "firing":
            continue
        j = i + 1
        while j < len(explain_rows) and explain_rows[j]["state"] in ("open", "updated"):
            j += 1
        span = explain_rows[i:j]
        out.append((i, {
            "peak_surprise": max(surprise(r) for r in span),
            "peak_ratio": max(ratio(r) for r in span),
            "buckets": j - i,
            # Each row's (row index, surprise, ratio), for --novelty.
            "rows": [(i + k, surprise(r), ratio(r)) for k, r in enumerate(span)],
        }))
    return out


def surprise(row):
    return -math.log10(max(number(row["p_value"], 1.0), 1e-300))


def ratio(row):
    return number(row["count"], 0.0) / max(number(row["expected"], 0.0), 1e-9)


def explain(binary, config, csv_path):
    done = subprocess.run([binary, "series", "--config", config, "--explain", csv_path],
                          capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"nab-bound: series failed on {csv_path}: {done.stderr.strip()}")
    return list(csv.DictReader(io.StringIO(done.stdout)))


def category_files(nab, category, scorer, binary, config):
    windows = json.load(open(os.path.join(nab, "labels", "combined_windows.json")))
    files = []
    for path in sorted(glob.glob(os.path.join(nab, "data", category, "*.csv"))):
        key = f"{category}/{os.path.basename(path)}"
        if key not in windows:
            continue
        timestamps = [scorer.parse(r["timestamp"]) for r in csv.DictReader(open(path))]
        rows = explain(binary, config, path)
        position = {t: i for i, t in enumerate(timestamps)}
        found = []
        for i, features in incidents(rows):
            at = position.get(scorer.parse(rows[i]["timestamp"]))
            if at is None:
                sys.exit(f"nab-bound: {path}: firing at {rows[i]['timestamp']} is not a row of the file")
            features["rows"] = [(position[scorer.parse(rows[k]["timestamp"])], s, r)
                                for k, s, r in features["rows"]]
            found.append((at, features))
        labelled = [(scorer.parse(a), scorer.parse(b)) for a, b in windows[key]]
        files.append((timestamps, labelled, found))
    return files


def score(scorer, files, keep):
    raw = null = windows = 0.0
    for timestamps, labelled, found in files:
        flags = [False] * len(timestamps)
        for at, features in found:
            flags[at] = flags[at] or keep(features)
        r, n = scorer.score_file(timestamps, flags, labelled, "standard")
        nl, _ = scorer.score_file(timestamps, [False] * len(timestamps), labelled, "standard")
        raw, null, windows = raw + r, null + nl, windows + n
    return 100 * (raw - null) / (windows - null)


def best_single(scorer, files, feature):
    values = sorted({f[feature] for _, _, found in files for _, f in found})
    return max(((score(scorer, files, lambda f, v=v: f[feature] >= v), v) for v in values),
               default=(score(scorer, files, lambda f: False), None))


def novelty(scorer, files, feature, alpha, days):
    """The score when an incident pages only once it stands out from the
    incidents before it: at its first row whose surprise (or ratio)
    reaches `alpha` times the highest peak of the file's incidents that
    started within the previous `days` (paged or not). Decided as the
    incident happens, so not bounded by the hindsight figures."""
    column = 1 if feature == "peak_surprise" else 2
    raw = null = windows = 0.0
    for timestamps, labelled, found in files:
        flags = [False] * len(timestamps)
        history = []
        for at, f in found:
            start = timestamps[at]
            line = alpha * max((peak for t, peak in history
                                if (start - t).total_seconds() <= days * 86400), default=0.0)
            for row in f["rows"]:
                if row[column] >= line:
                    flags[row[0]] = True
                    break
            history.append((start, f[feature]))
        r, n = scorer.score_file(timestamps, flags, labelled, "standard")
        nl, _ = scorer.score_file(timestamps, [False] * len(timestamps), labelled, "standard")
        raw, null, windows = raw + r, null + nl, windows + n
    return 100 * (raw - null) / (windows - null)


def best_pair(scorer, files, a, b, step=3):
    va = sorted({f[a] for _, _, found in files for _, f in found})[::step]
    vb = sorted({f[b] for _, _, found in files for _, f in found})[::step]
    return max(((score(scorer, files, lambda f, x=x, y=y: f[a] >= x and f[b] >= y), x, y)
                for x in va for y in vb), default=(None, None, None))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--category", default="realTweets")
    ap.add_argument("--ordinary-p", default="1e-5,1e-4,1e-3,1e-2,1e-1")
    ap.add_argument("--with", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                    help="another [detector] setting for every run, e.g. fire_ratio=2")
    ap.add_argument("--pairs", action="store_true", help="also two features at once (slower)")
    ap.add_argument("--novelty", action="store_true",
                    help="also the rule 'page only what stands out from the last days' incidents'")
    ap.add_argument("--bin", default=os.environ.get("OUTAGEWATCH_BIN",
                                                    os.path.join(ROOT, "target", "release", "outagewatch")))
    ap.add_argument("--nab")
    args = ap.parse_args()
    if not os.access(args.bin, os.X_OK):
        sys.exit(f"nab-bound: no binary at {args.bin} (cargo build --release, or set OUTAGEWATCH_BIN)")
    nab = find_nab(args.nab)
    scorer = load_scorer(nab)
    settings = "".join(f", {kv}" for kv in args.settings)
    print(f"{args.category}{settings}, standard profile; best = hindsight threshold on the incidents' feature")
    for p in args.ordinary_p.split(","):
        float(p)  # a bad value stops here, before any run
        with tempfile.NamedTemporaryFile("w", suffix=".toml") as config:
            config.write(f"[detector]\nordinary_p = {p}\n" + "".join(f"{kv}\n" for kv in args.settings))
            config.flush()
            files = category_files(nab, args.category, scorer, args.bin, config.name)
        count = sum(len(found) for _, _, found in files)
        line = [f"ordinary_p {p}: {count} incidents, all {score(scorer, files, lambda f: True):.1f}"]
        for feature in FEATURES:
            best, at = best_single(scorer, files, feature)
            line.append(f"best by {feature} {best:.1f}" + (f" (>= {at:.3g})" if at is not None else ""))
        if args.pairs:
            for a, b in itertools.combinations(FEATURES, 2):
                best, x, y = best_pair(scorer, files, a, b)
                if best is not None:
                    line.append(f"best by {a} & {b} {best:.1f} (>= {x:.3g}, {y:.3g})")
        print("; ".join(line))
        if args.novelty:
            for feature in ("peak_surprise", "peak_ratio"):
                for days in (1, 3, 7):
                    cells = ", ".join(f"{a}: {novelty(scorer, files, feature, a, days):.1f}"
                                      for a in (0.25, 0.5, 1.0, 1.5))
                    print(f"  novelty by {feature} over {days} day(s), alpha {cells}")


if __name__ == "__main__":
    main()
