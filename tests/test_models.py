"""Models: output contract of every backbone, normalisation, weights from local files."""

from __future__ import annotations

import warnings

import pytest
import torch
from safetensors.torch import save_file

from affectlib import models
from affectlib.models import BACKBONES, ModelConfig, build_model

torch.manual_seed(0)


def _images(b: int = 2, size: int = 32) -> torch.Tensor:
    return torch.randint(0, 256, (b, 3, size, size), dtype=torch.uint8)


@pytest.mark.parametrize("small_input", [False, True])
@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_every_backbone_returns_the_task_dict_with_finite_outputs(backbone, small_input):
    model = build_model(ModelConfig(backbone=backbone, small_input=small_input)).eval()
    with torch.no_grad():
        out = model(_images(2, 32))
    dim = model.feat_dim
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "expr": (2, 8),
        "au": (2, 12),
        "va": (2, 2),
        "feat": (2, dim),
    }
    assert all(torch.isfinite(v).all() for v in out.values())
    assert out["va"].abs().max() <= 1.0
    torch.testing.assert_close(out["feat"].norm(dim=1), torch.ones(2))


def test_small_input_keeps_a_spatial_map_on_32_px_images():
    seen = {}
    for small in (False, True):
        trunk = build_model(ModelConfig(small_input=small)).backbone.eval()
        trunk.layer4.register_forward_hook(lambda m, i, o, s=small: seen.update({s: o.shape}))
        with torch.no_grad():
            trunk(torch.zeros(1, 3, 32, 32))
    assert seen[False][-2:] == (1, 1) and seen[True][-2:] == (4, 4)


def test_model_normalises_uint8_and_unit_float_images_identically():
    model = build_model(ModelConfig(small_input=True)).eval()
    x = _images(3, 32)
    with torch.no_grad():
        from_uint8 = model(x)["expr"]
        from_float = model(x.float() / 255)["expr"]
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        by_hand = model.heads(
            torch.nn.functional.normalize(model.backbone((x.float() / 255 - mean) / std), dim=1)
        )["expr"]
    torch.testing.assert_close(from_uint8, from_float)
    torch.testing.assert_close(from_uint8, by_hand)


def test_model_rejects_images_of_the_wrong_shape_or_dtype():
    model = build_model(ModelConfig(small_input=True))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.zeros(2, 1, 32, 32))
    with pytest.raises(TypeError, match="uint8 or floating"):
        model(torch.zeros(2, 3, 32, 32, dtype=torch.int32))


def test_config_errors_name_the_bad_field():
    with pytest.raises(ValueError, match="unknown backbone 'vgg'"):
        build_model(ModelConfig(backbone="vgg"))
    with pytest.raises(ValueError, match="dropout"):
        build_model(ModelConfig(dropout=1.0))


def test_register_backbone_warns_when_replacing_a_builder():
    def tiny(cfg):
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(4)), 4

    try:
        models.register_backbone("tiny-test")(tiny)
        with pytest.warns(UserWarning, match="already registered"):
            models.register_backbone("tiny-test")(tiny)
        out = build_model(ModelConfig(backbone="tiny-test"))(_images(2, 8))
        assert out["feat"].shape == (2, 4)
    finally:
        BACKBONES.pop("tiny-test", None)


def test_param_groups_put_backbone_and_heads_at_their_learning_rates():
    model = build_model(ModelConfig())
    groups = models.param_groups(model, lr_backbone=1e-3, lr_heads=1e-2)
    assert [(g["name"], g["lr"]) for g in groups] == [("backbone", 1e-3), ("heads", 1e-2)]
    ids = [{id(p) for p in g["params"]} for g in groups]
    assert ids[0] == {id(p) for p in model.backbone.parameters()}
    assert not ids[0] & ids[1] and len(ids[0] | ids[1]) == len(list(model.parameters()))
    torch.optim.Adam(groups)  # a valid optimiser specification


def _two_models() -> tuple[models.MultiTaskNet, models.MultiTaskNet]:
    cfg = ModelConfig(small_input=True)
    torch.manual_seed(1)
    source = build_model(cfg)
    torch.manual_seed(2)
    return source, build_model(cfg)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("fmt", ["safetensors", "pt", "pt-wrapped"])
def test_load_weights_round_trips_a_full_checkpoint(tmp_path, fmt):
    source, target = _two_models()
    assert not _same_weights(source, target)
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    path = tmp_path / ("w.safetensors" if fmt == "safetensors" else "w.pt")
    if fmt == "safetensors":
        save_file(state, str(path))
    else:
        torch.save({"state_dict": state, "epoch": 3} if fmt == "pt-wrapped" else state, path)
    report = models.load_weights(target, path)
    assert _same_weights(source, target)
    assert report.missing == [] and report.unexpected == []


