#!/usr/bin/env bash
# Refreshes the browser assets the binary embeds (adapters/httpapi/web/vendor)
# from the npm registry, at the versions pinned below. The binary never needs
# npm: the copied files are committed, so building stays `go build`.
set -euo pipefail
cd "$(dirname "$0")/.."
SWAGGER_UI_DIST=5.35.0

dest=adapters/httpapi/web/vendor/swagger-ui-dist
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "swagger-ui-dist@$SWAGGER_UI_DIST" >/dev/null && tar xzf swagger-ui-dist-*.tgz)
rm -rf "$dest" && mkdir -p "$dest"
# Only what the page loads, with its licence and notices: not the source
# maps, the ES builds or the standalone preset.
for f in swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt swagger-ui.css favicon-32x32.png LICENSE NOTICE; do
	cp "$tmp/package/$f" "$dest/$f"
done
echo "$SWAGGER_UI_DIST" >"$dest/VERSION"
echo "vendored swagger-ui-dist@$SWAGGER_UI_DIST into $dest"
