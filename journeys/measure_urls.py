"""URLs of the journey measure; included by journeys/urls.py under the journeys: namespace."""

urlpatterns: list = []
