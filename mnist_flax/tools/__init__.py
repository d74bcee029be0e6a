"""Developer tools: benchmarks, sample-image generators and resetting the project checkout.

Nothing here is needed to train, infer or serve; these are run by hand or by the tests:

    python -m mnist_flax.tools.benchmark --table          # how fast it trains and reads digits
    python -m mnist_flax.tools.samples DIR --kind photos   # draw sample pictures
    python -m mnist_flax.tools.reset                       # shipped model back, training output gone
"""
