"""Excel and CSV in and out. Export: a sheet per kind, dates in the team's timezone, amounts as
numbers, Chinese headers for a Chinese team, nothing a spreadsheet would run as a formula. Import:
real XLSX files written by openpyxl and CSV files as Excel saves them (UTF-8 with BOM, GBK/GB18030),
with bad rows mixed in; every row reported; duplicates merged; a dry run writes nothing. The last
tests run the installed `dealbot` script. The fixture clock says Thu 26 Nov 2026, 09:00 Shanghai."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from openpyxl import Workbook, load_workbook
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot import exchange
from models.clock import FixedClock
from models.db import create_schema, make_engine, unit_of_work
from models.migrate import alembic_config
from models.tables import Team
from tests.chat import Chat
from tests.fakes.http import Answer, Recorded
from tests.test_cli import dealbot, ok
from tests.test_slack import FakeSlack, SlackHarness, arguments, text_of
from tests.test_telegram import GROUP, PEOPLE, FakeBotApi, TelegramHarness

LEAD_HEADER = [
    "ID",
    "Name",
    "Company",
    "Contact",
    "Phone",
    "Email",
    "Source",
    "Tag",
    "Owner",
    "Stage",
    "Status",
    "Estimated value",
    "Won amount",
    "Lost reason",
    "Next follow-up",
    "Created",
    "Last activity",
]


def seed(chat: Chat) -> None:
    """L1 alice (Contacted, follow-up, Q1 approved), L2 carol, L3 carol (won), L4 dan (lost)."""
    for line in [
        "/lead add Acme Trading phone=138-0013-8000 value=120k source=fair contact=Li",
        "/follow L1 demo went well, they want a quote next=fri via=visit",
        "/lead next L1",
        "/quote L1 80k discount=5%",
        "[bob] /quote approve Q1 fine",
        "[carol] /lead add Beta Systems email=ops@beta.io value=12.5k tag=vip",
        "[carol] /lead add Gamma Foods company=Gamma Foods Ltd value=40k",
        "[carol] /lead won L3 45k",
        "[dan] /lead add Delta value=40k",
        "[dan] /lead lost L4 no budget",
    ]:
        answer = chat.say(line)
        assert not answer.startswith(("❓", "⚠", "Sorry")), (line, answer)


def team_row(chat: Chat) -> Team:
    with Session(chat.engine) as session:
        return session.exec(select(Team).where(Team.key == chat.adapter.team)).one()


def set_config(chat: Chat, **settings: Any) -> None:
    with unit_of_work(chat.engine) as session:
        team = session.exec(select(Team).where(Team.key == chat.adapter.team)).one()
        team.config = {**team.config, **settings}
        session.add(team)


def import_file(
    chat: Chat, path: Path, *, owner: str = "auto", dry_run: bool = False, **by: str
) -> list[str]:
    """What `dealbot import leads FILE` prints, run in-process against the chat's database."""
    lines: list[str] = []
    exchange.run_import(
        chat.engine,
        path=path,
        team_ref=chat.adapter.team,
        owner_ref=owner,
        dry_run=dry_run,
        now=chat.clock.now(),
        echo=lines.append,
        **({"by_ref": by["by"]} if "by" in by else {}),
    )
    return lines


def write_xlsx(path: Path, rows: list[list[Any]], title: str = "Sheet1") -> Path:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = title
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


def sheet_rows(data: bytes, title: str) -> list[list[Any]]:
    sheet = load_workbook(io.BytesIO(data))[title]
    return [[cell.value for cell in row] for row in sheet.iter_rows()]


def export_reply(chat: Chat, line: str) -> tuple[str, Path]:
    """What the console shows for an export, and the file it saved."""
    shown = chat.say(line)
    match = re.search(r"📎 (\S+): (\S+)$", shown, re.M)
    assert match, shown
    return shown, Path(match.group(2))


# --- export --------------------------------------------------------------------------------------


