"""Staff manage the price book here. Every save goes through pricing.services,
so edits become source=admin (a sync never overwrites them) and every
process's engine reloads within seconds."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.template.defaultfilters import pluralize
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from analytics.repricing import usage_reprice_models
from analytics.tasks import reprice_runs_start
from pricing import selectors, services
from pricing.benchmarks import model_benchmarks_import
from pricing.models import (
    BUILTIN_PROVIDERS,
    RESERVED_SLUGS,
    ModelBenchmark,
    ModelPrice,
    PriceOverride,
    Provider,
)

MAX_CSV_BYTES = 5_000_000


def _https_urls(field, **kwargs):
    if isinstance(field, models.URLField):
        kwargs["assume_scheme"] = "https"
    return field.formfield(**kwargs)


class ProviderForm(forms.ModelForm):
    class Meta:
        model = Provider
        fields = ["slug", "name", "api_style", "base_url", "is_active", "model_match"]
        formfield_callback = _https_urls

    def clean(self):
        super().clean()
        data = self.cleaned_data
        slug = data.get("slug", "")
        if slug in RESERVED_SLUGS and slug not in BUILTIN_PROVIDERS:
            self.add_error(
                "slug",
                f"“{slug}” is a route of the proxy or of AiSpendTrack's pages; "
                "choose another slug.",
            )
        if slug in BUILTIN_PROVIDERS and data.get("base_url"):
            self.add_error(
                "base_url",
                "Built-in providers take their upstream from settings "
                "(AISPENDTRACK_UPSTREAM_OPENAI / _ANTHROPIC / _GEMINI); leave this blank.",
            )
        return data


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    form = ProviderForm
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    list_display = ["slug", "name", "api_style", "base_url", "is_active", "model_count"]
    list_filter = ["api_style", "is_active"]
    search_fields = ["slug", "name", "base_url"]

    @admin.display(description="price rows")
    def model_count(self, obj):
        return obj.prices.count()

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.slug in BUILTIN_PROVIDERS:
            return False
        return super().has_delete_permission(request, obj)

    def save_model(self, request, obj, form, change):
        services.provider_admin_save(provider=obj)


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    change_list_template = "admin/pricing/modelprice/change_list.html"
    list_display = [
        "model_id",
        "provider",
        "since",
        "time_window",
        "input",
        "cache_read",
        "cache_write",
        "cache_write_1h",
        "output",
        "source",
        "history_link",
    ]
    list_filter = ["source", "provider"]
    list_select_related = ["provider"]
    search_fields = ["model_id", "name", "provider__slug", "provider__name"]
    ordering = ["provider__slug", "model_id", "-effective_from"]
    readonly_fields = ["source", "created_at", "updated_at", "price_history"]
    autocomplete_fields = ["provider"]
    actions = ["reprice_events", "sync_from_bundled_data"]
    fieldsets = [
        (None, {"fields": ["provider", "model_id", "name", "effective_from", "time_window"]}),
        (
            "USD per million tokens",
            {
                "fields": [
                    "input",
                    "output",
                    "cache_read",
                    "cache_write",
                    "cache_write_1h",
                    "input_audio",
                    "output_audio",
                    "tiers",
                ]
            },
        ),
        ("Matching", {"fields": ["match_rules", "match_order"]}),
        (None, {"fields": ["notes", "source", "created_at", "updated_at", "price_history"]}),
    ]

    @admin.display(description="since", ordering="effective_from")
    def since(self, obj):
        return "always" if obj.since_always else obj.effective_from.strftime("%Y-%m-%d")

    @admin.display(description="history")
    def history_link(self, obj):
        url = reverse("admin:pricing_modelprice_changelist")
        return format_html(
            '<a href="{}?provider={}&model_id={}">history</a>', url, obj.provider_id, obj.model_id
        )

    @admin.display(description="price history of this model")
    def price_history(self, obj):
        if obj.pk is None:
            return "—"
        rows = selectors.model_price_history(provider_id=obj.provider_id, model_id=obj.model_id)
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    "always" if r.since_always else r.effective_from.strftime("%Y-%m-%d"),
                    r.time_window or "all day",
                    r.input,
                    r.cache_read,
                    r.output,
                    r.source,
                )
                for r in rows
            ),
        )
        return format_html(
            "<table><tr><th>from</th><th>window</th><th>input</th><th>cached</th>"
            "<th>output</th><th>source</th></tr>{}</table>",
            body,
        )

    def save_model(self, request, obj, form, change):
        services.model_price_admin_save(price=obj)
        # Calls recorded without a price that this one prices are re-priced by a
        # worker once the save commits; the pages' banner follows each run.
        runs = reprice_runs_start(label=obj.model_id)
        if runs:
            calls = sum(run.calls for run in runs)
            self.message_user(
                request,
                f"Re-pricing {calls:,} call{pluralize(calls)} recorded without a price, of "
                f"{len(runs)} organization{pluralize(len(runs))}, in the background.",
                messages.INFO,
            )

    def delete_model(self, request, obj):
        services.model_price_delete_many(prices=ModelPrice.objects.filter(pk=obj.pk))

    def delete_queryset(self, request, queryset):
        services.model_price_delete_many(prices=queryset)

    @admin.action(description="Reprice events for these models")
    def reprice_events(self, request, queryset):
        targets = set(queryset.values_list("provider__slug", "model_id"))
        changed = usage_reprice_models(models=targets)
        self.message_user(request, f"Re-priced {changed} events.", messages.SUCCESS)

    @admin.action(description="Sync from bundled data (all models)")
    def sync_from_bundled_data(self, request, queryset=None):
        report = services.prices_sync(online=False)
        self.message_user(request, report.summary(), messages.SUCCESS)

    def get_urls(self):
        sync = self.admin_site.admin_view(self.sync_view)
        return [path("sync/", sync, name="pricing_modelprice_sync"), *super().get_urls()]

    def sync_view(self, request):
        """The changelist's "Sync from bundled data" button (no selection needed)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_change_permission(request):
            return HttpResponseRedirect(reverse("admin:index"))
        self.sync_from_bundled_data(request)
        return HttpResponseRedirect(reverse("admin:pricing_modelprice_changelist"))


