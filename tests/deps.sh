# tests/deps.sh: the Debian packages ppflow needs, installed when missing.
# Sourced by tests/run.sh and samples/quickstart.sh; apt-get update runs once,
# and only when something is missing.

PF_BUILD_PKGS="gcc make cmake pkg-config libcurl4-openssl-dev libjson-c-dev libyaml-dev libpcre2-dev libssl-dev librdkafka-dev libpq-dev"
PF_TEST_PKGS="libcmocka-dev python3 clang libclang-rt-14-dev postgresql kcat jq curl valgrind openssl tzdata"

pf_install_deps() { # pf_install_deps build|test
    local want="$PF_BUILD_PKGS"
    [ "${1:-build}" = test ] && want="$want $PF_TEST_PKGS"
    local missing=()
    for p in $want; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "== installing: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
