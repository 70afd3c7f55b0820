"""A provider plugin in Python: a tiny, deterministic embedding model.

`hash-words` embeds a text by hashing each of its words (lower-cased,
letters and digits) into one of `dimensions` buckets (FNV-1a, so the same on
every machine and every run), with a sign from another bit of the hash,
then scaling the vector to length 1. Texts sharing words get close vectors:
enough to rank a handful of sentences, and cheap enough to test with.

Serve it from the host's configuration::

    [models.words]
    provider = "plugin:hash-words"   # this file built as hash-words.wasm
    kind = "embedding"
    model = "hash-words"
    settings = { dimensions = 64 }

Build: `weft build --world provider-plugin` (componentize-py). The model
itself is in `provider.py`: componentize-py takes an exported interface's
resources from the module named after the interface.
"""

from wit_world import exports

import provider  # noqa: F401  (the resources: `Model`, `GenerationStream`)


class Provider(exports.Provider):
    """The `provider` export: all of it is in its resources."""
