"""classic-rl: shared core for policy-optimization research in classical RL."""

__version__ = "0.1.0"


class UserError(ValueError):
    """A mistake in what the user asked for (bad flag value, env name, dataset, checkpoint).

    Entry points catch it, print the message without a traceback and exit with status 2.
    """


class TrainingDiverged(UserError):
    """A loss, parameter or statistic became NaN/inf. The run stops, names the quantity and the step, and
    keeps its directory with `status: diverged` in summary.json (analyses count it as censored). Entry points
    exit with status 3."""

    def __init__(self, message: str, run_dir: str | None = None):
        super().__init__(message)
        self.run_dir = run_dir
