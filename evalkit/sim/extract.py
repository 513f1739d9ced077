"""Simulated structured extraction: rule-based readers of different recall per tier.

For an extraction request (a JSON schema without a label enum) the simulator fills each schema
property it recognises by name — vendor, invoice number, dates, currency, total, line items — with
rules applied to the user message. The large tier knows more: labels in German, French and Dutch,
OCR-damaged labels, European number formats, payment terms ("Net 30") for due dates, tables and prose
line items, and the difference between a total and a balance due. The small tier reads English
labels, US number formats and the first plausible match only. Unknown properties get null.
"""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from typing import Any

import numpy as np

MONTHS = {name: index for index, names in enumerate([
    ("january", "jan", "januar", "janvier", "januari"),
    ("february", "feb", "februar", "février", "fevrier", "februari"),
    ("march", "mar", "märz", "maerz", "mars", "maart"), ("april", "apr", "avril"),
    ("may", "mai", "mei"), ("june", "jun", "juni", "juin"), ("july", "jul", "juli", "juillet"),
    ("august", "aug", "août", "aout", "augustus"), ("september", "sep", "sept", "septembre"),
    ("october", "oct", "oktober", "octobre", "okt"), ("november", "nov", "novembre"),
    ("december", "dec", "dezember", "décembre", "decembre", "dez"),
], start=1) for name in names}
_MONTH_RE = "|".join(sorted(MONTHS, key=len, reverse=True))
_DATE_PATTERNS = [
    (re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b"), "ymd"),
    (re.compile(rf"\b({_MONTH_RE})\.?\s+(\d{{1,2}}),?\s+(\d{{4}})\b", re.I), "mdy_name"),
    (re.compile(rf"\b(\d{{1,2}})\.?\s+({_MONTH_RE})\.?,?\s+(\d{{4}})\b", re.I), "dmy_name"),
    (re.compile(r"\b(\d{1,2})[./-](\d{1,2})[./-](\d{4})\b"), "numeric"),
]
SYMBOLS = {"€": "EUR", "£": "GBP", "¥": "JPY", "CHF": "CHF", "C$": "CAD", "A$": "AUD"}
CODES = ("USD", "EUR", "GBP", "CAD", "AUD", "CHF", "JPY")
_NUMBER = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:[ ,.'\u202f]\d{3})+|\d+)(?:[.,]\d{1,2})?(?![\d])")


def parse_number(token: str, european: bool) -> float | None:
    token = token.strip().replace("\u202f", " ")
    if european:
        token = token.replace(".", "").replace(" ", "").replace("'", "").replace(",", ".")
    else:
        token = token.replace(",", "").replace(" ", "").replace("'", "")
    try:
        return float(token)
    except ValueError:
        return None


def _numbers(line: str, european: bool) -> list[float]:
    out = []
    for match in _NUMBER.finditer(line):
        value = parse_number(match.group(0), european)
        if value is not None:
            out.append(value)
    return out


def find_dates(text: str, *, european: bool, multilingual: bool) -> list[tuple[int, date]]:
    found = []
    for pattern, kind in _DATE_PATTERNS:
        for match in pattern.finditer(text):
            try:
                if kind == "ymd":
                    value = date(int(match[1]), int(match[2]), int(match[3]))
                elif kind == "mdy_name":
                    month = MONTHS.get(match[1].lower())
                    if month is None or (not multilingual and len(match[1]) > 3 and match[1].lower() not in
                                         ("january", "february", "march", "april", "may", "june", "july",
                                          "august", "september", "october", "november", "december")):
                        continue
                    value = date(int(match[3]), month, int(match[2]))
                elif kind == "dmy_name":
                    month = MONTHS.get(match[2].lower())
                    if month is None:
                        continue
                    value = date(int(match[3]), month, int(match[1]))
                else:
                    first, second, year = int(match[1]), int(match[2]), int(match[3])
                    day_first = european or first > 12 or "." in match.group(0)
                    value = date(year, second, first) if day_first else date(year, first, second)
            except ValueError:
                continue
            found.append((match.start(), value))
    return sorted(found)


class Reader:
    def __init__(self, text: str, tier: str) -> None:
        self.text = text
        self.lines = [line.strip() for line in text.splitlines()]
        self.large = tier != "small"
        self.european = self.large and bool(
            re.search(r"\d\.\d{3},\d{2}|\d,\d{2}\s*€|Rechnung|Facture|Factuur|MwSt|TVA|BTW|MWST", text))

    # label regexes -------------------------------------------------------------------------------
    def _label(self, english: str, extra: str) -> re.Pattern[str]:
        words = english + ("|" + extra if self.large else "")
        if self.large:  # tolerate OCR damage inside labels: l/1/I and o/0 swaps, stray spaces
            words = words.replace("i", "[il1]").replace("o", "[o0]")
        return re.compile(rf"(?:{words})\s*[:#.]?\s*", re.I)

    def vendor(self) -> str | None:
        if self.large:
            subject = re.search(r"^Subject:.*?\bfrom\s+(.+?)\s*$", self.text, re.M | re.I)
            if subject:
                return subject.group(1).strip()
            signature = re.search(r"^(?:Finance|Accounts|Billing|Buchhaltung|Comptabilité),\s+(.+)$",
                                  self.text, re.M)
            if signature:
                return signature.group(1).strip()
        for line in self.lines:
            if line and not re.match(r"^(From|To|Subject|Date|INVOICE|RECEIPT)\b", line, re.I):
                return line
        return None

    def invoice_number(self) -> str | None:
        english = r"invoice\s*(?:number|no\.?|#|num)|inv\.?\s*(?:no\.?|#)|invoice"
        extra = r"rechnungs\s*-?nummer|rechnung\s*nr\.?|facture\s*n[°o]\.?|num[ée]ro\s+de\s+facture|" \
                r"factuurnummer|receipt\s*(?:no\.?|#)|bill\s*(?:no\.?|number)"
        pattern = re.compile(self._label(english, extra).pattern + r"([A-Z0-9][A-Z0-9/\-_.]*\d[A-Z0-9/\-_]*)",
                             re.I)
        for match in pattern.finditer(self.text):
            value = match.group(1).rstrip(".,")
            if not re.fullmatch(r"\d{4}", value) or self.large is False:
                return value
        return None

    def _labelled_date(self, labels: str, extra: str) -> date | None:
        pattern = self._label(labels, extra)
        for match in pattern.finditer(self.text):
            tail = self.text[match.end():match.end() + 40]
            dates = find_dates(tail, european=self.european, multilingual=self.large)
            if dates and dates[0][0] < 6:
                return dates[0][1]
        return None

    def invoice_date(self) -> date | None:
        found = self._labelled_date(r"invoice\s*date|issue\s*date|date\s+of\s+issue|dated|date",
                                    r"rechnungsdatum|datum|date\s+de\s+facture|factuurdatum|issued")
        if found or not self.large:
            return found or next((d for _, d in find_dates(self.text, european=False, multilingual=False)),
                                 None)
        return next((d for _, d in find_dates(self.text, european=self.european, multilingual=True)), None)

    def due_date(self, issued: date | None) -> date | None:
        found = self._labelled_date(r"due\s*date|payment\s*due|due\s*by|due|pay\s*by",
                                    r"fällig(?:keit)?|zahlbar\s+bis|échéance|date\s+d'échéance|vervaldatum|uiterlijk")
        if found or not self.large or issued is None:
            return found
        terms = re.search(r"net\s*(\d{1,3})|(\d{1,3})\s*days?\s*net|within\s+(\d{1,3})\s+days|"
                          r"(\d{1,3})\s*tage|(\d{1,3})\s*jours|(\d{1,3})\s*dagen", self.text, re.I)
        if terms:
            days = next(int(group) for group in terms.groups() if group)
            return issued + timedelta(days=days)
        return None

    def currency(self) -> str | None:
        lines = [line for line in self.lines
                 if not (self.large
                         and re.search(r"reference only|indicative|approx|for information", line, re.I))]
        text = "\n".join(lines)
        if self.large:
            stated = re.search(r"currency\s*:?\s*(USD|EUR|GBP|CAD|AUD|CHF|JPY)", text, re.I)
            if stated:
                return stated.group(1).upper()
        counts: dict[str, int] = {}
        for code in CODES:
            counts[code] = len(re.findall(rf"\b{code}\b", text))
        for symbol, code in SYMBOLS.items():
            counts[code] = counts.get(code, 0) + text.count(symbol)
        dollars = len(re.findall(r"\$", text))
        if dollars:
            owner = "CAD" if counts.get("CAD") else "AUD" if counts.get("AUD") else "USD"
            counts[owner] = counts.get(owner, 0) + dollars
        if not self.large:  # the first currency mark seen
            positions = [(text.find(mark), code)
                         for mark, code in [*SYMBOLS.items(), ("$", "USD"), *((c, c) for c in CODES)]
                         if mark in text]
            return min(positions)[1] if positions else None
        best = max(counts.items(), key=lambda item: item[1])
        return best[0] if best[1] else None

    def total(self) -> float | None:
        candidates = []
        for line in self.lines:
            low = line.lower()
            if re.search(r"sub\s*-?total|zwischensumme|sous-total|subtotaal|reference only|indicative", low):
                continue
            if self.large and re.search(r"balance\s+due|still\s+due|remaining|deposit|paid|reste\s+à\s+payer|"
                                        r"change|tendered|cash", low):
                continue
            english = re.search(r"\btotal\b|amount\s+due|total\s+due|grand\s+total", low)
            extra = self.large and re.search(r"t[o0]ta[l1]|gesamt|endbetrag|totaal|total\s+ttc|"
                                             r"montant\s+total|te\s+betalen|à\s+payer", low)
            if english or extra:
                numbers = [n for n in _numbers(line, self.european) if not (1900 < n < 2100 and n == int(n))]
                if numbers:
                    candidates.append(numbers[-1])
        if not candidates:
            return None
        return max(candidates) if self.large else candidates[-1]

    def line_items(self) -> list[dict[str, Any]]:
        items = []
        for line in self.lines:
            prose = re.search(r"^[•*\-]?\s*(.+?)\s*\((\d+(?:[.,]\d+)?)\s*(?:@|x|×)\s*[^\d]*([\d.,' ]+)"
                              r"[^)]*\)\s*:\s*[^\d]*([\d.,' ]+)", line)
            if prose and self.large:
                qty = parse_number(prose[2], False)
                unit, amount = parse_number(prose[3], self.european), parse_number(prose[4], self.european)
                if qty is not None and unit is not None and amount is not None:
                    items.append({"description": prose[1].strip(" •-*"), "quantity": qty, "unit_price": unit,
                                  "amount": amount})
                continue
            numbers = list(_NUMBER.finditer(line))
            if len(numbers) < 3:
                continue
            values = [parse_number(m.group(0), self.european) for m in numbers]
            for index in range(len(values) - 2):
                qty, unit, amount = values[index], values[index + 1], values[index + 2]
                if qty is None or unit is None or amount is None or index + 3 != len(values):
                    continue
                if abs(qty * unit - amount) <= 0.011 * max(1, qty) and amount > 0:
                    description = line[:numbers[index].start()].strip(" |$€£-")
                    description = re.sub(r"^[A-Z]{1,3}-?\d{3,6}\s+", "", description)  # item codes
                    if not description or not re.search(r"[A-Za-z]{3}", description):
                        tail = line[numbers[-1].end():].strip(" |")
                        description = tail if re.search(r"[A-Za-z]{3}", tail) else description
                    if description and (self.large or "|" not in line):
                        items.append({"description": description.strip(" |"), "quantity": qty,
                                      "unit_price": unit, "amount": amount})
                    break
            if not self.large and len(items) >= 3:
                break
        return items


def extract(schema: dict[str, Any], user: str, tier: str, rng: np.random.Generator) -> tuple[str, str]:
    """(answer JSON, thinking) for an extraction request."""
    reader = Reader(user, tier)
    properties = schema.get("properties") or {}
    issued = reader.invoice_date()
    answer: dict[str, Any] = {}
    found = 0
    for name, prop in properties.items():
        key = name.lower()
        kind = prop.get("type")
        value: Any = None
        if kind == "number" and "confidence" in key:
            continue
        if kind == "boolean" and "escalat" in key:
            continue
        if "vendor" in key or "seller" in key or "supplier" in key:
            value = reader.vendor()
        elif "number" in key or key.endswith("_no") or key == "invoice_id":
            value = reader.invoice_number()
        elif "due" in key:
            due = reader.due_date(issued)
            value = due.isoformat() if due else None
        elif "date" in key:
            value = issued.isoformat() if issued else None
        elif "currency" in key:
            value = reader.currency()
        elif "total" in key or "amount" in key:
            value = reader.total()
        elif "item" in key or "line" in key:
            value = reader.line_items()
        if value not in (None, []):
            found += 1
        answer[name] = value
    share = found / max(1, len([k for k in answer]))
    confidence = round(min(0.99, (0.55 + 0.45 * share) ** (0.7 if tier == "small" else 1.0)), 2)
    for name, prop in properties.items():
        if prop.get("type") == "number" and "confidence" in name.lower():
            answer[name] = confidence
        elif prop.get("type") == "boolean" and "escalat" in name.lower():
            answer[name] = share < 0.8
    thinking = f"Read {found} of {len(properties)} fields from the document."
    return json.dumps(answer, ensure_ascii=False), thinking
