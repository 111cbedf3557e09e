"""The parameter-name and view checks shared by config tables and ``mmocc train``."""

import pytest

from mmocc.evaluation.config import ConfigError, ModelConfig
from mmocc.evaluation.models import check_model_params, resolve_views

VIEWS = ["dorsal", "lateral"]


def test_resolve_views_by_name_and_position():
    assert resolve_views(None, VIEWS) is None
    assert resolve_views([1, "dorsal"], VIEWS) == ["lateral", "dorsal"]
    with pytest.raises(ConfigError, match=r"^view position 2 is out of range; the dataset has views"):
        resolve_views([2], VIEWS)
    with pytest.raises(ConfigError, match=r"^\[models.m\] view 'dorsl' .*did you mean 'dorsal'"):
        resolve_views(["dorsl"], VIEWS, "[models.m]")


def test_model_config_uses_the_shared_view_resolution():
    model = ModelConfig.from_dict("m", {"kind": "baseline", "views": [1]})
    assert model.resolve_views(VIEWS) == ["lateral"]


def test_check_model_params_names_values_and_reserved():
    check_model_params("mmocc", {"epochs": 2, "views": ["a"]}, "--param")
    with pytest.raises(ConfigError, match="unknown parameter 'filter' in --param.*did you mean 'filters'"):
        check_model_params("mmocc", {"filter": [4]}, "--param", noun="parameter")
    with pytest.raises(ConfigError, match="must not set 'device': use --device"):
        check_model_params("mmocc", {"device": "cpu"}, "--param", reserved={"device": "use --device"})
    with pytest.raises(ConfigError, match="must not set 'random_state': the runner sets it"):
        check_model_params("baseline", {"random_state": 1}, "[models.b]")
    with pytest.raises(ConfigError, match=r"^\[models.b\]: .*fusion 'late2'"):
        check_model_params("baseline", {"fusion": "late2"}, "[models.b]")


def test_cli_train_checks_params_before_loading_data(capsys):
    from mmocc.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--data", "nowhere", "--normal", "a", "--out", "m", "-p", "device=cpu"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "must not set 'device': use --device" in err
