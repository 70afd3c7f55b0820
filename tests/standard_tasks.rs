//! The standard tasks, each run through the real wasm plugin built from
//! `plugins/`.

use crate::common;

use serde_json::{Value, json};
use weft::events::RunStatus;

use common::one;

#[tokio::test]
async fn text_tasks() {
    let h = common::host(None).await;
    assert_eq!(
        one(
            &h,
            "text.split",
            json!({"text": "a, b,,c", "separator": ",", "trim": true, "skip_empty": true})
        )
        .await,
        Ok(json!({"parts": ["a", "b", "c"], "count": 3}))
    );
    assert_eq!(
        one(&h, "text.split", json!({"text": "x\ny"})).await,
        Ok(json!({"parts": ["x", "y"], "count": 2}))
    );
    assert_eq!(
        one(&h, "text.split", json!({"text": "héj", "separator": ""})).await,
        Ok(json!({"parts": ["h", "é", "j"], "count": 3}))
    );
    assert_eq!(
        one(
            &h,
            "text.join",
            json!({"parts": ["a", "b"], "separator": "-"})
        )
        .await,
        Ok(json!({"text": "a-b"}))
    );
    assert_eq!(
        one(&h, "text.template", json!({"template": "Hi {{ user.name }}, you have {{n}} ({{items.1}})", "user": {"name": "Ada"}, "n": 2, "items": ["x", "y"]})).await,
        Ok(json!({"text": "Hi Ada, you have 2 (y)"}))
    );
    let missing = one(&h, "text.template", json!({"template": "{{nope}}"}))
        .await
        .unwrap_err();
    assert_eq!(
        missing,
        "invalid input: template placeholder `{{nope}}` has no value in the input"
    );
    let m = one(
        &h,
        "text.regex-match",
        json!({"text": "a1 b22", "pattern": "(?P<l>[a-z])(\\d+)"}),
    )
    .await
    .unwrap();
    assert_eq!(m["matched"], true);
    assert_eq!(
        m["matches"][1],
        json!({"text": "b22", "start": 3, "end": 6, "groups": ["b", "22"], "named": {"l": "b"}})
    );
    assert_eq!(
        one(
            &h,
            "text.regex-replace",
            json!({"text": "a1 b22", "pattern": "\\d+", "replacement": "#"})
        )
        .await,
        Ok(json!({"text": "a# b#", "replacements": 2}))
    );
    assert_eq!(
        one(
            &h,
            "text.regex-replace",
            json!({"text": "a1 b22", "pattern": "(\\d+)", "replacement": "<$1>", "all": false})
        )
        .await,
        Ok(json!({"text": "a<1> b22", "replacements": 1}))
    );
    let bad = one(&h, "text.regex-match", json!({"text": "x", "pattern": "("}))
        .await
        .unwrap_err();
    assert!(
        bad.starts_with("invalid input: bad regular expression"),
        "{bad}"
    );
}

#[tokio::test]
async fn language_detection_names_the_language_with_its_confidence() {
    let h = common::host(None).await;
    for (text, want) in [
        (
            "The quick brown fox jumps over the lazy dog near the river bank.",
            "en",
        ),
        (
            "Le renard brun saute par-dessus le chien paresseux près de la rivière.",
            "fr",
        ),
        (
            "Der schnelle braune Fuchs springt über den faulen Hund am Fluss.",
            "de",
        ),
        (
            "Быстрая коричневая лиса прыгает через ленивую собаку.",
            "ru",
        ),
    ] {
        let out = one(
            &h,
            "TextLanguageDetectionTask",
            json!({"text": text, "model": "any"}),
        )
        .await
        .unwrap();
        let found = &out["languages"][0];
        assert_eq!(found["language"], want, "{text}: {out}");
        let score = found["score"].as_f64().unwrap();
        assert!(score > 0.0 && score <= 1.0, "{out}");
    }
    // Nothing to detect in digits; none asked for.
    let out = one(
        &h,
        "ai.text-language-detection",
        json!({"text": "1234 5678"}),
    )
    .await;
    assert_eq!(out, Ok(json!({"languages": []})));
    let out = one(
        &h,
        "ai.text-language-detection",
        json!({"text": "Hello there, my friend", "maxLanguages": 0}),
    )
    .await;
    assert_eq!(out, Ok(json!({"languages": []})));
}

