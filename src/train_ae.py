"""Train the convolutional autoencoder on CIFAR-10.

    python src/train_ae.py --data PATH --out runs/ae [--config jobs/configs/ae.yaml] [key=value ...]

Works the same under `accelerate launch` and `torchrun`; an existing --out resumes.
"""

from cifarae import checkpoint, cli, engine
from cifarae.codec.loading import MAY_START_FRESH, init_state
from cifarae.config import load_config
from cifarae.errors import cli_main
from cifarae.models import AutoEncoder, init_stem
from cifarae.tasks import AutoencoderTask


@cli_main
def main(argv=None):
    args = cli.train_parser(__doc__.splitlines()[1]).parse_intermixed_args(argv)
    cfg = load_config(args.config, args.overrides, task="ae")
    accelerator = engine.make_accelerator(cfg, args.out)
    dataset = cli.load_dataset(args.data, cfg, args.cache_dir, accelerator)
    model = AutoEncoder(cfg)
    if cfg.init_from:  # e.g. a rate-distortion codec fine-tuned from a plain autoencoder
        state, source = init_state(cfg.init_from, cfg)
        checkpoint.load_weights(model, state, source, may_lack=MAY_START_FRESH)
    else:
        init_stem(model, dataset.images["train"])
    c, s, _ = model.latent_shape
    params = sum(p.numel() for p in model.parameters())
    accelerator.print(
        f"autoencoder: {params / 1e6:.2f}M parameters, latent {c}x{s}x{s}, "
        f"compression ratio {model.compression_ratio:.1f}x, {len(dataset.labels['train'])} training images, "
        f"{accelerator.num_processes} process(es) on {accelerator.device}, precision {cfg.precision}"
    )
    engine.train(
        cfg,
        AutoencoderTask(cfg),
        model,
        dataset,
        args.out,
        accelerator,
        extra_state={"compression_ratio": model.compression_ratio},
    )


if __name__ == "__main__":
    main()
