"""The training loop on the smoke profile: determinism, kill-and-resume, the non-finite stop,
two processes under torchrun; and the small pieces (scores, schedule, command line).

Runs are tiny: 96 training faces of 32 px, ResNet-18 with the standard stem, batch 32, two epochs
of three steps, a checkpoint every two steps.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import f1_score

from affectlib import checkpoints, distributed, methods, metrics, train
from affectlib.cli_train import main, parse_set
from affectlib.data import assembly

ROOT = Path(__file__).resolve().parents[1]
RUN = ["--profile", "smoke", "--set", "small_input=false", "--no-progress"]
SHORT = [*RUN, "--set", "epochs=2", "--set", "checkpoint_every=2"]  # 6 steps: ckpt 2, 3, 4, 6

# A training process that SIGKILLs itself: "step N" after the forward pass of step N + 1 (before
# its update), "save N" while writing the checkpoint of step N (half a temporary file on disk).
KILLER = r"""
import dataclasses, io, os, signal, sys
import torch
from affectlib import checkpoints, methods
from affectlib.cli_train import main

mode, at = sys.argv[1], int(sys.argv[2])
die = lambda: os.kill(os.getpid(), signal.SIGKILL)
if mode == "step":
    spec = methods.METHODS["mfar"]
    def loss(model, batch, state, ctx):
        out = spec.loss(model, batch, state, ctx)
        if ctx.step == at:
            die()
        return out
    methods.METHODS["mfar"] = dataclasses.replace(spec, loss=loss)
