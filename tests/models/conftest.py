"""Every model test starts from the same random state, so random-weight checks are reproducible."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(1234)
