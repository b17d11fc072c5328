#!/usr/bin/env bash
# The codec's CPU figures in docs/codec-log.md (§9), in order: the skip-latent codecs and the rounded-latent
# decoder, encoder-side refinement, the longer-trained λ = 0.015 codec, and the context models that
# meet the 2-bpp floor. (The GPU codecs of §9 are experiments/gpu/run.sh.)
#
#   bash experiments/codec/run.sh DATA [RUNS]    DATA: CIFAR-10 source (e.g. the JPEG archive); RUNS: default runs/report
#
# Each block starts from the runs of the blocks before it (nothing from the other topics). Resumable:
# run it again and finished runs are skipped. Runs go into RUNS; histories, RD files and figures (no
# checkpoints) are copied into outs/ and the tables regenerated (jobs/report.py) after each block.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${1:?usage: experiments/codec/run.sh DATA [RUNS]}
RUNS=${2:-runs/report}
PY=${PY:-.venv/bin/python}
export WANDB_MODE=${WANDB_MODE:-offline}

# outs/codec_skip (§9 "Past 2 bpp"): the skip-latent codec family: the classifier's backbone plus 16
# channels of block 1's 16x16 features coded beside the 8x8 latent (jobs/configs/codec_skip.yaml), two
# λ from scratch, 8 epochs each side by side, the decoder trained on noisy latents as every codec before it
for lam in 0.04 0.12; do
    OMP_NUM_THREADS=1 $PY src/train_ae.py --data "$DATA" --out "$RUNS/codec_skip/lambda$lam" \
        --config jobs/configs/codec_skip.yaml rd_lambda=$lam epochs=8 ste_decoder=false &
done
wait
mkdir -p outs/codec_skip
for run in "$RUNS"/codec_skip/lambda*/; do cp "$run/history.json" "outs/codec_skip/$(basename "$run").json"; done

# outs/codec_skip_ste, outs/codec_skip/quant_gap_last.json (§9): the decoder trained on the rounded
# latents it is sent (ste_decoder, the default since): outs/codec_skip's best checkpoints fine-tuned 2
# epochs at lr 3e-4, three side by side (λ = 0.015 starts from the λ = 0.04 run), and the control:
# λ = 0.04 fine-tuned the same way with the decoder still on noise; the decoder's PSNR on coded /
# rounded / noisy / float latents; prior refits, then every test and validation image as a real file
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

# outs/codec_refine/{rd,plain} (§9 "Refining each image's latents"): encoder-side latent refinement
# (codec.py --refine-steps): outs/codec_skip_ste's codecs, 50 Adam steps per image on its own rate +
# λ·255²·MSE, around 2 bpp (λ = 0.007 and 0.015 at their own λ, 0.015 at 0.6 λ, 0.04 at 0.4 λ), on
# stratified 1,000-image subsets of test and val (refinement encodes at ~2 img/s per core): two jobs
# side by side, one thread each, merged with --reuse; the same models and images without refinement beside them
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

# refined_curve NAME RUN SCALE_A SCALE_B: RUN's prior refitted, refined at both λ scales (two jobs,
# one thread each, on the same 1,000-image subsets as outs/codec_refine), merged with outs/codec_refine's
# λ = 0.007 and λ = 0.04 points, and the same runs unrefined; into outs/NAME/{rd,plain}
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

# outs/codec_refine/probe.json, outs/codec_long, outs/codec_skip_long/lambda0.015.json (§9 "What else
# moves the 2-bpp point"). Side by side, one thread each: (a) refinement variants on 100 validation
# images (refine_probe.py: stochastic Gumbel annealing, the rate at the coded latents, a mean-PSNR
# distortion, λ = 0.007 refined at up to 3 λ), the entropy coder's bytes over the ideal code length,
# and a prior refitted to refined latents; (b) λ = 0.015 trained 6 more epochs (lr 4e-4, cosine), then
# its curve, refined at λ and 0.6 λ
L="$RUNS/codec_skip_long/lambda0.015"
OMP_NUM_THREADS=1 $PY experiments/codec/refine_probe.py --data "$DATA" --run "$R/lambda0.015" --far-run "$R/lambda0.007" \
    --out outs/codec_refine/probe.json --threads 1 &
OMP_NUM_THREADS=1 $PY src/train_ae.py --data "$DATA" --out "$L" --config jobs/configs/codec_skip.yaml \
    rd_lambda=0.015 init_from="$R/lambda0.015" epochs=6 lr=4e-4 warmup_epochs=0.1
wait
refined_curve codec_long "$L" 1 0.6
mkdir -p outs/codec_skip_long
cp "$L/history.json" outs/codec_skip_long/lambda0.015.json
$PY jobs/report.py

# outs/codec_long2, outs/codec_long3 and outs/codec_skip_long/lambda0.015-more{,2}.json (§9): the same
# codec continued twice more (lr 3e-4, cosine, 2 threads; the first continuation ran its first two
# epochs on 1 thread and resumed), each then refined as above at λ and 1.5 λ (its rate had fallen
# below 2 bpp; for the second the two scales bracketed 2 bpp on 100 validation images)
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

# outs/codec_ctx (§9 "A checkerboard context model"): checkerboard context models (src/codec_context.py)
# fitted to outs/codec_long3's λ = 0.015 codec and outs/codec_skip_ste's λ = 0.04 codec, transforms and
# priors frozen, on copies of the two runs; both refined (at 3 λ and 0.4 λ, which bracketed 2 bpp on 100
# validation images: outs/codec_ctx/calib), merged with outs/codec_refine's λ = 0.007 point, and unrefined
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
# outs/codec_ctx/floor_bootstrap.json: the floor's sampling uncertainty on the 1,000-image subsets, a
# paired bootstrap over images
$PY experiments/codec/floor_bootstrap.py --data "$DATA" --runs "$C/lambda0.015" "$C/lambda0.04" \
    --files "$C/a/files/lambda0.015-refine50x3" "$C/b/files/lambda0.04-refine50x0.4" \
    --out outs/codec_ctx/floor_bootstrap.json
$PY jobs/report.py