def test_xlsx_has_a_sheet_per_kind_amounts_as_numbers_and_local_dates(team: Chat) -> None:
    seed(team)
    shown, path = export_reply(team, "[erin] /report export")
    assert "📎 Your export — leads 4, follow-ups 1, quotes 1: dealbot-2026-11-26.xlsx" in shown
    book = load_workbook(path)
    assert book.sheetnames == ["Leads", "Follow-ups", "Quotes"]
    leads_rows = sheet_rows(path.read_bytes(), "Leads")
    assert leads_rows[0] == LEAD_HEADER
    nine = datetime(2026, 11, 26, 9, 0)  # 09:00 in Shanghai, not 01:00 UTC
    assert leads_rows[1] == [
        "L1",
        "Acme Trading",
        None,
        "Li",
        "138-0013-8000",
        None,
        "fair",
        None,
        "alice",
        "Contacted",
        "open",
        120000,
        None,
        None,
        datetime(2026, 11, 27),
        nine,
        nine,
    ]
    assert leads_rows[3][1:] == [
        "Gamma Foods",
        "Gamma Foods Ltd",
        None,
        None,
        None,
        None,
        None,
        "carol",
        "Lead",
        "won",
        40000,
        45000,
        None,
        None,
        nine,
        nine,
    ]
    assert leads_rows[4][10:14] == ["lost", 40000, None, "no budget"]
    value = book["Leads"]["L2"]
    assert value.data_type == "n" and value.number_format == "#,##0"
    assert book["Leads"]["L3"].value == 12500
    assert sheet_rows(path.read_bytes(), "Follow-ups") == [
        ["Lead", "Customer", "By", "Via", "Note", "Next follow-up", "At"],
        [
            "L1",
            "Acme Trading",
            "alice",
            "visit",
            "demo went well, they want a quote",
            datetime(2026, 11, 27),
            nine,
        ],
    ]
    assert sheet_rows(path.read_bytes(), "Quotes")[1] == [
        "Q1",
        "L1",
        "Acme Trading",
        "alice",
        80000,
        5,
        "approved",
        "bob",
        nine,
        None,
        "fine",
        nine,
    ]

    # Another timezone moves every moment with it.
    team.say("[erin] /team config timezone=America/New_York")
    _, path = export_reply(team, "[erin] /report export leads")
    assert sheet_rows(path.read_bytes(), "Leads")[1][15] == datetime(2026, 11, 25, 20, 0)


def test_a_rep_exports_only_what_they_may_see_and_csv_holds_one_kind(team: Chat) -> None:
    seed(team)
    team.say("/lead add Pool Lead")
    team.say("/lead release L5")
    shown, path = export_reply(team, "[carol] /report export")
    assert "leads 3, follow-ups 0, quotes 0" in shown
    assert [row[1] for row in sheet_rows(path.read_bytes(), "Leads")[1:]] == [
        "Beta Systems",
        "Gamma Foods",
        "Pool Lead",
    ]
    shown, path = export_reply(team, "[carol] /report export csv")
    assert "📎 Your export — leads 3: dealbot-2026-11-26-leads.csv" in shown
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")  # UTF-8 with a BOM, so Excel reads the text right
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0] == LEAD_HEADER
    assert rows[1][:12] == [
        "L2",
        "Beta Systems",
        "",
        "",
        "",
        "ops@beta.io",
        "",
        "vip",
        "carol",
        "Lead",
        "open",
        "12500",
    ]
    assert rows[1][15] == "2026-11-26 09:00"
    assert "❓" in team.say("[carol] /report export spreadsheet")


