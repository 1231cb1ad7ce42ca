"""The instrument's AU read-out (notebook 01 §9): MFAR's AU term alone, and the README section."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from affectlib import methods
from affectlib.labels import AU_COLUMNS
from affectlib.methods import StepContext
from affectlib.studies import instrument


class _Heads(torch.nn.Module):
    """Fixed logits for every head, as parameters so that their gradients can be read."""

    def __init__(self, n: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.expr = torch.nn.Parameter(torch.randn(n, 8, generator=g))
        self.au = torch.nn.Parameter(torch.randn(n, len(AU_COLUMNS), generator=g))
        self.va = torch.nn.Parameter(torch.rand(n, 2, generator=g) - 0.5)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"expr": self.expr, "au": self.au, "va": self.va}


def test_the_au_readout_is_mfars_au_loss_alone_with_its_positive_weights():
    n, m = 4, len(AU_COLUMNS)
    au = np.random.default_rng(1).integers(0, 2, (n, m))
    has_au = np.array([True, True, True, False])  # the last image has no AU label
    batch = {
        "weak": torch.zeros(n, 3, 8, 8),
        "au": torch.tensor(au),
        "has_au": torch.tensor(has_au),
        "expr": torch.tensor([0, 1, 2, 3]),
        "has_expr": torch.ones(n, dtype=torch.bool),
        "va": torch.zeros(n, 2),
        "has_va": torch.ones(n, dtype=torch.bool),
    }
    pos_weight = torch.linspace(1.0, 3.0, m)
    state = {"expr_weight": None, "au_pos_weight": pos_weight}
    model = _Heads(n)
    ctx = StepContext(epoch=1, step=0, epochs=1, device=torch.device("cpu"), options={})
    spec = methods.get("au-readout")
    assert spec is instrument.AU_READOUT
    loss, logs = spec.loss(model, batch, state, ctx)
    # by hand: -(w y log s(x) + (1 - y) log(1 - s(x))) over the labelled images' entries
    x, y, w = model.au.detach().numpy()[:3], au[:3], pos_weight.numpy()
    s = 1 / (1 + np.exp(-x))
    expected = np.mean(-(w * y * np.log(s) + (1 - y) * np.log(1 - s)))
    assert np.isclose(loss.item(), expected, rtol=1e-5)
    assert np.isclose(logs["loss_au"].item(), expected, rtol=1e-5)
    loss.backward()
    assert model.expr.grad is None or not model.expr.grad.any()  # no expression term
    assert model.va.grad is None or not model.va.grad.any()  # no VA term
    assert model.au.grad[:3].abs().sum() > 0 and not model.au.grad[3].any()


def _learnability(readout: bool) -> pd.DataFrame:
    rows = []
    for setting, gain, shift in (("chosen", 2.0, 0.2), ("hard", 1.0, 0.0)):
        for measure in [f"F1 {c}" for c in AU_COLUMNS] + list(instrument.TASKS):
            au = measure in instrument.AU_MEASURES
            rows.append(
                {
                    "setting": setting,
                    "au_gain": gain,
                    "nuisance": 0.8,
                    "measure": measure,
                    "probe": 0.5 if measure != "overall" else np.nan,
                    "mfar": 0.3,
                    "chance": 0.25,
                    "ceiling": 0.9,
                    **({"au readout": 0.2 + shift if au else np.nan} if readout else {}),
                }
            )
    return pd.DataFrame(rows)


def test_the_readme_section_puts_the_au_readout_beside_mfar():
    text = instrument.readme_section(_learnability(readout=True), "results/x.csv")
    assert "AU read-out, chosen (gain 2, nuisance 0.8)" in text
    assert "| AU1 | 0.25 | 0.50 | 0.30 | 0.40 | 0.50 | 0.30 | 0.20 |" in text
    assert "| overall | 0.25 |  | 0.30 |  |  | 0.30 |  |" in text
    # chosen: 0.40 > chance 0.25 on every AU; hard: 0.20 on none
    assert "MFAR's AU loss alone 0.40 (above chance on 12 of 12 AUs)" in text
    assert "MFAR's AU loss alone 0.20 (above chance on 0 of 12 AUs)" in text
    older = instrument.readme_section(_learnability(readout=False), "results/x.csv")
    assert (
        "AU read-out," not in older.splitlines()[4]
        and "| AU1 | 0.25 | 0.50 | 0.30 | 0.50 |" in older
    )
