from rest_framework.decorators import api_view


@api_view(["POST"])
def identify(request): ...


@api_view(["POST"])
def track(request): ...


@api_view(["POST"])
def batch(request): ...
