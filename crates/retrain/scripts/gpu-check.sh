#!/usr/bin/env bash
# The GPU check of `extract --device cuda` and `retrain --device cuda` (one short run on a lent
# H100/H200, 16 cores, no internet; nothing is built there), from the repo root, with the CUDA
# build's binaries in $BIN (default .gpu/, gzipped or not; 15-20 MB each gzipped):
#   extract, retrain  `just build-cuda` (target-cuda/release/{extract,retrain})
#   device_bench      the retrain example of the same build (target-cuda/release/examples/)
#   jpeg_tree         the extract example of the same build (target-cuda/release/examples/)
# Each measurement runs beside PyTorch on the same GPU (python3 with torch + torchvision, when
# importable; PYTHON=... to pick another interpreter):
# 1. a synthetic JPEG tree in the ImageNet-LT layout (jpeg_tree: 6 000 images of 500x375);
# 2. file extraction with ResNet-50 and ResNeXt-50 32x4d at 224^2: `extract --dataset
#    imagenet-lt --device cuda --batch-size 32 --workers $(nproc)-1` vs torchvision +
#    DataLoader(num_workers=$(nproc)) in fp32 with cuDNN (scripts/torch_extract_files.py; both
#    forward the flipped view of val/test), end-to-end images/s and the GPU's busy fraction
#    (nvidia-smi utilization.gpu sampled every 100 ms during each run, mean over the run);
# 3. one --stage1 epoch of the CIFAR ResNet-34 (batch 64) on Fashion-MNIST as CIFAR-100
#    (scripts/fmnist_as_cifar.py; synthetic images when the IDX files are not on the machine),
#    CIFAR-100-LT IR=100 profile (10 847 images), vs scripts/torch_stage1_epoch.py;
# 4. the ImageNet-LT-scale synthetic bank (as `just synth-imagenet-scale`, CPU);
# 5. device_bench: one epoch of four heads vs pure GEMM, batch 512, on the GPU; then PyTorch's
#    own loop for the same LOS epoch (crates/retrain/scripts/torch_epoch.py);
# 6. Table 1 (12 methods x 3 seeds) at ImageNet-LT scale on the GPU: ImageNet-LT protocol
#    (batch 512, 10 epochs), then LOS alone at the CIFAR protocol (batch 64, 20 epochs), then
#    the zoo (1 seed, batch 512, 5 epochs);
# 7. every row (Table 1 + zoo) on the committed Fashion-MNIST bank, CPU engine vs GPU (same
#    numbers?);
# 8. the summary table (markdown): images/s, ratios, busy fractions -> $OUT/summary.md.
#
# Time: every step runs under `timeout`, cut to what is left of BUDGET seconds (default 510)
# for the whole script; a step that would start with too little left is skipped and says so.
# Output: $OUT (default /tmp/gpu-check) gets three files: summary.md, gpu-check.log (this
# console) and details.tar.gz (every step's log, the retrain tables, the banks' meta.json,
# the nvidia-smi samples). Scratch (the JPEG tree, the CIFAR set, banks, checkpoints, retrain
# output folders) goes to $WORK (default /tmp/gpu-check-work), removed at the start.
#
# Sizes: TREE_SIZES (jpeg_tree flags, default "--train 4000 --val 1000 --test 1000 --classes
# 1000"), S1_IR / S1_IMG_MAX (the stage-1 subset; S1_IR=1 is the whole 50 000-image set),
# FMNIST (the IDX folder, default /usr/share/datasets/fashion-mnist).
#
# DEVICE=cpu is the dry run on any machine: tiny sizes, no nvidia-smi, no device_bench nor
# torch_epoch.py (CUDA only); ltbench and PyTorch (if importable) on the CPU, one thread for
# PyTorch, --jobs 1 for retrain. E.g.
#   mkdir -p /tmp/bin && ln -sf $PWD/target/debug/{extract,retrain} $PWD/target/debug/examples/jpeg_tree /tmp/bin/
#   DEVICE=cpu BIN=/tmp/bin bash crates/retrain/scripts/gpu-check.sh
set -u
DEVICE=${DEVICE:-cuda}
case $DEVICE in cuda | cpu) ;; *) echo "DEVICE must be cuda or cpu, got $DEVICE"; exit 2 ;; esac
BIN=${BIN:-.gpu}
OUT=${OUT:-/tmp/gpu-check}
WORK=${WORK:-/tmp/gpu-check-work}
BUDGET=${BUDGET:-510}
PY=${PYTHON:-python3}
NPROC=$(nproc)
T0=$(date +%s)
mkdir -p "$OUT"
case $WORK in / | "$HOME" | "$PWD" | .) echo "WORK=$WORK: refusing to empty it"; exit 2 ;; esac
rm -rf "$WORK" && mkdir -p "$WORK/logs"
exec > >(tee "$OUT/gpu-check.log") 2>&1
TEE=$!
LOGS=$WORK/logs
ROWS=$WORK/summary-rows.md
: > "$ROWS"

