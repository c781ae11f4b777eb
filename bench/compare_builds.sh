#!/usr/bin/env bash
# Times two ditgen binaries side by side on the same runs (16 frames, the shipped model, two
# threads): dense attention and generate's default, each binary run REPEATS times in
# alternation, and prints the median seconds of each and the ratio new/old.
#   bench/compare_builds.sh OLD_BINARY NEW_BINARY [REPEATS]
set -euo pipefail
old=$1 new=$2 reps=${3:-3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for spec in dense "radial3d:decay=0.5,dense_steps=0.4,refresh=4"; do
  for r in $(seq "$reps"); do
    for which in old new; do
      bin=$old
      [ "$which" = new ] && bin=$new
      "$bin" generate --model models/digits-dit.h5 --labels 3,7 --frames 16 --seed 0 --threads 2 --attn "$spec" \
        --out "$tmp/v.mkv" --json "$tmp/$which-$r.json" --overwrite >/dev/null 2>&1
    done
  done
  /usr/bin/python3 - "$tmp" "$reps" "$spec" <<'PYEOF'
import json, statistics, sys
tmp, reps, spec = sys.argv[1], int(sys.argv[2]), sys.argv[3]
sec = {w: [json.load(open("%s/%s-%d.json" % (tmp, w, r + 1)))["seconds"] for r in range(reps)] for w in ("old", "new")}
mo, mn = statistics.median(sec["old"]), statistics.median(sec["new"])
print("%-48s old %.2f s  new %.2f s  new/old %.3f  (runs: old %s, new %s)" % (
    spec, mo, mn, mn / mo, ", ".join("%.2f" % x for x in sec["old"]), ", ".join("%.2f" % x for x in sec["new"])))
PYEOF
done
