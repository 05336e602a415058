#!/usr/bin/env bash
# The quickstart, end to end, with a planted regression: commit
# workflows/quickstart.yaml and its model to a scratch repository, commit a
# real change to the model (scripts/demo-regression.patch: an extra layer in
# the SwiGLU block, so one case of the quickstart gets slower), measure both
# commits interleaved with `regress ab`, and write the reports. The report
# should show that case regressed and no other case regressed or improved.
# The scratch repository keeps the demo from touching this checkout's
# history.
#
#   scripts/demo.sh [path/to/regress]
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
regress="$(realpath "${1:-$root/target/debug/regress}")"
demo="$root/target/demo"
git=(git -c user.name=regress -c user.email=regress@localhost)

rm -rf "$demo"
mkdir -p "$demo/workflows/models"
cp "$root/workflows/quickstart.yaml" "$demo/workflows/"
cp "$root/workflows/models/quickstart.py" "$demo/workflows/models/"
cd "$demo"
git init -q -b main
"${git[@]}" add -A
"${git[@]}" commit -q -m "quickstart: base"

echo "== a second commit: an extra layer in the SwiGLU block"
git apply "$root/scripts/demo-regression.patch"
git --no-pager diff --stat
"${git[@]}" commit -q -am "quickstart: mix the SwiGLU features before the down projection"

# Interleaved (base, head, head, base, ...): a machine that gets busier or
# quieter during the demo slows both commits alike, instead of passing for
# a change of the code. The eager cases only: each torch.compile process
# compiles again, which would double the demo's time on two cores.
echo "== regress ab main~1 main --filter eager: both commits measured on this machine, interleaved"
"$regress" ab main~1 main workflows/quickstart.yaml --filter eager

"$regress" compare main~1 main --format markdown --output "$demo/report.md"
"$regress" compare main~1 main --format json --output "$demo/report.json"
echo "reports: $demo/report.md, $demo/report.json; records: $demo/.regress/"
