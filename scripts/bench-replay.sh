#!/usr/bin/env bash
# Whole-process replay benchmark (issue 15, "Benchmarks that tell the truth").
#
# Usage (from anywhere inside the repository):
#
#     scripts/bench-replay.sh                 # the 1 GB figure (README "Speed")
#     SIZE_MB=50 scripts/bench-replay.sh      # a quick check, about a minute
#
# What it does:
#   1. builds the binary with the release-lto profile (fat LTO, as the Docker
#      image; Cargo.toml) and the generators (examples/make_stream.rs,
#      examples/make_catalogue.rs);
#   2. writes a realistic recording of about SIZE_MB: 6.43 posts/s and 2.5
#      non-posts per post, i.e. about 225 events per 10 s bucket, like a real
#      Jetstream recording; deterministic (SEED), so the same size gives the
#      same file; plus a .zst copy, and two smaller recordings of 1/16 and
#      4/16 of the size (so the big one is the "16x" input);
#   3. with a warm page cache, times on the same file, in ROUNDS interleaved
#      rounds (best and median reported; the ratios taken within each round):
#        outagewatch replay (both cores; then pinned to one with taskset -c 0;
#        then the .zst copy), rg -j1 -c -i -F with 20 outage phrases, and
#        zstd -dc of the .zst copy;
#      and reports events/s, MB/s, peak RSS and CPU time (/usr/bin/time -v) and the size of
#      the state directory after the replay;
#   4. replays the 1x, 4x, 16x inputs for peak RSS, and the 1x input with a
#      catalogue CATALOGUE_FACTOR times larger (make_catalogue) for RSS.
#
# Environment:
#   SIZE_MB           size of the main ("16x") recording in MB (default 1024)
#   SEED              generator seed (default 15)
#   ROUNDS            how many times the five timed runs are repeated, interleaved
#                     (default 3); each row reports the best round and the median
#   CATALOGUE_FACTOR  services multiplier for the catalogue-growth run (default 10)
#   WORK              scratch directory (default ${TMPDIR:-/tmp}/outagewatch-bench);
#                     recordings are kept there and reused when present with the
#                     same size and seed; state directories are recreated per run
#   STATE_ROOT        where the state directories go (default: WORK). Put it on
#                     a real disk when WORK is a tmpfs, or sled's fsyncs cost nothing
#   KEEP=1            keep the state directories and alerts (default: each state
#                     directory is measured and removed after its run; the
#                     recordings are kept, being expensive to make)
#
# Missing tools (GNU time, ripgrep, zstd, bc) are installed with apt-get (Debian).
# The output ends with a table in the shape of the README's issue-15 table (under "Speed").
set -euo pipefail

SIZE_MB=${SIZE_MB:-1024}
SEED=${SEED:-15}
CATALOGUE_FACTOR=${CATALOGUE_FACTOR:-10}
ROUNDS=${ROUNDS:-3}
WORK=${WORK:-${TMPDIR:-/tmp}/outagewatch-bench}
STATE_ROOT=${STATE_ROOT:-$WORK}
POSTS_PER_SEC=6.43
OTHERS_PER_POST=2.5

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

die() { echo "bench-replay: $*" >&2; exit 1; }
[[ $SIZE_MB =~ ^[0-9]+$ ]] && ((SIZE_MB >= 16)) || die "SIZE_MB must be a whole number >= 16, got '$SIZE_MB'"
[[ $ROUNDS =~ ^[0-9]+$ ]] && ((ROUNDS >= 1 && ROUNDS <= 50)) || die "ROUNDS must be a whole number from 1 to 50, got '$ROUNDS'"
[[ $CATALOGUE_FACTOR =~ ^[0-9]+$ ]] && ((CATALOGUE_FACTOR >= 1)) || die "CATALOGUE_FACTOR must be >= 1"

# ── tools ────────────────────────────────────────────────────────────────
install_pkg() {
    local pkg=$1 sudo=()
    ((EUID == 0)) || sudo=(sudo)
    echo "bench-replay: installing Debian package '$pkg'" >&2
    "${sudo[@]}" apt-get install -y -q "$pkg" >/dev/null 2>&1 ||
        { "${sudo[@]}" apt-get update -q >/dev/null 2>&1 && "${sudo[@]}" apt-get install -y -q "$pkg" >/dev/null; } ||
        die "cannot install $pkg"
}
[[ -x /usr/bin/time ]] || install_pkg time
command -v rg >/dev/null || install_pkg ripgrep
command -v zstd >/dev/null || install_pkg zstd
command -v taskset >/dev/null || install_pkg util-linux
command -v bc >/dev/null || install_pkg bc

