#!/usr/bin/env bash
# The GPU check of `retrain --device cuda` (one short run on a lent H100/H200), from the repo
# root, with the CUDA build's binaries in $BIN (default .gpu/, gzipped or not):
#   retrain      `just build-cuda` (target-cuda/release/retrain)
#   device_bench the example of the same build (target-cuda/release/examples/device_bench)
# (the files may be gzipped; they are 50-70 MB each, ~15 MB gzipped)
# 1. the ImageNet-LT-scale synthetic bank (as `just synth-imagenet-scale`, CPU);
# 2. device_bench: one epoch of four heads vs pure GEMM, batch 512, on the GPU;
# 3. PyTorch's own loop for the same LOS epoch (reference, when python3 has torch);
# 4. every row (Table 1 + zoo) on the committed Fashion-MNIST bank, CPU engine vs GPU (same
#    numbers?);
# 5. Table 1 (12 methods x 3 seeds) at ImageNet-LT scale on the GPU: ImageNet-LT protocol
#    (batch 512, 10 epochs), then LOS alone at the CIFAR protocol (batch 64, 20 epochs), then
#    the zoo (1 seed, batch 512, 5 epochs).
# Output under ${OUT:-/tmp/gpu-check}.
set -u
BIN=${BIN:-.gpu}
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
for f in "$BIN"/*.gz; do [ -e "$f" ] && gunzip -f "$f"; done
chmod +x "$BIN"/retrain "$BIN"/device_bench
SP=$(python3 -c 'import site; print(site.getsitepackages()[0])' 2>/dev/null)
export LD_LIBRARY_PATH=$(ls -d "$SP"/nvidia/*/lib "$SP"/nvidia/cu13/lib 2>/dev/null | paste -sd:):${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
echo "cores: $(nproc)"
export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:/usr/local/cuda/lib64
for lib in $(ldd "$BIN"/retrain | awk '/not found/ {print $1}'); do
  d=$(find /opt /usr/local /usr/lib -name "$lib*" 2>/dev/null | head -n 1)
  [ -n "$d" ] && export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$(dirname "$d")
done
ldd "$BIN"/retrain | grep -E "not found|cublas|cudart|curand|libcuda" || true
t() { local s=$(date +%s.%N); "$@"; local rc=$?; echo "[$(awk "BEGIN{printf \"%.2f\", $(date +%s.%N) - $s}") s, rc $rc] $*" | cut -c1-200; return $rc; }
(while sleep 0.5; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits; done) > "$OUT/gpu-mem.txt" 2>/dev/null &
MEM=$!
BANK=features/synth-imagenet-lt-scale
echo "== 1. synthetic ImageNet-LT-scale bank"
t "$BIN"/retrain synth --out $BANK --classes 1000 --dim 2048 --img-max 550 --ir 110 --test-per-class 50 --latent-dim 256 --stage1-epochs 3 2>&1 | tail -n 2
echo "== 2. device_bench (GPU)"
t timeout 150 "$BIN"/device_bench $BANK cuda 512
echo "== 3. PyTorch reference loop (LOS, batch 512, one epoch)"
timeout 90 python3 crates/retrain/scripts/torch_epoch.py $BANK 2>&1 | tail -n 3
echo "== 4. Fashion-MNIST, every row: CPU engine vs GPU"
t "$BIN"/retrain --method all --seeds 3 --no-plots -q --out "$OUT/fmnist-cpu" > "$OUT/fmnist-cpu.txt"
t "$BIN"/retrain --method all --seeds 3 --no-plots -q --out "$OUT/fmnist-cuda" --device cuda > "$OUT/fmnist-cuda.txt"
paste -d'|' "$OUT/fmnist-cpu.txt" "$OUT/fmnist-cuda.txt" | head -n 40 | cut -c1-260
M=vanilla-fc,vanilla-cosine,lws,ldam,balanced-softmax,re-sampling,focal,class-balanced,maxnorm,tau-norm,logit-adjust,los
echo "== 5a. ImageNet-LT-scale Table 1 on the GPU: 12 methods x 3 seeds, batch 512, 10 epochs"
t "$BIN"/retrain --bank $BANK --method $M --seeds 3 --epochs 10 --batch-size 512 --device cuda --no-plots -q --out "$OUT/imnet" \
  || t "$BIN"/retrain --bank $BANK --method $M --seeds 3 --epochs 10 --batch-size 512 --device cuda --no-plots -q --out "$OUT/imnet" --jobs 1
echo "== 5b. LOS alone, batch 64, 20 epochs, 1 seed"
t timeout 120 "$BIN"/retrain --bank $BANK --method los --seeds 1 --device cuda --no-plots -q --out "$OUT/imnet-los64" | tail -n 4
echo "== 5c. the zoo at ImageNet-LT scale on the GPU: 1 seed, batch 512, 5 epochs"
t timeout 150 "$BIN"/retrain --bank $BANK --method zoo --seeds 1 --epochs 5 --batch-size 512 --device cuda --no-plots -q --out "$OUT/imnet-zoo" | tail -n 20
kill $MEM 2>/dev/null
echo "peak GPU memory used (MiB): $(sort -n "$OUT/gpu-mem.txt" | tail -n 1)"
