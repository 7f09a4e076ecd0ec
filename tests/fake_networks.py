"""Fakes of X, Mastodon, Bluesky and Reddit, on the machinery of `fake_apis`.

Each answers as its API's documentation shows (paths, parameters, paging, payload shapes,
rate-limit headers) over a list of posts the test controls.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fake_apis import T0, FakeApi, Reply, Request, iso

# --- Mastodon --------------------------------------------------------------------------------


def mastodon_status(
    local_id: int,
    origin: str,
    n: int,
    tag: str = "dataengineering",
    *,
    host: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A Status entity as `GET /api/v1/timelines/tag/:hashtag` returns it.

    `origin` is the author's home instance, `host` the instance serving it (a remote status
    there has another local id but the same `uri`, and `acct` with the domain).
    """
    host = host or origin
    user = f"user{n % 5}"
    remote = host != origin
    created = T0 + timedelta(minutes=n)
    status = {
        "id": str(local_id),
        "created_at": iso(created),
        "in_reply_to_id": None,
        "in_reply_to_account_id": None,
        "sensitive": False,
        "spoiler_text": "",
        "visibility": "public",
        "language": "en",
        "uri": f"https://{origin}/users/{user}/statuses/{1000 + n}",
        "url": f"https://{origin}/@{user}/{1000 + n}",
        "replies_count": n % 3,
        "reblogs_count": n % 4,
        "favourites_count": n,
        "edited_at": None,
        "content": (
            f'<p>Post {n} about <a href="https://{origin}/tags/{tag}" class="mention hashtag" '
            f'rel="tag">#<span>{tag}</span></a> &amp; pipelines</p>'
            f'<p>see <a href="https://example.com/{n}" rel="nofollow noopener" target="_blank">'
            f'<span class="invisible">https://</span><span class="">example.com/{n}</span>'
            f'<span class="invisible"></span></a></p>'
        ),
        "reblog": None,
        "application": None if remote else {"name": "Web", "website": None},
        "account": {
            "id": str(90 + n % 5),
            "username": user,
            "acct": f"{user}@{origin}" if remote else user,
            "display_name": f"User {n % 5}",
            "url": f"https://{origin}/@{user}",
        },
        "media_attachments": [],
        "mentions": [],
        "tags": [{"name": tag, "url": f"https://{host}/tags/{tag}"}],
        "emojis": [],
        "card": None,
        "poll": None,
    }
    status.update(extra)
    return status


