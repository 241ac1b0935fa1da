"""`precompute build --fuse A,B:wA,wB`: weights are finite numbers in [0, 1000], not all 0."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from precompute.errors import InputError
from precompute.modalities import parse_fuse

DENSE = {"a": SimpleNamespace(kind="image"), "b": SimpleNamespace(kind="text")}


@pytest.mark.parametrize("weights", ["nan,1", "1,inf", "-1,1", "0,0", "1e9,1", "1", "x,1"])
def test_bad_fusion_weights_are_refused(weights):
    with pytest.raises(InputError, match="--fuse") as info:
        parse_fuse(f"a,b:{weights}", DENSE)
    assert "\n" not in str(info.value)
