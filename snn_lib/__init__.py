"""snn_lib: spiking neural networks on N-MNIST, the library of the SNN course book.

One module for each idea, in the order of the book's chapters:

- :mod:`snn_lib.config`: the one typed configuration of a run, its ``key=value`` settings;
  :mod:`snn_lib.errors`: the errors a user can fix;
- :mod:`snn_lib.encoding`: spike codes (chapter 1);
- :mod:`snn_lib.neurons`: the LIF neuron, step by step (chapter 2);
- :mod:`snn_lib.data`: N-MNIST and the offline simulated N-MNIST as time-first batches
  (chapter 3);
- :mod:`snn_lib.model`: the CSNN, its reference and fast forward side by side, its readout and
  loss, and ``build_model`` for every network; :mod:`snn_lib.kernels`: the fused LIF and
  conv+pool operations of the fast forward; :mod:`snn_lib.ann`: the CSNN's ANN twin (chapter 4);
- :mod:`snn_lib.train`: one training step, one epoch, the loop ``fit`` and a whole run;
  :mod:`snn_lib.evaluate`: accuracy and confusion of a model or a checkpoint;
  :mod:`snn_lib.checkpoint`: checkpoints, and the model of a checkpoint; :mod:`snn_lib.rundir`:
  the run folder (lock, what a run records, resume); :mod:`snn_lib.files`: files written whole
  or not at all; :mod:`snn_lib.device`: device, mixed precision, CPU allocator;
  :mod:`snn_lib.distributed`: data-parallel processes (chapter 5);
- :mod:`snn_lib.cost`: spikes, sparsity and synaptic operations; :mod:`snn_lib.export`: the
  network as an NIR graph, run again in other simulators (chapter 7);
- :mod:`snn_lib.course`: the book's helpers: the data, the budget and the runs of a chapter;
- :mod:`snn_lib.plasticity`: pair-based STDP with traces; :mod:`snn_lib.stdp_network`: a network
  that learns digits without labels with it (Diehl & Cook 2015 style);
- :mod:`snn_lib.plotting`: figures and animations; :mod:`snn_lib.report`: hardware lines, the
  report of many runs and the committed results files;
- :mod:`snn_lib.cli`: the ``snn-train``, ``snn-eval``, ``snn-make-data``, ``snn-report`` and
  ``snn-export`` commands.
"""

from .config import Config, DataConfig, ModelConfig, TrainConfig
from .errors import ConfigError, DataError, SnnError
from .neurons import lif_sequence, lif_step

__version__ = "0.1.0"

__all__ = ["Config", "ConfigError", "DataConfig", "DataError", "ModelConfig", "SnnError", "TrainConfig",
           "lif_sequence", "lif_step"]
