"""Every sentence the bot says, in English and Chinese, and the locale-aware formatting of values."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date
from babel.numbers import format_compact_currency, format_currency

LOCALES = ("en", "zh")
_BABEL = {"en": "en_US", "zh": "zh_CN"}

MESSAGES: dict[str, dict[str, str]] = {
    # --- errors of the command line itself ---------------------------------------------------
    "usage.unknown_verb": {
        "en": "I don't know the command “{word}”. Type /help to see what I can do.",
        "zh": "不认识的命令“{word}”。发送 /帮助 查看可用命令。",
    },
    "usage.missing": {"en": "Missing {what}.", "zh": "缺少{what}。"},
    "usage.unknown_sub": {
        "en": "I don't know “{word}” after /{family}.",
        "zh": "/{family} 没有“{word}”这个操作。",
    },
    "usage.bad_amount": {
        "en": "“{text}” is not an amount. Amounts look like 80000, 80k, 8万, ¥80,000.",
        "zh": "“{text}”不是有效金额。金额示例：80000、80k、8万、¥80,000。",
    },
    "usage.bad_percent": {
        "en": "“{text}” is not a percentage between 0 and 100, like 5%.",
        "zh": "“{text}”不是 0 到 100 之间的百分比，例如 5%。",
    },
    "usage.bad_date": {
        "en": "“{text}” is not a date I understand. Try tomorrow, fri, next mon, +3d, 12/1 or 2026-12-01.",
        "zh": "无法识别日期“{text}”。可以写：明天、后天、周五、下周一、3天后、12/1、2026-12-01。",
    },
    "usage.bad_lead_ref": {
        "en": "“{text}” is not a lead id. Lead ids look like L12.",
        "zh": "“{text}”不是线索编号。线索编号形如 L12。",
    },
    "usage.bad_quote_ref": {
        "en": "“{text}” is not a quote id. Quote ids look like Q7.",
        "zh": "“{text}”不是报价编号。报价编号形如 Q7。",
    },
    "usage.unknown_option": {
        "en": "I don't know the option “{key}=”. Options here: {known}.",
        "zh": "不认识的参数“{key}=”。可用参数：{known}。",
    },
    "usage.too_long": {
        "en": "The {what} is too long ({length} characters; at most {limit}).",
        "zh": "{what}太长（{length} 个字符，最多 {limit} 个）。",
    },
    "usage.unknown_member": {
        "en": "I don't know {name} in this team yet. They can message me once, or an admin adds them: /team role {name} rep",
        "zh": "团队里还没有 {name}。请对方先给我发一条消息，或由管理员添加：/团队 角色 {name} rep",
    },
    "usage.bad_stage": {
        "en": "“{text}” is not a stage of this team. Stages: {stages}.",
        "zh": "“{text}”不是本团队的阶段。阶段有：{stages}。",
    },
    "usage.bad_via": {
        "en": "“{text}” is not a way of contact. Use one of: call, visit, wechat, email, meeting.",
        "zh": "“{text}”不是跟进方式。可选：电话、拜访、微信、邮件、会议。",
    },
    "usage.bad_month": {
        "en": "“{text}” is not a month. Write it as 2026-12 or 12.",
        "zh": "“{text}”不是月份。请写成 2026-12 或 12月。",
    },
    "usage.bad_role": {
        "en": "“{text}” is not a role. Roles: rep, manager, admin.",
        "zh": "“{text}”不是角色。角色有：rep（销售）、manager（经理）、admin（管理员）。",
    },
    "usage.bad_choice": {
        "en": "“{text}” is not one of: {choices}.",
        "zh": "“{text}”不是可选值之一：{choices}。",
    },
    "usage.unknown_config": {
        "en": "I don't know the setting “{key}”. Settings: {known}.",
        "zh": "不认识的设置项“{key}”。可用设置：{known}。",
    },
    "usage.bad_config_value": {
        "en": "“{value}” doesn't fit {key}: {detail}",
        "zh": "“{value}”不适用于 {key}：{detail}",
    },
    "usage.bad_page": {"en": "“{text}” is not a page number.", "zh": "“{text}”不是页码。"},
    "usage.yes_no": {"en": "“{text}” should be yes or no.", "zh": "“{text}”应为 yes 或 no（是/否）。"},
    "usage.form": {"en": "Usage: {usage}", "zh": "用法：{usage}"},
    "usage.example": {"en": "Example: {example}", "zh": "示例：{example}"},
    "error.no_team": {
        "en": "I don't know your team yet. Add me to your team's group and send a command there first.",
        "zh": "还不知道你属于哪个团队。请先把我拉进团队群，并在群里发一条命令。",
    },
    "error.internal": {
        "en": "Sorry, something went wrong on my side and nothing was changed. Please try again (ref {ref}).",
        "zh": "抱歉，系统出错了，没有做任何修改。请稍后重试（编号 {ref}）。",
    },
    # --- rules of the domain ---------------------------------------------------------------------
    "lead.duplicate": {
        "en": "⚠️ Looks like {lead} (owner: {owner}, stage {stage}). Not added.",
        "zh": "⚠️ 疑似撞单：{lead}（负责人 {owner}，阶段 {stage}），未添加。",
    },
    "lead.not_found": {
        "en": "There is no lead L{lead} in this team. See /lead list.",
        "zh": "本团队没有线索 L{lead}。发送 /线索 列表 查看。",
    },
    "lead.not_visible": {
        "en": "L{lead} belongs to {owner}; you can't see it.",
        "zh": "L{lead} 属于 {owner}，你无权查看。",
    },
    "lead.not_yours": {
        "en": "L{lead} belongs to {owner}; only they or their manager can change it.",
        "zh": "L{lead} 属于 {owner}，只有负责人或其经理可以修改。",
    },
    "lead.in_pool": {
        "en": "L{lead} is in the pool. Claim it first: /lead claim L{lead}",
        "zh": "L{lead} 在公海中，请先领取：/线索 领取 L{lead}",
    },
    "lead.closed": {"en": "L{lead} is already closed ({status}).", "zh": "L{lead} 已结束（{status}）。"},
    "lead.same_stage": {"en": "L{lead} is already in {stage}.", "zh": "L{lead} 已经在“{stage}”阶段。"},
    "lead.no_skip": {
        "en": "This team doesn't skip stages: L{lead} goes to {next} next. Use /lead next L{lead}",
        "zh": "本团队不允许跳过阶段：L{lead} 下一阶段是“{next}”。发送 /线索 推进 L{lead}",
    },
    "lead.requirements": {
        "en": "L{lead} can't enter {stage} yet. Missing: {missing}.",
        "zh": "L{lead} 还不能进入“{stage}”。缺少：{missing}。",
    },
    "lead.last_stage": {
        "en": "L{lead} is in the last stage. Close it with /lead won L{lead}",
        "zh": "L{lead} 已在最后阶段。赢单请发送 /线索 赢单 L{lead}",
    },
    "lead.already_owner": {"en": "{owner} already owns L{lead}.", "zh": "L{lead} 的负责人已经是 {owner}。"},
    "lead.not_in_pool": {
        "en": "L{lead} is not in the pool: {owner} has it.",
        "zh": "L{lead} 不在公海中，已由 {owner} 负责。",
    },
    "lead.already_in_pool": {"en": "L{lead} is already in the pool.", "zh": "L{lead} 已在公海中。"},
    "lead.won_needs_amount": {
        "en": "How much was won? /lead won L{lead} <amount>",
        "zh": "赢单金额是多少？/线索 赢单 L{lead} <金额>",
    },
    "lead.not_editable": {"en": "“{field}” can't be edited.", "zh": "“{field}”不能修改。"},
    "lead.changed": {
        "en": "L{lead} was changed by someone else a moment ago; nothing was done. Look again: /lead show L{lead}",
        "zh": "L{lead} 刚被他人修改，本次操作未执行。请重新查看：/线索 查看 L{lead}",
    },
    "lead.snooze_past": {
        "en": "Snooze until a day after today ({date} is not).",
        "zh": "暂缓日期需要晚于今天（{date} 不行）。",
    },
    "followup.bad_via": {"en": "“{via}” is not a way of contact.", "zh": "“{via}”不是跟进方式。"},
    "followup.next_in_past": {
        "en": "The next follow-up ({date}) is in the past. Pick today or later.",
        "zh": "下次跟进日期（{date}）已经过去，请选择今天或以后。",
    },
    "quote.amount_positive": {"en": "A quote needs an amount above zero.", "zh": "报价金额必须大于零。"},
    "quote.bad_discount": {"en": "A discount is between 0% and 100%.", "zh": "折扣应在 0% 到 100% 之间。"},
    "quote.not_found": {
        "en": "There is no quote Q{quote} in this team. See /quote list.",
        "zh": "本团队没有报价 Q{quote}。发送 /报价 列表 查看。",
    },
    "quote.already_decided": {
        "en": "Q{quote} was already {status} by {by} at {at}.",
        "zh": "Q{quote} 已于 {at} 被 {by}{status}。",
    },
    "quote.auto_approved": {
        "en": "Q{quote} was approved automatically (below the approval limit).",
        "zh": "Q{quote} 低于审批额度，已自动通过。",
    },
    "quote.own": {"en": "You can't decide your own quote.", "zh": "不能审批自己提交的报价。"},
    "quote.reps_cannot_decide": {
        "en": "Only managers and admins decide quotes.",
        "zh": "只有经理和管理员可以审批报价。",
    },
    "quote.level_too_low": {
        "en": "Q{quote} needs an approval at {role} level; yours doesn't reach it.",
        "zh": "Q{quote} 需要{role}级别审批，你的权限不够。",
    },
    "quote.not_your_approval": {
        "en": "Q{quote} is waiting for {approvers}, not for you.",
        "zh": "Q{quote} 等待 {approvers} 审批，不是你。",
    },
    "quote.changed": {
        "en": "Q{quote} changed a moment ago; nothing was done. Look again: /quote list",
        "zh": "Q{quote} 刚刚有变化，本次操作未执行。请重新查看：/报价 列表",
    },
    "target.not_your_report": {
        "en": "{member} doesn't report to you, so you can't set their target.",
        "zh": "{member} 不是你的下属，不能设置其目标。",
    },
    "target.amount_positive": {"en": "A target needs an amount above zero.", "zh": "目标金额必须大于零。"},
    "team.unknown_role": {"en": "“{role}” is not a role.", "zh": "“{role}”不是角色。"},
    "team.last_admin": {
        "en": "You are the team's only admin; make someone else admin first.",
        "zh": "你是团队唯一的管理员，请先任命另一位管理员。",
    },
    "team.own_manager": {"en": "Nobody can be their own manager.", "zh": "不能设置自己为自己的经理。"},
    "team.bad_config": {"en": "That setting was not saved: {detail}", "zh": "设置未保存：{detail}"},
    "team.handoff_same": {"en": "Hand over to someone else.", "zh": "不能交接给同一个人。"},
    "team.handoff_not_yours": {
        "en": "{member} doesn't report to you, so you can't hand their work over.",
        "zh": "{member} 不是你的下属，不能交接其工作。",
    },
    "forbidden.role": {"en": "Only {a} {role} can {action}.", "zh": "只有{role}可以{action}。"},
    # --- words ---------------------------------------------------------------------------------
    "role.rep": {"en": "rep", "zh": "销售"},
    "role.manager": {"en": "manager", "zh": "经理"},
    "role.admin": {"en": "admin", "zh": "管理员"},
    "action.assign": {"en": "assign leads", "zh": "分配线索"},
    "action.target": {"en": "set targets", "zh": "设置目标"},
    "action.team": {"en": "change the team", "zh": "管理团队"},
    "action.handoff": {"en": "hand work over", "zh": "交接工作"},
    "action.report_other": {"en": "see someone else's report", "zh": "查看他人报表"},
    "status.open": {"en": "open", "zh": "进行中"},
    "status.won": {"en": "won", "zh": "赢单"},
    "status.lost": {"en": "lost", "zh": "输单"},
    "status.pending": {"en": "waiting", "zh": "待审批"},
    "status.approved": {"en": "approved", "zh": "同意"},
    "status.rejected": {"en": "rejected", "zh": "驳回"},
    "need.contact": {"en": "a contact person (/lead edit L{lead} contact=…)", "zh": "联系人（/线索 编辑 L{lead} 联系人=…）"},
    "need.phone_or_email": {"en": "a phone or e-mail (/lead edit L{lead} phone=…)", "zh": "电话或邮箱（/线索 编辑 L{lead} 电话=…）"},
    "need.value": {"en": "an estimated value (/lead edit L{lead} value=…)", "zh": "预计金额（/线索 编辑 L{lead} 预计=…）"},
    "need.followup": {"en": "a follow-up (/follow L{lead} …)", "zh": "一条跟进记录（/跟进 L{lead} …）"},
    "need.approved_quote": {"en": "an approved quote (/quote L{lead} …)", "zh": "已审批的报价（/报价 L{lead} …）"},
    "via.call": {"en": "call", "zh": "电话"},
    "via.visit": {"en": "visit", "zh": "拜访"},
    "via.wechat": {"en": "WeChat", "zh": "微信"},
    "via.email": {"en": "e-mail", "zh": "邮件"},
    "via.meeting": {"en": "meeting", "zh": "会议"},
    "word.pool": {"en": "pool", "zh": "公海"},
    "word.none": {"en": "none", "zh": "无"},
    "word.yours": {"en": "yours", "zh": "你"},
    "what.name": {"en": "the lead's name", "zh": "线索名称"},
    "what.lead": {"en": "a lead id like L12", "zh": "线索编号（如 L12）"},
    "what.quote": {"en": "a quote id like Q7", "zh": "报价编号（如 Q7）"},
    "what.amount": {"en": "an amount", "zh": "金额"},
    "what.note": {"en": "a note", "zh": "跟进内容"},
    "what.reason": {"en": "a reason", "zh": "原因"},
    "what.member": {"en": "a person (@name)", "zh": "成员（@姓名）"},
    "what.stage": {"en": "a stage", "zh": "阶段"},
    "what.role": {"en": "a role", "zh": "角色"},
    "what.setting": {"en": "a setting like locale=zh", "zh": "设置项（如 locale=zh）"},
    "what.field": {"en": "a field to change like phone=…", "zh": "要修改的字段（如 电话=…）"},
}


def translate(locale: str, key: str, /, **params: Any) -> str:
    """The sentence for `key` in `locale` (English when a sentence has no translation)."""
    entry = MESSAGES.get(key)
    if entry is None:
        return key
    template = entry.get(locale) or entry["en"]
    try:
        return template.format(**params)
    except (KeyError, IndexError, ValueError):
        return template


def money(minor: int | None, currency: str, locale: str) -> str:
    if minor is None:
        return "-"
    value = Decimal(minor) / 100
    pattern = "¤#,##0" if minor % 100 == 0 else "¤#,##0.00"
    return format_currency(value, currency, format=pattern, locale=_BABEL[locale], currency_digits=False)


def money_short(minor: int, currency: str, locale: str) -> str:
    """Compact money for dense lines: ¥120万, $1.2M."""
    value = Decimal(minor) / 100
    if abs(value) < 10_000:
        return money(minor, currency, locale)
    return format_compact_currency(value, currency, locale=_BABEL[locale], fraction_digits=1)


def day(value: date, locale: str) -> str:
    """A date people read at a glance: Fri 28 Nov / 11月28日（周五）."""
    pattern = "M月d日（EEE）" if locale == "zh" else "EEE d MMM"
    return format_date(value, pattern, locale=_BABEL[locale])


def clock(moment: datetime, tz: ZoneInfo, today: date | None = None) -> str:
    """A moment in the team's time: 10:02 today, 11-25 10:02 otherwise."""
    local = moment.astimezone(tz)
    if today is not None and local.date() == today:
        return local.strftime("%H:%M")
    return local.strftime("%m-%d %H:%M")


def percent(basis_points: int) -> str:
    value = Decimal(basis_points) / 100
    return f"{value.normalize():f}%"
