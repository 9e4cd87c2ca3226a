#!/usr/bin/env bash
# Builds llama.cpp's reference tools from the llama.cpp that the llama-cpp-python 0.3.36 source
# package on PyPI vendors (the one llama.cpp version every tools/ script uses), CPU only, Release,
# into <repo>/.llama.cpp/ (git-ignored; nothing of llama.cpp is ever committed):
#   .llama.cpp/bin/llama-perplexity, llama-quantize, llama-imatrix, llama-tokenize, llama-bench,
#   llama-debug                      (symlinks into .llama.cpp/build/bin)
#   .llama.cpp/bin/convert_hf_to_gguf (runs the vendored convert_hf_to_gguf.py with .venv-ref's
#                                      Python and the vendored gguf-py, not the gguf on PyPI)
#   .llama.cpp/llama.cpp/            (the vendored source tree: convert_hf_to_gguf.py, gguf-py/)
#   .llama.cpp/lib/logflush.so       (LD_PRELOAD it so the tools' last log lines are not lost)
# Idempotent: when the stamp matches it only prints where the tools are (well under a second).
# Needs cmake and a C++ compiler (installed with apt-get when missing and running as root) and
# network access to PyPI on the first run (about 77 MB). The build takes a few minutes on 2 cores.
# Environment: JOBS (default 2), PYTHON_REF (default <repo>/.venv-ref/bin/python, made by
# tools/setup_reference.sh; used for pip download and the converter), LLAMA_CPP_DIR (default
# <repo>/.llama.cpp).
set -euo pipefail
ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
DIR="${LLAMA_CPP_DIR:-$ROOT/.llama.cpp}"
VERSION=0.3.36
JOBS="${JOBS:-2}"
PY="${PYTHON_REF:-$ROOT/.venv-ref/bin/python}"
TARGETS=(llama-perplexity llama-quantize llama-imatrix llama-tokenize llama-bench llama-debug)
STAMP="$DIR/.built"
# CPU features: this machine's, named explicitly (GGML_NATIVE=OFF), AMX always off: in a VM that
# advertises AMX without enabling its register state (a Firecracker guest here) ggml's AMX kernels
# die with SIGILL (tilezero) the first time a Q8_0 matrix is multiplied.
feat=()
flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
has() { case "$flags" in *" $1 "*) return 0;; *) return 1;; esac; }
for pair in sse4_2:SSE42 avx:AVX avx2:AVX2 avx_vnni:AVX_VNNI fma:FMA f16c:F16C bmi2:BMI2 \
            avx512f:AVX512 avx512vbmi:AVX512_VBMI avx512_vnni:AVX512_VNNI avx512_bf16:AVX512_BF16; do
    if has "${pair%%:*}"; then feat+=("-DGGML_${pair#*:}=ON"); else feat+=("-DGGML_${pair#*:}=OFF"); fi
done
feat+=(-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF)
want="llama-cpp-python==$VERSION ${TARGETS[*]} Release CPU ${feat[*]}"