class FakeMastodon(FakeApi):
    """One instance: `statuses` (any order) served by the hashtag timeline, 40 at most a page."""

    def __init__(
        self,
        statuses: list[dict[str, Any]] | None = None,
        rate_limit: int = 300,
        remote_needs_login: bool = False,
    ) -> None:
        super().__init__()
        self.statuses = statuses or []
        self.rate_limit = rate_limit
        # Mastodon 4.5's timelines_access: hashtag feeds of remote posts for signed-in users only,
        # so a visitor's request gets 401 unless it asks for local posts alone
        self.remote_needs_login = remote_needs_login
        self.remaining = rate_limit
        self.reset = datetime.now(UTC) + timedelta(minutes=5)
        self.version = (4, 5)  # GET /api/v1/statuses?id[]= came with 4.3

    def _statuses(self, request: Request) -> Reply:
        """``GET /api/v1/statuses?id[]=`` (4.3+: the statuses found, at most 20 asked) and
        ``GET /api/v1/statuses/:id`` (404 once deleted)."""
        by_id = {s["id"]: s for s in self.statuses}
        if request.path == "/api/v1/statuses":
            ids = request.params.get("id[]", [])
            if self.version < (4, 3):
                return Reply(404, {"error": "Record not found"})
            if len(ids) > 20:
                return Reply(422, {"error": "Validation failed"})
            return Reply(200, [by_id[i] for i in dict.fromkeys(ids) if i in by_id])
        status = by_id.get(request.path.rsplit("/", 1)[1])
        return Reply(200, status) if status else Reply(404, {"error": "Record not found"})

    def answer(self, request: Request) -> Reply:
        prefix = "/api/v1/timelines/tag/"
        if request.method == "GET" and request.path.startswith("/api/v1/statuses"):
            return self._statuses(request)
        if request.method != "GET" or not request.path.startswith(prefix):
            return Reply(404, {"error": "Record not found"})
        tag = request.path.removeprefix(prefix).lower()
        q = request.query
        local = q.get("local") == "true"
        if self.remote_needs_login and not local:
            return Reply(401, {"error": "This API requires an authenticated user"})
        limit = min(int(q.get("limit", 20)), 40)
        chosen = [
            s
            for s in self.statuses
            if tag in (t["name"].lower() for t in s["tags"])
            and (not local or "@" not in s["account"]["acct"])
            and ("max_id" not in q or int(s["id"]) < int(q["max_id"]))
            and ("since_id" not in q or int(s["id"]) > int(q["since_id"]))
            and ("min_id" not in q or int(s["id"]) > int(q["min_id"]))
        ]
        chosen.sort(key=lambda s: int(s["id"]), reverse="min_id" not in q)
        page = chosen[:limit]
        if "min_id" in q:
            page.reverse()
        self.remaining = max(self.remaining - 1, 0)
        headers = {
            "X-RateLimit-Limit": str(self.rate_limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": self.reset.isoformat().replace("+00:00", "Z"),
        }
        if page:
            base = f"{self.url}{request.path}"
            headers["Link"] = (
                f'<{base}?{urlencode({"max_id": page[-1]["id"]})}>; rel="next", '
                f'<{base}?{urlencode({"min_id": page[0]["id"]})}>; rel="prev"'
            )
        return Reply(200, page, headers)


# --- X API v2 --------------------------------------------------------------------------------

TWITTER_EPOCH_MS = 1288834974657


def snowflake(time: datetime, sequence: int = 0) -> str:
    """A post id as X makes them: milliseconds since the Twitter epoch, shifted, plus a sequence."""
    return str(((int(time.timestamp() * 1000) - TWITTER_EPOCH_MS) << 22) + sequence)


def x_user(n: int) -> dict[str, Any]:
    return {"id": str(700 + n), "name": f"Pipe Person {n}", "username": f"piper{n}"}


def x_tweet(
    n: int,
    tag: str = "dataengineering",
    *,
    start: datetime | None = None,
    retweet_of: str | None = None,
) -> dict[str, Any]:
    """A post as recent search returns it with the fields the x source asks for."""
    created = (start or datetime.now(UTC) - timedelta(days=1)) + timedelta(seconds=n)
    text = f"Post {n} on #{tag} with @piper{(n + 1) % 4} https://t.co/x{n}"
    tweet = {
        "id": snowflake(created, n % 4096),
        "edit_history_tweet_ids": [],
        "author_id": x_user(n % 4)["id"],
        "created_at": iso(created),
        "conversation_id": None,
        "lang": "en",
        "source": "Twitter Web App",
        "text": ("RT @piper0: " if retweet_of else "") + text,
        "public_metrics": {
            "retweet_count": n % 3,
            "reply_count": n % 2,
            "like_count": n,
            "quote_count": 0,
            "bookmark_count": 0,
            "impression_count": 10 * n,
        },
        "entities": {
            "hashtags": [
                {"start": text.index("#"), "end": text.index("#") + len(tag) + 1, "tag": tag}
            ],
            "mentions": [
                {
                    "start": 0,
                    "end": 0,
                    "username": f"piper{(n + 1) % 4}",
                    "id": x_user((n + 1) % 4)["id"],
                }
            ],
            "urls": [
                {
                    "start": 0,
                    "end": 0,
                    "url": f"https://t.co/x{n}",
                    "expanded_url": f"https://example.com/{n}",
                    "display_url": f"example.com/{n}",
                }
            ],
        },
    }
    tweet["edit_history_tweet_ids"] = [tweet["id"]]
    tweet["conversation_id"] = tweet["id"]
    if retweet_of:
        tweet["referenced_tweets"] = [{"type": "retweeted", "id": retweet_of}]
    return tweet


class FakeX(FakeApi):
    """``GET /2/tweets/search/recent`` over `tweets`, with the bearer token `token`.

    Authors come from `users` (default: `x_user` 0 to 3); the posts that `tweets` reference, in
    ``includes.tweets`` when the request expands ``referenced_tweets.id``, from `referenced`.
    """

    def __init__(
        self,
        tweets: list[dict[str, Any]] | None = None,
        token: str = "test-bearer-token",
        *,
        users: list[dict[str, Any]] | None = None,
        referenced: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__()
        self.tweets = tweets or []
        self.token = token
        self.users = users if users is not None else [x_user(n) for n in range(4)]
        self.referenced = referenced or []
        self.remaining = 450
        self.billed = {"posts": 0, "users": 0}  # what X would bill: every post and user returned

    def answer(self, request: Request) -> Reply:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return Reply(
                401,
                {
                    "title": "Unauthorized",
                    "type": "about:blank",
                    "status": 401,
                    "detail": "Unauthorized",
                },
            )
        if request.path == "/2/tweets":
            return self._lookup(request)
        if request.path != "/2/tweets/search/recent":
            return Reply(404, {"errors": [{"message": "Sorry, that page does not exist"}]})
        q = request.query
        size = int(q.get("max_results", 10))
        if not 10 <= size <= 100:
            return Reply(
                400,
                {
                    "errors": [
                        {
                            "parameters": {"max_results": [str(size)]},
                            "message": f"The `max_results` query parameter value [{size}] is not between 10 and 100",
                        }
                    ],
                    "title": "Invalid Request",
                    "detail": "One or more parameters to your request was invalid.",
                    "type": "https://api.twitter.com/2/problems/invalid-request",
                },
            )
        terms = q["query"].split()
        tag = terms[0].lstrip("#").lower()
        chosen = [
            t
            for t in self.tweets
            if f"#{tag}" in t["text"].lower()
            and (
                "-is:retweet" not in terms
                or all(ref["type"] != "retweeted" for ref in t.get("referenced_tweets") or ())
            )
            and int(t["id"]) > int(q.get("since_id", 0))
            and (
                "next_token" not in q
                or int(t["id"]) < int(q["next_token"].removeprefix("b26v89c19zqg8o3f"))
            )
        ]
        chosen.sort(key=lambda t: int(t["id"]), reverse=True)
        page, rest = chosen[:size], chosen[size:]
        self.remaining -= 1
        headers = {
            "x-rate-limit-limit": "450",
            "x-rate-limit-remaining": str(self.remaining),
            "x-rate-limit-reset": str(int(time.time()) + 900),
        }
        meta: dict[str, Any] = {"result_count": len(page)}
        if page:
            meta.update(newest_id=page[0]["id"], oldest_id=page[-1]["id"])
        if rest:
            meta["next_token"] = "b26v89c19zqg8o3f" + page[-1]["id"]
        body: dict[str, Any] = {"meta": meta}
        if page:
            authors = {t["author_id"] for t in page}
            body["data"] = page
            body["includes"] = {"users": [u for u in self.users if u["id"] in authors]}
            if "referenced_tweets.id" in q.get("expansions", "").split(","):
                ids = {ref["id"] for t in page for ref in t.get("referenced_tweets") or ()}
                if included := [t for t in self.referenced if t["id"] in ids]:
                    body["includes"]["tweets"] = included
            self.billed["posts"] += len(page)
            self.billed["users"] += len(body["includes"]["users"])
        return Reply(200, body, headers)


    def _lookup(self, request: Request) -> Reply:
        """``GET /2/tweets?ids=``: at most 100 ids; those not found in ``errors``; each post
        returned billed."""
        ids = request.query.get("ids", "").split(",")
        if not 1 <= len(ids) <= 100:
            return Reply(400, {"title": "Invalid Request", "detail": "ids: 1 to 100 ids"})
        by_id = {t["id"]: t for t in self.tweets}
        body: dict[str, Any] = {}
        if data := [by_id[i] for i in ids if i in by_id]:
            body["data"] = data
        if missing := [i for i in ids if i not in by_id]:
            body["errors"] = [
                {
                    "value": i,
                    "detail": f"Could not find tweet with ids: [{i}].",
                    "title": "Not Found Error",
                    "resource_type": "tweet",
                    "parameter": "ids",
                    "resource_id": i,
                    "type": "https://api.twitter.com/2/problems/resource-not-found",
                }
                for i in missing
            ]
        if "referenced_tweets.id" in request.query.get("expansions", "").split(","):
            refs = {ref["id"] for t in data for ref in t.get("referenced_tweets") or ()}
            if included := [t for t in self.referenced if t["id"] in refs]:
                body["includes"] = {"tweets": included}
        self.billed["posts"] += len(data) + len((body.get("includes") or {}).get("tweets", ()))
        return Reply(200, body)


# --- Bluesky ---------------------------------------------------------------------------------


def bluesky_post(n: int, tag: str = "dataengineering", **record: Any) -> dict[str, Any]:
    """An ``app.bsky.feed.defs#postView`` as searchPosts returns it."""
    handle = f"pipes{n % 3}.bsky.social"
    did = f"did:plc:author{n % 3}"
    text = f"Post {n} on #{tag} with @friend.bsky.social see example.com/{n} é"
    data = text.encode()

    def span(part: str) -> dict[str, int]:
        start = data.index(part.encode())
        return {"byteStart": start, "byteEnd": start + len(part.encode())}

    indexed = T0 + timedelta(minutes=n)
    return {
        "uri": f"at://{did}/app.bsky.feed.post/3kpost{n:05d}",
        "cid": f"bafyreicid{n}",
        "author": {
            "did": did,
            "handle": handle,
            "displayName": f"Pipes {n % 3}",
            "labels": [],
            "createdAt": "2024-01-01T00:00:00.000Z",
        },
        "record": {
            "$type": "app.bsky.feed.post",
            "text": text,
            "createdAt": iso(indexed - timedelta(seconds=2)),
            "langs": ["en"],
            "facets": [
                {
                    "index": span(f"#{tag}"),
                    "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": tag}],
                },
                {
                    "index": span("@friend.bsky.social"),
                    "features": [
                        {"$type": "app.bsky.richtext.facet#mention", "did": "did:plc:friend"}
                    ],
                },
                {
                    "index": span(f"example.com/{n}"),
                    "features": [
                        {"$type": "app.bsky.richtext.facet#link", "uri": f"https://example.com/{n}"}
                    ],
                },
            ],
            **record,
        },
        "replyCount": n % 2,
        "repostCount": n % 3,
        "likeCount": n,
        "quoteCount": 1,
        "indexedAt": iso(indexed),
        "labels": [],
    }


