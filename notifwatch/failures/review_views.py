"""The guided weekly review (being written)."""

from django.http import Http404


def review_list(request):
    raise Http404


def review_start(request):
    raise Http404


def review_detail(request, pk):
    raise Http404


def review_decide(request, pk, item_pk):
    raise Http404


def review_finish(request, pk):
    raise Http404


def review_minutes(request, pk):
    raise Http404
