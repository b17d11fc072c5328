#!/usr/bin/env bash
# The commands behind every number in REPORT.md, in order (CPU report configuration).
#
#   bash jobs/report_runs.sh DATA [RUNS]      DATA: CIFAR-10 source (e.g. the JPEG archive); RUNS: default runs/report
#
# Each stage is resumable: run it again and finished runs are skipped. Stages write into RUNS;
# the last step copies the figures and metrics into outs/ and regenerates the README tables.
# On a shared CPU, OMP_NUM_THREADS=1 with two stages side by side beat one stage with 2 threads.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:?usage: jobs/report_runs.sh DATA [RUNS]}
RUNS=${2:-runs/report}
PY=${PY:-.venv/bin/python}
export WANDB_MODE=${WANDB_MODE:-offline}

# 1. autoencoder (half-width backbone, latent 12x8x8 = 4x) and its evaluation on every split
$PY src/train_ae.py --data "$DATA" --out "$RUNS/ae" --config jobs/configs/cpu_ae.yaml
$PY src/evaluate.py --run "$RUNS/ae" --data "$DATA"
# 2. design iterations at an equal small budget
$PY experiments/autoencoder/ablations.py --data "$DATA" --out "$RUNS/ablations"
# 3. classifier grid {linear, finetune, scratch} x {1%, 10%, 100%} labels, evaluated on val + test
$PY jobs/clf_grid.py --data "$DATA" --encoder "$RUNS/ae" --out "$RUNS/grid"
$PY src/evaluate.py --run "$RUNS/grid/finetune-f1-s0" --data "$DATA" --splits val,test --precision bf16 \
    --out "$RUNS/grid/finetune-f1-s0/eval_full"
# 4. generalisation under synthetic shifts (AE and the fine-tuned classifier)
$PY experiments/generalisation/shift_eval.py --data "$DATA" --ae "$RUNS/ae" --clf "$RUNS/grid/finetune-f1-s0" --out outs/shift --images 1000
# 5. benchmarks
$PY bench/bench.py --data "$DATA"
# (and once more on an idle machine, for the training-step and loader rows)
$PY bench/bench.py --data "$DATA" --only loader,ae,clf --out outs/bench_idle.json

# 6. copy into outs/ (figures and metrics only; no checkpoints) and regenerate the tables
mkdir -p outs/ae outs/clf outs/grid/histories outs/ablations
cp "$RUNS"/ae/eval/*.png "$RUNS"/ae/eval/metrics.* "$RUNS"/ae/history.json "$RUNS"/ae/config.yaml outs/ae/
cp "$RUNS"/grid/finetune-f1-s0/eval_full/*.png "$RUNS"/grid/finetune-f1-s0/eval_full/metrics.* outs/clf/
cp "$RUNS"/grid/grid.* outs/grid/
for cell in "$RUNS"/grid/*-f*-s*/; do cp "$cell/history.json" "outs/grid/histories/$(basename "$cell").json"; done
cp "$RUNS"/grid/finetune-f1-s0/config.yaml outs/grid/config_finetune.yaml
cp "$RUNS"/ablations/ablations.* outs/ablations/
$PY jobs/report.py

# 7. bottleneck sizes (added later): 3, 6, 12 and 24 latent channels at an equal budget (2 epochs on the
#    whole training split), each scored on the test split
$PY experiments/autoencoder/ablations.py --data "$DATA" --out "$RUNS/bottleneck" --only latent_3 latent_6 base latent_24 \
    --evaluate train_subset=0 val_subset=1000 epochs=2
mkdir -p outs/bottleneck && cp "$RUNS"/bottleneck/ablations.* outs/bottleneck/
# 8. classifier recipe iterations (added later): scratch, half width, 5 epochs on 100% labels, one
#    change at a time against train_clf.py's recipe
for variant in "base" "crop_pad=2" "weight_decay=0.005" "ema_decay=0.99"; do
    extra=()
    [ "$variant" = base ] || extra=("$variant")
    $PY src/train_clf.py --data "$DATA" --out "$RUNS/recipe/${variant//=/-}" --mode scratch "widths=[24,64,128,128]" \
        epochs=5 warmup_epochs=1 val_subset=1000 wandb=false "${extra[@]}"
