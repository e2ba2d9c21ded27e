"""Rendering: the evaluation report, the compare and explain pages, the figures and the model card.

report       the evaluation report from metrics.json: what it says, as sections
compare_page the page of `sentiment compare` (JSON, Markdown, HTML), one seed or several, as sections
document     such sections laid out as Markdown, as one self-contained HTML page and, table by table,
             as plain text for a terminal
explain_page the outputs of `sentiment explain`: terminal view, figures, one HTML page (as sections)
plots        the figures (training curves, reliability, risk-coverage, gates)
model_card   the run's README.md in the Hugging Face model-card format
templates/   document.html.j2, the page of the report, of compare and of explain
"""
