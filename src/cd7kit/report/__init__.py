"""Presentation: plotly figures (``figures``) shared by the web pages and the static reports.

Figures only draw what the engines computed or what the Study holds; they never re-derive a grade,
a verdict or a recommendation. Conventions follow specs/data-and-platform.md section 6: CAR kinetics on a
log axis with day 0 = first infusion and the assay limit drawn; swimmer plots from day 0 to last contact.
"""
