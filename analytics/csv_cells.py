"""CSV cells that spreadsheets read as data, never as formulas (every CSV download)."""

from __future__ import annotations

# OWASP's CSV injection rule: a spreadsheet runs a cell starting with one of
# these as a formula, so such text cells get a leading single quote. Only text
# is touched (numbers stay numbers); JSON exports are unchanged.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value
