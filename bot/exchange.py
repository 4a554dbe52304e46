"""Excel and CSV in and out: `dealbot export …`, `dealbot import leads …` and `/report export`.

Export writes one sheet per kind (leads, follow-ups, quotes) with dates in the team's timezone,
amounts as numbers and headers in the team's language. A text cell that a spreadsheet would run as a
formula (it starts with = + - @, a tab or a carriage return) is written as text: in XLSX as a string
cell with Excel's quote prefix (what typing a leading apostrophe does), in CSV with a leading
apostrophe, which import takes off again.

Import reads XLSX (openpyxl) or CSV (UTF-8 with or without BOM, GB18030/GBK as Chinese Excel saves,
UTF-16; comma, semicolon or tab), finds the header row and maps common zh/en column names, then adds
each row through the same duplicate check (撞单) as `/lead add`. A duplicate row is *merged*: the
empty fields of the existing lead are filled from the row, nothing it already has is overwritten,
and its owner, stage and status stay. Every row is reported: created, merged as a duplicate, or
rejected and why; a bad row never stops the good ones, and a dry run writes nothing.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, func, select

import wording
from commands import names, words
from commands.parsing_values import parse_amount, parse_date
from models import aftersale, leads
from models.config import TeamConfig
from models.errors import DomainError
from models.horizon import RECORD_YEARS, latest_plan, years_from
from models.normalize import (
    direction_controls,
    looks_like_email,
    looks_like_phone,
    normalize_company,
    normalize_email,
    normalize_phone,
    visible,
)
from models.scope import Scope
from models.tables import AuditEvent, FollowUp, Lead, Member, Quote, Team
from models.teams import locale_of, lock_team

KINDS = ("leads", "followups", "quotes")
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV_MIME = "text/csv"
BATCH = 500  # rows per transaction on a real import: other writers wait at most one batch
_RISKY = ("=", "+", "-", "@", "\t", "\r")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class ExchangeError(Exception):
    """The file or the request as a whole cannot be used; says why in the team's language."""


# --- export --------------------------------------------------------------------------------------

# The column headers per kind, in English here and in Chinese in the catalog (msgctxt
# `name.columns.<kind>`); import reads either back (see HEADER_MAP).
COLUMNS: dict[str, names.Names] = {
    "leads": names.Names(
        "columns.leads",
        names.Name("number", "ID"),
        names.Name("name", "Name"),
        names.Name("company", "Company"),
        names.Name("contact", "Contact"),
        names.Name("phone", "Phone"),
        names.Name("email", "Email"),
        names.Name("source", "Source"),
        names.Name("tag", "Tag"),
        names.Name("owner", "Owner"),
        names.Name("stage", "Stage"),
        names.Name("status", "Status"),
        names.Name("value", "Estimated value"),
        names.Name("won_amount", "Won amount"),
        names.Name("lost_reason", "Lost reason"),
        names.Name("next_followup", "Next follow-up"),
        names.Name("created", "Created"),
        names.Name("last_activity", "Last activity"),
    ),
    "followups": names.Names(
        "columns.followups",
        names.Name("lead", "Lead"),
        names.Name("name", "Customer"),
        names.Name("author", "By"),
        names.Name("via", "Via"),
        names.Name("note", "Note"),
        names.Name("next_on", "Next follow-up"),
        names.Name("at", "At"),
    ),
    "quotes": names.Names(
        "columns.quotes",
        names.Name("number", "Quote"),
        names.Name("lead", "Lead"),
        names.Name("name", "Customer"),
        names.Name("requester", "Requested by"),
        names.Name("amount", "Amount"),
        names.Name("discount", "Discount %"),
        names.Name("status", "Status"),
        names.Name("decided_by", "Decided by"),
        names.Name("decided_at", "Decided at"),
        names.Name("note", "Note"),
        names.Name("decision_note", "Decision note"),
        names.Name("created", "Created"),
    ),
}
SHEET_TITLES = names.Names(
    "sheets",
    names.Name("leads", "Leads"),
    names.Name("followups", "Follow-ups"),
    names.Name("quotes", "Quotes"),
)
_STATUS_WORDS = names.Names(
    "statuses",
    names.Name("open", "open"),
    names.Name("won", "won"),
    names.Name("lost", "lost"),
    names.Name("pending", "pending"),
    names.Name("approved", "approved"),
    names.Name("rejected", "rejected"),
)


@dataclass
class Sheet:
    kind: str
    title: str
    header: list[str]
    rows: list[list[Any]] = field(default_factory=list)


