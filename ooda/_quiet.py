"""Quiet terminals: third-party chatter that tells an ooda user nothing is silenced.

Its own module, with nothing but the standard library, so that a worker process can apply it
before it imports the heavy libraries.
"""

from __future__ import annotations

import importlib
import logging
import warnings

#: Loggers that speak at INFO/WARNING about their own internals.
NOISY = ("mlflow", "ray", "feast", "pytorch_lightning", "lightning", "darts")


def silence(*loggers: str) -> None:
    """Quiet third-party chatter unless the user asked for verbose logs; call again after
    heavy imports, some of which (darts' chain, MLflow, Ray) reset warning filters and their
    loggers' levels on import."""
    if logging.getLogger().level <= logging.INFO:
        return
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.simplefilter("ignore", FutureWarning)
    # tqdm in a notebook without Jupyter's widgets: its plain bar works, the advice is noise.
    warnings.filterwarnings("ignore", message="IProgress not found")
    for noisy in (*NOISY, *loggers):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def quiet_worker(log_level: int, preload: tuple[str, ...], *loggers: str) -> None:
    """Initialise a worker process: it logs at its parent's ``log_level``, as quietly.

    A pool's initializer, imported before the task's module. The ``preload`` modules are
    imported here one by one, silenced again after each: Feast's import, for one, turns
    deprecation warnings back on, and Ray Serve's import would then print some.
    """
    logging.basicConfig(level=log_level)
    silence(*loggers)
    for module in preload:
        importlib.import_module(module)
        silence(*loggers)
