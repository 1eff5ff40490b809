"""Email adapters against real peers on 127.0.0.1: an aiosmtpd server, and a local HTTP
server standing in for an ESP's API (Postmark, SendGrid) through django-anymail."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller
from django.core import signing

from channels_app import tracking, unsubscribe
from channels_app.delivery import deliver
from channels_app.ledger import QueueRequest, do_queue_message
from channels_app.models import ProviderConfig
from channels_app.providers import (
    PROVIDERS,
    Delivery,
    ProviderConfigValues,
    ProviderError,
    SendResult,
    forget_provider_configs,
)
from channels_app.providers.email import AnymailProvider, SmtpProvider
from customers.models import Customer

PUBLIC_ID = "5d0c8a52-3c1e-4a0e-9d4e-3f1b2a6c7d8e"
HTML = '<html><body><p>Hi Maya</p><a href="https://shop.example/sale?a=1&amp;b=2">Shop</a></body></html>'
CONTENT = {"subject": "Autumn sale", "html": HTML, "text": "Hi Maya, https://shop.example/sale"}


def free_port() -> int:
    # aiosmtpd cannot start on port 0 (STACK.md): pick a free port up front.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def delivery(category: str = "marketing", to: str = "maya@example.com", **content) -> Delivery:
    return Delivery(
        message_id=1, public_id=PUBLIC_ID, channel="email", category=category, to=to,
        content={**CONTENT, **content}, idempotency_key="k1",
    )


# --- An SMTP server -----------------------------------------------------------------------


class Inbox:
    """An aiosmtpd handler that keeps what it receives, or answers as a test tells it."""

    def __init__(self, rcpt_reply: str = "", data_reply: str = "", drop_in_data: bool = False, hang: bool = False,
                 refuse: str = ""):
        self.rcpt_reply, self.data_reply, self.refuse = rcpt_reply, data_reply, refuse
        self.peers: list = []
        self.drop_in_data, self.hang = drop_in_data, hang
        self.received: list[tuple[str, list[str], EmailMessage]] = []
        self.release = asyncio.Event()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if self.rcpt_reply or address == self.refuse:
            return self.rcpt_reply or "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        if self.drop_in_data:
            server.transport.close()
            return "250 OK"
        if self.hang:
            await self.release.wait()
        if self.data_reply:
            return self.data_reply
        self.peers.append(session.peer)
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 Message accepted"


@pytest.fixture
def smtp_server():
    servers = []

    def start(**behaviour) -> tuple[Inbox, int]:
        handler, port = Inbox(**behaviour), free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port)
        controller.start()
        servers.append((controller, handler))
        return handler, port

    yield start
    for controller, handler in servers:
        controller.loop.call_soon_threadsafe(handler.release.set)
        controller.stop()


def smtp(port: int, **options) -> SmtpProvider:
    config = ProviderConfigValues(
        name="smtp",
        options={"host": "127.0.0.1", "port": port, "from_email": "Acme <news@acme.example>",
                 "reply_to": "help@acme.example", **options},
        secrets={},
    )
    return SmtpProvider(config)


def test_registry_offers_both_email_adapters_for_email_only():
    assert PROVIDERS["smtp"] is SmtpProvider and PROVIDERS["anymail"] is AnymailProvider
    assert SmtpProvider.channels == AnymailProvider.channels == frozenset({"email"})
    assert [f.name for f in SmtpProvider.secret_fields] == ["username", "password"]
    assert [f.name for f in SmtpProvider.option_fields][:4] == ["host", "port", "use_tls", "use_ssl"]


def test_smtp_sends_multipart_alternative_with_one_click_unsubscribe(smtp_server, settings):
    settings.PUBLIC_URL = "https://chorus.acme.example"
    inbox, port = smtp_server()

    result = smtp(port).send(delivery())

    ((mail_from, rcpts, mail),) = inbox.received
    assert (mail_from, rcpts) == ("news@acme.example", ["maya@example.com"])
    assert result.provider_message_id == f"<{PUBLIC_ID}@acme.example>"
    assert mail["Message-ID"] == f"<{PUBLIC_ID}@acme.example>"
    assert (mail["Subject"], mail["From"], mail["To"], mail["Reply-To"]) == (
        "Autumn sale", "Acme <news@acme.example>", "maya@example.com", "help@acme.example"
    )
    token = unsubscribe.message_token(PUBLIC_ID)
    # Long headers are folded before the URL; unfolding leaves the fold's space.
    assert mail["List-Unsubscribe"].strip() == f"<https://chorus.acme.example/u/{token}/>"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail.get_content_type() == "multipart/alternative"
    text, html = (part.get_content() for part in mail.iter_parts())
    assert text.strip() == "Hi Maya, https://shop.example/sale"
    assert "https://shop.example/sale" not in html  # the link is tracked
    assert f'href="{tracking.click_url("https://shop.example/sale?a=1&b=2", PUBLIC_ID)}"' in html
    assert f'<img src="{tracking.open_url(PUBLIC_ID)}" width="1" height="1"' in html
    assert html.rstrip().endswith('style="display:none"></body></html>')


def test_smtp_adds_a_mailto_unsubscribe_when_a_mailbox_is_configured(smtp_server, settings):
    settings.PUBLIC_URL = "https://chorus.acme.example"
    inbox, port = smtp_server()

    smtp(port, unsubscribe_mailbox="unsubscribe@acme.example").send(delivery())

    mail = inbox.received[0][2]
    assert mail["List-Unsubscribe"].strip() == (
        f"<https://chorus.acme.example/u/{unsubscribe.message_token(PUBLIC_ID)}/>, "
        "<mailto:unsubscribe@acme.example?subject=unsubscribe>"
    )


def test_transactional_email_has_no_unsubscribe_headers(smtp_server):
    inbox, port = smtp_server()

    smtp(port).send(delivery(category="transactional"))

    mail = inbox.received[0][2]
    assert (mail["List-Unsubscribe"], mail["List-Unsubscribe-Post"]) == (None, None)
    assert mail["Message-ID"] == f"<{PUBLIC_ID}@acme.example>"


def test_tracking_can_be_switched_off_and_text_is_derived_from_html(smtp_server):
    inbox, port = smtp_server()

    smtp(port, track_opens="false", track_clicks=False).send(delivery(text=None))

    mail = inbox.received[0][2]
    text, html = (part.get_content() for part in mail.iter_parts())
    assert html.strip() == HTML
    assert text.strip() == "Hi MayaShop"


def test_content_headers_are_sent(smtp_server):
    inbox, port = smtp_server()

    smtp(port).send(delivery(headers={"X-Campaign": "autumn"}))

    assert inbox.received[0][2]["X-Campaign"] == "autumn"


def test_smtp_550_on_recipient_is_permanent(smtp_server):
    inbox, port = smtp_server(rcpt_reply="550 5.1.1 No such user")

    with pytest.raises(ProviderError) as caught:
        smtp(port).send(delivery())

    assert (caught.value.permanent, caught.value.ambiguous) == (True, False)
    assert caught.value.reason == "SMTP 550 5.1.1 No such user"
    assert inbox.received == []


def test_smtp_451_on_data_is_transient(smtp_server):
    inbox, port = smtp_server(data_reply="451 4.3.0 Try again later")

    with pytest.raises(ProviderError) as caught:
        smtp(port).send(delivery())

    assert (caught.value.permanent, caught.value.ambiguous) == (False, False)
    assert caught.value.reason == "SMTP 451 4.3.0 Try again later"


def test_connection_refused_before_sending_is_transient_not_ambiguous():
    with pytest.raises(ProviderError) as caught:
        smtp(free_port()).send(delivery())

    assert (caught.value.permanent, caught.value.ambiguous) == (False, False)
    assert caught.value.reason.startswith("SMTP connection failed: ConnectionRefusedError")


def test_server_closing_mid_data_is_ambiguous(smtp_server):
    inbox, port = smtp_server(drop_in_data=True)

    with pytest.raises(ProviderError) as caught:
        smtp(port).send(delivery())

    assert (caught.value.permanent, caught.value.ambiguous) == (False, True)
    assert inbox.received == []


def test_timeout_after_data_is_ambiguous(smtp_server):
    inbox, port = smtp_server(hang=True)
    provider = smtp(port)
    provider.timeout = 0.3  # the server never answers DATA

    with pytest.raises(ProviderError) as caught:
        provider.send(delivery())

    assert (caught.value.permanent, caught.value.ambiguous) == (False, True)
    assert "timed out" in caught.value.reason


def test_a_batch_shares_one_connection_and_keeps_each_outcome(smtp_server):
    inbox, port = smtp_server(refuse="gone@example.com")
    batch = [delivery(to="a@example.com"), delivery(to="gone@example.com"), delivery(to="b@example.com")]

    first, refused, last = smtp(port).send_batch(batch)

    assert first == last == SendResult(provider_message_id=f"<{PUBLIC_ID}@acme.example>")
    assert (refused.permanent, refused.reason) == (True, "SMTP 550 5.1.1 No such user")
    assert [rcpts for _, rcpts, _ in inbox.received] == [["a@example.com"], ["b@example.com"]]
    assert len(set(inbox.peers)) == 1


def test_a_batch_to_an_unreachable_server_fails_each_delivery_transiently():
    outcomes = smtp(free_port()).send_batch([delivery(to="a@example.com"), delivery(to="b@example.com")])

    assert [(o.permanent, o.ambiguous) for o in outcomes] == [(False, False), (False, False)]


def test_smtp_uses_the_configured_credentials_never_global_settings(smtp_server, settings):
    settings.EMAIL_HOST, settings.EMAIL_PORT = "mail.wrong.example", 2525
    settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD = "global", "global"
    config = ProviderConfigValues(name="smtp", options={"host": "127.0.0.1", "port": 1, "from_email": "a@b.example"},
                                  secrets={"username": "maya", "password": "s3cret"})

    backend = SmtpProvider(config).backend()

    assert (backend.host, backend.port, backend.username, backend.password) == ("127.0.0.1", 1, "maya", "s3cret")
    assert backend.timeout == SmtpProvider.timeout == 10.0


# --- An ESP's API through anymail ------------------------------------------------------------


class EspStub(BaseHTTPRequestHandler):
    """Answers each POST with the next (status, body, headers) in ``replies``; keeps requests."""

    replies: list[tuple[int, dict | None, dict]] = []
    requests: list[tuple[str, dict, dict]] = []
    hang = threading.Event()

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append((self.path, dict(self.headers), body))
        status, payload, headers = type(self).replies.pop(0)
        if status == 0:  # no answer until the test ends: the client times out
            type(self).hang.wait(5)
            return
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        if payload is not None:
            self.wfile.write(json.dumps(payload).encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def esp():
    EspStub.replies, EspStub.requests = [], []
    EspStub.hang.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), EspStub)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", EspStub
    EspStub.hang.set()
    server.shutdown()
    server.server_close()


def postmark(api_url: str, **options) -> AnymailProvider:
    return AnymailProvider(ProviderConfigValues(
        name="anymail",
        options={"esp": "postmark", "api_url": api_url, "from_email": "news@acme.example", **options},
        secrets={"api_key": "pm-token"},
    ))


POSTMARK_OK = {"To": "maya@example.com", "SubmittedAt": "2026-12-03T10:00:00Z",
               "MessageID": "b7bc2f4a-e38e-4336-af7d-e6c392c2f817", "ErrorCode": 0, "Message": "OK"}


def test_postmark_send_returns_the_esp_message_id(esp, settings):
    settings.PUBLIC_URL = "https://chorus.acme.example"
    url, stub = esp
    stub.replies = [(200, POSTMARK_OK, {})]

    result = postmark(url).send(delivery())

    assert result.provider_message_id == "b7bc2f4a-e38e-4336-af7d-e6c392c2f817"
    ((path, headers, body),) = stub.requests
    assert path == "/email"
    assert headers["X-Postmark-Server-Token"] == "pm-token"
    assert (body["From"], body["To"], body["Subject"]) == ("news@acme.example", "maya@example.com", "Autumn sale")
    assert body["HtmlBody"] == HTML  # an ESP tracks through its own webhooks: no rewriting by default
    sent_headers = {h["Name"]: h["Value"] for h in body["Headers"]}
    assert sent_headers["List-Unsubscribe"] == f"<https://chorus.acme.example/u/{unsubscribe.message_token(PUBLIC_ID)}/>"
    assert sent_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_anymail_can_use_our_tracking_too(esp):
    url, stub = esp
    stub.replies = [(200, POSTMARK_OK, {})]

    postmark(url, track_clicks=True, track_opens=True).send(delivery())

    html = stub.requests[0][2]["HtmlBody"]
    assert f'href="{tracking.click_url("https://shop.example/sale?a=1&b=2", PUBLIC_ID)}"' in html
    assert tracking.open_url(PUBLIC_ID) in html


# anymail 15 keeps the SendGrid backend but no longer tests it against SendGrid (it warns).
@pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailNotSupportedWarning")
def test_sendgrid_request_carries_the_key_as_bearer(esp):
    url, stub = esp
    stub.replies = [(202, None, {})]
    provider = AnymailProvider(ProviderConfigValues(
        name="anymail", options={"esp": "sendgrid", "api_url": url + "v3/", "from_email": "news@acme.example"},
        secrets={"api_key": "SG.key"},
    ))

    result = provider.send(delivery(category="transactional"))

    ((path, headers, body),) = stub.requests
    assert (path, headers["Authorization"]) == ("/v3/mail/send", "Bearer SG.key")
    assert body["personalizations"][0]["to"] == [{"email": "maya@example.com"}]
    assert "List-Unsubscribe" not in (body.get("headers") or {})
    # SendGrid answers 202 with no id: anymail generates one and sends it along.
    assert result.provider_message_id == body["personalizations"][0]["custom_args"]["anymail_id"]


@pytest.mark.parametrize(
    ("status", "headers", "permanent", "retry_after"),
    [
        (422, {}, True, None),
        (400, {}, True, None),
        (500, {}, False, None),
        (503, {"Retry-After": "30"}, False, 30.0),
        (429, {"Retry-After": "7"}, False, 7.0),
    ],
)
def test_esp_http_errors_map_to_permanent_or_transient(esp, status, headers, permanent, retry_after):
    url, stub = esp
    stub.replies = [(status, {"ErrorCode": 300, "Message": "Invalid email request"}, headers)]

    with pytest.raises(ProviderError) as caught:
        postmark(url).send(delivery())

    error = caught.value
    assert (error.permanent, error.ambiguous, error.retry_after) == (permanent, False, retry_after)
    assert error.reason.startswith("anymail: ")


def test_esp_read_timeout_is_ambiguous(esp):
    url, stub = esp
    stub.replies = [(0, None, {})]
    provider = postmark(url)
    provider.timeout = 0.3

    with pytest.raises(ProviderError) as caught:
        provider.send(delivery())

    assert (caught.value.permanent, caught.value.ambiguous) == (False, True)
    assert len(stub.requests) == 1


def test_esp_unreachable_is_transient_not_ambiguous():
    with pytest.raises(ProviderError) as caught:
        postmark(f"http://127.0.0.1:{free_port()}/").send(delivery())

    assert (caught.value.permanent, caught.value.ambiguous) == (False, False)


def test_unknown_esp_is_permanent():
    provider = AnymailProvider(ProviderConfigValues(name="anymail", options={"esp": "pigeon"}))

    with pytest.raises(ProviderError) as caught:
        provider.send(delivery())

    assert (caught.value.permanent, caught.value.reason) == (True, "anymail: unknown esp 'pigeon'")


def test_message_token_is_signed_and_names_only_the_message():
    token = unsubscribe.message_token(PUBLIC_ID)
    assert signing.Signer(salt=unsubscribe.SALT).unsign_object(token) == {"m": PUBLIC_ID}


# --- The whole loop: configured account → delivery → the inbox → a tracked click ----------------


@pytest.mark.django_db
def test_configured_smtp_account_delivers_and_its_links_come_back_tracked(smtp_server, settings, client, monkeypatch):
    settings.PUBLIC_URL = "https://chorus.acme.example"
    monkeypatch.delenv("CHORUS_SECRET_KEYS", raising=False)
    inbox, port = smtp_server()
    row = ProviderConfig(channel="email", provider="smtp", label="Acme SMTP", is_primary=True,
                         options={"host": "127.0.0.1", "port": port, "from_email": "news@acme.example"})
    row.set_secrets({})
    row.save()
    forget_provider_configs()
    customer = Customer.objects.create(external_id="u1", email="maya@example.com")
    message = do_queue_message(QueueRequest(
        customer_id=customer.pk, channel="email", category="marketing", idempotency_key="loop", content=CONTENT,
    )).message

    assert deliver(message.pk) == "sent"

    message.refresh_from_db()
    assert (message.provider, message.provider_message_id) == ("smtp", f"<{message.public_id}@acme.example>")
    assert message.content == CONTENT  # the ledger keeps the content as rendered, untracked
    mail = inbox.received[0][2]
    assert mail["List-Unsubscribe"].strip() == f"<https://chorus.acme.example/u/{unsubscribe.message_token(message.public_id)}/>"
    html = mail.get_body(("html",)).get_content()
    tracked = tracking.click_url("https://shop.example/sale?a=1&b=2", str(message.public_id))
    assert f'href="{tracked}"' in html
    response = client.get(tracked.removeprefix("https://chorus.acme.example"))
    assert (response.status_code, response["Location"]) == (302, "https://shop.example/sale?a=1&b=2")
    message.refresh_from_db()
    assert message.status == "clicked"
    forget_provider_configs()
