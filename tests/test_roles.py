"""The role matrix: which capability each role holds."""

import pytest
from django.contrib.auth.models import Group

from orchestrator.roles import MATRIX, Capability, Role, capabilities_of, has_capability

EXPECTED = {
    Role.MARKETER: {"customers.view", "journeys.view", "journeys.edit"},
    Role.MESSAGING: {"customers.view", "customers.edit", "journeys.view", "dashboards.view"},
    Role.ADMIN: {cap.value for cap in Capability},
}


@pytest.mark.parametrize("role", list(Role))
def test_matrix_grants_exactly_the_expected_capabilities(role):
    assert {cap.value for cap in MATRIX[role]} == EXPECTED[role]


def test_every_role_is_in_the_matrix():
    assert set(MATRIX) == set(Role)


@pytest.mark.django_db
def test_user_capabilities_are_the_union_of_their_roles(make_user):
    user = make_user(Role.MARKETER, username="both")
    user.groups.add(Group.objects.get(name=Role.MESSAGING.value))
    user = type(user).objects.get(pk=user.pk)
    assert {c.value for c in capabilities_of(user)} == EXPECTED[Role.MARKETER] | EXPECTED[Role.MESSAGING]


@pytest.mark.django_db
def test_user_without_role_has_no_capability(make_user):
    user = make_user(None, username="nobody")
    assert capabilities_of(user) == frozenset()
    assert not has_capability(user, Capability.VIEW_CUSTOMERS)


@pytest.mark.django_db
def test_superuser_has_every_capability(make_user):
    user = make_user(None, username="root", superuser=True)
    assert capabilities_of(user) == frozenset(Capability)


@pytest.mark.django_db
def test_role_groups_exist_after_migrations():

    assert set(Group.objects.values_list("name", flat=True)) >= {r.value for r in Role}
