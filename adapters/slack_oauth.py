"""Slack workspaces installed through OAuth v2, with slack-bolt's own flow: `GET /slack/install`
sends the browser to Slack's consent page with a state (kept in the database, so any web replica
takes it back, and only once), Slack sends it back to `/slack/oauth_redirect` with a code, bolt
exchanges the code (`oauth.v2.access`) and hands the installation to the store here, which keeps it
sealed in dealbot's database. Every request from a workspace is then authorized with that
workspace's token; `app_uninstalled` and `tokens_revoked` remove it."""

from __future__ import annotations

import asyncio
import html
import logging
from datetime import timedelta
from typing import Any

from slack_bolt.authorization.async_authorize import AsyncInstallationStoreAuthorize
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_sdk.errors import SlackTokenRotationError
from slack_sdk.oauth import RedirectUriPageRenderer
from slack_sdk.oauth.installation_store import Bot, Installation
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore
from slack_sdk.oauth.token_rotation.async_rotator import AsyncTokenRotator
from slack_sdk.web.async_client import AsyncWebClient

from adapters.base import AuthBroken
from models.installations import Installations

log = logging.getLogger("dealbot.slack")

PLATFORM = "slack"
STATE_LIFETIME = timedelta(minutes=10)  # from /slack/install to Slack's redirect back
ROTATE_BEFORE = 120  # minutes: a rotating token is renewed this long before it expires


def _team_key(enterprise_id: str | None, team_id: str | None, org_wide: bool | None) -> str:
    """The row an installation lives in: its workspace, or its organisation when it was installed
    org-wide (Slack then names no workspace). Workspace ids are unique across organisations."""
    key = enterprise_id if org_wide or not team_id else team_id
    return key or ""


