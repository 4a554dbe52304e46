"""Bad input: the answer says what was wrong and the right form, in the user's language, and nothing
changes. And nothing anyone can type makes `Dispatcher.dispatch` raise or crash."""

from __future__ import annotations

import pytest
from sqlmodel import col, select

from commands.types import Invocation, Reply
from models.db import unit_of_work
from models.tables import CommandLog, Lead
from tests.chat import Chat

LONG = "x" * 5000


@pytest.fixture
def shop(team: Chat) -> Chat:
    """The English team with alice's lead L1 and her quote Q1 waiting for bob."""
    for line in ["/lead add Acme Trading value=120k", "/quote L1 80k"]:
        assert team.reply(line).ok, line
    return team


def refused(chat: Chat, line: str, *expected: str, usage: str | None = "Usage:") -> str:
    before = chat.snapshot()
    reply = chat.reply(line)
    assert reply.ok is False, (line, reply.text)
    for text in expected:
        assert text in reply.text, (line, reply.text)
    if usage:
        assert usage in reply.text, (line, reply.text)
    assert "went wrong" not in reply.text, (line, reply.text)
    assert chat.snapshot() == before, line
    return reply.text


# kind of mistake → [(line, what the answer must say, whether it is a typing mistake that shows the form)]
ENGLISH = {
    "unknown verb": [
        ("/frobnicate", ["I don't know the command “/frobnicate”", "/help", "/lead /follow /quote"], False)],
    "unknown sub-command": [
        ("/lead frobnicate L1", ["I don't know “frobnicate” after /lead.", "/lead add <name>", "/lead won <L>"], True),
        ("/team frobnicate", ["I don't know “frobnicate” after /team.", "/team config"], True)],
    "unknown lead or quote": [
        ("/lead show L999", ["There is no lead L999 in this team."], False),
        ("/follow L999 called", ["There is no lead L999"], False),
        ("[bob] /quote approve Q999", ["There is no quote Q999"], False)],
    "garbage id": [
        ("/lead show Lxyz", ["“Lxyz” is not a lead id. Lead ids look like L12.", "/lead show <L>"], True),
        ("/follow ABC called them", ["“ABC” is not a lead id", "/follow <L> <note>"], True),
        ("/lead won L1x", ["“L1x” is not a lead id"], True),
        ("[bob] /quote approve QQ", ["“QQ” is not a quote id. Quote ids look like Q7."], True)],
    "wrong amount": [
        ("/quote L1 eighty", ["“eighty” is not an amount", "/quote <L> <amount>"], True),
        ("/quote L1 -5", ["“-5” is not an amount"], True),
        ("/quote L1 0", ["“0” is not an amount"], True),
        ("/lead won L1 eighty", ["“eighty” is not an amount", "/lead won <L> [amount]"], True),
        ("/lead add Beta Co value=lots", ["“lots” is not an amount"], True),
        ("[erin] /target @bob eighty", ["“eighty” is not an amount"], True)],
    "wrong percent": [
        ("/quote L1 80k discount=150%", ["“150%” is not a percentage between 0 and 100"], True),
        ("/quote L1 80k discount=lots", ["“lots” is not a percentage"], True)],
    "wrong date or way": [
        ("/follow L1 call back next=someday", ["“someday” is not a date I understand", "next mon"], True),
        ("/follow L1 call back next=2026-13-45", ["“2026-13-45” is not a date"], True),
        ("/follow L1 call back next=2020-01-01", ["is in the past"], False),
        ("/follow L1 call back via=pigeon", ["“pigeon” is not a way of contact", "call, visit"], True)],
    "wrong choice": [
        ("/lead stage L1 nowhere", ["“nowhere” is not a stage of this team", "Contacted"], True),
        ("/lead list everything", ["“everything” is not one of: mine, team"], True),
        ("/lead list page=0", ["“0” is not a page number."], True),
        ("/lead list page=99999999999999999999", ["is not a page number."], True),
        ("/lead add Beta Co force=maybe", ["“maybe” should be yes or no"], True),
        ("/lead add Beta Co phone=call-me", ["“call-me” is not a phone number", "138-0013-8000"], True),
        ("/lead add Beta Co email=nope", ["“nope” is not an e-mail address", "name@example.com"], True),
        ("[erin] /team role @bob boss", ["“boss” is not a role. Roles: rep, manager, admin."], True),
        ("[erin] /target @bob 10k 13", ["“13” is not a month"], True)],
    "too long": [
        ("/follow L1 " + LONG, ["too long (5000 characters; at most 2000)"], True),
        ("/lead add " + LONG, ["too long (5000 characters; at most 200)"], True),
        ("/lead lost L1 " + LONG, ["too long (5000 characters; at most 2000)"], True),
        ("/lead add Beta Co source=" + "s" * 150, ["source is too long (150 characters; at most 100)"], True)],
    "unknown member": [
        ("[bob] /lead assign L1 @ghost", ["I don't know @ghost in this team yet", "message me once"], True),
        ("[bob] /lead assign L1 carol", ["I don't know carol in this team yet"], True),
        ("[bob] /report @ghost", ["I don't know @ghost"], True),
        ("[erin] /team handoff @ghost @bob", ["I don't know @ghost"], True)],
    "unknown option": [
        ("/lead add Beta Co foo=bar", ["I don't know the option “foo=”", "company= contact="], True),
        ("/lead edit L1 colour=red", ["I don't know the option “colour=”"], True)],
    "bad team config": [
        ("[erin] /team config timezone=Mars/Base", ["“Mars/Base” is not a timezone", "Asia/Shanghai"], True),
        ("[erin] /team config locale=fr", ["“fr” is not one of: zh, en, auto"], True),
        ("[erin] /team config digest_time=25:00", ["“25:00” doesn't fit digest_time", "18:00"], True),
        ("[erin] /team config quiet_hours=junk", ["“junk” doesn't fit quiet_hours", "20:00-08:30"], True),
        ("[erin] /team config stages=", ["Missing a stage."], True),
        ("[erin] /team config stages=,,", ["Missing a stage."], True),
        ("[erin] /team config currency=dollars", ["“dollars” doesn't fit currency"], True),
        ("[erin] /team config stale_days=soon", ["“soon” doesn't fit stale_days: a whole number"], True),
        ("[erin] /team config colour=red", ["I don't know the setting “colour”", "timezone, locale"], True)],
}

