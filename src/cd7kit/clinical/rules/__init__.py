"""Rule data files of the graders (YAML), each with its published source.

Loaded with :func:`cd7kit.clinical.grading._common.load_rules`. Thresholds live here, not in code.
"""
