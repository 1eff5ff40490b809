"""Run Chorus on this machine: migrate, seed demo data once, then the web server and a worker.

``./chorus up`` calls this. The admin's password comes from ``CHORUS_ADMIN_PASSWORD`` or
is generated once and kept in ``var/admin-password``; the demo users of each role share
it. Ctrl-C stops both processes.
"""

from __future__ import annotations

import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections, transaction
from django.urls import reverse

from customers.models import Customer
from orchestrator.demo import LAUNCH_EXTERNAL_ID
from orchestrator.env import env_str
from orchestrator.roles import Role
from orchestrator.supervisor import Child, Supervisor

ADMIN_USERNAME = "admin"
ROLE_USERS: dict[str, Role] = {"marketer": Role.MARKETER, "messaging": Role.MESSAGING}
PASSWORD_FILE = "admin-password"


@dataclass(frozen=True)
class DemoUser:
    username: str
    role: str
    created: bool
    password_current: bool  # False: someone changed it since; we leave it alone


def admin_password(var_dir: Path) -> tuple[str, str]:
    """(password, where it came from): the environment, else var/admin-password, made once."""
    from_env = env_str("CHORUS_ADMIN_PASSWORD")
    if from_env:
        return from_env, "CHORUS_ADMIN_PASSWORD"
    path = var_dir / PASSWORD_FILE
    if path.exists() and path.read_text().strip():
        return path.read_text().strip(), str(path)
    password = secrets.token_urlsafe(12)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(password + "\n")
    return password, str(path)


@transaction.atomic
def do_ensure_demo_users(password: str, *, enforce_password: bool = False) -> list[DemoUser]:
    """The superuser ``admin`` and one user per role, created with ``password`` if missing.

    Existing users keep their password unless ``enforce_password`` (the password was set
    explicitly in the environment), so a password changed in the UI is not overwritten.
    """
    wanted = [(ADMIN_USERNAME, Role.ADMIN, True), *((name, role, False) for name, role in ROLE_USERS.items())]
    return [_ensure_user(name, role, superuser, password, enforce_password) for name, role, superuser in wanted]


def _ensure_user(username: str, role: Role, superuser: bool, password: str, enforce: bool) -> DemoUser:
    user, created = User.objects.get_or_create(
        username=username,
        defaults={"email": f"{username}@example.com", "is_staff": superuser, "is_superuser": superuser},
    )
    current = True
    if created or (enforce and not user.check_password(password)):
        user.set_password(password)
        user.save(update_fields=["password"])
    elif not user.check_password(password):
        current = False
    user.groups.add(Group.objects.get_or_create(name=role.value)[0])
    return DemoUser(username, role.value, created, current)


def server_children(host: str, port: int, server: str, worker: bool) -> list[Child]:
    base = str(settings.BASE_DIR)
    if server == "uvicorn":
        web = [sys.executable, "-m", "uvicorn", "orchestrator.asgi:application", "--host", host, "--port", str(port)]
    else:
        web = [sys.executable, "-m", "daphne", "-b", host, "-p", str(port), "orchestrator.asgi:application"]
    children = [Child("web", web, cwd=base)]
    if worker:
        children.append(Child("worker", [sys.executable, str(settings.BASE_DIR / "manage.py"), "qcluster"], cwd=base))
    return children


class Command(BaseCommand):
    help = "Migrate, seed demo data if the workspace is empty, ensure demo users, then run the web server and a worker."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--server", choices=("daphne", "uvicorn"), default="daphne")
        parser.add_argument("--no-seed", action="store_true", help="Do not seed demo data.")
        parser.add_argument("--no-worker", action="store_true", help="Run the web server only.")

    def handle(self, *args, **options) -> None:
        self.stdout.write("chorus: applying migrations…")
        call_command("migrate", interactive=False, verbosity=0)
        if not options["no_seed"]:
            call_command("seed_demo", if_empty=True, stdout=self.stdout)
        password, origin = admin_password(Path(settings.VAR_DIR))
        users = do_ensure_demo_users(password, enforce_password=origin == "CHORUS_ADMIN_PASSWORD")
        self.banner(options["host"], options["port"], password, origin, users)
        connections.close_all()
        supervisor = Supervisor(
            server_children(options["host"], options["port"], options["server"], not options["no_worker"]),
            out=self.stdout,
        )
        code = supervisor.run()
        if code:
            raise CommandError("a Chorus process stopped unexpectedly; everything was shut down", returncode=code)

    def banner(self, host: str, port: int, password: str, origin: str, users: list[DemoUser]) -> None:
        shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        url = f"http://{shown_host}:{port}"
        lines = [f"Chorus is starting on {url}/", f"  Log in at {url}/login/"]
        for user in users:
            secret = password if user.password_current else "(changed since; not shown)"
            lines.append(f"    {user.username:<10} {secret:<20} {user.role}")
        maya = Customer.objects.filter(external_id=LAUNCH_EXTERNAL_ID).values_list("pk", flat=True).first()
        if maya is not None:
            lines.append(f"  Launch-story customer: {url}{reverse('customers:profile', args=[maya])}")
        lines.append(f"  Password from {origin}" + ("" if origin == "CHORUS_ADMIN_PASSWORD" else " (set CHORUS_ADMIN_PASSWORD to choose one)"))
        lines.append("  Ctrl-C stops the web server and the worker.")
        rule = "─" * max(len(line) for line in lines)
        self.stdout.write(self.style.SUCCESS("\n".join([rule, *lines, rule])))
