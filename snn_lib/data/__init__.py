"""N-MNIST (real, through tonic, or simulated offline) as in-memory, time-first batches.

The modules, from the disk up: :mod:`~snn_lib.data.nmnist` (the file format, the folder layout,
the download), :mod:`~snn_lib.data.simulator` and :mod:`~snn_lib.data.nmnist_sim` (the offline
dataset), :mod:`~snn_lib.data.frames` (events to frames with tonic, and their cache),
:mod:`~snn_lib.data.dataset` (which recordings a run uses: ``load_split``),
:mod:`~snn_lib.data.loader` (batches) and :mod:`~snn_lib.data.course` (the data of the book's
chapters). This package only re-exports them.
"""

from .dataset import cache_dir_of, dataset_root, default_cache_dir, load_split, split_frames, split_recordings
from .frames import cached_frames, events_to_frames, frame_transform
from .loader import FrameLoader, Loaders, TrainingEpochs, load_sim_mix, make_loaders
from .nmnist import (SENSOR_SIZE, Recording, download_nmnist, list_recordings, locate_nmnist, make_events,
                     read_events, sample_root, write_events)

__all__ = ["SENSOR_SIZE", "FrameLoader", "Loaders", "Recording", "cache_dir_of", "cached_frames",
           "dataset_root", "default_cache_dir", "download_nmnist", "events_to_frames", "frame_transform",
           "list_recordings", "load_sim_mix", "load_split", "locate_nmnist", "make_events", "make_loaders", "read_events",
           "sample_root", "split_frames", "split_recordings", "TrainingEpochs", "write_events"]
