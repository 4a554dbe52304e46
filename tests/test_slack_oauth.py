"""Many Slack workspaces from one deployment: Slack's OAuth v2 install flow through the real web app
(`GET /slack/install` → Slack's consent page → `/slack/oauth_redirect`), served by uvicorn from
the real wiring (`build`), against a local server standing in for Slack: its consent page,
`oauth.v2.access` and a Web API that knows which workspace each token belongs to."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest
from sqlalchemy import event, select, text
from sqlalchemy.engine import Engine

from bot.app import Bot, build
from bot.settings import Settings, SettingsError
from bot.web import create_app
from models.clock import FixedClock
from models.db import unit_of_work
from models.installations import Installations
from models.sealed import Seal
from models.tables import Installation, Lead, Outbox, SQLModel, Team
from tests.fakes.asgi import LiveServer
from tests.fakes.http import Answer, FakeServer, Recorded

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
CLIENT_ID = "1111.2222"
CLIENT_SECRET = "client-secret-of-the-app"
SECRET_KEY = "k" * 12 + secrets.token_urlsafe(32)
PAYLOADS = Path(__file__).parent / "payloads" / "slack"
COOKIE = "slack-app-oauth-state"
WORKSPACES = {"TACME": "Acme Sales", "TBETA": "Beta Trading"}
NAMES = {"U1": "alice", "U2": "bob", "U3": "carol", "U4": "dan"}


def arguments(request: Recorded) -> dict[str, Any]:
    return {**request.query, **request.form, **(request.json or {})}


class FakeSlackWorkspaces(FakeServer):
    """Slack for several workspaces: the consent page sends the browser back with a one-time code
    for the workspace the person picked; `oauth.v2.access` trades the code (with the app's
    credentials) for that workspace's own bot token; the Web API answers each token as its
    workspace's bot and refuses any other."""

    def __init__(self) -> None:
        self.redirect_uri = ""  # the app's Redirect URL, as configured at api.slack.com
        self.picked = "TACME"  # the workspace the person installing picks on the consent page
        self.codes: dict[str, str] = {}
        self.tokens: dict[str, str] = {}  # bot token → its workspace
        self.ts = 0
        super().__init__(self.answer)

    def token_of(self, team: str) -> str:
        return next(token for token, owner in self.tokens.items() if owner == team)

    def answer(self, request: Recorded) -> Answer:
        if request.path == "/oauth/v2/authorize":
            code = f"code-{secrets.token_hex(6)}"
            self.codes[code] = self.picked
            back = (
                f"{self.redirect_uri}?{urlencode({'code': code, 'state': request.query['state']})}"
            )
            return Answer(status=302, body=b"", headers={"Location": back})
        if request.path.startswith("/response/expired"):
            return Answer(status=404, body=b"expired_url")
        if request.path.startswith("/response/"):
            return Answer(body={"ok": True})
        args = arguments(request)
        if request.name == "oauth.v2.access":
            basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
            if request.headers.get("authorization") != f"Basic {basic}":
                return Answer(body={"ok": False, "error": "invalid_client_id"})
            team = self.codes.pop(args.get("code", ""), None)
            if team is None:
                return Answer(body={"ok": False, "error": "invalid_code"})
            token = f"xoxb-{team}-{secrets.token_hex(12)}"
            self.tokens[token] = team
            return Answer(
                body={
                    "ok": True,
                    "app_id": "A0DEALBOT",
                    "access_token": token,
                    "token_type": "bot",
                    "scope": "commands,chat:write,users:read,im:write",
                    "bot_user_id": f"UB{team}",
                    "team": {"id": team, "name": WORKSPACES[team]},
                    "enterprise": None,
                    "authed_user": {"id": "U1"},
                    "is_enterprise_install": False,
                }
            )
        token = request.headers.get("authorization", "").removeprefix("Bearer ") or args.get(
            "token", ""
        )
        team = self.tokens.get(token)
        if team is None:
            return Answer(body={"ok": False, "error": "invalid_auth"})
        if request.name == "auth.test":
            return Answer(
                body={
                    "ok": True,
                    "team_id": team,
                    "team": WORKSPACES[team],
                    "user_id": f"UB{team}",
                    "bot_id": f"B{team}",
                    "user": "dealbot",
                }
            )
        if request.name == "users.info":
            user = args.get("user", "")
            return Answer(
                body={
                    "ok": True,
                    "user": {
                        "id": user,
                        "name": user.lower(),
                        "tz": "Asia/Tokyo",
                        "profile": {"display_name": NAMES.get(user, user)},
                    },
                }
            )
        if request.name == "conversations.open":
            return Answer(body={"ok": True, "channel": {"id": f"D{args.get('users', '')}"}})
        if request.name == "chat.postMessage":
            self.ts += 1
            return Answer(
                body={"ok": True, "channel": args.get("channel"), "ts": f"1700000000.{self.ts:06d}"}
            )
        return Answer(body={"ok": True})

    def sent_by(self, team: str, name: str) -> list[Recorded]:
        """The calls of API method `name` made with that workspace's token."""
        return [
            request
            for request in self.calls(name)
            if self.tokens.get(request.headers.get("authorization", "").removeprefix("Bearer "))
            == team
        ]


