"""Which updates an incident mail shows, in which order, and how much of each text.

Order: the updates that triggered the notification lead (the newest of them quoted as the
latest update, the others first in the timeline, all marked "new"), whatever their display
times: Statuspage lets a post be shown earlier than it was made (issue 16). The other updates
follow newest first.

Size: Gmail clips an HTML part past ~102 KB and hides what follows (the footer's preferences
and unsubscribe links) behind "[Message clipped]". A mail is built with the first rung of
LADDER and rendered; render_email steps down the ladder until the HTML part fits. Texts past a
rung's cap are cut (the mail links the whole post); earlier updates past the rung's budget are
left out, oldest first, and counted ("N earlier updates on the status page"). New updates and
the newest update are never left out, only shortened.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from . import text as texts


@dataclass(frozen=True)
class Update:
    status: str
    at: datetime | None
    text: str
    new: bool = False


@dataclass(frozen=True)
class Limits:
    """One rung; every size in characters of update text."""

    lead: int  # the quoted latest (new) update
    new: int  # each other new update
    post: int  # each earlier update
    total: int  # all timeline texts together; new updates are shown past it (shortened)
    posts: int  # earlier updates shown at most
    post_links: bool = True  # a shortened timeline post links the whole one


# The last rung is for hundreds of new updates at once: a link per post would not fit, and
# the mail's button links the incident anyway.
LADDER = (
    Limits(lead=16_000, new=4_000, post=2_000, total=40_000, posts=40),
    Limits(lead=10_000, new=1_500, post=800, total=20_000, posts=25),
    Limits(lead=6_000, new=400, post=300, total=6_000, posts=10),
    Limits(lead=3_000, new=100, post=100, total=600, posts=3, post_links=False),
)
POST_COST = 300  # what a timeline post costs besides its text: meta line and markup
MIN_NEW = 100  # a new update keeps at least this much text, however many there are


@dataclass(frozen=True)
class Shown:
    update: Update
    text: str
    cut: bool  # shortened, and the mail links the whole post


@dataclass(frozen=True)
class Selection:
    lead: Shown
    posts: tuple[Shown, ...]  # the timeline: other new updates, then earlier ones
    omitted: int  # earlier updates left out (the oldest ones)


def mark_new(updates: list[Update], fallback_count: int) -> list[Update]:
    """`updates` (newest first) with their `new` marks; content stored before the marks
    existed has none, and then the newest `fallback_count` are the new ones, as they were."""
    if any(u.new for u in updates):
        return updates
    count = max(1, fallback_count)
    return [Update(u.status, u.at, u.text, index < count) for index, u in enumerate(updates)]


def select(updates: list[Update], limits: Limits) -> Selection:
    """The lead, the timeline and the count left out, for `updates` newest first."""
    new = [u for u in updates if u.new]
    earlier = [u for u in updates if not u.new]
    if not new:  # mark_new always marks one; a bare list still leads with its newest
        new, earlier = updates[:1], updates[1:]
    lead, others = new[0], new[1:]
    budget = limits.total
    share = max(MIN_NEW, min(limits.new, budget // max(len(others), 1) - POST_COST))
    posts = [_cut(u, share) for u in others]
    budget -= sum(len(p.text) + POST_COST for p in posts)
    shown = 0
    for u in earlier:
        post = _cut(u, limits.post)
        # The newest earlier update always stays: it may be the latest post on the page.
        if shown and (shown >= limits.posts or len(post.text) + POST_COST > budget):
            break
        posts.append(post)
        budget -= len(post.text) + POST_COST
        shown += 1
    if not limits.post_links:
        posts = [Shown(p.update, p.text, False) for p in posts]
    return Selection(_cut(lead, limits.lead), tuple(posts), len(earlier) - shown)


def _cut(update: Update, limit: int) -> Shown:
    if len(update.text) <= limit:
        return Shown(update, update.text, False)
    return Shown(update, texts.truncate(update.text, limit), True)
