"""Rendering: the evaluation report, the compare and explain pages, the figures and the model card.

report       the evaluation report from metrics.json: what it says, as sections
document     those sections laid out as Markdown and as one self-contained HTML page
compare_page the page of `sentiment compare` (JSON, Markdown, HTML), one seed or several
explain_page the outputs of `sentiment explain`: terminal view, figures, one HTML page
html_page    the shared HTML page shell
plots        the figures (training curves, reliability, risk-coverage, gates)
model_card   the run's README.md in the Hugging Face model-card format
templates/   the report's Jinja template
"""