# Every verb that needs words, typed without them: (line, what is missing)
MISSING = {
    "lead": [("/lead", "Missing what to do."), ("/lead add", "Missing the lead's name."),
             ("/lead show", "Missing a lead id like L12."), ("/lead stage", "Missing a lead id like L12."),
             ("/lead stage L1", "Missing a stage."), ("/lead next", "Missing a lead id"),
             ("[bob] /lead assign", "Missing a lead id"), ("[bob] /lead assign L1", "Missing a person (@name)."),
             ("/lead claim", "Missing a lead id"), ("/lead release", "Missing a lead id"),
             ("/lead won", "Missing a lead id"), ("/lead lost", "Missing a lead id"),
             ("/lead lost L1", "Missing a reason."), ("/lead edit", "Missing a lead id"),
             ("/lead edit L1", "Missing a field to change")],
    "follow and quote": [("/follow", "Missing a lead id"), ("/follow L1", "Missing a note."),
                         ("/quote", "Missing a lead id"), ("/quote L1", "Missing an amount."),
                         ("[bob] /quote approve", "Missing a quote id"), ("[bob] /quote reject", "Missing a quote id"),
                         ("[bob] /quote reject Q1", "Missing a reason.")],
    "team and target": [("[erin] /target @bob", "Missing an amount."),
                        ("[erin] /team role", "Missing a person (@name)."),
                        ("[erin] /team role @bob", "Missing a role."), ("[erin] /team handoff", "Missing a person"),
                        ("[erin] /team handoff @bob", "Missing a person")],
}


