#!/usr/bin/env bash
# Installs what building and testing tiefsee needs on Debian 12 / Ubuntu (22.04 or later):
#   build-essential cmake pkg-config libjansson-dev  - the engine
#   libedit-dev                                       - line editing of `tiefsee chat`
#   libmicrohttpd-dev                                 - the HTTP server of `tiefsee serve`
#   libpcre2-dev libutf8proc-dev                      - the tokenizer (pre-split regexes, NFC)
#   clang + its compiler runtime (libclang-rt-N-dev)  - `make sanitize` (ASan, UBSan, libFuzzer)
#   python3                                           - helper tools
#   strace                                            - test_bench: no fork after a model is loaded
#   nodejs (>= 18) + npm                              - the llama.cpp reference of the conformance test
# and then the pinned test dependency (node-llama-cpp 3.21.1) into tests/conformance/node_modules.
# Idempotent: packages already installed are not touched, apt is only run when something is missing,
# and npm ci only when node_modules does not match package-lock.json.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOG=$(mktemp -t tiefsee-deps.XXXXXX)
trap 'rm -f "$LOG"' EXIT

say() { echo "install-deps: $*"; }
die() {
    echo "install-deps: ERROR: $*" >&2
    if [[ -s $LOG ]]; then
        echo "---- last output:" >&2
        tail -n 30 "$LOG" >&2
    fi
    exit 1
}

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || die "not root and sudo is not installed"
    SUDO=(sudo)
fi

is_installed() {
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

node_major() {
    command -v node >/dev/null || { echo 0; return; }
    node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0
}

apt_updated=0
apt_install() {
    local missing=()
    for pkg in "$@"; do
        is_installed "$pkg" || missing+=("$pkg")
    done
    (( ${#missing[@]} == 0 )) && return 0
    command -v apt-get >/dev/null || die "apt-get not found; install by hand: ${missing[*]}"
    if (( apt_updated == 0 )); then
        say "apt-get update"
        "${SUDO[@]}" apt-get update -qq >>"$LOG" 2>&1 || die "apt-get update failed"
        apt_updated=1
    fi
    say "installing ${missing[*]}"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >>"$LOG" 2>&1 || die "apt-get install ${missing[*]} failed"
}

if command -v dpkg-query >/dev/null; then
    apt_install build-essential cmake pkg-config clang libjansson-dev libpcre2-dev libutf8proc-dev libedit-dev libmicrohttpd-dev python3 ca-certificates strace

    # The sanitizer and libFuzzer runtimes ship separately from clang on newer Debian/Ubuntu
    # (libclang-rt-N-dev); on older releases they are part of libclang-common-N-dev, which clang
    # already pulls in.
    clang_major=$(clang --version | sed -n 's/.*clang version \([0-9][0-9]*\).*/\1/p' | head -n 1)
    if [[ -n $clang_major ]] && apt-cache show "libclang-rt-$clang_major-dev" >/dev/null 2>&1; then
        apt_install "libclang-rt-$clang_major-dev"
    fi

    # A node >= 18 from elsewhere (nodesource, nvm) is kept; otherwise the distribution's.
    if (( $(node_major) < 18 )) || ! command -v npm >/dev/null; then
        apt_install nodejs npm
    fi
else
    say "not a Debian/Ubuntu system: skipping system packages (need a C17 compiler, cmake >= 3.18," \
        "pkg-config, jansson, clang with compiler-rt, python3, node >= 18 with npm)"
fi

(( $(node_major) >= 18 )) || die "node >= 18 is required (found: $(node -v 2>/dev/null || echo none));" \
    "on Ubuntu 22.04 install a newer nodejs, e.g. from https://deb.nodesource.com"
command -v npm >/dev/null || die "npm not found"

# npm ci installs exactly what package-lock.json pins (minus the other platforms' optional llama.cpp
# binaries). npm records the installed tree in node_modules/.package-lock.json: when it lists the
# same non-optional packages at the same versions, there is nothing to do.
CONF="$ROOT/tests/conformance"
installed_matches_lock() {
    node -e '
        const fs = require("fs");
        const read = (p) => JSON.parse(fs.readFileSync(p, "utf8")).packages;
        const want = read(process.argv[1]), have = read(process.argv[2]);
        const needed = Object.keys(want).filter((k) => k && !want[k].optional);
        const ok = needed.every((k) => have[k] && have[k].version === want[k].version);
        process.exit(ok ? 0 : 1);
    ' "$CONF/package-lock.json" "$CONF/node_modules/.package-lock.json" 2>/dev/null
}
if ! installed_matches_lock; then
    say "npm ci in tests/conformance (node-llama-cpp 3.21.1 with its prebuilt linux-x64 llama.cpp)"
    (cd "$CONF" && npm ci --omit=optional --ignore-scripts --no-audit --no-fund >>"$LOG" 2>&1) \
        || die "npm ci in $CONF failed (it needs access to the npm registry)"
fi

say "all dependencies present"
