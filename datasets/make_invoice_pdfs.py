"""Generate datasets/invoices_pdf/ from invoices.jsonl: one single-page PDF per test invoice, plus the rows.

Each invoice's text is set line by line in Courier (a PDF core font: nothing embedded, so a page is about
1.6 KB), small enough that its widest line fits the page. The rows keep the gold fields and layout and
name the PDF instead of carrying the text, so a model must read the document. Deterministic: the same
input gives byte-identical files. Needs fpdf2 (``pip install -e '.[demo-data]'``); run from the repository
root: ``python datasets/make_invoice_pdfs.py``.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

from fpdf import FPDF

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "invoices.jsonl"
OUT = HERE / "invoices_pdf"
#: The core fonts speak Windows-1252; the one character outside it in the data becomes its ISO code.
REPLACE = {"円": " JPY"}
PAGE_TEXT_WIDTH_PT = 540.0  # A4 (595 pt) less 10 mm margins
COURIER_ADVANCE = 0.6  # a Courier glyph is 0.6 em wide


def to_pdf(text: str) -> bytes:
    for old, new in REPLACE.items():
        text = text.replace(old, new)
    lines = text.splitlines()
    size = min(9.0, PAGE_TEXT_WIDTH_PT / (COURIER_ADVANCE * max(1, *(len(line) for line in lines))))
    pdf = FPDF(format="A4")
    pdf.core_fonts_encoding = "cp1252"
    pdf.set_compression(True)
    pdf.set_creation_date(datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC))
    pdf.set_creator("evalkit datasets/make_invoice_pdfs.py")
    pdf.set_producer("fpdf2")
    pdf.set_margins(10, 10)
    pdf.set_auto_page_break(False)
    pdf.add_page()
    pdf.set_font("Courier", size=size)
    height = size * 0.45  # mm per line: 1.28 x the font size in points
    for line in lines:
        if line.strip():
            pdf.cell(0, height, line, new_x="LMARGIN", new_y="NEXT")
        else:
            pdf.ln(height)
    return bytes(pdf.output())


def main() -> None:
    OUT.mkdir(exist_ok=True)
    rows = [json.loads(line) for line in SOURCE.read_text(encoding="utf-8").splitlines() if line.strip()]
    kept = [row for row in rows if row["split"] == "test"]
    out_rows = []
    for row in kept:
        name = f"{row['id']}.pdf"
        (OUT / name).write_bytes(to_pdf(row["text"]))
        out_rows.append({"id": row["id"], "document": name, "gold": row["gold"], "layout": row["layout"],
                         "split": row["split"]})
    (OUT / "invoices.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out_rows),
                                        encoding="utf-8")
    total = sum((OUT / r["document"]).stat().st_size for r in out_rows)
    print(f"wrote {len(out_rows)} PDFs ({total / 1024:.0f} KB) and invoices.jsonl to {OUT}")


if __name__ == "__main__":
    main()