else:
    save = checkpoints.atomic_torch_save
    def partial(obj, path):
        if obj["step"] == at:
            buf = io.BytesIO()
            torch.save(obj, buf)
            (path.parent / f".{path.name}.killed.tmp").write_bytes(buf.getvalue()[: buf.tell() // 2])
            die()
        save(obj, path)
    checkpoints.atomic_torch_save = partial
sys.exit(main(sys.argv[3:]))
"""


def _train(out: Path, *args: str) -> int:
    return main(["mfar", "--out", str(out), *args])


def _killed(out: Path, mode: str, at: int) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-c", KILLER, mode, str(at), "mfar", "--out", str(out), *SHORT]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


def _step_of(out: Path) -> int:
    return torch.load(out / checkpoints.CHECKPOINT, weights_only=True)["step"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted run of SHORT."""
    out = tmp_path_factory.mktemp("reference") / "run"
    assert _train(out, *SHORT) == 0
    return out


# --- whole runs -----------------------------------------------------------------------------------
def test_a_run_writes_metrics_predictions_and_a_csv_row_per_epoch(reference):
    final = json.loads((reference / "metrics.json").read_text())
    assert set(train.SCORES) <= set(final) and (final["last_epoch"], final["last_step"]) == (2, 6)
    assert final["overall"] == pytest.approx(final["expr_f1"] + final["au_f1"] + final["va"])
    csv = (reference / "metrics.csv").read_text().splitlines()
    assert len(csv) == 3 and csv[0].startswith("epoch,step,train_loss")
    # the epoch with the best validation overall is the result; its model scores the test split
    history = pd.read_csv(reference / "metrics.csv")
    best = history.loc[history["overall"].idxmax()]
    assert (final["epoch"], final["step"]) == (best["epoch"], best["step"])
    assert final["selected_on"] == "overall" and final["overall"] == pytest.approx(best["overall"])
    pred = dict(np.load(reference / "predictions_val.npz"))
    assert pred["expr_prob"].shape == (48, 8) and pred["au_prob"].shape == (48, 12)
    rescored = metrics.score(pred)
    assert all(rescored[k] == pytest.approx(final[k]) for k in train.SCORES)
    test = dict(np.load(reference / "predictions_test.npz"))
    assert len(test["index"]) == 48 and not np.array_equal(test["va_true"], pred["va_true"])
    retested = metrics.score(test)
    assert all(retested[k] == pytest.approx(final[f"test_{k}"]) for k in train.SCORES)
    config = json.loads((reference / "config.json").read_text())
    assert config["method"] == "mfar" and config["train"]["lr_heads"] == 1e-2


def test_two_runs_with_one_seed_write_identical_metrics(reference, tmp_path):
    assert _train(tmp_path / "again", *SHORT) == 0
    for name in ("metrics.json", "metrics.csv"):
        assert (tmp_path / "again" / name).read_text() == (reference / name).read_text()
    a = np.load(reference / "predictions_val.npz")
    b = np.load(tmp_path / "again" / "predictions_val.npz")
    assert all(np.array_equal(a[k], b[k]) for k in a.files)


def test_a_run_killed_twice_resumes_to_exactly_the_uninterrupted_metrics(reference, tmp_path):
    out = tmp_path / "run"
    # killed while writing the epoch-end checkpoint of step 3: the step-2 one must survive whole
    assert _killed(out, "save", 3).returncode == -9
    assert _step_of(out) == 2 and list(out.glob(".checkpoint.pt.*"))
    # resumed inside epoch 1, killed in the middle of step 5, after the step-4 checkpoint
    second = _killed(out, "step", 4)
    assert second.returncode == -9, second.stderr[-2000:]
    assert _step_of(out) == 4 and not (out / "metrics.json").exists()
    # the same command again finishes the run
    assert _train(out, *SHORT) == 0
    for name in ("metrics.json", "metrics.csv"):
        assert (out / name).read_text() == (reference / name).read_text()
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["resumed_at_step"] == 4


def test_resume_refuses_a_checkpoint_of_another_configuration(reference):
    record = json.loads((reference / "config.json").read_text())
    assert checkpoints.load_checkpoint(reference / checkpoints.CHECKPOINT, record)["step"] == 6
    record["train"]["epochs"] = 3
    with pytest.raises(checkpoints.ConfigMismatch, match="train.epochs: checkpoint 2, now 3"):
        checkpoints.load_checkpoint(reference / checkpoints.CHECKPOINT, record)


def test_a_non_finite_loss_stops_the_run_naming_the_step_and_keeps_the_last_checkpoint(
    tmp_path, monkeypatch, capsys
):
    spec = methods.METHODS["mfar"]

    def nan_at_step_3(model, batch, state, ctx):
        loss, logs = spec.loss(model, batch, state, ctx)
        if ctx.step == 2:
            logs["loss_va"] = logs["loss_va"] * float("nan")
            loss = loss + logs["loss_va"]
        return loss, logs

    monkeypatch.setitem(methods.METHODS, "mfar", dataclasses.replace(spec, loss=nan_at_step_3))
    out = tmp_path / "run"
    assert _train(out, *SHORT) == 1
    err = capsys.readouterr().err
    assert "non-finite loss at step 3" in err and "loss_va=nan" in err
    assert _step_of(out) == 2 and not (out / "metrics.json").exists()


def test_two_processes_under_torchrun_train_and_rank_0_writes_the_metrics(tmp_path):
    out = tmp_path / "ddp"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "affectlib.cli_train", "mfar", "--out", str(out), *RUN,
    ]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    final = json.loads((out / "metrics.json").read_text())
    assert np.isfinite([final[k] for k in train.SCORES]).all()
    ckpt = torch.load(out / checkpoints.CHECKPOINT, weights_only=True)
    # 96 faces, 16 per process and step: 3 steps; each process's RNG state is saved
    assert ckpt["step"] == 3 and len(ckpt["per_process"]) == 2
    assert ckpt["config"]["world_size"] == 2


def _torchrun(out: Path, script: list[str], *args: str) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        *script, "mfar", "--out", str(out), *args,
    ]  # fmt: skip
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_two_processes_killed_and_resumed_under_torchrun_end_with_the_uninterrupted_metrics(
    tmp_path,
):
    # gloo on CPU; 96 faces, 16 per process and step: 3 steps an epoch, 6 in all, checkpoints
    # after steps 2, 3, 4 and 6. Both processes SIGKILL themselves in step 5 (after the step-4
    # checkpoint); torchrun stops; the same command resumes both from their saved states.
    reference = tmp_path / "reference"
    done = _torchrun(reference, ["-m", "affectlib.cli_train"], *SHORT)
    assert done.returncode == 0, done.stderr[-3000:]
    killer = tmp_path / "killer.py"
    killer.write_text(KILLER)
    out = tmp_path / "run"
    killed = _torchrun(out, [str(killer), "step", "4"], *SHORT)
    assert killed.returncode != 0 and _step_of(out) == 4
    assert not (out / "metrics.json").exists()
    resumed = _torchrun(out, ["-m", "affectlib.cli_train"], *SHORT)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for name in ("metrics.json", "metrics.csv"):
        assert (out / name).read_text() == (reference / name).read_text()
    assert json.loads((out / "provenance.json").read_text())["resumed_at_step"] == 4


