#!/usr/bin/env bash
# Render an accuracy report page (quantize --report FILE.html) to a PNG with headless Chromium.
#
#   tools/render_report.sh REPORT.html [OUT.png] [WIDTH] [HEIGHT]
#
# OUT.png defaults to REPORT.png next to the input; the window defaults to 1240 × 2400 pixels (the
# page is about 1200 px wide; make HEIGHT larger for reports with many tensors — the PNG is cut at
# the window's height). Installs Debian's `chromium` package (and a font) with apt-get when no
# Chromium is on the PATH; that needs root (or sudo) and network access once.
# The page has no script and no external reference, so nothing but the file itself is loaded.
set -euo pipefail

if [[ $# -lt 1 || "$1" == "-h" || "$1" == "--help" ]]; then
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
input="$1"
output="${2:-${input%.*}.png}"
width="${3:-1240}"
height="${4:-2400}"
[[ -f "$input" ]] || { echo "render_report.sh: no such file: $input" >&2; exit 2; }

browser=""
for candidate in chromium chromium-browser google-chrome; do
    if command -v "$candidate" >/dev/null 2>&1; then browser="$candidate"; break; fi
done
if [[ -z "$browser" ]]; then
    echo "render_report.sh: installing Debian's chromium package (once)..." >&2
    sudo_cmd=""
    [[ "$(id -u)" -ne 0 ]] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >&2
    browser=chromium
fi

# Chromium wants absolute paths; a private profile directory keeps it from touching the user's.
abs_input="$(cd "$(dirname "$input")" && pwd)/$(basename "$input")"
mkdir -p "$(dirname "$output")"
abs_output="$(cd "$(dirname "$output")" && pwd)/$(basename "$output")"
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
# --no-sandbox: needed when running as root (CI containers); the page is our own static file.
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --user-data-dir="$profile" --no-first-run --disable-extensions --disable-background-networking \
    --window-size="${width},${height}" --screenshot="$abs_output" "file://$abs_input" >/dev/null 2>&1 || true
if [[ ! -s "$abs_output" ]]; then
    echo "render_report.sh: $browser wrote no screenshot for $input" >&2
    exit 1
fi
echo "$abs_output"
