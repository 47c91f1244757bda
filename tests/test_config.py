import argparse
import json

import pytest

from mzsr.config import add_config_args, build_config
from mzsr.train.meta import MetaConfig
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
