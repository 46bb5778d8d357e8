# Native builds made at install time — sourced by bootstrap.sh (dev/CI) and systemd/install.sh (the box).
#
# One build must run on every x86-64 CPU a box, a developer or CI may have. llama-cpp-python's
# default build compiles llama.cpp with -march=native: made on a Xeon with AVX-512 and AMX, it
# segfaults in llama_decode on that same Xeon (the AMX path) and raises SIGILL on any CPU without
# those instructions. So the CPU code is built for a fixed baseline: AVX2 + FMA + F16C (every x86-64
# CPU since Haswell, 2013, and AMD since Zen), no AVX-512, no AMX, not native.
#
# ggml's alternative, one library per CPU generation picked at run time (GGML_BACKEND_DL +
# GGML_CPU_ALL_VARIANTS), was measured against this baseline here (see models/README.md, "Native
# builds"): on an AMX machine it picks the sapphirerapids variant, i.e. the very code that crashed.
#
# The box adds CUDA (GGML_CUDA) for the RTX 3060; its CPU part stays the same baseline.

LLAMA_CPP_VERSION=0.3.36
LLAMA_CMAKE_ARGS_CPU="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
-DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DLLAVA_BUILD=OFF"
# sm_86 is the RTX 3060 (Ampere); PTX for newer cards is added by llama.cpp itself.
LLAMA_CMAKE_ARGS_CUDA="$LLAMA_CMAKE_ARGS_CPU -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=86"

# llama_wheel PIP CMAKE_ARGS -> prints the path of a llama-cpp-python wheel built with exactly those
# flags. Built wheels are kept per flag set (pip's own wheel cache keys on the version only, so it would
# hand back a wheel built with other flags), under $AVATAR_KIOSK_WHEELS or ~/.cache/avatar-kiosk/wheels.
llama_wheel() {
  local pip=$1 args=$2 key dir
  key=$(printf '%s %s' "$LLAMA_CPP_VERSION" "$args" | sha256sum | cut -c1-12)
  dir=${AVATAR_KIOSK_WHEELS:-${XDG_CACHE_HOME:-$HOME/.cache}/avatar-kiosk/wheels}/llama-cpp-python-$LLAMA_CPP_VERSION-$key
  if ! compgen -G "$dir/llama_cpp_python-*.whl" >/dev/null; then
    echo "building llama-cpp-python $LLAMA_CPP_VERSION for any x86-64 CPU (AVX2 baseline; ~3 min, once)" >&2
    mkdir -p "$dir.tmp"
    CMAKE_ARGS="$args" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
      "$pip" wheel -q --no-deps --no-cache-dir --no-binary llama-cpp-python -w "$dir.tmp" \
      "llama-cpp-python==$LLAMA_CPP_VERSION" >&2
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
    printf '%s\n' "$args" > "$dir/CMAKE_ARGS"
  fi
  compgen -G "$dir/llama_cpp_python-*.whl" | head -n 1
}
