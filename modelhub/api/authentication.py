"""simplejwt's authentication, telling an expired token apart from a bad one."""

from __future__ import annotations

from rest_framework_simplejwt import authentication
from rest_framework_simplejwt.exceptions import ExpiredTokenError, InvalidToken, TokenError
from rest_framework_simplejwt.tokens import AccessToken

from modelhub.api.exceptions import TokenExpired


class JWTAuthentication(authentication.JWTAuthentication):
    """Bearer access tokens only.

    An expired token answers ``TOKEN_EXPIRED`` so clients know to refresh; a
    forged, malformed, ``alg: none`` or refresh-typed token answers
    ``UNAUTHORIZED``. The user is loaded on every request, so deactivation takes
    effect at once.
    """

    def authenticate(self, request):
        # The rate-limit middleware already verified this very token; don't decode it twice.
        cached = getattr(request._request, "validated_access_token", None)
        if cached is not None:
            header = self.get_header(request)
            raw = self.get_raw_token(header) if header is not None else None
            if raw is not None and raw.decode() == str(cached.token):
                return self.get_user(cached), cached
        return super().authenticate(request)

    def get_validated_token(self, raw_token: bytes) -> AccessToken:
        try:
            return AccessToken(raw_token)
        except ExpiredTokenError as exc:
            raise TokenExpired() from exc
        except TokenError as exc:
            raise InvalidToken(str(exc.args[0]) if exc.args else "Token is invalid.") from exc
