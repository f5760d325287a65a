#!/usr/bin/env bash
# NAB score of `outagewatch series` on the shared Numenta Anomaly Benchmark
# copy: runs `series` over every DATA/<category>/*.csv and scores the firing
# alerts with the shared score.py (standard, low-FP and low-FN profiles).
#
#   scripts/nab-score.sh [OUT_DIR] [-- extra `series` flags]
#
# The NAB copy is looked up in $OUTAGEWATCH_SHARED/nab, ../shared/nab (next
# to the checkout) and /work/shared/nab; when absent the script says so and
# exits 0, or fails when CI=true. Needs python3 and a built binary
# (target/release/outagewatch, else cargo builds it).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/target/nab}"
shift || true
[ "${1:-}" = "--" ] && shift
nab=""
for c in "${OUTAGEWATCH_SHARED:+$OUTAGEWATCH_SHARED/nab}" "$root/../shared/nab" /work/shared/nab; do
  if [ -n "$c" ] && [ -f "$c/score.py" ] && [ -d "$c/data" ]; then nab="$c"; break; fi
done
if [ -z "$nab" ]; then
  echo "nab-score: no NAB copy found (\$OUTAGEWATCH_SHARED/nab, ../shared/nab, /work/shared/nab); skipped" >&2
  [ "${CI:-}" = "true" ] && exit 1
  exit 0
fi
bin="${OUTAGEWATCH_BIN:-$root/target/release/outagewatch}"
if [ ! -x "$bin" ]; then
  (cd "$root" && cargo build --release --quiet)
fi
rm -rf "$out"
for f in "$nab"/data/*/*.csv; do
  c=$(basename "$(dirname "$f")")
  mkdir -p "$out/$c"
  # A file `series` refuses (negative values, say) scores as no detection;
  # the reason is in series.log and counted here.
  if ! "$bin" series "$@" "$f" > "$out/$c/$(basename "$f" .csv).jsonl" 2>> "$out/series.log"; then
    echo "nab-score: series refused $c/$(basename "$f") (see $out/series.log)" >&2
  fi
done
python3 "$nab/score.py" "$nab" --alerts "$out"
