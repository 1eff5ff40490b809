"""Marketer-authored Liquid content: parse checks and safe, bounded rendering.

Templates are written by marketers in the journey editor and rendered by the engine for
each send. Rendering is strict (a missing variable fails the send) and bounded (loop
iterations, output size, nesting depth and wall-clock time), so a bad template fails one
step with a readable reason and never hangs or crashes a worker.

Customer data only ever enters as render *context*, never as template source: a trait
whose value looks like Liquid is printed as text, not evaluated.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from liquid import BoundTemplate, Environment, RenderContext, StrictDefaultUndefined
from liquid.exceptions import (
    BlockNestingError,
    ContextDepthError,
    LiquidError,
    LocalNamespaceLimitError,
    LoopIterationLimitError,
    OutputStreamLimitError,
    ResourceLimitError,
    UndefinedError,
)

from customers.enums import Channel

if TYPE_CHECKING:
    from collections.abc import Callable

    from liquid.token import Token

    from customers.models import Customer

# channel -> (required fields, optional fields); every field is a Liquid template.
CHANNEL_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    Channel.EMAIL.value: (("subject", "html"), ("text", "preheader")),
    Channel.SMS.value: (("body",), ()),
    Channel.PUSH.value: (("title", "body"), ("url",)),
    Channel.IN_APP.value: (("title", "body"), ("button_label", "url")),
}

LOOP_ITERATION_LIMIT = 10_000
OUTPUT_LIMIT_BYTES = 100 * 1024
NESTING_LIMIT = 30
TIME_LIMIT_SECONDS = 1.0
# Values bound with assign/capture (sys.getsizeof, shallow). Without it, a loop that
# doubles a string or squares a number would exhaust memory well within 10,000 iterations.
LOCAL_NAMESPACE_LIMIT_BYTES = 100 * 1024

# The clock the time limit reads; a module attribute so tests can move time.
_clock: Callable[[], float] = time.monotonic


class TemplateError(Exception):
    """A template that cannot be rendered; `reason` names the field and is shown on the step log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RenderTimeLimitError(ResourceLimitError):
    """Raised from inside the render when the wall-clock budget is spent."""


# --- Limits enforced while rendering ---------------------------------------------------
#
# python-liquid has no wall-clock limit and its loop limit is per nest of loops (the
# product of the lengths of the loops being entered), so sibling loops can each run
# 10,000 times. A thread cannot be killed and SIGALRM only works in the main thread, so
# the limits here are cooperative: every render carries a _Budget, charged on each loop
# iteration (the only way a template repeats work) and checked before each filter call.
# Filters applied to a huge range, e.g. (1..100000000) | join, are implicit loops, so a
# range longer than the loop limit is refused before the filter runs.


class _Budget:
    __slots__ = ("deadline", "iterations")

    def __init__(self) -> None:
        self.deadline = _clock() + TIME_LIMIT_SECONDS
        self.iterations = 0

    def check_clock(self) -> None:
        if _clock() > self.deadline:
            raise RenderTimeLimitError("time limit reached", token=None)

    def spend_iteration(self) -> None:
        self.iterations += 1
        if self.iterations > LOOP_ITERATION_LIMIT:
            raise LoopIterationLimitError("loop iteration limit reached", token=None)
        self.check_clock()

    def metered(self, items: Iterator[Any]) -> Iterator[Any]:
        for item in items:
            self.spend_iteration()
            yield item


class _BoundedContext(RenderContext):
    """A render context that shares one _Budget with every context copied from it."""

    __slots__ = ("budget",)

    def __init__(self, template: BoundTemplate, **kwargs: Any) -> None:
        super().__init__(template, **kwargs)
        parent = kwargs.get("parent_context")
        self.budget = parent.budget if isinstance(parent, _BoundedContext) else _Budget()

    @contextmanager
    def loop(self, namespace: Mapping[str, object], forloop: Any) -> Iterator[RenderContext]:
        # for and tablerow both iterate forloop.it; metering it charges every iteration.
        forloop.it = self.budget.metered(forloop.it)
        with super().loop(namespace, forloop) as context:
            yield context

    def filter(self, name: str, token: Token | None) -> Callable[..., object]:  # noqa: A003
        func = super().filter(name, token)
        budget = self.budget

        def bounded(left: object, *args: object, **kwargs: object) -> object:
            budget.check_clock()
            _refuse_huge_ranges(left, *args, *kwargs.values())
            return func(left, *args, **kwargs)

        return bounded


def _refuse_huge_ranges(*values: object) -> None:
    for value in values:
        # type(), not isinstance(): isinstance reads __class__, which a strict
        # undefined refuses, and a missing variable must still reach `default`.
        if type(value) is range and len(value) > LOOP_ITERATION_LIMIT:
            raise LoopIterationLimitError("loop iteration limit reached", token=None)


class _BoundedTemplate(BoundTemplate):
    context_class = _BoundedContext


class _ChorusEnvironment(Environment):
    loop_iteration_limit = LOOP_ITERATION_LIMIT
    output_stream_limit = OUTPUT_LIMIT_BYTES
    block_nesting_limit = NESTING_LIMIT
    context_depth_limit = NESTING_LIMIT
    local_namespace_limit = LOCAL_NAMESPACE_LIMIT_BYTES
    template_class = _BoundedTemplate


