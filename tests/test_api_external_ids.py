"""External ids are the customer's system's ids: any characters, including '/', reach them."""

import pytest

from tests import api_factories as f

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("external_id", ["shop/42", "a/b/c", "user 7", "ünïcode-id"])
def test_detail_and_sub_resources_resolve_ids_with_any_characters(api_client, external_id):
    owner = f.customer(external_id)
    f.event(owner, "Order Completed")
    path = "/api/v1/customers/" + external_id.replace(" ", "%20")

    detail = api_client.get(path)
    assert detail.status_code == 200
    assert detail.json()["external_id"] == external_id

    events = api_client.get(path + "/events")
    assert events.status_code == 200
    assert [e["name"] for e in events.json()["results"]] == ["Order Completed"]
