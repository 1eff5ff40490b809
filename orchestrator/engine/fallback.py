"""A send node's fallback after its message failed for good, asynchronously.

Delivery is asynchronous: the engine queues a message and moves the enrollment on; the
delivery worker sends it later. When that send fails permanently (a push subscription
answering 404/410, an invalid number, retries used up), the send node's next channel is
tried here, for that enrollment, without moving the enrollment back.

Called by the message ledger (settings.CHORUS_MESSAGE_LISTENERS → ``on_messages_moved``)
inside the transaction that marks the message failed, so the fallback commits or rolls
back with the failure: a worker that dies in between leaves the message to the stranded
sweep, which fails it again and falls back then. Never twice:

- the fallback's idempotency key names the enrollment step and the channel
  (``enrollment:<id>:step:<n>:<channel>``, the key a synchronous fallback of that step
  would have used), unique in the ledger;
- a step's messages form a chain (each one the fallback of the one before), so a failed
  message with a later message of the same step has fallen back already.

Only while the journey is live, and not after the customer converted or was stopped in it.
The choice is the synchronous one (orchestrator.intelligence.journeys ``pick_channel``),
among the node's channels this step has not tried yet: a plain send takes the first the
customer can get (consent, address), a best-channel send the best available by affinity;
none available → the first remaining one is dispatched, so its suppression and the reason
are on the timeline. The send goes through
``dispatch()``, so consent and the governor apply; a deferral (quiet hours) is tried again
at the governor's time by a one-off django-q2 schedule. Each fallback is a step-log row of
the send node ("push failed permanently (…) → sms"), which the customer's timeline shows.

A message sent by ``POST /api/v1/messages`` with an ordered channel list falls back by the
same rule, from the same listener: its key ``<send_key>:<channel>`` names the request
(``IdempotentRequest.send_key``), which keeps the channels in order with their rendered
content. The channels after the failed one are dispatched as the request itself did (the
first that is not refused is used), under the request's own keys, so at most once; the
request's row is locked meanwhile and its ``fallbacks`` record each hand-over (the API's
response and replays show them), and the new message's first transition says why it was
written (the customer's message history shows it). When every channel after the failed
one is only held back (quiet hours), they are tried again when the governor lets them go
(``api.messages.hold``), and the hand-over's entry then shows that send.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from datetime import datetime

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from channels_app.models import Message, MessageStatus
from channels_app.templating import TemplateError, render_content
from customers.hooks import MessageMove
from journeys.graph import nodes_by_id
from journeys.models import JourneyStatus
from journeys.nodes import BEST_CHANNEL, NodeKind, send_channels
from orchestrator.api.idempotency import IdempotentRequest
from orchestrator.api.messages import ENDPOINT, hold, representation, send_requests
from orchestrator.dispatch import (
    DispatchResult,
    FirstSend,
    Outcome,
    dispatch,
    dispatch_first,
    refuse,
)
from orchestrator.engine import steps
from orchestrator.engine.models import Enrollment, EnrollmentStep, ExitReason, StepOutcome
from orchestrator.engine.steps import (
    CONTENT_RULE,
    Visit,
    send_request,
    visit_template_context,
)
from orchestrator.governor.evaluate import Governor
from orchestrator.intelligence.journeys import pick_channel, rng_for

logger = logging.getLogger(__name__)

# The key the engine gives a send (steps.send_request), optionally suffixed by a channel.
STEP_KEY = re.compile(r"^(enrollment:\d+:step:\d+)(?::[a-z_]+)?$")
RETRY_FUNC = "orchestrator.engine.fallback.retry_fallback"
API_PREFIX = "api:"  # the keys of messages sent by POST /api/v1/messages (api.messages.send_key)
STEP_OUTCOMES = {Outcome.QUEUED: StepOutcome.SENT, Outcome.SUPPRESSED: StepOutcome.SUPPRESSED,
                 Outcome.DEFERRED: StepOutcome.DEFERRED}


def on_messages_moved(moves: list[MessageMove]) -> None:
    """The ledger's listener: a journey message that failed falls back. Judged on the move
    alone first, so the delivery path's batches of "sent" cost no query here."""
    for move in moves:
        if move.to_status == MessageStatus.FAILED and not move.late:
            _guarded(move.message_id, move.at)


