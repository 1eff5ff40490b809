#!/usr/bin/env bash
# Re-vendor the front-end libraries pinned in package.json into static/vendor/.
# Run by hand when a pin changes; the copied files are committed, so neither the
# app nor CI needs npm. Usage: scripts/vendor-static.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cp package.json "$tmp/"
(cd "$tmp" && npm install --no-audit --no-fund --ignore-scripts --save-exact --loglevel=error)
nm="$tmp/node_modules"

# Fail loudly if npm resolved anything other than the exact pins.
node -e '
  const pkg = require(process.argv[1] + "/package.json");
  for (const [name, want] of Object.entries(pkg.dependencies)) {
    const got = require(process.argv[2] + "/" + name + "/package.json").version;
    if (got !== want) { console.error(`${name}: wanted ${want}, npm installed ${got}`); process.exit(1); }
  }' "$root" "$nm"

copy() {  # copy <package-relative source> <destination under static/vendor>
  mkdir -p "static/vendor/$(dirname "$2")"
  cp "$nm/$1" "static/vendor/$2"
}
rm -rf static/vendor
copy htmx.org/dist/htmx.min.js            htmx/htmx.min.js
copy htmx.org/dist/htmx.js                htmx/htmx.js
copy htmx.org/LICENSE                     htmx/LICENSE
copy htmx-ext-ws/dist/ws.min.js           htmx/ext/ws.min.js
copy htmx-ext-ws/dist/ws.js               htmx/ext/ws.js
copy htmx-ext-sse/dist/sse.min.js         htmx/ext/sse.min.js
copy htmx-ext-sse/dist/sse.js             htmx/ext/sse.js
copy htmx-ext-ws/LICENSE                  htmx/ext/LICENSE
copy chart.js/dist/chart.umd.min.js       chartjs/chart.umd.min.js
copy chart.js/LICENSE.md                  chartjs/LICENSE.md
copy @jsplumb/browser-ui/js/jsplumb.browser-ui.umd.js  jsplumb/jsplumb.browser-ui.umd.js
copy @jsplumb/browser-ui/css/jsplumbtoolkit.css        jsplumb/jsplumbtoolkit.css
# Source maps are not vendored, so drop the comments that point at them: production's
# manifest storage (collectstatic) refuses a file that references a missing one.
find static/vendor -name '*.js' -exec sed -i '/^\/\/# sourceMappingURL=/d' {} +

{
  echo "Vendored by scripts/vendor-static.sh from package.json; do not edit by hand."
  node -e '
    const pkg = require(process.argv[1] + "/package.json");
    for (const name of Object.keys(pkg.dependencies).sort())
      console.log(`${name} ${require(process.argv[2] + "/" + name + "/package.json").version}`);' "$root" "$nm"
} > static/vendor/VERSIONS.txt
echo "vendored into static/vendor/:"
cat static/vendor/VERSIONS.txt
