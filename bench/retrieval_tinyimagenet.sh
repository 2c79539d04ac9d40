#!/usr/bin/env bash
# Retrieval on "Tiny-ImageNet WordNet captions" (real Tiny-ImageNet val photos, WordNet-name captions; NOT
# Flickr30k) with proxy:tinyimagenet: clean + image/text/multimodal attacks, then transfer between the proxy
# and a 1-epoch TeCoA fine-tune of it (MODEL=... N_IMAGES=... override). Resumable: finished reports are kept, eval runs resume per batch.
#   bash bench/retrieval_tinyimagenet.sh OUT_DIR [SHARED_DATA]
set -euo pipefail
OUT=${1:?output folder}; DATA=${2:-../shared/data}
MM=${MMROBUST:-mmrobust}; MODEL=${MODEL:-proxy:tinyimagenet}; N_IMAGES=${N_IMAGES:-100}
mkdir -p "$OUT"
[ -f "$OUT/fixture/dataset_flickr30k.json" ] || python bench/make_retrieval_fixture.py \
    --tinyimagenet-root "$DATA" --output "$OUT/fixture" --n-images "$N_IMAGES" --captions 5 --seed 0
run() { local out=$1; shift; [ -f "$out" ] || "$MM" eval --task retrieval -q -o "$out" "$@"; }
# the done-when command (eps 1/255)
run "$OUT/r.json" --model "$MODEL" --dataset flickr30k --data-root "$OUT/fixture" \
    --attack pgd,embed-sub,co-attack,sga --eps 1
# the other image / text attacks, and the webdataset layout of the same fixture (clean must match)
run "$OUT/r_more.json" --model "$MODEL" --dataset "wds:$OUT/fixture/wds" \
    --attack pgd,apgd,typo --targeted --eps 1   # --targeted: pgd pulls towards the nearest wrong image
# Co-Attack with the caption-only attacks' image-guided goal (the published one is image-free)
run "$OUT/r_coattack_pair.json" --model "$MODEL" --dataset flickr30k --data-root "$OUT/fixture" \
    --attack co-attack --co-attack-text-goal pair-similarity --eps 1
# a second model: 1 epoch of TeCoA on 2000 Tiny-ImageNet train images
[ -d "$OUT/tecoa/final" ] || "$MM" train -m "$MODEL" --method tecoa -d tinyimagenet --data-root "$DATA" \
    --epochs 1 --n-train 2000 --lr 1e-4 --steps 2 --n-eval 200 -o "$OUT/tecoa" -q
run "$OUT/r_tecoa.json" --model "ckpt:$OUT/tecoa/final" --dataset flickr30k --data-root "$OUT/fixture" \
    --attack pgd --eps 1
# transfer both ways (crafted on --source-model, scored on --model); 50 images to fit a loaded 2-core machine
run "$OUT/t_proxy_to_tecoa.json" --model "ckpt:$OUT/tecoa/final" --source-model "$MODEL" \
    --dataset flickr30k --data-root "$OUT/fixture" --attack pgd,sga --eps 1 --n-samples 50
run "$OUT/t_tecoa_to_proxy.json" --model "$MODEL" --source-model "ckpt:$OUT/tecoa/final" \
    --dataset flickr30k --data-root "$OUT/fixture" --attack pgd,sga --eps 1 --n-samples 50
python bench/retrieval_table.py "$OUT"/r.json "$OUT"/r_more.json "$OUT"/r_coattack_pair.json "$OUT"/r_tecoa.json "$OUT"/t_*.json