def _guarded(message_id: int, at: datetime) -> None:
    """A broken fallback must not undo the failure it follows: its savepoint rolls back
    alone, and the failure stays recorded (the error is logged for an operator)."""
    try:
        with transaction.atomic():
            fall_back(message_id, now=at)
    except Exception:
        logger.exception("message %s failed; falling back to the next channel failed", message_id)


def fall_back(message_id: int, *, now: datetime | None = None) -> DispatchResult | None:
    """Dispatch the next channel of the send node whose message ``message_id`` failed; None
    when there is nothing to do (not a journey send, no channel left, fell back already).
    Must run inside a transaction (dispatch's rule)."""
    now = now or timezone.now()
    failed = Message.objects.filter(pk=message_id, status=MessageStatus.FAILED).first()
    if failed is not None and failed.enrollment_id is None and failed.idempotency_key.startswith(API_PREFIX):
        return _fall_back_api(failed, now)
    match = STEP_KEY.match(failed.idempotency_key) if failed and failed.enrollment_id else None
    if match is None:
        return None
    step_key = match.group(1)
    tried = _step_messages(failed, step_key)
    if any(pk > failed.pk for pk, _ in tried):
        return None  # this failure fell back already: its fallback is the later message
    enrollment = Enrollment.objects.select_related("journey", "customer", "version").filter(pk=failed.enrollment_id).first()
    if enrollment is None or not _may_still_send(enrollment):
        return None
    node = nodes_by_id(enrollment.version.graph).get(failed.node_id)
    if node is None or node.get("kind") != NodeKind.SEND:
        return None
    remaining = [c for c in send_channels(node["config"]) if c not in {channel for _, channel in tried}]
    if not remaining:
        return None
    visit = Visit(enrollment=enrollment, node=node, customer=enrollment.customer, journey=enrollment.journey, now=now)
    channel = _next_channel(visit, remaining, failed)
    result = _dispatch(visit, channel, f"{step_key}:{channel}", detail=_detail(failed, channel))
    _log(visit, failed, channel, result)
    return result


def _may_still_send(enrollment: Enrollment) -> bool:
    """A paused or stopped journey sends nothing more, fallbacks included; nor does one the
    customer converted in (the goal is reached) or an operator stopped them in."""
    stopped = enrollment.exit_reason in (ExitReason.CONVERTED, ExitReason.STOPPED)
    return enrollment.journey.status == JourneyStatus.LIVE and not stopped


def _step_messages(failed: Message, step_key: str) -> list[tuple[int, str]]:
    """(id, channel) of every message this enrollment step wrote, first to last."""
    rows = Message.objects.filter(_of_step(step_key), enrollment_id=failed.enrollment_id)
    return list(rows.values_list("pk", "channel").order_by("pk"))


def _of_step(step_key: str) -> Q:
    # The exact key or the key and a channel: "…:step:1" must not match "…:step:10".
    return Q(idempotency_key=step_key) | Q(idempotency_key__startswith=f"{step_key}:")


def _next_channel(visit: Visit, remaining: list[str], failed: Message) -> str:
    """The synchronous pick among the channels left (pick_channel): a plain send's first
    one the customer can get, a best-channel send's best by affinity; with none available,
    the first (suppressed with its reason). No exploring: a replay must pick the same one."""
    config = {**visit.config, "explore": 0}
    if config["channel"] == BEST_CHANNEL:
        config["fallback"] = remaining
    else:
        config = {**config, "channel": remaining[0], "fallback": remaining[1:]}
    governor = Governor([visit.customer.pk], now=visit.now, deciding=[visit.enrollment.pk])
    rng = rng_for(visit.journey.pk, visit.enrollment.pk, "fallback", failed.pk)
    return pick_channel(visit.customer, config, visit.journey, now=visit.now, governor=governor, rng=rng).channel


def _dispatch(visit: Visit, channel: str, key: str, *, detail: str = "") -> DispatchResult:
    try:
        content = render_content(channel, visit.config["content"].get(channel, {}), visit_template_context(visit))
    except TemplateError as error:
        return DispatchResult(Outcome.SUPPRESSED, None, f"template: {error.reason}")
    request = replace(send_request(visit, channel, content), idempotency_key=key, detail=detail)
    refusal = steps.content_refusal(channel, visit.journey.category, content)
    result = refuse(request, refusal, rule=CONTENT_RULE) if refusal else dispatch(request)
    if result.outcome == Outcome.DEFERRED and result.until is not None:
        _retry_at(result.until, visit.enrollment.pk, key)
    return result


