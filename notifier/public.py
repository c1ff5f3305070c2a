"""Public pages (the subscription pages come with the subscriptions issue)."""

from __future__ import annotations

from flask import Blueprint, render_template

from . import context

bp = Blueprint("public", __name__)


@bp.get("/")
def home():
    return render_template("home.html", feeds=context.settings().feed_urls)