for f in "$BIN"/*.gz; do [ -e "$f" ] && gunzip -f "$f"; done
for b in extract retrain device_bench jpeg_tree; do [ -f "$BIN/$b" ] && chmod +x "$BIN/$b"; done
have() { [ -x "$BIN/$1" ] || { echo "(no $BIN/$1: skipped)"; return 1; }; }
if [ "$DEVICE" = cuda ]; then
  SP=$($PY -c 'import site; print(site.getsitepackages()[0])' 2>/dev/null)
  export LD_LIBRARY_PATH=$(ls -d "$SP"/nvidia/*/lib "$SP"/nvidia/cu13/lib 2>/dev/null | paste -sd:):${LD_LIBRARY_PATH:-}
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:/usr/local/cuda/lib64
  for b in retrain extract jpeg_tree device_bench; do
    [ -x "$BIN/$b" ] || continue
    for lib in $(ldd "$BIN/$b" | awk '/not found/ {print $1}'); do
      d=$(find /opt /usr/local /usr/lib -name "$lib*" 2>/dev/null | head -n 1)
      [ -n "$d" ] && export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$(dirname "$d")
    done
  done
  for b in retrain extract; do [ -x "$BIN/$b" ] && ldd "$BIN/$b" | grep -E "not found|cublas|cudart|curand|libcuda" | sed "s|^|$b: |"; done
fi
echo "device: $DEVICE; cores: $NPROC; budget ${BUDGET}s; BIN=$BIN OUT=$OUT WORK=$WORK"
TORCH=0
if [ "$DEVICE" = cuda ]; then
  $PY -c "import torch, torchvision; assert torch.cuda.is_available()" 2>/dev/null && TORCH=1
else
  $PY -c "import torch, torchvision" 2>/dev/null && TORCH=1
fi
[ $TORCH = 1 ] && echo "PyTorch: $($PY -c 'import torch, torchvision; print(torch.__version__, torchvision.__version__)')" \
  || echo "PyTorch: not importable with $PY (or no CUDA): the PyTorch columns stay empty"

# t CAP LOG CMD...: CMD under `timeout` (CAP seconds, cut to what is left of BUDGET), its
# stdout + stderr appended to LOG; prints and logs "[S s, rc RC] CMD"; sets S and RC. A step
# with under 15 s left is skipped (RC 125).
t() {
  local cap=$1 log=$2
  shift 2
  local left=$((BUDGET - ($(date +%s) - T0) - 5))
  [ "$left" -lt "$cap" ] && cap=$left
  if [ "$cap" -lt 15 ]; then
    S=
    RC=125
    echo "[skipped: the ${BUDGET}s budget is spent] $*" | tee -a "$log" | cut -c1-200
    return 125
  fi
  local s0
  s0=$(date +%s.%N)
  timeout -k 5 "$cap" "$@" >> "$log" 2>&1
  RC=$?
  S=$(awk "BEGIN{printf \"%.2f\", $(date +%s.%N) - $s0}")
  [ $RC = 124 ] && echo "(timed out after $cap s)" >> "$log"
  echo "[$S s, rc $RC$([ $RC = 124 ] && echo ", TIMED OUT")] $*" | tee -a "$log" | cut -c1-200
  return $RC
}
# The GPU's busy fraction over a run: busy_start FILE ... busy_stop FILE (prints "63 %").
busy_start() {
  BUSY_PID=
  [ "$DEVICE" = cuda ] || return 0
  nvidia-smi -i 0 --query-gpu=utilization.gpu --format=csv,noheader,nounits -lms 100 > "$1" 2>/dev/null &
  BUSY_PID=$!
}
busy_stop() {
  if [ -z "${BUSY_PID:-}" ]; then echo "–"; return; fi
  kill "$BUSY_PID" 2>/dev/null
  wait "$BUSY_PID" 2>/dev/null
  awk '$1 ~ /^[0-9.]+$/ {s += $1; n++} END {if (n) printf "%.0f %% (%d samples)", s / n, n; else print "–"}' "$1"
}
rate() { grep -oE '[0-9.]+ images/s' "$1" 2>/dev/null | tail -n 1 | cut -d' ' -f1; }
ratio() { awk -v a="${1:-}" -v b="${2:-}" 'BEGIN {if (a != "" && b != "" && b + 0 > 0) printf "%.2f×", a / b; else print "–"}'; }
row() { echo "| $1 | $2 | $3 | $4 | $5 | $6 | $7 |" >> "$ROWS"; }
or_dash() { [ -n "${1:-}" ] && echo "$1${2:-}" || echo "–"; }

