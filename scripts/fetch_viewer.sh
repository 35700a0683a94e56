#!/usr/bin/env bash
# Install the OHIF viewer the server serves at /viewer/: the prebuilt `dist/` of the npm package
# @ohif/app, at the version and integrity pinned in package.json ("viewer"), into viewer/ohif
# (git-ignored; DICOMWEB_VIEWER_DIR points the server elsewhere).
#
# Why not a dependency in package.json: the published @ohif/app depends on ~40 packages that only
# matter when building OHIF from source (React, webpack loaders, codecs...), and on the registry
# this project uses some of them are not there at all (`npm install @ohif/app@3.13.2` fails: "No
# matching version found for @ohif/i18n@3.13.2"). `dist/` is a self-contained bundle, so we take
# just the package tarball with npm's own client, check it against the pinned integrity, unpack
# `dist/`, and point its absolute URLs ("/...", the bundle was built for the site root) at
# /viewer/, where the server serves it. Idempotent: a second run with the same version is a no-op.
#
# Prints the installed folder.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v node >/dev/null || { echo "fetch_viewer.sh: node and npm are required" >&2; exit 1; }
pin() { node -e 'process.stdout.write(require("./package.json").viewer["@ohif/app"][process.argv[1]])' "$1"; }
version="$(pin version)"
integrity="$(pin integrity)"
base="/viewer/"
root="${DICOMWEB_VIEWER_DIR:-viewer/ohif}"
stamp="@ohif/app@$version at $base (public paths of every bundle, slide viewer import)"

if [ -f "$root/index.html" ] && [ "$(cat "$root/.installed" 2>/dev/null)" = "$stamp" ]; then
  echo "$root"
  exit 0
fi
command -v npm >/dev/null || { echo "fetch_viewer.sh: npm is required" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent --no-fund "@ohif/app@$version" >/dev/null 2>"$work/npm.log") \
  || { cat "$work/npm.log" >&2; exit 1; }
tarball="$work/ohif-app-$version.tgz"
actual="$(node -e 'const c = require("crypto"), fs = require("fs");
  process.stdout.write("sha512-" + c.createHash("sha512").update(fs.readFileSync(process.argv[1])).digest("base64"))' "$tarball")"
if [ "$actual" != "$integrity" ]; then
  echo "fetch_viewer.sh: @ohif/app@$version integrity mismatch: got $actual" >&2
  exit 1
fi
tar -xzf "$tarball" -C "$work" package/dist
dist="$work/package/dist"
# Source maps are half the package and only serve debugging.
find "$dist" -name '*.map' -delete
# The bundle was built for "/": its page's links, webpack's public path (where chunks, workers
# and codecs load from: the app's and each web worker's runtime) and the stylesheets' font URLs
# all start there.
sed -i -e "s#=\"/#=\"$base#g" -e "s#PUBLIC_URL=\"/\"#PUBLIC_URL=\"$base\"#" "$dist/index.html"
sed -i "s#__webpack_require__.p = \"/\";#__webpack_require__.p = \"$base\";#" "$dist"/*.js
grep -q "__webpack_require__.p = \"$base\";" "$dist"/app.bundle.*.js \
  || { echo "fetch_viewer.sh: the bundle's public path was not found; OHIF's layout changed" >&2; exit 1; }
sed -i "s#url(/#url($base#g" "$dist"/*.css
sed -i "s#\"/#\"$base#g" "$dist/manifest.json"
# The slide viewer's script is imported by an absolute URL of its own (it finds its worker and
# codecs from there).
sed -i "s#browserImportFunction('/dicom-microscopy-viewer/#browserImportFunction('${base}dicom-microscopy-viewer/#" \
  "$dist"/app.bundle.*.js
grep -q "browserImportFunction('${base}dicom-microscopy-viewer/" "$dist"/app.bundle.*.js \
  || { echo "fetch_viewer.sh: the slide viewer's import was not found; OHIF's layout changed" >&2; exit 1; }
echo "$stamp" > "$dist/.installed"
mkdir -p "$(dirname "$root")"
rm -rf "$root.partial" "$root.old"
mv "$dist" "$root.partial"
# The rename is the commit point: a half-unpacked folder never looks complete.
[ -d "$root" ] && mv "$root" "$root.old"
mv "$root.partial" "$root"
rm -rf "$root.old"
echo "$root"
