from rest_framework.decorators import api_view


@api_view(["GET"])
def customer_list(request): ...


@api_view(["GET"])
def customer_detail(request, external_id): ...


@api_view(["GET"])
def customer_events(request, external_id): ...


@api_view(["GET"])
def customer_messages(request, external_id): ...


@api_view(["GET", "PATCH"])
def customer_consent(request, external_id): ...
