"""The installed `dealbot` console script, run as a real process the way an operator runs it: a
piped console session, a restart on the same database, `db upgrade`, `outbox`, `--help`, and `run`
falling back to the console when no platform is configured."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PLATFORM_PREFIXES = ("DEALBOT_", "SLACK_", "TELEGRAM_", "WECOM_")
TIMEOUT = 60

DAY = """\
/team config locale=en
/lead add Acme Trading phone=138-0013-8000 value=120k source=fair
[carol] /lead add ACME trading ltd phone=13800138000
/follow L1 demo went well, they want a quote next=fri via=visit
# bob joins, becomes a manager, and approves
[bob] /help
/team role @bob manager
/quote L1 80k discount=5%
[bob] /quote approve Q1 ok for this quarter
/lead won L1
"""


def dealbot_executable() -> str:
    beside = Path(sys.executable).parent / "dealbot"
    found = str(beside) if beside.exists() else shutil.which("dealbot")
    assert found, "the dealbot console script is not installed (pip install -e .)"
    return found


def clean_env() -> dict[str, str]:
    """The caller's environment without any dealbot or platform setting: only what a test sets
    counts."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(PLATFORM_PREFIXES) and key != "PORT"
    }
    env["PYTHONUTF8"] = "1"  # replies carry emoji and CJK; decode them the same way everywhere
    return env