def test_a_chinese_team_gets_chinese_headers_stages_and_statuses(chat: Chat) -> None:
    for line in [
        "/团队 配置 语言=zh",
        "/线索 新建 华为技术 电话=13912345678 预计=12.5万 来源=展会",
        "/跟进 L1 已电话沟通，客户要方案 下次=下周一 方式=电话",
        "/线索 新建 小米 预计=8万",
        "/线索 赢单 L2",
    ]:
        chat.say(line)
    shown, path = export_reply(chat, "/报表 导出")
    assert "📎 导出完成 — 线索 2、跟进 1、报价 0：dealbot-2026-11-26.xlsx" in shown
    book = load_workbook(path)
    assert book.sheetnames == ["线索", "跟进记录", "报价"]
    rows = sheet_rows(path.read_bytes(), "线索")
    assert rows[0] == [
        "编号",
        "客户名称",
        "公司",
        "联系人",
        "电话",
        "邮箱",
        "来源",
        "标签",
        "负责人",
        "阶段",
        "状态",
        "预计金额",
        "成交金额",
        "输单原因",
        "下次跟进",
        "创建时间",
        "最近活动",
    ]
    assert rows[1][:12] == [
        "L1",
        "华为技术",
        None,
        None,
        "13912345678",
        None,
        "展会",
        None,
        "alice",
        "线索",
        "进行中",
        125000,
    ]
    assert rows[2][10:13] == ["赢单", 80000, 80000]
    assert sheet_rows(path.read_bytes(), "跟进记录")[1][2:5] == [
        "alice",
        "电话",
        "已电话沟通，客户要方案",
    ]


def test_formulas_in_data_are_written_as_text_and_read_back_as_typed(
    team: Chat, tmp_path: Path
) -> None:
    team.say(
        '/lead add =HYPERLINK("http://evil.example","open me") company=@SUM(1+1) contact=+1-2 '
        "tag=-cmd phone=+86 139 1234 5678"
    )
    _, path = export_reply(team, "[erin] /report export leads")
    sheet = load_workbook(path)["Leads"]
    cells = {cell.coordinate: cell for row in sheet.iter_rows() for cell in row}
    assert all(cell.data_type != "f" for cell in cells.values())  # not one formula in the file
    name = cells["B2"]
    assert name.value == '=HYPERLINK("http://evil.example","open me")'
    assert name.data_type == "s" and name.quotePrefix  # Excel shows it as text, as if typed with '
    assert [cells[c].value for c in ("C2", "D2", "E2", "H2")] == [
        "@SUM(1+1)",
        "+1-2",
        "+86 139 1234 5678",
        "-cmd",
    ]
    assert all(cells[c].quotePrefix for c in ("C2", "D2", "E2", "H2"))

    _, path = export_reply(team, "[erin] /report export leads csv")
    rows = list(csv.reader(io.StringIO(path.read_bytes().decode("utf-8-sig"))))
    assert rows[1][1:5] == [
        '\'=HYPERLINK("http://evil.example","open me")',
        "'@SUM(1+1)",
        "'+1-2",
        "'+86 139 1234 5678",
    ]
    assert rows[1][7] == "'-cmd"

    # Imported back, the apostrophe our export added is gone again.
    fresh = Chat(team.engine, team.clock, team="beta")
    fresh.say("/team config locale=en")
    report = import_file(fresh, path)
    assert report[-1] == "1 row: 1 created, 0 merged as duplicates, 0 rejected."
    card = fresh.say("/lead show L1")
    assert 'L1 =HYPERLINK("http://evil.example","open me")' in card
    assert (
        "Company: @SUM(1+1)" in card and "Phone: +86 139 1234 5678" in card and "Tag: -cmd" in card
    )


# --- import --------------------------------------------------------------------------------------


def messy_workbook(path: Path) -> Path:
    """A customer list as people keep them: a title row, Chinese headers, blank and bad rows."""
    return write_xlsx(
        path,
        [
            ["客户名单（2026）"],
            [
                "序号",
                "客户名称",
                "公司",
                "联系人",
                "手机",
                "邮箱",
                "来源",
                "负责人",
                "阶段",
                "预计金额(万元)",
                "备注",
            ],
            [
                1,
                "Zeta Corp",
                "Zeta Corporation Ltd",
                "Mr Zhou",
                13900001111,
                "zhou@zeta.cn",
                "展会",
                "carol",
                "初步沟通",
                12.5,
                "VIP",
            ],
            [
                2,
                "Acme",
                None,
                "Ms Wang",
                "138 0013 8000",
                "sales@acme.com",
                None,
                None,
                None,
                None,
                None,
            ],
            [None, None, None, None, None, None, None, None, None, None, None],
            [4, "Broken Phone Co", None, None, "12ab", None, None, None, None, None, None],
            [5, None, None, "Nobody", "13911112222", None, None, None, None, None, None],
            [6, "Bad Amount Ltd", None, None, None, None, None, None, None, "lots", None],
            [
                7,
                "Eta Trading",
                "Eta Trading Co., Ltd.",
                None,
                "+86 139 2222 3333",
                None,
                None,
                "李雷",
                "谈判",
                3,
                None,
            ],
            [8, "Zeta Corp", None, None, 13900001111, None, None, None, None, None, None],
            [9, "Theta", None, None, None, "not-an-email", None, None, None, None, None],
        ],
        title="客户",
    )