# ── build ────────────────────────────────────────────────────────────────
cargo build --profile release-lto --quiet --bin outagewatch --example make_stream --example make_catalogue
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release-lto/outagewatch
MAKE_STREAM=$TARGET/release-lto/examples/make_stream
MAKE_CATALOGUE=$TARGET/release-lto/examples/make_catalogue

mkdir -p "$WORK" "$STATE_ROOT"

# ── recordings ───────────────────────────────────────────────────────────
# Minutes of stream for a target size, from the bytes per minute of a short
# sample with the same settings (the generator is deterministic by seed).
SAMPLE=$WORK/sample.jsonl
"$MAKE_STREAM" "$SAMPLE" 30 $POSTS_PER_SEC $OTHERS_PER_POST "$SEED" 2>/dev/null
BYTES_PER_MIN=$(($(stat -c %s "$SAMPLE") / 30))
rm -f "$SAMPLE"

make_recording() { # NAME SIZE_MB → path on stdout
    local name=$1 mb=$2
    local minutes=$(((mb * 1000000 + BYTES_PER_MIN - 1) / BYTES_PER_MIN))
    local path=$WORK/$name-${mb}MB-seed$SEED.jsonl
    if [[ ! -s $path ]]; then
        echo "bench-replay: generating $path ($minutes minutes of event time)" >&2
        "$MAKE_STREAM" "$path.part" "$minutes" $POSTS_PER_SEC $OTHERS_PER_POST "$SEED" 2>/dev/null
        mv "$path.part" "$path"
    fi
    echo "$path"
}
MAIN=$(make_recording x16 "$SIZE_MB")
X4=$(make_recording x4 $((SIZE_MB / 4)))
X1=$(make_recording x1 $((SIZE_MB / 16)))
if [[ ! -s $MAIN.zst ]]; then
    zstd -q -T0 -3 -f "$MAIN" -o "$MAIN.zst.part" && mv "$MAIN.zst.part" "$MAIN.zst"
fi
CATALOGUE=$WORK/patterns-${CATALOGUE_FACTOR}x
# Made afresh from this build's patterns at every run (it is quick): one
# kept from an earlier run measured the patterns of then.
rm -rf "$CATALOGUE"
"$MAKE_CATALOGUE" "$CATALOGUE" "$CATALOGUE_FACTOR" 2>/dev/null

