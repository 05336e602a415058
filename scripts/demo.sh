#!/usr/bin/env bash
# The quickstart, end to end: run workflows/quickstart.yaml at two commits of
# a scratch repository, compare them, and write the markdown report. The
# scratch repository keeps the demo from touching this checkout's history.
#
#   scripts/demo.sh [path/to/regress]
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
regress="$(realpath "${1:-$root/target/debug/regress}")"
demo="$root/target/demo"

rm -rf "$demo"
mkdir -p "$demo/workflows"
cp "$root/workflows/quickstart.yaml" "$demo/workflows/"
cd "$demo"
git init -q -b main
git -c user.name=regress -c user.email=regress@localhost add -A
git -c user.name=regress -c user.email=regress@localhost commit -q -m "quickstart: base"

echo "== regress run at the base commit"
"$regress" run workflows/quickstart.yaml

echo "== a second commit, and regress run again"
echo "A change under test." > CHANGE.md
git -c user.name=regress -c user.email=regress@localhost add -A
git -c user.name=regress -c user.email=regress@localhost commit -q -m "quickstart: head"
"$regress" run workflows/quickstart.yaml

echo "== regress compare main~1 main"
"$regress" compare main~1 main
"$regress" compare main~1 main --format markdown --output "$demo/report.md"
"$regress" compare main~1 main --format json --output "$demo/report.json"
echo "reports: $demo/report.md, $demo/report.json; records: $demo/.regress/"
