"""The seam between adapters and verbs: `Invocation` in, `Reply` out. No platform knows more."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from models.normalize import visible


class Mention(BaseModel):
    """A person the adapter resolved from the platform's mention syntax: by their platform id, or
    (Telegram `@username`) by the unique handle the platform vouches for."""

    user_key: str = ""
    name: str
    handle: str | None = None


class Invocation(BaseModel):
    platform: Literal["slack", "telegram", "wecom", "feishu", "dingtalk", "console"]
    team_key: str  # "" in a private chat: the user's own team is meant
    team_name: str = ""
    channel: str | None = None
    user_key: str
    user_name: str
    user_handle: str | None = None  # the platform's @username, when it has one
    text: str  # exactly as a command: "/quote approve Q7 fine"; a click arrives as its button's command
    mentions: dict[str, Mention] = Field(default_factory=dict)  # token as typed ("@bob", "<@U1>") → person
    locale: str | None = None  # the platform's hint about the user's language
    timezone: str | None = None  # the platform's hint about the user's timezone (Slack's user tz)
    received_at: datetime
    delivery_id: str | None = None  # the platform's id of this delivery; a retry with the same id runs once
    # A button press, and how its team is known: "bound" (the platform vouches for the team, or the
    # card carried it signed), "unbound" (nothing names the team: a card from before buttons were
    # bound, pressed in a private chat), "forged" (a binding that does not verify). A press runs
    # only for someone already a member of an existing team; it never creates either.
    press: Literal["bound", "unbound", "forged"] | None = None


class Button(BaseModel):
    label: str
    command: str
    style: Literal["default", "primary", "danger"] = "default"
    row: int = 0  # buttons next to each other with the same row share a row where rows exist

    @field_validator("label")
    @classmethod
    def _shown_as_held(cls, label: str) -> str:
        return visible(label)


class Image(BaseModel):
    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    png: bytes
    alt: str
    filename: str = "chart.png"


class Attachment(BaseModel):
    """A file to hand over (an export), sent as a document where the platform allows."""

    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    data: bytes
    filename: str
    mime: str = "application/octet-stream"


class Reply(BaseModel):
    """What a verb answers, in a markup subset every platform renders: **bold**, `code`, newlines."""

    text: str
    fields: list[tuple[str, str]] = Field(default_factory=list)
    table: list[list[str]] = Field(default_factory=list)  # first row is the header
    buttons: list[Button] = Field(default_factory=list)
    image: Image | None = None
    file: Attachment | None = None
    private: bool = False  # show only to the caller where the platform can
    ok: bool = True  # False for errors: adapters may show them privately
    duplicate: bool = False  # a retried delivery already handled: adapters answer nothing
    # The answer settles what a card asked (a decision, a claim): a pressed card shows it in place
    # of its buttons, which nobody should press again.
    settles: bool = False
    # The team the reply or push belongs to (its platform key), set by the dispatcher and the
    # outbox; an adapter whose buttons cannot carry the team by themselves binds them to it.
    team_key: str | None = None

    # No direction control or invisible character reaches a reader, whatever is stored (a name
    # saved before they were refused): what people see is what the text holds.
    @field_validator("text")
    @classmethod
    def _text_as_held(cls, text: str) -> str:
        return visible(text)

    @field_validator("fields")
    @classmethod
    def _fields_as_held(cls, fields: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return [(visible(label), visible(value)) for label, value in fields]

    @field_validator("table")
    @classmethod
    def _table_as_held(cls, table: list[list[str]]) -> list[list[str]]:
        return [[visible(cell) for cell in row] for row in table]

    def button_rows(self) -> list[list[Button]]:
        """The buttons as rows: a new row wherever a button's `row` differs from the one before."""
        rows: list[list[Button]] = []
        for button in self.buttons:
            if rows and rows[-1][-1].row == button.row:
                rows[-1].append(button)
            else:
                rows.append([button])
        return rows