done
mkdir -p outs/recipe && for run in "$RUNS"/recipe/*/; do cp "$run/history.json" "outs/recipe/$(basename "$run").json"; done
$PY jobs/report.py
# 9. the AE step's precision / memory-layout sweep on the CPU (same loader, batch 256)
$PY bench/bench.py --data "$DATA" --only sweep --sweep-batches 256 --steps 4 --warmup 2 --out outs/bench_cpu_sweep.json
#    and the classifier step's, with torch.compile (added later, on the idle machine)
$PY bench/bench.py --data "$DATA" --only sweep --sweep-task clf --sweep-compile --sweep-batches 256 --steps 4 --warmup 2 \
    --out outs/bench_cpu_sweep_clf.json
$PY jobs/report.py
# 10. the whole chain through the project's own launcher (added later): jobs/pipeline.py on the local
#     Slurm cluster (slurm/local/start.sh), one CPU per job: AE -> classifier grid -> evaluation ->
#     grid table, and AE -> codec init -> 3 codec runs -> prior refits + RD (2,000 images per split)
$PY jobs/pipeline.py --data "$DATA" --out "$RUNS/pipeline" --config jobs/configs/cpu_pipeline.yaml \
    --grid jobs/configs/clf_grid.yaml --lambdas 0.004,0.012,0.035 --codec-epochs 1 --rd-limit 2000 \
    --gpus 0 --cpus 1 --eval-args "--precision bf16" | tee "$RUNS/pipeline.log"
P=$RUNS/pipeline
mkdir -p outs/pipeline/ae outs/pipeline/grid/histories outs/pipeline/rd outs/pipeline/codec
cp "$P"/ae/eval/*.png "$P"/ae/eval/metrics.json "$P"/ae/eval/metrics.csv "$P"/ae/history.json "$P"/ae/config.yaml outs/pipeline/ae/
cp "$P"/grid/grid.* outs/pipeline/grid/
for cell in "$P"/grid/*-f*-s*/; do cp "$cell/history.json" "outs/pipeline/grid/histories/$(basename "$cell").json"; done
cp "$P"/grid/finetune-f1-s0/config.yaml outs/pipeline/grid/config_finetune.yaml
cp "$P"/rd/rd.json "$P"/rd/rd_*.png outs/pipeline/rd/
for run in "$P"/codec/lambda*/; do cp "$run/history.json" "outs/pipeline/codec/$(basename "$run").json"; done
ids=$(sed -n 's/^job ids: //p' "$RUNS/pipeline.log" | grep -o '=[0-9]*' | tr -d = | paste -sd,)
sacct -j "$ids" --parsable2 -o JobID,JobName,State,Elapsed,Start,End >outs/pipeline/jobs.txt
# The launcher passes absolute paths to its jobs; the committed files name them from the checkout.
grep -rlF "$PWD/" outs/pipeline | xargs -r sed -i -e "s#$PWD/##g" -e "s#$(dirname "$PWD")/#../#g"
$PY jobs/report.py
# 11. the classifier recipe with airbench's additions (added later; train_clf.py's defaults since), full
#     width on the CPU: an AE for 3 epochs, then scratch and fine-tune side by side for 20 epochs, one
#     thread each (the scratch run started beside the AE); validation on a 2,000-image subset because
#     the shifted TTA costs 6 forward passes per image. $2: backbone overrides (the fine-tune inherits
#     them from its AE); $3: extra AE overrides; $4: extra classifier overrides (both modes).
cpu_pair() {
    local name=$1 backbone=$2 ae_extra=$3 clf_extra=${4:-}
    local C=$RUNS/$name
    # shellcheck disable=SC2086  # the override lists are meant to split into words
    OMP_NUM_THREADS=1 $PY src/train_clf.py --data "$DATA" --out "$C/scratch" --mode scratch $backbone $clf_extra \
        val_subset=2000 wandb=false &
    # shellcheck disable=SC2086
    OMP_NUM_THREADS=1 $PY src/train_ae.py --data "$DATA" --out "$C/ae" $backbone $ae_extra epochs=3 batch_size=256 \
        wandb=false
    # shellcheck disable=SC2086
    OMP_NUM_THREADS=1 $PY src/train_clf.py --data "$DATA" --out "$C/finetune" --mode finetune --encoder "$C/ae" \
        $clf_extra val_subset=2000 wandb=false
    wait
    for run in ae scratch finetune; do
        $PY src/evaluate.py --run "$C/$run" --data "$DATA" --splits val,test --precision bf16 --no-wandb
        mkdir -p "outs/$name/$run"
        cp "$C/$run"/eval/*.png "$C/$run"/eval/metrics.json "$C/$run"/eval/metrics.csv "$C/$run"/history.json \
            "$C/$run"/config.yaml "outs/$name/$run/"
    done
}
cpu_pair cpu_full "" ""
# the convolutions alone vs the AE step, bf16 + channels_last against fp32 NCHW (the bound on the step ratio)
$PY bench/bench.py --data "$DATA" --only convs,ae --threads 1 --out outs/bench_convs.json
$PY jobs/report.py
# 12. the same, with pooling in all three blocks (latent_size=4, airbench's layout: the last block ends
#     at 4x4 instead of 8x8); the AE keeps 4x compression with 48 latent channels
cpu_pair cpu_pool4 latent_size=4 latent_channels=48
$PY jobs/report.py
# 13. airbench's whitening stem against the 3x3 conv stem: scratch, full width, 5 epochs (1 warm-up), one
#     thread each, side by side
W=$RUNS/whiten
for arch in airbench airbench_whiten; do
    stem=32 && [ $arch = airbench_whiten ] && stem=24
    OMP_NUM_THREADS=1 $PY src/train_clf.py --data "$DATA" --out "$W/$arch" --mode scratch arch=$arch \
        "widths=[$stem,64,256,256]" epochs=5 warmup_epochs=1 val_subset=2000 wandb=false &
done
wait
mkdir -p outs/whiten
for arch in airbench airbench_whiten; do cp "$W/$arch/history.json" "outs/whiten/$arch.json"; done
$PY jobs/report.py
# 14. airbench's network and optimiser together: whitening stem, pooling in all blocks, BatchNorm scales
#     frozen at 1 (bn_weight=false), and airbench's SGD settings in this engine's units (batch 1024, lr 1.5
#     on the mean loss, Nesterov momentum 0.85, weight decay 1.33e-3 so each step decays the weights by
#     0.2% at the peak, 10x the recipe above; logits x 1/9), 15 epochs with a 3-epoch warm-up
cpu_pair cpu_airbench "arch=airbench_whiten widths=[24,64,256,256] latent_size=4 bn_weight=false" \
    latent_channels=48 \
    "epochs=15 warmup_epochs=3 batch_size=1024 lr=1.5 momentum=0.85 weight_decay=0.00133 logit_scale=0.111"
$PY jobs/report.py
# 15. what JPEG loss costs this network: the archive re-encoded at quality 50 and 30 (experiments/classifier/jpeg_requality.py
#     prints each copy's PSNR against the archive), and stage 13's whitening-stem scratch run on each copy,
#     side by side; stage 13's run on the archive itself is the reference
for q in 50 30; do
    $PY experiments/classifier/jpeg_requality.py "$DATA" "$RUNS/jpeg_q$q" --quality $q >"$RUNS/jpeg_q$q.json"
    OMP_NUM_THREADS=1 $PY src/train_clf.py --data "$RUNS/jpeg_q$q" --out "$RUNS/jpeg/q$q" --mode scratch \
        arch=airbench_whiten "widths=[24,64,256,256]" epochs=5 warmup_epochs=1 val_subset=2000 wandb=false &
done
wait
mkdir -p outs/jpeg
for q in 50 30; do
    cp "$RUNS/jpeg/q$q/history.json" "outs/jpeg/q$q.json"
    cp "$RUNS/jpeg_q$q.json" "outs/jpeg/q${q}_psnr.json"
done
$PY jobs/report.py
# 16. the reference for stages 11-15: Keller Jordan's airbench94 itself (pip airbench==0.1.8, its network,
#     optimiser, Lookahead, alternating flips and all 50,000 training images), unchanged, on this data:
#     its published 9.9 epochs and the 20-epoch budget of the classifier floor, side by side
mkdir -p outs/airbench_ref
for run in "9.9 e10" "20 e20"; do
    read -r epochs name <<<"$run"
    OMP_NUM_THREADS=1 $PY experiments/classifier/airbench_reference.py "$DATA" --epochs "$epochs" --seed 0 --threads 1 \
        --out "outs/airbench_ref/${name}_s0.json" &
done
wait
$PY jobs/report.py
# 17. the skip-latent codec family (REPORT §9): the classifier's backbone plus 16 channels of block 1's
#     16x16 features coded beside the 8x8 latent (jobs/configs/codec_skip.yaml), two λ from scratch,
#     8 epochs each side by side, the decoder trained on noisy latents as every codec before it
for lam in 0.04 0.12; do
    OMP_NUM_THREADS=1 $PY src/train_ae.py --data "$DATA" --out "$RUNS/codec_skip/lambda$lam" \
        --config jobs/configs/codec_skip.yaml rd_lambda=$lam epochs=8 ste_decoder=false &
done
wait
mkdir -p outs/codec_skip
for run in "$RUNS"/codec_skip/lambda*/; do cp "$run/history.json" "outs/codec_skip/$(basename "$run").json"; done
# 18. the decoder trained on the rounded latents it is sent (ste_decoder, the default since): stage 17's
#     best checkpoints fine-tuned 2 epochs at lr 3e-4, three side by side (λ = 0.015 starts from the
#     λ = 0.04 run), and the control: λ = 0.04 fine-tuned the same way with the decoder still on noise;
#     the decoder's PSNR on coded / rounded / noisy / float latents; prior refits, then every test and
#     validation image as a real file
for spec in "0.015 0.04" "0.04 0.04" "0.12 0.12"; do
    read -r lam from <<<"$spec"
    OMP_NUM_THREADS=1 $PY src/train_ae.py --data "$DATA" --out "$RUNS/codec_skip_ste/lambda$lam" \
        --config jobs/configs/codec_skip.yaml rd_lambda="$lam" init_from="$RUNS/codec_skip/lambda$from" \
        epochs=2 lr=3e-4 warmup_epochs=0 &
done
OMP_NUM_THREADS=1 $PY src/train_ae.py --data "$DATA" --out "$RUNS/codec_skip_noise/lambda0.04" \
    --config jobs/configs/codec_skip.yaml rd_lambda=0.04 init_from="$RUNS/codec_skip/lambda0.04" \
    epochs=2 lr=3e-4 warmup_epochs=0 ste_decoder=false &
wait
# (added last) a point below 2 bpp, so the 2-bpp floor is read inside this curve: λ = 0.007 from the
# fine-tuned λ = 0.015 run, 2 epochs, alone with 2 threads
OMP_NUM_THREADS=2 $PY src/train_ae.py --data "$DATA" --out "$RUNS/codec_skip_ste/lambda0.007" \
    --config jobs/configs/codec_skip.yaml rd_lambda=0.007 init_from="$RUNS/codec_skip_ste/lambda0.015" \
    epochs=2 lr=3e-4 warmup_epochs=0
mkdir -p outs/codec_skip_ste/rd
cp "$RUNS/codec_skip_noise/lambda0.04/history.json" outs/codec_skip_ste/control_noise_lambda0.04.json
# shellcheck disable=SC2046
$PY experiments/codec/quant_gap.py --data "$DATA" --runs $(ls -d "$RUNS"/codec_skip/lambda* "$RUNS"/codec_skip_noise/lambda*) \
    $(ls -d "$RUNS"/codec_skip_ste/lambda*) --out outs/codec_skip_ste/quant_gap.json --threads 2
# shellcheck disable=SC2046
$PY experiments/codec/quant_gap.py --data "$DATA" --runs $(ls -d "$RUNS"/codec_skip/lambda*) --checkpoint last \
    --out outs/codec_skip/quant_gap_last.json --threads 2
for run in "$RUNS"/codec_skip_ste/lambda*; do $PY src/codec_fit.py --run "$run" --data "$DATA"; done
# shellcheck disable=SC2046
$PY src/rd_eval.py --data "$DATA" --runs $(ls -d "$RUNS"/codec_skip_ste/lambda*) \
    --out "$RUNS/codec_skip_ste/rd" --splits test val --threads 2
for run in "$RUNS"/codec_skip_ste/lambda*/; do
    cp "$run/history.json" "outs/codec_skip_ste/$(basename "$run").json"
done
cp "$RUNS"/codec_skip_ste/rd/rd.json "$RUNS"/codec_skip_ste/rd/*.png outs/codec_skip_ste/rd/
$PY jobs/report.py
# 19. encoder-side latent refinement (Refinement, codec.py --refine-steps): stage 18's codecs, 50 Adam steps
#     per image on its own rate + λ·255²·MSE, around 2 bpp (λ = 0.007 and 0.015 at their own λ, 0.015 at
#     0.6 λ, 0.04 at 0.4 λ), on stratified 1,000-image subsets of test and val (refinement encodes at
#     ~2 img/s per core): two jobs side by side, one thread each, merged with --reuse; the same models
#     and images without refinement beside them
R="$RUNS/codec_skip_ste"
OMP_NUM_THREADS=1 $PY src/rd_eval.py --data "$DATA" --runs "$R/lambda0.015" "$R/lambda0.015" --refine-steps 50 \
    --refine-lambda-scales 1 0.6 --limit 1000 --threads 1 --no-wandb --out "$RUNS/codec_refine/a" &
OMP_NUM_THREADS=1 $PY src/rd_eval.py --data "$DATA" --runs "$R/lambda0.007" "$R/lambda0.04" --refine-steps 50 \
    --refine-lambda-scales 1 0.4 --limit 1000 --threads 1 --no-wandb --out "$RUNS/codec_refine/b" &
wait
# (added last) a point just below 2 bpp: λ = 0.015 refined at 0.4 λ, alone with 2 threads
$PY src/rd_eval.py --data "$DATA" --runs "$R/lambda0.015" --refine-steps 50 --refine-lambda-scales 0.4 \
    --limit 1000 --threads 2 --no-wandb --out "$RUNS/codec_refine/c"
$PY src/rd_eval.py --data "$DATA" --runs "$R/lambda0.007" "$R/lambda0.015" "$R/lambda0.015" "$R/lambda0.015" \
    "$R/lambda0.04" --refine-steps 50 --refine-lambda-scales 1 0.4 0.6 1 0.4 --limit 1000 --threads 2 \
    --out "$RUNS/codec_refine/rd" --reuse "$RUNS"/codec_refine/{a,b,c}/rd.json
$PY src/rd_eval.py --data "$DATA" --runs "$R/lambda0.007" "$R/lambda0.015" "$R/lambda0.04" --limit 1000 \
    --threads 2 --no-wandb --out "$RUNS/codec_refine/plain"
mkdir -p outs/codec_refine/rd outs/codec_refine/plain
cp "$RUNS"/codec_refine/rd/rd.json "$RUNS"/codec_refine/rd/*.png outs/codec_refine/rd/
cp "$RUNS"/codec_refine/plain/rd.json outs/codec_refine/plain/
$PY jobs/report.py
# 20. what else moves the 2-bpp point (REPORT §9). Side by side, one thread each:
#     (a) refinement variants on 100 validation images (experiments/codec/refine_probe.py: stochastic Gumbel annealing,
#     the rate at the coded latents, a mean-PSNR distortion, λ = 0.007 refined at up to 3 λ), the entropy
#     coder's bytes over the ideal code length, and a prior refitted to refined latents;
#     (b) λ = 0.015 trained 6 more epochs (lr 4e-4, cosine), its prior refitted, then refined at λ and 0.6 λ
#     on the same 1,000-image subsets as stage 19 (two jobs), merged with stage 19's λ = 0.007 and λ = 0.04
#     points into one curve
R="$RUNS/codec_skip_ste"
L="$RUNS/codec_skip_long/lambda0.015"
# refined_curve NAME RUN SCALE_A SCALE_B: RUN's prior refitted, refined at both λ scales (two jobs), merged
# with stage 19's λ = 0.007 and λ = 0.04 points, and the same runs unrefined; into outs/NAME
refined_curve() {
    local name=$1 run=$2 scale_a=$3 scale_b=$4 spec job scale
    $PY src/codec_fit.py --run "$run" --data "$DATA"
    for spec in "a $scale_a" "b $scale_b"; do
        read -r job scale <<<"$spec"
        OMP_NUM_THREADS=1 $PY src/rd_eval.py --data "$DATA" --runs "$run" --refine-steps 50 \
            --refine-lambda-scales "$scale" --limit 1000 --threads 1 --no-wandb --out "$RUNS/$name/$job" &
    done
    wait
    $PY src/rd_eval.py --data "$DATA" --runs "$R/lambda0.007" "$run" "$run" "$R/lambda0.04" --refine-steps 50 \
        --refine-lambda-scales 1 "$scale_a" "$scale_b" 0.4 --limit 1000 --threads 2 --out "$RUNS/$name/rd" \
        --reuse "$RUNS/$name"/{a,b}/rd.json "$RUNS/codec_refine/rd/rd.json"
    $PY src/rd_eval.py --data "$DATA" --runs "$R/lambda0.007" "$run" "$R/lambda0.04" --limit 1000 --threads 2 \
        --no-wandb --out "$RUNS/$name/plain" --reuse "$RUNS/codec_refine/plain/rd.json"
    mkdir -p "outs/$name/rd" "outs/$name/plain"
    cp "$RUNS/$name"/rd/rd.json "$RUNS/$name"/rd/*.png "outs/$name/rd/"
    cp "$RUNS/$name"/plain/rd.json "outs/$name/plain/"
}
OMP_NUM_THREADS=1 $PY experiments/codec/refine_probe.py --data "$DATA" --run "$R/lambda0.015" --far-run "$R/lambda0.007" \
    --out outs/codec_refine/probe.json --threads 1 &
OMP_NUM_THREADS=1 $PY src/train_ae.py --data "$DATA" --out "$L" --config jobs/configs/codec_skip.yaml \
    rd_lambda=0.015 init_from="$R/lambda0.015" epochs=6 lr=4e-4 warmup_epochs=0.1
wait
refined_curve codec_long "$L" 1 0.6
mkdir -p outs/codec_skip_long
cp "$L/history.json" outs/codec_skip_long/lambda0.015.json
$PY jobs/report.py
# 21-22. the same codec continued twice more (lr 3e-4, cosine, 2 threads; stage 21 ran its first two epochs on
#     1 thread and resumed), each then refined as in stage 20 at λ and 1.5 λ (its rate had fallen below 2 bpp;
#     for stage 22 the two scales bracketed 2 bpp on 100 validation images)
# continue_codec RUN FROM EPOCHS NAME HISTORY: RUN trained EPOCHS more from FROM, curve into outs/NAME
continue_codec() {
    local run=$1 from=$2 epochs=$3 name=$4 history=$5
    OMP_NUM_THREADS=2 $PY src/train_ae.py --data "$DATA" --out "$run" --config jobs/configs/codec_skip.yaml \
        rd_lambda=0.015 init_from="$from" epochs="$epochs" lr=3e-4 warmup_epochs=0.1
    refined_curve "$name" "$run" 1 1.5
    cp "$run/history.json" "outs/codec_skip_long/$history"
    $PY jobs/report.py
}
L2="$RUNS/codec_skip_long2/lambda0.015"
continue_codec "$L2" "$L" 5 codec_long2 lambda0.015-more.json
continue_codec "$RUNS/codec_skip_long3/lambda0.015" "$L2" 14 codec_long3 lambda0.015-more2.json
# 23. checkerboard context models (src/codec_context.py) fitted to stage 22's λ = 0.015 codec and stage 19's
#     λ = 0.04 codec, transforms and priors frozen, on copies of the two runs; both refined (at 3 λ and 0.4 λ,
#     which bracketed 2 bpp on 100 validation images), merged with stage 19's λ = 0.007 point, and unrefined
C="$RUNS/codec_ctx"
for run in "$RUNS/codec_skip_long3/lambda0.015" "$R/lambda0.04"; do
    name=$(basename "$run")
    if [ ! -f "$C/$name/context.pt" ]; then
        mkdir -p "$C/$name"
        cp "$run"/{best.pt,codec.pt,config.yaml,history.json} "$C/$name/"
        $PY src/codec_context.py --run "$C/$name" --data "$DATA" --images 30000 --epochs 6
    fi
done
# the refinement scales, chosen on 100 validation images: calibrate NAME SCALE... refines $C/NAME at each
calibrate() {
    local name=$1 runs=()
    shift
    for _ in "$@"; do runs+=("$C/$name"); done
    $PY src/rd_eval.py --data "$DATA" --runs "${runs[@]}" --refine-steps 50 --refine-lambda-scales "$@" \
        --splits val --limit 100 --no-files --no-wandb --threads 2 --out "$C/calib_$name"
    mkdir -p outs/codec_ctx/calib
    cp "$C/calib_$name/rd.json" "outs/codec_ctx/calib/$name.json"
}
calibrate lambda0.015 1 1.5 2 3
calibrate lambda0.04 0.25 0.4
for spec in "a lambda0.015 3" "b lambda0.04 0.4"; do
    read -r job name scale <<<"$spec"
    OMP_NUM_THREADS=1 $PY src/rd_eval.py --data "$DATA" --runs "$C/$name" --refine-steps 50 \
        --refine-lambda-scales "$scale" --limit 1000 --threads 1 --no-wandb --out "$C/$job" &
done
wait
$PY src/rd_eval.py --data "$DATA" --runs "$R/lambda0.007" "$C/lambda0.015" "$C/lambda0.04" --refine-steps 50 \
    --refine-lambda-scales 1 3 0.4 --limit 1000 --threads 2 --out "$C/rd" \
    --reuse "$C"/{a,b}/rd.json "$RUNS/codec_refine/rd/rd.json"
$PY src/rd_eval.py --data "$DATA" --runs "$R/lambda0.007" "$C/lambda0.015" "$C/lambda0.04" --limit 1000 \
    --threads 2 --no-wandb --out "$C/plain" --reuse "$RUNS/codec_refine/plain/rd.json"
mkdir -p outs/codec_ctx/rd outs/codec_ctx/plain
cp "$C"/rd/rd.json "$C"/rd/*.png outs/codec_ctx/rd/
cp "$C"/plain/rd.json outs/codec_ctx/plain/
for name in lambda0.015 lambda0.04; do cp "$C/$name/context_fit.json" "outs/codec_ctx/context_fit_$name.json"; done
# the floor's sampling uncertainty on the 1,000-image subsets: a paired bootstrap over images
$PY experiments/codec/floor_bootstrap.py --data "$DATA" --runs "$C/lambda0.015" "$C/lambda0.04" \
    --files "$C/a/files/lambda0.015-refine50x3" "$C/b/files/lambda0.04-refine50x0.4" \
    --out outs/codec_ctx/floor_bootstrap.json
$PY jobs/report.py