#[tokio::test]
async fn json_tasks() {
    let h = common::host(None).await;
    assert_eq!(
        one(
            &h,
            "json.pick",
            json!({"object": {"a": 1, "b": 2, "c": 3}, "keys": ["a", "c", "z"]})
        )
        .await,
        Ok(json!({"a": 1, "c": 3}))
    );
    let strict = one(
        &h,
        "json.pick",
        json!({"object": {}, "keys": ["z"], "strict": true}),
    )
    .await
    .unwrap_err();
    assert_eq!(strict, "invalid input: key `z` is not in the object");
    let doc = json!({"items": [{"name": "x"}, {"name": "y"}]});
    assert_eq!(
        one(
            &h,
            "json.path",
            json!({"value": doc, "path": "items[1].name"})
        )
        .await,
        Ok(json!({"value": "y", "found": true}))
    );
    assert_eq!(
        one(
            &h,
            "json.path",
            json!({"value": doc, "path": "/items/0/name"})
        )
        .await,
        Ok(json!({"value": "x", "found": true}))
    );
    assert_eq!(
        one(
            &h,
            "json.path",
            json!({"value": doc, "path": "items.5", "default": 0})
        )
        .await,
        Ok(json!({"value": 0, "found": false}))
    );
    assert_eq!(
        one(&h, "json.merge", json!({"a": 1, "b": [2]})).await,
        Ok(json!({"a": 1, "b": [2]}))
    );
    assert_eq!(
        one(&h, "json.parse", json!({"text": "[1, {\"a\": null}]"})).await,
        Ok(json!({"value": [1, {"a": null}]}))
    );
    assert!(
        one(&h, "json.parse", json!({"text": "{"}))
            .await
            .unwrap_err()
            .starts_with("invalid input: text is not JSON")
    );
    assert_eq!(
        one(&h, "json.stringify", json!({"value": {"a": [1]}})).await,
        Ok(json!({"text": "{\"a\":[1]}"}))
    );
}

#[tokio::test]
async fn math_tasks() {
    let h = common::host(None).await;
    assert_eq!(
        one(&h, "math.add-one", json!({"value": 41})).await,
        Ok(json!({"value": 42}))
    );
    assert_eq!(
        one(&h, "math.add-one", json!({"value": 0.5})).await,
        Ok(json!({"value": 1.5}))
    );
    assert_eq!(
        one(&h, "math.add", json!({"a": 2, "b": 3})).await,
        Ok(json!({"value": 5}))
    );
    assert_eq!(
        one(&h, "math.subtract", json!({"a": 2, "b": 3})).await,
        Ok(json!({"value": -1}))
    );
    assert_eq!(
        one(&h, "math.multiply", json!({"a": 4, "b": 2.5})).await,
        Ok(json!({"value": 10.0}))
    );
    assert_eq!(
        one(&h, "math.divide", json!({"a": 1, "b": 4})).await,
        Ok(json!({"value": 0.25}))
    );
    assert_eq!(
        one(&h, "math.divide", json!({"a": 1, "b": 0})).await,
        Err("invalid input: division by zero (b is 0)".into())
    );
    assert_eq!(
        one(&h, "math.sum", json!({"values": [1, 2, 3.5]})).await,
        Ok(json!({"value": 6.5}))
    );
    // Integers past i64 fall back to floats instead of overflowing.
    assert_eq!(
        one(&h, "math.add-one", json!({"value": i64::MAX})).await,
        Ok(json!({"value": 9223372036854775808.0}))
    );
}

#[tokio::test]
async fn util_tasks() {
    let h = common::host(None).await;
    assert_eq!(
        one(&h, "util.delay", json!({"ms": 5, "value": [1]})).await,
        Ok(json!({"value": [1], "slept_ms": 5}))
    );
    assert_eq!(
        one(&h, "util.delay", json!({"ms": 3_600_001})).await,
        Err("invalid input: ms is over one hour (3600000)".into())
    );
    assert_eq!(
        one(&h, "util.debug-log", json!({"message": "hi"})).await,
        Ok(json!({"message": "hi"}))
    );
    assert!(!h.registry().get("util.delay").unwrap().cacheable);
}