def test_a_backbone_checkpoint_reports_the_missing_heads(tmp_path):
    source, target = _two_models()
    path = tmp_path / "trunk.safetensors"
    save_file({k: v.contiguous() for k, v in source.backbone.state_dict().items()}, str(path))
    with pytest.raises(ValueError, match=r"missing keys \[au_head.bias"):
        models.load_weights(target, path)
    with pytest.warns(UserWarning, match="missing"):
        report = models.load_weights(target, path, strict=False)
    assert "expr_head.0.weight" in report.missing and report.unexpected == []
    assert _same_weights(source.backbone, target.backbone)
    assert not torch.equal(source.au_head.weight, target.au_head.weight)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        models.load_weights(target.backbone, path)  # strict into the backbone itself


def test_the_model_builder_starts_fresh_heads_quietly_but_not_a_partial_backbone(tmp_path):
    source, _ = _two_models()
    trunk = {k: v.contiguous() for k, v in source.backbone.state_dict().items()}
    path = tmp_path / "trunk.safetensors"
    save_file(trunk, str(path))
    cfg = ModelConfig(small_input=True, weights=str(path))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # heads fresh from a backbone-only file: as intended
        model = build_model(cfg)
    assert _same_weights(source.backbone, model.backbone)
    partial = tmp_path / "partial.safetensors"
    save_file({k: v for k, v in trunk.items() if "layer4" not in k}, str(partial))
    with pytest.warns(UserWarning, match=r"missing \[.*backbone\.layer4"):
        build_model(ModelConfig(small_input=True, weights=str(partial)))


def test_load_weights_reports_shape_mismatches_and_unexpected_keys(tmp_path):
    small = build_model(ModelConfig(small_input=True))
    path = tmp_path / "small.pt"
    torch.save(small.state_dict(), path)
    with pytest.raises(ValueError, match=r"backbone.conv1.weight: file \(64, 3, 3, 3\)"):
        models.load_weights(build_model(ModelConfig()), path, strict=False)
    extra = tmp_path / "extra.pt"
    torch.save({**small.state_dict(), "proj.weight": torch.zeros(2)}, extra)
    with pytest.raises(ValueError, match=r"unexpected keys \[proj.weight\]"):
        models.load_weights(build_model(ModelConfig(small_input=True)), extra)
    with pytest.raises(FileNotFoundError, match="not found"):
        models.load_weights(small, tmp_path / "absent.pt")


def test_build_model_loads_the_configured_weights_file(tmp_path):
    source, _ = _two_models()
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    loaded = build_model(ModelConfig(small_input=True, weights=str(path)))
    assert _same_weights(source, loaded)


def test_temporal_gru_returns_per_frame_outputs():
    encoder = build_model(ModelConfig())
    net = models.TemporalGRU(encoder, hidden=16).eval()
    clips = torch.randint(0, 256, (2, 3, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        out = net(clips)
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "expr": (2, 3, 8),
        "au": (2, 3, 12),
        "va": (2, 3, 2),
        "feat": (2, 3, 16),
    }
    # frames are encoded independently and the GRU is causal: frame 0 ignores later frames
    changed = clips.clone()
    changed[:, 2] = 0
    with torch.no_grad():
        torch.testing.assert_close(net(changed)["expr"][:, 0], out["expr"][:, 0])
    groups = models.param_groups(net)
    assert {id(p) for p in groups[0]["params"]} == {id(p) for p in encoder.backbone.parameters()}
    with pytest.raises(ValueError, match="clips"):
        net(clips[0])


def test_from_profile_reads_the_profile_and_its_model_extra_keys():
    from affectlib import profiles

    cpu = profiles.get("cpu", extra={"feature_scale": 16.0, "dropout": 0.2, "expr_weights": False})
    cfg = ModelConfig.from_profile(cpu)
    assert (cfg.backbone, cfg.small_input, cfg.weights) == (cpu.backbone, cpu.small_input, None)
    assert cfg.stem_stride == models.DEFAULT_STEM_STRIDE
    assert (cfg.feature_scale, cfg.dropout) == (16.0, 0.2)  # a method option is not the model's
    assert ModelConfig.from_profile(cpu.replace(weights="w.pt")).weights == "w.pt"
    assert ModelConfig.from_profile(cpu.replace(weights="w.pt"), weights=None).weights is None
    assert ModelConfig.from_profile(cpu.replace(extra={"stem_stride": 1})).stem_stride == 1
