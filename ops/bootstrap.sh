# Sourced by ops/hub and ops/test: a virtualenv in .venv with Crossline installed, refreshed
# whenever pyproject.toml changes. Needs only Python >= 3.11 and the package registries.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "Crossline needs Python 3.11 or newer as '$PYTHON' (set PYTHON=/path/to/python3.11)." >&2
    exit 1
fi
VENV="$ROOT/.venv"
if [ ! -x "$VENV/bin/python" ]; then
    echo "Creating the virtualenv in $VENV ..."
    "$PYTHON" -m venv "$VENV"
fi
STAMP="$VENV/.crossline-installed"
WANT="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
    echo "Installing Crossline and its dependencies (a minute or two the first time) ..."
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -e "$ROOT[test]"
    echo "$WANT" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"

# Debian packages Crossline runs: Janus and coturn for live sessions (the page speaks only to the
# hub, so neither janus.js nor janus-tools is needed). Installed when missing, with sudo unless root;
# set [live] enabled = false to do without.
live_packages_missing() {
    local missing=""
    [ -x /usr/bin/janus ] || missing="$missing janus"
    [ -x /usr/bin/turnserver ] || missing="$missing coturn"
    echo "$missing"
}
install_debian_packages() {
    [ -n "$*" ] || return 0
    echo "Installing Debian packages:$* ..."
    local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" > /dev/null
}