class FakeBluesky(FakeApi):
    """A PDS: createSession / refreshSession, and searchPosts behind the session.

    An access token works for `access_uses` requests, then answers 400 ExpiredToken.
    """

    def __init__(
        self,
        posts: list[dict[str, Any]] | None = None,
        handle: str = "me.bsky.social",
        password: str = "app-pass-word-1234",
        access_uses: int = 1000,
    ) -> None:
        super().__init__()
        self.posts = posts or []
        self.handle, self.password = handle, password
        self.access_uses = access_uses
        self.tokens: dict[str, int] = {}  # access token → uses left
        self.refresh_tokens: set[str] = set()
        self.sessions = 0

    def _session(self) -> Reply:
        self.sessions += 1
        access, refresh = f"access-{self.sessions}", f"refresh-{self.sessions}"
        self.tokens[access] = self.access_uses
        self.refresh_tokens.add(refresh)
        return Reply(
            200,
            {
                "accessJwt": access,
                "refreshJwt": refresh,
                "handle": self.handle,
                "did": "did:plc:me",
                "active": True,
            },
        )

    def answer(self, request: Request) -> Reply:
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        if request.path == "/xrpc/com.atproto.server.createSession":
            body = request.body or {}
            if (body.get("identifier"), body.get("password")) != (self.handle, self.password):
                return Reply(
                    401,
                    {
                        "error": "AuthenticationRequired",
                        "message": "Invalid identifier or password",
                    },
                )
            return self._session()
        if request.path == "/xrpc/com.atproto.server.refreshSession":
            if bearer not in self.refresh_tokens:
                return Reply(400, {"error": "ExpiredToken", "message": "Token has been revoked"})
            self.refresh_tokens.discard(bearer)
            return self._session()
        if request.path == "/xrpc/app.bsky.feed.getPosts":  # the AppView's: no account
            uris = request.params.get("uris", [])
            if len(uris) > 25:
                return Reply(400, {"error": "InvalidRequest", "message": "uris: at most 25"})
            by_uri = {p["uri"]: p for p in self.posts}
            return Reply(200, {"posts": [by_uri[u] for u in uris if u in by_uri]})
        if request.path != "/xrpc/app.bsky.feed.searchPosts":
            return Reply(
                501, {"error": "MethodNotImplemented", "message": "Method Not Implemented"}
            )
        if bearer not in self.tokens:
            return Reply(
                401, {"error": "AuthenticationRequired", "message": "Authentication Required"}
            )
        if self.tokens[bearer] <= 0:
            return Reply(400, {"error": "ExpiredToken", "message": "Token has expired"})
        self.tokens[bearer] -= 1
        q = request.query
        tag = q["q"].lstrip("#").lower()
        limit = int(q.get("limit", 25))
        if not 1 <= limit <= 100:
            return Reply(400, {"error": "InvalidRequest", "message": "limit must be <= 100"})
        # `since` and `sort=latest` go by sortAt, the earlier of createdAt and indexedAt
        chosen = [
            p
            for p in self.posts
            if f"#{tag}" in p["record"]["text"].lower()
            and ("since" not in q or sort_at(p) >= datetime.fromisoformat(q["since"]))
        ]
        chosen.sort(key=sort_at, reverse=True)
        offset = int(q.get("cursor", 0))
        page = chosen[offset : offset + limit]
        body: dict[str, Any] = {"posts": page, "hitsTotal": len(chosen)}
        if offset + limit < len(chosen):
            body["cursor"] = str(offset + limit)
        headers = {
            "ratelimit-limit": "3000",
            "ratelimit-remaining": "2999",
            "ratelimit-reset": str(int(time.time()) + 300),
            "ratelimit-policy": "3000;w=300",
        }
        return Reply(200, body, headers)