MESSY_REPORT = [
    "Columns: 客户名称 → name, 公司 → company, 联系人 → contact, 手机 → phone, 邮箱 → email, "
    "来源 → source, 负责人 → owner, 阶段 → stage, 预计金额(万元) → value",
    "Columns not imported: 备注",
    "row 3: created L5 Zeta Corp → carol",
    "row 4: merged as a duplicate of L1 Acme Trading (alice) · filled email",
    "row 6: Broken Phone Co rejected — phone “12ab” is not a phone number",
    "row 7: rejected — no customer name or company",
    "row 8: Bad Amount Ltd rejected — amount “lots” is not an amount",
    "row 9: created L6 Eta Trading → pool · stage “谈判” is not in the pipeline: put in Lead; "
    "owner “李雷” is not a member",
    "row 10: merged as a duplicate of L5 Zeta Corp (carol) · nothing new",
    "row 11: Theta rejected — email “not-an-email” is not an e-mail address",
]


def test_xlsx_import_reports_every_row_merges_duplicates_and_keeps_good_rows(
    team: Chat, tmp_path: Path
) -> None:
    seed(team)
    report = import_file(team, messy_workbook(tmp_path / "客户名单.xlsx"))
    assert report == [*MESSY_REPORT, "8 rows: 2 created, 2 merged as duplicates, 4 rejected."]

    zeta = team.say("[bob] /lead show L5")
    assert "L5 Zeta Corp · Contacted · owner carol" in zeta
    assert "Company: Zeta Corporation Ltd" in zeta and "Phone: 13900001111" in zeta
    assert "Estimate: $125,000" in zeta and "Source: 展会" in zeta and "Contact: Mr Zhou" in zeta
    # Nobody named it (李雷 is not a member) and the team assigns by hand: it waits in the pool.
    eta = team.say("[bob] /lead show L6")
    assert "L6 Eta Trading · Lead · owner pool" in eta and "Estimate: $30,000" in eta
    # The duplicate only filled what L1 lacked: its phone and contact stay as they were.
    acme = team.say("/lead show L1")
    assert (
        "E-mail: sales@acme.com" in acme
        and "Phone: 138-0013-8000" in acme
        and "Contact: Li" in acme
    )
    assert "L7" not in team.say("[erin] /lead list team")


def test_a_dry_run_reports_the_same_and_writes_nothing(team: Chat, tmp_path: Path) -> None:
    seed(team)
    before = team.snapshot()
    report = import_file(team, messy_workbook(tmp_path / "list.xlsx"), dry_run=True)
    assert report == [
        *MESSY_REPORT,
        "8 rows: 2 created, 2 merged as duplicates, 4 rejected. Dry run: nothing was written.",
    ]
    assert team.snapshot() == before
    assert (
        import_file(team, messy_workbook(tmp_path / "list.xlsx"))[2]
        == "row 3: created L5 Zeta Corp → carol"
    )


REFUSE = {
    "sqlite": [
        "CREATE TRIGGER refuse_boom BEFORE INSERT ON lead WHEN NEW.name = 'Boom' "
        "BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse_boom() RETURNS trigger AS $$ BEGIN IF NEW.name = 'Boom' THEN "
        "RAISE EXCEPTION 'disk says no'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER refuse_boom BEFORE INSERT ON lead FOR EACH ROW "
        "EXECUTE FUNCTION refuse_boom()",
    ],
}
ALLOW = {
    "sqlite": ["DROP TRIGGER refuse_boom"],
    "postgresql": ["DROP TRIGGER refuse_boom ON lead", "DROP FUNCTION refuse_boom()"],
}


