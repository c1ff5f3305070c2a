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
        ("nan", "DISPATCH_LEASE_SECONDS must be a number, got 'nan'"),
        ("inf", "DISPATCH_LEASE_SECONDS must be a number, got 'inf'"),
        ("4e-7", "DISPATCH_LEASE_SECONDS must be between 0.1 and 86,400 seconds, got '4e-7'"),
        ("1e12", "DISPATCH_LEASE_SECONDS must be between 0.1 and 86,400 seconds, got '1e12'"),
    ],
)
def test_a_lease_that_is_not_a_positive_finite_number_is_refused(raw, message):
    with pytest.raises(SettingsError) as caught:
        load_settings({"DISPATCH_LEASE_SECONDS": raw})
    assert str(caught.value) == message


@pytest.mark.parametrize("raw", ["0.1", "86400"])
def test_the_lease_range_includes_its_ends(raw):
    assert load_settings({"DISPATCH_LEASE_SECONDS": raw}).dispatch_lease_seconds == float(raw)


def test_no_float_setting_takes_nan_or_infinity():
    # float() parses "nan" and "inf"; a timeout of nan passed `value <= 0` and reached urllib.
    for raw in ("nan", "inf", "-inf"):
        with pytest.raises(SettingsError) as caught:
            load_settings({"SENDGRID_TIMEOUT_SECONDS": raw})
        assert str(caught.value) == f"SENDGRID_TIMEOUT_SECONDS must be a number, got {raw!r}"
