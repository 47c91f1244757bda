import argparse
import json

import pytest

from mzsr.config import add_config_args, build_config
from mzsr.train.meta import MetaConfig
from mzsr.train.kernel import KernelConfig
from mzsr.train.pretrain import PretrainConfig


def parse(cls, argv: list[str]):
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_config_args(parser, cls)
    return build_config(cls, parser.parse_args(argv))


def test_options_override_defaults_with_their_types():
    cfg = parse(MetaConfig, ["--meta-lr", "3e-5", "--val-steps", "0", "2", "--learn-step-lrs", "yes",
                             "--downsample", "bicubic", "--batch-tasks", "false"])
    assert cfg.meta_lr == 3e-5 and cfg.val_steps == [0, 2] and cfg.learn_step_lrs is True
    assert cfg.downsample == "bicubic" and cfg.batch_tasks == "false"
    assert parse(MetaConfig, []) == MetaConfig()


@pytest.mark.parametrize("option, value", [("--precision", "fp64"), ("--downsample", "nearest"),
                                           ("--batch-tasks", "yes")])
def test_a_choice_outside_its_values_is_refused_by_the_parser(option, value):
    with pytest.raises(argparse.ArgumentError, match="invalid choice"):
        parse(MetaConfig, [option, value])


def test_help_lists_the_choices():
    parser = argparse.ArgumentParser()
    add_config_args(parser, PretrainConfig)
    assert "{fp32,bf16,fp16}" in parser.format_help()


def test_a_config_file_is_checked_too(tmp_path):
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"precision": "bf16", "steps": 7}))
    cfg = parse(MetaConfig, ["--config", str(path), "--steps", "9"])
    assert cfg.precision == "bf16" and cfg.steps == 9  # the option beats the file
    path.write_text(json.dumps({"precision": "half"}))
    with pytest.raises(ValueError, match="cfg.json: precision must be one of fp32, bf16, fp16, not 'half'"):
        parse(MetaConfig, ["--config", str(path)])
    path.write_text(json.dumps({"presicion": "bf16"}))
    with pytest.raises(ValueError, match="cfg.json: unknown config keys: presicion"):
        parse(MetaConfig, ["--config", str(path)])


def test_configs_built_in_python_are_checked():
    with pytest.raises(ValueError, match="batch_tasks"):
        MetaConfig(batch_tasks="yes")
    with pytest.raises(ValueError, match="downsample"):
        MetaConfig(downsample="Direct")


@pytest.mark.parametrize("cls", [MetaConfig, PretrainConfig, KernelConfig])
def test_every_option_has_one_line_of_help(cls):
    import dataclasses

    parser = argparse.ArgumentParser()
    add_config_args(parser, cls)
    helps = {a.dest: a.help for a in parser._actions if a.dest.startswith("cfg_")}
    assert set(helps) == {f"cfg_{f.name}" for f in dataclasses.fields(cls)}
    for dest, text in helps.items():
        own = text.rsplit(" (default: ", 1)[0]
        assert own and "\n" not in own and not own.startswith("("), dest
    if cls is MetaConfig:
        assert helps["cfg_meta_lr"] == "outer (Adam) learning rate (default: 0.0001)"
        assert helps["cfg_val_steps"].endswith("(default: 0 1 10)")


@pytest.mark.parametrize("values, message", [({"steps": -1}, "steps must be ≥ 0, got -1"),
                                             ({"batch": 0}, "batch must be ≥ 1, got 0"),
                                             ({"lr": 0.0}, "lr must be > 0, got 0"),
                                             ({"checkpoint_minutes": -1.0}, "checkpoint_minutes must be ≥ 0"),
                                             ({"steps": 2.5}, "steps must be an integer, not 2.5"),
                                             ({"channels_last": "no"}, "channels_last must be true or false"),
                                             ({"train_dirs": "a"}, "train_dirs must be a list of a string")])
def test_ranges_and_types_are_checked_on_construction(values, message):
    with pytest.raises(ValueError, match=message):
        PretrainConfig(**values)


def test_a_bad_value_is_named_by_where_it_came_from(tmp_path):
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"steps": -3}))
    with pytest.raises(ValueError, match="cfg.json: steps must be ≥ 0, got -3"):
        parse(MetaConfig, ["--config", str(path)])
    with pytest.raises(ValueError, match="^--steps must be ≥ 0, got -2$"):
        parse(MetaConfig, ["--config", str(path), "--steps", "-2"])
    parser = argparse.ArgumentParser()
    add_config_args(parser, MetaConfig)
    with pytest.raises(ValueError, match="^runs/x: saved config: patch must be ≥ 1, got 0$"):
        build_config(MetaConfig, parser.parse_args([]), {"patch": 0}, "runs/x: saved config")
    path.write_text("{")
    with pytest.raises(ValueError, match="cfg.json: not valid JSON"):
        parse(MetaConfig, ["--config", str(path)])
    with pytest.raises(ValueError, match="nothere.json: cannot read config file"):
        parse(MetaConfig, ["--config", str(tmp_path / "nothere.json")])


def test_retired_options_are_dropped_with_a_warning(tmp_path):
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"ema": 0.95, "meta_lr_warmup": 30, "steps": 7}))
    with pytest.warns(UserWarning, match="old.json: ignoring retired options ema, meta_lr_warmup"):
        cfg = parse(MetaConfig, ["--config", str(path)])
    assert cfg.steps == 7
    with pytest.raises(TypeError):
        MetaConfig(ema=0.9)  # gone from the config itself