def settings(api_url: str, **values: str) -> Settings:
    given = {
        "SLACK_CLIENT_ID": CLIENT_ID,
        "SLACK_CLIENT_SECRET": CLIENT_SECRET,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": f"{api_url}/api/",
        "DEALBOT_SECRET_KEY": SECRET_KEY,
        **values,
    }
    return Settings(_env_file=None, **given)  # type: ignore[call-arg]


class Deployment:
    """One dealbot serving Slack through OAuth, built from its settings as `dealbot serve` builds
    it, on the test's database; and a browser that installs it."""

    def __init__(self, engine: Engine, clock: FixedClock, api: FakeSlackWorkspaces) -> None:
        self.api = api
        self.bot: Bot = build(
            settings(api.url),
            clock=clock,
            migrate=False,
            database_url=engine.url.render_as_string(hide_password=False),
        )
        self.server = LiveServer(create_app(self.bot))
        api.redirect_uri = f"{self.server.url}/slack/oauth_redirect"
        self.http = httpx.Client(base_url=self.server.url, timeout=10)
        self.answers = 0

    def close(self) -> None:
        self.http.close()
        self.server.close()
        self.bot.engine.dispose()

    # --- the browser --------------------------------------------------------------------------
    def start(self) -> tuple[str, str]:
        """`GET /slack/install`: where it sends the browser, and the state cookie it sets."""
        answer = self.http.get("/slack/install")
        assert answer.status_code == 302, answer.text
        cookie = SimpleCookie(answer.headers["set-cookie"])
        return answer.headers["location"], cookie[COOKIE].value

    def consent(self, authorize_url: str, team: str) -> str:
        """The person picks `team` on Slack's consent page and allows: Slack's redirect back."""
        self.api.picked = team
        answer = httpx.get(authorize_url)
        assert answer.status_code == 302
        return answer.headers["location"]

    def back(self, redirect: str, state_cookie: str | None) -> httpx.Response:
        parts = urlsplit(redirect)
        headers = {"Cookie": f"{COOKIE}={state_cookie}"} if state_cookie is not None else {}
        return self.http.get(f"{parts.path}?{parts.query}", headers=headers)

    def install(self, team: str) -> httpx.Response:
        url, state = self.start()
        return self.back(self.consent(url, team), state)

    # --- Slack -------------------------------------------------------------------------------
    def post(self, body: bytes, content_type: str) -> httpx.Response:
        stamp = str(int(time.time()))
        signature = (
            "v0="
            + hmac.new(
                SIGNING_SECRET.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256
            ).hexdigest()
        )
        return self.http.post(
            "/slack/events",
            content=body,
            headers={
                "Content-Type": content_type,
                "X-Slack-Request-Timestamp": stamp,
                "X-Slack-Signature": signature,
            },
        )

    def command(
        self, team: str, user: str, command: str, text: str, *, answer_at: str = ""
    ) -> None:
        """A slash command typed by `user` in workspace `team`, acknowledged."""
        form = dict(parse_qsl((PAYLOADS / "slash_command.form").read_text().strip()))
        form.update(
            team_id=team,
            user_id=user,
            user_name=NAMES[user],
            command=command,
            text=text,
            response_url=f"{self.api.url}/response/{answer_at}{secrets.token_hex(6)}",
        )
        answer = self.post(urlencode(form).encode(), "application/x-www-form-urlencoded")
        assert answer.status_code == 200

    def say(self, team: str, user: str, command: str, text: str) -> dict[str, Any]:
        """A slash command typed by `user` in workspace `team`, and what it answered."""
        self.command(team, user, command, text)
        self.answers += 1
        wanted = self.answers
        self.api.wait_for(
            lambda requests: len([r for r in requests if r.path.startswith("/response/")]) >= wanted
        )
        return [r.json for r in self.api.requests if r.path.startswith("/response/")][wanted - 1]

    def event(self, payload: str, team: str) -> httpx.Response:
        body = json.loads((PAYLOADS / payload).read_text())
        body["team_id"] = team
        return self.post(json.dumps(body).encode(), "application/json")

    def deliver(self) -> None:
        asyncio.run(self.bot.delivery().run_once())