if [ "$DEVICE" = cuda ]; then
  (while sleep 0.5; do nvidia-smi -i 0 --query-gpu=memory.used --format=csv,noheader,nounits; done) > "$WORK/gpu-mem.txt" 2>/dev/null &
  MEM=$!
  TREE_SIZES=${TREE_SIZES:---train 4000 --val 1000 --test 1000 --classes 1000}
  S1_IR=${S1_IR:-100}
  S1_IMG_MAX=${S1_IMG_MAX:-500}
  CIFAR_SIZES=""
  TORCH_THREADS=""
  TORCH_WORKERS=$NPROC
  RJOBS=""
else
  MEM=
  TREE_SIZES=${TREE_SIZES:---train 16 --val 4 --test 4 --classes 4}
  S1_IR=${S1_IR:-1}
  S1_IMG_MAX=${S1_IMG_MAX:-1}
  CIFAR_SIZES="--train 1000 --test 200"
  TORCH_THREADS="--threads 1"
  TORCH_WORKERS=1
  RJOBS="--jobs 1"
fi
EX_WORKERS=$((NPROC > 1 ? NPROC - 1 : 1))

echo "== 1. synthetic ImageNet-LT-layout JPEG tree (500x375, q90)"
TREE=$WORK/jpeg-tree
TREE_OK=0
if have jpeg_tree; then
  t 60 "$LOGS/jpeg-tree.log" "$BIN"/jpeg_tree --out "$TREE" $TREE_SIZES --width 500 --height 375 --seed 0 && TREE_OK=1
  tail -n 2 "$LOGS/jpeg-tree.log" | head -n 1 | cut -c1-300
fi
NTREE=$(cat "$TREE"/ImageNet_LT_{train,val,test}.txt 2>/dev/null | wc -l)

echo "== 2. file extraction at 224^2, batch 32: ltbench vs PyTorch (DataLoader, $TORCH_WORKERS workers)"
EXW=""
WNOTE="ltbench --workers $EX_WORKERS"
if [ -x "$BIN/extract" ] && "$BIN"/extract --help 2>/dev/null | grep -q -- --workers; then
  EXW="--workers $EX_WORKERS"
else
  WNOTE="ltbench without --workers"
  echo "(this extract has no --workers flag: decoding runs on its default threads)"
fi
LISTS=$TREE/ImageNet_LT_train.txt,$TREE/ImageNet_LT_val.txt,$TREE/ImageNet_LT_test.txt
for arch in resnet50 resnext50-32x4d; do
  [ $TREE_OK = 1 ] && have extract || break
  L=$LOGS/extract-$arch.log
  busy_start "$WORK/busy-extract-$arch.txt"
  t 100 "$L" "$BIN"/extract --dataset imagenet-lt --root "$TREE" --lists "$TREE" --arch $arch --device $DEVICE \
    --batch-size 32 $EXW --out "$WORK/bank-$arch" --overwrite -q
  LS=$S
  LB=$(busy_stop "$WORK/busy-extract-$arch.txt")
  grep -E "^extract" "$L" | tail -n 2 | cut -c1-300
  LR=$(rate "$L")
  [ $RC = 0 ] || LR=
  mkdir -p "$WORK/meta" && cp "$WORK/bank-$arch/meta.json" "$WORK/meta/bank-$arch.json" 2>/dev/null
  rm -rf "$WORK/bank-$arch"
  TR= TB=– TS=
  if [ $TORCH = 1 ]; then
    P=$LOGS/torch-extract-$arch.log
    busy_start "$WORK/busy-torch-extract-$arch.txt"
    t 80 "$P" $PY crates/extract/scripts/torch_extract_files.py "$TREE" "$LISTS" $arch --batch 32 \
      --workers $TORCH_WORKERS --device $DEVICE $TORCH_THREADS
    TS=$S
    TB=$(busy_stop "$WORK/busy-torch-extract-$arch.txt")
    grep -E "^torch|Error" "$P" | tail -n 2 | cut -c1-300
    TR=$(rate "$P")
    [ $RC = 0 ] || TR=
  fi
  row "extract $arch 224², $NTREE JPEGs 500×375, batch 32 (images/s)" "$(or_dash "$LR")" "$(or_dash "$TR")" \
    "$(ratio "$LR" "$TR")" "$LB" "$TB" "process wall: ltbench $(or_dash "$LS" " s"), PyTorch $(or_dash "$TS" " s"); $WNOTE, PyTorch num_workers $TORCH_WORKERS"
