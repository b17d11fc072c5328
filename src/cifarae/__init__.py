"""cifarae: a convolutional autoencoder, image codec and classifier for CIFAR-10.

One module per concept: config, data, models, losses, engine, tracking, metrics,
plots, codec. The entry scripts in ``src/`` stay thin and call into this package.
"""
