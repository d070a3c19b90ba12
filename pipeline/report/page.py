"""HTML building blocks of the report: escaped tables, embedded images, sections. No scripts, no network:
the page is one self-contained file."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from html import escape
from typing import Iterable, Sequence

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.85rem; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.5rem; text-align: left; vertical-align: top; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 0.5rem 0 1rem; } figure img { max-width: 100%; }
.note { color: #666; font-size: 0.85rem; }
.pair img { image-rendering: pixelated; border: 1px solid #ccc; margin-right: 4px; }
"""


def number(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else escape(str(value))


def cell(value, raw: bool = False) -> str:
    if raw:
        return f"<td>{value}</td>"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f'<td class="number">{number(value)}</td>'
    return f"<td>{escape('' if value is None else str(value))}</td>"


def table(headers: Sequence[str], rows: Iterable[Sequence], table_id: str = "", raw_columns: Sequence[int] = (),
          row_keys: Sequence[str] | None = None) -> str:
    """An HTML table; `raw_columns` hold HTML already built; `row_keys` become data-key attributes."""
    head = "".join(f"<th>{escape(header)}</th>" for header in headers)
    body = []
    for index, row in enumerate(rows):
        key = f' data-key="{escape(str(row_keys[index]))}"' if row_keys is not None else ""
        body.append(f"<tr{key}>" + "".join(cell(value, position in raw_columns) for position, value in enumerate(row))
                    + "</tr>")
    identifier = f' id="{table_id}"' if table_id else ""
    return f"<table{identifier}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def data_uri(payload: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


def png_bytes(figure) -> bytes:
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=110)
    return out.getvalue()


@dataclass
class Section:
    """One part of the report: its title, its HTML body and the figures it shows (file name -> PNG bytes)."""

    title: str
    body: list[str] = field(default_factory=list)
    figures: dict[str, bytes] = field(default_factory=dict)

    def add(self, html: str) -> None:
        self.body.append(html)

    def note(self, text: str) -> None:
        self.body.append(f'<p class="note">{escape(text)}</p>')

    def figure(self, name: str, figure, caption: str) -> None:
        payload = png_bytes(figure)
        self.figures[name] = payload
        self.body.append(f'<figure><img src="{data_uri(payload)}" alt="{escape(caption)}" data-file="{name}">'
                         f"<figcaption class=\"note\">{escape(caption)} ({name})</figcaption></figure>")

    def html(self) -> str:
        anchor = self.title.lower().replace(" ", "-")
        return f'<section id="{anchor}"><h2>{escape(self.title)}</h2>{"".join(self.body)}</section>'


def document(title: str, intro: str, sections: list[Section]) -> str:
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>{intro}"
            + "".join(section.html() for section in sections) + "</body></html>\n")


def thumbnail_png(payload: bytes, size: int = 96) -> bytes:
    """A PNG at most `size` pixels on its long side (nearest-neighbour, so small images stay crisp)."""
    from PIL import Image

    with Image.open(io.BytesIO(payload)) as image:
        image = image.convert("RGB")
        scale = size / max(image.size)
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                             Image.NEAREST if scale >= 1 else Image.LANCZOS)
        out = io.BytesIO()
        image.save(out, format="PNG")
        return out.getvalue()


def thumbnail(payload: bytes | None, size: int = 96, alt: str = "thumbnail") -> str:
    """An embedded thumbnail, or a note where the sample has no downloaded image."""
    if payload is None:
        return '<span class="note">no image</span>'
    return f'<img src="{data_uri(thumbnail_png(payload, size))}" width="{size}" alt="{escape(alt)}">'


def gallery(items: Sequence[tuple[str, bytes | None]], size: int = 96) -> str:
    """Thumbnails with their captions in a wrapping grid (the notebooks display it with IPython's HTML)."""
    tiles = []
    for caption, payload in items:
        image = thumbnail(payload, size, caption)
        tiles.append(f'<figure style="display:inline-block;width:{size + 24}px;margin:4px;vertical-align:top">'
                     f'{image}<figcaption style="font-size:0.75rem">{escape(caption)}</figcaption></figure>')
    return f"<div>{''.join(tiles)}</div>"
