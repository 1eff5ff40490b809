"""Provider accounts: secrets encrypted at rest, write-only in the admin (Admin role only),
picked in primary-then-failover order, cached until an admin saves, and rotated by a command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import IntegrityError, connection
from django.urls import reverse

import channels_app.providers as providers
from channels_app.crypto import decrypt_secrets, encrypt_secrets, multi_fernet
from channels_app.delivery import deliver
from channels_app.ledger import QueueRequest, do_queue_message
from channels_app.models import Message, MessageTransition, OutboxMessage, ProviderConfig
from channels_app.providers import (
    PROVIDERS,
    Delivery,
    OutboxProvider,
    Provider,
    ProviderError,
    ProviderField,
    SendResult,
    forget_provider_configs,
    get_provider,
    get_providers,
)
from customers.enums import Channel
from customers.models import ContactPoint, Customer
from orchestrator.governor.models import PolicyChange
from orchestrator.roles import Role

API_KEY = "sk_live_Zq8wTopSecretValue42"
WEBHOOK_SECRET = "whsec_AnotherVerySecret99"


class FakeMailProvider(Provider):
    """A registered adapter with option and secret fields, for the form (it never touches a network)."""

    name = "fakemail"
    channels = frozenset({"email"})
    option_fields = (
        ProviderField("from_address", "From address", kind="email", required=True),
        ProviderField("api_base_url", "API base URL", kind="url"),
    )
    secret_fields = (
        ProviderField("api_key", "API key", required=True),
        ProviderField("webhook_secret", "Webhook signing secret"),
    )

    def send(self, delivery: Delivery) -> SendResult:
        if "reject" in delivery.to:
            raise ProviderError("550 mailbox unavailable", permanent=True)
        return SendResult(provider_message_id=f"fake-{delivery.to}")


@pytest.fixture(autouse=True)
def _registered_fake(monkeypatch):
    monkeypatch.setitem(PROVIDERS, FakeMailProvider.name, FakeMailProvider)
    monkeypatch.delenv("CHORUS_SECRET_KEYS", raising=False)
    forget_provider_configs()
    yield
    forget_provider_configs()


@pytest.fixture
def admin_client(client, make_user):
    client.force_login(make_user(Role.ADMIN, username="ada-admin"))
    return client


def url(view: str, *args) -> str:
    return reverse(f"admin:channels_app_providerconfig_{view}", args=args)


def config(channel="email", provider="fakemail", label="Fake", *, secrets=None, **fields) -> ProviderConfig:
    row = ProviderConfig(channel=channel, provider=provider, label=label, **fields)
    row.set_secrets(secrets or {})
    row.save()
    return row


def add_form(**changes) -> dict:
    data = {
        "channel": "email", "provider": "fakemail", "label": "Fake, transactional", "enabled": "on",
        "is_primary": "on", "failover_order": "1", "fakemail__from_address": "hello@example.com",
        "fakemail__api_base_url": "http://127.0.0.1:9/", "fakemail__api_key": API_KEY,
        "fakemail__webhook_secret": WEBHOOK_SECRET,
    }
    return {k: v for k, v in {**data, **changes}.items() if v is not None}


def change_form(row: ProviderConfig, **changes) -> dict:
    data = {
        "channel": row.channel, "label": row.label, "failover_order": str(row.failover_order),
        "fakemail__from_address": row.options.get("from_address", ""),
        "fakemail__api_base_url": row.options.get("api_base_url", ""),
        "fakemail__api_key": "", "fakemail__webhook_secret": "",
        **({"enabled": "on"} if row.enabled else {}), **({"is_primary": "on"} if row.is_primary else {}),
    }
    return {k: v for k, v in {**data, **changes}.items() if v is not None}


def raw_column(row: ProviderConfig) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT secrets_encrypted FROM {ProviderConfig._meta.db_table} WHERE id = %s", [row.pk])
        return cursor.fetchone()[0]


# --- Encryption at rest -------------------------------------------------------------------------


def test_secrets_are_stored_encrypted_and_read_back_decrypted(db):
    row = config(secrets={"api_key": API_KEY}, options={"from_address": "hello@example.com"})

    stored = raw_column(row)
    assert API_KEY not in stored and API_KEY[:4] not in stored
    assert decrypt_secrets(stored) == {"api_key": API_KEY}
    fresh = ProviderConfig.objects.get(pk=row.pk)
    assert fresh.values() == providers.ProviderConfigValues(
        name="fakemail", options={"from_address": "hello@example.com"}, secrets={"api_key": API_KEY}, config_id=row.pk
    )


def test_no_secrets_store_nothing(db):
    assert encrypt_secrets({}) == ""
    assert decrypt_secrets("") == {}


def test_a_malformed_key_names_the_variable(monkeypatch):
    monkeypatch.setenv("CHORUS_SECRET_KEYS", f"{Fernet.generate_key().decode()},not-a-key")
    with pytest.raises(ImproperlyConfigured, match=r"^CHORUS_SECRET_KEYS: key 2 is not a Fernet key"):
        multi_fernet()


def test_production_requires_the_keys(settings):
    settings.PRODUCTION = True
    with pytest.raises(ImproperlyConfigured, match=r"^CHORUS_SECRET_KEYS: required when CHORUS_PRODUCTION is set"):
        encrypt_secrets({"api_key": API_KEY})


def test_a_token_no_key_decrypts_names_the_variable(monkeypatch):
    monkeypatch.setenv("CHORUS_SECRET_KEYS", Fernet.generate_key().decode())
    token = encrypt_secrets({"api_key": API_KEY})
    monkeypatch.setenv("CHORUS_SECRET_KEYS", Fernet.generate_key().decode())
    with pytest.raises(ImproperlyConfigured, match=r"^CHORUS_SECRET_KEYS: no configured key decrypts"):
        decrypt_secrets(token)


# --- Rotation -----------------------------------------------------------------------------------


def test_rotation_re_encrypts_under_the_newest_key_so_the_old_one_can_go(db, monkeypatch, capsys):
    key_a, key_b = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setenv("CHORUS_SECRET_KEYS", key_a)
    first = config(label="One", secrets={"api_key": API_KEY})
    second = config(channel="email", label="Two", secrets={"api_key": "second-key", "webhook_secret": WEBHOOK_SECRET})
    config(channel="sms", provider="outbox", label="No secrets")

    monkeypatch.setenv("CHORUS_SECRET_KEYS", f"{key_b},{key_a}")
    call_command("rotate_provider_keys")
    assert capsys.readouterr().out == "Re-encrypted the secrets of 2 provider configuration(s) under the newest key.\n"
    call_command("rotate_provider_keys")  # idempotent
    assert capsys.readouterr().out == "Re-encrypted the secrets of 2 provider configuration(s) under the newest key.\n"

    monkeypatch.setenv("CHORUS_SECRET_KEYS", key_b)
    assert ProviderConfig.objects.get(pk=first.pk).secrets() == {"api_key": API_KEY}
    assert ProviderConfig.objects.get(pk=second.pk).secrets() == {"api_key": "second-key", "webhook_secret": WEBHOOK_SECRET}



def test_rotation_with_a_malformed_key_changes_nothing(db, monkeypatch):
    row = config(secrets={"api_key": API_KEY})
    stored = raw_column(row)
    monkeypatch.setenv("CHORUS_SECRET_KEYS", "not-a-key")
    with pytest.raises(ImproperlyConfigured, match=r"^CHORUS_SECRET_KEYS: key 1 is not a Fernet key"):
        call_command("rotate_provider_keys")
    assert raw_column(row) == stored


def test_rotation_is_all_or_nothing(db, monkeypatch):
    key_a, key_b, key_lost = (Fernet.generate_key().decode() for _ in range(3))
    monkeypatch.setenv("CHORUS_SECRET_KEYS", key_a)
    readable = config(label="Readable", secrets={"api_key": API_KEY})
    monkeypatch.setenv("CHORUS_SECRET_KEYS", key_lost)
    unreadable = config(label="Under a lost key", secrets={"api_key": "other"})
    stored = (raw_column(readable), raw_column(unreadable))

    monkeypatch.setenv("CHORUS_SECRET_KEYS", f"{key_b},{key_a}")
    with pytest.raises(ImproperlyConfigured, match=r"^CHORUS_SECRET_KEYS: no configured key decrypts"):
        call_command("rotate_provider_keys")
    assert (raw_column(readable), raw_column(unreadable)) == stored

# --- The registry and the order providers are tried in ------------------------------------------


def test_every_registered_adapter_sends_on_known_channels():
    for name, adapter in PROVIDERS.items():
        assert adapter.name == name
        assert adapter.channels, name
        assert adapter.channels <= set(Channel.values), name


def test_with_no_configuration_the_settings_provider_is_used(db):
    assert [type(p) for p in get_providers("sms")] == [OutboxProvider]
    assert type(get_provider("email")) is OutboxProvider


def test_enabled_configurations_come_primary_first_then_by_failover_order(db):
    third = config(label="Third", failover_order=5, secrets={"api_key": "k3"})
    config(label="Disabled", failover_order=1, enabled=False)
    primary = config(label="Primary", is_primary=True, failover_order=9, secrets={"api_key": "k1"})
    second = config(label="Second", failover_order=2)

    chosen = get_providers("email")

    assert [p.config.config_id for p in chosen] == [primary.pk, second.pk, third.pk]
    assert [p.config.secrets for p in chosen] == [{"api_key": "k1"}, {}, {"api_key": "k3"}]
    assert get_provider("email").config.config_id == primary.pk
    assert [type(p) for p in get_providers("sms")] == [OutboxProvider]


def test_an_unregistered_provider_is_skipped_but_never_replaced_by_the_outbox(db):
    config(label="Removed adapter", provider="retired", is_primary=True)
    backup = config(label="Backup", failover_order=2)
    assert [p.config.config_id for p in get_providers("email")] == [backup.pk]

    backup.delete()
    forget_provider_configs()
    with pytest.raises(ImproperlyConfigured, match=r"^Email: the enabled provider configurations name unregistered providers \(retired\)$"):
        get_providers("email")

def test_one_primary_per_channel_at_most(db):
    config(label="First", is_primary=True)
    config(channel="sms", provider="outbox", label="Other channel", is_primary=True)
    config(label="Not primary")
    with pytest.raises(IntegrityError):
        config(label="Second primary", is_primary=True)


def test_the_configurations_are_cached_until_an_admin_saves(admin_client, django_capture_on_commit_callbacks, monkeypatch):
    monkeypatch.setattr(providers._cached, "clock", lambda: 1000.0)  # time stands still: only forgetting refreshes
    assert [type(p) for p in get_providers("email")] == [OutboxProvider]
    around = config(label="Written around the admin", is_primary=True)
    assert [type(p) for p in get_providers("email")] == [OutboxProvider]  # cached: no read, no decryption

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url("add"), add_form(is_primary=None, failover_order="3"))

    assert response.status_code == 302
    added = ProviderConfig.objects.get(label="Fake, transactional")
    assert [p.config.config_id for p in get_providers("email")] == [around.pk, added.pk]
    assert get_providers("email")[1].config.secrets == {"api_key": API_KEY, "webhook_secret": WEBHOOK_SECRET}


# --- The admin: who may see it, write-only secrets, the audit trail -------------------------------


@pytest.mark.parametrize("role", [Role.MARKETER, Role.MESSAGING])
def test_other_roles_are_sent_to_the_admin_login(client, make_user, role):
    row = config(secrets={"api_key": API_KEY})
    client.force_login(make_user(role))
    for page in (url("changelist"), url("change", row.pk), url("add"), url("send_test", row.pk)):
        response = client.get(page)
        assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login")), page
    response = client.post(url("change", row.pk), change_form(row, label="Hijacked", fakemail__api_key="mine"))
    assert response.status_code == 302
    assert ProviderConfig.objects.get(pk=row.pk).label == "Fake"
    assert ProviderConfig.objects.get(pk=row.pk).secrets() == {"api_key": API_KEY}
    assert PolicyChange.objects.count() == 0


def test_staff_without_the_admin_role_get_403(client, make_user):
    row = config(secrets={"api_key": API_KEY})
    staff = make_user(username="staffer")
    staff.is_staff = True
    staff.save()
    client.force_login(staff)
    assert client.get(url("changelist")).status_code == 403
    assert client.get(url("change", row.pk)).status_code == 403
    assert client.post(url("send_test", row.pk), {"to": "x@example.com"}).status_code == 403
    assert Message.objects.count() == 0


def test_a_saved_secret_never_comes_back_in_the_html(admin_client):
    response = admin_client.post(url("add"), add_form())
    assert response.status_code == 302
    row = ProviderConfig.objects.get()
    assert row.secrets() == {"api_key": API_KEY, "webhook_secret": WEBHOOK_SECRET}
    assert row.options == {"from_address": "hello@example.com", "api_base_url": "http://127.0.0.1:9/"}

    for page in (url("change", row.pk), url("changelist"), url("history", row.pk), url("send_test", row.pk)):
        html = admin_client.get(page).content.decode()
        for secret in (API_KEY, WEBHOOK_SECRET):
            assert secret not in html and secret[:4] not in html, page
    change_page = admin_client.get(url("change", row.pk)).content.decode()
    assert 'type="password" name="fakemail__api_key"' in change_page
    assert "A value is stored: leave empty to keep it." in change_page
    assert "api_key, webhook_secret" in change_page  # which secrets are stored, by name only


def test_an_invalid_form_does_not_echo_the_secret_it_was_given(admin_client):
    response = admin_client.post(url("add"), add_form(fakemail__from_address="not an address"))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Enter a valid email address." in html
    assert API_KEY not in html and API_KEY[:4] not in html
    assert ProviderConfig.objects.count() == 0


def test_an_empty_secret_input_keeps_the_stored_value_and_clear_removes_it(admin_client):
    admin_client.post(url("add"), add_form())
    row = ProviderConfig.objects.get()

    response = admin_client.post(url("change", row.pk), change_form(row, label="Renamed"))
    assert response.status_code == 302
    row.refresh_from_db()
    assert (row.label, row.secrets()) == ("Renamed", {"api_key": API_KEY, "webhook_secret": WEBHOOK_SECRET})

    admin_client.post(url("change", row.pk), change_form(row, fakemail__api_key="sk_new", fakemail__webhook_secret__clear="on"))
    row.refresh_from_db()
    assert row.secrets() == {"api_key": "sk_new"}


def test_a_required_secret_must_be_given_once(admin_client):
    response = admin_client.post(url("add"), add_form(fakemail__api_key=""))
    assert response.status_code == 200
    assert "Required by this provider." in response.content.decode()
    assert ProviderConfig.objects.count() == 0


def test_a_provider_is_offered_only_for_its_channels(admin_client):
    response = admin_client.post(url("add"), add_form(channel="sms"))
    assert response.status_code == 200
    assert "fakemail does not send SMS." in response.content.decode()
    assert ProviderConfig.objects.count() == 0


def test_a_second_primary_is_a_form_error(admin_client):
    config(label="Existing primary", is_primary=True)
    response = admin_client.post(url("add"), add_form())
    assert response.status_code == 200
    assert "Constraint “provider_config_one_primary_per_channel” is violated." in response.content.decode()
    assert ProviderConfig.objects.count() == 1


def test_the_audit_trail_records_which_secrets_changed_never_their_values(admin_client):
    admin_client.post(url("add"), add_form())
    row = ProviderConfig.objects.get()
    admin_client.post(url("change", row.pk), change_form(row, fakemail__api_key="sk_rotated_value"))
    admin_client.post(url("change", row.pk), change_form(row, label="Renamed"))
    admin_client.post(url("delete", row.pk), {"post": "yes"})

    created, changed, renamed, deleted = PolicyChange.objects.order_by("at", "pk")
    assert (created.action, changed.action, renamed.action, deleted.action) == ("created", "changed", "changed", "deleted")
    assert created.username == "ada-admin" and created.model_label == "channels_app.providerconfig"
    assert created.after["secrets_changed"] == ["api_key", "webhook_secret"]
    assert changed.before["secret_keys"] == changed.after["secret_keys"] == ["api_key", "webhook_secret"]
    assert changed.after["secrets_changed"] == ["api_key"]
    assert (renamed.before["label"], renamed.after["label"], "secrets_changed" in renamed.after) == (
        "Fake, transactional", "Renamed", False
    )
    assert deleted.before["label"] == "Renamed" and deleted.after is None
    assert ProviderConfig.objects.count() == 0
    trail = str([(c.before, c.after) for c in PolicyChange.objects.all()])
    for secret in (API_KEY, WEBHOOK_SECRET, "sk_rotated_value", row.secrets_encrypted):
        assert secret not in trail


# --- The test message ------------------------------------------------------------------------------


def test_a_test_message_goes_through_the_outbox_and_into_the_ledger(admin_client):
    row = config(channel="sms", provider="outbox", label="Dev outbox")

    page = admin_client.get(url("send_test", row.pk))
    assert page.status_code == 200
    response = admin_client.post(url("send_test", row.pk), {"to": "+14155550100"}, follow=True)

    message = Message.objects.get()
    assert (message.channel, message.category, message.template_name, message.status, message.provider) == (
        "sms", "transactional", "admin test message", "sent", "outbox"
    )
    recorded = OutboxMessage.objects.get()
    assert (recorded.to, recorded.message_id) == ("+14155550100", message.pk)
    assert list(MessageTransition.objects.filter(message=message).values_list("to_status", flat=True).order_by("pk")) == [
        "queued", "sending", "sent"
    ]
    assert f"Test message {message.public_id}: sent; outbox answered: outbox-{recorded.pk}" in response.content.decode()


def test_a_refused_test_message_shows_the_error_and_is_failed_in_the_ledger(admin_client):
    row = config(label="Fake", secrets={"api_key": API_KEY})
    response = admin_client.post(url("send_test", row.pk), {"to": "reject@example.com"}, follow=True)

    message = Message.objects.get()
    assert (message.status, message.error, message.provider) == ("failed", "550 mailbox unavailable", "fakemail")
    assert "fakemail answered: 550 mailbox unavailable" in response.content.decode()


def test_a_test_message_needs_a_recipient(admin_client):
    row = config(channel="sms", provider="outbox", label="Dev outbox")
    response = admin_client.post(url("send_test", row.pk), {"to": ""})
    assert response.status_code == 422
    assert Message.objects.count() == 0


def test_a_push_test_message_goes_to_the_customer_owning_the_subscription(admin_client):
    owner = Customer.objects.create(external_id="grace")
    ContactPoint.objects.create(customer=owner, channel="push", platform="web", address="https://push.example/sub-9",
                                keys={"p256dh": "k", "auth": "a"})
    row = config(channel="push", provider="outbox", label="Dev outbox")

    admin_client.post(url("send_test", row.pk), {"to": "https://push.example/sub-9"})

    assert list(Message.objects.values_list("customer__external_id", "channel", "status")) == [("grace", "push", "sent")]


def test_the_test_message_form_says_what_this_channel_takes(admin_client):
    row = config(channel="sms", provider="outbox", label="Dev outbox")
    html = admin_client.get(url("send_test", row.pk)).content.decode()
    assert 'placeholder="+14155550100"' in html
    assert "A phone number in E.164 form: + and the country code, no spaces." in html


def test_help_text_shows_angle_brackets_and_flags_are_a_default_yes_no_choice(admin_client):
    row = config(channel="email", provider="smtp", label="SMTP", options={"host": "mail.example", "port": 587})
    html = admin_client.get(url("change", row.pk)).content.decode()
    assert "Sender, e.g. &quot;Acme &lt;news@acme.example&gt;&quot;." in html
    assert '<option value="" selected>Default</option>' in html  # track_opens, never set

    form = {"channel": "email", "label": "SMTP", "enabled": "on", "failover_order": "1", "smtp__host": "mail.example",
            "smtp__port": "587", "smtp__use_tls": "true", "smtp__track_opens": "false", "smtp__from_email": "a@b.example"}
    assert admin_client.post(url("change", row.pk), form).status_code == 302
    row.refresh_from_db()
    assert row.options == {"host": "mail.example", "port": 587, "use_tls": "true", "track_opens": "false",
                           "from_email": "a@b.example"}
    html = admin_client.get(url("change", row.pk)).content.decode()
    assert '<option value="true" selected>Yes</option>' in html and '<option value="false" selected>No</option>' in html


def test_the_add_page_shows_only_the_chosen_providers_fields_and_nothing_to_clear(admin_client):
    html = admin_client.get(url("add")).content.decode()
    assert 'class="module aligned provider-fields provider-twilio"' in html
    assert 'id="provider-channels"' in html and "channels_app/provider_admin.js" in html
    assert "__clear" not in html and "Secrets stored" not in html


def test_delivery_sends_through_the_configured_primary(db):
    customer = Customer.objects.create(external_id="u-1", email="ann@example.com")
    primary = config(label="Primary", is_primary=True, secrets={"api_key": API_KEY})
    message = do_queue_message(QueueRequest(
        customer_id=customer.pk, channel="email", category="transactional", idempotency_key="receipt-1",
        content={"subject": "Your receipt", "html": "<p>Thanks</p>"},
    )).message

    assert deliver(message.pk) == "sent"
    message.refresh_from_db()
    assert (message.provider, message.provider_message_id) == ("fakemail", "fake-ann@example.com")
    assert get_provider("email").config.config_id == primary.pk


# --- Start-up in production ---------------------------------------------------------------

PRODUCTION_ENV = {
    "CHORUS_PRODUCTION": "1", "SECRET_KEY": "x" * 50, "SUPPRESSION_HASH_KEY": "k" * 40,
    "ALLOWED_HOSTS": "chorus.example.com", "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/chorus",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
}


def _start_settings(**env: str) -> subprocess.CompletedProcess:
    """Import the settings as a production process would, in a fresh interpreter."""
    base = {k: v for k, v in os.environ.items() if k not in {"CHORUS_SECRET_KEYS", "DEBUG"}}
    return subprocess.run(
        [sys.executable, "-c", "import orchestrator.settings as s; print(len(s.CHORUS_SECRET_KEYS))"],
        env={**base, **PRODUCTION_ENV, **env}, cwd=Path(__file__).resolve().parent.parent,
        capture_output=True, text=True, timeout=60,
    )


def test_production_does_not_start_without_the_keys():
    result = _start_settings()
    assert result.returncode != 0
    assert "CHORUS_SECRET_KEYS: this environment variable is required but is not set" in result.stderr


def test_production_does_not_start_with_a_malformed_key_and_never_shows_it():
    result = _start_settings(CHORUS_SECRET_KEYS=f"{Fernet.generate_key().decode()},hunter2-not-a-key")
    assert result.returncode != 0
    assert "CHORUS_SECRET_KEYS: key 2 is not a Fernet key" in result.stderr
    assert "hunter2" not in result.stderr


def test_production_starts_with_valid_keys():
    keys = f"{Fernet.generate_key().decode()},{Fernet.generate_key().decode()}"
    result = _start_settings(CHORUS_SECRET_KEYS=keys)
    assert (result.returncode, result.stdout) == (0, "2\n")