@pytest.mark.parametrize("kind", list(ENGLISH))
def test_bad_input_says_what_was_wrong_and_changes_nothing(shop: Chat, kind: str) -> None:
    for line, expected, usage in ENGLISH[kind]:
        refused(shop, line, *expected, usage="Usage:" if usage else None)


@pytest.mark.parametrize("family", list(MISSING))
def test_a_missing_argument_names_it_and_shows_the_form(shop: Chat, family: str) -> None:
    for line, missing in MISSING[family]:
        text = refused(shop, line, missing)
        assert "Example:" in text or "· /lead add" in text, line


# --- the same in Chinese ----------------------------------------------------------------------------

@pytest.fixture
def zh(chat: Chat) -> Chat:
    """A team that never set a language: Chinese commands are answered in Chinese."""
    for line in ["/帮助", "[bob] /帮助", "[carol] /帮助", "/团队 角色 @bob manager", "/线索 新建 华为技术 预计=12万"]:
        assert chat.reply(line).ok, line
    return chat


CHINESE = [
    ("/报价 L1 八十多", ["“八十多”不是有效金额", "/报价 <L> <金额>"], True),
    ("/线索 赢单 L1 -5", ["“-5”不是有效金额"], True),
    ("/跟进 L1 已电话沟通 下次=某天", ["无法识别日期“某天”", "下周一"], True),
    ("/线索 查看 L999", ["本团队没有线索 L999"], False),
    ("/线索 查看 甲乙", ["“甲乙”不是线索编号"], True),
    ("/线索 乱七八糟", ["/线索 没有“乱七八糟”这个操作", "/线索 新建 <名称>"], True),
    ("/乱七八糟", ["不认识的命令“/乱七八糟”", "/帮助"], False),
    ("/线索 新建 测试 颜色=红", ["不认识的参数“颜色=”"], True),
    ("/报价 L1 8万 折扣=150%", ["“150%”不是 0 到 100 之间的百分比"], True),
    ("/跟进 L1", ["缺少跟进内容"], True),
    ("[bob] /线索 分配 L1 @ghost", ["团队里还没有 @ghost"], True),
    ("/团队 配置 时区=Mars/Base", ["“Mars/Base”不是时区", "Asia/Shanghai"], True),
    ("/团队 配置 日报时间=25:00", ["“25:00”不适用于 日报时间"], True),
    ("/团队 配置 免打扰=乱写", ["“乱写”不适用于 免打扰"], True),
    ("[carol] /团队 配置 语言=en", ["只有管理员可以管理团队"], False),
    ("[carol] /线索 分配 L1 @bob", ["只有经理可以分配线索"], False),
    ("[carol] /团队 交接 @bob @carol", ["只有经理可以交接工作"], False),
    ("[carol] /日报 @bob", ["只有经理可以查看他人报表"], False),
    ("[carol] /线索 查看 L1", ["L1 属于 alice，你无权查看"], False),
]


@pytest.mark.parametrize(("line", "expected", "usage"), CHINESE, ids=[c[0] for c in CHINESE])
def test_chinese_commands_are_answered_in_chinese(zh: Chat, line: str, expected: list[str], usage: bool) -> None:
    text = refused(zh, line, *expected, usage="用法：" if usage else None)
    assert "Usage" not in text and "role." not in text and "Only" not in text


# --- odd input that may legitimately succeed: stored and shown exactly as typed ------------------------

@pytest.mark.parametrize("name", ["🚀🚀🚀", "'; DROP TABLE lead; --", "Robert'); DELETE FROM member;--",
                                  '"unterminated', "<b>bold</b> & {name} %s"])
def test_odd_lead_names_are_stored_literally(shop: Chat, name: str) -> None:
    added = shop.say(f"/lead add {name}")
    assert f"L2 {name} — yours" in added
    assert shop.say("/lead show L2").startswith(f"L2 {name} · Lead")
    assert f"L2 {name}" in shop.say("/lead list")
    assert shop.counts()["lead"] == 2 and shop.counts()["member"] == 5


