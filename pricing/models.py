"""The price book: providers, per-model prices (global, effective-dated) and
per-organization overrides.

Prices are USD per million tokens, Decimal, never float. A price change is a
new `ModelPrice` row with a later `effective_from`, so every call keeps the
price that was in effect when it was made. The cost engine
(pricing.engine) reads all of this once into memory; writes go through
pricing.services, which bump `PricingVersion` so every process reloads.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from accounts.models import Organization
from config.netguard import Unresolvable, UnsafeURL, check_public_url
from pricing.matching import validate_match_rules, validate_time_window

# "In effect since always": the effective_from of a model's first price.
PRICE_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
PRICE_DIGITS = 20
PRICE_PLACES = 10
BUILTIN_PROVIDERS = ("openai", "anthropic", "gemini")
# First path segments that can never be a provider slug: the proxy's own routes
# and Django's top-level pages (a test checks this against config.urls). The
# proxy leaves `/<reserved>/v1/…` to Django (a customer named "v1" has a page),
# and the admin refuses them as slugs (such a provider could never be reached).
RESERVED_SLUGS = frozenset(
    {
        *("v1", "v1beta", *BUILTIN_PROVIDERS),
        *("accounts", "admin", "api", "customers", "dashboard", "features", "healthz"),
        *("invite", "keys", "models", "organizations", "pricing", "requests", "settings"),
        *("billing", "favicon.ico", "matrix", "simulate", "static", "traces"),
    }
)


class ApiStyle(models.TextChoices):
    OPENAI = "openai", "OpenAI-compatible"
    ANTHROPIC = "anthropic", "Anthropic"
    GEMINI = "gemini", "Gemini"


class PriceSource(models.TextChoices):
    GENAI_PRICES = "genai-prices", "genai-prices (bundled data)"
    ADMIN = "admin", "Admin (created or edited by staff)"


class Provider(models.Model):
    """An upstream the proxy can reach and whose models we price.

    The three built-ins (openai, anthropic, gemini) take their upstream URLs
    from settings; any other active provider with api_style openai and a
    base_url is served by the proxy at `/<slug>/v1/*`.
    """

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=120)
    api_style = models.CharField(max_length=16, choices=ApiStyle.choices, default=ApiStyle.OPENAI)
    base_url = models.URLField(
        max_length=300,
        blank=True,
        help_text="Upstream root without /v1, e.g. https://api.groq.com/openai; the proxy "
        "appends the path after /<slug>. Blank for the built-ins (set in settings).",
    )
    is_active = models.BooleanField(default=True)
    # Which model names are this provider's own (e.g. contains "claude" →
    # anthropic): orders the cross-provider fallback in the cost engine.
    model_match = models.JSONField(null=True, blank=True, validators=[validate_match_rules])
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name or self.slug

    def clean(self) -> None:
        """A base URL must not reach internal addresses (loopback, private,
        link-local, metadata) unless AISPENDTRACK_ALLOW_PRIVATE_UPSTREAMS is on:
        tenants' provider keys would be sent there. A name that does not
        resolve now may be saved; the proxy checks every resolution again."""
        super().clean()
        if not self.base_url:
            return
        try:
            check_public_url(
                self.base_url, allow_private=settings.AISPENDTRACK_ALLOW_PRIVATE_UPSTREAMS
            )
        except Unresolvable:
            pass
        except UnsafeURL as error:
            raise ValidationError(
                {
                    "base_url": f"{error}. Self-hosters calling a local model can set "
                    "AISPENDTRACK_ALLOW_PRIVATE_UPSTREAMS=1."
                }
            ) from None


class PriceFields(models.Model):
    """USD per million tokens; blank means "not priced separately" (see engine)."""

    input = models.DecimalField(
        max_digits=PRICE_DIGITS, decimal_places=PRICE_PLACES, null=True, blank=True
    )
    output = models.DecimalField(
        max_digits=PRICE_DIGITS, decimal_places=PRICE_PLACES, null=True, blank=True
    )
    cache_read = models.DecimalField(
        max_digits=PRICE_DIGITS,
        decimal_places=PRICE_PLACES,
        null=True,
        blank=True,
        help_text="Cached input; blank: billed at the input price.",
    )
    cache_write = models.DecimalField(
        max_digits=PRICE_DIGITS,
        decimal_places=PRICE_PLACES,
        null=True,
        blank=True,
        help_text="5-minute cache writes; blank: billed at the input price.",
    )
    cache_write_1h = models.DecimalField(
        max_digits=PRICE_DIGITS,
        decimal_places=PRICE_PLACES,
        null=True,
        blank=True,
        help_text="1-hour cache writes; blank: 2× input for Claude models, else the "
        "5-minute write price.",
    )
    input_audio = models.DecimalField(
        max_digits=PRICE_DIGITS,
        decimal_places=PRICE_PLACES,
        null=True,
        blank=True,
        help_text="Blank: audio input billed at the input price.",
    )
    output_audio = models.DecimalField(
        max_digits=PRICE_DIGITS,
        decimal_places=PRICE_PLACES,
        null=True,
        blank=True,
        help_text="Blank: audio output billed at the output price.",
    )
    effective_from = models.DateTimeField(
        default=PRICE_EPOCH, help_text="UTC. Calls from this moment on use this price."
    )
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    PRICE_NAMES = (
        "input",
        "output",
        "cache_read",
        "cache_write",
        "cache_write_1h",
        "input_audio",
        "output_audio",
    )

    class Meta:
        abstract = True

    @property
    def since_always(self) -> bool:
        return self.effective_from <= PRICE_EPOCH


class ModelPrice(PriceFields):
    """One effective-dated price of one model at one provider (global)."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="prices")
    model_id = models.CharField(max_length=200, help_text="Canonical id, e.g. gpt-4o-mini.")
    name = models.CharField(max_length=200, blank=True)
    # genai-prices' clause structure, e.g. {"or": [{"equals": "gpt-4o-mini"},
    # {"starts_with": "gpt-4o-mini-2024"}]}. Null: the exact model_id only.
    match_rules = models.JSONField(null=True, blank=True, validators=[validate_match_rules])
    # Within a provider, rules are tried in this order (genai-prices' list
    # order, where the first match wins); staff rows default to 0, tried first.
    match_order = models.PositiveIntegerField(default=0)
    # UTC "HH:MM-HH:MM": a daily window (e.g. DeepSeek's peak hours) in which
    # this row wins over the all-day price. Blank: all day.
    time_window = models.CharField(
        max_length=17, blank=True, default="", validators=[validate_time_window]
    )
    # Context tiers: [{"above": 200000, "input": "6", "output": "22.5", ...}];
    # above N total input tokens every token uses that tier's rates.
    tiers = models.JSONField(default=list, blank=True)
    source = models.CharField(
        max_length=16, choices=PriceSource.choices, default=PriceSource.ADMIN, db_index=True
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "model_id", "effective_from", "time_window"],
                name="uniq_model_price",
            )
        ]
        indexes = [models.Index(fields=["model_id"], name="mp_model_id")]
        ordering = ["provider__slug", "model_id", "-effective_from"]

    def __str__(self) -> str:
        return f"{self.provider.slug}/{self.model_id} from {self.effective_from:%Y-%m-%d}"


