"""Forms of the budget and alert-channel pages: parsing only; the rules live in
alerts.services (budget_clean, channel_clean), shared with the REST API."""

from __future__ import annotations

from django import forms

from alerts.models import BudgetAction, BudgetPeriod, BudgetScope, ChannelKind


class BudgetForm(forms.Form):
    name = forms.CharField(max_length=100)
    scope = forms.ChoiceField(choices=BudgetScope.choices)
    scope_value = forms.CharField(
        required=False,
        max_length=256,
        help_text="The customer id, feature, key or environment; empty for the organization.",
        widget=forms.TextInput(attrs={"list": "scope-values-customer", "autocomplete": "off"}),
    )
    period = forms.ChoiceField(choices=BudgetPeriod.choices)
    amount = forms.DecimalField(min_value=0, decimal_places=10, max_digits=20, label="Amount (USD)")
    thresholds = forms.CharField(
        initial="50, 75, 90, 100", help_text="Percentages that alert, comma-separated."
    )
    action = forms.ChoiceField(choices=BudgetAction.choices)
    channels = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple, choices=()
    )
    is_active = forms.BooleanField(required=False, initial=True, label="Active")

    def __init__(self, *args, channels=(), **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields["channels"]
        assert isinstance(field, forms.MultipleChoiceField)
        field.choices = [(str(c.pk), str(c)) for c in channels]

    def data_for_service(self) -> dict:
        data = dict(self.cleaned_data)
        data["thresholds"] = [
            part.strip() for part in str(data["thresholds"]).split(",") if part.strip()
        ]
        data["channels"] = [int(pk) for pk in data["channels"]]
        return data


class ChannelForm(forms.Form):
    name = forms.CharField(max_length=100)
    kind = forms.ChoiceField(choices=ChannelKind.choices)
    target = forms.CharField(
        max_length=2000,
        help_text="Email addresses (comma-separated), a Slack incoming-webhook URL, "
        "or your HTTPS endpoint.",
    )
    is_default = forms.BooleanField(
        required=False, initial=True, label="Also send anomaly alerts here"
    )
