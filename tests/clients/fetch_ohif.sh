#!/usr/bin/env bash
# Fetch the prebuilt OHIF viewer (the `dist/` of the npm package @ohif/app) for the browser test.
#
# Why not a devDependency in package.json: the published @ohif/app depends on ~40 packages that
# only matter when building OHIF from source (React, webpack loaders, codecs...), and on the
# registry this project uses some of them are not there at all (`npm install @ohif/app@3.13.2`
# fails: "No matching version found for @ohif/i18n@3.13.2"). `dist/` is a self-contained bundle,
# so we take just the package tarball with npm's own client, check it against the pinned
# integrity, and unpack `dist/`. Idempotent: a second run with the same version is a no-op.
#
# Prints the dist folder. OHIF_DIST_ROOT overrides where it is kept.
set -euo pipefail
cd "$(dirname "$0")/../.."

version="3.13.2"
integrity="sha512-WZdxmpmG7rqFgW9ZJLcbgr3XCtLi1KDNPoMaeY5PPe6j4G4fjEjjkycZM6C6Zk2F87BKxFfpq+jd5xXZB9E8EA=="
# node_modules/.cache is git-ignored and the usual place for tool caches; `npm ci` wipes it, which
# only costs a re-download (~50 MB) when the lock file changes.
root="${OHIF_DIST_ROOT:-node_modules/.cache/ohif-app-$version}"

if [ -f "$root/dist/index.html" ]; then
  echo "$root/dist"
  exit 0
fi
command -v npm >/dev/null || { echo "fetch_ohif.sh: npm is required" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent --no-fund "@ohif/app@$version" >/dev/null 2>"$work/npm.log") \
  || { cat "$work/npm.log" >&2; exit 1; }
tarball="$work/ohif-app-$version.tgz"
actual="$(node -e 'const c = require("crypto"), fs = require("fs");
  process.stdout.write("sha512-" + c.createHash("sha512").update(fs.readFileSync(process.argv[1])).digest("base64"))' "$tarball")"
if [ "$actual" != "$integrity" ]; then
  echo "fetch_ohif.sh: @ohif/app@$version integrity mismatch: got $actual" >&2
  exit 1
fi
tar -xzf "$tarball" -C "$work" package/dist
# Source maps are half the package and only serve debugging.
find "$work/package/dist" -name '*.map' -delete
mkdir -p "$root"
rm -rf "$root/dist.partial"
mv "$work/package/dist" "$root/dist.partial"
# The rename is the commit point: a half-unpacked folder never looks complete.
mv "$root/dist.partial" "$root/dist"
echo "$root/dist"
