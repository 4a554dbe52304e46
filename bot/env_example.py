"""`.env.example`: every setting of `bot.settings.Settings` with its default, as
`dealbot config example` prints it. The file in the repository is this module's output; a test
keeps the two equal, so a new setting reaches the example by re-running the command."""

from __future__ import annotations

import textwrap

from bot.settings import Settings

HEADER = """\
# dealbot settings: copy to .env, then uncomment and fill what you use (each shows its default).
# Generated from bot/settings.py by `dealbot config example > .env.example`; do not edit by hand.
# compose.yaml reads .env; deploy/kubernetes/ takes the same names (its Secret and ConfigMap).
"""

# A heading before the first setting of each group; a new setting joins the group above it.
SECTIONS = {
    "DEALBOT_DATABASE_URL": "Database, admins, logs, the secret key",
    "SLACK_BOT_TOKEN": "Slack (README: Run on Slack)",
    "TELEGRAM_BOT_TOKEN": "Telegram (README: Run on Telegram)",
    "WECOM_CORP_ID": "WeCom 企业微信 (README: Run on WeCom)",
    "FEISHU_APP_ID": "Feishu / Lark 飞书 (README: Run on Feishu / Lark)",
    "DINGTALK_CLIENT_ID": "DingTalk 钉钉 (README: Run on DingTalk)",
    "DEALBOT_SLACK_CHANNEL_RATE": "Pacing below each platform's published limits (count/seconds)",
    "DEALBOT_OUTBOX_MAX_ATTEMPTS": "Delivery, command limits, requests",
}

