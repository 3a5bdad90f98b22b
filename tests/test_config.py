import pytest

from snn_lib.config import Config, DataConfig, ModelConfig, TrainConfig, config_from_dict, config_to_dict
from snn_lib.errors import ConfigError


def test_defaults_are_valid_and_round_trip():
    cfg = Config(exp_id="a", data=DataConfig(crop=28), model=ModelConfig(channels=(8, 16)))
    assert cfg.validate() is cfg
    back = config_from_dict(config_to_dict(cfg))
    assert back == cfg
    assert back.model.channels == (8, 16)


@pytest.mark.parametrize("change, key", [
    (lambda c: setattr(c.train, "num_epochs", -1), "train.num_epochs"),
    (lambda c: setattr(c.train, "device", "gpu7"), "train.device"),
    (lambda c: setattr(c.data, "name", "mnist"), "data.name"),
    (lambda c: setattr(c.data, "subset", 0), "data.subset"),
    (lambda c: setattr(c.data, "crop", 40), "data.crop"),
    (lambda c: setattr(c.model, "beta", 1.5), "model.beta"),
    (lambda c: setattr(c.train, "lr", 0.0), "train.lr"),
    (lambda c: setattr(c, "exp_id", "a/b"), "exp_id"),
])
def test_invalid_values_name_the_setting(change, key):
    cfg = Config()
    change(cfg)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        cfg.validate()


def test_unknown_key_is_refused():
    with pytest.raises(ConfigError, match="train.epochs"):
        config_from_dict({"train": {"epochs": 3}})
    assert config_from_dict({"train": {"num_epochs": 3}}).train == TrainConfig(num_epochs=3)
