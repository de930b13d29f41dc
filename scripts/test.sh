#!/usr/bin/env bash
# Installs what the test suite needs (Debian 12 packages), then runs it.
#
# use: ./scripts/test.sh                 # install what is missing, run every test
# use: ./scripts/test.sh --deps-only     # only install
# use: ./scripts/test.sh fixtures        # extra arguments go to `cargo test`
set -euo pipefail
cd "$(dirname "$0")/.."

# C toolchains for fixtures: the host's, i686 (ELF32), aarch64, and two big-endian targets.
# Debian's gcc-multilib conflicts with its cross compilers, so i686 comes as a cross compiler.
# Each cross compiler only recommends its C library, and recommends are not installed.
# g++: libfuzzer-sys compiles libFuzzer's C++ runtime (scripts/fuzz.sh).
packages=(
  gcc g++ libc6-dev
  gcc-i686-linux-gnu gcc-aarch64-linux-gnu gcc-s390x-linux-gnu gcc-powerpc-linux-gnu
  libc6-dev-i386-cross libc6-dev-arm64-cross libc6-dev-s390x-cross libc6-dev-powerpc-cross
  qemu-user elfutils strace shellcheck patchelf nix-bin python3-venv tmux
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "test.sh: installing ${missing[*]}" >&2
  sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "${1:-}" = --deps-only ]; then
  exit 0
fi
# --show-output: the corpus and fixture tests print their tallies ("N files compared, …").
case " $* " in
  *" -- "*) exec cargo test --locked "$@" ;;
  *) exec cargo test --locked "$@" -- --show-output ;;
esac
