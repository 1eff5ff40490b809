"""Marketer-authored Liquid: personalised, strict, bounded, and never evaluating customer data."""

import itertools

import pytest

from channels_app import templating
from channels_app.templating import (
    CHANNEL_FIELDS,
    TemplateError,
    parse_error,
    render,
    render_content,
    template_context,
)
from customers.enums import Channel
from customers.models import Customer

ENTRY_EVENT = {
    "name": "Cart Abandoned",
    "properties": {"product_name": "Trail Shoe", "accessories": ["socks", "laces"], "cart_value": 120},
}


def make_customer(**traits):
    return Customer(
        external_id="u1",
        email="maya@example.com",
        phone="+14155550101",
        timezone="Europe/Paris",
        locale="fr-FR",
        traits=traits,
    )


def context_for(customer=None, **kwargs):
    return template_context(customer or make_customer(first_name="Maya"), event=ENTRY_EVENT, **kwargs)


def failure(source, context=None, field="sms.body"):
    with pytest.raises(TemplateError) as caught:
        render(source, context if context is not None else context_for(), field=field)
    return caught.value.reason


# --- Personalisation -----------------------------------------------------------------------


def test_renders_traits_and_entry_event_properties():
    source = "Hi {{ customer.first_name }}, {{ event.product_name }} looks great with {{ event.accessories | join: ', ' }}"
    assert render(source, context_for()) == "Hi Maya, Trail Shoe looks great with socks, laces"


def test_default_filter_covers_a_missing_trait():
    source = 'Hi {{ customer.first_name | default: "there" }}'
    assert render(source, context_for(make_customer())) == "Hi there"


def test_context_exposes_columns_event_name_journey_and_trigger():
    context = context_for(journey={"name": "Winback", "id": 7}, trigger={"coupon": "SAVE10"})
    source = "{{ customer.external_id }} {{ customer.email }} {{ customer.phone }} {{ customer.timezone }} {{ customer.locale }} {{ event.name }} {{ journey.name }}#{{ journey.id }} {{ trigger.coupon }}"
    assert render(source, context) == "u1 maya@example.com +14155550101 Europe/Paris fr-FR Cart Abandoned Winback#7 SAVE10"


def test_customer_columns_win_over_same_named_traits():
    customer = make_customer(email="spoofed@example.com", plan="gold")
    assert template_context(customer)["customer"] == {
        "email": "maya@example.com",
        "plan": "gold",
        "external_id": "u1",
        "phone": "+14155550101",
        "timezone": "Europe/Paris",
        "locale": "fr-FR",
    }


def test_context_without_event_journey_or_trigger_is_empty_for_them():
    context = template_context(make_customer())
    assert (context["event"], context["journey"], context["trigger"]) == ({}, {}, {})


# --- Customer data is data ------------------------------------------------------------------


def test_trait_that_looks_like_liquid_renders_literally():
    customer = make_customer(first_name="{{ 7 | times: 6 }}", bio="{% for i in (1..99999) %}x{% endfor %}")
    assert render("{{ customer.first_name }}|{{ customer.bio }}", context_for(customer)) == (
        "{{ 7 | times: 6 }}|{% for i in (1..99999) %}x{% endfor %}"
    )


def test_event_property_that_looks_like_liquid_renders_literally():
    event = {"name": "Cart Abandoned", "properties": {"product_name": "{{ customer.email }}"}}
    context = template_context(make_customer(), event=event)
    assert render("{{ event.product_name }}", context) == "{{ customer.email }}"


# --- Strictness ------------------------------------------------------------------------------


def test_missing_variable_fails_with_its_path_and_field():
    assert failure("Hi {{ customer.first_nme }}") == "sms.body: undefined variable 'customer.first_nme' (line 1)"


def test_missing_variable_reports_its_line():
    assert failure("Hi\nthere\n{{ trigger.coupon }}") == "sms.body: undefined variable 'trigger.coupon' (line 3)"


def test_unknown_filter_fails_the_render():
    assert failure("{{ customer.first_name | shout }}") == "sms.body: unknown filter 'shout' (line 1)"


# --- Limits ------------------------------------------------------------------------------------


def test_nested_loops_over_large_ranges_fail_on_entry():
    source = "{% for a in (1..1000000) %}{% for b in (1..1000000) %}x{% endfor %}{% endfor %}"
    assert failure(source) == "sms.body: more than 10,000 loop iterations"


def test_loop_limit_counts_every_iteration_not_just_each_nest():
    # Each nest is 100 × 100 = 10,000, but the template runs 20,000 iterations in all.
    inner = "{% for b in (1..100) %}{% endfor %}"
    source = "{% for a in (1..100) %}" + inner + inner + "{% endfor %}"
    assert failure(source) == "sms.body: more than 10,000 loop iterations"


def test_exactly_ten_thousand_iterations_are_allowed():
    assert render("{% for a in (1..10000) %}{% endfor %}done", {}) == "done"


def test_filter_over_a_huge_range_counts_as_a_loop():
    assert failure('{{ (1..100000000) | join: "," }}') == "sms.body: more than 10,000 loop iterations"


def test_output_over_100_kb_fails():
    source = "{% for a in (1..5000) %}" + "x" * 30 + "{% endfor %}"
    assert failure(source, field="email.html") == "email.html: output exceeds 100 KB"