@pytest.fixture
def slack(engine: Engine, clock: FixedClock) -> Iterator[Deployment]:
    api = FakeSlackWorkspaces()
    deployment = Deployment(engine, clock, api)
    yield deployment
    deployment.close()
    api.close()


def lead_names_by_workspace(engine: Engine) -> dict[str, list[str]]:
    with unit_of_work(engine) as session:
        rows = session.execute(
            select(Team.key, Lead.name)
            .join(Lead, Lead.team_id == Team.id)
            .where(Team.platform == "slack")
            .order_by(Lead.id)
        ).all()
    found: dict[str, list[str]] = {}
    for key, name in rows:
        found.setdefault(key, []).append(name)
    return found


def assign_a_lead(slack: Deployment, team: str, admin: str, rep: str, lead: str) -> None:
    """The admin adds a lead and gives it to the rep: the rep is told in a push (the outbox)."""
    assert "L1" in slack.say(team, admin, "/lead", f"add {lead}")["text"]
    slack.say(team, rep, "/help", "")
    assert (
        slack.say(team, admin, "/lead", f"assign L1 <@{rep}|{NAMES[rep]}>")["response_type"]
        == "in_channel"
    )


def test_two_workspaces_install_and_each_is_served_with_its_own_token(slack: Deployment) -> None:
    url, _ = slack.start()
    assert url.startswith(f"{slack.api.url}/oauth/v2/authorize?")
    asked = dict(parse_qsl(urlsplit(url).query))
    assert asked["client_id"] == CLIENT_ID and "commands" in asked["scope"].split(",")

    for team in WORKSPACES:
        done = slack.install(team)
        assert done.status_code == 200, done.text
        assert "dealbot is installed" in done.text and "dealbot 已安装" in done.text
    assert len(slack.api.calls("oauth.v2.access")) == 2

    assert "Acme" in slack.say("TACME", "U1", "/lead", "add Acme Robotics")["text"]
    assert "Beta" in slack.say("TBETA", "U3", "/lead", "add Beta Mills")["text"]
    # Each workspace is its own team, asked about its people with its own token.
    assert lead_names_by_workspace(slack.bot.engine) == {
        "TACME": ["Acme Robotics"],
        "TBETA": ["Beta Mills"],
    }
    assert [arguments(r)["user"] for r in slack.api.sent_by("TACME", "users.info")] == ["U1"]
    assert [arguments(r)["user"] for r in slack.api.sent_by("TBETA", "users.info")] == ["U3"]

    # Pushes go to each workspace with that workspace's token.
    slack.say("TACME", "U2", "/help", "")
    assert "bob" in slack.say("TACME", "U1", "/lead", "assign L1 <@U2|bob>")["text"]
    slack.say("TBETA", "U4", "/help", "")
    assert "dan" in slack.say("TBETA", "U3", "/lead", "assign L1 <@U4|dan>")["text"]
    slack.deliver()
    assert [arguments(r)["channel"] for r in slack.api.sent_by("TACME", "chat.postMessage")] == [
        "DU2"
    ]
    assert [arguments(r)["channel"] for r in slack.api.sent_by("TBETA", "chat.postMessage")] == [
        "DU4"
    ]
    assert "Acme Robotics" in arguments(slack.api.sent_by("TACME", "chat.postMessage")[0])["text"]
    assert "Beta Mills" in arguments(slack.api.sent_by("TBETA", "chat.postMessage")[0])["text"]


