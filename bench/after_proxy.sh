#!/usr/bin/env bash
# The done-when runs of issues 11-14 that need the finished proxy:tinyimagenet, in one resumable sequence
# (every step skips or resumes what is already written). Logs: runs/after_proxy/*.log, with wall times and
# load averages. Run from the repository root:  bash bench/after_proxy.sh [SHARED_DATA [STEP ...]]
# (with STEP names, only those steps run: e.g. run the timing-sensitive `autoattack` alone, the rest in lanes)
set -euo pipefail
DATA=${1:-../shared/data}; shift || true
ONLY=" $* "
MM=${MMROBUST:-mmrobust}; PY=${PYTHON:-python}
LOGS=runs/after_proxy; mkdir -p "$LOGS"
source "$(dirname "$0")/steps.sh"
# issue 11: the benchmark done-when (first run, then the reuse run)
[ -d runs/wds_cifar10 ] || $PY bench/make_wds_fixture.py -o runs/wds_cifar10 --max-count 400
step bench11 $MM benchmark --model proxy:tinyimagenet --datasets cifar10,tinyimagenet,wds:runs/wds_cifar10 \
    --data-root "$DATA" -n 200 --preset quick -q -o runs/bench
step bench11_reuse $MM benchmark --model proxy:tinyimagenet --datasets cifar10,tinyimagenet,wds:runs/wds_cifar10 \
    --data-root "$DATA" -n 200 --preset quick -q -o runs/bench
# issue 14: AutoAttack side by side (200 CIFAR-10 test images, 0.5/255, 100 iterations, 3 interleaved repeats)
step autoattack $PY bench/bench_autoattack.py --model proxy:tinyimagenet --data-root "$DATA" --n 200 --eps 0.5 \
    --steps 100 --repeats 3 --json runs/after_proxy/autoattack.json --out runs/after_proxy/autoattack.md
# issue 12: class-count check on real images, without and with --protect-classnames
step classcount $PY bench/class_count_text_attack.py --mode real --model proxy:tinyimagenet --data-root "$DATA" --n-images 1000
step classcount_protected $PY bench/class_count_text_attack.py --mode real --model proxy:tinyimagenet --data-root "$DATA" \
    --n-images 1000 --protect-classnames
# issue 13: retrieval done-when on the Tiny-ImageNet WordNet-caption fixture, transfer between two models
step retrieval env MMROBUST="$MM" bash bench/retrieval_tinyimagenet.sh runs/retrieval_tin "$DATA"
# issue 14: precision policy on proxy:tinyimagenet (200 CIFAR-10); the ViT-B-32 half runs on its own (no proxy needed)
step precision $PY bench/bench_precision.py --models proxy --proxy proxy:tinyimagenet --proxy-dataset cifar10 \
    --data-root "$DATA" --n-proxy 200 --n-vit 8 --eps 1 --steps 10 --threads 1 --out runs/after_proxy/precision.md
# issue 15, F2 (eval only, resumable per cell): text vs image attacks as the number of classes grows, on the OOD set
step f2_kl $MM study classes -m proxy:tinyimagenet -d tinyimagenet --data-root "$DATA" -n 500 --eval-eps 1 \
    --classes 2,10,50,200 --seeds 0,1,2 --text-goal embedding-kl -q -o runs/findings/f2-kl
