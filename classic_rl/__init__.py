"""classic-rl: shared core for policy-optimization research in classical RL."""

__version__ = "0.1.0"


class UserError(ValueError):
    """A mistake in what the user asked for (bad flag value, env name, dataset, checkpoint).

    Entry points catch it, print the message without a traceback and exit with status 2.
    """
