"""The `hash-words` model: the resources of the `provider` export."""

from __future__ import annotations

import json
import math
import re
from typing import List, Optional

from componentize_py_types import Err
from wit_world.exports import provider as wit
from wit_world.imports import log, models

WORD = re.compile(r"[a-z0-9]+")


def fnv1a(word: str) -> int:
    """The 32-bit FNV-1a hash of `word`'s UTF-8 bytes."""
    h = 0x811C9DC5
    for b in word.encode():
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def words(text: str) -> List[str]:
    return WORD.findall(text.lower())


def embed_one(text: str, dimensions: int) -> List[float]:
    vector = [0.0] * dimensions
    for word in words(text):
        h = fnv1a(word)
        vector[h % dimensions] += 1.0 if (h >> 31) & 1 == 0 else -1.0
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector] if norm > 0 else vector


def invalid(message: str) -> Err:
    return Err(models.ModelError_InvalidRequest(message))


class Model(wit.Model):
    def __init__(self, dimensions: int):
        self.size = dimensions

    @classmethod
    def load(cls, config: wit.ModelConfig) -> "Model":
        if config.kind != wit.ModelKind.EMBEDDING:
            raise invalid(f"model `{config.id}`: hash-words only embeds (set kind = \"embedding\")")
        try:
            settings = json.loads(config.settings)
        except ValueError as e:
            raise invalid(f"model `{config.id}`: settings are not JSON: {e}")
        dimensions = settings.get("dimensions", 64)
        if not isinstance(dimensions, int) or isinstance(dimensions, bool) or not 1 <= dimensions <= 4096:
            raise invalid(
                f"model `{config.id}`: settings.dimensions must be an integer from 1 to 4096, not {dimensions!r}"
            )
        log.log(log.Level.INFO, f"hash-words: model `{config.id}` loaded with {dimensions} dimensions")
        return cls(dimensions)

    def dimensions(self) -> Optional[int]:
        return self.size

    def embed(self, texts: List[str]) -> List[List[float]]:
        return [embed_one(t, self.size) for t in texts]

    def generate(self, prompt: models.Prompt, options: models.GenerateOptions) -> wit.GenerationStream:
        raise invalid("hash-words is an embedding model: it does not generate")

    def count_tokens(self, text: str) -> int:
        return len(words(text))


class GenerationStream(wit.GenerationStream):
    """Never made (this model does not generate); the world requires it."""

    def next(self) -> wit.Chunk:
        raise invalid("hash-words does not generate")
