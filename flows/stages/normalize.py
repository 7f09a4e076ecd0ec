"""Clean a batch of posts before it lands, whatever source it came from.

Vectorized over the whole batch (pyarrow compute): text in Unicode NFC without control
characters or surrounding blanks, hashtags lower case without '#', handles without '@'.
"""

from __future__ import annotations

import unicodedata

import pyarrow as pa
import pyarrow.compute as pc

from flows.schema import POST_SCHEMA

_CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"


def _tags(column: pa.ChunkedArray, prefix: str, lower: bool) -> pa.ChunkedArray:
    """Apply a string clean-up to every element of a list<string> column, keeping the lists."""
    chunks = []
    for chunk in column.chunks:
        # a sliced chunk's offsets start past 0 and its values hold the whole buffer: rebase both
        # (Arrow refuses a null mask over offsets that do not start at 0)
        start, stop = chunk.offsets[0].as_py(), chunk.offsets[-1].as_py()
        offsets = pc.subtract(chunk.offsets, pa.scalar(start, chunk.offsets.type))
        values = pc.utf8_ltrim(chunk.values.slice(start, stop - start), characters=prefix)
        values = pc.utf8_lower(values) if lower else values
        chunks.append(pa.ListArray.from_arrays(offsets, values, mask=chunk.is_null()))
    return pa.chunked_array(chunks, type=column.type)


def _only_where(mask: pa.Array, values: pa.Array, fix) -> pa.Array:
    """`fix` applied to the masked values only: most texts need no fix, and the fixes are slow."""
    if not pc.any(mask).as_py():
        return values
    return pc.replace_with_mask(values, mask, fix(pc.filter(values, mask)))


def _clean_text(text: pa.ChunkedArray) -> pa.Array:
    text = text.combine_chunks()
    # CPython's normalize returns at once for text already in NFC (nearly all); Arrow's does not.
    text = _only_where(
        pc.invert(pc.string_is_ascii(text)),
        text,
        lambda t: pa.array([unicodedata.normalize("NFC", s) for s in t.to_pylist()], pa.string()),
    )
    text = _only_where(
        pc.match_substring_regex(text, _CONTROL), text, lambda t: pc.replace_substring_regex(t, _CONTROL, "")
    )
    return pc.utf8_trim_whitespace(text)


def normalize(posts: pa.Table) -> pa.Table:
    """Return `posts` in POST_SCHEMA with cleaned text, hashtags and handles."""
    posts = posts if posts.schema.equals(POST_SCHEMA) else posts.cast(POST_SCHEMA)
    text = _clean_text(posts.column("text"))
    columns = {
        "text": text,
        "hashtag": pc.utf8_lower(pc.utf8_ltrim(posts.column("hashtag"), characters="#")),
        "author_handle": pc.utf8_ltrim(posts.column("author_handle"), characters="@"),
        "lang": pc.utf8_lower(posts.column("lang")),
        "hashtags": _tags(posts.column("hashtags"), "#", lower=True),
        "mentions": _tags(posts.column("mentions"), "@", lower=False),
    }
    for name, column in columns.items():
        posts = posts.set_column(POST_SCHEMA.get_field_index(name), POST_SCHEMA.field(name), column)
    return posts
