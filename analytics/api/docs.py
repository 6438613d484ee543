"""/api/schema and /api/docs: public, or for signed-in users and keys only
(AISPENDTRACK_PUBLIC_API_DOCS, read per request).

The docs page is drf-spectacular's "split" Swagger view: its start-up script is
a separate same-origin file, so the Content-Security-Policy needs no inline
script; Swagger UI itself comes from drf-spectacular-sidecar's static files.
"""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from accounts.permissions import HasOrganization


class ApiDocsAccess(HasOrganization):
    def has_permission(self, request, view) -> bool:
        if settings.AISPENDTRACK_PUBLIC_API_DOCS:
            return True
        return super().has_permission(request, view)


schema_view = SpectacularAPIView.as_view(permission_classes=[ApiDocsAccess])
docs_view = SpectacularSwaggerSplitView.as_view(
    url_name="api_schema", permission_classes=[ApiDocsAccess]
)