/// `util.split` (Workglow's `SplitTask`): one output port per element,
/// which a dataflow downstream names although no schema lists it.
#[tokio::test]
async fn split_gives_each_element_its_own_port() {
    let h = common::host(None).await;
    assert_eq!(
        one(&h, "SplitTask", json!({"input": ["a", {"b": 1}, 3]})).await,
        Ok(json!({"output_0": "a", "output_1": {"b": 1}, "output_2": 3}))
    );
    assert_eq!(
        one(&h, "util.split", json!({"input": 7})).await,
        Ok(json!({"output_0": 7})),
        "a single value is one element"
    );
    let g = common::graph(json!({
        "tasks": [
            {"id": "s", "type": "util.split", "defaults": {"input": [10, 20, 30]}},
            {"id": "inc", "type": "math.add-one"},
        ],
        "dataflows": [{"sourceTaskId": "s", "sourceTaskPortId": "output_2",
                       "targetTaskId": "inc", "targetTaskPortId": "value"}],
    }));
    let (result, _) = common::run(&h, &g, json!({})).await;
    assert_eq!(result.status, RunStatus::Succeeded, "{result:?}");
    assert_eq!(result.outputs["inc"], json!({"value": 31}));
}

/// `scalar.*`: Workglow's Scalar tasks, by their Workglow class names (the
/// aliases) as well as by id, with JavaScript's answers.
#[tokio::test]
async fn scalar_tasks_answer_as_workglows() {
    let h = common::host(None).await;
    let cases = [
        (
            "ScalarAddTask",
            json!({"a": 2, "b": 3}),
            json!({"result": 5}),
        ),
        (
            "scalar.subtract",
            json!({"a": 2, "b": 3.5}),
            json!({"result": -1.5}),
        ),
        (
            "ScalarMultiplyTask",
            json!({"a": 4, "b": 2.5}),
            json!({"result": 10}),
        ),
        (
            "scalar.divide",
            json!({"a": 1, "b": 4}),
            json!({"result": 0.25}),
        ),
        (
            "ScalarSumTask",
            json!({"values": [0.1, 0.2, 0.3]}),
            json!({"result": 0.6}),
        ),
        (
            "scalar.max",
            json!({"values": [3, -1, 7.5]}),
            json!({"result": 7.5}),
        ),
        (
            "ScalarMinTask",
            json!({"values": [3, -1, 7.5]}),
            json!({"result": -1}),
        ),
        (
            "scalar.abs",
            json!({"value": -4.25}),
            json!({"result": 4.25}),
        ),
        (
            "ScalarCeilTask",
            json!({"value": -1.5}),
            json!({"result": -1}),
        ),
        (
            "scalar.floor",
            json!({"value": -1.5}),
            json!({"result": -2}),
        ),
        // Math.round: halves towards +∞.
        (
            "ScalarRoundTask",
            json!({"value": -2.5}),
            json!({"result": -2}),
        ),
        ("scalar.round", json!({"value": 2.5}), json!({"result": 3})),
        (
            "scalar.round",
            json!({"value": 0.49999999999999994}),
            json!({"result": 0}),
        ),
        (
            "ScalarTruncTask",
            json!({"value": -7.9}),
            json!({"result": -7}),
        ),
    ];
    for (task, input, want) in cases {
        assert_eq!(
            one(&h, task, input.clone()).await,
            Ok(want),
            "{task} {input}"
        );
    }
    let e = one(&h, "scalar.divide", json!({"a": 1, "b": 0}))
        .await
        .unwrap_err();
    assert!(e.contains("division by zero"), "{e}");
    let e = one(&h, "ScalarMaxTask", json!({"values": []}))
        .await
        .unwrap_err();
    assert!(e.contains("`values` is empty"), "{e}");
}