def test_emoji_notes_and_fields_are_kept_intact(shop: Chat) -> None:
    assert "follow-up logged" in shop.say("/follow L1 👍🎉 next=tomorrow")
    assert "updated" in shop.say("/lead edit L1 contact=😀 tag=🔥")
    shown = shop.say("/lead show L1")
    assert "alice: 👍🎉\n" in shown and "Contact: 😀" in shown and "Tag: 🔥" in shown


def test_a_fullwidth_command_is_understood(shop: Chat) -> None:
    assert "L2 测试 — yours" in shop.say("／线索　新建　测试")  # the team speaks English (locale=en)
    assert shop.say("/lead show L2").startswith("L2 测试 · Lead")


# --- nothing raises out of the dispatcher -------------------------------------------------------------

WEIRD = [
    "", " ", "  \t  ", "/", "//", "/ /", "@", "@@@", "=", "/=", "\u200f", "\u202e/lead list",
    "/lead add \u200fمرحبا\u200e",
    "\x00", "/lead add a\x00b", "/lead show L1\x00", "/follow L1 \x00\x01\x7f", "x" * 10_000, "/lead add " + "y" * 7000,
    "/follow L1 " + "z" * 5990, '/lead add "unterminated', "/lead add 'single", "/lead add “curly", '/lead add ""',
    "/lead@OtherBot add x", "/lead@ list", "／线索　新建　测试", "/线索 新建 测试 电话＝１３８００１３８０００", "/quote L1 ８０ｋ",
    "/quote L1 1e9999", "/quote L1 99999999999999999999", "/quote L1 NaN", "/quote L1 80k discount=nan%",
    "/follow L1 hi next=+99999d", "/follow L1 hi next=9999-12-31", "/lead show L99999999999", "/lead show L0",
    "/lead show #1", "/lead list ²", "/lead stage L1 ²", "/lead list page=²", "/lead list stage=",
    "/target 2026-99", "/report week week month", "/help lead extra words", "/help /nonsense", "/team config =",
    "/team config stale_days.=3", "/team config stale_days=²", "/team config timezone=../../etc/passwd",
    "/quote approve Q0", "🙂", "/🙂", "/LEAD LIST", "\n/lead list\n", "/lead\nadd\nmultiline",
    "/lead lost L1 {reason} {0} %s", "/lead add a=b=c", "/lead edit L1 value=", "[alice] [bob] /help",
]


@pytest.mark.parametrize("text", WEIRD, ids=[repr(w[:24]) for w in WEIRD])
def test_dispatch_always_answers(chat: Chat, text: str) -> None:
    chat.say("/lead add Acme Trading")
    invocation = Invocation(platform="console", team_key="acme", team_name="acme", user_key="alice",
                            user_name="alice", text=text, received_at=chat.clock.now())
    reply = chat.dispatcher.dispatch(invocation)
    assert isinstance(reply, Reply) and reply.text.strip()
    assert "went wrong" not in reply.text and "出错" not in reply.text, reply.text
    assert "L1 Acme Trading" in chat.say("/lead show L1")  # and the team still works


def test_every_line_typed_is_in_the_command_log_with_what_became_of_it(team: Chat) -> None:
    """A command that ran is logged with its work; one that failed is rolled back and still logged."""
    lines = {
        "/lead add Acme Trading": "ok",
        "/lead add ACME trading": "refused",  # the duplicate warning
        "/quote L1 eighty": "error",
        "/lead show L99": "error",
        "/fly me to the moon": "error",
    }
    for line in lines:
        team.reply(line)
    with unit_of_work(team.engine) as session:
        logged = session.exec(
            select(CommandLog.text, CommandLog.outcome).where(CommandLog.user_key == "alice")
            .order_by(col(CommandLog.id))).all()
        leads = session.exec(select(Lead.name)).all()
    assert [tuple(row) for row in logged][-len(lines):] == list(lines.items())
    assert leads == ["Acme Trading"]
