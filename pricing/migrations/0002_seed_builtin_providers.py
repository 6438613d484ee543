"""Seed the three built-in providers (their upstreams come from settings) and
the price-version row. Prices themselves come from `manage.py sync_prices`."""

from django.db import migrations

BUILTINS = [
    # slug, name, api_style, provider-level model rule (orders the engine's fallback)
    ("openai", "OpenAI", "openai", {"or": [{"starts_with": "gpt-"}, {"regex": "^o[134]"}]}),
    ("anthropic", "Anthropic", "anthropic", {"contains": "claude"}),
    ("gemini", "Google Gemini", "gemini", {"contains": "gemini"}),
]


def seed(apps, schema_editor):
    Provider = apps.get_model("pricing", "Provider")
    PricingVersion = apps.get_model("pricing", "PricingVersion")
    for slug, name, api_style, model_match in BUILTINS:
        Provider.objects.get_or_create(
            slug=slug,
            defaults={"name": name, "api_style": api_style, "model_match": model_match},
        )
    PricingVersion.objects.get_or_create(pk=1, defaults={"version": 0})


class Migration(migrations.Migration):
    dependencies = [("pricing", "0001_initial")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