# --- pieces ---------------------------------------------------------------------------------------
def test_score_takes_the_argmax_expression_and_aus_above_one_half():
    pred = {
        "expr_true": np.array([0, 1, 1, -1]),
        "expr_prob": np.array([[0.6, 0.4], [0.3, 0.7], [0.8, 0.2], [0.1, 0.9]]),
        "au_true": np.array([[1, 0], [1, 1], [0, 0], [-1, -1]]),
        "au_prob": np.array([[0.7, 0.5], [0.2, 0.9], [0.6, 0.1], [0.9, 0.9]]),
        "va_true": np.array([[0.1, 0.2], [0.4, -0.3], [-0.5, 0.0], [-5, -5]]),
        "va_pred": np.array([[0.0, 0.1], [0.5, -0.2], [-0.4, 0.1], [0.3, 0.3]]),
    }
    pred["expr_prob"] = np.pad(pred["expr_prob"], ((0, 0), (0, 6)))
    got = metrics.score(pred)
    exp = f1_score([0, 1, 1], [0, 1, 0], average="macro", labels=range(8), zero_division=0)
    au = np.mean([f1_score([1, 1, 0], [1, 0, 1]), f1_score([0, 1, 0], [0, 1, 0])])  # 0.5 -> 0
    assert got["expr_f1"] == pytest.approx(exp) and got["au_f1"] == pytest.approx(au)


def test_the_learning_rates_are_the_papers_two_constants():
    cfg = train.TrainConfig(epochs=1)
    lr = train.lr_schedule(cfg, 5)
    assert lr.shape == (5, 2) and (lr[:, 0] == 1e-3).all() and (lr[:, 1] == 1e-2).all()


def test_train_config_rejects_bad_values_by_name():
    with pytest.raises(ValueError, match="checkpoint_every"):
        train.TrainConfig(epochs=1, checkpoint_every=0)
    with pytest.raises(ValueError, match="epochs"):
        train.TrainConfig(epochs=0)


def test_set_reads_profile_fields_and_extra_entries():
    got = parse_set(["epochs=4", "extra.stem_stride=1", "extra.expr_weights=false", "extra.x=a"])
    assert got == {"epochs": 4, "extra": {"stem_stride": 1, "expr_weights": False, "x": "a"}}


