"""Host side: contract validation — the seed's seven categories, a score, never running module
code in the host (static checks parse with `ast`; dynamic ones use a sandboxed `describe()`).

See docs/validation.md for every rule and the score formula.
"""

from __future__ import annotations

from ._api import apply_description, validate_static
from ._report import enforce, format_report, score
from ._rules import CATEGORIES, RULES, Rule
from ._run import validate_description, validate_module

__all__ = [
    "CATEGORIES",
    "RULES",
    "Rule",
    "apply_description",
    "enforce",
    "format_report",
    "score",
    "validate_description",
    "validate_module",
    "validate_static",
]
