"""The pages' document model: sections of paragraphs, tables, images and shaded words, and their renderings.

`sentiment.reporting.report` (the evaluation report), `compare_page` and `explain_page` decide what
their pages say, as lists of `Section`s; this module lays such a list out, as GitHub-flavoured
Markdown (`markdown_document`) and as one self-contained HTML page (`html_document`, from
`templates/document.html.j2`: CSS inline, every PNG inlined as a data URI).
Both take the same sections, so the two files always show the same numbers in the same order. Text
is escaped here, in each format's own way: nothing a report quotes (a review, an experiment name)
can become markup.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

from sentiment.reporting import plots as figures

DASH = "—"
"""What a cell holds where there is no figure (a system not read on that set, a missing value)."""


@dataclass(frozen=True)
class Cell:
    text: str
    note: str = ""  # a second, smaller line: an interval, a probability, an id
    tone: str = ""  # "good" or "bad": colour in HTML; the text itself always says it too
    span: int = 1


def figure_with_interval(value: float | None, interval: Sequence[float] | None) -> Cell:
    """A figure with its interval as the cell's note: "0.950 (0.939 to 0.959)" in text, a second line in HTML.
    A missing figure shows `DASH`; a missing interval, no note."""
    text = DASH if value is None else f"{value:.3f}"
    return Cell(text, note=f"{interval[0]:.3f} to {interval[1]:.3f}" if interval else "")


@dataclass(frozen=True)
class Table:
    columns: list[str]
    rows: list[list[Cell]]
    numeric: frozenset[int] = frozenset()  # right-aligned columns
    wide: frozenset[int] = frozenset()  # free-text columns that wrap
    caption: str = ""
    stack: bool = False  # on a phone, show each row as a block of "column: value" lines
    groups: frozenset[int] = frozenset()  # indices of rows that head a group of rows
    muted: frozenset[int] = frozenset()  # indices of rows shown in grey italics (references beside the subject)
    kind: str = "table"

    @property
    def has_header(self) -> bool:
        return any(self.columns)


@dataclass(frozen=True)
class Paragraph:
    text: str
    style: str = ""  # "", "verdict" or "note"
    kind: str = "paragraph"


@dataclass(frozen=True)
class Image:
    file: str
    alt: str
    caption: str = ""
    kind: str = "image"


@dataclass(frozen=True)
class Word:
    text: str
    shade: str  # a CSS colour for the word's background, e.g. "rgba(26,127,55,0.42)"
    tip: str = ""  # shown on hover: the figures behind the shade
    marked: bool = False  # underlined (in `explain`: not in the vocabulary)


@dataclass(frozen=True)
class Words:
    """A text as a line of words, each shaded on its own (the explain page's contributions)."""

    words: list[Word]
    kind: str = "words"


Block = Table | Paragraph | Image | Words


@dataclass
class Section:
    id: str
    title: str
    blocks: list[Block] = field(default_factory=list)
    level: int = 2


def markdown_document(title: str, subtitle: str, sections: list[Section]) -> str:
    """GitHub-flavoured Markdown; images are linked by file name, so they sit next to the .md file."""
    out = [f"# {_md(title)}", "", _md(subtitle), ""]
    for section in sections:
        out += ["#" * section.level + " " + _md(section.title), ""]
        for block in section.blocks:
            if isinstance(block, Paragraph):
                text = _md(block.text)
                out.append({"verdict": f"**{text}**", "note": f"*{text}*"}.get(block.style, text))
            elif isinstance(block, Image):
                out.append(f"![{_md(block.alt)}]({block.file.replace(' ', '%20')})")
                if block.caption:
                    out += ["", f"*{_md(block.caption)}*"]
            elif isinstance(block, Words):  # Markdown has no shading: the words, the marked ones in italics
                out.append(" ".join(f"*{_md(w.text)}*" if w.marked else _md(w.text) for w in block.words))
            else:
                out.append(markdown_table(block))
            out.append("")
    return "\n".join(out).rstrip() + "\n"


def markdown_table(table: Table) -> str:
    """One table as GitHub-flavoured Markdown (its caption in bold above it), text escaped."""
    lines = [f"**{_md(table.caption)}**", ""] if table.caption else []

    def cell(c: Cell, strong: bool) -> str:
        text = "<br>".join(_md(line) for line in c.text.split("\n"))
        text = f"**{text}**" if strong else text
        return f"{text} ({_md(c.note)})" if c.note else text

    lines.append("| " + " | ".join(_md(c) for c in table.columns) + " |")
    lines.append("|" + "|".join("---:" if i in table.numeric else "---" for i in range(len(table.columns))) + "|")
    for index, row in enumerate(table.rows):
        cells = []
        for position, c in enumerate(row):
            cells += [cell(c, index in table.groups and position == 0)] + [""] * (c.span - 1)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def text_table(table: Table) -> str:
    """One table for a terminal: columns padded to their widest cell (figures to the right), a rule under the
    header, no markup."""
    rows = [list(table.columns)] if table.has_header else []
    for row in table.rows:
        cells: list[str] = []
        for c in row:
            text = " / ".join(c.text.split("\n"))
            cells += [f"{text} ({c.note})" if c.note else text] + [""] * (c.span - 1)
        rows.append(cells)
    if not rows:
        return ""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]

    def line(row: list[str]) -> str:
        padded = (
            c.rjust(w) if i in table.numeric else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        return "  ".join(padded).rstrip()

    lines = [line(row) for row in rows]
    if table.has_header:
        lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def html_document(
    title: str,
    subtitle: str,
    sections: list[Section],
    directory: str | Path,
    footer: str = "Generated by sentiment · metrics.json schema v1",
) -> str:
    """One self-contained HTML page; each image's PNG is read from ``directory`` and inlined."""
    directory = Path(directory)
    images = {}
    for block in (b for s in sections for b in s.blocks if isinstance(b, Image)):
        path = directory / block.file
        if path.is_file():
            payload = path.read_bytes()
            images[block.file] = {"src": figures.png_data_uri(payload), "size": _png_size(payload)}
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # Line breaks inside a cell ("\n") become <br>; the text itself stays escaped.
    environment.filters["lines"] = lambda text: Markup("<br>").join(escape(line) for line in str(text).split("\n"))
    template = environment.get_template("document.html.j2")
    return template.render(title=title, subtitle=subtitle, sections=sections, images=images, footer=footer)


_MARKDOWN_ESCAPES = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        "|": "\\|",
        "\\": "\\\\",
        "`": "\\`",
        "*": "\\*",
        "_": "\\_",
        "[": "\\[",
        "]": "\\]",
        "\n": " ",
        "\r": " ",
    }
)


def _md(text: Any) -> str:
    """Text that Markdown shows literally: no HTML, no emphasis or links, no broken table cells."""
    return str(text).translate(_MARKDOWN_ESCAPES)


def _png_size(payload: bytes) -> tuple[int, int] | None:
    """Width and height from a PNG's IHDR chunk, so the page reserves the space before decoding."""
    if payload[:8] != b"\x89PNG\r\n\x1a\n" or payload[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", payload[16:24])
