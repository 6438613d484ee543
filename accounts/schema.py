"""How the OpenAPI schema (drf-spectacular) describes our API-key authentication."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "ask_…",
            "description": "An AiSpendTrack key with the `read` scope "
            "(Settings → API keys): `Authorization: Bearer ask_…`.",
        }
