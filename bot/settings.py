"""Deployment settings, from the environment or a `.env` file."""

from __future__ import annotations

from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# What dealbot's bot user does in a workspace (README: Run on Slack, the manifest's scopes).
SLACK_SCOPES = "commands,chat:write,chat:write.public,im:write,users:read,files:write"


class SettingsError(Exception):
    """Settings that cannot work together; the message says what to set."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    database_url: str = Field("sqlite:///dealbot.db", validation_alias="DEALBOT_DATABASE_URL")
    # Comma-separated `platform:user` entries (`slack:U123`, `telegram:12345`, `wecom:zhangsan`,
    # `console:boss`); an entry without a platform names nobody (see commands.dispatch).
    admins: str = Field("", validation_alias="DEALBOT_ADMINS")
    log_level: str = Field("INFO", validation_alias="DEALBOT_LOG_LEVEL")
    # Log to this file instead of stderr (without it, the console shows only warnings and errors).
    log_file: str | None = Field(None, validation_alias="DEALBOT_LOG_FILE")
    # A new team's timezone (an IANA name); unset: Asia/Shanghai for a Chinese team, else UTC.
    timezone: str = Field("", validation_alias="DEALBOT_TIMEZONE")
    # Seals the credentials kept in the database (the tokens of Slack workspaces installed through
    # OAuth): see models.sealed. Needed when SLACK_CLIENT_ID is set.
    secret_key: str | None = Field(None, validation_alias="DEALBOT_SECRET_KEY")

    slack_bot_token: str | None = Field(None, validation_alias="SLACK_BOT_TOKEN")
    slack_signing_secret: str | None = Field(None, validation_alias="SLACK_SIGNING_SECRET")
    slack_app_token: str | None = Field(None, validation_alias="SLACK_APP_TOKEN")
    slack_api_url: str = Field("https://slack.com/api/", validation_alias="SLACK_API_URL")
    # Any number of workspaces, each installed at /slack/install (OAuth v2) instead of one
    # SLACK_BOT_TOKEN: bolt's conventional names.
    slack_client_id: str | None = Field(None, validation_alias="SLACK_CLIENT_ID")
    slack_client_secret: str | None = Field(None, validation_alias="SLACK_CLIENT_SECRET")
    slack_scopes: str = Field(SLACK_SCOPES, validation_alias="SLACK_SCOPES")
    slack_redirect_uri: str | None = Field(None, validation_alias="SLACK_REDIRECT_URI")

    telegram_bot_token: str | None = Field(None, validation_alias="TELEGRAM_BOT_TOKEN")
    telegram_webhook_secret: str | None = Field(None, validation_alias="TELEGRAM_WEBHOOK_SECRET")
    telegram_webhook_url: str | None = Field(None, validation_alias="TELEGRAM_WEBHOOK_URL")
    telegram_api_url: str = Field("https://api.telegram.org", validation_alias="TELEGRAM_API_URL")

    wecom_corp_id: str | None = Field(None, validation_alias="WECOM_CORP_ID")
    wecom_agent_id: str | None = Field(None, validation_alias="WECOM_AGENT_ID")
    wecom_secret: str | None = Field(None, validation_alias="WECOM_SECRET")
    wecom_token: str | None = Field(None, validation_alias="WECOM_TOKEN")
    wecom_encoding_aes_key: str | None = Field(None, validation_alias="WECOM_ENCODING_AES_KEY")
    wecom_webhook_key: str | None = Field(None, validation_alias="WECOM_WEBHOOK_KEY")
    wecom_api_url: str = Field("https://qyapi.weixin.qq.com", validation_alias="WECOM_API_URL")

    feishu_app_id: str | None = Field(None, validation_alias="FEISHU_APP_ID")
    feishu_app_secret: str | None = Field(None, validation_alias="FEISHU_APP_SECRET")
    feishu_verification_token: str | None = Field(None,
                                                  validation_alias="FEISHU_VERIFICATION_TOKEN")
    feishu_encrypt_key: str | None = Field(None, validation_alias="FEISHU_ENCRYPT_KEY")
    feishu_domain: Literal["feishu", "lark"] = Field("feishu", validation_alias="FEISHU_DOMAIN")
    feishu_api_url: str = Field("", validation_alias="FEISHU_API_URL")
    dingtalk_client_id: str | None = Field(None, validation_alias="DINGTALK_CLIENT_ID")
    dingtalk_client_secret: str | None = Field(None, validation_alias="DINGTALK_CLIENT_SECRET")
    dingtalk_robot_code: str | None = Field(None, validation_alias="DINGTALK_ROBOT_CODE")
    dingtalk_webhook_token: str | None = Field(None, validation_alias="DINGTALK_WEBHOOK_TOKEN")
    dingtalk_webhook_secret: str | None = Field(None, validation_alias="DINGTALK_WEBHOOK_SECRET")
    dingtalk_api_url: str = Field("https://api.dingtalk.com", validation_alias="DINGTALK_API_URL")
    dingtalk_stream: bool = Field(False, validation_alias="DINGTALK_STREAM")

    # Pacing below each platform's limits ("count/seconds"); see ../shared/platforms.md.
    slack_channel_rate: str = Field("1/1s", validation_alias="DEALBOT_SLACK_CHANNEL_RATE")
    slack_bot_rate: str = Field("50/60s", validation_alias="DEALBOT_SLACK_BOT_RATE")
    telegram_chat_rate: str = Field("1/1s", validation_alias="DEALBOT_TELEGRAM_CHAT_RATE")
    telegram_group_rate: str = Field("20/60s", validation_alias="DEALBOT_TELEGRAM_GROUP_RATE")
    telegram_bot_rate: str = Field("30/1s", validation_alias="DEALBOT_TELEGRAM_BOT_RATE")
    wecom_robot_rate: str = Field("20/60s", validation_alias="DEALBOT_WECOM_ROBOT_RATE")
    wecom_app_rate: str = Field("30/1s", validation_alias="DEALBOT_WECOM_APP_RATE")
    feishu_chat_rate: str = Field("5/1s", validation_alias="DEALBOT_FEISHU_CHAT_RATE")
    feishu_app_rate: str = Field("16/1s", validation_alias="DEALBOT_FEISHU_APP_RATE")
    dingtalk_robot_rate: str = Field("20/60s", validation_alias="DEALBOT_DINGTALK_ROBOT_RATE")
    dingtalk_app_rate: str = Field("20/1s", validation_alias="DEALBOT_DINGTALK_APP_RATE")
    outbox_max_attempts: int = Field(6, validation_alias="DEALBOT_OUTBOX_MAX_ATTEMPTS")
    # How long a claimed outbox row is the claimer's before another worker may
    # take it over; command rate limits per member and per team ("count/seconds", or "off"); the
    # largest request body any endpoint reads.
    outbox_lease_seconds: float = Field(120.0, gt=0,
                                        validation_alias="DEALBOT_OUTBOX_LEASE_SECONDS")
    # `dealbot serve` delivers the pushes its own commands queue as each command commits (claimed
    # through the outbox lease, paced through the database with the workers); off: the workers' poll
    # delivers everything, as a deployment whose web processes must not call platforms would want.
    serve_delivers: bool = Field(True, validation_alias="DEALBOT_SERVE_DELIVERS")
    # How long a received command stays its receiver's before any server or worker runs and
    # answers it (the receiver died, or could not answer).
    inbox_lease_seconds: float = Field(30.0, gt=0, validation_alias="DEALBOT_INBOX_LEASE_SECONDS")
    # On SIGTERM, how long a server may take to run and answer the commands it acknowledged, and a
    # worker to finish the push in hand; what is left then is given back for another process to
    # take at once. Below the 10 s Docker waits before it kills (Kubernetes and Heroku wait 30 s).
    shutdown_grace_seconds: float = Field(8.0, ge=0,
                                          validation_alias="DEALBOT_SHUTDOWN_GRACE_SECONDS")
    member_rate: str = Field("60/60s", validation_alias="DEALBOT_MEMBER_RATE")
    team_rate: str = Field("600/60s", validation_alias="DEALBOT_TEAM_RATE")
    # Commands run at once in one process; 0: one on SQLite (it takes one writer at a time, and more
    # threads would only sleep in its lock) and 4 on Postgres.
    command_threads: int = Field(0, ge=0, validation_alias="DEALBOT_COMMAND_THREADS")
    max_body_bytes: int = Field(1 << 20, gt=0, validation_alias="DEALBOT_MAX_BODY_BYTES")
    body_timeout_seconds: float = Field(15.0, gt=0, validation_alias="DEALBOT_BODY_TIMEOUT_SECONDS")
    # Tests only: read "now" from this file (see bot.app.FileClock) instead of the system clock.
    clock_file: str | None = Field(None, validation_alias="DEALBOT_CLOCK_FILE")

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str | None) -> str:
        if not value:
            return ""
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"DEALBOT_TIMEZONE={value!r} is not a timezone like Europe/Berlin") from exc
        return value

    @property
    def rates(self) -> dict[str, str]:
        return {"slack_channel": self.slack_channel_rate, "slack_bot": self.slack_bot_rate,
                "telegram_chat": self.telegram_chat_rate, "telegram_group": self.telegram_group_rate,
                "telegram_bot": self.telegram_bot_rate, "wecom_robot": self.wecom_robot_rate,
                "wecom_app": self.wecom_app_rate, "feishu_chat": self.feishu_chat_rate,
                "feishu_app": self.feishu_app_rate, "dingtalk_robot": self.dingtalk_robot_rate,
                "dingtalk_app": self.dingtalk_app_rate}

    @property
    def admin_keys(self) -> list[str]:
        return [key.strip() for key in self.admins.split(",") if key.strip()]

    @property
    def slack_oauth(self) -> bool:
        """Whether Slack workspaces install the app through OAuth (any number of them)."""
        return bool(self.slack_client_id or self.slack_client_secret)

    @property
    def platforms(self) -> list[str]:
        """The chat platforms whose credentials are set."""
        found = []
        if (self.slack_bot_token or self.slack_oauth) and (
            self.slack_signing_secret or self.slack_app_token
        ):
            found.append("slack")
        if self.telegram_bot_token:
            found.append("telegram")
        if self.wecom_corp_id and self.wecom_secret:
            found.append("wecom")
        if self.feishu_app_id and self.feishu_app_secret:
            found.append("feishu")
        if (self.dingtalk_client_id and self.dingtalk_client_secret) or self.dingtalk_webhook_token:
            found.append("dingtalk")
        return found

    @property
    def feishu_base_url(self) -> str:
        """FEISHU_API_URL when set, else the open platform of FEISHU_DOMAIN."""
        if self.feishu_api_url:
            return self.feishu_api_url
        lark = self.feishu_domain == "lark"
        return "https://open.larksuite.com" if lark else "https://open.feishu.cn"
