"""The one form for a person changing a consent by hand (the profile page and the admin)."""

from __future__ import annotations

from django import forms

from customers.enums import Category, Channel, ConsentStatus, consent_status_problem


class ConsentForm(forms.Form):
    channel = forms.ChoiceField(choices=Channel.choices)
    category = forms.ChoiceField(choices=Category.choices)
    status = forms.ChoiceField(choices=ConsentStatus.choices)

    def clean(self):
        data = super().clean()
        problem = consent_status_problem(data.get("channel", ""), data.get("status", ""))
        if problem:
            self.add_error("status", problem)
        return data
