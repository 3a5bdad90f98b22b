"""Figures and animations. Every function returns a matplotlib Figure or Animation; none shows one.

The caller decides: ``fig.savefig(run_dir / "test_acc.png")`` in a run, ``display(fig)`` in a notebook.
Figures are made with ``matplotlib.figure.Figure`` (through :func:`~snn_lib.plotting.base.new_figure`), not pyplot, so
the library keeps no global figure state and a notebook shows a returned figure exactly once.
Animations are saved as GIF with Pillow (:func:`~snn_lib.plotting.base.save_gif`), so no ffmpeg is needed, and shown in
the book with :func:`~snn_lib.plotting.base.animation_html`.

The functions live in seven modules by subject and are all importable from here:
:mod:`~snn_lib.plotting.base` (figures and animations), :mod:`~snn_lib.plotting.training` (runs and the
network's activity), :mod:`~snn_lib.plotting.spikes` (spike codes and the LIF neuron),
:mod:`~snn_lib.plotting.events` (event recordings), :mod:`~snn_lib.plotting.diagrams` (the book's
diagrams: the LIF circuit, backpropagation through time, the CSNN's shapes, an event pixel),
:mod:`~snn_lib.plotting.cost` (spike rates and synaptic operations of :mod:`snn_lib.cost`) and
:mod:`~snn_lib.plotting.plasticity` (the STDP learning window, learned receptive fields, accuracy
against neurons).
"""

from .base import (
    new_figure, save_figure, save_gif, animation_html,
)
from .training import (
    plot_metric, plot_train_loss, plot_test_acc, plot_confusion, animate_spike_counts,
    plot_layer_activity, plot_per_class_accuracy, plot_runs, plot_step_times,
)
from .spikes import (
    plot_images, plot_raster, plot_spike_encodings, animate_spike_frames,
    plot_lif_trace, plot_lif_response, plot_fi_curve, plot_surrogates, plot_spike_images,
)
from .events import (
    plot_frames, plot_events_3d, animate_events, plot_time_bins, plot_recordings, plot_event_images,
)
from .diagrams import (
    plot_lif_circuit, plot_bptt_unrolled, csnn_shapes, plot_csnn_diagram, log_intensity_events,
    plot_log_intensity_events,
)
from .cost import plot_operations, plot_spike_rates
from .plasticity import plot_accuracy_vs_neurons, plot_learning_window, plot_receptive_fields

__all__ = [
    "animate_events", "animate_spike_counts", "plot_accuracy_vs_neurons", "plot_learning_window",
    "plot_receptive_fields", "animate_spike_frames", "animation_html", "csnn_shapes",
    "log_intensity_events", "new_figure", "plot_bptt_unrolled", "plot_confusion",
    "plot_csnn_diagram", "plot_event_images", "plot_events_3d", "plot_fi_curve", "plot_frames", "plot_images", "plot_layer_activity",
    "plot_lif_circuit", "plot_lif_response", "plot_lif_trace", "plot_log_intensity_events", "plot_metric",
    "plot_operations", "plot_per_class_accuracy", "plot_raster", "plot_recordings", "plot_runs",
    "plot_spike_encodings", "plot_spike_images", "plot_spike_rates", "plot_step_times", "plot_surrogates",
    "plot_test_acc", "plot_time_bins",
    "plot_train_loss", "save_figure", "save_gif",
]