def sort_at(post: dict[str, Any]) -> datetime:
    indexed = datetime.fromisoformat(post["indexedAt"])
    try:
        return min(indexed, datetime.fromisoformat(post["record"]["createdAt"]))
    except (KeyError, TypeError, ValueError):
        return indexed


# --- Reddit ----------------------------------------------------------------------------------


def base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, rest = divmod(number, 36)
        text = digits[rest] + text
        if not number:
            return text


def reddit_link(n: int, subreddit: str = "dataengineering", **extra: Any) -> dict[str, Any]:
    """A link (``kind: t3``) as listings return it (``raw_json=1``), a subset of its ~100 fields."""
    post_id = base36(1_000_000 + n)
    created = T0 + timedelta(minutes=n)
    data = {
        "id": post_id,
        "name": f"t3_{post_id}",
        "subreddit": subreddit,
        "subreddit_name_prefixed": f"r/{subreddit}",
        "title": f"Post {n}: how do you run #DataEngineering pipelines?",
        "selftext": f"Asking u/helper{n % 3} too, see https://example.com/{n}.",
        "author": f"redditor{n % 4}",
        "created_utc": created.timestamp(),
        "permalink": f"/r/{subreddit}/comments/{post_id}/post_{n}/",
        "url": f"https://www.reddit.com/r/{subreddit}/comments/{post_id}/post_{n}/",
        "is_self": True,
        "score": n,
        "ups": n,
        "upvote_ratio": 0.9,
        "num_comments": n % 5,
        "num_crossposts": 0,
        "over_18": False,
        "stickied": False,
    }
    data.update(extra)
    return {"kind": "t3", "data": data}