# StrictDefaultUndefined: a missing variable fails the render, except under the default
# filter, so `{{ customer.first_name | default: "there" }}` works for customers without one.
_ENV = _ChorusEnvironment(undefined=StrictDefaultUndefined)
# HTML fields escape what expressions output: a trait such as first_name arrives from
# sign-up forms and APIs, and must never become markup (a link, a form) in an email. The
# marketer's own template text is not escaped; `| safe` opts a trusted value out.
_HTML_ENV = _ChorusEnvironment(undefined=StrictDefaultUndefined, autoescape=True)
HTML_FIELDS = frozenset({"email.html"})
# A journey's content is self-contained: there are no partials to include, so these
# tags are refused when parsing (and so at publishing) rather than failing every send.
for _env in (_ENV, _HTML_ENV):
    for _tag in ("include", "render"):
        del _env.tags[_tag]


# --- Reasons -----------------------------------------------------------------------------

_LIMIT_REASONS: dict[type[LiquidError], str] = {
    LoopIterationLimitError: f"more than {LOOP_ITERATION_LIMIT:,} loop iterations",
    OutputStreamLimitError: f"output exceeds {OUTPUT_LIMIT_BYTES // 1024} KB",
    BlockNestingError: f"blocks nested deeper than {NESTING_LIMIT}",
    ContextDepthError: f"nesting deeper than {NESTING_LIMIT}",
    LocalNamespaceLimitError: f"assigned variables exceed {LOCAL_NAMESPACE_LIMIT_BYTES // 1024} KB",
    RenderTimeLimitError: f"rendering took longer than {TIME_LIMIT_SECONDS:g} s",
}

_UNDEFINED = re.compile(r"'?(?P<path>.+?)'? is undefined")


def _describe(err: LiquidError) -> str:
    """A one-line reason, with the line number when the library knows it."""
    for kind, reason in _LIMIT_REASONS.items():
        if isinstance(err, kind):
            return reason
    message = str(err.message)
    if isinstance(err, UndefinedError) and (match := _UNDEFINED.fullmatch(message)):
        message = f"undefined variable '{match['path']}'"
    where = err.context()
    return f"{message} (line {where[0]})" if where else message


def _prefixed(field: str, reason: str) -> str:
    return f"{field}: {reason}" if field else reason


# --- Public API --------------------------------------------------------------------------


def parse_error(source: str) -> str | None:
    """None when `source` parses, else why not (for publishing checks)."""
    try:
        template = _ENV.from_string(source)
    except LiquidError as err:
        return _describe(err)
    # The library only looks filters up when rendering; a typo should fail publishing.
    unknown = sorted(set(template.filter_names()) - _ENV.filters.keys())
    return f"unknown filter '{unknown[0]}'" if unknown else None


def render(source: str, context: dict[str, Any], *, field: str = "", html: bool = False) -> str:
    """Render `source` strictly and within the limits; TemplateError says why not.

    ``html`` escapes expression output (see HTML_FIELDS)."""
    env = _HTML_ENV if html else _ENV
    try:
        return str(env.from_string(source).render(context))
    except LiquidError as err:
        raise TemplateError(_prefixed(field, _describe(err))) from err
    except Exception as err:  # noqa: BLE001
        # A filter can still fail in plain Python (e.g. printing a 5,000-digit number).
        # One bad template must fail its own send, never the worker.
        raise TemplateError(_prefixed(field, f"{type(err).__name__}: {err}")) from err


def render_content(channel: str, content: dict[str, Any], context: dict[str, Any]) -> dict[str, str]:
    """Render every present field of one channel's content; errors name the field."""
    if channel not in CHANNEL_FIELDS:
        raise TemplateError(f"unknown channel '{channel}'")
    required, optional = CHANNEL_FIELDS[channel]
    rendered = {}
    for name in required + optional:
        if content.get(name) is not None:
            field = f"{channel}.{name}"
            rendered[name] = render(str(content[name]), context, field=field, html=field in HTML_FIELDS)
    return rendered


def template_context(
    customer: Customer,
    *,
    event: dict[str, Any] | None = None,
    journey: dict[str, Any] | None = None,
    trigger: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What templates see: `customer`, `event`, `journey`, `trigger` and `unsubscribe_url`
    (docs/journeys.md).

    `event` is the entry event as the enrollment keeps it: {"name", "properties", ...}.
    `unsubscribe_url` is a signed one-click link for email marketing; it names the customer
    and journey, not the message, which is written only after rendering (channels_app.unsubscribe).
    """
    return {
        "customer": _customer_variables(customer),
        "event": _event_variables(event),
        "journey": {"name": journey.get("name"), "id": journey.get("id")} if journey else {},
        "trigger": dict(trigger or {}),
        "unsubscribe_url": _unsubscribe_url(customer, journey),
    }


def _unsubscribe_url(customer: Customer, journey: dict[str, Any] | None) -> str:
    # Imported here: journeys.nodes imports this module for parsing alone, and the
    # unsubscribe module pulls in models and the consent service.
    from channels_app.unsubscribe import customer_token, url_for_token

    if customer.pk is None:  # an unsaved customer (a preview): nothing to unsubscribe yet
        return ""
    return url_for_token(customer_token(customer.pk, journey_id=(journey or {}).get("id")))


def _customer_variables(customer: Customer) -> dict[str, Any]:
    # Columns win over same-named traits: they are the verified, normalised values.
    columns = {
        "external_id": customer.external_id,
        "email": customer.email,
        "phone": customer.phone,
        "timezone": customer.timezone,
        "locale": customer.locale,
    }
    return {**(customer.traits or {}), **columns}


def _event_variables(event: dict[str, Any] | None) -> dict[str, Any]:
    if not event:
        return {}
    return {**(event.get("properties") or {}), "name": event.get("name", "")}