def test_installing_again_replaces_the_workspace_token(slack: Deployment) -> None:
    slack.install("TACME")
    slack.install("TACME")
    newest = list(slack.api.tokens)[-1]
    slack.say("TACME", "U1", "/help", "")
    assert slack.api.calls("users.info")[-1].headers["authorization"] == f"Bearer {newest}"
    with unit_of_work(slack.bot.engine) as session:
        assert session.execute(select(Installation.team_key)).scalars().all() == ["TACME"]


def _installations(engine: Engine) -> int:
    with unit_of_work(engine) as session:
        return len(session.execute(select(Installation.id)).all())


def test_a_missing_forged_foreign_or_replayed_state_installs_nothing(slack: Deployment) -> None:
    url, state = slack.start()
    redirect = slack.consent(url, "TACME")
    code = dict(parse_qsl(urlsplit(redirect).query))["code"]

    # No state at all, or a state this browser was never given (a link someone else sent).
    missing = slack.back(f"/slack/oauth_redirect?code={code}", None)
    assert missing.status_code == 400
    assert "another browser" in missing.text and "换了浏览器" in missing.text
    assert slack.back(redirect, None).status_code == 400
    assert slack.back(redirect, "another-browsers-state").status_code == 400

    # A state made up by whoever sends the browser here, with a cookie to match: refused
    # before any look into the database.
    statements: list[str] = []
    event.listen(
        slack.bot.engine,
        "before_cursor_execute",
        lambda _conn, _cursor, statement, *_: statements.append(statement),
    )
    for forged in (
        "made-up",
        f"{state.partition('.')[0]}.{'A' * 43}",
        f"x.{state.partition('.')[2]}",
    ):
        refused = slack.back(f"/slack/oauth_redirect?code={code}&state={forged}", forged)
        assert refused.status_code == 401
        assert "expired" in refused.text and "已过期" in refused.text
        assert 'href="/slack/install"' in refused.text  # what to do: start again
    assert statements == []
    assert not slack.api.calls("oauth.v2.access") and _installations(slack.bot.engine) == 0

    # Someone who says no on Slack's page is told the install was cancelled.
    cancelled = slack.back(f"/slack/oauth_redirect?error=access_denied&state={state}", state)
    assert "cancelled" in cancelled.text and "取消" in cancelled.text

    # The real state works once; the same redirect again is refused.
    assert slack.back(redirect, state).status_code == 200
    assert slack.back(redirect, state).status_code == 401
    assert len(slack.api.calls("oauth.v2.access")) == 1 and _installations(slack.bot.engine) == 1


def test_no_token_is_readable_in_the_database(slack: Deployment) -> None:
    for team in WORKSPACES:
        slack.install(team)
    tokens = list(slack.api.tokens)
    assert len(tokens) == 2
    with slack.bot.engine.connect() as connection:
        stored = [
            str(row)
            for table in SQLModel.metadata.sorted_tables
            for row in connection.execute(text(f'SELECT * FROM "{table.name}"')).all()
        ]
    assert any("TACME" in row for row in stored)
    assert not [row for row in stored if any(token in row for token in tokens)]
    assert not [row for row in stored if CLIENT_SECRET in row or "xoxb-" in row]
    # Another deployment's key opens nothing; this one's opens each workspace's own token.
    clock = slack.bot.clock
    elsewhere = Installations(slack.bot.engine, Seal("another-" + SECRET_KEY), clock)
    assert elsewhere.find(platform="slack", team_key="TACME") is None
    here = Installations(slack.bot.engine, Seal(SECRET_KEY), clock)
    assert (here.find(platform="slack", team_key="TBETA") or {})["bot_token"] == slack.api.token_of(
        "TBETA"
    )


