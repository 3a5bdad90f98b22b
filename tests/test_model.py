import pytest
import torch

from snn_lib.config import ModelConfig
from snn_lib.model import build_model, flat_features, predict, spike_counts


@pytest.mark.parametrize("impl", ["reference", "fast"])
@pytest.mark.parametrize("size, features", [(34, 1600), (28, 1024)])
def test_fc_input_follows_the_frame_size(size, features, impl):
    assert flat_features(size, 64, 5) == features
    model = build_model(ModelConfig(impl=impl), (4, 2, size, size))
    assert model.fc.in_features == features
    spk, mem = model(torch.rand(4, 3, 2, size, size) * 3)
    assert spk.shape == mem.shape == (4, 3, 10)
    assert set(spk.unique().tolist()) <= {0.0, 1.0}


def test_layer_sizes_are_the_original_architecture():
    model = build_model(ModelConfig(), (25, 2, 34, 34))
    assert (model.conv1.in_channels, model.conv1.out_channels, model.conv1.kernel_size) == (2, 12, (5, 5))
    assert (model.conv2.in_channels, model.conv2.out_channels) == (12, 64)
    assert model.fc.out_features == 10


def test_prediction_is_the_class_with_most_spikes():
    spk = torch.zeros(5, 2, 10)
    spk[:, 0, 7] = 1
    spk[:2, 1, 3] = 1
    spk[:3, 1, 4] = 1
    assert spike_counts(spk)[1, 4] == 3
    assert predict(spk).tolist() == [7, 4]


def test_bad_frame_shapes_are_refused():
    with pytest.raises(ValueError, match="too small"):
        flat_features(10, 64, 5)
    with pytest.raises(ValueError, match="expected frames"):
        build_model(ModelConfig(), (4, 1, 34, 34))
