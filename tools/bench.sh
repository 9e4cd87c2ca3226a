#!/usr/bin/env bash
# Builds QuantizeBench in release mode and prints its Markdown tables.
#
#   tools/bench.sh [GROUP|all] [--megabytes N] [--repeats N]
#
# GROUP defaults to all (QuantizeBench --help lists the groups). Every speed is reported next to a
# memcpy of the same bytes measured in the same run; the machine is shared, so numbers are medians.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product QuantizeBench >&2
exec .build/release/QuantizeBench "${@:-all}"