class DatabaseInstallationStore(AsyncInstallationStore):
    """bolt's installation store, in dealbot's database, sealed. One installation per workspace:
    dealbot asks for bot scopes only, so the latest install is the one that counts."""

    def __init__(self, installations: Installations) -> None:
        self.installations = installations

    @property
    def logger(self) -> logging.Logger:
        return log

    async def async_save(self, installation: Installation) -> None:
        data = installation.to_dict_for_copying()
        # Numbers, not the datetimes to_dict gives: an Installation is made again from them.
        data.update(
            installed_at=installation.installed_at,
            bot_token_expires_at=installation.bot_token_expires_at,
            user_token_expires_at=installation.user_token_expires_at,
        )
        key = _team_key(
            installation.enterprise_id, installation.team_id, installation.is_enterprise_install
        )
        await asyncio.to_thread(
            self.installations.save,
            platform=PLATFORM,
            team_key=key,
            credentials=data,
            enterprise_key=installation.enterprise_id,
            installer_key=installation.user_id,
        )

    async def async_save_bot(self, bot: Bot) -> None:
        found = await self.async_find_installation(
            enterprise_id=bot.enterprise_id,
            team_id=bot.team_id,
            is_enterprise_install=bot.is_enterprise_install,
        )
        if found is None:
            return
        found.bot_token, found.bot_refresh_token = bot.bot_token, bot.bot_refresh_token
        found.bot_token_expires_at = bot.bot_token_expires_at
        await self.async_save(found)

    async def async_find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        key = _team_key(enterprise_id, team_id, is_enterprise_install)
        if not key:
            return None
        data = await asyncio.to_thread(self.installations.find, platform=PLATFORM, team_key=key)
        if data is None:
            return None
        installation = Installation(**data)
        if user_id is not None and installation.user_id != user_id:
            return None  # no installation of that person's own (dealbot asks for no user token)
        return installation

    async def async_find_bot(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        is_enterprise_install: bool | None = False,
    ) -> Bot | None:
        found = await self.async_find_installation(
            enterprise_id=enterprise_id,
            team_id=team_id,
            is_enterprise_install=is_enterprise_install,
        )
        return found.to_bot() if found is not None and found.bot_token else None

    async def _remove(self, enterprise_id: str | None, team_id: str | None) -> None:
        # The workspace the event names; the organisation when it names none (org-wide).
        key = _team_key(enterprise_id, team_id, False)
        if key and await asyncio.to_thread(
            self.installations.remove, platform=PLATFORM, team_key=key
        ):
            log.info("slack installation removed: %s", key)

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await self._remove(enterprise_id, team_id)

    async def async_delete_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None
    ) -> None:
        if user_id is None:
            await self._remove(enterprise_id, team_id)
            return
        # One person's token revoked: only the installer's user token goes, the bot's stays.
        found = await self.async_find_installation(
            enterprise_id=enterprise_id, team_id=team_id, user_id=user_id
        )
        if found is not None and found.user_token is not None:
            found.user_token = found.user_refresh_token = found.user_token_expires_at = None
            await self.async_save(found)

    async def async_delete_all(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await self._remove(enterprise_id, team_id)


class DatabaseStateStore(AsyncOAuthStateStore):
    """bolt's OAuth state store in dealbot's database: issued by one web replica, taken back by any,
    once. A state that was never issued (its signature does not hold) is refused before any look
    into the database."""

    def __init__(self, installations: Installations, lifetime: timedelta = STATE_LIFETIME) -> None:
        self.installations = installations
        self.lifetime = lifetime

    @property
    def logger(self) -> logging.Logger:
        return log

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        return await asyncio.to_thread(self.installations.issue_state, self.lifetime)

    async def async_consume(self, state: str) -> bool:
        if not isinstance(state, str):
            return False
        return await asyncio.to_thread(self.installations.take_state, state)


class WorkspaceTokens:
    """The bot token of each installed workspace, for what dealbot sends without a request from
    it (pushes, late answers); renewed first when the app rotates its tokens (AuthBroken when Slack
    refuses to)."""

    def __init__(self, store: DatabaseInstallationStore, rotator: AsyncTokenRotator) -> None:
        self.store = store
        self.rotator = rotator

    async def __call__(self, team_key: str | None) -> str | None:
        if not team_key:
            return None
        installation = await self.store.async_find_installation(
            enterprise_id=None, team_id=team_key
        )
        if installation is None or not installation.bot_token:
            return None
        if installation.bot_refresh_token is not None:
            try:
                renewed = await self.rotator.perform_token_rotation(
                    installation=installation, minutes_before_expiration=ROTATE_BEFORE
                )
            except SlackTokenRotationError as error:
                # Slack refused to renew it: only installing again mends that.
                raise AuthBroken(f"slack refused to renew the token of {team_key}") from error
            if renewed is not None:
                await self.store.async_save(renewed)
                return renewed.bot_token
        return installation.bot_token


# Why an install did not complete, by bolt's reason code: what the person installing can do.
WHY = {
    "access_denied": ("The install was cancelled on Slack.", "已在 Slack 上取消安装。"),
    "invalid_browser": (
        "This page does not belong to an install started in this browser (another browser, or "
        "cookies blocked).",
        "此页面不属于在本浏览器中开始的安装（换了浏览器，或禁用了 Cookie）。",
    ),
    "invalid_state": (
        "This install link has expired (after 10 minutes) or was used already.",
        "此安装链接已过期（10 分钟）或已被使用。",
    ),
    "missing_code": ("Slack sent no install code.", "Slack 未发送安装授权码。"),
    "invalid_code": ("Slack did not accept the install code.", "Slack 未接受安装授权码。"),
    "storage_error": (
        "dealbot could not keep the workspace's token: its logs say why.",
        "dealbot 未能保存该工作区的令牌，原因见其日志。",
    ),
}
_PAGE = """<!doctype html>
<html><head><meta charset="utf-8">{refresh}<title>dealbot</title>
<style>body {{ font-family: sans-serif; max-width: 36em; margin: 3em auto; }}</style>
</head><body>{body}</body></html>
"""


class InstallPages(RedirectUriPageRenderer):
    """What the browser shows at the end of an install, in English and Chinese."""

    def render_success_page(
        self,
        app_id: str,
        team_id: str | None,
        is_enterprise_install: bool | None = None,
        enterprise_url: str | None = None,
    ) -> str:
        # Slack's desktop app opens on the workspace, as bolt's own page does.
        app = f"slack://app?team={team_id}&id={app_id}" if team_id and app_id else "slack://open"
        web = f"https://app.slack.com/client/{team_id}" if team_id else "https://app.slack.com/"
        body = (
            "<h2>✅ dealbot is installed in your workspace</h2>"
            "<p>Type <code>/help</code> in any channel. "
            f'<a href="{html.escape(app)}">Open Slack</a> · '
            f'<a href="{html.escape(web)}">Slack in the browser</a></p>'
            "<h2>✅ dealbot 已安装到你的工作区</h2>"
            "<p>在任意频道输入 <code>/help</code>（或 <code>/dealbot 帮助</code>）。</p>"
        )
        refresh = f'<meta http-equiv="refresh" content="0; URL={html.escape(app)}">'
        return _PAGE.format(refresh=refresh, body=body)

    def render_failure_page(self, reason: str) -> str:
        code = reason.partition(":")[0].strip()
        english, chinese = WHY.get(
            code,
            ("Slack and dealbot could not finish the install.", "Slack 与 dealbot 未能完成安装。"),
        )
        again = html.escape(self.install_path)
        body = (
            f"<h2>The install did not complete</h2><p>{html.escape(english)} "
            f'<a href="{again}">Start again</a>. ({html.escape(code)})</p>'
            f"<h2>安装未完成</h2><p>{html.escape(chinese)}"
            f'<a href="{again}">重新开始</a>。</p>'
        )
        return _PAGE.format(refresh="", body=body)


class SlackOAuth:
    """Everything the Slack adapter needs to serve many workspaces, from dealbot's settings."""

    def __init__(
        self,
        installations: Installations,
        *,
        client_id: str,
        client_secret: str,
        scopes: str,
        redirect_uri: str | None,
        api_url: str,
    ) -> None:
        self.store = DatabaseInstallationStore(installations)
        self.state_store = DatabaseStateStore(installations)
        self.client_id = client_id
        self.client_secret = client_secret
        self.scopes = [scope.strip() for scope in scopes.split(",") if scope.strip()]
        self.redirect_uri = redirect_uri or None
        self.api_url = api_url
        # Renewals go where every other call goes (SLACK_API_URL), not to slack.com regardless.
        self.tokens = WorkspaceTokens(
            self.store,
            AsyncTokenRotator(
                client_id=client_id,
                client_secret=client_secret,
                client=AsyncWebClient(base_url=api_url),
            ),
        )

    @property
    def authorization_url(self) -> str:
        """Slack's consent page, beside its Web API: `https://slack.com/oauth/v2/authorize`."""
        base = self.api_url.rstrip("/")
        base = base.removesuffix("/api")
        return f"{base}/oauth/v2/authorize"

    def settings(self, client: AsyncWebClient) -> AsyncOAuthSettings:
        """bolt's OAuth settings: everything passed here, nothing read from the environment.
        `/slack/install` sends the browser straight to Slack (no page of ours in between)."""
        settings = AsyncOAuthSettings(
            client_id=self.client_id,
            client_secret=self.client_secret,
            scopes=self.scopes,
            user_scopes=[],
            redirect_uri=self.redirect_uri,
            install_path="/slack/install",
            redirect_uri_path="/slack/oauth_redirect",
            install_page_rendering_enabled=False,
            authorization_url=self.authorization_url,
            installation_store=self.store,
            state_store=self.state_store,
            state_expiration_seconds=int(STATE_LIFETIME.total_seconds()),
            logger=log,
        )
        settings.redirect_uri_page_renderer = InstallPages(
            install_path=settings.install_path, redirect_uri_path=settings.redirect_uri_path
        )
        settings.authorize = AsyncInstallationStoreAuthorize(
            logger=log,
            installation_store=self.store,
            client_id=self.client_id,
            client_secret=self.client_secret,
            client=client,
            token_rotation_expiration_minutes=ROTATE_BEFORE,
            # Each token's auth.test once, not on every request: a removed installation is
            # not found before the cache is consulted, so it never authorizes from the cache.
            cache_enabled=True,
        )
        return settings