def run_sql(engine: Engine, statements: list[str]) -> None:
    with engine.begin() as connection:
        for statement in statements:
            connection.exec_driver_sql(statement)


def test_a_row_the_database_refuses_is_reported_and_the_others_land(
    team: Chat, tmp_path: Path
) -> None:
    dialect = team.engine.dialect.name
    path = write_xlsx(
        tmp_path / "three.xlsx",
        [
            ["Name", "Phone"],
            ["First", "13800000001"],
            ["Boom", "13800000002"],
            ["Third", "13800000003"],
        ],
    )
    run_sql(team.engine, REFUSE[dialect])
    try:
        report = import_file(team, path, owner="@carol")
    finally:
        run_sql(team.engine, ALLOW[dialect])
    assert report[1:] == [
        "row 2: created L1 First → carol",
        "row 3: Boom rejected — the database refused it: disk says no",
        "row 4: created L2 Third → carol",
        "3 rows: 2 created, 0 merged as duplicates, 1 rejected.",
    ]
    listed = team.say("[carol] /lead list")
    assert "L1 First" in listed and "L2 Third" in listed and "Boom" not in listed


def test_csv_utf8_with_bom_english_headers_one_owner_for_all(team: Chat, tmp_path: Path) -> None:
    text = (
        "Customer Name,Company,Mobile,E-mail,Lead Source,Sales Rep,Stage,Expected Amount,Status,"
        "Won Amount\r\n"
        'Orion Ltd,Orion Ltd,+1 415 555 0100,buy@orion.io,web,alice,Proposal,"$250,000",open,\r\n'
        "Vega,,,vega@example.com,referral,alice,Lead,120k,won,95000\r\n"
        "Sirius,,,,,,,,lost,\r\n"
    )
    path = tmp_path / "crm.csv"
    path.write_bytes(text.encode("utf-8-sig"))
    report = import_file(team, path, owner="@carol")
    assert report[1:] == [
        "row 2: created L1 Orion Ltd → carol",
        "row 3: created L2 Vega → carol",
        "row 4: created L3 Sirius → carol",
        "3 rows: 3 created, 0 merged as duplicates, 0 rejected.",
    ]
    assert report[0] == (
        "Columns: Customer Name → name, Company → company, Mobile → phone, E-mail → email, "
        "Lead Source → source, Sales Rep → owner, Stage → stage, Expected Amount → value, "
        "Status → status, Won Amount → won_amount"
    )
    orion = team.say("[carol] /lead show L1")
    assert "L1 Orion Ltd · Proposal · owner carol" in orion and "Estimate: $250,000" in orion
    assert "Won: $95,000" in team.say("[carol] /lead show L2")
    assert "Lost because: -" in team.say("[carol] /lead show L3")


def test_csv_saved_by_chinese_excel_in_gbk_and_gb18030(chat: Chat, tmp_path: Path) -> None:
    for line in ["/团队 配置 语言=zh", "[张三] /帮助", "[李四] /帮助"]:
        chat.say(line)
    text = (
        "客户名称,电话,邮箱,来源,负责人,阶段,预计金额,下次跟进\r\n"
        "华为技术,139-1234-5678,,展会,张三,需求挖掘,12.5万,2026-12-01\r\n"
        "坏号码公司,12ab,,,,,,\r\n"
        "深圳华为,+86 139 1234 5678,hw@huawei.com,,,,,\r\n"
    )
    gbk = tmp_path / "客户-gbk.csv"
    gbk.write_bytes(text.encode("gbk"))
    assert import_file(chat, gbk) == [
        "列：客户名称 → 名称、电话 → 电话、邮箱 → 邮箱、来源 → 来源、负责人 → 负责人、"
        "阶段 → 阶段、预计金额 → 预计金额、下次跟进 → 下次跟进",
        "第 2 行：已创建 L1 华为技术 → 张三",
        "第 3 行：坏号码公司 已拒绝 — 电话“12ab”不是有效号码",
        "第 4 行：撞单，已合并到 L1 华为技术（张三） · 补充了邮箱",
        "共 3 行：新建 1，撞单合并 1，拒绝 1。",
    ]
    card = chat.say("/线索 查看 L1")
    assert "L1 华为技术 · 需求挖掘 · 负责人 张三" in card and "预计金额: ¥125,000" in card
    assert "邮箱: hw@huawei.com" in card and "下次跟进: 12月1日（周二）" in card

    # GB18030 also holds characters GBK has not (𠮷); the team's rule spreads new leads out.
    set_config(chat, assignment="least_loaded")
    rare = tmp_path / "客户-gb18030.csv"
    rare.write_bytes(
        "客户名称,电话\r\n𠮷野家,13700001111\r\n老字号,13700002222\r\n".encode("gb18030")
    )
    report = import_file(chat, rare)
    assert report[1:] == [
        "第 2 行：已创建 L2 𠮷野家 → 李四",
        "第 3 行：已创建 L3 老字号 → 张三",
        "共 2 行：新建 2，撞单合并 0，拒绝 0。",
    ]