/// `string.*`: Workglow's String tasks, lengths and positions in UTF-16
/// code units as JavaScript counts them.
#[tokio::test]
async fn string_tasks_answer_as_workglows() {
    let h = common::host(None).await;
    let cases = [
        (
            "StringConcatTask",
            json!({"a": "wa", "b": "rp", "c": "!"}),
            json!({"text": "warp!"}),
        ),
        (
            "string.includes",
            json!({"text": "weft", "search": "ef"}),
            json!({"included": true}),
        ),
        (
            "StringIncludesTask",
            json!({"text": "weft", "search": "x"}),
            json!({"included": false}),
        ),
        (
            "StringJoinTask",
            json!({"texts": ["a", "b", "c"], "separator": "-"}),
            json!({"text": "a-b-c"}),
        ),
        (
            "string.join",
            json!({"texts": ["a", "b"]}),
            json!({"text": "ab"}),
        ),
        (
            "StringLengthTask",
            json!({"text": "día 🧵"}),
            json!({"length": 6}),
        ),
        (
            "StringLowerCaseTask",
            json!({"text": "ÉTÉ"}),
            json!({"text": "été"}),
        ),
        (
            "string.upper-case",
            json!({"text": "straße"}),
            json!({"text": "STRASSE"}),
        ),
        (
            "StringReplaceTask",
            json!({"text": "a.b.c", "search": ".", "replace": "/"}),
            json!({"text": "a/b/c"}),
        ),
        (
            "StringSliceTask",
            json!({"text": "weft and warp", "start": 5, "end": 8}),
            json!({"text": "and"}),
        ),
        (
            "string.slice",
            json!({"text": "weft and warp", "start": -4}),
            json!({"text": "warp"}),
        ),
        (
            "string.slice",
            json!({"text": "🧵x", "start": 2}),
            json!({"text": "x"}),
        ),
        (
            "string.slice",
            json!({"text": "abc", "start": 2, "end": 1}),
            json!({"text": ""}),
        ),
        (
            "StringTrimTask",
            json!({"text": "\u{feff}\t weft \n"}),
            json!({"text": "weft"}),
        ),
    ];
    for (task, input, want) in cases {
        assert_eq!(
            one(&h, task, input.clone()).await,
            Ok(want),
            "{task} {input}"
        );
    }
    let e = one(&h, "string.concat", json!({"a": "x", "b": 1}))
        .await
        .unwrap_err();
    assert!(e.contains("port `b` must be a string"), "{e}");
}

/// Where Workglow's vector tasks give what JSON cannot carry (Infinity,
/// NaN as `null`), Weft's refuse, naming the component.
#[tokio::test]
async fn vector_tasks_refuse_what_json_cannot_carry() {
    let host = common::host(None).await;
    let e = one(
        &host,
        "vector.divide",
        json!({"vectors": [[1, 1, 0], [2, 0, 0]]}),
    )
    .await
    .unwrap_err();
    assert!(
        e.contains("division by zero: component 1 of vector 1 is 0"),
        "{e}"
    );
    let e = one(
        &host,
        "vector.scale",
        json!({"vector": [1e308], "scalar": 10}),
    )
    .await
    .unwrap_err();
    assert!(e.contains("not a finite number"), "{e}");
    let ok = one(
        &host,
        "vector.scale",
        json!({"vector": [1, 2], "scalar": 2}),
    )
    .await
    .unwrap();
    assert_eq!(ok["result"], json!([2, 4]));
}

/// `vector.quantize` to `float16` rounds each component to the nearest
/// half-precision number (Workglow's needs `Float16Array`, which Node 20
/// lacks: it gives zeros there); a component beyond the largest half is
/// refused, as JSON cannot carry the infinity it becomes.
#[tokio::test]
async fn vector_quantize_rounds_to_half_precision() {
    let host = common::host(None).await;
    let quantize =
        |vector: Value| json!({"vector": vector, "targetType": "float16", "normalize": false});
    let out = one(
        &host,
        "vector.quantize",
        quantize(json!([[0.1, -2.0, 1e-8]])),
    )
    .await
    .unwrap();
    assert_eq!(out["vector"], json!([[0.0999755859375, -2, 0]]));
    assert_eq!(out["originalType"], "float64");
    let e = one(&host, "vector.quantize", quantize(json!([65520.0])))
        .await
        .unwrap_err();
    assert!(e.contains("not a finite number"), "{e}");
}

/// `util.date-format` formats in en-US only and says so for any other
/// locale; `string.regex` names what its engine does not support.
#[tokio::test]
async fn utility_tasks_say_what_they_do_not_support() {
    let host = common::host(None).await;
    let e = one(
        &host,
        "util.date-format",
        json!({"value": "2026-12-03", "format": "date", "locale": "de-DE"}),
    )
    .await
    .unwrap_err();
    assert!(e.contains("locale `de-DE` is not supported"), "{e}");
    let e = one(
        &host,
        "string.regex",
        json!({"value": "aa", "pattern": "(a)\\1"}),
    )
    .await
    .unwrap_err();
    assert!(e.contains("invalid or unsupported pattern"), "{e}");
    let e = one(
        &host,
        "string.regex",
        json!({"value": "a", "pattern": "a", "flags": "y"}),
    )
    .await
    .unwrap_err();
    assert!(e.contains("flag `y` is not supported"), "{e}");
    // A pattern that backtracking engines take exponential time over.
    let evil = format!("{}!", "a".repeat(5_000));
    let out = one(
        &host,
        "string.regex",
        json!({"value": evil, "pattern": "^(a|aa)+$"}),
    )
    .await
    .unwrap();
    assert_eq!(out["match"], false);
}

