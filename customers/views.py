from django.http import HttpResponse


def customer_list(request):
    return HttpResponse("")


def customer_profile(request, pk):
    return HttpResponse("")
