import dataclasses

import pytest

from affectlib import profiles


def test_get_applies_overrides_and_leaves_the_preset_unchanged():
    p = profiles.get("cpu", epochs=7, seeds=[3, 4])
    assert p.epochs == 7 and p.seeds == (3, 4)
    assert profiles.get("cpu") == profiles.PROFILES["cpu"] and profiles.get("cpu").epochs != 7


def test_profiles_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        profiles.get("smoke").epochs = 3


def test_unknown_profile_and_unknown_field_are_named_in_the_error():
    with pytest.raises(KeyError, match="nosuch"):
        profiles.get("nosuch")
    with pytest.raises(KeyError, match="epoch_count"):
        profiles.get("cpu", epoch_count=2)


def test_smoke_is_smaller_than_cpu_and_paper_uses_the_papers_settings():
    s, c, p = (profiles.get(n) for n in ("smoke", "cpu", "paper"))
    assert s.frames_per_video * s.n_train_subjects < c.frames_per_video * c.n_train_subjects
    assert (p.image_size, p.batch_size, p.lr_backbone, p.lr_heads) == (224, 256, 1e-3, 1e-2)
    assert p.backbone == "resnet18"


def test_parse_override_types_values_from_the_command_line():
    assert profiles.parse_override("epochs=4") == ("epochs", 4)
    assert profiles.parse_override("lr_heads=0.02") == ("lr_heads", 0.02)
    assert profiles.parse_override("small_input=false") == ("small_input", False)
    assert profiles.parse_override("seeds=0,1") == ("seeds", (0, 1))
    with pytest.raises(KeyError):
        profiles.parse_override("nonsense=1")
    with pytest.raises(ValueError):
        profiles.parse_override("epochs")


def test_environment_overrides_only_when_set(monkeypatch):
    monkeypatch.delenv(profiles.PROFILE_ENV, raising=False)
    monkeypatch.delenv(profiles.RESULTS_ENV, raising=False)
    assert profiles.resolve_profile_name("cpu") == "cpu"
    assert profiles.results_root("results") == "results"
    monkeypatch.setenv(profiles.PROFILE_ENV, "smoke")
    monkeypatch.setenv(profiles.RESULTS_ENV, "/tmp/x")
    assert profiles.resolve_profile_name("cpu") == "smoke"
    assert profiles.results_root("results") == "/tmp/x"


def test_changing_a_profiles_extra_dict_leaves_the_preset_alone():
    p = profiles.get("cpu")
    p.extra["x"] = 1
    assert "x" not in profiles.get("cpu").extra


def test_extra_overrides_join_the_profiles_own_entries():
    from affectlib.cli_train import parse_set

    p = profiles.get("smoke", **parse_set(["extra.log_every=4"]))
    assert p.extra == {**profiles.get("smoke").extra, "log_every": 4}
    assert p.extra["feature_scale"] == 16.0  # not dropped by another entry's override
    assert profiles.get("smoke").extra == profiles.PROFILES["smoke"].extra  # preset unchanged


def test_an_unknown_precision_is_refused_naming_the_choices():
    assert profiles.get("cpu", precision="fp32").precision == "fp32"
    with pytest.raises(ValueError, match="precision must be one of .*'bf16'.*got 'fp16'"):
        profiles.get("cpu", precision="fp16")
