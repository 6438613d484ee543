"""The database router: tables Django must leave alone.

An unmanaged model (analytics.MatchedEvent: a page's temporary table, there
only inside one transaction of one page) has no table for `dumpdata`,
`loaddata` or a flush to read. Django's commands skip a model only when the
routers say it cannot be migrated; `Options.managed` alone does not stop them.
"""

from __future__ import annotations


class UnmanagedModelsRouter:
    def allow_migrate(self, db, app_label, model_name=None, **hints):
        model = hints.get("model")
        if model is not None and not model._meta.managed:
            return False
        return None
