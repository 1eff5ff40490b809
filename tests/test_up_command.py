"""`manage.py up`: demo users and their password, and a supervisor that never leaves orphans."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from orchestrator.management.commands import up
from orchestrator.management.commands.up import admin_password, do_ensure_demo_users

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _fast_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# --- the admin password ------------------------------------------------------------------
def test_password_is_generated_once_and_kept_private(tmp_path, monkeypatch):
    monkeypatch.delenv("CHORUS_ADMIN_PASSWORD", raising=False)
    password, origin = admin_password(tmp_path)
    assert len(password) >= 16
    assert origin == str(tmp_path / "admin-password")
    assert (tmp_path / "admin-password").stat().st_mode & 0o777 == 0o600
    assert admin_password(tmp_path) == (password, origin)


def test_password_from_the_environment_wins_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("CHORUS_ADMIN_PASSWORD", "chosen-by-me-123")
    assert admin_password(tmp_path) == ("chosen-by-me-123", "CHORUS_ADMIN_PASSWORD")
    assert not (tmp_path / "admin-password").exists()


# --- demo users -----------------------------------------------------------------------------
@pytest.mark.django_db
def test_creates_a_superuser_and_one_user_per_role():
    users = do_ensure_demo_users("s3cret-pass-word")
    assert [(u.username, u.role, u.created) for u in users] == [
        ("admin", "Admin", True),
        ("marketer", "Marketer", True),
        ("messaging", "Messaging team", True),
    ]
    admin = User.objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff and admin.check_password("s3cret-pass-word")
    assert list(User.objects.get(username="marketer").groups.values_list("name", flat=True)) == ["Marketer"]
    messaging = User.objects.get(username="messaging")
    assert list(messaging.groups.values_list("name", flat=True)) == ["Messaging team"]
    assert not messaging.is_staff and messaging.check_password("s3cret-pass-word")


@pytest.mark.django_db
def test_ensuring_users_twice_changes_nothing():
    do_ensure_demo_users("s3cret-pass-word")
    before = list(User.objects.order_by("id").values_list("id", "username", "password", "is_superuser"))
    users = do_ensure_demo_users("s3cret-pass-word")
    assert [u.created for u in users] == [False, False, False]
    assert all(u.password_current for u in users)
    assert list(User.objects.order_by("id").values_list("id", "username", "password", "is_superuser")) == before


@pytest.mark.django_db
def test_a_password_changed_in_the_ui_is_kept_unless_the_environment_sets_one():
    do_ensure_demo_users("s3cret-pass-word")
    admin = User.objects.get(username="admin")
    admin.set_password("changed-by-the-admin")
    admin.save()
    users = do_ensure_demo_users("s3cret-pass-word")
    assert users[0].password_current is False
    assert User.objects.get(username="admin").check_password("changed-by-the-admin")
    do_ensure_demo_users("s3cret-pass-word", enforce_password=True)
    assert User.objects.get(username="admin").check_password("s3cret-pass-word")


# --- the command, with its processes replaced ------------------------------------------------
class FakeSupervisor:
    calls: list = []
    code = 0

    def __init__(self, children, out=None):
        FakeSupervisor.calls.append([list(child.argv) for child in children])

    def run(self) -> int:
        return FakeSupervisor.code


@pytest.fixture
def fake_supervisor(monkeypatch, tmp_path, settings):
    settings.VAR_DIR = tmp_path
    monkeypatch.delenv("CHORUS_ADMIN_PASSWORD", raising=False)
    FakeSupervisor.calls, FakeSupervisor.code = [], 0
    monkeypatch.setattr(up, "Supervisor", FakeSupervisor)
    monkeypatch.setattr(up.connections, "close_all", lambda: None)  # keep the test's transaction
    return FakeSupervisor


@pytest.mark.django_db
def test_up_prints_the_login_and_runs_the_web_server_and_a_worker(fake_supervisor, tmp_path):
    out = StringIO()
    call_command("up", "--port", "8123", "--no-seed", stdout=out)
    password = (tmp_path / "admin-password").read_text().strip()
    text = out.getvalue()
    assert "http://127.0.0.1:8123/login/" in text
    assert re.search(rf"admin\s+{re.escape(password)}\s+Admin", text)
    [[web, worker]] = fake_supervisor.calls
    assert web[1:] == ["-m", "daphne", "-b", "127.0.0.1", "-p", "8123", "orchestrator.asgi:application"]
    assert worker[-1] == "qcluster"
    assert User.objects.get(username="admin").check_password(password)


@pytest.mark.django_db
def test_up_fails_with_the_childs_exit_code(fake_supervisor):
    fake_supervisor.code = 3
    with pytest.raises(CommandError, match="stopped unexpectedly") as excinfo:
        call_command("up", "--no-seed", "--no-worker", stdout=StringIO())
    assert excinfo.value.returncode == 3
    assert len(fake_supervisor.calls[0]) == 1


# --- the supervisor, with real processes -------------------------------------------------------
SLEEPER = textwrap.dedent(
    """
    import os, signal, subprocess, sys, time
    if "--ignore-term" in sys.argv:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if "--with-grandchild" in sys.argv:
        grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        print(f"pid={grandchild.pid}", flush=True)
    print(f"pid={os.getpid()}", flush=True)
    if "--exit-soon" in sys.argv:
        time.sleep(0.3)
        sys.exit(3)
    time.sleep(60)
    """
)


def supervise(*children: tuple[str, list[str]], grace: float = 5.0) -> subprocess.Popen:
    specs = ", ".join(f"Child({name!r}, [sys.executable, '-c', SLEEPER, *{flags!r}])" for name, flags in children)
    program = f"import sys\nfrom orchestrator.supervisor import Child, run\nSLEEPER = {SLEEPER!r}\nsys.exit(run([{specs}], grace={grace}))"
    return subprocess.Popen([sys.executable, "-c", program], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


class Output:
    def __init__(self, proc: subprocess.Popen):
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, args=(proc,), daemon=True).start()

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def pids(self, count: int, timeout: float = 15) -> list[int]:
        deadline = time.monotonic() + timeout
        while len(self._pids()) < count:
            self.seen.append(self.lines.get(timeout=max(0.01, deadline - time.monotonic())))
        return self._pids()

    def _pids(self) -> list[int]:
        return [int(m.group(1)) for line in self.seen if (m := re.search(r"\| pid=(\d+)$", line))]

    def rest(self) -> list[str]:
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return self.seen


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:  # a zombie left for init to reap is gone too
            return stat.read().split(") ")[1].startswith("Z")
    except FileNotFoundError:
        return True


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_every_child_and_their_children(signum):
    proc = supervise(("web", []), ("worker", ["--with-grandchild"]))
    output = Output(proc)
    pids = output.pids(3)
    proc.send_signal(signum)
    assert proc.wait(timeout=15) == 0
    time.sleep(0.2)
    assert all(gone(pid) for pid in pids), output.rest()
    assert any(f"received {signal.Signals(signum).name}; stopping" in line for line in output.rest())


def test_a_dying_child_stops_the_other_and_fails():
    proc = supervise(("web", []), ("worker", ["--exit-soon"]))
    output = Output(proc)
    pids = output.pids(2)
    started = time.monotonic()
    assert proc.wait(timeout=15) == 3
    assert time.monotonic() - started < 10
    assert all(gone(pid) for pid in pids)
    assert any("worker exited with code 3; stopping the others" in line for line in output.rest())


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace_period():
    proc = supervise(("stubborn", ["--ignore-term"]), grace=1.0)
    output = Output(proc)
    [pid] = output.pids(1)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 0
    assert gone(pid)
    assert any("stubborn did not stop in time; killing it" in line for line in output.rest())
