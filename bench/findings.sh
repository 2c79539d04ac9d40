#!/usr/bin/env bash
# Issue 15: every run behind bench/RESULTS_findings.md, on the finished proxy:tinyimagenet, in one resumable
# sequence (each study reuses its finished cells; a step with a .done marker is skipped). Logs, wall times and
# load averages: runs/findings/logs/. Run from the repository root:
#   bash bench/findings.sh [SHARED_DATA [STEP ...]]
# With STEP names only those run, so two lanes can share a 2-core box (each with OMP_NUM_THREADS=1), e.g.
#   OMP_NUM_THREADS=1 bash bench/findings.sh ../shared/data f1f5_kl f5_reference f1_margin_links f1_margin f6_params &
#   OMP_NUM_THREADS=1 bash bench/findings.sh ../shared/data f4_tecoa f4_mmcoa f6_eps_0.5 f6_eps_2 f6_eps_4 &
set -euo pipefail
DATA=${1:-../shared/data}; shift || true
ONLY=" $* "
MM=${MMROBUST:-mmrobust}
LOGS=runs/findings/logs; mkdir -p "$LOGS"
source "$(dirname "$0")/steps.sh"
M=proxy:tinyimagenet
# IID = CIFAR-10 (fine-tuning set, test split), OOD = Tiny-ImageNet val zero-shot; n = 500; PGD-10 at 1/255
EVAL=(-m $M --data-root "$DATA" -n 500 --eval-eps 1 -q)
TUNE=(-d cifar10 "${EVAL[@]}" --train-eps 1 --train-steps 3 --seeds 0,1,2 --ood-dataset tinyimagenet)

link_runs() {  # link_runs FROM TO: reuse FROM's pinned models and finished fine-tunes in the study folder TO
    mkdir -p "$2"; cp -al "$1/models" "$2/" 2>/dev/null || true
    for s in "$1"/seed-*/runs; do mkdir -p "$2/$(basename "$(dirname "$s")")"; cp -al "$s" "$2/$(basename "$(dirname "$s")")/" 2>/dev/null || true; done
}
# F2: image vs text attacks as the number of classes grows (OOD set, eval only; both text goals), and the eps study
step f2_kl $MM study classes -d tinyimagenet "${EVAL[@]}" --classes 2,10,50,200 --seeds 0,1,2 \
    --text-goal embedding-kl -o runs/findings/f2-kl
step f2_margin $MM study classes -d tinyimagenet "${EVAL[@]}" --classes 2,10,50,200 --seeds 0,1,2 \
    --text-goal zero-shot-margin -o runs/findings/f2-margin
step f2_eps $MM study eps -m $M -d cifar10 --data-root "$DATA" -n 500 --eps 0.5,1,2 --seeds 0,1,2 -q \
    -o runs/findings/f2-eps
# F3: clean and image-only fine-tuning (and TeCoA) against the model before fine-tuning
for method in clean tecoa; do
    step f3_$method $MM study params "${TUNE[@]}" --n-train 2048 --method $method --modes full,image \
        -o runs/findings/f3-$method
done
# F3 with the task-aware text goal: the same fine-tunes (linked), evaluated again
for method in clean tecoa; do
    step f3_${method}_margin_links link_runs runs/findings/f3-$method runs/findings/f3-$method-margin
    step f3_${method}_margin $MM study params "${TUNE[@]}" --n-train 2048 --method $method --modes full,image \
        --text-goal zero-shot-margin -o runs/findings/f3-$method-margin
done
# F1 and F5: MMCoA's two terms alone and together (F5 re-tabulates against the image-term row, all cells reused)
step f1f5_kl $MM study loss-ablation "${TUNE[@]}" --n-train 2048 --lambdas 1:0,0:1,0.5:0.5 \
    -o runs/findings/f1f5-kl
step f5_reference $MM study loss-ablation "${TUNE[@]}" --n-train 2048 --lambdas 1:0,0:1,0.5:0.5 \
    --reference "img 1 / txt 0" -o runs/findings/f1f5-kl
# F1 with the task-aware text goal: the same fine-tunes (hard links to f1f5-kl's pinned model and runs; a
# task-aware goal trains with the label-free one, so the runs are reused), evaluated again
step f1_margin_links link_runs runs/findings/f1f5-kl runs/findings/f1f5-margin
step f1_margin $MM study loss-ablation "${TUNE[@]}" --n-train 2048 --lambdas 1:0,0:1,0.5:0.5 \
    --text-goal zero-shot-margin -o runs/findings/f1f5-margin
# F4: training-set size (shots per class, and 2,048 images), MMCoA and TeCoA on the same images and seeds
for method in tecoa mmcoa; do
    step f4_$method $MM study train-size "${TUNE[@]}" --shots 1,4,16,64 --sizes 2048 --method $method \
        -o runs/findings/f4-$method
done
# F4 with the task-aware text goal: the same fine-tunes (linked), evaluated again
for method in tecoa mmcoa; do
    step f4_${method}_margin_links link_runs runs/findings/f4-$method runs/findings/f4-$method-margin
    step f4_${method}_margin $MM study train-size "${TUNE[@]}" --shots 1,4,16,64 --sizes 2048 --method $method \
        --text-goal zero-shot-margin -o runs/findings/f4-$method-margin
done
# F6: which parameters are fine-tuned (MMCoA), then the training perturbation's size (full fine-tuning)
step f6_params $MM study params "${TUNE[@]}" --n-train 2048 --modes full,image,text,last-k --last-k 4 \
    -o runs/findings/f6-params
for e in 0.5 2 4; do  # 1/255 is f6_params' `full` row
    step f6_eps_$e $MM study params "${TUNE[@]}" --n-train 2048 --modes full --train-eps $e \
        -o runs/findings/f6-train-eps-$e
done
# Gradient-masking checks (the studies skip them): three seed-0 fine-tunes of different kinds, CIFAR-10 test,
# the studies' attacks, with the benchmark's sanity checks on
step sanity $MM benchmark -m "ckpt:$(ls -d runs/findings/f1f5-kl/seed-0/runs/img=0.5_txt=0.5-*/final)" \
    -m "ckpt:$(ls -d runs/findings/f4-tecoa/seed-0/runs/n_train=2048-*/final)" \
    -m "ckpt:$(ls -d runs/findings/f6-params/seed-0/runs/train=text-*/final)" --datasets cifar10 \
    --data-root "$DATA" -n 500 --seed 0 --templates study --eps 1 --steps 10 -a pgd,embed-sub,sep -q \
    -o runs/findings/sanity
