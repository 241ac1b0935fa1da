"""The unit filter reads the titles as the analyst reads them (decoded), so it and the
pair view's "different amounts" agree on escaped titles of the real table."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd

from explorer.core.scope_data import quantity_table


def test_escaped_amounts_are_read_decoded():
    # as stored in the real table: a no-break space written as escaped UTF-8 bytes
    titles = [r"Powerbank\xc2\xa020000mah", "Powerbank 10000mah", "Powerbank 20000 mAh"]
    bundle = SimpleNamespace(items=pd.DataFrame({"title": titles}), derived={})
    table = quantity_table(bundle)
    rows, cols = np.array([0, 0]), np.array([1, 2])
    # 20000 vs 10000 mAh conflict; 20000 vs 20000 does not (stored, the first title has
    # no amount at all, so neither pair would conflict)
    assert table.conflicts(rows, cols).tolist() == [True, False]
