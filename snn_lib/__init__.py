"""snn_lib: spiking neural networks on N-MNIST, the library of the SNN course book.

Modules: :mod:`snn_lib.config` (one typed config), :mod:`snn_lib.data` (N-MNIST and the offline
simulated N-MNIST, as in-memory time-first batches), :mod:`snn_lib.neurons` (the LIF neuron),
:mod:`snn_lib.model` (the CSNN), :mod:`snn_lib.fast` (the fast path of the CSNN),
:mod:`snn_lib.train` (training, evaluation, checkpoints, run folders), :mod:`snn_lib.plotting`
(figures and animations), :mod:`snn_lib.report` (hardware lines and committed results files),
:mod:`snn_lib.cli` (the ``snn-train``, ``snn-eval`` and ``snn-make-data`` commands).
"""

from .config import Config, DataConfig, ModelConfig, TrainConfig
from .errors import ConfigError, DataError, SnnError
from .neurons import lif_sequence, lif_step

__version__ = "0.1.0"

__all__ = ["Config", "ConfigError", "DataConfig", "DataError", "ModelConfig", "SnnError", "TrainConfig",
           "lif_sequence", "lif_step"]