def test_round_robin_and_a_later_row_filling_what_an_earlier_one_left_empty(
    team: Chat, tmp_path: Path
) -> None:
    set_config(team, assignment="round_robin")
    # Excel's "Unicode text": UTF-16 with tabs.
    path = tmp_path / "unicode.txt"
    path.write_bytes(
        "Name\tPhone\tEmail\r\nA Co\t13800000011\t\r\nB Co\t13800000012\t\r\n"
        "A Co\t138 0000 0011\ta@aco.cn\r\nC Co\t13800000013\t\r\n".encode("utf-16")
    )
    assert import_file(team, path)[1:] == [
        "row 2: created L1 A Co → alice",
        "row 3: created L2 B Co → carol",
        "row 4: merged as a duplicate of L1 A Co (alice) · filled email",
        "row 5: created L3 C Co → dan",
        "4 rows: 3 created, 1 merged as duplicates, 0 rejected.",
    ]
    assert "E-mail: a@aco.cn" in team.say("/lead show L1")


def test_export_then_import_into_a_fresh_team_round_trips(team: Chat) -> None:
    seed(team)
    _, path = export_reply(team, "[erin] /report export")
    fresh = Chat(team.engine, team.clock, team="beta")
    for line in ["/team config locale=en", "[carol] /help", "[dan] /help"]:
        fresh.say(line)
    report = import_file(fresh, path)
    assert report[0] == (
        "Columns: Name → name, Company → company, Contact → contact, Phone → phone, "
        "Email → email, Source → source, Tag → tag, Owner → owner, Stage → stage, "
        "Status → status, Estimated value → value, Won amount → won_amount, "
        "Lost reason → lost_reason, Next follow-up → next_followup"
    )
    assert report[-1] == "4 rows: 4 created, 0 merged as duplicates, 0 rejected."
    _, again = export_reply(fresh, "/report export leads")
    first = [row[:15] for row in sheet_rows(path.read_bytes(), "Leads")]
    second = [row[:15] for row in sheet_rows(again.read_bytes(), "Leads")]
    assert second == first  # every fact, owner, stage, outcome and next date came across
    # Importing the same file again finds every lead already there.
    assert import_file(fresh, path)[-1] == "4 rows: 0 created, 4 merged as duplicates, 0 rejected."


def test_files_that_cannot_be_read_say_why(team: Chat, tmp_path: Path) -> None:
    old = tmp_path / "old.xls"
    old.write_bytes(b"\xd0\xcf\x11\xe0")
    with pytest.raises(exchange.ExchangeError, match=r"old.xls: give an .xlsx or .csv file"):
        import_file(team, old)
    nothing = write_xlsx(tmp_path / "numbers.xlsx", [["a", "b"], [1, 2]])
    with pytest.raises(exchange.ExchangeError, match="no header row with a customer name"):
        import_file(team, nothing)
    with pytest.raises(exchange.ExchangeError, match="no member '@zoe'"):
        import_file(team, nothing, owner="@zoe")