def collect(
    session: Session,
    team: Team,
    kind: str,
    *,
    locale: str,
    lead_filter: Any = None,
    progress: Callable[[int], None] | None = None,
) -> Sheet:
    """One kind's rows as plain values: text, Decimal amounts, dates, local naive datetimes."""
    config = TeamConfig.model_validate(team.config or {})
    tz = config.tz
    sheet = Sheet(
        kind=kind,
        title=SHEET_TITLES.label(kind, locale),
        header=[COLUMNS[kind].label(key, locale) for key in COLUMNS[kind]],
    )
    names = {m.id: m.name for m in session.exec(select(Member).where(Member.team_id == team.id))}
    where = [Lead.team_id == team.id] + ([lead_filter] if lead_filter is not None else [])

    def local(moment: datetime | None) -> datetime | None:
        return moment.astimezone(tz).replace(tzinfo=None, microsecond=0) if moment else None

    def status(word: str) -> str:
        return _STATUS_WORDS.label(word, locale)

    if kind == "leads":
        for lead in session.exec(select(Lead).where(*where).order_by(col(Lead.number))):
            stage = config.stage(lead.stage)
            sheet.rows.append(
                [
                    f"L{lead.number}",
                    lead.name,
                    lead.company,
                    lead.contact,
                    lead.phone,
                    lead.email,
                    lead.source,
                    lead.tag,
                    names.get(lead.owner_id) if lead.owner_id else None,
                    stage.label(locale) if stage else lead.stage,
                    status(lead.status),
                    _major(lead.value),
                    _major(lead.won_amount),
                    lead.lost_reason,
                    lead.next_followup_on,
                    local(lead.created_at),
                    local(lead.last_activity_at),
                ]
            )
            _tick(progress)
    elif kind == "followups":
        query = (
            select(FollowUp, Lead)
            .join(Lead, col(Lead.id) == FollowUp.lead_id)
            .where(*where)
            .order_by(col(FollowUp.created_at), col(FollowUp.id))
        )
        for followup, lead in session.exec(query):
            via = followup.via and words.spelling(
                locale, (followup.via, wording.message("zh", f"via.{followup.via}"))
            )
            sheet.rows.append(
                [
                    f"L{lead.number}",
                    lead.name,
                    names.get(followup.author_id),
                    via,
                    followup.note,
                    followup.next_on,
                    local(followup.created_at),
                ]
            )
            _tick(progress)
    else:
        query = (
            select(Quote, Lead)
            .join(Lead, col(Lead.id) == Quote.lead_id)
            .where(*where)
            .order_by(col(Quote.number))
        )
        for quote, lead in session.exec(query):
            sheet.rows.append(
                [
                    f"Q{quote.number}",
                    f"L{lead.number}",
                    lead.name,
                    names.get(quote.requester_id),
                    _major(quote.amount),
                    Decimal(quote.discount_bp) / 100,
                    status(quote.status),
                    names.get(quote.decided_by_id) if quote.decided_by_id else None,
                    local(quote.decided_at),
                    quote.note,
                    quote.decision_note,
                    local(quote.created_at),
                ]
            )
            _tick(progress)
    return sheet


def _tick(progress: Callable[[int], None] | None) -> None:
    if progress is not None:
        progress(1)


def _major(minor: int | None) -> Decimal | None:
    return Decimal(minor) / 100 if minor is not None else None


def risky(value: str) -> bool:
    """Whether a spreadsheet would take this text for a formula (CSV/formula injection)."""
    return value.startswith(_RISKY)