class FakeReddit(FakeApi):
    """``POST /api/v1/access_token`` and the listings ``/r/<sub>/new`` and ``/search``."""

    def __init__(
        self,
        links: list[dict[str, Any]] | None = None,
        client_id: str = "app-id",
        secret: str = "app-secret-value",
    ) -> None:
        super().__init__()
        self.links = links or []
        self.basic = (
            "Basic " + __import__("base64").b64encode(f"{client_id}:{secret}".encode()).decode()
        )
        self.tokens: set[str] = set()
        self.grants = 0

    def answer(self, request: Request) -> Reply:
        if request.path == "/api/v1/access_token":
            if request.headers.get("authorization") != self.basic:
                return Reply(401, {"message": "Unauthorized", "error": 401})
            if (request.body or {}).get("grant_type") != "client_credentials":
                return Reply(200, {"error": "unsupported_grant_type"})
            self.grants += 1
            token = f"token-{self.grants}"
            self.tokens.add(token)
            return Reply(
                200,
                {"access_token": token, "token_type": "bearer", "expires_in": 86400, "scope": "*"},
            )
        if (
            request.headers.get("authorization", "").removeprefix("bearer ").removeprefix("Bearer ")
            not in self.tokens
        ):
            return Reply(401, {"message": "Unauthorized", "error": 401})
        q = request.query
        if request.path == "/api/info":  # deleted and removed posts stay, marked
            names = q.get("id", "").split(",")
            if len(names) > 100:
                return Reply(400, {"message": "Bad Request", "error": 400})
            by_name = {link["data"]["name"]: link for link in self.links}
            found = [by_name[n] for n in names if n in by_name]
            return Reply(200, {"kind": "Listing", "data": {"after": None, "children": found}})
        if request.path == "/search":
            chosen = [
                link for link in self.links if q["q"].lower() in link["data"]["title"].lower()
            ]
        elif request.path.startswith("/r/") and request.path.endswith("/new"):
            sub = request.path.split("/")[2].lower()
            chosen = [link for link in self.links if link["data"]["subreddit"].lower() == sub]
        else:
            return Reply(404, {"message": "Not Found", "error": 404})
        chosen.sort(key=lambda link: int(link["data"]["id"], 36), reverse=True)
        if "after" in q:
            after = int(q["after"].removeprefix("t3_"), 36)
            chosen = [link for link in chosen if int(link["data"]["id"], 36) < after]
        limit = min(int(q.get("limit", 25)), 100)
        page = chosen[:limit]
        more = len(chosen) > limit
        headers = {
            "x-ratelimit-used": "1",
            "x-ratelimit-remaining": "99.0",
            "x-ratelimit-reset": "300",
        }
        return Reply(
            200,
            {
                "kind": "Listing",
                "data": {
                    "after": page[-1]["data"]["name"] if more else None,
                    "before": None,
                    "dist": len(page),
                    "modhash": None,
                    "geo_filter": "",
                    "children": page,
                },
            },
            headers,
        )