done

echo "== 3. one stage-1 epoch, CIFAR ResNet-34, batch 64: ltbench vs PyTorch"
CIFAR=$WORK/cifar
t 60 "$LOGS/fmnist-as-cifar.log" python3 crates/extract/scripts/fmnist_as_cifar.py "${FMNIST:-/usr/share/datasets/fashion-mnist}" "$CIFAR" \
  --synthetic-if-missing $CIFAR_SIZES
CIFAR_RC=$RC
grep -E "^fmnist_as_cifar" "$LOGS/fmnist-as-cifar.log" | cut -c1-300
# rows of the LT subset (bank::profile::exponential_counts, K = 100), less a last batch of one
N1=$(awk -v m="$S1_IMG_MAX" -v ir="$S1_IR" 'BEGIN {for (c = 0; c < 100; c++) n += int(m * (1 / ir) ^ (c / 99)); if (n % 64 == 1) n--; print n}')
if [ $CIFAR_RC = 0 ] && have extract; then
  L=$LOGS/stage1-ltbench.log
  busy_start "$WORK/busy-stage1.txt"
  t 150 "$L" "$BIN"/extract --dataset cifar100-lt --root "$CIFAR" --ir $S1_IR --img-max $S1_IMG_MAX --arch resnet34-cifar \
    --stage1 --stage1-only --epochs 1 --checkpoint "$WORK/s1.safetensors" --out "$WORK/bank-s1" --device $DEVICE -q
  LS=$S
  LB=$(busy_stop "$WORK/busy-stage1.txt")
  grep -E "^stage1|^extract" "$L" | tail -n 3 | cut -c1-300
  ES=$(awk '/^stage1: epoch/ {s = $NF} END {sub(/s$/, "", s); print s}' "$L")
  LR=$([ $RC = 0 ] && [ -n "$ES" ] && awk -v n="$N1" -v s="$ES" 'BEGIN {if (s > 0) printf "%.1f", n / s}')
  TR= TB=–
  if [ $TORCH = 1 ]; then
    P=$LOGS/stage1-torch.log
    busy_start "$WORK/busy-stage1-torch.txt"
    t 60 "$P" $PY crates/extract/scripts/torch_stage1_epoch.py "$CIFAR" --ir $S1_IR --img-max $S1_IMG_MAX --classes 100 \
      --batch 64 --device $DEVICE $TORCH_THREADS
    TB=$(busy_stop "$WORK/busy-stage1-torch.txt")
    grep -E "^torch|Error" "$P" | tail -n 2 | cut -c1-300
    TR=$(rate "$P")
    [ $RC = 0 ] || TR=
  fi
  row "stage-1 epoch, ResNet-34 CIFAR, $N1 images (IR $S1_IR), batch 64 (images/s)" "$(or_dash "$LR")" "$(or_dash "$TR")" \
    "$(ratio "$LR" "$TR")" "$LB" "$TB" "ltbench: the epoch line ($(or_dash "$ES" " s")); the process (device start, test eval): $(or_dash "$LS" " s"); busy over the whole process"
fi
rm -f "$WORK"/s1.safetensors*

M=vanilla-fc,vanilla-cosine,lws,ldam,balanced-softmax,re-sampling,focal,class-balanced,maxnorm,tau-norm,logit-adjust,los
if [ "$DEVICE" = cuda ]; then
  BANK=features/synth-imagenet-lt-scale
  SYNTH="--classes 1000 --dim 2048 --img-max 550 --ir 110 --test-per-class 50 --latent-dim 256 --stage1-epochs 3"
  T1="--seeds 3 --epochs 10 --batch-size 512"
  LOS64="--seeds 1"
  ZOO="--seeds 1 --epochs 5 --batch-size 512"
  FM="--method all --seeds 3"
