#!/usr/bin/env bash
# The whole test suite: unit, integration and doc tests, then the Autobahn
# conformance run when ../shared/tools/autobahn is present.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --all-features
scripts/autobahn.sh
