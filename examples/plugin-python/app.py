"""An example Weft plugin in Python: text statistics and keyword extraction.

    weft new text-stats --lang python && cp examples/plugin-python/app.py text-stats/
    weft build text-stats && cp text-stats/dist/text-stats.wasm plugins/
"""
from dataclasses import dataclass, field
from typing import List

from weft_sdk import Context, InvalidInput, Task, task  # noqa: F401  (Task is the plugin's export)


@dataclass
class Text:
    text: str
    top: int = 5
    stopwords: List[str] = field(default_factory=list)


@dataclass
class Stats:
    words: int
    sentences: int
    keywords: List[str]


@task("text-stats.analyse", title="Analyse text")
def analyse(input: Text, ctx: Context) -> Stats:
    """Counts words and sentences and picks the most frequent words."""
    if input.top < 1:
        raise InvalidInput("top must be at least 1")
    words = [w.strip(".,;:!?\"'()").lower() for w in input.text.split()]
    words = [w for w in words if w]
    ctx.progress(0.5, f"{len(words)} words")
    stop = {s.lower() for s in input.stopwords}
    counts: dict = {}
    for w in words:
        if w not in stop and len(w) > 2:
            counts[w] = counts.get(w, 0) + 1
    ranked = sorted(counts, key=lambda w: (-counts[w], w))
    sentences = sum(input.text.count(c) for c in ".!?") or (1 if words else 0)
    return Stats(len(words), sentences, ranked[: input.top])
