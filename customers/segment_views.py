from django.http import HttpResponse


def segment_list(request):
    return HttpResponse("")


def segment_edit(request, pk=None):
    return HttpResponse("")


def segment_count(request):
    return HttpResponse("")