else
  BANK=$WORK/synth-tiny
  SYNTH="--classes 20 --dim 32 --img-max 40 --ir 10 --test-per-class 5 --latent-dim 8 --stage1-epochs 1"
  T1="--seeds 1 --epochs 2 --batch-size 64"
  LOS64="--seeds 1 --epochs 1"
  ZOO="--seeds 1 --epochs 1 --batch-size 64"
  FM="--method vanilla-fc,los --seeds 1"
fi
echo "== 4. synthetic ImageNet-LT-scale bank ($BANK, CPU)"
if have retrain; then
  if [ -f "$BANK/train.safetensors" ]; then
    echo "(present: kept)"
  else
    t 120 "$LOGS/synth.log" "$BIN"/retrain synth --out "$BANK" $SYNTH
    grep -vE '^\[' "$LOGS/synth.log" | tail -n 3 | cut -c1-200
  fi
fi

echo "== 5. device_bench and PyTorch's LOS epoch (GPU, batch 512)"
DB= PT=
if [ "$DEVICE" = cuda ] && [ -f "$BANK/train.safetensors" ]; then
  if have device_bench; then
    t 60 "$LOGS/device-bench.log" "$BIN"/device_bench $BANK cuda 512
    grep -vE '^\[' "$LOGS/device-bench.log" | tail -n 6
    DB=$(awk '/ los: one epoch/ {print $4}' "$LOGS/device-bench.log")
  fi
  if [ $TORCH = 1 ]; then
    t 60 "$LOGS/torch-epoch.log" $PY crates/retrain/scripts/torch_epoch.py $BANK
    grep -E "^pytorch|Error" "$LOGS/torch-epoch.log" | tail -n 3
    PT=$(sed -nE 's/.*tf32=False: ([0-9.]+) s.*/\1/p' "$LOGS/torch-epoch.log")
  fi
  row "LOS epoch at ImageNet-LT scale, batch 512, features on the GPU (s)" "$(or_dash "$DB" " s")" "$(or_dash "$PT" " s")" \
    "$(ratio "$PT" "$DB")" "–" "–" "device_bench (best of 3) vs torch_epoch.py fp32 (best of 3)"
else
  echo "(CUDA only: skipped)"
fi

echo "== 6a. ImageNet-LT-scale Table 1 on $DEVICE: 12 methods, $T1"
if have retrain && [ -f "$BANK/train.safetensors" ]; then
  busy_start "$WORK/busy-table1.txt"
  t 120 "$LOGS/table1-imnet.log" "$BIN"/retrain --bank $BANK --method $M $T1 --device $DEVICE $RJOBS --no-plots -q --out "$WORK/imnet"
  [ $RC != 0 ] && [ $RC != 124 ] && [ $RC != 125 ] && [ -z "$RJOBS" ] \
    && t 120 "$LOGS/table1-imnet.log" "$BIN"/retrain --bank $BANK --method $M $T1 --device $DEVICE --no-plots -q --out "$WORK/imnet" --jobs 1
  T1S=$([ $RC = 0 ] && echo "$S")
  T1B=$(busy_stop "$WORK/busy-table1.txt")
  grep -vE '^\[' "$LOGS/table1-imnet.log" | tail -n 16 | cut -c1-200
  row "retrain Table 1 at ImageNet-LT scale, 12 methods ($T1)" "$(or_dash "$T1S" " s wall")" "–" "–" "$T1B" "–" \
    "bank $BANK"
  echo "== 6b. LOS alone, batch 64, 20 epochs ($LOS64)"
  t 60 "$LOGS/los64-imnet.log" "$BIN"/retrain --bank $BANK --method los $LOS64 --device $DEVICE $RJOBS --no-plots -q --out "$WORK/imnet-los64"
  L64=$([ $RC = 0 ] && echo "$S")
  grep -vE '^\[' "$LOGS/los64-imnet.log" | tail -n 4 | cut -c1-200
  row "retrain LOS alone at ImageNet-LT scale, batch 64, 20 epochs ($LOS64)" "$(or_dash "$L64" " s wall")" "–" "–" "–" "–" ""
  echo "== 6c. the zoo at ImageNet-LT scale on $DEVICE ($ZOO)"
  t 90 "$LOGS/zoo-imnet.log" "$BIN"/retrain --bank $BANK --method zoo $ZOO --device $DEVICE $RJOBS --no-plots -q --out "$WORK/imnet-zoo"
  ZS=$([ $RC = 0 ] && echo "$S")
  grep -vE '^\[' "$LOGS/zoo-imnet.log" | tail -n 20 | cut -c1-200
  row "retrain zoo at ImageNet-LT scale ($ZOO)" "$(or_dash "$ZS" " s wall")" "–" "–" "–" "–" ""