/// `rag.structural-parser` gives the same document the same ids every
/// time (a document with no `doc_id` or `sourceUri` is named by its
/// content), every node its own; `rag.hierarchical-chunker` names where a
/// document tree it is given is wrong.
#[tokio::test]
async fn document_trees_have_stable_ids_and_bad_ones_are_located() {
    let host = common::host(None).await;
    let doc = json!({"text": "# A\none\n## B\ntwo\n# C\nthree", "title": "T"});
    let first = one(&host, "rag.structural-parser", doc.clone())
        .await
        .unwrap();
    let again = one(&host, "rag.structural-parser", doc).await.unwrap();
    assert_eq!(first, again);
    let doc_id = first["doc_id"].as_str().unwrap();
    assert!(doc_id.starts_with("doc-") && doc_id.len() == 20, "{doc_id}");
    let other = one(
        &host,
        "rag.structural-parser",
        json!({"text": "# A\none", "title": "T"}),
    )
    .await
    .unwrap();
    assert_ne!(other["doc_id"], first["doc_id"]);

    let mut ids = Vec::new();
    fn collect(node: &Value, ids: &mut Vec<String>) {
        ids.push(node["nodeId"].as_str().unwrap().to_string());
        for child in node["children"].as_array().into_iter().flatten() {
            collect(child, ids);
        }
    }
    collect(&first["documentTree"], &mut ids);
    assert_eq!(ids.len() as u64, first["nodeCount"].as_u64().unwrap());
    let distinct: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "{ids:?}");

    let chunks = one(
        &host,
        "rag.hierarchical-chunker",
        json!({"doc_id": doc_id, "documentTree": first["documentTree"]}),
    )
    .await
    .unwrap();
    assert_eq!(
        chunks["text"],
        json!(["A\n\none", "A > B\n\ntwo", "C\n\nthree"])
    );
    assert_eq!(chunks["chunks"][1]["sectionTitles"], json!(["A", "B"]));
    assert_eq!(chunks["chunks"][1]["chunkId"], format!("{doc_id}:1"));

    let bad = json!({"nodeId": "r", "kind": "document",
        "children": [{"nodeId": "p", "kind": "paragraph", "text": "x"}, {"nodeId": "q", "kind": "chapter"}]});
    let e = one(
        &host,
        "rag.hierarchical-chunker",
        json!({"doc_id": "d", "documentTree": bad}),
    )
    .await
    .unwrap_err();
    assert!(e.contains("documentTree.children[1].kind"), "{e}");
    let textless = json!({"nodeId": "r", "kind": "document",
        "children": [{"nodeId": "p", "kind": "paragraph"}]});
    let e = one(
        &host,
        "rag.hierarchical-chunker",
        json!({"doc_id": "d", "documentTree": textless}),
    )
    .await
    .unwrap_err();
    assert!(e.contains("node `p` has no `text`"), "{e}");
}