def dealbot(cwd: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [dealbot_executable(), *args],
        cwd=cwd,
        env=clean_env(),
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=TIMEOUT,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (
        f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def day(workdir: Path) -> tuple[str, str]:
    """One console session piped in as alice; returns (database URL, what it printed)."""
    url = f"sqlite:///{workdir / 'x.db'}"
    out = ok(dealbot(workdir, "console", "--user", "alice", "--db", url, stdin=DAY))
    return url, out


def test_piped_console_prints_every_reply_and_push(day: tuple[str, str], workdir: Path) -> None:
    _, out = day
    # Each line typed is echoed, then its reply.
    assert "alice> /lead add Acme Trading phone=138-0013-8000 value=120k source=fair" in out
    assert "✅ L1 Acme Trading — yours, stage Lead · est. $120,000" in out
    assert "[Log follow-up → /follow L1]  [Quote → /quote L1]" in out
    assert "[carol] /lead add ACME trading ltd phone=13800138000" in out
    assert "Looks like L1 Acme Trading (owner: alice" in out and "Not added." in out
    assert "L1 follow-up logged. Next: Fri" in out
    assert "bob is now manager" in out
    assert "🧾 Q1 for L1 Acme Trading: $80,000 (−5%). Needs a manager — asked bob." in out
    # Pushes to other people print as they are delivered.
    assert "→ bob: 🧾 Q1 · Acme Trading · $80,000 (−5%) · by alice" in out
    assert "[Approve → /quote approve Q1]  [Reject → /quote reject Q1]" in out
    assert re.search(r"^✅ Q1 approved by bob · \d\d:\d\d — ok for this quarter$", out, re.M), out
    assert re.search(r"^→ alice: ✅ Q1 approved by bob · \d\d:\d\d", out, re.M), out
    assert "🏆 L1 Acme Trading won: $80,000." in out
    # Comments and blank lines are skipped, not answered.
    assert "# bob joins" not in out and "❓" not in out
    # Nothing lands outside the working directory it was given.
    assert (workdir / "x.db").exists()


def test_a_second_process_sees_the_data(day: tuple[str, str], workdir: Path) -> None:
    url, _ = day
    out = ok(
        dealbot(
            workdir,
            "console",
            "--user",
            "alice",
            "--db",
            url,
            stdin="/lead show L1\n/quote list\n/lead add Beta Systems\n",
        )
    )
    shown = out.split("alice> /lead show L1", 1)[1]
    assert "L1 Acme Trading · won · owner alice" in shown
    assert "Won: $80,000" in shown and "Q1 $80,000 (−5%) approved" in shown
    assert "demo went well, they want a quote" in shown
    assert re.search(r"Q1\s+L1 Acme Trading\s+\$80,000 \(−5%\)\s+alice\s+approved", out), out
    assert "✅ L2 Beta Systems — yours" in out  # the numbering carries on after the restart


def test_db_upgrade_on_the_same_database_is_up_to_date(day: tuple[str, str], workdir: Path) -> None:
    url, _ = day
    assert "database is up to date" in ok(dealbot(workdir, "db", "upgrade", "--db", url))


def test_outbox_has_nothing_pending_after_the_console_delivered(
    day: tuple[str, str], workdir: Path
) -> None:
    url, _ = day
    out = ok(dealbot(workdir, "outbox", "--db", url))
    assert out.strip().splitlines()[-1] == "0 pending"


def test_help_lists_every_command(tmp_path: Path) -> None:
    out = ok(dealbot(tmp_path, "--help"))
    for command in ("run", "console", "serve", "worker", "db", "outbox"):
        assert re.search(rf"^\W*{command}\b", out, re.M), (command, out)
    assert list(tmp_path.iterdir()) == []  # asking for help creates no database


def test_help_shows_the_console_example_as_typed(tmp_path: Path) -> None:
    assert "`[bob] …` acts as bob" in ok(dealbot(tmp_path, "--help"))
    assert "`[bob] …` acts as bob" in ok(dealbot(tmp_path, "console", "--help"))


def test_a_long_piped_script_runs_every_line(tmp_path: Path) -> None:
    script = "/team config locale=en\n" + "".join(f"/lead add Customer {n}\n" for n in range(1, 81))
    out = ok(dealbot(tmp_path, "console", "--user", "alice", stdin=script))
    assert "✅ L80 Customer 80 — yours" in out
    assert out.count("✅ L") == 80 and "slow down" not in out.casefold()


def test_run_without_platform_tokens_is_the_console(tmp_path: Path) -> None:
    out = ok(
        dealbot(
            tmp_path,
            "run",
            "--user",
            "alice",
            stdin="/team config locale=en\n/lead add Gamma Foods value=12k\n",
        )
    )
    assert "alice> /lead add Gamma Foods value=12k" in out
    assert "✅ L1 Gamma Foods — yours, stage Lead · est. $12,000" in out
    # With no --db and no DEALBOT_DATABASE_URL the default SQLite file lands in the working dir.
    assert (tmp_path / "dealbot.db").exists()


def test_settings_come_from_a_dotenv_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "DEALBOT_DATABASE_URL=sqlite:///from-dotenv.db\n", encoding="utf-8"
    )
    assert "database is up to date" in ok(dealbot(tmp_path, "db", "upgrade"))
    assert (tmp_path / "from-dotenv.db").exists() and not (tmp_path / "dealbot.db").exists()


def test_run_beside_the_console_logs_only_warnings_there_and_everything_to_a_log_file(
    tmp_path: Path,
) -> None:
    """The worker beside the console logs at DEBUG here; the console shows its warning and
    nothing more (no scheduler chatter among the replies). DEALBOT_LOG_FILE takes all of it."""
    env = clean_env()
    env.update(DEALBOT_LOG_LEVEL="DEBUG", DEALBOT_ADMINS="boss")  # a bare id: a warning

    def run(lead: str, **settings: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [dealbot_executable(), "run", "--user", "alice"],
            cwd=tmp_path,
            env={**env, **settings},
            input=f"/lead add {lead}\n",
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=TIMEOUT,
            check=False,
        )

    shown = run("Gamma Foods")
    assert "L1 Gamma Foods" in ok(shown)
    lines = [json.loads(line) for line in shown.stderr.splitlines()]
    assert lines and {line["level"] for line in lines} == {"warning"}, shown.stderr
    assert all("DEALBOT_ADMINS" in line["event"] for line in lines)
    assert '"level"' not in shown.stdout

    log_file = tmp_path / "dealbot.log"
    filed = run("Delta Foods", DEALBOT_LOG_FILE=str(log_file))
    assert "L2 Delta Foods" in ok(filed) and filed.stderr == ""
    written = [json.loads(line) for line in log_file.read_text(encoding="utf-8").splitlines()]
    assert any(line["logger"] == "apscheduler.scheduler" for line in written)
    assert any("DEALBOT_ADMINS" in line["event"] for line in written)
