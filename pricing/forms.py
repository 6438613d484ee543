from __future__ import annotations

from datetime import UTC
from typing import cast

from django import forms

from pricing.models import PRICE_PLACES, PriceFields
from pricing.selectors import provider_list

_PRICE_LABELS = {
    "input": "Input",
    "output": "Output",
    "cache_read": "Cached input (read)",
    "cache_write": "Cache write, 5 minutes",
    "cache_write_1h": "Cache write, 1 hour",
    "input_audio": "Audio input",
    "output_audio": "Audio output",
}
_PRICE_HELP = {
    "input": "USD per million tokens.",
    "output": "USD per million tokens (reasoning tokens are billed as output).",
    "cache_read": "Blank: billed at the input price.",
    "cache_write": "Blank: billed at the input price.",
    "cache_write_1h": "Blank: 2× input for Claude models, otherwise the 5-minute price.",
    "input_audio": "Blank: billed at the input price.",
    "output_audio": "Blank: billed at the output price.",
}


def _price_field(name: str) -> forms.DecimalField:
    return forms.DecimalField(
        label=_PRICE_LABELS[name],
        help_text=_PRICE_HELP[name],
        required=False,
        min_value=0,
        max_digits=20,
        decimal_places=PRICE_PLACES,
        widget=forms.NumberInput(attrs={"step": "any", "placeholder": "e.g. 2.50"}),
    )


class PriceOverrideForm(forms.Form):
    """An organization's own price; parsed here, validated again by the service."""

    model = forms.CharField(
        max_length=200,
        help_text="As your calls name it, e.g. gpt-4o or ft:gpt-4o-mini:acme::abc123. "
        "A price for gpt-4o also covers its dated snapshots.",
        widget=forms.TextInput(attrs={"placeholder": "gpt-4o"}),
    )
    provider = forms.ChoiceField(required=False, help_text="Blank: this model at any provider.")
    effective_from = forms.DateTimeField(
        required=False,
        label="Effective from (UTC)",
        help_text="Blank: all calls, past and future. Calls before this moment keep "
        "their earlier price.",
        widget=forms.DateTimeInput(attrs={"placeholder": "2025-07-01 00:00"}),
    )
    notes = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), max_length=2000
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in PriceFields.PRICE_NAMES:
            self.fields[name] = _price_field(name)
        provider_field = cast(forms.ChoiceField, self.fields["provider"])
        provider_field.choices = [("", "Any provider")] + [
            (p.slug, f"{p.name} ({p.slug})") for p in provider_list()
        ]
        self.order_fields(["model", "provider", *PriceFields.PRICE_NAMES, "effective_from"])

    def clean(self):
        super().clean()
        data = self.cleaned_data
        if data.get("input") is None and data.get("output") is None:
            raise forms.ValidationError("Set at least an input or an output price.")
        moment = data.get("effective_from")
        if moment is not None and moment.tzinfo is None:
            data["effective_from"] = moment.replace(tzinfo=UTC)
        return data

    @property
    def prices(self) -> dict:
        return {name: self.cleaned_data.get(name) for name in PriceFields.PRICE_NAMES}

    @classmethod
    def initial_from(cls, override) -> dict:
        initial = {
            "model": override.model,
            "provider": override.provider,
            "effective_from": None if override.since_always else override.effective_from,
            "notes": override.notes,
        }
        initial.update({name: getattr(override, name) for name in PriceFields.PRICE_NAMES})
        return initial
