"""Train a CIFAR-10 classifier on the autoencoder's backbone: linear probe, fine-tune, or from scratch.

    python src/train_clf.py --data PATH --out runs/clf --encoder runs/ae --mode finetune [key=value ...]

Same engine, flags and resume behaviour as train_ae.py.
"""

import os
from pathlib import Path

from cifarae import checkpoint, cli, engine
from cifarae.config import load_config, read_values
from cifarae.data import stratified_subset
from cifarae.errors import UserError, cli_main
from cifarae.models import Classifier, backbone_settings, check_backbone_compatible, dirac_init, init_stem
from cifarae.tasks import ClassifierTask

RECIPES = Path(__file__).resolve().parents[1] / "jobs" / "configs"


def parser():
    p = cli.train_parser(__doc__.splitlines()[1])
    p.add_argument("--encoder", default="", help="pretrained AE run directory or checkpoint (linear / finetune)")
    p.add_argument("--mode", choices=("linear", "finetune", "scratch"), default=None)
    p.add_argument("--label-fraction", type=float, default=None, help="stratified fraction of labelled images")
    return p


@cli_main
def main(argv=None):
    args = parser().parse_intermixed_args(argv)
    overrides = list(args.overrides)
    overrides += [f"mode={args.mode}"] if args.mode else []
    overrides += [f"label_fraction={args.label_fraction}"] if args.label_fraction is not None else []
    # stored absolute, so that a resumed run matches whether it was named from the checkout or not
    overrides += [f"encoder={os.path.abspath(args.encoder)}"] if args.encoder else []
    recipe = read_values(RECIPES / "clf.yaml")  # under the --config file and the overrides
    cfg = load_config(args.config, overrides, **recipe)
    # A linear probe always has an encoder, so the reload below applies its recipe.
    defaults = {**recipe, **(read_values(RECIPES / "clf_linear.yaml") if cfg.mode == "linear" else {})}

    encoder = None
    if cfg.encoder:
        encoder = checkpoint.load(cfg.encoder, "best")
        enc_cfg = encoder["config"]
        if enc_cfg.get("task") != "ae":
            raise UserError(f"--encoder {encoder['path']} is a {enc_cfg.get('task')} checkpoint, not an autoencoder")
        # The backbone follows the encoder unless the config says otherwise (then the check below names both).
        inherited = backbone_settings(enc_cfg)
        cfg = load_config(args.config, overrides, **{**defaults, **inherited})
        check_backbone_compatible(enc_cfg, cfg, encoder["path"])
    elif cfg.mode != "scratch":
        raise UserError(f"mode={cfg.mode} needs --encoder <AE run dir or checkpoint>")

    accelerator = engine.make_accelerator(cfg, args.out)
    dataset = cli.load_dataset(args.data, cfg, args.cache_dir, accelerator)
    if encoder is not None and encoder["classes"] != dataset.classes:
        raise UserError(
            f"encoder {encoder['path']} was trained on classes {encoder['classes']}, data has {dataset.classes}"
        )
    model = Classifier(cfg)
    if encoder is not None and cfg.mode != "scratch":
        state = checkpoint.inference_state(encoder)
        backbone_state = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
        checkpoint.load_weights(model.backbone, backbone_state, encoder["path"])
    else:
        init_stem(model, dataset.images["train"])
        if cfg.dirac_init:
            dirac_init(model)

    labels = dataset.labels["train"]
    train_idx = None
    if cfg.label_fraction < 1:
        train_idx = stratified_subset(labels, max(10, round(cfg.label_fraction * len(labels))), cfg.split_seed)
    n_train = len(labels) if train_idx is None else len(train_idx)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    accelerator.print(
        f"classifier ({cfg.mode}): {trainable / 1e6:.2f}M trainable parameters, {n_train} labelled images "
        f"({cfg.label_fraction:.0%}), {accelerator.num_processes} process(es) on {accelerator.device}"
    )
    if not len(dataset.labels["val"]):
        accelerator.print("val_size=0: the final fit on every training image; no selection, the last epoch is kept")
    engine.train(cfg, ClassifierTask(cfg), model, dataset, args.out, accelerator, train_idx=train_idx)


if __name__ == "__main__":
    main()