ok=1
for t in "${TARGETS[@]}"; do [ -x "$DIR/bin/$t" ] || ok=0; done
[ -f "$DIR/lib/logflush.so" ] || ok=0
if [ "$ok" = 1 ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$want" ]; then
    echo "build_llama_cpp: up to date in $DIR/bin ($(cat "$DIR/llama.cpp.version" 2>/dev/null))"
    exit 0
fi

need=()
command -v cmake >/dev/null || need+=(cmake)
command -v g++ >/dev/null || need+=(build-essential)
if [ "${#need[@]}" -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "build_llama_cpp: installing ${need[*]} with apt-get"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null \
            || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null; }
    else
        echo "build_llama_cpp: missing ${need[*]}; install them (apt-get install ${need[*]}) and run again" >&2
        exit 1
    fi
fi
if [ ! -x "$PY" ]; then
    echo "build_llama_cpp: $PY not found; run tools/setup_reference.sh first (or set PYTHON_REF)" >&2
    exit 1
fi

mkdir -p "$DIR/src" "$DIR/bin"
SDIST="$DIR/src/llama_cpp_python-$VERSION.tar.gz"
if [ ! -s "$SDIST" ]; then
    echo "build_llama_cpp: downloading llama-cpp-python==$VERSION (source package) from PyPI"
    # --no-binary for this one package only: the build backend's own dependencies may come as wheels.
    "$PY" -m pip download -q --no-deps --no-binary llama-cpp-python "llama-cpp-python==$VERSION" -d "$DIR/src"
fi
SRC="$DIR/llama.cpp"
if [ ! -f "$SRC/CMakeLists.txt" ]; then
    echo "build_llama_cpp: extracting the vendored llama.cpp"
    rm -rf "$SRC" "$DIR/src/llama_cpp_python-$VERSION"
    tar -xzf "$SDIST" -C "$DIR/src" "llama_cpp_python-$VERSION/vendor/llama.cpp"
    mv "$DIR/src/llama_cpp_python-$VERSION/vendor/llama.cpp" "$SRC"
    rm -rf "$DIR/src/llama_cpp_python-$VERSION"
fi
# llama.cpp's build number and commit come from git, absent in the sdist: name the sdist instead.
echo "llama.cpp vendored by llama-cpp-python $VERSION (sdist sha256 $(sha256sum "$SDIST" | cut -c1-16))" >"$DIR/llama.cpp.version"

start=$(date +%s)
cmake -S "$SRC" -B "$DIR/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
    -DGGML_NATIVE=OFF "${feat[@]}" -DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF \
    -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_EXAMPLES=ON -DLLAMA_BUILD_TOOLS=ON >"$DIR/cmake.log" 2>&1 \
    || { tail -n 30 "$DIR/cmake.log" >&2; echo "build_llama_cpp: cmake configure failed (log: $DIR/cmake.log)" >&2; exit 1; }
cmake --build "$DIR/build" --config Release -j "$JOBS" --target "${TARGETS[@]}" >"$DIR/build.log" 2>&1 \
    || { tail -n 30 "$DIR/build.log" >&2; echo "build_llama_cpp: build failed (log: $DIR/build.log)" >&2; exit 1; }
for t in "${TARGETS[@]}"; do
    [ -x "$DIR/build/bin/$t" ] || { echo "build_llama_cpp: $t was not built (log: $DIR/build.log)" >&2; exit 1; }
    ln -sfn "../build/bin/$t" "$DIR/bin/$t"
done
# llama.cpp's logger is a worker thread that the tools never join (llama.cpp issue 22142: the logger
# is leaked on purpose), so on a busy machine the last lines — llama-perplexity's final estimate and
# KLD statistics, the perf counters — can be lost at exit. logflush.so, LD_PRELOADed by
# tools/llama_cpp_reference.py, gives that thread 1.5 s at exit (our code, not llama.cpp's).
mkdir -p "$DIR/lib"
printf '%s\n' '#include <unistd.h>' \
    '__attribute__((destructor)) static void quantize_logflush(void) { usleep(1500000); }' >"$DIR/lib/logflush.c"
cc -shared -fPIC -O2 -o "$DIR/lib/logflush.so" "$DIR/lib/logflush.c"
cat >"$DIR/bin/convert_hf_to_gguf" <<EOF
#!/usr/bin/env bash
# llama.cpp's own converter (vendored by llama-cpp-python $VERSION) with its own gguf-py.
# Paths relative to this script, so the tree can be moved (.llama.cpp/bin/ → .llama.cpp/llama.cpp/).
SRC="\$(cd -- "\$(dirname -- "\${BASH_SOURCE[0]}")/../llama.cpp" && pwd -P)"
export PYTHONPATH="\$SRC/gguf-py\${PYTHONPATH:+:\$PYTHONPATH}"
unset NO_LOCAL_GGUF
exec "$PY" "\$SRC/convert_hf_to_gguf.py" "\$@"
EOF
chmod +x "$DIR/bin/convert_hf_to_gguf"
echo "$want" >"$STAMP"
echo "build_llama_cpp: built ${TARGETS[*]} in $(( $(date +%s) - start ))s -> $DIR/bin"