/// A knowledge base keeps document trees (`DocumentUpsertTask`): one of
/// over a megabyte, replaced by a smaller one, reads back whole; they are
/// listed (`KbToDocumentsTask`, all or those with no chunks yet); a
/// retrieved chunk's metadata is joined with the titles, summaries and
/// entities of the nodes above it (`HierarchyJoinTask`); `KbDeleteTask`
/// removes a document's tree with its chunks.
#[tokio::test]
async fn knowledge_bases_keep_list_join_and_delete_documents() {
    let host = common::host(None).await;
    let parse = |doc: &str, text: &str| json!({"text": text, "title": format!("{doc} title"), "doc_id": doc});
    let big_text: String = (0..4000)
        .map(|n| format!("# Section {n}\nParagraph {n} of the big document, with some words.\n"))
        .collect();
    let big = one(&host, "StructuralParserTask", parse("big", &big_text))
        .await
        .unwrap();
    assert!(big["documentTree"].to_string().len() > 1 << 20);
    let mut small = one(
        &host,
        "StructuralParserTask",
        parse("small", "# Looms\n## Warp\nThe warp is held in tension.\n"),
    )
    .await
    .unwrap()["documentTree"]
        .clone();
    small["children"][0]["enrichment"] = json!({"summary": "About looms",
        "entities": [{"text": "loom", "score": 0.5}, {"text": "warp", "score": 0.9}]});
    small["children"][0]["children"][0]["enrichment"] =
        json!({"entities": [{"text": "loom", "score": 0.8}]});
    let kb = "library";
    let upsert = |doc: &str, tree: &Value, title: Value| json!({"knowledgeBase": kb, "doc_id": doc, "documentTree": tree, "metadata": {"title": title}});
    for (doc, tree) in [("big", &big["documentTree"]), ("small", &small)] {
        let out = one(&host, "DocumentUpsertTask", upsert(doc, tree, json!(doc)))
            .await
            .unwrap();
        assert_eq!(out["doc_id"], doc);
    }
    let e = one(&host, "DocumentUpsertTask", upsert("x", &small, json!("")))
        .await
        .unwrap_err();
    assert!(e.contains("title is required"), "{e}");
    let bad = json!({"nodeId": "r", "kind": "document", "children": [{"kind": "paragraph"}]});
    let e = one(&host, "DocumentUpsertTask", upsert("x", &bad, json!("t")))
        .await
        .unwrap_err();
    assert!(
        e.contains("documentTree.children[0]") && e.contains("nodeId"),
        "{e}"
    );

    let list = |only_stale: bool| json!({"knowledgeBase": kb, "onlyStale": only_stale});
    let all = one(&host, "KbToDocumentsTask", list(false)).await.unwrap();
    assert_eq!(all["doc_id"], json!(["big", "small"]));
    assert_eq!(all["title"], json!(["big", "small"]));
    assert_eq!(all["documentTree"][0], big["documentTree"]);
    assert_eq!(all["documentTree"][1], small);

    // Replaced by a tree of one stored part: the longer one's parts go.
    one(
        &host,
        "DocumentUpsertTask",
        upsert("big", &small, json!("big again")),
    )
    .await
    .unwrap();
    let all = one(&host, "KbToDocumentsTask", list(false)).await.unwrap();
    assert_eq!(all["documentTree"][0], small);
    assert_eq!(all["title"][0], "big again");

    let chunk = json!({"chunkId": "small:0", "doc_id": "small", "text": "The warp"});
    one(
        &host,
        "ChunkVectorUpsertTask",
        json!({"knowledgeBase": kb, "chunks": [chunk], "vector": [[1.0, 0.0]]}),
    )
    .await
    .unwrap();
    let stale = one(&host, "KbToDocumentsTask", json!({"knowledgeBase": kb}))
        .await
        .unwrap();
    assert_eq!(stale["doc_id"], json!(["big"]));

    let metadata = json!([
        {"doc_id": "small", "leafNodeId": "small#3", "text": "The warp"},
        {"doc_id": "small", "nodePath": ["small#0", "small#1"]},
        {"doc_id": "gone", "leafNodeId": "x"},
        null
    ]);
    let joined = one(
        &host,
        "HierarchyJoinTask",
        json!({"knowledgeBase": kb, "metadata": metadata, "scores": [0.9, 0.8, 0.7, 0.6]}),
    )
    .await
    .unwrap();
    let first = &joined["metadata"][0];
    assert_eq!(first["sectionTitles"], json!(["Looms", "Warp"]));
    assert_eq!(first["parentSummaries"], json!(["About looms"]));
    assert_eq!(
        first["entities"],
        json!([{"text": "loom", "score": 0.8}, {"text": "warp", "score": 0.9}])
    );
    assert_eq!(joined["metadata"][1]["sectionTitles"], json!(["Looms"]));
    assert_eq!(joined["metadata"][2], metadata[2]);
    assert_eq!(joined["metadata"][3], json!({}));
    assert_eq!(joined["scores"], json!([0.9, 0.8, 0.7, 0.6]));
    assert_eq!(joined["count"], 4);

    one(
        &host,
        "KbDeleteTask",
        json!({"knowledgeBase": kb, "doc_id": "small"}),
    )
    .await
    .unwrap();
    let all = one(&host, "KbToDocumentsTask", list(false)).await.unwrap();
    assert_eq!(all["doc_id"], json!(["big"]));
}
