"""URLs of the journey studio; included by journeys/urls.py under the journeys: namespace."""

urlpatterns: list = []
