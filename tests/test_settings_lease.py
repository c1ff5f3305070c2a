"""DISPATCH_LEASE_SECONDS: whole or fractional seconds (the kill -9 tests use 0.3)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from notifier.settings import SettingsError, load_settings


def test_the_default_lease_stays_two_minutes():
    assert load_settings({}).dispatch_lease_seconds == 120


@pytest.mark.parametrize(("raw", "seconds"), [("1", 1.0), ("0.3", 0.3), (" 90 ", 90.0)])
def test_a_lease_may_be_whole_or_fractional_seconds(raw, seconds):
    value = load_settings({"DISPATCH_LEASE_SECONDS": raw}).dispatch_lease_seconds
    assert value == seconds
    assert timedelta(seconds=value) == timedelta(seconds=seconds)  # as the dispatcher uses it


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("soon", "DISPATCH_LEASE_SECONDS must be a number, got 'soon'"),
        ("0", "DISPATCH_LEASE_SECONDS must be positive, got '0'"),
        ("-1", "DISPATCH_LEASE_SECONDS must be positive, got '-1'"),
        ("nan", "DISPATCH_LEASE_SECONDS must be finite, got nan"),
        ("inf", "DISPATCH_LEASE_SECONDS must be finite, got inf"),
    ],
)
def test_a_lease_that_is_not_a_positive_finite_number_is_refused(raw, message):
    with pytest.raises(SettingsError) as caught:
        load_settings({"DISPATCH_LEASE_SECONDS": raw})
    assert str(caught.value) == message
