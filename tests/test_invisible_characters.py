"""What a name shows is what it holds: direction controls (U+202E and kin), which make
`Acme\u202emoc.live` show as another customer, are refused where people type or import them; and
characters that show nothing (zero-width spaces, the BOM, direction marks) are dropped wherever
they come from — typed, imported, a platform's display name, or already stored and exported.
Joiners that build emoji (👨‍👩‍👧) stay."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlmodel import select

from commands.types import Invocation
from models.db import unit_of_work
from models.tables import FollowUp, Lead, Member
from tests.chat import Chat
from tests.test_exchange import export_reply, import_file

SPOOF = "Acme\u202emoc.live"  # shows as "Acmeevil.com"-style text read backwards


def _lead(chat: Chat, number: int = 1) -> Lead:
    with unit_of_work(chat.engine) as session:
        return session.exec(select(Lead).where(Lead.number == number)).one()


@pytest.mark.parametrize(
    "line",
    [
        f"/lead add {SPOOF} phone=13800138000",
        "/lead add Acme Trading company=Acme\u2067Corp\u2069",
        "/lead add Acme Trading contact=Li\u202dWei",
        "/follow L1 call back \u202etomorrow",
    ],
)
def test_direction_controls_are_refused_in_english_and_nothing_changes(
    team: Chat, line: str
) -> None:
    if line.startswith("/follow"):
        assert team.reply("/lead add Acme Trading").ok
    before = team.snapshot()
    reply = team.reply(line)
    assert not reply.ok
    assert "invisible direction characters" in reply.text
    assert ("U+202E" in reply.text) or ("U+2067" in reply.text) or ("U+202D" in reply.text)
    assert "type it again without them" in reply.text
    assert team.snapshot() == before


def test_direction_controls_are_refused_in_chinese(chat: Chat) -> None:
    assert chat.reply("/帮助").ok
    before = chat.snapshot()
    reply = chat.reply("/线索 新建 华为\u202e技术 电话=13912345678")
    assert not reply.ok
    assert "不可见的方向控制字符（U+202E）" in reply.text
    assert "请去掉这些字符后重新输入" in reply.text
    assert chat.snapshot() == before


def test_zero_width_characters_are_dropped_and_emoji_joiners_kept(team: Chat) -> None:
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # one emoji made of three
    answer = team.say(
        "/lead add \ufeffAc\u200bme Tra\u2060ding company=Acme\u200c Corp "
        f"contact=Li\u200e Wei phone=138\u200b0013\u200b8000 tag={family}"
    )
    assert "L1 Acme Trading" in answer
    lead = _lead(team)
    assert (lead.name, lead.company, lead.contact) == ("Acme Trading", "Acme Corp", "Li Wei")
    assert lead.phone == "13800138000" and lead.tag == family
    # The same name typed with a zero-width space inside is the same customer.
    duplicate = team.say("[carol] /lead add Acme Tra\u200bding company=Acme\u200b Corp")
    assert "Looks like L1 Acme Trading" in duplicate
    assert team.reply("/follow L1 met the family \u200b" + family + " next=tomorrow").ok
    with unit_of_work(team.engine) as session:
        note = session.exec(select(FollowUp.note)).one()
    assert note == "met the family " + family


def test_a_platform_display_name_is_stored_without_them(team: Chat) -> None:
    invocation = Invocation(
        platform="console",
        team_key="acme",
        team_name="acme",
        channel="console",
        user_key="mallory",
        user_name="\u202eb\u200bob",
        text="/help",
        received_at=team.clock.now(),
    )
    assert team.dispatcher.dispatch(invocation).ok
    with unit_of_work(team.engine) as session:
        member = session.exec(select(Member).where(Member.user_key == "mallory")).one()
    assert member.name == "bob"


def test_an_import_refuses_a_spoofed_row_and_cleans_the_rest(team: Chat, tmp_path: Path) -> None:
    path = tmp_path / "crm.csv"
    rows = [
        ["Customer Name", "Company", "Contact", "Mobile"],
        [SPOOF, "", "", ""],
        ["Orion\u200b Ltd", "Orion\ufeff Ltd", "Ms\u200f Vega", "+1 415 555 0100"],
    ]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    path.write_bytes(buffer.getvalue().encode("utf-8-sig"))
    report = import_file(team, path, owner="@carol")
    assert report[1] == (
        "row 2: Acmemoc.live rejected — name holds invisible direction characters (U+202E) that "
        "make it show as something else"
    )
    assert report[2] == "row 3: created L1 Orion Ltd → carol", report
    lead = _lead(team)
    assert (lead.name, lead.company, lead.contact) == ("Orion Ltd", "Orion Ltd", "Ms Vega")


def test_an_export_shows_a_stored_name_as_it_reads(team: Chat) -> None:
    assert team.reply("/lead add Acme Trading contact=Li").ok
    with unit_of_work(team.engine) as session:  # written before the bot refused such names
        session.execute(update(Lead).values(name=SPOOF, contact="L\u200bi"))
    _, path = export_reply(team, "/report export leads csv")
    text = path.read_bytes().decode("utf-8-sig")
    assert "Acmemoc.live" in text and ",Li," in text
    assert "\u202e" not in text and "\u200b" not in text


def test_a_name_stored_before_they_were_refused_is_shown_as_it_reads(team: Chat) -> None:
    assert team.reply("/lead add Acme Trading contact=Li").ok
    with unit_of_work(team.engine) as session:
        session.execute(update(Lead).values(name=SPOOF, contact="L\u200bi"))
    shown = team.say("/lead show L1")
    assert "Acmemoc.live" in shown and "Li" in shown
    assert "\u202e" not in shown and "\u200b" not in shown