class PriceOverride(PriceFields):
    """An organization's own price for a model (a negotiated discount, a
    fine-tuned or self-hosted model). Wins over the global table for that
    organization only."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="price_overrides"
    )
    provider = models.CharField(
        max_length=64, blank=True, help_text="Provider slug; blank: this model at any provider."
    )
    model = models.CharField(
        max_length=200, help_text="The model as named in calls (case-insensitive)."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "provider", "model", "effective_from"],
                name="uniq_price_override",
            )
        ]
        ordering = ["model", "provider", "-effective_from"]

    def __str__(self) -> str:
        return f"{self.organization_id}: {self.provider or '*'}/{self.model}"


class PricingVersion(models.Model):
    """A single row whose number changes with every price write, so each
    process can tell cheaply that its in-memory snapshot is stale."""

    version = models.BigIntegerField(default=0)
    changed_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"pricing v{self.version}"


class ModelBenchmark(models.Model):
    """A published quality score of a model (staff-managed, admin + CSV import).

    The cost simulator hides a cheaper model whose score falls too far below
    the current model's on a benchmark both have. Higher is better; scores are
    as published (e.g. 72.6 for 72.6 %), never invented or normalised.
    """

    model = models.CharField(
        max_length=200,
        help_text="Canonical model id as in the price list, e.g. gpt-4o or claude-sonnet-4-5.",
    )
    benchmark = models.CharField(
        max_length=100, help_text="e.g. MMLU-Pro, GPQA Diamond, AIME 2025."
    )
    score = models.DecimalField(max_digits=9, decimal_places=3, help_text="Higher is better.")
    source_url = models.URLField(max_length=500, help_text="Where the score was published.")
    as_of = models.DateField(help_text="When the score was published or measured.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model", "benchmark"], name="uniq_model_benchmark")
        ]
        ordering = ["model", "benchmark"]

    def __str__(self) -> str:
        return f"{self.model} {self.benchmark} {self.score}"
