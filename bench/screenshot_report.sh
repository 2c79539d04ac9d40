#!/usr/bin/env bash
# Screenshot an mmrobust report page in headless Chromium (Debian's `chromium` package), as a person sees it.
#   bench/screenshot_report.sh PAGE.html [OUT.png] [WIDTHxHEIGHT]
# The page is self-contained, so Chromium runs with networking off; OUT defaults to PAGE.png.
set -euo pipefail
page=${1:?usage: bench/screenshot_report.sh PAGE.html [OUT.png] [WIDTHxHEIGHT]}
out=${2:-${page%.html}.png}
size=${3:-1200x2000}
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [[ -z "$browser" ]]; then
  echo "no chromium found: apt-get install -y chromium" >&2
  exit 1
fi
abs_page=$(cd "$(dirname "$page")" && pwd)/$(basename "$page")
abs_out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$profile" \
  --proxy-server="127.0.0.1:9" --proxy-bypass-list="<-loopback>" \
  --screenshot="$abs_out" --window-size="${size/x/,}" "file://$abs_page" >/dev/null 2>&1
test -s "$abs_out"
echo "screenshot: $abs_out"
