from django.urls import path

from orchestrator.api import journeys, messages, simulate

# "journeys/import" cannot be read as an id: ids are matched with the int converter.
urlpatterns = [
    path("journeys", journeys.journey_collection, name="api-journey-list"),
    path("messages", messages.send_message, name="api-message-send"),
    path("journeys/import", journeys.journey_import, name="api-journey-import"),
    path("journeys/<int:journey_id>", journeys.journey_detail, name="api-journey-detail"),
    path("journeys/<int:journey_id>/publish", journeys.journey_publish, name="api-journey-publish"),
    path("journeys/<int:journey_id>/pause", journeys.journey_pause, name="api-journey-pause"),
    path("journeys/<int:journey_id>/resume", journeys.journey_resume, name="api-journey-resume"),
    path("journeys/<int:journey_id>/stop", journeys.journey_stop, name="api-journey-stop"),
    path("journeys/<int:journey_id>/archive", journeys.journey_archive, name="api-journey-archive"),
    path("journeys/<int:journey_id>/export", journeys.journey_export, name="api-journey-export"),
    path("journeys/<int:journey_id>/versions", journeys.journey_versions, name="api-journey-versions"),
    path("journeys/<int:journey_id>/trigger", journeys.journey_trigger, name="api-journey-trigger"),
    path("journeys/<int:journey_id>/simulate", simulate.simulate_journey, name="api-journey-simulate"),
]
