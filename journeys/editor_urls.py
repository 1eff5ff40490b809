"""URLs of the journey editor; included by journeys/urls.py under the journeys: namespace."""

urlpatterns: list = []
