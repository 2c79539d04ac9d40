#!/usr/bin/env bash
# Issue 21, measured effect of the released training code: F1/F5 (MMCoA's image term alone and MMCoA) trained
# with the corrected `mmcoa` and with `mmcoa-released`, same images, seeds and budget as bench/findings.sh's
# f1f5 step; pair them with  python bench/findings_tables.py runs/released/f1f5-released --versus runs/released/f1f5-corrected
# Usage: OMP_NUM_THREADS=1 bash bench/released_effect.sh [SHARED_DATA [SEEDS [METHOD...]]]  (resumable; lanes: one METHOD each)
set -euo pipefail
DATA=${1:-../shared/data}; SEEDS=${2:-0,1,2}; shift 2 || true
METHODS=${*:-mmcoa mmcoa-released}
MM=${MMROBUST:-mmrobust}
M=proxy:tinyimagenet
for method in $METHODS; do
    name=$([ "$method" = mmcoa ] && echo corrected || echo released)
    start=$(date +%s)
    $MM study loss-ablation -d cifar10 -m $M --data-root "$DATA" -n 500 --eval-eps 1 -q --train-eps 1 \
        --train-steps 3 --seeds "$SEEDS" --ood-dataset tinyimagenet --n-train 2048 --lambdas 1:0,0.5:0.5 \
        --method "$method" -o "runs/released/f1f5-$name"
    echo "$method seeds=$SEEDS wall_s=$(( $(date +%s) - start )) load=$(cut -d' ' -f1-3 /proc/loadavg)" >> runs/released/times.txt
done
