"""Users and roles, managed by admins in the app (being written)."""

from django.http import Http404


def user_list(request):
    raise Http404


def user_new(request):
    raise Http404


def user_edit(request, pk):
    raise Http404


def preferences(request):
    raise Http404
