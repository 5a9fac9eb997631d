#!/usr/bin/env bash
# Build a CUDA_HOME that `cargo build --features cuda` can link against on a machine without a
# GPU (shared/cuda-build.md): PyPI's CUDA 13.0.2 toolkit in a venv, unversioned .so links, and a
# link stub libcuda.so defining every cu* symbol cudarc declares.
#   usage: crates/extract/scripts/cuda-tree.sh [DIR]      (default ~/.cache/ltbench-cuda)
# Then: export CUDA_HOME=DIR/tree && just build-cuda
set -euo pipefail
DIR=${1:-$HOME/.cache/ltbench-cuda}
mkdir -p "$DIR"
[ -x "$DIR/venv/bin/pip" ] || python3 -m venv "$DIR/venv"
"$DIR/venv/bin/pip" install -q "cuda-toolkit[nvcc,nvvm,crt,cudart,cccl,cublas,curand,nvrtc]==13.0.2"
C=$(ls -d "$DIR"/venv/lib/python3*/site-packages/nvidia/cu13)
T=$DIR/tree
rm -rf "$T"; mkdir -p "$T/lib64/stubs"
ln -s "$C/bin" "$T/bin"; ln -s "$C/include" "$T/include"; ln -s "$C/nvvm" "$T/nvvm"
for f in "$C"/lib/*.so.* "$C"/lib/*.a; do
  b=$(basename "$f"); ln -sf "$f" "$T/lib64/$b"
  case "$b" in *.so.*) u=${b%%.so*}.so; [ -e "$T/lib64/$u" ] || ln -s "$f" "$T/lib64/$u";; esac
done
cargo fetch >/dev/null   # cudarc's sources, for the symbol list
S=$(ls -d "$HOME"/.cargo/registry/src/*/cudarc-0.19.* | tail -n 1)
grep -oE "fn cu[A-Za-z0-9_]+\(" "$S/src/driver/sys/mod.rs" | sed 's/fn //; s/(//' | sort -u \
  | awk '{print "int "$1"(void){return 34;}"}' > "$DIR/libcuda-stub.c"
gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$T/lib64/stubs/libcuda.so" "$DIR/libcuda-stub.c"
ln -sf libcuda.so "$T/lib64/stubs/libcuda.so.1"
"$T/bin/nvcc" --version | tail -n 1
echo "CUDA_HOME=$T"
