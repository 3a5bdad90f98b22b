import re

import pytest

from snn_lib.config import (Config, DataConfig, ModelConfig, TrainConfig, apply_overrides, check_overrides,
                            config_from_dict, config_from_yaml, config_to_dict, config_to_yaml, to_overrides)
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
    (lambda c: setattr(c.model, "reset", "none"), "model.reset"),
    (lambda c: setattr(c.model, "pool", "min"), "model.pool"),
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


def test_every_option_name_is_accepted_by_the_code_that_acts_on_it():
    """The option tuples of snn_lib.config are the names the implementations accept."""
    import torch

    from snn_lib.config import AMP_MODES, LIF_IMPLS, LOSSES, POOLS, RESETS, SURROGATES
    from snn_lib.device import autocast, check_amp
    from snn_lib.kernels import LIF_IMPLS as LIF_KERNELS, lif_fused, lif_kernel, pool2d
    from snn_lib.model import make_loss
    from snn_lib.neurons import lif_step, spike_fn

    for name in LOSSES:
        assert make_loss(name)(torch.zeros(3, 2, 10), torch.tensor([0, 1])).dim() == 0
    for name in SURROGATES:
        spike_fn(name)
    assert LIF_IMPLS == ("auto", *LIF_KERNELS)
    for name in LIF_KERNELS:
        lif_kernel(name)
    for name in RESETS:
        lif_fused(torch.zeros(2, 1), reset=name)
        lif_step(torch.zeros(1), torch.zeros(1), reset=name)
    for name in POOLS:
        pool2d(torch.zeros(1, 1, 2, 2), name)
    for name in AMP_MODES:
        check_amp(name, torch.device("cpu"))
        with autocast(name, torch.device("cpu")):
            assert torch.is_autocast_enabled("cpu") == (name != "off")


def test_yaml_round_trip():
    cfg = Config(exp_id="demo", seed=3, model=ModelConfig(channels=(4, 8), beta=0.25))
    text = config_to_yaml(cfg)
    assert "exp_id: demo\n" in text and "beta: 0.25\n" in text
    assert config_from_yaml(text) == cfg


def test_to_overrides_lists_only_what_differs_and_reads_back():
    cfg = Config(exp_id="with space", data=DataConfig(name="nmnist_sim", root="/tmp/it's"),
                 model=ModelConfig(channels=(4, 8)), train=TrainConfig(resume=True, lr=1e-3))
    items = to_overrides(cfg)
    assert items == ["exp_id='with space'", "data.name=nmnist_sim", "data.root='/tmp/it\\'s'",
                     "model.channels=[4,8]", "train.lr=0.001", "train.resume=true"]
    assert apply_overrides(Config(), items) == cfg
    assert to_overrides(Config()) == []
    base = Config(seed=5)
    assert to_overrides(Config(seed=5, exp_id="b"), base) == ["exp_id=b"]


@pytest.mark.parametrize("items, message", [
    (["foo=1"], "unknown setting 'foo'"),
    (["train.epochs=3"], "unknown setting 'train.epochs'; known settings: train.num_epochs"),
    (["train.num_epochs=abc"], "train.num_epochs=abc is not valid"),
    (["seed=0,1"], "a sweep needs snn-train -m"),
    (["no_equals_sign"], "is not a key=value setting"),
    (["train.init_from=exp/sweep/seed=0/best.pt"], "quote a value .* \"train.init_from='exp/sweep/seed=0/best.pt'\""),
])
def test_apply_overrides_refuses_in_one_line(items, message):
    with pytest.raises(ConfigError, match=message) as err:
        apply_overrides(Config(), items)
    assert "\n" not in str(err.value)


def test_apply_overrides_types_values_as_the_command_line():
    cfg = apply_overrides(Config(), ["train.num_epochs=3", "model.channels=[4,8]", "data.crop=28",
                                     "train.resume=true", "train.lr=1e-3"])
    assert (cfg.train.num_epochs, cfg.model.channels, cfg.data.crop, cfg.train.resume, cfg.train.lr) == \
        (3, (4, 8), 28, True, 1e-3)


def test_check_overrides_checks_every_value_of_a_sweep_and_leaves_hydra_items_alone():
    check_overrides(Config, ["seed=0,1,2", "train.lr=1e-3,2e-3", "+experiment=x", "hydra.run.dir=.", "-m"])
    with pytest.raises(ConfigError, match="seed=0,x is not valid"):
        check_overrides(Config, ["seed=0,x"])
    with pytest.raises(ConfigError, match="unknown setting 'train.epoch'"):
        check_overrides(Config, ["train.epoch=1,2"])


def test_every_config_field_says_what_it_means():
    """The API page shows each field's ``#:`` comment (Sphinx attribute docs); a new field needs one."""
    pycode = pytest.importorskip("sphinx.pycode")
    from dataclasses import fields

    from snn_lib import config

    docs = pycode.ModuleAnalyzer.for_module("snn_lib.config").find_attr_docs()
    missing = [f"{cls.__name__}.{f.name}" for cls in (config.DataConfig, config.ModelConfig, config.TrainConfig,
                                                       config.Config)
               for f in fields(cls) if not "".join(docs.get((cls.__name__, f.name), [])).strip()]
    assert not missing, f"snn_lib/config.py: write a `#:` comment above {missing}, saying what each means"
    # napoleon reads "words: more" on a comment's first line as "type: description" (a broken type on
    # the API page), so a first line has no colon outside ``literals`` and :roles:`targets`.
    typed = [f"{cls}.{name}" for (cls, name), lines in docs.items() if cls.endswith("Config") and lines
             and ":" in re.sub(r"``.*?``|:\w+:`[^`]*`", "", lines[0])]
    assert not typed, f"snn_lib/config.py: rephrase the first line of {typed} without a colon"