@admin.register(PriceOverride)
class PriceOverrideAdmin(admin.ModelAdmin):
    """Organizations manage their own prices in Settings → Pricing; staff look."""

    list_display = ["model", "provider", "organization", "input", "output", "effective_from"]
    list_filter = ["provider"]
    search_fields = ["model", "organization__name", "organization__slug"]
    list_select_related = ["organization"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class BenchmarkImportForm(forms.Form):
    file = forms.FileField(
        help_text="CSV with a header row: model,benchmark,score,source_url,as_of "
        "(as_of an ISO date). Existing (model, benchmark) scores are replaced."
    )


@admin.register(ModelBenchmark)
class ModelBenchmarkAdmin(admin.ModelAdmin):
    """Quality scores the cost simulator compares (pricing.benchmarks); CSV import."""

    change_list_template = "admin/pricing/modelbenchmark/change_list.html"
    list_display = ["model", "benchmark", "score", "as_of", "source_url"]
    list_filter = ["benchmark"]
    search_fields = ["model", "benchmark"]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def save_model(self, request, obj, form, change):
        obj.model = obj.model.strip().lower()  # matched case-insensitively
        super().save_model(request, obj, form, change)

    def get_urls(self):
        view = self.admin_site.admin_view(self.import_view)
        return [path("import/", view, name="pricing_modelbenchmark_import"), *super().get_urls()]

    def import_view(self, request):
        if not self.has_add_permission(request) or not self.has_change_permission(request):
            return HttpResponseRedirect(reverse("admin:index"))
        form = BenchmarkImportForm(request.POST or None, request.FILES or None)
        errors: list[str] = []
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                text = upload.read(MAX_CSV_BYTES + 1).decode("utf-8-sig")
            except UnicodeDecodeError:
                errors = ["the file is not UTF-8 text; save it as CSV UTF-8"]
            else:
                if len(text) > MAX_CSV_BYTES:
                    errors = [f"the file is over {MAX_CSV_BYTES // 1_000_000} MB; split it"]
                else:
                    result = model_benchmarks_import(text=text)
                    errors = result.errors
                    if not errors:
                        self.message_user(
                            request,
                            f"Imported {result.created} new and {result.updated} updated scores.",
                            messages.SUCCESS,
                        )
                        return HttpResponseRedirect(
                            reverse("admin:pricing_modelbenchmark_changelist")
                        )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Import benchmark scores (CSV)",
            "form": form,
            "errors": errors,
        }
        return TemplateResponse(request, "admin/pricing/modelbenchmark/import.html", context)
