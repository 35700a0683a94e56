"""``python -m bench.auth_cost``: what checking a bearer token costs per request.

Against the tests' OpenID provider (npm oidc-provider, started here on 127.0.0.1): one full
validation (RS256 signature, issuer, audience, expiry) against the remembered caller of a
token already validated, which is what every request after a client's first pays.
"""

from __future__ import annotations

import timeit

from dicomweb.identity.permissions import load_roles
from dicomweb.identity.tokens import TokenValidator
from tests.support.oidc import AUDIENCE, start_oidc_provider

CALLS = 2000


def main() -> None:
    provider = start_oidc_provider()
    try:
        token = provider.token("reader")
        validator = TokenValidator(provider.issuer, (AUDIENCE,), "roles", load_roles(None))
        validator.validate(token)  # discovery and the key set, fetched once
        full = min(timeit.repeat(lambda: validator.validate(token), number=CALLS, repeat=3)) / CALLS
        remembered = min(timeit.repeat(lambda: validator.remembered(token), number=CALLS, repeat=3)) / CALLS
        print(f"full validation: {full * 1e6:.0f} µs per request; remembered token: {remembered * 1e6:.1f} µs")
    finally:
        provider.stop()


if __name__ == "__main__":
    main()