fi

echo "== 7. Fashion-MNIST bank ($FM): CPU engine vs $DEVICE"
if have retrain; then
  t 60 "$LOGS/fmnist-cpu.log" "$BIN"/retrain $FM --no-plots -q $RJOBS --out "$WORK/fmnist-cpu"
  CPU_RC=$RC
  t 150 "$LOGS/fmnist-dev.log" "$BIN"/retrain $FM --no-plots -q $RJOBS --out "$WORK/fmnist-dev" --device $DEVICE
  DEV_RC=$RC
  FS=$([ $RC = 0 ] && echo "$S")
  strip() { grep -vE '^\[|^\(timed out' "$1"; }
  paste -d'|' <(strip "$LOGS/fmnist-cpu.log") <(strip "$LOGS/fmnist-dev.log") | head -n 40 | cut -c1-260
  if [ $CPU_RC = 0 ] && [ $DEV_RC = 0 ]; then
    cells() { grep -vE '^(\[|\(timed out|wrote |Top-1|retrain:)' "$1"; }
    ND=$(diff <(cells "$LOGS/fmnist-cpu.log") <(cells "$LOGS/fmnist-dev.log") | grep -c '^<')
    NL=$(cells "$LOGS/fmnist-cpu.log" | wc -l)
    SAME="$ND of $NL table lines differ"
  else
    SAME="not compared (rc cpu $CPU_RC, $DEVICE $DEV_RC)"
  fi
  row "retrain on the Fashion-MNIST bank ($FM), --device $DEVICE" "$(or_dash "$FS" " s wall")" "–" "–" "–" "–" \
    "CPU engine vs --device $DEVICE: $SAME"
fi

[ -n "$MEM" ] && kill "$MEM" 2>/dev/null
PEAK=$([ -s "$WORK/gpu-mem.txt" ] && sort -n "$WORK/gpu-mem.txt" | tail -n 1)
echo "== 8. summary -> $OUT/summary.md"
{
  echo "# GPU check, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  if [ "$DEVICE" = cuda ]; then
    echo "GPU: $(nvidia-smi -i 0 --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null); $NPROC cores; peak GPU memory used $(or_dash "$PEAK" " MiB")."
  else
    echo "DRY RUN on the CPU (DEVICE=cpu, tiny sizes): the numbers say nothing about speed. $NPROC cores."
  fi
  [ $TORCH = 1 ] && echo "PyTorch $($PY -c 'import torch, torchvision; print(torch.__version__ + ", torchvision " + torchvision.__version__)' 2>/dev/null)." \
    || echo "PyTorch: not importable ($PY)."
  echo
  echo "| what | ltbench | PyTorch | ltbench ÷ PyTorch speed | GPU busy, ltbench | GPU busy, PyTorch | notes |"
  echo "|---|---|---|---|---|---|---|"
  cat "$ROWS"
  echo
  echo "images/s: ltbench's own closing line (lists read to bank written: CUDA start and weights"
  echo "included); PyTorch's from the first loader to the last feature on the host (model built"
  echo "before). Both forward the flipped view of val/test too. GPU busy: mean of nvidia-smi's"
  echo "utilization.gpu, sampled every 100 ms over the whole process. Wall time of the script:"
  echo "$(($(date +%s) - T0)) s of a ${BUDGET} s budget."
} > "$OUT/summary.md"
cat "$OUT/summary.md"
(cd "$WORK" && find . -type f \( -name '*.log' -o -name '*.txt' -o -name '*.md' -o -name '*.csv' -o -name '*.json' \) \
  -size -4M -not -path './jpeg-tree/*' -not -path './cifar/*' -print0 | tar -czf "$OUT/details.tar.gz" --null -T -)
echo "details: $OUT/details.tar.gz ($(du -k "$OUT/details.tar.gz" | cut -f1) KB); script wall $(($(date +%s) - T0)) s"
exec >&- 2>&-
wait "$TEE" 2>/dev/null
