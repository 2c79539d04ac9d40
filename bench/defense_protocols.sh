#!/usr/bin/env bash
# Issue 24, deliverable 5: every defense fine-tuned under one budget (same data, same seeds), then every
# fine-tune and the un-fine-tuned model scored under several evaluation protocols on the same images
# (`mmrobust benchmark --preset tecoa,robustvlm,tga-zsr`), one benchmark folder per training seed.
# Resumable: a fine-tune is skipped when its final/ exists (an interrupted one resumes from its checkpoint),
# a benchmark step when its .done marker exists (an interrupted benchmark reuses its finished cells).
# Wall times and load averages: $OUT/logs/times.txt; the markdown: bench/defense_protocols_table.py.
#
#   bash bench/defense_protocols.sh [DATA_ROOT [SEEDS [MODEL [DATASET]]]]
#   defaults:                        ""          0,1,2   proxy:digits  digits
# Environment knobs (defaults = the CPU run in bench/RESULTS_defense.md §4):
#   N=200 (evaluation images)  EPS=16 (every protocol's L-inf radius, K/255; "preset" = each preset's own)
#   TRAIN_EPS=16 TRAIN_STEPS=5 EPOCHS=1 N_TRAIN=1024 LR=1e-4   METHODS="clean tecoa ..."   MM=mmrobust
#   OUT=runs/defense_protocols/<model>  (e.g. MODEL=proxy:tinyimagenet DATASET=cifar10 OOD=tinyimagenet)
#   OOD="" (comma list of zero-shot datasets added to --datasets; none exists offline for digits)
set -uo pipefail
DATA=${1:-}; SEEDS=${2:-0,1,2}; MODEL=${3:-proxy:digits}; DATASET=${4:-digits}
N=${N:-200}; EPS=${EPS:-16}; TRAIN_EPS=${TRAIN_EPS:-16}; TRAIN_STEPS=${TRAIN_STEPS:-5}
EPOCHS=${EPOCHS:-1}; N_TRAIN=${N_TRAIN:-1024}; LR=${LR:-1e-4}; OOD=${OOD:-}
METHODS=${METHODS:-"clean tecoa text-at fare pmg-aft mmcoa tga-zsr leaf leaf-fare"}
PRESETS=${PRESETS:-tecoa,robustvlm,tga-zsr}
MM=${MM:-mmrobust}
OUT=${OUT:-runs/defense_protocols/${MODEL//[:\/]/-}}
LOGS=$OUT/logs; mkdir -p "$LOGS"
ROOT=(); [ -n "$DATA" ] && ROOT=(--data-root "$DATA")
EPSFLAG=(); [ "$EPS" != preset ] && EPSFLAG=(--eps "$EPS")
DATASETS=$DATASET${OOD:+,$OOD}

step() {  # step NAME command...: run once (NAME.done), log wall time and load; a failure is logged, not fatal
    local name=$1; shift
    [ -f "$LOGS/$name.done" ] && { echo "skip $name (done)"; return 0; }
    echo "== $name  start $(date -u +%H:%M:%S)  load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$LOGS/times.txt"
    local t0=$SECONDS rc=0
    "$@" > "$LOGS/$name.log" 2>&1 || rc=$?
    echo "== $name  $([ $rc = 0 ] && echo done || echo "FAILED rc=$rc") in $((SECONDS - t0)) s  load $(cut -d' ' -f1-3 /proc/loadavg)" \
        | tee -a "$LOGS/times.txt"
    [ $rc = 0 ] && touch "$LOGS/$name.done"
    return 0
}

train() {  # train SEED METHOD: skipped when final/ exists; resumes an interrupted run
    local dir=$OUT/seed-$1/$2 resume=()
    [ -d "$dir/final" ] && { echo "skip train $2 seed $1 (final exists)"; return 0; }
    [ -n "$(ls -A "$dir/checkpoints" 2>/dev/null)" ] && resume=(--resume)
    step "train_s$1_$2" $MM train -m "$MODEL" -d "$DATASET" "${ROOT[@]}" --method "$2" --seed "$1" \
        --epochs "$EPOCHS" --n-train "$N_TRAIN" --eps "$TRAIN_EPS" --steps "$TRAIN_STEPS" --lr "$LR" \
        --n-eval 200 -q -o "$dir" "${resume[@]}"
}

bench() {  # bench FOLDER NAME MODEL...: the protocols on the same images (evaluation seed 0 for every folder)
    local folder=$1 name=$2; shift 2
    local models=(); for m in "$@"; do models+=(-m "$m"); done
    step "$name" $MM benchmark "${models[@]}" --datasets "$DATASETS" --iid "$DATASET" "${ROOT[@]}" \
        --preset "$PRESETS" "${EPSFLAG[@]}" -n "$N" --seed 0 -q -o "$folder"
}

for seed in ${SEEDS//,/ }; do
    folder=$OUT/bench-seed$seed
    # the un-fine-tuned model first (its cells do not depend on the seed: linked from seed 0's folder)
    if [ "$seed" != "${SEEDS%%,*}" ] && [ -d "$OUT/bench-seed${SEEDS%%,*}/cells" ]; then
        mkdir -p "$folder/cells"; cp -l "$OUT/bench-seed${SEEDS%%,*}"/cells/${MODEL//[:\/]/-}__* "$folder/cells/" 2>/dev/null
    fi
    bench "$folder" "bench_s${seed}_base" "$MODEL"
    for method in $METHODS; do train "$seed" "$method"; done
    # one cell set per fine-tune (own wall time), then the table over all of them: TeCoA first (the reference
    # of the paired differences), the un-fine-tuned model last
    specs=()
    for method in tecoa $METHODS; do
        [ "$method" = tecoa ] && [ ${#specs[@]} -gt 0 ] && continue
        [ -d "$OUT/seed-$seed/$method/final" ] || continue
        spec=ckpt:$OUT/seed-$seed/$method/final
        bench "$folder" "bench_s${seed}_$method" "$spec"
        specs+=("$spec")
    done
    rm -f "$LOGS/bench_s${seed}_table.done"  # the table step is cheap (every cell reused): always rewrite it
    bench "$folder" "bench_s${seed}_table" "${specs[@]}" "$MODEL"
done
