"""The sign-up and preferences forms copy fields bound once (forms._bound_field) instead of
binding every field on every request: each form must still get fields of its own, with
nothing of an earlier request's data or errors in them."""

from __future__ import annotations

from notifier import forms


def _form(app, data: dict, form_class=forms.SubscribeForm):
    with app.test_request_context("/subscribe", method="POST", data=data):
        form = form_class.for_request(forms.Catalogue(()), "en")
        valid = form.validate()
    return form, valid


def _state(form) -> dict:
    return {name: (field.data, list(field.errors)) for name, field in form._fields.items()}


def test_a_form_after_a_refused_one_has_no_errors_or_data_of_it(app):
    bad, bad_valid = _form(app, {"email": "not an address", "timezone": "Mars/Base"})
    good, good_valid = _form(
        app,
        {
            "email": "Ada@Example.com",
            "language": "de",
            "timezone": "Europe/Berlin",
            "scope": "all",
            "notify_incidents": "y",
        },
    )
    assert (bad_valid, good_valid) == (False, True)
    assert _state(good) == {
        "language": ("de", []),
        "timezone": ("Europe/Berlin", []),
        "scope": ("all", []),
        "components": ([], []),
        "notify_incidents": (True, []),
        "notify_maintenance": (False, []),
        "channel": ("email", []),
        "target_url": (None, []),
        "email": ("ada@example.com", []),
        "website": (None, []),
        "started": (None, []),
    }
    # The refused form keeps its own answers.
    assert bad.email.errors == ["Please enter a valid email address, like name@example.com."]
    assert bad.timezone.errors == ["Please choose a time zone from the list."]
    assert bad.email.data == "not an address"


def test_every_form_gets_fields_of_its_own_bound_to_it(app):
    first, _ = _form(app, {"email": "a@example.com"})
    second, _ = _form(app, {"email": "b@example.com"})
    for name in first._fields:
        assert first[name] is not second[name]
        assert (first[name]._form, second[name]._form) == (first, second)
        assert (first[name].meta, second[name].meta) == (first.meta, second.meta)
    assert (first.email.data, second.email.data) == ("a@example.com", "b@example.com")


def test_copied_fields_render_as_freshly_bound_ones(app):
    form, _ = _form(app, {"email": "a@example.com"})
    with app.test_request_context("/subscribe", method="POST", data={"email": "a@example.com"}):
        fresh = forms.SubscribeForm.for_request(forms.Catalogue(()), "en")
        for name, unbound in forms.SubscribeForm._unbound_fields:
            bound = unbound.bind(form=fresh, name=name, prefix="")
            bound.process(fresh.meta.wrap_formdata(fresh, None))
            copy = forms._bound_field(fresh, unbound, {"name": name, "prefix": ""})
            copy.process(fresh.meta.wrap_formdata(fresh, None))
            assert (str(copy.label), copy(), vars(copy.flags)) == (
                str(bound.label),
                bound(),
                vars(bound.flags),
            )
    assert form.email.data == "a@example.com"
