#!/usr/bin/env bash
# Enable the archive component that carries RHVoice (the kiosk's Russian voice), in an apt sources file
# of the kiosk's own: Debian's non-free (RHVoice's voice data have no training scripts), Ubuntu's
# universe and multiverse. Used by bootstrap.sh and install.sh; idempotent; never edits another file.
#   systemd/apt-components.sh [ROOT]      ROOT: write under this folder instead of / (tests)
set -euo pipefail
ROOT=${1:-}
OS_RELEASE=${OS_RELEASE:-$ROOT/etc/os-release}
[ -r "$OS_RELEASE" ] || { echo "apt-components: no $OS_RELEASE" >&2; exit 1; }
# shellcheck disable=SC1090
. "$OS_RELEASE"
dest=$ROOT/etc/apt/sources.list.d/avatar-kiosk-components.sources
case "${ID:-}" in
  debian)
    content="Types: deb
URIs: http://deb.debian.org/debian
Suites: ${VERSION_CODENAME:?}
Components: non-free
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" ;;
  ubuntu)
    content="Types: deb
URIs: http://archive.ubuntu.com/ubuntu
Suites: ${VERSION_CODENAME:?} ${VERSION_CODENAME}-updates
Components: universe multiverse
Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg" ;;
  *) echo "apt-components: ${ID:-this system} is neither Debian nor Ubuntu; install rhvoice-russian by hand" >&2; exit 1 ;;
esac
if [ -f "$dest" ] && [ "$(cat "$dest")" = "$content" ]; then exit 0; fi
mkdir -p "$(dirname "$dest")"
printf '%s\n' "$content" > "$dest"
echo "apt-components: wrote $dest"
