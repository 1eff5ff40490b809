"""Production's static pipeline: collectstatic with the compressed manifest storage succeeds
(a vendored file pointing at a missing source map would fail every deploy)."""

from io import StringIO

from django.core.management import call_command
from django.test import override_settings


def test_collectstatic_succeeds_with_the_production_manifest_storage(tmp_path):
    storages = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "servestatic.storage.CompressedManifestStaticFilesStorage"},
    }
    with override_settings(STATIC_ROOT=tmp_path, STORAGES=storages):
        call_command("collectstatic", "--noinput", stdout=StringIO())
    manifest = (tmp_path / "staticfiles.json").read_text()
    for name in ("vendor/htmx/htmx.min.js", "vendor/chartjs/chart.umd.min.js", "css/chorus.css", "js/chorus.js"):
        assert f'"{name}"' in manifest
