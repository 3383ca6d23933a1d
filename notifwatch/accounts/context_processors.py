from notifwatch.accounts.access import membership_of


def role(request) -> dict:
    membership = membership_of(getattr(request, "user", None)) if hasattr(request, "user") else None
    return {"membership": membership}