@pytest.mark.parametrize("payload", ["app_uninstalled.json", "tokens_revoked.json"])
def test_uninstalling_stops_pushes_to_that_workspace_only(slack: Deployment, payload: str) -> None:
    for team in WORKSPACES:
        slack.install(team)
    assign_a_lead(slack, "TACME", "U1", "U2", "Acme Robotics")
    assign_a_lead(slack, "TBETA", "U3", "U4", "Beta Mills")

    assert slack.event(payload, "TACME").status_code == 200
    with unit_of_work(slack.bot.engine) as session:
        assert session.execute(select(Installation.team_key)).scalars().all() == ["TBETA"]
    slack.deliver()
    slack.deliver()  # nothing is left to try again
    assert not slack.api.sent_by("TACME", "chat.postMessage")
    assert not slack.api.sent_by("TACME", "conversations.open")
    assert len(slack.api.sent_by("TBETA", "chat.postMessage")) == 1
    with unit_of_work(slack.bot.engine) as session:
        rows = session.execute(
            select(Team.key, Outbox.status, Outbox.last_error).join(Team, Team.id == Outbox.team_id)
        ).all()
    assert {(key, status) for key, status, _ in rows} == {("TACME", "dead"), ("TBETA", "sent")}
    assert any("not installed" in (error or "") for key, _, error in rows if key == "TACME")

    # Someone in the uninstalled workspace is told so, in both languages, and nothing runs.
    refused = slack.say("TACME", "U1", "/lead", "add Gamma")
    assert "not installed" in refused["text"] and "未安装" in refused["text"]
    assert lead_names_by_workspace(slack.bot.engine)["TACME"] == ["Acme Robotics"]


def test_oauth_without_a_secret_key_refuses_to_start_and_says_why(tmp_path: Path) -> None:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("SLACK_", "DEALBOT_", "TELEGRAM_", "WECOM_"))
    }
    env.update(
        SLACK_CLIENT_ID=CLIENT_ID,
        SLACK_CLIENT_SECRET=CLIENT_SECRET,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        DEALBOT_DATABASE_URL=f"sqlite:///{tmp_path / 'dealbot.db'}",
        PYTHONPATH=str(Path(__file__).parent.parent),
    )
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "worker", "--once"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "DEALBOT_SECRET_KEY is not set" in done.stderr and "secrets.token_urlsafe" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "dealbot.db").exists(), "refused before the database was touched"


@pytest.mark.parametrize(
    ("values", "said"),
    [
        ({"DEALBOT_SECRET_KEY": "short"}, "fewer than 32"),
        ({"SLACK_BOT_TOKEN": "xoxb-one-workspace"}, "choose one"),
        ({"SLACK_CLIENT_SECRET": ""}, "both SLACK_CLIENT_ID and SLACK_CLIENT_SECRET"),
        ({"SLACK_SIGNING_SECRET": ""}, "needs SLACK_SIGNING_SECRET"),
    ],
)
def test_oauth_settings_that_cannot_work_together_are_refused(
    tmp_path: Path, values: dict[str, str], said: str
) -> None:
    database = tmp_path / "dealbot.db"
    with pytest.raises(SettingsError, match=said):
        build(
            settings("http://127.0.0.1:9", DEALBOT_DATABASE_URL=f"sqlite:///{database}", **values)
        )
    assert not database.exists()


def test_a_command_answered_late_by_a_worker_goes_out_with_its_workspace_token(
    slack: Deployment, engine: Engine, clock: FixedClock
) -> None:
    """A command acknowledged but not answered (Slack refused its response_url, which then
    expired): a worker built from the same settings answers it in the person's DM, with the token
    of the workspace the command came from."""
    for team in WORKSPACES:
        slack.install(team)
    slack.command("TBETA", "U3", "/lead", "add Initech", answer_at="expired")
    slack.api.wait_for(lambda requests: any("/response/expired" in r.path for r in requests))
    clock.advance(minutes=45)
    worker = build(
        settings(slack.api.url),
        clock=clock,
        migrate=False,
        database_url=engine.url.render_as_string(hide_password=False),
    )
    try:
        asyncio.run(worker.worker().run_once())
    finally:
        worker.engine.dispose()
    (dm,) = slack.api.calls("chat.postMessage")
    assert dm in slack.api.sent_by("TBETA", "chat.postMessage")
    assert arguments(dm)["channel"] == "DU3" and "L1 Initech" in arguments(dm)["text"]
    assert lead_names_by_workspace(engine) == {"TBETA": ["Initech"]}