def _retry_at(until: datetime, enrollment_id: int, key: str) -> None:
    """Held by quiet hours or a cap that waits: try this fallback again then (same key)."""
    from django_q.models import Schedule

    # A one-off schedule (deleted once run): the enrollment has moved on, so the engine's
    # own retry of a deferred step does not apply.
    Schedule.objects.create(
        name=f"fallback {key}"[:100], func=RETRY_FUNC, args=repr((enrollment_id, key)),
        schedule_type=Schedule.ONCE, next_run=until,
    )


def retry_fallback(enrollment_id: int, key: str) -> str:
    """The deferred fallback ``key`` of one enrollment step, tried again (a django-q2 task)."""
    with transaction.atomic():
        step_messages = Message.objects.filter(_of_step(key.rsplit(":", 1)[0]), enrollment_id=enrollment_id)
        failed = step_messages.filter(status=MessageStatus.FAILED).order_by("-pk").first()
        result = fall_back(failed.pk) if failed else None
    return result.outcome if result else "nothing to do"


def _detail(failed: Message, channel: str) -> str:
    """Why a fallback was written: "push failed permanently (410 Gone; disabled) → sms"."""
    return f"{failed.channel} failed permanently ({_why(failed)}) → {channel}"


def _why(failed: Message) -> str:
    return (failed.error or failed.last_error or "no reason recorded")[:200]


def _log(visit: Visit, failed: Message, channel: str, result: DispatchResult) -> None:
    """The step log (and so the timeline) says why a second message left this node."""
    detail = _detail(failed, channel)
    if result.outcome != Outcome.QUEUED:
        detail += f": {result.outcome} ({result.reason})" if result.reason else f": {result.outcome}"
    if result.outcome == Outcome.DUPLICATE:
        return
    EnrollmentStep.objects.create(
        enrollment_id=visit.enrollment.pk, journey_id=visit.journey.pk, version_id=visit.enrollment.version_id,
        node_id=visit.node["id"], kind=NodeKind.SEND, outcome=STEP_OUTCOMES[result.outcome], detail=detail[:500],
        message_id=result.message_id, at=visit.now,
    )
    if result.outcome == Outcome.QUEUED:  # an engagement wait on the failed message waits on this one
        Enrollment.objects.filter(pk=visit.enrollment.pk, wait_message_id=failed.pk).update(wait_message_id=result.message_id)


# --- Sends by the API ------------------------------------------------------------------


def _fall_back_api(failed: Message, now: datetime) -> DispatchResult | None:
    """The channels after the failed one in the API request's order, the first that is not
    refused used; None when there is none, or this failure fell back already."""
    prefix, _ = failed.idempotency_key.rsplit(":", 1)
    # Locked: two workers handling this failure at once wait here, and the second finds
    # the first's record.
    record = IdempotentRequest.objects.select_for_update().filter(send_key=prefix, endpoint=ENDPOINT).first()
    if record is None or not record.send or _fell_back(record, failed):
        return None
    if failed.channel not in [channel for channel, _ in record.send["channels"]]:
        return None
    requests = [replace(r, detail=_detail(failed, r.channel)) for r in send_requests(record, after=failed.channel, at=now)]
    if not requests:
        return None
    first = dispatch_first(requests)
    held_until = hold(record, first, after_failure=str(failed.public_id))
    record.fallbacks.append(_fallback_entry(failed, _why(failed), first, held_until, now))
    record.save(update_fields=["fallbacks"])
    return first.result


def _fell_back(record: IdempotentRequest, failed: Message) -> bool:
    return any(entry["failed"]["id"] == str(failed.public_id) for entry in record.fallbacks)


def _fallback_entry(failed: Message, why: str, first: FirstSend, held_until: datetime | None, now: datetime) -> dict:
    """The hand-over as the API shows it: what failed, then what was sent instead (or is
    held, until when), represented as the request's own first send is."""
    return {"failed": {"id": str(failed.public_id), "channel": failed.channel, "reason": why},
            **representation(first, held_until), "at": now.isoformat()}
