"""LeNet-5, modernized: the engine behind the book.

    from lenet_core import RunConfig, train_or_load
    record = train_or_load(RunConfig(dataset="fashion_mnist", act="tanh", seed=1))
    table = lenet_core.runs()  # every stored run, one row each (a pandas DataFrame)
"""

from .config import RunConfig
from .executions import start
from .experiments import describe_network, experiment, ladder, published_setup, setups
from .data import DATASETS, DataError, prepare, splits
from .model import LeNet5, count_parameters
from .records import Run, Runs
from .store import run_key, train_or_load
from .tidy import runs
from .train import ENGINE_VERSION, augmented_examples, evaluate, pick_device, train

__all__ = [
    "augmented_examples", "describe_network", "experiment", "ladder", "published_setup", "setups", "start",
    "DATASETS", "DataError", "ENGINE_VERSION", "LeNet5", "Run", "RunConfig", "Runs", "count_parameters",
    "evaluate", "pick_device", "prepare", "run_key", "runs", "splits", "train", "train_or_load",
]
