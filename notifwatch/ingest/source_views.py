from django.http import Http404


def source_list(request):
    raise Http404


def source_detail(request, slug):
    raise Http404


def source_mapping(request, slug):
    raise Http404


def source_reprocess(request, slug):
    raise Http404


def source_rotate_token(request, slug):
    raise Http404


def raw_event_detail(request, pk):
    raise Http404