def test_captured_output_counts_towards_the_output_limit():
    source = "{% capture c %}{% for a in (1..5000) %}" + "x" * 30 + "{% endfor %}{% endcapture %}ok"
    assert failure(source) == "sms.body: output exceeds 100 KB"


def test_nesting_deeper_than_30_fails():
    source = "{% if true %}" * 31 + "x" + "{% endif %}" * 31
    assert failure(source) == "sms.body: blocks nested deeper than 30"


def test_nesting_of_30_is_allowed():
    assert render("{% if true %}" * 30 + "x" + "{% endif %}" * 30, {}) == "x"


def test_assigned_values_cannot_grow_without_bound():
    source = '{% assign s = "xxxxxxxxxx" %}{% for i in (1..40) %}{% assign s = s | append: s %}{% endfor %}'
    assert failure(source) == "sms.body: assigned variables exceed 100 KB"


def test_render_that_runs_past_one_second_fails(monkeypatch):
    # Every clock reading moves time 0.3 s on: the deadline passes within a few iterations
    # of a loop that is well under the iteration limit.
    ticks = itertools.count()
    monkeypatch.setattr(templating, "_clock", lambda: next(ticks) * 0.3)
    assert failure("{% for a in (1..100) %}{{ a }}{% endfor %}") == "sms.body: rendering took longer than 1 s"


def test_each_render_gets_a_fresh_time_budget(monkeypatch):
    now = {"t": 0.0}
    monkeypatch.setattr(templating, "_clock", lambda: now["t"])
    assert render("{% for a in (1..3) %}{{ a }}{% endfor %}", {}) == "123"
    now["t"] = 500.0
    assert render("{% for a in (1..3) %}{{ a }}{% endfor %}", {}) == "123"


def test_include_and_render_tags_are_refused():
    assert parse_error('{% include "header" %}') == "unexpected tag 'include' (line 1)"
    assert failure('{% render "header" %}') == "sms.body: unexpected tag 'render' (line 1)"


# --- Parse checks for publishing ----------------------------------------------------------


def test_parse_error_is_none_for_a_valid_template():
    assert parse_error("Hi {{ customer.first_name | default: 'there' }}{% if event.cart_value > 100 %}!{% endif %}") is None


def test_parse_error_for_an_unclosed_if():
    assert parse_error("{% if customer.vip %}VIP") == "expected tag endif, found end of expression"


def test_parse_error_gives_the_line():
    assert parse_error("Hello\n{{ customer.first_name ") == "expected '}}', found end of file (line 2)"


def test_parse_error_for_an_unknown_filter():
    assert parse_error("{{ customer.first_name | shout }}") == "unknown filter 'shout'"


# --- Channel content --------------------------------------------------------------------------


def test_channel_fields_cover_every_channel():
    assert set(CHANNEL_FIELDS) == set(Channel.values)


def test_required_and_optional_fields_per_channel():
    assert CHANNEL_FIELDS == {
        "email": (("subject", "html"), ("text", "preheader")),
        "sms": (("body",), ()),
        "push": (("title", "body"), ("url",)),
        "in_app": (("title", "body"), ("button_label", "url")),
    }


def test_render_content_renders_every_present_field():
    content = {"subject": "{{ event.product_name }} is waiting", "html": "<p>Hi {{ customer.first_name }}</p>"}
    assert render_content("email", content, context_for()) == {
        "subject": "Trail Shoe is waiting",
        "html": "<p>Hi Maya</p>",
    }


def test_render_content_ignores_fields_the_channel_does_not_have():
    assert render_content("sms", {"body": "Hi", "subject": "{{ nope }}"}, context_for()) == {"body": "Hi"}


def test_render_content_names_the_failing_field():
    content = {"title": "Hi", "body": "{{ customer.first_nme }}"}
    with pytest.raises(TemplateError) as caught:
        render_content("push", content, context_for())
    assert caught.value.reason == "push.body: undefined variable 'customer.first_nme' (line 1)"


def test_render_content_for_an_unknown_channel_fails():
    with pytest.raises(TemplateError) as caught:
        render_content("fax", {"body": "Hi"}, context_for())
    assert caught.value.reason == "unknown channel 'fax'"


def test_email_html_escapes_traits_but_keeps_the_marketers_markup():
    customer = Customer(external_id="c-1", traits={"first_name": '<a href="https://evil.example">Claim</a>'})
    context = template_context(customer)
    rendered = render_content(
        "email", {"subject": "Hi {{ customer.first_name }}", "html": "<p>Hi {{ customer.first_name }}</p>"}, context
    )
    assert rendered["html"] == '<p>Hi &lt;a href=&#34;https://evil.example&#34;&gt;Claim&lt;/a&gt;</p>'
    # A subject line is plain text: escaping it would show entities in the inbox.
    assert rendered["subject"] == 'Hi <a href="https://evil.example">Claim</a>'


def test_email_html_safe_filter_lets_a_trusted_value_through():
    customer = Customer(external_id="c-1", traits={"banner": "<b>Sale</b>"})
    rendered = render_content(
        "email", {"subject": "s", "html": "{{ customer.banner | safe }}"}, template_context(customer)
    )
    assert rendered["html"] == "<b>Sale</b>"