def to_xlsx(sheets: Sequence[Sheet]) -> bytes:
    """A workbook, one sheet per kind: bold frozen header, numbers as numbers, dates as dates."""
    # openpyxl (and the numpy it loads) is imported here, not at start-up: it is ~30 MB of
    # resident memory that a server answering chat commands never needs until someone exports.
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    def typed_cell(ws: Any, value: Any) -> Any:
        formats = {Decimal: "#,##0.00" if isinstance(value, Decimal)
                   and value != value.to_integral_value() else "#,##0",
                   datetime: "yyyy-mm-dd hh:mm", date: "yyyy-mm-dd"}  # fmt: skip
        if isinstance(value, str):
            value = visible(ILLEGAL_CHARACTERS_RE.sub("", value))
            if not risky(value):
                return value
            cell = WriteOnlyCell(ws, value=value)
            cell.data_type = "s"  # openpyxl would otherwise store "=…" as a formula
            cell.quotePrefix = True
            return cell
        for kind, number_format in formats.items():  # datetime before date: it is one
            if isinstance(value, kind):
                cell = WriteOnlyCell(ws, value=value)
                cell.number_format = number_format
                return cell
        return value

    book = Workbook(write_only=True)
    bold = Font(bold=True)
    for sheet in sheets:
        ws = book.create_sheet(sheet.title)
        ws.freeze_panes = "A2"
        for index, name in enumerate(sheet.header, start=1):
            ws.column_dimensions[get_column_letter(index)].width = max(
                10, min(40, 2 * len(name) + 4)
            )
        header = []
        for name in sheet.header:
            cell = WriteOnlyCell(ws, value=name)
            cell.font = bold
            header.append(cell)
        ws.append(header)
        for row in sheet.rows:
            ws.append([typed_cell(ws, value) for value in row])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def to_csv(sheet: Sheet) -> bytes:
    """One kind as CSV in UTF-8 with a BOM, so Excel opens Chinese text right."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(sheet.header)
    for row in sheet.rows:
        writer.writerow([_csv_value(value) for value in row])
    return buffer.getvalue().encode("utf-8-sig")


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        value = visible(value)  # a name shows in the sheet as it reads, not reordered or padded
        return "'" + value if risky(value) else value
    if isinstance(value, Decimal):
        return f"{value.normalize():f}" if value == value.to_integral_value() else f"{value:f}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


@dataclass
class ExportFile:
    data: bytes
    filename: str
    mime: str
    counts: dict[str, int]


def export(
    session: Session,
    team: Team,
    kinds: Sequence[str],
    *,
    fmt: str,
    locale: str,
    lead_filter: Any = None,
    stem: str = "dealbot",
    progress: Callable[[int], None] | None = None,
) -> ExportFile:
    """The file for `kinds`: XLSX with a sheet each, or CSV holding exactly one kind."""
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown:
        raise ExchangeError(
            wording.say(locale, "“{k}” is not one of leads, followups, quotes", k=unknown[0])
        )
    if fmt == "csv" and len(kinds) != 1:
        raise ExchangeError(
            wording.say(locale, "a CSV file holds one kind: choose leads, followups or quotes")
        )
    sheets = [
        collect(session, team, kind, locale=locale, lead_filter=lead_filter, progress=progress)
        for kind in kinds
    ]
    counts = {sheet.kind: len(sheet.rows) for sheet in sheets}
    if fmt == "csv":
        return ExportFile(to_csv(sheets[0]), f"{stem}-{kinds[0]}.csv", CSV_MIME, counts)
    name = stem if len(kinds) > 1 else f"{stem}-{kinds[0]}"
    return ExportFile(to_xlsx(sheets), f"{name}.xlsx", XLSX_MIME, counts)


# --- reading files -------------------------------------------------------------------------------


def _header_key(text: str) -> str:
    """`*客户名称（必填）`, `Customer Name` and `customer_name` → `客户名称`, `customername`."""
    value = unicodedata.normalize("NFKC", str(text)).casefold()
    value = re.sub(r"[(\[【].*?[)\]】]", "", value)
    return re.sub(r"[\s_\-.:*#/'\"]+", "", value)


# Header names people use, per field, as `_header_key` reduces them ("" = known, not imported).
_ALIASES: dict[str, str] = {
    "name": "name customer customername client clientname lead leadname account accountname deal "
    "dealname 客户 客户名 名称 线索名称 商机名称 项目名称",
    "company": "company companyname organization organisation org business 公司名称 企业 "
    "企业名称 单位 单位名称 客户公司",
    "contact": "contact contactname contactperson person 联系人姓名 姓名 客户联系人",
    "phone": "phone phonenumber mobile mobilephone mobileno cell cellphone tel telephone 手机 "
    "手机号 手机号码 联系电话 电话号码 联系方式 座机",
    "email": "email emailaddress mail 电子邮箱 邮件 电子邮件 邮箱地址",
    "source": "source leadsource channel origin 线索来源 客户来源 渠道 来源渠道",
    "tag": "tag tags label category 分类 类别 客户类型",
    "owner": "owner leadowner accountowner salesrep rep salesperson assignedto assignee "
    "销售 销售员 跟进人 归属人 所属销售 业务员 客户经理",
    "stage": "stage pipelinestage dealstage salesstage 销售阶段 商机阶段 跟进阶段",
    "status": "status state 线索状态 客户状态",
    "value": "value amount estimatedvalue expectedvalue dealvalue dealamount expectedamount budget "
    "预计 金额 预算 预估金额 商机金额 预计成交金额 意向金额",
    "won_amount": "wonamount closedamount 赢单金额 合同金额",
    "lost_reason": "lostreason lossreason reasonlost 丢单原因 失败原因",
    "next_followup": "nextfollowup nextfollowupdate nextfollowupon nextcontact "
    "下次跟进日期 下次跟进时间 下次联系",
    # New leads get new numbers and today's dates: these columns are known and left out.
    "": "id no 序号 线索编号 created createdat 创建日期 lastactivity "
    "最后跟进时间",
}
HEADER_MAP: dict[str, str] = {
    _header_key(alias): key for key, names in _ALIASES.items() for alias in names.split()
}
# Every header an export writes, in either language, reads back as its field: the Chinese ones
# come from the catalog with the export's.
for _key in COLUMNS["leads"]:
    for _locale in wording.LOCALES:
        HEADER_MAP.setdefault(
            _header_key(COLUMNS["leads"].label(_key, _locale)), _key if _key in _ALIASES else ""
        )
_LEAD_SHEETS = {"leads", "lead", "线索", "客户", "线索列表", "客户列表", "客户信息"}


@dataclass
class SourceTable:
    """The rows of a file below its header row, with their row numbers in the file."""

    header: list[str]
    rows: list[tuple[int, list[Any]]]
    sheet: str | None = None
    encoding: str | None = None


def read_table(path: Path, *, locale: str = "en") -> SourceTable:
    """The lead rows of an XLSX or CSV file; raises ExchangeError when there is no usable header."""
    suffix = path.suffix.casefold()
    if suffix in (".xlsx", ".xlsm"):
        return _read_xlsx(path.read_bytes(), locale)
    if suffix in (".csv", ".txt", ".tsv"):
        return _read_csv(path.read_bytes(), locale)
    raise ExchangeError(
        wording.say(
            locale,
            "{name}: give an .xlsx or .csv file (save an old .xls as .xlsx)",
            name=path.name,
        )
    )


def _find_header(rows: list[list[Any]]) -> int | None:
    """The row (within the first ten) naming the most known columns, one of them the customer."""
    best, best_count = None, 0
    for index, row in enumerate(rows[:10]):
        keys = {HEADER_MAP.get(_header_key(cell)) for cell in row if cell not in (None, "")}
        count = len(keys - {None, ""})
        if ("name" in keys or "company" in keys) and count > best_count:
            best, best_count = index, count
    return best


def _no_header(locale: str) -> ExchangeError:
    columns = COLUMNS["leads"]
    names = "/".join(
        words.spelling(locale, (key, columns.label(key, "zh")))
        for key in ("name", "company", "phone", "email", "source", "owner", "stage", "value")
    )
    return ExchangeError(
        wording.say(locale, "no header row with a customer name or company column ({n})", n=names)
    )


def _read_xlsx(data: bytes, locale: str) -> SourceTable:
    from openpyxl import load_workbook  # see to_xlsx

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable workbook is the same answer
        raise ExchangeError(
            wording.say(locale, "not a readable .xlsx file ({e})", e=type(error).__name__)
        ) from error
    try:
        sheets = sorted(book.worksheets, key=lambda ws: _header_key(ws.title) not in _LEAD_SHEETS)
        for ws in sheets:
            rows = [list(row) for row in ws.iter_rows(values_only=True)]
            start = _find_header(rows)
            if start is not None:
                width = len(rows[start])
                body = [
                    (number, (row + [None] * width)[:width])
                    for number, row in enumerate(rows[start + 1 :], start=start + 2)
                ]
                return SourceTable(
                    header=[str(c or "") for c in rows[start]], rows=body, sheet=ws.title
                )
    finally:
        book.close()
    raise _no_header(locale)


def decode(data: bytes) -> tuple[str, str]:
    """Text and encoding: a BOM decides; else UTF-8 if it decodes; else GB18030 (GBK's superset)."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8"), "utf-8-sig"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16"), "utf-16"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("gb18030", errors="replace"), "gb18030"


def _read_csv(data: bytes, locale: str) -> SourceTable:
    text, encoding = decode(data)
    sample = text[:8192]
    try:
        dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    rows = list(csv.reader(io.StringIO(text, newline=""), dialect))
    start = _find_header(rows)
    if start is None:
        raise _no_header(locale)
    width = len(rows[start])
    body = [
        (number, (row + [""] * width)[:width])
        for number, row in enumerate(rows[start + 1 :], start=start + 2)
    ]
    return SourceTable(header=rows[start], rows=body, encoding=encoding)


def map_columns(header: Sequence[str]) -> tuple[dict[str, int], dict[str, int], list[str]]:
    """Field → column index (first wins), amount multipliers (`预计金额(万元)`), unknown headers."""
    mapping: dict[str, int] = {}
    scale: dict[str, int] = {}
    unknown = []
    for index, name in enumerate(header):
        if not str(name).strip():
            continue
        key = HEADER_MAP.get(_header_key(name))
        if key is None:
            unknown.append(str(name).strip())
        elif key and key not in mapping:
            mapping[key] = index
            if key in ("value", "won_amount") and "万" in str(name):
                scale[key] = 10_000
    return mapping, scale, unknown


# --- import --------------------------------------------------------------------------------------


@dataclass
class RowResult:
    row: int
    outcome: str  # created | merged | rejected
    name: str = ""
    lead: int | None = None
    detail: str = ""


@dataclass
class ImportReport:
    results: list[RowResult] = field(default_factory=list)
    columns: dict[str, str] = field(default_factory=dict)  # header as written → field
    unknown: list[str] = field(default_factory=list)
    dry_run: bool = False

    def count(self, outcome: str) -> int:
        return sum(1 for result in self.results if result.outcome == outcome)


_MAX_AMOUNT = Decimal(10) ** 15  # far above any deal, far below what a BIGINT of cents holds


class RowError(Exception):
    """One row cannot be imported; the message says why, in the team's language."""


_FIELD_LIMITS = {
    "name": 200,
    "company": 200,
    "contact": 200,
    "phone": 64,
    "email": 200,
    "source": 100,
    "tag": 100,
}


def _field_word(key: str, locale: str) -> str:
    """A lead field as the team reads it (`value` → 预计金额 / estimated value)."""
    if key == "value":
        return wording.say(locale, "estimated value")
    if locale != "zh":
        return key
    return names.LEAD_FIELDS.label(names.LEAD_FIELDS.find(key) or key, locale)


_STATUS_IN = {
    "open": "open",
    "进行中": "open",
    "跟进中": "open",
    "active": "open",
    "won": "won",
    "赢单": "won",
    "成交": "won",
    "已成交": "won",
    "closedwon": "won",
    "lost": "lost",
    "输单": "lost",
    "丢单": "lost",
    "closedlost": "lost",
    "已输单": "lost",
}


@dataclass
class ParsedRow:
    data: leads.NewLead
    owner: str | None = None
    stage: str | None = None
    status: str = "open"
    won_amount: int | None = None
    lost_reason: str | None = None
    next_on: date | None = None
    notes: list[str] = field(default_factory=list)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        value = "yes" if value else "no"
    elif isinstance(value, float) and value.is_integer():
        value = str(int(value))
    elif isinstance(value, datetime):
        value = value.isoformat(sep=" ", timespec="minutes")
    text = visible(_CONTROL.sub(
        "", unicodedata.normalize("NFC", str(value)).replace("\r", " ").replace("\n", " ")
    )).strip()
    if text.startswith("'") and risky(text[1:]):
        text = text[1:]  # our own CSV export protected it; the value is what follows
    return text or None


class RowParser:
    """Turns one row's cells into lead facts, or says why it cannot."""

    def __init__(
        self,
        mapping: dict[str, int],
        scale: dict[str, int],
        config: TeamConfig,
        locale: str,
        today: date,
    ) -> None:
        self.mapping, self.scale, self.config, self.locale, self.today = (
            mapping,
            scale,
            config,
            locale,
            today,
        )

    def say(self, msgid: str, /, **params: Any) -> str:
        return wording.say(self.locale, msgid, **params)

    def cell(self, row: list[Any], key: str) -> Any:
        index = self.mapping.get(key)
        return row[index] if index is not None and index < len(row) else None

    def text(self, row: list[Any], key: str) -> str | None:
        raw = self.cell(row, key)
        if isinstance(raw, str) and (controls := direction_controls(raw)):
            raise RowError(
                self.say(
                    "{f} holds invisible direction characters ({c}) that make it show as "
                    "something else",
                    f=_field_word(key, self.locale),
                    c=", ".join(controls),
                )
            )
        value = _text(raw)
        limit = _FIELD_LIMITS.get(key)
        if value and limit and len(value) > limit:
            raise RowError(
                self.say(
                    "{f} is longer than {n} characters",
                    f=_field_word(key, self.locale),
                    n=limit,
                )
            )
        return value

    def amount(self, row: list[Any], key: str) -> int | None:
        raw = self.cell(row, key)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return None
        value: Decimal | None
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            try:
                value = Decimal(str(raw))
            except InvalidOperation:
                value = None
        else:
            value = parse_amount(str(_text(raw)))
        if value is not None and value.is_finite() and value * self.scale.get(key, 1) > _MAX_AMOUNT:
            raise RowError(self.say("amount “{v}” is too large", v=_text(raw)))
        if value is None or value < 0 or not value.is_finite():
            raise RowError(
                self.say("amount “{v}” is not an amount", v=_text(raw))
            )
        return int((value * self.scale.get(key, 1) * 100).to_integral_value())

    def day(self, row: list[Any], key: str) -> date | None:
        raw = self.cell(row, key)
        if isinstance(raw, datetime):
            found: date | None = raw.date()
        elif isinstance(raw, date):
            found = raw
        else:
            text = _text(raw)
            if not text:
                return None
            found = parse_date(
                text[:10] if re.match(r"^\d{4}-\d{2}-\d{2}[ T]", text) else text, self.today
            )
            if found is None:
                raise RowError(self.say("date “{v}” is not a date", v=text))
        # A cell of 0001-01-01 or 9999-12-31 (a spreadsheet's empty date) is no one's plan.
        first, last = years_from(self.today, -RECORD_YEARS), latest_plan(self.today)
        if not first <= found <= last:
            raise RowError(
                self.say("date {v} is not between {a} and {b}", v=found, a=first, b=last)
            )
        return found

    def parse(self, row: list[Any]) -> ParsedRow:
        name, company = self.text(row, "name"), self.text(row, "company")
        if not name and not company:
            raise RowError(self.say("no customer name or company"))
        phone, email = self.text(row, "phone"), self.text(row, "email")
        if phone and not looks_like_phone(phone):
            raise RowError(
                self.say("phone “{v}” is not a phone number", v=phone)
            )
        if email and not looks_like_email(email):
            raise RowError(
                self.say("email “{v}” is not an e-mail address", v=email)
            )
        data = leads.NewLead(
            name=name or company or "",
            company=company,
            contact=self.text(row, "contact"),
            phone=phone,
            email=email,
            source=self.text(row, "source"),
            tag=self.text(row, "tag"),
            value=self.amount(row, "value"),
        )
        parsed = ParsedRow(
            data=data, owner=_text(self.cell(row, "owner")), next_on=self.day(row, "next_followup")
        )
        stage_text = _text(self.cell(row, "stage"))
        if stage_text:
            stage = self.config.find_stage(stage_text)
            if stage is None:
                first = self.config.stages[0].label(self.locale)
                parsed.notes.append(
                    self.say(
                        "stage “{s}” is not in the pipeline: put in {f}",
                        s=stage_text,
                        f=first,
                    )
                )
            else:
                parsed.stage = stage.key
        status_text = _text(self.cell(row, "status"))
        if status_text:
            status = _STATUS_IN.get(_header_key(status_text))
            if status is None:
                parsed.notes.append(
                    self.say("status “{s}” not understood: imported as open", s=status_text)
                )
            else:
                parsed.status = status
        if parsed.status == "won":
            parsed.won_amount = self.amount(row, "won_amount") or data.value
            if not parsed.won_amount:
                raise RowError(self.say("won without an amount"))
        if parsed.status == "lost":
            parsed.lost_reason = _text(self.cell(row, "lost_reason")) or "-"
        return parsed


class OwnerPicker:
    """Who owns an imported row: one member for all, or (auto) the row's owner column when it
    names a member, else the team's assignment rule, counted in memory so 10,000 rows stay cheap."""

    def __init__(
        self,
        session: Session,
        team: Team,
        config: TeamConfig,
        fixed: Member | None,
        auto: bool,
        locale: str,
    ) -> None:
        self.fixed, self.auto, self.locale = fixed, auto, locale
        people = list(
            session.exec(select(Member).where(Member.team_id == team.id).order_by(col(Member.id)))
        )
        self.by_name: dict[str, Member] = {}
        for member in people:
            for key in (member.name, member.user_key, member.handle):
                if key:
                    self.by_name.setdefault(key.casefold().lstrip("@"), member)
        rule = str(getattr(config, "assignment", "balanced"))
        # Leads nobody is meant to pick (manual assignment, or the pool rule) wait in the pool.
        self.to_pool = rule in ("pool", "manual")
        self.round_robin = rule == "round_robin"
        self.candidates = [m for m in people if m.role == "rep"] or people
        open_leads = dict(
            session.exec(
                select(Lead.owner_id, func.count())
                .where(Lead.team_id == team.id, Lead.status == "open")
                .group_by(col(Lead.owner_id))
            ).all()
        )
        self.load = {m.id: int(open_leads.get(m.id, 0)) for m in self.candidates}
        self.turn = 0

    def owner(self, written: str | None, notes: list[str]) -> Member | None:
        """The member to own the row; None for the pool."""
        if self.fixed is not None:
            return self.fixed
        if written:
            member = self.by_name.get(written.casefold().lstrip("@"))
            if member is not None:
                return member
            notes.append(
                wording.say(self.locale, "owner “{o}” is not a member", o=written)
            )
        if self.to_pool or not self.candidates:
            return None
        if self.round_robin:
            return self.candidates[self.turn % len(self.candidates)]
        return min(self.candidates, key=lambda m: (self.load.get(m.id, 0), m.id or 0))

    def save(self) -> tuple[int, dict[int | None, int]]:
        return self.turn, dict(self.load)

    def restore(self, saved: tuple[int, dict[int | None, int]]) -> None:
        self.turn, self.load = saved[0], dict(saved[1])

    def took(self, member: Member | None) -> None:
        """The row became a new lead of `member`: count it (a merged row takes nobody's turn)."""
        self.turn += 1
        if member is not None and member.id in self.load:
            self.load[member.id] += 1


def import_leads(
    engine: Engine,
    team: Team,
    table: SourceTable,
    *,
    owner: Member | None,
    auto: bool,
    dry_run: bool,
    now: datetime,
    source_name: str = "",
    progress: Callable[[int], None] | None = None,
    by: Member | None = None,
) -> ImportReport:
    """Add every row as a lead (or merge it into its duplicate); one report line per row.

    `by` is the member who imports: each lead's history names them. Without one the history says
    the lead was imported (never that the pool did it).

    Rows go in batches of BATCH: each row is checked with the same duplicate rule as `/lead add`
    (`models.leads.find_duplicates`, and against the rows before it in the file), then the batch's
    new leads and their audit events are inserted at once. Should the database refuse a batch, its
    rows are done again one by one, each in a savepoint, so only the bad row is lost. A real import
    commits every batch; a dry run does all of it in one transaction and rolls it back.
    """
    config = TeamConfig.model_validate(team.config or {})
    locale = locale_of(team)
    mapping, scale, unknown = map_columns(table.header)
    report = ImportReport(
        dry_run=dry_run,
        unknown=unknown,
        columns={table.header[index]: key for key, index in mapping.items()},
    )
    parser = RowParser(mapping, scale, config, locale, now.astimezone(config.tz).date())
    rows = []
    for number, cells in table.rows:
        if all(_text(cell) is None for cell in cells):
            _tick(progress)  # blank lines between blocks or at the end of a sheet
        else:
            rows.append((number, cells))
    with Session(engine, expire_on_commit=False) as session:
        transaction = session.begin()
        try:
            team = session.get(Team, team.id) or team
            # Import events earn nobody points (models/points.py counts no "import" or "merge").
            importer = session.get(Member, by.id) if by is not None else None
            actor = importer or Member(
                id=None, team_id=team.id or 0, user_key="", name="import", role="admin"
            )
            batch = _Batch(
                Scope(session=session, team=team, actor=actor, now=now),
                parser,
                OwnerPicker(session, team, config, owner, auto, locale),
                source_name,
            )
            for start in range(0, len(rows), BATCH):
                report.results += batch.run(rows[start : start + BATCH], progress)
                if not dry_run:
                    transaction.commit()
                    transaction = session.begin()
        except BaseException:
            transaction.rollback()
            raise
        if dry_run:
            transaction.rollback()
        else:
            transaction.commit()
    return report


@dataclass
class _NewLead:
    """A row that becomes a lead when its batch is inserted."""

    row: int
    parsed: ParsedRow
    norms: dict[str, str | None]
    owner: Member | None
    result: RowResult
    twins: list[RowResult] = field(default_factory=list)  # later rows merged into this one


class _Batch:
    def __init__(self, scope: Scope, parser: RowParser, owners: OwnerPicker, source: str) -> None:
        self.scope, self.parser, self.owners, self.source = scope, parser, owners, source

    def run(
        self, rows: list[tuple[int, list[Any]]], progress: Callable[[int], None] | None
    ) -> list[RowResult]:
        """The batch at once; if the database refuses it, each row alone in its own savepoint."""
        session = self.scope.session
        saved = self.owners.save()
        try:
            with session.begin_nested():
                results = self._rows(rows, progress)
            return results
        except SQLAlchemyError:
            self.owners.restore(saved)
        results = []
        for number, cells in rows:
            saved = self.owners.save()
            try:
                with session.begin_nested():
                    results += self._rows([(number, cells)], None)
            except SQLAlchemyError as error:
                self.owners.restore(saved)
                reason = str(getattr(error, "orig", error)).strip().splitlines()[0][:160]
                detail = self.parser.say("the database refused it: {e}", e=reason)
                results.append(
                    RowResult(
                        row=number,
                        outcome="rejected",
                        name=_row_name(self.parser, cells),
                        detail=detail,
                    )
                )
        return results

    def _rows(
        self, rows: list[tuple[int, list[Any]]], progress: Callable[[int], None] | None
    ) -> list[RowResult]:
        scope, parser = self.scope, self.parser
        # Reps adding leads meanwhile wait for this batch (the same lock `/lead add` takes).
        lock_team(scope.session, scope.team)
        results: list[RowResult] = []
        new: list[_NewLead] = []
        seen: dict[tuple[str, str], _NewLead] = {}
        parsed_rows: list[tuple[int, ParsedRow | RowResult, dict[str, str | None]]] = []
        for number, cells in rows:
            _tick(progress)
            try:
                parsed = parser.parse(cells)
            except RowError as error:
                name = _row_name(parser, cells)
                rejected = RowResult(row=number, outcome="rejected", name=name, detail=str(error))
                parsed_rows.append((number, rejected, {}))
                continue
            data = parsed.data
            norms = {
                "phone": normalize_phone(data.phone),
                "email": normalize_email(data.email),
                "company": normalize_company(data.company or data.name),
            }
            parsed_rows.append((number, parsed, norms))
        known = _known_norms(scope.session, scope.team.id or 0, [n for _, _, n in parsed_rows])
        for number, parsed_or_rejected, norms in parsed_rows:
            if isinstance(parsed_or_rejected, RowResult):
                results.append(parsed_or_rejected)
                continue
            parsed, data = parsed_or_rejected, parsed_or_rejected.data
            # The one query per batch above only says which rows may have a twin in the team; the
            # duplicate rule of `/lead add` decides which lead that is.
            maybe = any(value and (key, value) in known for key, value in norms.items())
            found = (
                leads.find_duplicates(scope.session, team_id=scope.team.id or 0, **norms)
                if maybe
                else []
            )
            if found:
                try:
                    results.append(_merge(scope, parser, number, found[0], parsed))
                    known |= {(key, value) for key, value in _norms_of(found[0]).items() if value}
                except DomainError as error:  # it changed under us: say so, go on
                    results.append(
                        RowResult(row=number, outcome="rejected", name=data.name, detail=error.key)
                    )
                continue
            twin = next((seen[(k, v)] for k, v in norms.items() if v and (k, v) in seen), None)
            if twin is not None:
                results.append(_merge_new(parser, number, twin, parsed))
                seen.update(
                    {(k, v): twin for k, v in twin.norms.items() if v and (k, v) not in seen}
                )
                continue
            member = self.owners.owner(parsed.owner, parsed.notes)
            self.owners.took(member)
            detail = member.name if member else parser.say("pool")
            if parsed.notes:
                detail += " · " + "; ".join(parsed.notes)
            result = RowResult(row=number, outcome="created", name=data.name, detail=detail)
            lead = _NewLead(number, parsed, norms, member, result)
            new.append(lead)
            results.append(result)
            for key, value in norms.items():
                if value:
                    seen.setdefault((key, value), lead)
        self._insert(new)
        return results

    def _insert(self, new: list[_NewLead]) -> None:
        """The batch's new leads and one audit event each ("import"), in two statements."""
        if not new:
            return
        scope = self.scope
        session, team, now = scope.session, scope.team, scope.now
        session.execute(
            update(Team).where(col(Team.id) == team.id).values(lead_seq=Team.lead_seq + len(new))
        )
        first = (
            int(session.exec(select(Team.lead_seq).where(Team.id == team.id)).one()) - len(new) + 1
        )
        first_stage = scope.config.stages[0].key
        values = []
        for offset, lead in enumerate(new):
            parsed, data = lead.parsed, lead.parsed.data
            closed = parsed.status != "open"
            values.append({
                "team_id": team.id, "number": first + offset, "name": data.name,
                "company": data.company, "contact": data.contact, "phone": data.phone,
                "email": data.email, "source": data.source, "tag": data.tag, "value": data.value,
                "norm_phone": lead.norms["phone"], "norm_email": lead.norms["email"],
                "norm_company": lead.norms["company"],
                "owner_id": lead.owner.id if lead.owner else None, "created_by_id": None,
                "stage": parsed.stage or first_stage, "status": parsed.status,
                "won_amount": parsed.won_amount, "lost_reason": parsed.lost_reason,
                "next_followup_on": None if closed else parsed.next_on,
                "closed_at": now if closed else None, "last_activity_at": now,
                "stage_changed_at": now, "created_at": now, "version": 1,
            })  # fmt: skip
        ids = dict(session.execute(insert(Lead).returning(Lead.number, Lead.id), values).all())
        events = []
        for lead, row in zip(new, values, strict=True):
            lead.result.lead = row["number"]
            for twin in lead.twins:
                twin.lead = row["number"]
            facts = {key: row[key] for key in _SNAPSHOT if row.get(key) is not None}
            events.append({
                "team_id": team.id, "actor_id": scope.actor.id, "at": now, "entity": "lead",
                "entity_id": ids[row["number"]], "action": "import", "before": None,
                "after": _plain(facts) | {"file": self.source, "row": lead.row},
            })  # fmt: skip
        session.execute(insert(AuditEvent), events)
        plans = [{"team_id": team.id, "lead_id": ids[row["number"]], "created_at": now,
                  "next_due_on": aftersale.first_care_due(scope.config, now)}
                 for row in values if row["status"] == "won"]  # fmt: skip
        if plans:
            session.execute(insert(aftersale.CarePlan), plans)


# What the "import" audit event shows of a new lead: what `/lead add` records, and the outcome.
_SNAPSHOT = (*leads.EDITABLE, "owner_id", "stage", "status", "won_amount", "lost_reason",
             "next_followup_on")  # fmt: skip


def _plain(facts: dict[str, Any]) -> dict[str, Any]:
    return {
        key: value.isoformat() if isinstance(value, date) else value for key, value in facts.items()
    }


def _known_norms(
    session: Session, team_id: int, rows: list[dict[str, str | None]]
) -> set[tuple[str, str]]:
    """Which of these normalised phones, e-mails and companies some lead of the team already has."""
    wanted = {
        key: sorted({row[key] for row in rows if row.get(key)})
        for key in ("phone", "email", "company")
    }
    columns = {"phone": Lead.norm_phone, "email": Lead.norm_email, "company": Lead.norm_company}
    known: set[tuple[str, str]] = set()
    for key, values in wanted.items():
        if values:
            column = columns[key]
            query = (
                select(column).where(Lead.team_id == team_id, col(column).in_(values)).distinct()
            )
            known |= {(key, value) for value in session.exec(query) if value}
    return known


def _norms_of(lead: Lead) -> dict[str, str | None]:
    return {"phone": lead.norm_phone, "email": lead.norm_email, "company": lead.norm_company}


def _row_name(parser: RowParser, cells: list[Any]) -> str:
    return (_text(parser.cell(cells, "name")) or _text(parser.cell(cells, "company")) or "")[:80]


def _merge_new(parser: RowParser, number: int, twin: _NewLead, parsed: ParsedRow) -> RowResult:
    """A row repeating an earlier row of the same file: fill what that one left empty."""
    data, target = parsed.data, twin.parsed.data
    filled = []
    for key in ("company", "contact", "phone", "email", "source", "tag", "value"):
        if getattr(target, key) in (None, "") and getattr(data, key) not in (None, ""):
            setattr(target, key, getattr(data, key))
            filled.append(key)
    if "phone" in filled:
        twin.norms["phone"] = normalize_phone(target.phone)
    if "email" in filled:
        twin.norms["email"] = normalize_email(target.email)
    result = RowResult(
        row=number,
        outcome="merged",
        name=data.name,
        detail=_merge_detail(parser, target.name, twin.owner, filled),
    )
    twin.twins.append(result)
    return result


def _merge_detail(parser: RowParser, name: str, owner: Member | None, filled: list[str]) -> str:
    filled_words = wording.join(parser.locale, (_field_word(key, parser.locale) for key in filled))
    detail = (
        parser.say("filled {f}", f=filled_words)
        if filled
        else parser.say("nothing new")
    )
    who = owner.name if owner else parser.say("pool")
    return parser.say("{name} ({who}) · {detail}", name=name, who=who, detail=detail)


def _merge(
    scope: Scope, parser: RowParser, number: int, existing: Lead, parsed: ParsedRow
) -> RowResult:
    """Fill the existing lead's empty fields from the row; never overwrite what it already has."""
    data = parsed.data
    filled: dict[str, Any] = {}
    for key in ("company", "contact", "phone", "email", "source", "tag", "value"):
        if getattr(existing, key) in (None, "") and getattr(data, key) not in (None, ""):
            filled[key] = getattr(data, key)
    derived: dict[str, Any] = {}
    if "phone" in filled:
        derived["norm_phone"] = normalize_phone(filled["phone"])
    if "email" in filled:
        derived["norm_email"] = normalize_email(filled["email"])
    if "company" in filled and not existing.norm_company:
        derived["norm_company"] = normalize_company(filled["company"])
    if filled:
        leads.guarded_update(scope, existing, action="merge", **filled, **derived)
    owner = scope.session.get(Member, existing.owner_id) if existing.owner_id else None
    return RowResult(
        row=number,
        outcome="merged",
        name=data.name,
        lead=existing.number,
        detail=_merge_detail(parser, existing.name, owner, list(filled)),
    )


def describe(report: ImportReport, locale: str) -> list[str]:
    """The report as lines a person reads: the column mapping, one line per row, the totals."""
    lines = []
    if report.columns:
        # A field as the reader types it: its Chinese name, or its key in English.
        pairs = wording.join(
            locale,
            (
                f"{header} → {words.spelling(locale, (key, _field_word(key, 'zh')))}"
                for header, key in report.columns.items()
            ),
        )
        lines.append(wording.say(locale, "Columns: {c}", c=pairs))
    if report.unknown:
        unknown = wording.join(locale, report.unknown)
        lines.append(wording.say(locale, "Columns not imported: {c}", c=unknown))
    for result in report.results:
        ref, r, d = f"L{result.lead}", result.row, result.detail
        if result.outcome == "created":
            line = wording.say(
                locale,
                "row {r}: created {ref} {n} → {d}",
                r=r,
                ref=ref,
                n=result.name,
                d=d,
            )
        elif result.outcome == "merged":
            line = wording.say(
                locale,
                "row {r}: merged as a duplicate of {ref} {d}",
                r=r,
                ref=ref,
                d=d,
            )
        else:
            line = (
                wording.say(locale, "row {r}: {n} rejected — {d}", r=r, n=result.name, d=d)
                if result.name
                else wording.say(locale, "row {r}: rejected — {d}", r=r, d=d)
            )
        lines.append(line)
    total = len(report.results)
    summary = wording.say_n(
        locale,
        "{n} row: {c} created, {m} merged as duplicates, {x} rejected.",
        "{n} rows: {c} created, {m} merged as duplicates, {x} rejected.",
        total,
        c=report.count("created"),
        m=report.count("merged"),
        x=report.count("rejected"),
    )
    if report.dry_run:
        summary += wording.say(locale, " Dry run: nothing was written.")
    lines.append(summary)
    return lines


# --- the CLI's side ------------------------------------------------------------------------------


def find_team(session: Session, ref: str | None) -> Team:
    """A team by `platform:key`, key or name; the only team when none is named."""
    teams = list(session.exec(select(Team).order_by(col(Team.id))))
    if ref:
        platform, _, key = ref.partition(":") if ":" in ref else ("", "", ref)
        found = [
            t for t in teams if (not platform or t.platform == platform) and key in (t.key, t.name)
        ]
    else:
        found = teams
    if len(found) == 1:
        return found[0]
    known = (
        ", ".join(f"{t.platform}:{t.key}" for t in teams)
        or "none yet — talk to the bot in the team first"
    )
    if not found:
        raise ExchangeError(f"no team {ref!r}; teams: {known}" if ref else f"no team yet: {known}")
    raise ExchangeError(f"several teams match, name one with --team platform:key: {known}")


def find_owner(session: Session, team: Team, ref: str) -> Member:
    wanted = ref.strip().lstrip("@").casefold()
    for member in session.exec(
        select(Member).where(Member.team_id == team.id).order_by(col(Member.id))
    ):
        if wanted in (
            member.name.casefold(),
            member.user_key.casefold(),
            (member.handle or "").casefold(),
        ):
            return member
    raise ExchangeError(f"no member {ref!r} in team {team.key}; use --owner @name, auto or pool")


def run_export(
    engine: Engine,
    *,
    kind: str,
    fmt: str | None,
    out: Path,
    team_ref: str | None,
    echo: Callable[[str], None],
) -> None:
    """`dealbot export`: write the file, say what is in it."""
    from rich.console import Console
    from rich.progress import Progress

    fmt = (fmt or out.suffix.lstrip(".") or "xlsx").casefold()
    if fmt not in ("xlsx", "csv"):
        raise ExchangeError(f"--format must be xlsx or csv, not {fmt!r}")
    kinds = list(KINDS) if kind == "all" else [kind]
    with Session(engine, expire_on_commit=False) as session:
        team = find_team(session, team_ref)
        locale = locale_of(team)
        console = Console(stderr=True)
        with Progress(console=console, transient=True, disable=not console.is_terminal) as bar:
            task = bar.add_task("export", total=None)
            made = export(
                session,
                team,
                kinds,
                fmt=fmt,
                locale=locale,
                progress=lambda n: bar.advance(task, n),
            )
    out.write_bytes(made.data)
    counts = ", ".join(f"{n} {kind}" for kind, n in made.counts.items())
    echo(f"{out}: {counts} ({fmt}, team {team.key}, {'zh' if locale == 'zh' else 'en'} headers)")


def run_import(
    engine: Engine,
    *,
    path: Path,
    team_ref: str,
    owner_ref: str,
    dry_run: bool,
    now: datetime,
    echo: Callable[[str], None],
    by_ref: str | None = None,
) -> ImportReport:
    """`dealbot import leads`: read, import with a progress bar, print the per-row report.

    The history of each lead names who imported it: `by_ref`, else the one owner named."""
    from rich.console import Console
    from rich.progress import Progress

    with Session(engine, expire_on_commit=False) as session:
        team = find_team(session, team_ref)
        locale = locale_of(team)
        wanted = owner_ref.strip().casefold()
        auto = wanted in ("auto", "自动")
        to_pool = wanted in ("pool", "公海")
        owner = None if auto or to_pool else find_owner(session, team, owner_ref)
        by = owner
        if by_ref:
            try:
                by = find_owner(session, team, by_ref)
            except ExchangeError:
                raise ExchangeError(
                    wording.say(
                        locale,
                        "no member {r} in team {t}: --by names who imports",
                        r=by_ref,
                        t=team.key,
                    )
                ) from None
    if not path.exists():
        raise ExchangeError(wording.say(locale, "{p}: no such file", p=path))
    table = read_table(path, locale=locale)
    console = Console(stderr=True)
    with Progress(console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task(wording.say(locale, "importing"), total=len(table.rows))
        report = import_leads(
            engine,
            team,
            table,
            owner=owner,
            auto=auto,
            dry_run=dry_run,
            now=now.astimezone(UTC),
            source_name=path.name,
            progress=lambda n: bar.advance(task, n),
            by=by,
        )
    for line in describe(report, locale):
        echo(line)
    return report


def kinds_in(words: Iterable[str]) -> list[str]:
    """Kinds named in chat words (`leads`, `跟进`…); all of them when none is named."""
    names = {
        "leads": "leads",
        "lead": "leads",
        "线索": "leads",
        "客户": "leads",
        "followups": "followups",
        "followup": "followups",
        "follow-ups": "followups",
        "跟进": "followups",
        "quotes": "quotes",
        "quote": "quotes",
        "报价": "quotes",
    }
    found = [names[word.casefold()] for word in words if word.casefold() in names]
    return list(dict.fromkeys(found)) or list(KINDS)