# --- the dealbot script --------------------------------------------------------------------------


@pytest.fixture
def cli_db(tmp_path: Path, clock: FixedClock) -> tuple[str, Chat]:
    """A SQLite file with the current schema (stamped, so the script's migration step has nothing to
    do) and the seeded team `acme`."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    engine: Engine = make_engine(url)
    create_schema(engine)
    command.stamp(alembic_config(engine), "head")
    chat = Chat(engine, clock)
    chat.say("/team config locale=en")
    for name in ("bob", "carol", "dan", "erin"):
        chat.say(f"[{name}] /help")
    chat.say("/team role @bob manager")
    chat.say("/team role @erin admin")
    chat.say("/team role @alice rep")
    seed(chat)
    return url, chat


def test_the_dealbot_script_exports_and_imports(cli_db: tuple[str, Chat], tmp_path: Path) -> None:
    url, chat = cli_db
    out = ok(dealbot(tmp_path, "export", "all", "--out", "all.xlsx", "--team", "acme", "--db", url))
    assert out.strip() == "all.xlsx: 4 leads, 1 followups, 1 quotes (xlsx, team acme, en headers)"
    assert load_workbook(tmp_path / "all.xlsx").sheetnames == ["Leads", "Follow-ups", "Quotes"]
    out = ok(
        dealbot(tmp_path, "export", "quotes", "--format", "csv", "--out", "q.csv", "--db", url)
    )
    assert out.strip() == "q.csv: 1 quotes (csv, team acme, en headers)"
    assert (
        (tmp_path / "q.csv")
        .read_bytes()
        .decode("utf-8-sig")
        .splitlines()[1]
        .startswith("Q1,L1,Acme Trading,")
    )

    messy_workbook(tmp_path / "list.xlsx")
    before = chat.snapshot()
    out = ok(
        dealbot(
            tmp_path,
            "import",
            "leads",
            "list.xlsx",
            "--team",
            "acme",
            "--owner",
            "auto",
            "--dry-run",
            "--db",
            url,
        )
    )
    assert out.splitlines() == [
        *MESSY_REPORT,
        "8 rows: 2 created, 2 merged as duplicates, 4 rejected. Dry run: nothing was written.",
    ]
    assert chat.snapshot() == before
    out = ok(
        dealbot(
            tmp_path,
            "import",
            "leads",
            "list.xlsx",
            "--team",
            "acme",
            "--owner",
            "@dan",
            "--db",
            url,
        )
    )
    assert "row 3: created L5 Zeta Corp → dan" in out.splitlines()
    assert out.splitlines()[-1] == "8 rows: 2 created, 2 merged as duplicates, 4 rejected."
    assert "L5 Zeta Corp · Contacted · owner dan" in chat.say("[bob] /lead show L5")


def test_the_dealbot_script_refuses_what_it_cannot_do(
    cli_db: tuple[str, Chat], tmp_path: Path
) -> None:
    url, _ = cli_db
    cases = [
        (
            ["import", "leads", "none.csv", "--team", "acme", "--owner", "auto"],
            "none.csv: no such file",
        ),
        (
            ["import", "leads", "none.csv", "--team", "nope", "--owner", "auto"],
            "no team 'nope'; teams: console:acme",
        ),
        (
            ["import", "quotes", "none.csv", "--team", "acme", "--owner", "auto"],
            "only leads can be imported",
        ),
        (["export", "all", "--format", "csv", "--out", "x.csv"], "a CSV file holds one kind"),
        (["export", "leads", "--format", "pdf", "--out", "x.pdf"], "--format must be xlsx or csv"),
    ]
    for args, message in cases:
        result = dealbot(tmp_path, *args, "--db", url)
        assert result.returncode == 2 and message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "x.csv").exists()


# --- the file on chat platforms ------------------------------------------------------------------


@pytest.fixture
def on_slack(engine: Engine, clock: FixedClock) -> Iterator[SlackHarness]:
    api = FakeSlack()
    harness = SlackHarness(engine, clock, api)
    yield harness
    harness.close()
    api.close()


def test_slack_sends_the_export_to_the_persons_dm_not_the_channel(on_slack: SlackHarness) -> None:
    slack = on_slack
    slack.say("U1", "/lead", "add Acme Trading phone=138-0013-8000")
    answer = slack.say("U1", "/report", "export")
    assert answer["response_type"] == "ephemeral"
    assert "Your export — leads 1, follow-ups 0, quotes 0" in text_of(answer)
    requests = slack.api.wait_for(
        lambda seen: any(r.name == "files.completeUploadExternal" for r in seen)
    )
    assert [arguments(r)["users"] for r in slack.api.calls("conversations.open")] == ["U1"]
    [done] = slack.api.calls("files.completeUploadExternal")
    assert arguments(done)["channel_id"] == "DU1"
    [upload] = [r for r in requests if r.path.startswith("/upload/")]
    assert b"PK\x03\x04" in upload.body  # the workbook itself


class FilesBotApi(FakeBotApi):
    """The fake Bot API, answering sendDocument too."""

    def answer(self, request: Recorded) -> Answer:
        if request.name == "sendDocument":
            self.message_id += 1
            chat = {"id": PEOPLE["alice"]["id"], "type": "private", "first_name": "Alice"}
            document = {"file_id": "D1", "file_unique_id": "U1", "file_name": "export.xlsx"}
            return Answer(
                body={
                    "ok": True,
                    "result": {
                        "message_id": self.message_id,
                        "date": 1,
                        "chat": chat,
                        "document": document,
                    },
                }
            )
        return super().answer(request)


def test_telegram_sends_the_export_to_the_persons_private_chat(
    engine: Engine, clock: FixedClock
) -> None:
    api = FilesBotApi()
    harness = TelegramHarness(engine, clock, api)
    try:
        harness.say("alice", "/lead add Acme Trading")
        assert "Your export — leads 1" in harness.say("alice", "/report export")
        [document] = api.calls("sendDocument")
        assert b'name="chat_id"' in document.body
        assert str(PEOPLE["alice"]["id"]).encode() in document.body
        assert str(GROUP).encode() not in document.body  # not the group: it holds customers
        assert b"PK\x03\x04" in document.body
    finally:
        harness.close()
        api.close()


def test_an_imported_leads_history_names_who_imported_it_never_the_pool(
    chat: Chat, tmp_path: Path
) -> None:
    for line in ["/团队 配置 语言=zh", "[张三] /帮助", "[李四] /帮助"]:
        chat.say(line)
    first = tmp_path / "客户.csv"
    first.write_text("客户名称,电话\n华为技术,13912345678\n", encoding="utf-8")
    import_file(chat, first, owner="@张三")  # who imports: the one owner named
    history = chat.say("/线索 查看 L1 变更记录")
    assert "张三    从 客户.csv 第 2 行导入（负责人 张三）" in history
    assert "公海" not in history

    second = tmp_path / "展会.csv"
    second.write_text(
        "客户名称,电话\n小米科技,13600001234\n字节跳动,13700001234\n", encoding="utf-8"
    )
    import_file(chat, second, owner="pool", by="@李四")
    assert "李四    从 展会.csv 第 2 行导入（负责人 公海）" in chat.say("/线索 查看 L2 变更记录")
    import_file(chat, second, owner="pool")  # merged into L2 and L3: nobody named, nor the pool
    merged = chat.say("/线索 查看 L3 变更记录")
    assert "导入    从 展会.csv 第 3 行导入" not in merged  # the second run merged, adding nothing
    assert "李四    从 展会.csv 第 3 行导入（负责人 公海）" in merged

    third = tmp_path / "名片.csv"
    third.write_text("客户名称,电话\n美团,13500001234\n", encoding="utf-8")
    import_file(chat, third, owner="pool")
    assert "导入    从 名片.csv 第 2 行导入（负责人 公海）" in chat.say("/线索 查看 L4 变更记录")
    with pytest.raises(exchange.ExchangeError, match="团队 acme 里没有成员 @王五"):
        import_file(chat, third, owner="pool", by="@王五")
