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
        "en": "I don't know the command “{word}”.{hint} Type /help to see what I can do.",
        "zh": "不认识的命令“{word}”。{hint}发送 /帮助 查看可用命令。",
    },
    "usage.did_you_mean": {"en": " Did you mean {command}?", "zh": "你是想用 {command} 吗？"},
    "usage.unknown_help": {
        "en": "❓ I don't know “{word}”.{hint} These are the commands:",
        "zh": "❓ 没有“{word}”这个命令。{hint}可用命令如下：",
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
    "usage.wrong_currency": {
        "en": "“{text}” is not in this team's currency, {currency}. Type it in {currency} "
              "(like {example}); an admin can change the currency with {command}…",
        "zh": "“{text}”不是本团队的币种 {currency}。请按 {currency} 填写（如 {example}）；"
              "管理员可用 {command}… 修改币种。",
    },
    "usage.bad_percent": {
        "en": "“{text}” is not a percentage between 0 and 100, like 5%.",
        "zh": "“{text}”不是 0 到 100 之间的百分比，例如 5%。",
    },
    "usage.ambiguous_percent": {
        "en": "“{text}” could be {whole}% or {text}%. Write {key}={whole}% or {key}={text}%.",
        "zh": "“{text}”是 {whole}% 还是 {text}%？请写成 {key}={whole}% 或 {key}={text}%。",
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
        "zh": "团队里还没有 {name}。请对方先给我发一条消息，或由管理员添加：/团队 角色 {name} 销售",
    },
    "usage.bad_stage": {
        "en": "“{text}” is not a stage of this team. Stages: {stages}.",
        "zh": "“{text}”不是本团队的阶段。阶段有：{stages}。",
    },
    "usage.stage_closes": {
        "en": "“{text}” is not a stage: a lead is closed with {command}",
        "zh": "“{text}”不是阶段；结束线索请用：{command}",
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
        "zh": "“{text}”不是角色。角色有：销售、经理、管理员。",
    },
    "usage.direction_control": {
        "en": "The text holds invisible direction characters ({chars}) that make it show "
        "differently from what it says. Nothing was changed: type it again without them.",
        "zh": "文本中含有不可见的方向控制字符（{chars}），会让显示的内容与实际不符。"
        "未做任何更改：请去掉这些字符后重新输入。",
    },
    "usage.bad_choice": {
        "en": "“{text}” is not one of: {choices}.",
        "zh": "“{text}”不是可选值之一：{choices}。",
    },
    "usage.unknown_config": {
        "en": "I don't know the setting “{key}”.{hint} Settings: {known}.",
        "zh": "不认识的设置项“{key}”。{hint}可用设置：{known}。",
    },
    "usage.bad_config_value": {
        "en": "“{value}” doesn't fit {key}: {detail}",
        "zh": "“{value}”不适用于 {key}：{detail}",
    },
    "usage.bad_phone": {
        "en": "“{text}” is not a phone number. Phone numbers look like 138-0013-8000 "
              "or +86 13800138000.",
        "zh": "“{text}”不是电话号码。电话号码形如 138-0013-8000 或 +86 13800138000。",
    },
    "usage.bad_email": {
        "en": "“{text}” is not an e-mail address. Addresses look like name@example.com.",
        "zh": "“{text}”不是邮箱地址。邮箱形如 name@example.com。",
    },
    "usage.bad_timezone": {
        "en": "“{text}” is not a timezone. Timezones look like Asia/Shanghai, Europe/Berlin "
              "or UTC.",
        "zh": "“{text}”不是时区。时区形如 Asia/Shanghai、Europe/Berlin 或 UTC。",
    },
    "usage.bad_page": {"en": "“{text}” is not a page number.", "zh": "“{text}”不是页码。"},
    "usage.yes_no": {"en": "“{text}” should be yes or no.", "zh": "“{text}”应为“是”或“否”。"},
    "usage.form": {"en": "Usage: {usage}", "zh": "用法：{usage}"},
    "usage.example": {"en": "Example: {example}", "zh": "示例：{example}"},
    "button.forged": {
        "en": "This button was not made by me for you, so I did nothing. Type the command instead.",
        "zh": "这个按钮无法验证，未做任何操作。请直接输入命令。",
    },
    "button.unbound": {
        "en": "This button is from an older card and does not say which team it is for, so I did "
              "nothing. Type the command in your team's group.",
        "zh": "这是旧卡片上的按钮，无法确定所属团队，未做任何操作。请在团队群里输入命令。",
    },
    "button.not_member": {
        "en": "This button belongs to a team you are not a member of, so I did nothing.",
        "zh": "这个按钮属于你不在其中的团队，未做任何操作。",
    },
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
        "en": "⚠️ Looks like {lead} (owner: {owner}, {state}). Not added.",
        "zh": "⚠️ 疑似撞单：{lead}（负责人 {owner}，{state}），未添加。",
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
    "date.too_far_ahead": {
        "en": "{date} is too far ahead: plans reach two years at most (until {latest}).",
        "zh": "{date} 太远了：计划最多安排到两年内（{latest} 之前）。",
    },
    "date.out_of_range": {
        "en": "{date} can't be right: contract and payment dates fall between {first} and {last}.",
        "zh": "{date} 不太可能：合同和回款日期应在 {first} 到 {last} 之间。",
    },
    "usage.month_out_of_range": {
        "en": "{month} is out of range: targets are for months from {first} to {last}.",
        "zh": "{month} 超出范围：目标月份应在 {first} 到 {last} 之间。",
    },
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
    "quote.withdrawn": {
        "en": "Q{quote} was withdrawn when {lead} was {why}, {day}; there is nothing to decide.",
        "zh": "Q{quote} 已于 {day} 撤回（{lead} {why}），无需审批。",
    },
    "withdrawn.won": {"en": "won", "zh": "已赢单"},
    "withdrawn.lost": {"en": "lost", "zh": "已输单"},
    "withdrawn.forgotten": {"en": "forgotten (customer data erased)", "zh": "已删除客户信息"},
    "withdrawn.released": {"en": "released to the pool", "zh": "已释放到公海"},
    "withdrawn.pool": {"en": "returned to the pool", "zh": "已退回公海"},
    "push.quote_withdrawn": {
        "en": "Q{quote} withdrawn: {lead} was {why}. Nothing to decide.",
        "zh": "Q{quote} 已撤回：{lead} {why}，无需审批。",
    },
    "push.transfer_closed": {
        "en": "Your request for {lead} is closed: it was {why}.",
        "zh": "你对 {lead} 的转移申请已关闭：该线索{why}。",
    },
    "reply.withdrawn": {
        "en": "🧾 Withdrawn: {refs} (told {names}).",
        "zh": "🧾 已撤回 {refs}（已通知 {names}）。",
    },
    "reply.transfer_closed": {
        "en": "🔁 {who}'s request for it is closed.",
        "zh": "🔁 {who} 的转移申请已关闭。",
    },
    # --- rules /help states for a family ------------------------------------------------------
    "help.rules.lead": {
        "en": "Winning or losing a lead, erasing its customer (forget) or handing it to the "
              "pool (release, or untouched too long) withdraws its quotes still waiting for "
              "approval and closes any request to take it over; the approvers and requesters are "
              "told. Approved quotes stay. A snooze only quiets the nudges: the next follow-up "
              "date stays, and what is still due is nudged again when the snooze ends.",
        "zh": "赢单、输单、删除客户信息（遗忘）或退回公海（释放，或长期未跟进）时，"
              "该线索待审批的报价自动撤回，转移申请随之关闭，并通知审批人和申请人；已通过的报价保留。"
              "暂缓只是暂停提醒：下次跟进日期不变，暂缓结束后仍未跟进的会再次提醒。",
    },
    "help.rules.follow": {
        "en": "Without next= the planned date stays; next=none clears it. A follow-up with only "
              "next= (/follow L12 next=fri) plans the next one.",
        "zh": "不写 下次= 时保持原定日期；下次=无 清除日期。"
              "只写 下次=（/跟进 L3 下次=周五）即只安排下次跟进。",
    },
    "help.rules.quote": {
        "en": "A quote still waiting when its lead is won, lost, forgotten or handed to the pool "
              "is withdrawn: there is nothing left to decide.",
        "zh": "线索赢单、输单、删除客户信息或退回公海时，仍在等待审批的报价自动撤回，无需再审批。",
    },
    "help.rules.report": {
        "en": "Counts: new leads and follow-ups by who made them; quotes asked in the period, "
              "decided in it (whenever asked) and waiting now, in working hours (quiet hours and "
              "weekends do not count). Funnel: of the leads you can see, how many reached at least "
              "each stage (from their stage history; a won deal passed every stage), then how many "
              "were won; each % is of the step before.",
        "zh": "统计口径：新线索、跟进按操作人计；报价分“本期申请”“本期审批（不论何时申请）”"
              "“当前待审批”，等待时间按工作小时计（免打扰时段和周末不计）。"
              "漏斗：你可见的线索中，到达过各阶段（含已退回的，按阶段记录；赢单视为走完全部阶段）的数量，"
              "最后是赢单数；百分比为相对上一步的转化率。",
    },
    "help.rules.paid": {
        "en": "A payment is dated between the contract's signing and today.",
        "zh": "回款日期须在合同签订日与今天之间。",
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
    # --- after the signature: contracts, plans, payments, care (issue 9) ---
    "contract.not_found": {
        "en": "There is no contract C{contract} in this team. See /receivables or /lead show L….",
        "zh": "本团队没有合同 C{contract}。发送 /应收 或 /线索 查看 L… 查看。",
    },
    "contract.lead_lost": {
        "en": "L{lead} was lost; a contract needs an open or won lead.",
        "zh": "L{lead} 已输单，只有进行中或已赢单的线索可以签合同。",
    },
    "contract.ends_before_start": {
        "en": "The contract would end ({end}) before it starts ({start}).",
        "zh": "合同结束日期（{end}）早于开始日期（{start}）。",
    },
    "contract.changed": {
        "en": "C{contract} changed a moment ago; nothing was done. "
              "Look again: /contract show C{contract}",
        "zh": "C{contract} 刚刚有变化，本次操作未执行。请重新查看：/合同 查看 C{contract}",
    },
    "contract.amount_has_plan": {
        "en": "C{contract} has a payment plan, so its amount stays. "
              "Change the plan first: /plan C{contract} …",
        "zh": "C{contract} 已有回款计划，金额不能修改。请先修改计划：/回款计划 C{contract} …",
    },
    "plan.empty": {"en": "A plan needs at least one instalment.", "zh": "回款计划至少需要一期。"},
    "plan.too_many": {"en": "A plan has at most {limit} instalments.",
                      "zh": "回款计划最多 {limit} 期。"},
    "plan.not_100": {
        "en": "The percentages add up to {percent}%, not 100%.",
        "zh": "各期比例合计 {percent}%，不是 100%。",
    },
    "plan.not_total": {
        "en": "The instalments add up to {sum}, not the contract's {total} ({diff} apart).",
        "zh": "各期金额合计 {sum}，与合同金额 {total} 不符（相差 {diff}）。",
    },
    "plan.mixed": {
        "en": "Use percentages (30%@signing) or amounts (50k@2026-12-31) in one plan, not both.",
        "zh": "一个计划请统一使用比例（30%@签约）或金额（50万@2026-12-31），不要混用。",
    },
    "plan.zero": {"en": "Instalment {n} would be nothing.", "zh": "第 {n} 期金额为零。"},
    "plan.has_payments": {
        "en": "C{contract} already has payments recorded, so its plan stays as it is.",
        "zh": "C{contract} 已有回款记录，回款计划不能再修改。",
    },
    "plan.bad_item": {
        "en": "“{text}” is not an instalment. "
              "Write share@when: 30%@signing, 50k@2026-12-31, 40%@acceptance.",
        "zh": "“{text}”不是有效的一期。"
              "请写成 比例或金额@时间：30%@签约、50万@2026-12-31、40%@验收。",
    },
    "plan.bad_when": {
        "en": "“{text}” is neither a date nor a milestone "
              "(signing, start, delivery, acceptance, end).",
        "zh": "“{text}”既不是日期也不是节点（签约、开始、交付、验收、到期）。",
    },
    "payment.no_plan": {
        "en": "C{contract} has no payment plan yet. Set one first: /plan C{contract} 100%@signing",
        "zh": "C{contract} 还没有回款计划，请先设置：/回款计划 C{contract} 100%@签约",
    },
    "payment.fully_paid": {
        "en": "C{contract} is fully paid ({total}); nothing was recorded.",
        "zh": "C{contract} 已全部回款（{total}），本次未记录。",
    },
    "payment.before_signing": {
        "en": "C{contract} was signed {signed}; a payment dated {date} is before that. Nothing was "
              "recorded — check the date.",
        "zh": "C{contract} 于 {signed} 签订，{date} 的回款早于签订日期，本次未记录，请核对日期。",
    },
    "payment.future": {
        "en": "{date} is in the future; record a payment on or after the day it arrives.",
        "zh": "{date} 还没到，请在款项到账当天或之后登记。",
    },
    "care.not_customer": {
        "en": "L{lead} is not a customer yet ({status}); care is for won leads. "
              "Log a follow-up: /follow L{lead} …",
        "zh": "L{lead} 还不是客户（{status}），回访只针对已赢单的线索。请用 /跟进 L{lead} …",
    },
    "usage.bad_contract_ref": {
        "en": "“{text}” is not a contract id. Contract ids look like C2.",
        "zh": "“{text}”不是合同编号。合同编号形如 C2。",
    },
    "usage.bad_grade": {"en": "“{text}” is not a grade. Grades: A, B, C.",
                        "zh": "“{text}”不是客户等级。等级：A、B、C。"},
    "what.contract": {"en": "a contract id like C2", "zh": "合同编号（如 C2）"},
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
    "status.withdrawn": {"en": "withdrawn", "zh": "已撤回"},
    "state.stage": {"en": "stage {stage}", "zh": "阶段 {stage}"},
    "state.won": {"en": "won", "zh": "已赢单"},
    "state.lost": {"en": "lost", "zh": "已输单"},
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
    "what.setting": {"en": "a setting like locale=zh", "zh": "设置项（如 语言=中文）"},
    "what.field": {"en": "a field to change like phone=…", "zh": "要修改的字段（如 电话=…）"},
    # --- teamwork: transfers, delegation, N-of-M approvals, personal settings (issue 8) -----------
    "quote.already_signed": {
        "en": "{by} already approved Q{quote} at {at}; it still needs {missing} more.",
        "zh": "{by} 已于 {at} 同意 Q{quote}，还需 {missing} 位同意。",
    },
    "quote.not_visible": {"en": "Q{quote} is not yours to see.", "zh": "你无权查看 Q{quote}。"},
    "lead.claim_limit": {
        "en": "You've claimed {limit} leads from the pool today — the team's daily limit. Ask your manager to assign more.",
        "zh": "今天已从公海领取 {limit} 条线索，达到团队每日上限。如需更多，请经理分配。",
    },
    "transfer.in_pool": {
        "en": "L{lead} is in the pool: claim it with /lead claim L{lead}",
        "zh": "L{lead} 在公海中，直接领取：/线索 领取 L{lead}",
    },
    "transfer.already_yours": {"en": "L{lead} is already yours.", "zh": "L{lead} 已经是你的线索。"},
    "transfer.pending": {
        "en": "{by} already asked for L{lead} at {at}; {owner} is deciding. Nothing was sent.",
        "zh": "{by} 已于 {at} 申请接手 L{lead}，正等待 {owner} 决定。本次未发送。",
    },
    "transfer.asked_already": {
        "en": "You already asked for L{lead} at {at}; {owner} is deciding.",
        "zh": "你已于 {at} 申请接手 L{lead}，正等待 {owner} 决定。",
    },
    "transfer.already_decided": {
        "en": "The request by {requester} for L{lead} was already {status} by {by} at {at}.",
        "zh": "{requester} 对 L{lead} 的转移申请已于 {at} 被 {by}{status}。",
    },
    "transfer.none": {
        "en": "Nobody asked for L{lead}. To ask: /lead transfer L{lead} <reason>",
        "zh": "没有人申请接手 L{lead}。申请：/线索 转移 L{lead} <原因>",
    },
    "transfer.own_request": {
        "en": "You asked for L{lead} yourself; its owner or their manager decides.",
        "zh": "这是你自己提出的申请，由 L{lead} 的负责人或其经理决定。",
    },
    "transfer.not_yours": {
        "en": "Only {owner} (the owner) or their manager decides who gets L{lead}.",
        "zh": "只有负责人 {owner} 或其经理可以决定 L{lead} 的归属。",
    },
    "transfer.cancel_not_yours": {
        "en": "Only the one who asked can withdraw the request for L{lead}.",
        "zh": "只有申请人可以撤回 L{lead} 的转移申请。",
    },
    "transfer.status.approved": {"en": "approved", "zh": "同意"},
    "transfer.status.rejected": {"en": "rejected", "zh": "驳回"},
    "transfer.status.cancelled": {"en": "withdrawn", "zh": "撤回"},
    "transfer.status.stale": {"en": "closed as outdated", "zh": "判定失效"},
    "delegation.not_yours": {
        "en": "Only {member} or an admin can choose who decides for {member}.",
        "zh": "只有 {member} 本人或管理员可以设置其代理人。",
    },
    "delegation.not_an_approver": {
        "en": "{member} approves nothing (a rep), so there is nothing to delegate.",
        "zh": "{member} 是销售，没有审批权，无需设置代理。",
    },
    "delegation.self": {"en": "Pick someone else as the delegate.", "zh": "代理人不能是自己。"},
    "delegation.past": {"en": "A delegation can't start in the past ({date}).", "zh": "代理不能从过去开始（{date}）。"},
    "delegation.until_before_from": {
        "en": "The end ({date}) is before the start.",
        "zh": "结束日期（{date}）早于开始日期。",
    },
    "delegation.too_long": {"en": "A delegation lasts a year at most.", "zh": "代理期限最长一年。"},
    "delegation.none": {"en": "{member} has no delegate set.", "zh": "{member} 没有设置代理人。"},
    "prefs.bad_mode": {"en": "“{mode}” is not one of: realtime, digest, off.", "zh": "“{mode}”不是可选值：实时、汇总、关闭。"},
    "prefs.approvals_off": {
        "en": "Approvals others ask of you can't be turned off. Use digest to get them batched: /me notify approvals digest",
        "zh": "别人请你审批的消息不能关闭。可改为汇总：/我的 通知 审批 汇总",
    },
    "prefs.bad_quiet": {"en": "“{text}” is not a range like 21:00-08:00.", "zh": "“{text}”不是时间段，如 21:00-08:00。"},
    "prefs.bad_lang": {"en": "“{text}” is not zh or en.", "zh": "“{text}”不是 zh 或 en。"},
    "prefs.bad_timezone": {"en": "“{text}” is not a timezone like Asia/Shanghai.", "zh": "“{text}”不是时区，如 Asia/Shanghai。"},
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
