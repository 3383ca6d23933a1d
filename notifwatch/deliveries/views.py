from django.http import Http404


def home(request):
    raise Http404


def notification_search(request):
    raise Http404


def notification_detail(request, pk):
    raise Http404
