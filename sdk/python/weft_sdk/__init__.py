"""weft_sdk: write Weft tasks in Python.

A task is a decorated function whose input and output are typed (dataclasses,
TypedDicts, or plain types); the SDK derives their JSON Schemas, implements the
WIT `weft:plugin/task` export, and maps exceptions to task errors::

    from dataclasses import dataclass
    from weft_sdk import task, Context, Task  # Task: the export; keep this import

    @dataclass
    class Text:
        text: str

    @task("demo.shout", title="Shout")
    def shout(input: Text, ctx: Context) -> Text:
        \"\"\"Upper-cases the text.\"\"\"
        return Text(input.text.upper())

`weft build` (componentize-py) turns the module into a WASI 0.2 component.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import traceback
import types as _pytypes
import typing
from typing import Any, Callable, Dict, List, Optional

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import log as _log
from wit_world.imports import config as _config
from wit_world.imports import models as _models
from wit_world.imports import storage as _storage
from wit_world.imports import vectors as _vectors
from wit_world.imports import progress as _progress
from wit_world.imports import types as _types

__all__ = [
    "task", "Context", "Task", "TaskError", "InvalidInput", "Failed", "Retryable",
    "log", "progress", "models", "storage", "vectors", "config", "StorageConflict", "schema_of",
]


class TaskError(Exception):
    """A task failure the host understands (subclasses say which kind)."""


class InvalidInput(TaskError):
    """The input makes no sense for this task. Never retried."""


class Failed(TaskError):
    """The task failed; retrying will not help."""


class Retryable(TaskError):
    """The task failed for a passing reason; the host may retry it."""

    def __init__(self, message: str, delay_ms: Optional[int] = None):
        super().__init__(message)
        self.delay_ms = delay_ms


_LEVELS = {
    "trace": _log.Level.TRACE, "debug": _log.Level.DEBUG, "info": _log.Level.INFO,
    "warn": _log.Level.WARN, "error": _log.Level.ERROR,
}


def log(level: str, message: str) -> None:
    """Write a log line: level is trace, debug, info, warn or error."""
    _log.log(_LEVELS.get(level, _log.Level.INFO), str(message))


def progress(fraction: float, message: Optional[str] = None) -> None:
    """Report progress, fraction in [0, 1]."""
    _progress.report(float(fraction), message)


@dataclasses.dataclass
class Context:
    """What the host tells a task about its run."""

    run_id: str
    node_id: str
    attempt: int
    idempotency_key: str

    def log(self, level: str, message: str) -> None:
        log(level, message)

    def progress(self, fraction: float, message: Optional[str] = None) -> None:
        progress(fraction, message)


def _model_error(e: Err) -> TaskError:
    v = e.value
    if isinstance(v, _models.ModelError_RateLimited):
        return Retryable(f"rate limited: retry after {v.value} ms", v.value)
    if isinstance(v, _models.ModelError_Unavailable):
        return Retryable(f"model unavailable: {v.value}")
    if isinstance(v, _models.ModelError_InvalidRequest):
        return InvalidInput(f"invalid model request: {v.value}")
    return Failed(f"{type(v).__name__.split('_')[-1]}: {v.value}")


def _prompt(prompt: Any) -> Any:
    """A prompt for the host: a string, or a chat (a list of `(role,
    content)` pairs or of `{"role", "content"}` dicts)."""
    if isinstance(prompt, str):
        return _models.Prompt_Text(prompt)
    messages = []
    for m in prompt:
        role, content = (m["role"], m["content"]) if isinstance(m, dict) else m
        messages.append(_models.Message(str(role), str(content)))
    return _models.Prompt_Chat(messages)


def _options(max_tokens: Optional[int], temperature: Optional[float],
             stop: Optional[List[str]]) -> Any:
    return _models.GenerateOptions(max_tokens, temperature, list(stop or []))


def _image_file(image: tuple) -> Any:
    """A `(media_type, bytes)` pair as the host takes it."""
    media_type, data = image
    return _models.ImageFile(str(media_type), bytes(data))


class models:
    """Models served by the host (granted in the plugin's manifest)."""

    @staticmethod
    def embed(model: str, texts: List[str]) -> List[List[float]]:
        try:
            return _models.embed(model, list(texts))
        except Err as e:
            raise _model_error(e) from None

    @staticmethod
    def generate(model: str, prompt: Any, max_tokens: Optional[int] = None,
                 temperature: Optional[float] = None, stop: Optional[List[str]] = None) -> str:
        """The text generated from `prompt` (a string, or a chat: a list of
        `(role, content)` pairs or `{"role", "content"}` dicts)."""
        try:
            g = _models.generate(model, _prompt(prompt), _options(max_tokens, temperature, stop))
        except Err as e:
            raise _model_error(e) from None
        return g.text

    @staticmethod
    def generate_seeing(model: str, prompt: Any, images: List[tuple],
                        max_tokens: Optional[int] = None, temperature: Optional[float] = None,
                        stop: Optional[List[str]] = None) -> str:
        """The text generated about `images` (`(media_type, bytes)` pairs,
        `image/png` or `image/jpeg`, at most 8 of 3,932,160 bytes, 20 MiB in
        all) by vision model `model`: they go with the prompt's last user
        message. HTTP providers' vision models take images; others refuse
        (`InvalidInput`). As `generate`."""
        try:
            g = _models.generate_seeing(model, _prompt(prompt), [_image_file(i) for i in images],
                                        _options(max_tokens, temperature, stop))
        except Err as e:
            raise _model_error(e) from None
        return g.text

    @staticmethod
    def generate_json(model: str, prompt: Any, schema: Any, max_tokens: Optional[int] = None,
                      temperature: Optional[float] = None,
                      stop: Optional[List[str]] = None) -> str:
        """The text generated for `schema` (a JSON Schema, as a dict or JSON
        text, at most 64 KiB) by `model`: held to it where the provider has
        a native mode (OpenAI-compatible `json_schema`). Parse and validate
        the answer all the same. As `generate`."""
        text = schema if isinstance(schema, str) else json.dumps(schema)
        try:
            g = _models.generate_json(model, _prompt(prompt), text,
                                      _options(max_tokens, temperature, stop))
        except Err as e:
            raise _model_error(e) from None
        return g.text

    @staticmethod
    def generate_image(model: str, prompt: str, images: Optional[List[tuple]] = None,
                       mask: Optional[tuple] = None, aspect_ratio: Optional[str] = None,
                       quality: Optional[str] = None) -> tuple:
        """An image made by image-generation model `model` (an HTTP
        provider's), as `(media_type, bytes)`: PNG, JPEG or WebP. New, or
        `images` (`(media_type, bytes)` pairs, as for `generate_seeing`)
        edited, the first with the rest as references, where `mask` (a PNG)
        is transparent. `aspect_ratio`: `1:1` (the default), `16:9`, `9:16`,
        `4:3` or `3:4`; `quality`: `low`, `medium` or `high`."""
        request = _models.ImageRequest(
            str(prompt), [_image_file(i) for i in images or []],
            None if mask is None else _image_file(mask), aspect_ratio, quality)
        try:
            f = _models.generate_image(model, request)
        except Err as e:
            raise _model_error(e) from None
        return (f.media_type, bytes(f.bytes))

    @staticmethod
    def count_tokens(model: str, text: str) -> int:
        """How many tokens `text` is for this model."""
        try:
            return _models.count_tokens(model, text)
        except Err as e:
            raise _model_error(e) from None

    @staticmethod
    def info(model: str) -> dict:
        """What the model is: `id`, `provider`, `kind` and `dimensions`
        (None when not known)."""
        try:
            i = _models.info(model)
        except Err as e:
            raise _model_error(e) from None
        return {"id": i.id, "provider": i.provider, "kind": i.kind, "dimensions": i.dimensions}

    @staticmethod
    def foreground(model: str, width: int, height: int, rgba: bytes) -> bytes:
        """The foreground of an RGBA image (`width * height * 4` bytes, row
        by row) by a `background-removal` model: one alpha byte per pixel."""
        try:
            return bytes(_models.foreground(model, _models.Image(width, height, bytes(rgba))))
        except Err as e:
            raise _model_error(e) from None

    @staticmethod
    def detect(model: str, width: int, height: int, rgba: bytes, min_score: float = 0.5,
               max_overlap: float = 0.3) -> List[dict]:
        """What a `face-detection` model finds in an RGBA image (`width *
        height * 4` bytes, row by row), best first, at most 100: dicts of
        `label`, `score`, `x`, `y`, `width`, `height` (the box in pixels) and
        `keypoints` (dicts of `x`, `y` in pixels and `label`). Those scoring
        below `min_score` are left out; those overlapping a better one by more
        than `max_overlap` (intersection over union) are merged into it."""
        try:
            found = _models.detect(model, _models.Image(width, height, bytes(rgba)),
                                   _models.DetectOptions(min_score, max_overlap))
        except Err as e:
            raise _model_error(e) from None
        return [{"label": d.label, "score": d.score, "x": d.x, "y": d.y, "width": d.width,
                 "height": d.height,
                 "keypoints": [{"x": k.x, "y": k.y, "label": k.label} for k in d.keypoints]}
                for d in found]


class StorageConflict(Failed):
    """A compare-and-swap lost: `current` is the key's version now (None:
    absent)."""

    def __init__(self, current: Optional[int]):
        super().__init__(f"conflict: the key is at version {current}")
        self.current = current


def _storage_error(e: Err) -> TaskError:
    v = e.value
    if isinstance(v, _storage.StorageError_Conflict):
        return StorageConflict(v.value)
    if isinstance(v, _storage.StorageError_Unavailable):
        return Retryable(f"storage unavailable: {v.value}")
    kind = type(v).__name__.split("_")[-1]
    return Failed(f"{kind}: {v.value}")


class storage:
    """Key-value storage kept by the host: the plugin's own namespace
    (`namespace=None`) and those its manifest grants, per user of the run.
    Only tasks declared with `side_effects=True` may write."""

    @staticmethod
    def get(key: str, namespace: Optional[str] = None) -> Optional[tuple]:
        """`(value: bytes, version: int)`, or None when the key is absent."""
        try:
            e = _storage.get(namespace, key)
        except Err as err:
            raise _storage_error(err) from None
        return None if e is None else (bytes(e.value), e.version)

    @staticmethod
    def set(key: str, value: bytes, namespace: Optional[str] = None,
            if_version: Optional[int] = None, ttl_ms: Optional[int] = None) -> int:
        """Write; the new version. `if_version=0`: only if absent; another
        number: only at that version (else `StorageConflict`)."""
        try:
            return _storage.set(namespace, _storage.Write(key, bytes(value), if_version, ttl_ms))
        except Err as err:
            raise _storage_error(err) from None

    @staticmethod
    def delete(key: str, namespace: Optional[str] = None) -> bool:
        try:
            return _storage.delete(namespace, key, None)
        except Err as err:
            raise _storage_error(err) from None

    @staticmethod
    def delete_many(keys: List[str], namespace: Optional[str] = None) -> List[bool]:
        """Delete up to 1,000 keys all together: whether each was there."""
        deletions = [_storage.Deletion(k, None) for k in keys]
        try:
            return list(_storage.delete_many(namespace, deletions))
        except Err as err:
            raise _storage_error(err) from None

    @staticmethod
    def keys(prefix: str = "", namespace: Optional[str] = None) -> List[str]:
        """Every key that starts with `prefix`, in byte order."""
        found: List[str] = []
        after = None
        while True:
            try:
                page = _storage.list_keys(namespace, prefix, after, 1000)
            except Err as err:
                raise _storage_error(err) from None
            found.extend(page.keys)
            if page.next is None:
                return found
            after = page.next


class vectors:
    """Vectors kept with storage's keys, and the keys nearest a query (the
    host's store ranks them: pgvector on PostgreSQL). Namespaces, grants and
    errors are `storage`'s."""

    @staticmethod
    def set_many(entries: List[tuple], namespace: Optional[str] = None) -> List[int]:
        """Write up to 1,000 `(key, value: bytes, vector: list of floats)`
        all together, each key keeping its vector; their new versions."""
        writes = [_storage.Write(k, bytes(v), None, None) for k, v, _ in entries]
        try:
            return list(_vectors.set_many(namespace, writes, [list(x) for _, _, x in entries]))
        except Err as err:
            raise _storage_error(err) from None

    @staticmethod
    def nearest(query: List[float], prefix: str = "", namespace: Optional[str] = None,
                skip: int = 0, limit: int = 10) -> List[tuple]:
        """`(key, similarity)` of the keys under `prefix` nearest `query` by
        cosine similarity, best first, past `skip`, at most `limit` (1 to
        1,000)."""
        try:
            found = _vectors.nearest(namespace, prefix, list(query), skip, limit)
        except Err as err:
            raise _storage_error(err) from None
        return [(n.key, n.similarity) for n in found]


class config:
    """The plugin's `[config]` (its manifest's), values as JSON."""

    @staticmethod
    def get(key: str) -> Any:
        """The value, or None when the manifest does not set it."""
        try:
            text = _config.get(key)
        except Err as err:
            raise Failed(f"config `{key}`: {err.value.value}") from None
        return None if text is None else json.loads(text)

    @staticmethod
    def keys() -> List[str]:
        return list(_config.keys())


# ---- JSON Schemas from type hints -----------------------------------------

_PRIMITIVES = {str: "string", int: "integer", float: "number", bool: "boolean"}


def schema_of(tp: Any) -> Dict[str, Any]:
    """The JSON Schema of a Python type: dataclasses and TypedDicts become
    objects (fields without a default are required), lists arrays, Optional
    nullable, Any anything."""
    if tp is Any or tp is inspect.Parameter.empty:
        return {}
    if tp in _PRIMITIVES:
        return {"type": _PRIMITIVES[tp]}
    if tp is type(None):
        return {"type": "null"}
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (list, List) or tp is list:
        return {"type": "array", "items": schema_of(args[0]) if args else {}}
    if origin in (dict, Dict) or tp is dict:
        return {"type": "object", "additionalProperties": schema_of(args[1]) if len(args) == 2 else True}
    if origin in (typing.Union, _pytypes.UnionType):
        return {"anyOf": [schema_of(a) for a in args]}
    if origin is typing.Literal:
        return {"enum": list(args)}
    if dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        props, required = {}, []
        for f in dataclasses.fields(tp):
            props[f.name] = schema_of(hints[f.name])
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                required.append(f.name)
        return {"type": "object", "properties": props, "required": required, "additionalProperties": False}
    if typing.is_typeddict(tp):
        hints = typing.get_type_hints(tp)
        return {
            "type": "object",
            "properties": {k: schema_of(v) for k, v in hints.items()},
            "required": sorted(tp.__required_keys__),
        }
    raise TypeError(f"weft_sdk cannot describe the type {tp!r} as a JSON Schema")


def _from_json(tp: Any, value: Any) -> Any:
    if dataclasses.is_dataclass(tp) and isinstance(value, dict):
        hints = typing.get_type_hints(tp)
        fields = {f.name for f in dataclasses.fields(tp)}
        return tp(**{k: _from_json(hints[k], v) for k, v in value.items() if k in fields})
    origin = typing.get_origin(tp)
    if origin in (list, List) and isinstance(value, list):
        (item,) = typing.get_args(tp) or (Any,)
        return [_from_json(item, v) for v in value]
    if origin in (typing.Union, _pytypes.UnionType) and value is not None:
        for a in typing.get_args(tp):
            if a is not type(None):
                return _from_json(a, value)
    return value


def _to_json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _to_json(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    return value


# ---- the registry and the export ------------------------------------------

@dataclasses.dataclass
class _Def:
    meta: Any
    fn: Callable[..., Any]
    input_type: Any
    takes_ctx: bool


_TASKS: Dict[str, _Def] = {}


def task(id: str, *, title: Optional[str] = None, category: Optional[str] = None,
         description: Optional[str] = None, version: str = "0.1.0",
         side_effects: bool = False, cacheable: bool = True,
         timeout_ms: Optional[int] = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a task type. The function takes its input (first parameter,
    typed) and optionally a `Context`, and returns its output (typed)."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        hints = typing.get_type_hints(fn)
        params = list(inspect.signature(fn).parameters)
        if not params:
            raise TypeError(f"task {id}: the function must take its input as first parameter")
        input_type = hints.get(params[0], Any)
        output_type = hints.get("return", Any)
        input_schema = schema_of(input_type) or {"type": "object"}
        output_schema = schema_of(output_type) or {"type": "object"}
        for which, s in (("input", input_schema), ("output", output_schema)):
            if s.get("type") != "object":
                raise TypeError(f"task {id}: the {which} must be an object type (a dataclass or TypedDict)")
        _TASKS[id] = _Def(
            meta=_types.TaskType(
                id=id, version=version, title=title or fn.__name__.replace("_", " ").capitalize(),
                category=category or id.split(".")[0],
                description=description or inspect.cleandoc(fn.__doc__ or ""),
                input_schema=json.dumps(input_schema), output_schema=json.dumps(output_schema),
                side_effects=side_effects, cacheable=cacheable and not side_effects,
                timeout_ms=timeout_ms,
            ),
            fn=fn, input_type=input_type, takes_ctx=len(params) > 1,
        )
        return fn

    return wrap


def _error(e: BaseException) -> Err:
    if isinstance(e, InvalidInput):
        return Err(_types.TaskError_InvalidInput(str(e)))
    if isinstance(e, Retryable):
        return Err(_types.TaskError_Retryable(_types.RetryHint(str(e), e.delay_ms)))
    if isinstance(e, Failed):
        return Err(_types.TaskError_Failed(str(e)))
    where = traceback.extract_tb(e.__traceback__)[-1] if e.__traceback__ else None
    at = f" (at {where.filename}:{where.lineno})" if where else ""
    return Err(_types.TaskError_Failed(f"uncaught {type(e).__name__}: {e}{at}"))


class Task(exports.Task):
    """The `weft:plugin/task` export. Import it into the plugin's module."""

    def describe(self) -> List[_types.TaskType]:
        return [d.meta for d in _TASKS.values()]

    def run(self, task_id: str, input: str, ctx: _types.Context) -> str:
        d = _TASKS.get(task_id)
        if d is None:
            raise Err(_types.TaskError_InvalidInput(f"this plugin has no task type {task_id}"))
        context = Context(ctx.run_id, ctx.node_id, ctx.attempt, ctx.idempotency_key)
        try:
            arg = _from_json(d.input_type, json.loads(input))
            out = d.fn(arg, context) if d.takes_ctx else d.fn(arg)
            return json.dumps(_to_json(out))
        except Exception as e:  # every failure becomes a task error, never a trap
            raise _error(e) from None