NOTES = {
    "DEALBOT_DATABASE_URL": "SQLite file, or postgresql+psycopg://user:password@host:5432/dealbot. "
    "compose.yaml points it at its own Postgres.",
    "DEALBOT_ADMINS": "Comma-separated admins, each as <platform>:<id> (slack:U123, "
    "telegram:12345, wecom:zhangsan, console:boss); an id without its platform names nobody. "
    "Unset: a new team's first member.",
    "DEALBOT_LOG_LEVEL": "DEBUG, INFO, WARNING or ERROR.",
    "DEALBOT_LOG_FILE": "Write the log (JSON lines) to this file instead of stderr; unset, "
    "`dealbot console` shows only warnings and errors, between its replies.",
    "DEALBOT_TIMEZONE": "A new team's timezone (IANA name, e.g. Europe/Berlin); unset: "
    "Asia/Shanghai for a Chinese team, else UTC.",
    "DEALBOT_SECRET_KEY": "Seals the credentials kept in the database (the tokens of Slack "
    "workspaces installed through OAuth); 32 characters or more: python -c 'import secrets; "
    "print(secrets.token_urlsafe(32))'. Keep it: without it, every workspace installs again.",
    "SLACK_BOT_TOKEN": "xoxb-… of the installed app: one workspace. For many, leave it unset "
    "and set SLACK_CLIENT_ID and SLACK_CLIENT_SECRET instead (README: Deploy).",
    "SLACK_SIGNING_SECRET": "Basic Information → Signing Secret (HTTP events).",
    "SLACK_APP_TOKEN": "xapp-… for Socket Mode instead of a public URL.",
    "SLACK_API_URL": "Slack's Web API (its OAuth consent page is beside it); tests point it at "
    "a fake.",
    "SLACK_CLIENT_ID": "Basic Information → App Credentials: with SLACK_CLIENT_SECRET, any number "
    "of workspaces install the app at https://YOUR.HOST/slack/install (needs DEALBOT_SECRET_KEY).",
    "SLACK_CLIENT_SECRET": "Basic Information → App Credentials → Client Secret.",
    "SLACK_SCOPES": "The bot scopes a workspace grants on installing (comma-separated).",
    "SLACK_REDIRECT_URI": "https://YOUR.HOST/slack/oauth_redirect when the app lists several "
    "Redirect URLs; unset: the one the app lists.",
    "TELEGRAM_BOT_TOKEN": "From @BotFather.",
    "TELEGRAM_WEBHOOK_SECRET": "Telegram sends it with every webhook call; dealbot checks it.",
    "TELEGRAM_WEBHOOK_URL": "https://YOUR.HOST/telegram/webhook, registered by "
    "`dealbot telegram set-webhook`; unset: long polling, no public URL needed.",
    "TELEGRAM_API_URL": "The Bot API; tests point it at a fake.",
    "WECOM_CORP_ID": "企业ID.",
    "WECOM_AGENT_ID": "The self-built app's AgentId.",
    "WECOM_SECRET": "The app's Secret.",
    "WECOM_TOKEN": "Receive-message API: Token.",
    "WECOM_ENCODING_AES_KEY": "Receive-message API: EncodingAESKey.",
    "WECOM_WEBHOOK_KEY": "A group robot's key: team pushes go to its group.",
    "WECOM_API_URL": "The WeCom API; tests point it at a fake.",
    "FEISHU_APP_ID": "The self-built app's App ID (cli_…), 凭证与基础信息.",
    "FEISHU_APP_SECRET": "The app's App Secret.",
    "FEISHU_VERIFICATION_TOKEN": "事件与回调 → 加密策略: Verification Token.",
    "FEISHU_ENCRYPT_KEY": "事件与回调 → 加密策略: Encrypt Key. With the token: events at "
    "/feishu/events; without both: over the long connection (no public URL).",
    "FEISHU_DOMAIN": "feishu (open.feishu.cn, China) or lark (open.larksuite.com, international).",
    "FEISHU_API_URL": "The open API's base URL; unset: from FEISHU_DOMAIN. Tests point it at a fake.",
    "DEALBOT_FEISHU_CHAT_RATE": "Feishu: 5 messages a second to one person or group.",
    "DEALBOT_FEISHU_APP_RATE": "Feishu: 50 a second and 1000 a minute per app; 16/1s keeps "
    "under both.",
    "DINGTALK_CLIENT_ID": "The app's Client ID (AppKey).",
    "DINGTALK_CLIENT_SECRET": "The app's Client Secret (AppSecret): signs the robot's callbacks.",
    "DINGTALK_ROBOT_CODE": "The robot's RobotCode; unset: the Client ID.",
    "DINGTALK_WEBHOOK_TOKEN": "A custom robot's access_token (or its whole webhook URL): digests "
    "of a team that talks to the bot only one-to-one go to its group.",
    "DINGTALK_WEBHOOK_SECRET": "That custom robot's 加签 secret (SEC…).",
    "DINGTALK_API_URL": "The DingTalk API; tests point it at a fake.",
    "DINGTALK_STREAM": "true: receive over Stream mode (the robot's 消息接收模式 Stream), no public "
    "URL needed.",
    "DEALBOT_OUTBOX_MAX_ATTEMPTS": "Deliveries tried before a push is marked dead.",
    "DEALBOT_OUTBOX_LEASE_SECONDS": "How long a worker holds the pushes it claimed.",
    "DEALBOT_SERVE_DELIVERS": "dealbot serve sends the pushes its commands queue at once; "
    "false: only workers deliver (every 5 s).",
    "DEALBOT_INBOX_LEASE_SECONDS": "How long a received command stays its receiver's before "
    "any server or worker runs and answers it.",
    "DEALBOT_SHUTDOWN_GRACE_SECONDS": "On SIGTERM: how long serve may take to run and answer "
    "the commands it acknowledged, and a worker to finish the push in hand; the rest is given "
    "back for another process to take at once. Keep it below the platform's stop timeout "
    "(Docker: 10 s).",
    "DEALBOT_MEMBER_RATE": "Commands one member may run (count/seconds, or off).",
    "DEALBOT_TEAM_RATE": "Commands one team may run (count/seconds, or off).",
    "DEALBOT_COMMAND_THREADS": "Commands one serve process runs at once; "
    "0: 1 on SQLite, 4 on Postgres.",
    "DEALBOT_MAX_BODY_BYTES": "The largest request body read (413 above).",
    "DEALBOT_BODY_TIMEOUT_SECONDS": "How long a request body may take to arrive (408 after).",
    "DEALBOT_CLOCK_FILE": "Tests only: read the time from this file.",
}


def setting_names() -> list[str]:
    """The environment name of every setting, in the class's order."""
    return [_env_name(name) for name in Settings.model_fields]


def _env_name(name: str) -> str:
    return str(Settings.model_fields[name].validation_alias or name.upper())


def render() -> str:
    lines = [HEADER.rstrip("\n")]
    for name, field in Settings.model_fields.items():
        env = _env_name(name)
        if env in SECTIONS:
            lines += ["", f"## {SECTIONS[env]}"]
        note = NOTES.get(env) or field.description
        if note:
            lines += textwrap.wrap(note, width=98, initial_indent="# ", subsequent_indent="#   ")
        default = "" if field.default is None else str(field.default)
        lines.append(f"# {env}={default}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
