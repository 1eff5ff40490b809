"""WSGI entry point: the HTTP tier in production (gunicorn), see docs/deploy.md.

Static files are served by wrapping the app with servestatic's WSGI server, from
STATIC_ROOT (run collectstatic first), rather than by its async-only middleware.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
os.environ["CHORUS_SERVER_INTERFACE"] = "wsgi"

from django.conf import settings  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from servestatic import ServeStatic  # noqa: E402

application = ServeStatic(
    get_wsgi_application(), root=settings.STATIC_ROOT, prefix=settings.STATIC_URL, max_age=3600
)
