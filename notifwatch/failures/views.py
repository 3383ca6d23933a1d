from django.http import Http404


def exception_list(request):
    raise Http404


def exception_detail(request, pk):
    raise Http404


def exception_action(request, pk):
    raise Http404