# ── measuring ────────────────────────────────────────────────────────────
now() { date +%s.%N; }
# run NAME CMD... : wall seconds into $SECS, peak RSS (KiB) into $RSS_KB,
# and into $CPU the CPU time (user + system seconds) with the context
# switches the process was forced into: on a busy host the wall time
# moves with the neighbours, these much less.
run() {
    local name=$1; shift
    local log=$WORK/$name.time
    local start end
    start=$(now)
    /usr/bin/time -v -o "$log" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" ||
        die "$name failed (exit $?): $(tail -3 "$WORK/$name.err")"
    end=$(now)
    SECS=$(echo "$end - $start" | bc -l)
    RSS_KB=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$log")
    CPU=$(awk -F': ' '
        /User time \(seconds\)/ { user = $2 }
        /System time \(seconds\)/ { sys = $2 }
        /Involuntary context switches/ { forced = $2 }
        END { printf "CPU %.2f s (user %.2f, system %.2f), %d forced switches", user + sys, user, sys, forced }
    ' "$log")
    CPU_SECS=$(awk -F': ' '
        /User time \(seconds\)/ { user = $2 }
        /System time \(seconds\)/ { sys = $2 }
        END { printf "%.3f", user + sys }
    ' "$log")
}
# replay NAME FILE [extra args...] [-- PREFIX...]: also sets $STATE_MB (the
# state directory's size at exit), $LIVE_MB (the bytes of its records),
# $STATE_RATIO (the first over the second) and
# $ALERTS (lines of alerts written); the
# state directory is removed afterwards (unless KEEP=1) to spare the disk.
replay() {
    local name=$1 file=$2; shift 2
    local state=$STATE_ROOT/state-$name alerts=$WORK/alerts-$name.jsonl
    rm -rf "$state" "$alerts"
    run "$name" "${PREFIX[@]}" "$BIN" replay --state-dir "$state" --alerts "$alerts" "$@" "$file"
    local state_bytes live_bytes
    state_bytes=$(du -sb "$state" | cut -f1)
    # The live data: the bytes of the records `state verify` finds.
    live_bytes=$("$BIN" state verify --state-dir "$state" |
        sed -n 's/.*; \([0-9]*\) bytes of records$/\1/p')
    STATE_MB=$(printf '%.2f' "$(echo "$state_bytes / 1000000" | bc -l)")
    LIVE_MB=$(printf '%.2f' "$(echo "$live_bytes / 1000000" | bc -l)")
    STATE_RATIO=$(printf '%.2f' "$(echo "$state_bytes / $live_bytes" | bc -l)")
    ALERTS=$(wc -l <"$alerts")
    [[ ${KEEP:-0} == 1 ]] || rm -rf "$state"
}
PREFIX=()
warm() { cat "$@" >/dev/null; }
mib() { echo "scale=1; $1 / 1024" | bc -l; }
per_sec() { echo "$1 / $SECS" | bc -l | xargs printf '%.0f'; }
mb_per_sec() { echo "$1 / 1000000 / $SECS" | bc -l | xargs printf '%.1f'; }

EVENTS=$(wc -l <"$MAIN")
BYTES=$(stat -c %s "$MAIN")
ZBYTES=$(stat -c %s "$MAIN.zst")
warm "$MAIN" "$MAIN.zst"

PHRASES=("is down" "is it down" "down for anyone" "down for everyone" "not loading"
    "not working" "outage" "went down" "servers down" "server down" "can't log in"
    "cannot connect" "won't load" "keeps crashing" "service unavailable"
    "bad gateway" "caiu" "fora do ar" "落ちてる" "en panne")
RG_ARGS=()
for p in "${PHRASES[@]}"; do RG_ARGS+=(-e "$p"); done

ROWS=()
row() { ROWS+=("$(printf '| %s | %s | %s | %s | %s |' "$@")"); }

# The five timed runs go in ROUNDS interleaved rounds (plain on both cores,
# one core, .zst, rg, zstd; then again), so a neighbour's burst on the host
# hits every command alike rather than one of them; each row reports the
# best (fastest) round and the median, and the two ratios the issue sets
# (replay / rg, .zst / plain) are taken within each round.
declare -A TIMES CPUS RSS
ZST_RATIOS=() ZST_CPU_RATIOS=() RG_RATIOS=()
note() { # NAME: keeps this run's wall time, CPU line and peak RSS
    TIMES[$1]+="$SECS "
    CPUS[$1]=$CPU
    ((${RSS[$1]:-0} >= RSS_KB)) || RSS[$1]=$RSS_KB
}
# stats "T1 T2 ...": sets BEST and MEDIAN (seconds).
stats() {
    local sorted
    sorted=$(tr ' ' '\n' <<<"$1" | grep . | sort -g)
    BEST=$(head -1 <<<"$sorted")
    MEDIAN=$(awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }' <<<"$sorted")
}
ratio_stats() { # "R1 R2 ...": "best B, median M"
    stats "$1"
    printf 'best %.2f, median %.2f' "$BEST" "$MEDIAN"
}
SAME_ALERTS=yes
for ((round = 1; round <= ROUNDS; round++)); do
    echo "bench-replay: round $round of $ROUNDS" >&2
    replay main "$MAIN"
    note main
    plain=$SECS plain_cpu=$CPU_SECS
    MAIN_STATE_MB="$STATE_MB MB (${STATE_RATIO}× its records)"
    MAIN_NOTES="state dir $STATE_MB MB for $LIVE_MB MB of records (${STATE_RATIO}×); $ALERTS alerts"
    # taskset pins the whole process, so this run differs from the first only in the pinning.
    PREFIX=(taskset -c 0)
    replay one_core "$MAIN"
    PREFIX=()
    note one_core
    replay zst "$MAIN.zst"
    note zst
    ZST_RATIOS+=("$(echo "$SECS / $plain" | bc -l)")
    ZST_CPU_RATIOS+=("$(echo "$CPU_SECS / $plain_cpu" | bc -l)")
    # The three replays of the same events must agree byte for byte.
    for other in one_core zst; do
        cmp -s "$WORK/alerts-main.jsonl" "$WORK/alerts-$other.jsonl" || SAME_ALERTS="NO ($other differs in round $round)"
    done
    run rg rg -j1 -c -i -F "${RG_ARGS[@]}" "$MAIN"
    note rg
    RG_RATIOS+=("$(echo "$plain / $SECS" | bc -l)")
    # To /dev/null, not to zstd.out: a gigabyte written to the disk would
    # time the disk, and its flush would slow the next round's replays
    # (sled syncs its log and waits behind it).
    run zstd bash -c 'exec zstd -dc "$1" >/dev/null' zstd "$MAIN.zst"
    note zstd
done

timed_row() { # NAME LABEL UNIT BYTES-LABEL EXTRA
    stats "${TIMES[$1]}"
    local best=$BEST median=$MEDIAN
    SECS=$best
    local rate mbs
    rate=$(per_sec "$EVENTS") mbs=$(mb_per_sec "$BYTES")
    SECS=$median
    row "$2" "$rate $3 (median $(per_sec "$EVENTS"))" "$mbs MB/s$4" "$(mib "${RSS[$1]}") MiB" \
        "best $(printf '%.2f' "$best") s, median $(printf '%.2f' "$median") s of $ROUNDS; last run ${CPUS[$1]}${5:+; $5}"
}
timed_row main "replay, plain, both cores" events/s "" "$MAIN_NOTES"
timed_row one_core "replay, plain, one core (taskset -c 0)" events/s ""
timed_row zst "replay, .zst, both cores" events/s " (plain bytes)" ".zst / plain in the same round: $(ratio_stats "${ZST_RATIOS[*]}")"
timed_row rg "rg -j1 -c -i -F, 20 phrases" lines/s "" "$(cat "$WORK/rg.out") matching lines"
timed_row zstd "zstd -dc of the .zst" lines/s ""

for input in x1:"$X1" x4:"$X4"; do
    name=${input%%:*} file=${input#*:}
    warm "$file"
    replay "rss_$name" "$file"
    lines=$(wc -l <"$file")
    row "replay, $name input ($(($(stat -c %s "$file") / 1000000)) MB, $lines events)" "$(per_sec "$lines") events/s" "$(mb_per_sec "$(stat -c %s "$file")") MB/s" "$(mib "$RSS_KB") MiB" "$(printf '%.2f' "$SECS") s; state dir $STATE_MB MB (${STATE_RATIO}× its records)"
done
row "replay, x16 input (the main file)" "first row" "" "" "state dir $MAIN_STATE_MB"

replay catalogue "$X1" --patterns "$CATALOGUE"
lines=$(wc -l <"$X1")
row "replay, x1 input, ${CATALOGUE_FACTOR}x catalogue" "$(per_sec "$lines") events/s" "$(mb_per_sec "$(stat -c %s "$X1")") MB/s" "$(mib "$RSS_KB") MiB" "$(printf '%.2f' "$SECS") s"

# ── report ───────────────────────────────────────────────────────────────
echo
echo "machine: $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "input: $MAIN"
echo "       $EVENTS events, $BYTES bytes ($(echo "scale=1; $BYTES/1000000" | bc -l) MB), .zst $ZBYTES bytes; seed $SEED; $POSTS_PER_SEC posts/s, $OTHERS_PER_POST non-posts per post"
echo "alerts identical across plain, one-core and .zst replays: $SAME_ALERTS"
echo "replay / rg time ratio, same round: $(ratio_stats "${RG_RATIOS[*]}") (target: <= 1)"
echo ".zst / plain time ratio, same round: $(ratio_stats "${ZST_RATIOS[*]}") (target: <= 1.15)"
# Once both replays keep both cores busy, the time ratio is their CPU
# ratio, 1 + (what decompressing adds) / (the plain replay's work), which
# a faster replay only raises (README "Speed").
echo ".zst / plain CPU time ratio, same round: $(ratio_stats "${ZST_CPU_RATIOS[*]}") (the time ratio when both keep both cores busy)"
echo
echo "| what | events/s | MB/s | peak RSS | notes |"
echo "|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
echo
echo "replay summary of the main run:"
grep -v '^\s*$' "$WORK/main.err" | tail -25

[[ ${KEEP:-0} == 1 ]] || rm -f "$WORK"/alerts-*.jsonl
