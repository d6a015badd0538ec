"""Toxicity grading from raw Study data: ASTCT 2019 CRS and ICANS, CTCAE v5.0/v6.0, ICAHT and T-ICAHT.

Each grader takes a :class:`~cd7kit.data.Study` (optionally one subject) and an options mapping and
returns :class:`~cd7kit.data.Result` objects that carry the value, the evidence rows, the rule (system,
version, options, source) and what was missing. Rule thresholds and options live in
``cd7kit/clinical/rules/*.yaml``; ``docs/grading.md`` documents each rule, its source and each option.
"""

from .crs import crs_daily, grade_crs
from .ctcae import ctcae_table, grade_ctcae
from .icaht import grade_icaht, icaht_tables
from .icans import grade_icans, icans_daily

__all__ = ["grade_crs", "crs_daily", "grade_icans", "icans_daily", "grade_ctcae", "ctcae_table", "grade_icaht", "icaht_tables"]
