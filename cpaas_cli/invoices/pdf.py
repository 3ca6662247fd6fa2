"""The printable invoice (PDF, fpdf2): both legal entities, addresses, bank
account, the lines (count, volume, unit price, amount), the totals and how
they were rounded (SPEC AMB-25).

Uses fpdf2's core Helvetica font, which covers Latin-1; other characters are
replaced by '?' (a Unicode TTF font can be plugged in later with printable forms).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fpdf import FPDF

from cpaas_cli import files


def _t(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("·", "-").encode("latin-1", "replace").decode("latin-1")


def _party_lines(title: str, p: dict[str, Any]) -> list[str]:
    out = [title, p.get("legal_name") or p.get("name") or ""]
    if p.get("address"):
        out += str(p["address"]).splitlines()
    out.append(f"Country: {p.get('country') or ''}")
    for key, label in (("legal_id", "Legal ID"), ("tax_id", "Tax ID"), ("vat_id", "VAT ID")):
        if p.get(key):
            out.append(f"{label}: {p[key]}")
    acc = p.get("bank_account")
    if acc:
        out.append(f"Bank: {acc.get('bank') or ''} {('SWIFT ' + acc['swift']) if acc.get('swift') else ''}".strip())
        out.append(f"Account: {acc.get('number')} ({acc.get('holder')})")
    return out


def render(data: dict[str, Any], path: str | Path) -> Path:
    """Write the invoice ``data`` (as from ``service.show``) to ``path``."""
    pdf = FPDF(orientation="P", unit="mm", format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    title = f"Invoice {data.get('reference')}" if data.get("reference") else f"Draft invoice #{data['id']}"
    pdf.cell(0, 10, _t(title), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=9)
    meta = [
        f"Agreement: {data.get('agreement')}",
        f"Period: {data['local_start_date']} - {data['local_end_date']} ({data['billing_tz']})",
        f"Issue date: {data['issue_date']}    Due date: {data['due_date']}",
        f"Status: {data['status']}    Currency: {data['currency']}    Tax rate: {data['tax_rate']} %",
    ]
    for m in meta:
        pdf.cell(0, 5, _t(m), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    seller = _party_lines("From", data["seller"])
    buyer = _party_lines("Bill to", data["buyer"])
    y0 = pdf.get_y()
    for col_x, block in ((10, seller), (110, buyer)):
        pdf.set_xy(col_x, y0)
        for i, line in enumerate(block):
            pdf.set_font("Helvetica", "B" if i == 0 else "", 9)
            pdf.set_x(col_x)
            pdf.cell(95, 4.5, _t(line), new_x="LEFT", new_y="NEXT")
    pdf.set_y(y0 + 4.5 * max(len(seller), len(buyer)) + 4)
    widths = (94, 16, 20, 28, 32)
    heads = ("Description", "Count", "Volume", "Unit price", "Amount")
    pdf.set_font("Helvetica", "B", 8)
    for w, h in zip(widths, heads, strict=True):
        pdf.cell(w, 6, h, border=1, align="L" if h == "Description" else "R")
    pdf.ln()
    pdf.set_font("Helvetica", size=8)
    for ln in data["lines"]:
        cells = (ln["description"], ln["count"], ln["volume"], ln.get("unit_price") or "", ln["net"])
        for i, (w, v) in enumerate(zip(widths, cells, strict=True)):
            text = _t(v)
            if i == 0 and pdf.get_string_width(text) > w - 2:
                while text and pdf.get_string_width(text + "...") > w - 2:
                    text = text[:-1]
                text += "..."
            pdf.cell(w, 5, text, border=1, align="L" if i == 0 else "R")
        pdf.ln()
    pdf.ln(2)
    pdf.set_font("Helvetica", "B", 9)
    for label, key in (("Net", "net"), (f"Tax {data['tax_rate']} %", "tax"), ("Total due", "total")):
        pdf.cell(158, 6, _t(label), align="R")
        pdf.cell(32, 6, _t(f"{data[key]} {data['currency']}"), align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=7)
    pdf.ln(2)
    decimals = data.get("line_decimals")
    shown = f"Line amounts have up to {decimals} decimals" if decimals is not None else "Line amounts as built"
    pdf.multi_cell(
        0,
        4,
        _t(
            f"{shown}. The net is the exact sum of the {data['charge_count']} charges, "
            f"{data['charges_total']} {data['currency']}, rounded once, half-up, to the currency's minor units "
            f"(difference {data['rounding']}); the tax is {data['tax_rate']} % of the net, rounded the same way."
        ),
    )
    out = Path(path)
    with files.AtomicFile(out) as fh:  # the old file stays if writing fails
        fh.write(bytes(pdf.output()))
    return out
