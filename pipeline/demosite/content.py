"""The fixture site's pages: fixed text and fixed dates, so every crawl of it yields the same items and ids.

The forum posts tell the story of the demo tasking (resale of stolen catalytic converters): criminal posts
in scope, a benign post in scope, an out-of-scope post, a protest post the First Amendment guard rejects
and a protest post with criminal conduct it quarantines. Around them: pages the crawler must never
fetch (robots-disallowed, login) or must recognise as login walls.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from html import escape

SITE_NAME = "Southside Neighbors: forum and local news"

ROBOTS_TXT = "User-agent: *\nDisallow: /private/\n"


@dataclass(frozen=True)
class Page:
    status: int
    body: str
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Post:
    number: int
    author: str
    published: str  # ISO 8601, UTC
    title: str
    paragraphs: tuple[str, ...]


POSTS = (
    Post(1, "wrenchman", "2026-02-03T22:14:00Z", "Six cats for sale tonight", (
        "Got six catalytic converters off Priuses last night, $150 each cash, no questions.",
        "Meet behind the lot on 47th after 9. First come first served.")),
    Post(2, "tooltime", "2026-02-05T15:40:00Z", "Best sawzall blade for a rusted cat?", (
        "My truck failed inspection and I need to replace the catalytic converter myself.",
        "Which sawzall blades cut through a rusted catalytic converter pipe without chewing up the hangers? "
        "Bought the new part already, just need the old one off.")),
    Post(3, "gardenlady", "2026-02-07T09:05:00Z", "Garden volunteer day", (
        "The community garden on Halsted needs volunteers this Sunday from 10 to 2.",
        "Bring gloves; we will turn the beds and plant garlic. Coffee and donuts provided.")),
    Post(4, "block_club", "2026-02-09T18:30:00Z", "Block club news", (
        "Our neighborhood meeting is Thursday at the library at 7.",
        "On Saturday we hold a peaceful march to City Hall demanding that police act on the catalytic converter "
        "thefts on our blocks. Bring signs and your neighbors.")),
    Post(5, "anon_4471", "2026-02-10T23:55:00Z", "Saturday at the scrapyard", (
        "Rally at the scrapyard Saturday at noon.",
        "After the rally we'll cut the converters off their trucks and torch the place.")),
    Post(6, "wrenchman", "2026-02-12T21:02:00Z", "Restocked", (
        "More converters in stock, DM for prices.",
        "Catalytic converters from the north side, all makes, cash only.")),
)

NEWS = (
    (1, "2026-02-04T12:00:00Z", "Police warn car owners about a wave of thefts", (
        "The 14th District reports eighteen catalytic converter thefts since January, most from hybrid cars "
        "parked on the street overnight.",
        "Police ask residents to park in lit areas, consider an anti-theft shield and report anyone offering "
        "catalytic converters for sale.")),
    (2, "2026-02-06T12:00:00Z", "School bake sale raises $2,340", (
        "Parents and students of Hamilton Elementary sold cookies, pies and cupcakes on Friday.",
        "The money buys new library books and a reading corner for the second grade.")),
)

NAV = ('<nav><a href="/">Home</a> | <a href="/forum/">Forum</a> | <a href="/news/">News</a> | '
       '<a href="/feed.xml">RSS</a> | <a href="/login">Log in</a></nav>')


def layout(title: str, main: str, head: str = "") -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">{head}<title>{escape(title)} | {escape(SITE_NAME)}</title>'
            f"</head>\n<body><header><h1 class=\"site\">{escape(SITE_NAME)}</h1>{NAV}</header>\n"
            f"<main>\n{main}\n</main>\n<footer><p>Southside Neighbors is run by volunteers.</p></footer></body></html>\n")


def paragraphs(texts: tuple[str, ...]) -> str:
    return "\n".join(f"<p>{escape(t)}</p>" for t in texts)


def post_page(p: Post) -> str:
    return layout(p.title, (
        f'<article class="post">\n<h2>{escape(p.title)}</h2>\n'
        f'<p class="meta">Posted by <span class="author">{escape(p.author)}</span> on '
        f'<time datetime="{p.published}">{p.published[:10]}</time></p>\n{paragraphs(p.paragraphs)}\n</article>'
    ), head=f'<meta name="author" content="{escape(p.author)}">')


def news_page(title: str, published: str, texts: tuple[str, ...]) -> str:
    return layout(title, (
        f'<article class="news">\n<h2>{escape(title)}</h2>\n<p class="meta">Staff report, '
        f'<time datetime="{published}">{published[:10]}</time></p>\n{paragraphs(texts)}\n</article>'))


HOME = layout("Home", """<h2>Welcome, neighbors</h2>
<p>News and talk from the South Side. Read the <a href="/forum/">community forum</a>, the latest
<a href="/news/">local news</a> or subscribe to our <a href="/feed.xml">RSS feed</a>.</p>
<ul>
<li><a href="/members/board">Members' board</a></li>
<li><a href="/members/roster">Member roster</a></li>
<li><a href="/login">Log in</a></li>
<li><a href="/private/notes">Moderator notes</a></li>
<li><a href="/report">Submit a tip</a></li>
</ul>""")

FORUM = layout("Forum", "<h2>Community forum</h2>\n<ul>\n" + "\n".join(
    f'<li><a href="/forum/post/{p.number}">{escape(p.title)}</a> by {escape(p.author)}</li>' for p in POSTS) + "\n</ul>")

NEWS_INDEX = layout("News", "<h2>Local news</h2>\n<ul>\n" + "\n".join(
    f'<li><a href="/news/{n}">{escape(title)}</a></li>' for n, _, title, _ in NEWS) + "\n</ul>")

MEMBERS_BOARD = layout("Members' board", """<h2>Members only</h2>
<p>Members only. Log in to see this content.</p>
<form method="post" action="/login">
<label>User <input type="text" name="user"></label>
<label>Password <input type="password" name="password"></label>
<button type="submit">Log in</button>
</form>""")

LOGIN = layout("Log in", """<h2>Log in</h2>
<form method="post" action="/login">
<label>User <input type="text" name="user"></label>
<label>Password <input type="password" name="password"></label>
<button type="submit">Log in</button>
</form>""")

PRIVATE_NOTES = layout("Moderator notes", "<h2>Moderator notes</h2><p>Not for crawlers: robots.txt disallows /private/.</p>")

REPORT = layout("Submit a tip", """<h2>Submit a tip</h2>
<p>Seen something on your block? Tell the block club. Tips are read by volunteers.</p>
<form method="post" action="/report/submit">
<label>Your tip <textarea name="tip"></textarea></label>
<button type="submit">Send</button>
</form>""")


def rfc822(iso: str) -> str:
    return format_datetime(datetime.fromisoformat(iso.replace("Z", "+00:00")), usegmt=True)


def rss() -> str:
    items = [(f"/news/{n}", title, published) for n, published, title, _ in NEWS]
    items.append(("/forum/post/1", POSTS[0].title, POSTS[0].published))
    entries = "\n".join(
        f"<item><title>{escape(title)}</title><link>{{base}}{path}</link><guid>{{base}}{path}</guid>"
        f"<pubDate>{rfc822(published)}</pubDate></item>" for path, title, published in items)
    return ('<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
            f"<title>{escape(SITE_NAME)}</title><link>{{base}}/</link><description>Local news and forum highlights</description>\n"
            f"{entries}\n</channel></rss>\n")


def routes() -> dict[str, Page]:
    """Path -> page. `{base}` in a body is replaced by the site's URL when served (feeds need absolute links)."""
    pages = {
        "/": Page(200, HOME, headers={"Set-Cookie": "fcm_session=abc123; Path=/"}),
        "/robots.txt": Page(200, ROBOTS_TXT, "text/plain; charset=utf-8"),
        "/forum/": Page(200, FORUM),
        "/news/": Page(200, NEWS_INDEX),
        "/feed.xml": Page(200, rss(), "application/rss+xml; charset=utf-8"),
        "/members/board": Page(200, MEMBERS_BOARD),
        "/members/roster": Page(302, "<p>Redirecting to the login page.</p>",
                                headers={"Location": "/login?next=/members/roster"}),
        "/login": Page(200, LOGIN),
        "/private/notes": Page(200, PRIVATE_NOTES),
        "/report": Page(200, REPORT),
    }
    pages.update({f"/forum/post/{p.number}": Page(200, post_page(p)) for p in POSTS})
    pages.update({f"/news/{n}": Page(200, news_page(title, published, texts)) for n, published, title, texts in NEWS})
    return pages