def test_the_command_exits_2_naming_an_unknown_method_field_or_option(tmp_path, capsys):
    assert _train(tmp_path, "--set", "epoch=2") == 2
    assert "epoch" in capsys.readouterr().err
    assert main(["nosuch", "--out", str(tmp_path)]) == 2
    assert "nosuch" in capsys.readouterr().err
    assert _train(tmp_path / "x", *RUN, "--set", "extra.expr_weight=false") == 2
    assert "expr_weight" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_a_profile_that_asks_for_cuda_without_one_fails_clearly(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        distributed.resolve_device("cuda", distributed.Dist())


def test_the_reference_run_folder_can_be_copied_and_rerun_without_training(reference, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(reference, out)
    (out / "metrics.json").unlink()
    assert _train(out, *SHORT) == 0
    assert (out / "metrics.json").read_text() == (reference / "metrics.json").read_text()
    assert json.loads((out / "provenance.json").read_text())["resumed_at_step"] == 6


# --- several data sets in one run; methods owning their step --------------------------------------
@pytest.fixture(scope="module")
def smoke_root() -> Path:
    from affectlib import profiles
    from affectlib.data import generate

    return generate.ensure(profiles.get("smoke"), 0)


def test_build_multi_data_mixes_the_sets_and_masks_each_task_per_image(smoke_root):
    parts = [
        assembly.load_part(smoke_root, "affectnet"),
        assembly.load_part(smoke_root, "emotionet"),
    ]
    cols = ("AU1", "AU5", "AU12", "AU43")  # AU43: coded by neither file here
    data, record = assembly.build_multi_data(
        parts, image_size=16, batch_size=32, seed=0, au_columns=cols, progress=False
    )
    table = data.train_table
    assert len(table) == len(parts[0].train) + len(parts[1].train)
    aff = (table["source"] == "affectnet").to_numpy()
    assert table["path"][aff].str.startswith("affectnet/Manually_Annotated_Images/").all()
    assert table["path"][~aff].str.startswith("emotionet/images/").all()
    batch = next(iter(data.train))
    rows = batch["index"].numpy()
    in_aff = aff[rows]
    assert in_aff.any() and (~in_aff).any()  # one batch holds images of both sets
    assert not batch["au_mask"][in_aff].any()  # an AffectNet image feeds no AU loss
    assert not batch["has_expr"][~in_aff].any()  # an EmotioNet image feeds no expression loss
    expected = table.loc[rows, list(cols)].to_numpy() != -1
    assert (batch["au_mask"].numpy() == expected).all() and not expected[:, 3].any()
    assert batch["au_mask"][~in_aff][:, :3].all()
    assert len(data.val.labels) == len(parts[0].validation) + len(parts[1].validation)
    assert record["au_columns"] == list(cols)
    assert record["parts"]["emotionet"]["train_rows"] == len(parts[1].train)


class _Toy(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))
        self.heads = torch.nn.ModuleDict(
            {
                "expr": torch.nn.Linear(4, 3),
                "au": torch.nn.Linear(4, 2),
                "va": torch.nn.Linear(4, 2),
            }
        )

    def forward(self, x):
        z = self.backbone(x.float() / 255)
        return {k: h(z) for k, h in self.heads.items()} | {"feat": z}


def _toy_data() -> assembly.TrainData:
    from affectlib.data import datasets

    n = 8
    table = pd.DataFrame(
        {
            "expr": [0, 1, 2, 0, -1, -1, -1, -1],
            "AU1": [-1, -1, -1, -1, 1, 0, 1, 0],
            "AU2": [-1, -1, -1, -1, 0, 0, 1, 1],
            "valence": -5.0,
            "arousal": -5.0,
        }
    )
    images = np.random.default_rng(0).integers(0, 256, (n, 3, 8, 8), dtype=np.uint8)
    return assembly.TrainData(
        train=datasets.BatchLoader(table, images, datasets.RandomSampler(n, 0), 4, drop_last=True),
        val=datasets.BatchLoader(table, images, datasets.SequentialSampler(n), 4),
        train_table=table,
        score=lambda pred: {"n_val": float(len(pred["index"]))},
    )


def test_checkpoints_off_writes_none_and_a_custom_score_reaches_metrics_json(tmp_path):
    cfg = train.TrainConfig(epochs=1, progress=False, checkpoints=False)
    result = train.fit(_Toy(), methods.get("nc-mt"), _toy_data(), cfg, tmp_path / "run")
    final = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert final["n_val"] == 8.0 and result.metrics["n_val"] == 8.0 and "expr_f1" not in final
    assert not (tmp_path / "run" / checkpoints.CHECKPOINT).exists()
    assert "checkpoints" not in json.loads((tmp_path / "run" / "config.json").read_text())["train"]


def test_a_method_with_its_own_step_owns_forward_loss_and_backward(tmp_path):
    calls = []

    def step(net, method, batch, state, ctx):
        out = net(batch["weak"])
        loss = out["expr"].pow(2).mean()  # anything the loop cannot produce on its own
        loss.backward()
        calls.append(ctx.step)
        return loss.detach(), {"own": loss.detach()}

    spec = dataclasses.replace(methods.get("nc-mt"), name="own-step-test", step=step)
    model = _Toy()
    before = [p.detach().clone() for p in model.backbone.parameters()]
    cfg = train.TrainConfig(epochs=2, progress=False, checkpoints=False)
    result = train.fit(model, spec, _toy_data(), cfg, tmp_path / "run")
    assert calls == [0, 1, 2, 3]  # the step ran at every optimiser step, and the loop stepped
    assert "train_own" in result.history and "train_loss_expr" not in result.history
    assert all((a != b).any() for a, b in zip(before, model.backbone.parameters(), strict=True))


def test_load_part_warns_of_a_rejected_row_and_refuses_a_missing_split(smoke_root, tmp_path):
    import shutil

    shutil.copytree(smoke_root / "affectnet", tmp_path / "affectnet")
    val = tmp_path / "affectnet" / "validation.csv"
    header, first, *rest = val.read_text().splitlines()
    bad = first.rsplit(",", 3)[0] + ",99,0.1,0.2"  # expression code 99 does not exist
    val.write_text("\n".join([header, first, bad, *rest]) + "\n")
    with pytest.warns(UserWarning, match=r"1 of .* rows rejected .*validation\.csv:3") as seen:
        part = assembly.load_part(tmp_path, "affectnet")
    assert seen[0].filename == __file__  # the warning names the caller's line
    assert len(part.validation) == len(rest) + 1
    val.write_text(header + "\n")
    with pytest.raises(ValueError, match="no 'validation' rows"):
        assembly.load_part(tmp_path, "affectnet")


def test_the_epoch_with_the_best_validation_score_is_selected_and_nan_never_wins(tmp_path):
    # a score that rises, falls, then is NaN: epoch 2 is the run's result, not the last
    values = iter([0.1, 0.5, 0.3, float("nan")])
    data = dataclasses.replace(
        _toy_data(),
        score=lambda pred: {"s": next(values, -1.0)},  # -1.0: the final re-scoring
        select="s",
        test=_toy_data().val,
    )
    cfg = train.TrainConfig(epochs=4, progress=False, checkpoints=False)
    result = train.fit(_Toy(), methods.get("nc-mt"), data, cfg, tmp_path / "run")
    m = result.metrics
    assert (m["epoch"], m["last_epoch"], m["selected_on"]) == (2, 4, "s")
    assert m["s"] == 0.5 and len(result.test_predictions["index"]) == 8
    assert (tmp_path / "run" / "predictions_test.npz").exists()


def test_selection_on_a_score_that_is_never_finite_keeps_the_last_epoch(tmp_path):
    data = dataclasses.replace(_toy_data(), score=lambda pred: {"s": float("nan")}, select="s")
    cfg = train.TrainConfig(epochs=3, progress=False, checkpoints=False)
    result = train.fit(_Toy(), methods.get("nc-mt"), data, cfg, tmp_path / "run")
    assert result.metrics["epoch"] == 3 and not result.test_predictions


def test_selecting_on_a_score_the_data_does_not_produce_is_an_error(tmp_path):
    data = dataclasses.replace(_toy_data(), select="overall")
    cfg = train.TrainConfig(epochs=1, progress=False, checkpoints=False)
    with pytest.raises(ValueError, match="select 'overall' is none of the scores"):
        train.fit(_Toy(), methods.get("nc-mt"), data, cfg, tmp_path / "run")


def test_the_cosine_schedule_halves_at_mid_run_and_the_constant_one_never_moves():
    cfg = train.TrainConfig(epochs=1, lr_backbone=1e-3, lr_heads=1e-2, schedule="cosine")
    s = train.lr_schedule(cfg, 4)  # t/T = 0, 1/4, 1/2, 3/4
    by_hand = [(1 + np.cos(np.pi * k / 4)) / 2 for k in range(4)]  # 1, 0.854, 0.5, 0.146
    assert s[:, 0] == pytest.approx(1e-3 * np.array(by_hand))
    assert s[:, 1] == pytest.approx(1e-2 * np.array(by_hand)) and s[2, 1] == pytest.approx(5e-3)
    flat = train.lr_schedule(dataclasses.replace(cfg, schedule="constant"), 4)
    assert (flat == [1e-3, 1e-2]).all()
    with pytest.raises(ValueError, match="schedule must be one of"):
        train.TrainConfig(epochs=1, schedule="step")


def test_a_method_sees_the_training_predictions_before_each_epoch(tmp_path):
    seen = []
    spec = dataclasses.replace(
        methods.get("nc-mt"),
        name="train-predictions-test",
        on_train_predictions=lambda state, ctx, pred: seen.append((ctx.epoch, len(pred["index"]))),
    )
    data = dataclasses.replace(_toy_data(), train_eval=_toy_data().val)
    cfg = train.TrainConfig(epochs=2, progress=False, checkpoints=False)
    train.fit(_Toy(), spec, data, cfg, tmp_path / "run")
    assert seen == [(1, 8), (2, 8)]


def test_compile_wraps_the_trained_network_and_is_recorded_only_when_on(
    reference, tmp_path, monkeypatch
):
    compiled = []

    def spy(net, **kwargs):  # stands in for torch.compile: the same module, the call recorded
        compiled.append(type(net).__name__)
        return net

    monkeypatch.setattr(torch, "compile", spy)
    assert _train(tmp_path / "c", *SHORT, "--set", "compile=true") == 0
    assert len(compiled) == 1
    # an identity "compilation" trains exactly the uncompiled run
    a = json.loads((reference / "metrics.json").read_text())
    b = json.loads((tmp_path / "c" / "metrics.json").read_text())
    assert {k: a[k] for k in train.SCORES} == {k: b[k] for k in train.SCORES}
    assert json.loads((tmp_path / "c" / "config.json").read_text())["train"]["compile"] is True
    assert "compile" not in json.loads((reference / "config.json").read_text())["train"]


def test_reading_the_losses_every_few_steps_trains_the_same_model(reference, tmp_path):
    out = tmp_path / "windowed"
    assert _train(out, *SHORT, "--set", "extra.log_every=4") == 0
    a = json.loads((reference / "metrics.json").read_text())
    b = json.loads((out / "metrics.json").read_text())
    assert a == b  # the scores, the selected epoch: the same model
    ha, hb = pd.read_csv(reference / "metrics.csv"), pd.read_csv(out / "metrics.csv")
    # the logged training losses: the same means, summed on the device in float32
    pd.testing.assert_frame_equal(ha, hb, rtol=1e-5)
    assert json.loads((out / "config.json").read_text())["train"]["log_every"] == 4


def test_a_non_finite_loss_read_in_a_window_stops_the_run_before_any_checkpoint_of_it(
    tmp_path, monkeypatch, capsys
):
    spec = methods.METHODS["mfar"]

    def nan_at_step_4(model, batch, state, ctx):
        loss, logs = spec.loss(model, batch, state, ctx)
        if ctx.step == 3:
            logs["loss_va"] = logs["loss_va"] * float("nan")
            loss = loss + logs["loss_va"]
        return loss, logs

    monkeypatch.setitem(methods.METHODS, "mfar", dataclasses.replace(spec, loss=nan_at_step_4))
    out = tmp_path / "run"
    # 3 steps per epoch, checkpoints after steps 2, 3 (epoch end), 4, 6; windows end at 2, 3, 4
    assert _train(out, *SHORT, "--set", "extra.log_every=5") == 1
    err = capsys.readouterr().err
    assert "non-finite loss at step 4 (read once per window" in err and "loss_va=nan" in err
    assert _step_of(out) == 3 and not (out / "metrics.json").exists()


def test_auto_precision_is_bf16_on_cuda_and_on_a_cpu_with_bf16_hardware_only(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(distributed, "cpu_runs_bf16", lambda: True)
    assert distributed.resolve_precision(cpu) == "bf16"
    assert distributed.resolve_precision(cpu, "fp32") == "fp32"
    monkeypatch.setattr(distributed, "cpu_runs_bf16", lambda: False)
    assert distributed.resolve_precision(cpu) == "fp32"
    assert distributed.resolve_precision(cpu, "bf16") == "bf16"
    assert distributed.resolve_precision(cuda) == "bf16"
    with pytest.raises(ValueError, match="precision must be one of"):
        distributed.resolve_precision(cpu, "half")
    with pytest.raises(ValueError, match="precision must be one of"):
        train.TrainConfig(epochs=1, precision="half")


@pytest.mark.parametrize("precision", ["bf16", "fp32", "auto"])
def test_the_forward_runs_at_the_precision_and_every_loss_reads_float32_outside_autocast(
    tmp_path, monkeypatch, precision
):
    monkeypatch.setattr(distributed, "cpu_runs_bf16", lambda: True)  # "auto" resolves to bf16
    seen = []
    nc_mt = methods.get("nc-mt")

    def loss(model, batch, state, ctx):
        inner = []
        hook = model.backbone[1].register_forward_hook(lambda m, i, o: inner.append(o.dtype))
        out = model(batch["weak"])
        hook.remove()
        seen.append(
            (inner[0], {k: v.dtype for k, v in out.items()}, torch.is_autocast_enabled("cpu"))
        )
        return nc_mt.loss(lambda x: out, batch, state, ctx)

    spec = dataclasses.replace(nc_mt, name="precision-test", loss=loss)
    model = _Toy()
    cfg = train.TrainConfig(epochs=1, progress=False, checkpoints=False, precision=precision)
    result = train.fit(model, spec, _toy_data(), cfg, tmp_path / "run")
    resolved = "fp32" if precision == "fp32" else "bf16"
    inside = torch.bfloat16 if resolved == "bf16" else torch.float32
    assert len(seen) == 2  # two steps of 4 faces
    for layer, outputs, loss_under_autocast in seen:
        assert layer == inside  # the network's own layers ran at the precision asked for
        # the loss reads float32 outside autocast; the representation is the tensor the heads read
        assert {v for k, v in outputs.items() if k != "feat"} == {torch.float32}
        assert outputs["feat"] == inside and not loss_under_autocast
    assert all(p.dtype == torch.float32 for p in model.parameters())  # float32 weights
    assert "forward" not in vars(model)  # the model's own forward is back after the run
    assert np.isfinite(result.metrics["n_val"])
    record = json.loads((tmp_path / "run" / "config.json").read_text())["train"]
    assert record["precision"] == resolved  # the resolved value, so runs are told apart


def test_the_models_own_forward_is_back_after_a_run_that_fails(tmp_path):
    def loss(model, batch, state, ctx):
        raise RuntimeError("a failing loss")

    spec = dataclasses.replace(methods.get("nc-mt"), name="failing-test", loss=loss)
    model = _Toy()
    cfg = train.TrainConfig(epochs=1, progress=False, checkpoints=False, precision="bf16")
    with pytest.raises(RuntimeError, match="a failing loss"):
        train.fit(model, spec, _toy_data(), cfg, tmp_path / "run")
    assert "forward" not in vars(model)
    assert model(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))["expr"].dtype == torch.float32


def test_forward_precision_gives_back_a_forward_the_model_already_had():
    model = _Toy()
    own = model.forward
    model.forward = own  # an instance forward of its own
    with distributed.forward_precision(model, torch.device("cpu"), "bf16"):
        with distributed.forward_precision(model, torch.device("cpu"), "bf16"):  # nested
            out = model(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
        assert out["expr"].dtype == torch.float32 and out["feat"].dtype == torch.bfloat16
        assert vars(model)["forward"] is not own  # the outer wrapper is still in place
    assert vars(model)["forward"] is own
