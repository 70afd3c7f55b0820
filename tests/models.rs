//! Models as host imports, with real parts: the MiniLM ONNX model and a tiny
//! GPT-2 on ONNX Runtime (fetched by `examples/models/fetch.sh`, which the
//! test command runs), and a real HTTP server on loopback speaking the OpenAI
//! and Anthropic wire formats, scripted to fail in the ways providers do.

use crate::common;
use crate::fake_api;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fake_api::{Reply, fake_provider};
use serde_json::{Value, json};
use weft::events::EventKind;
use weft::limiter::RateConfig;
use weft::providers::{
    GenerateOptions, Message, ModelConfig, ModelError, ModelKind, Models, Prompt, ProviderKind,
};
use weft::store::MemoryStore;
use weft_tests::{MISBEHAVE, PluginDir, ROOT};

// ---- local models -------------------------------------------------------

/// Where `examples/models/fetch.sh` put ONNX Runtime and MiniLM.
fn fetched() -> PathBuf {
    let dir = PathBuf::from(ROOT).join(".weft");
    let lib = dir.join("onnxruntime/libonnxruntime.so.1.31.1");
    assert!(
        lib.is_file() && dir.join("models/minilm/model.onnx").is_file(),
        "ONNX Runtime and MiniLM are missing: run examples/models/fetch.sh (tests/run.sh does)"
    );
    weft::providers::set_default_onnx_runtime(lib);
    dir
}

/// A JSON file of `tests/data`.
fn test_data(path: &str) -> Value {
    let text = std::fs::read_to_string(PathBuf::from(ROOT).join("tests/data").join(path)).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn onnx(kind: ModelKind, model: PathBuf) -> ModelConfig {
    ModelConfig::local(kind, &model)
}

fn minilm() -> ModelConfig {
    onnx(
        ModelKind::Embedding,
        fetched().join("models/minilm/model.onnx"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_embedding_calls_are_batched_into_few_inferences_with_the_same_vectors() {
    use weft::providers::Provider;
    let config = ModelConfig {
        sessions: Some(1),
        ..minilm()
    };
    let model = weft::providers::OnnxEmbedder::load("minilm", &config).unwrap();
    let texts: Vec<String> = (0..16)
        .map(|i| {
            format!(
                "sentence number {i} about {}",
                ["cats", "rivers", "tax law", "jazz"][i % 4]
            )
        })
        .collect();
    // One at a time: one inference each.
    let mut alone = Vec::new();
    for t in &texts {
        alone.push(
            model
                .embed(std::slice::from_ref(t))
                .await
                .unwrap()
                .remove(0),
        );
    }
    assert_eq!(model.inferences(), 16);
    // All at once, as from 16 tasks: batched while the session is busy.
    let together =
        futures::future::join_all(texts.iter().map(|t| model.embed(std::slice::from_ref(t)))).await;
    let batched = model.inferences() - 16;
    eprintln!("16 concurrent calls took {batched} inferences");
    assert!(
        batched < 16,
        "16 concurrent calls took {batched} inferences"
    );
    for (i, (a, b)) in alone.iter().zip(together).enumerate() {
        let b = b.unwrap().remove(0);
        let cos: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!(
            cos > 0.9999,
            "text {i}: batched vector differs (cosine {cos})"
        );
    }
}

/// ISNet, as `weft models pull isnet` (run by `examples/models/fetch.sh`)
/// put it.
fn isnet() -> ModelConfig {
    let model = fetched().join("models/isnet/model.onnx");
    assert!(
        model.is_file(),
        "ISNet is missing: run examples/models/fetch.sh (tests/run.sh does)"
    );
    onnx(ModelKind::BackgroundRemoval, model)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_removal_keeps_the_object_and_makes_the_ground_transparent() {
    // A red disk on a brown stem, on a pale blue-grey ground, made here; one
    // pixel at the disk's centre already transparent.
    let (w, h) = (320u32, 240u32);
    let (cx, cy) = (160i64, 110i64);
    let paint = |x: u32, y: u32| {
        let (dx, dy) = (i64::from(x) - cx, i64::from(y) - cy);
        if (x, y) == (165, 110) {
            [200, 40, 30, 0]
        } else if dx * dx + dy * dy <= 50 * 50 {
            [200, 40, 30, 255]
        } else if (140..180).contains(&x) && (160..220).contains(&y) {
            [90, 60, 30, 255]
        } else {
            [200, 210, 225, 255]
        }
    };
    let source = common::png(w, h, paint);
    let host = common::builder(None)
        .model("isnet", isnet())
        .model("minilm", minilm())
        .build()
        .await
        .unwrap();
    let out = common::one(
        &host,
        "ai.background-removal",
        json!({"image": source, "model": "isnet"}),
    )
    .await
    .unwrap();
    let got = common::pixels(out["image"].as_str().expect("an image"));
    assert_eq!(got.dimensions(), (w, h));
    for (x, y, px) in got.enumerate_pixels() {
        assert_eq!(px.0[..3], paint(x, y)[..3], "({x}, {y}): colour changed");
    }
    let alpha = |x: u32, y: u32| got.get_pixel(x, y).0[3];
    for (x, y) in [(160, 110), (140, 100), (185, 125)] {
        assert!(alpha(x, y) >= 200, "disk ({x}, {y}): alpha {}", alpha(x, y));
    }
    for (x, y) in [(5, 5), (314, 5), (20, 120), (300, 120)] {
        assert!(
            alpha(x, y) <= 30,
            "ground ({x}, {y}): alpha {}",
            alpha(x, y)
        );
    }
    assert_eq!(alpha(165, 110), 0, "a transparent pixel stays transparent");

    // A model of another kind is refused, saying what it is.
    let e = common::one(
        &host,
        "ai.background-removal",
        json!({"image": common::png(2, 2, paint), "model": "minilm"}),
    )
    .await
    .unwrap_err();
    assert!(
        e.contains("`minilm` serves `embedding`, not `background-removal`"),
        "{e}"
    );
    // And ISNet is not an embedding model.
    let e = common::one(
        &host,
        "ai.text-embedding",
        json!({"text": "a", "model": "isnet"}),
    )
    .await
    .unwrap_err();
    assert!(
        e.contains("`isnet` serves `background-removal`, not `embedding`"),
        "{e}"
    );
}

/// BlazeFace, as `weft models pull blazeface` (run by
/// `examples/models/fetch.sh`) put it.
fn blazeface() -> ModelConfig {
    let model = fetched().join("models/blazeface/model.onnx");
    assert!(
        model.is_file(),
        "BlazeFace is missing: run examples/models/fetch.sh (tests/run.sh does)"
    );
    onnx(ModelKind::FaceDetection, model)
}

/// A photograph of a face (Franz Kafka, 1923), as `tests/photo.sh` put it.
fn portrait() -> image::RgbaImage {
    let path = PathBuf::from(ROOT).join(".weft/test-data/franz-kafka.jpg");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: run tests/photo.sh (tests/run.sh does)",
            path.display()
        )
    });
    image::load_from_memory(&bytes).unwrap().into_rgba8()
}

fn png_of(image: &image::RgbaImage) -> String {
    common::png(image.width(), image.height(), |x, y| {
        image.get_pixel(x, y).0
    })
}

/// The faces `ai.face-detector` finds in `image` by `blazeface`.
async fn faces(host: &weft::Host, image: String, extra: Value) -> Vec<Value> {
    let mut input = json!({"image": image, "model": "blazeface"});
    input
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let out = common::one(host, "ai.face-detector", input).await.unwrap();
    out["faces"].as_array().expect("faces").clone()
}

/// A face's box as `[x, y, width, height]`, and a keypoint by label.
fn bounds(face: &Value) -> [f64; 4] {
    ["x", "y", "width", "height"].map(|k| face["box"][k].as_f64().unwrap())
}

fn point(face: &Value, label: &str) -> (f64, f64) {
    let k = face["keypoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["label"] == label)
        .unwrap_or_else(|| panic!("no {label} in {face}"));
    (k["x"].as_f64().unwrap(), k["y"].as_f64().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn face_detection_finds_the_face_in_a_photograph_where_it_is() {
    let photo = portrait();
    let (w, h) = (f64::from(photo.width()), f64::from(photo.height()));
    let host = common::builder(None)
        .model("blazeface", blazeface())
        .model("minilm", minilm())
        .build()
        .await
        .unwrap();
    let found = faces(&host, png_of(&photo), json!({})).await;
    assert_eq!(found.len(), 1, "one face: {found:?}");
    let face = &found[0];
    assert!(face["score"].as_f64().unwrap() > 0.8, "{face}");
    let [x, y, bw, bh] = bounds(face);
    assert!(x >= 0.0 && y >= 0.0 && x + bw <= w && y + bh <= h, "{face}");
    assert!(bw > w * 0.2 && bw < w * 0.9, "a portrait's face: {face}");
    // The keypoints, as fractions of the image, in a face's order: the
    // subject's right eye on the image's left, the nose between and below
    // the eyes, the mouth below the nose, all within the box.
    let (rx, ry) = point(face, "rightEye");
    let (lx, ly) = point(face, "leftEye");
    let (nx, ny) = point(face, "noseTip");
    let (_, my) = point(face, "mouthCenter");
    assert!(rx < nx && nx < lx, "{face}");
    assert!(ry.max(ly) < ny && ny < my, "{face}");
    for (px, py) in [(rx, ry), (lx, ly), (nx, ny)] {
        assert!(
            px * w > x && px * w < x + bw && py * h > y && py * h < y + bh,
            "{face}"
        );
    }

    // Mirrored, the face is found mirrored: each keypoint where its mirror
    // image went (the labels follow the image: `rightEye` stays on the
    // left), the box too.
    let mirrored = faces(
        &host,
        png_of(&image::imageops::flip_horizontal(&photo)),
        json!({}),
    )
    .await;
    assert_eq!(mirrored.len(), 1, "{mirrored:?}");
    let m = &mirrored[0];
    for (label, from) in [
        ("noseTip", "noseTip"),
        ("rightEye", "leftEye"),
        ("leftEye", "rightEye"),
    ] {
        let (got, was) = (point(m, label), point(face, from));
        assert!(
            (got.0 - (1.0 - was.0)).abs() < 0.02,
            "{label}: {m} against {face}"
        );
        assert!((got.1 - was.1).abs() < 0.02, "{label}: {m} against {face}");
    }
    let [mx, _, mw, _] = bounds(m);
    assert!((mx + mw - (w - x)).abs() < w * 0.02, "{m} against {face}");

    // Cropped to a landscape and put at the right of a white canvas (so
    // the model's square pads above and below), the face is found where
    // the crop put it: the letterbox is undone on both axes.
    let crop = image::imageops::crop_imm(&photo, 75, 0, 300, 300).to_image();
    let mut canvas = image::RgbaImage::from_pixel(450, 300, image::Rgba([255; 4]));
    image::imageops::overlay(&mut canvas, &crop, 150, 0);
    let moved = faces(&host, png_of(&canvas), json!({})).await;
    assert_eq!(moved.len(), 1, "{moved:?}");
    let [cx, cy, cw, _] = bounds(&moved[0]);
    assert!((cx - (x + 75.0)).abs() < 8.0, "{} against {face}", moved[0]);
    assert!((cy - y).abs() < 8.0, "{} against {face}", moved[0]);
    assert!((cw - bw).abs() < bw * 0.1, "{} against {face}", moved[0]);
    let (nose_x, nose_y) = point(&moved[0], "noseTip");
    let (was_x, was_y) = point(face, "noseTip");
    assert!(
        (nose_x * 450.0 - (was_x * w + 75.0)).abs() < 8.0,
        "{}",
        moved[0]
    );
    assert!((nose_y * 300.0 - was_y * h).abs() < 8.0, "{}", moved[0]);

    // At 0 every anchor counts: still at most 100 faces, every number
    // finite (a score that underflowed to 0 is no face).
    let all = faces(&host, png_of(&photo), json!({"minDetectionConfidence": 0})).await;
    assert!(!all.is_empty() && all.len() <= 100, "{}", all.len());
    for f in &all {
        assert!(bounds(f).iter().all(|v| v.is_finite()), "{f}");
        for k in f["keypoints"].as_array().unwrap() {
            assert!(
                k["x"].as_f64().is_some() && k["y"].as_f64().is_some(),
                "{f}"
            );
        }
    }

    // No face in a plain gradient; none scoring above 0.9999 asked.
    let ground = common::png(256, 256, |x, y| [x as u8, y as u8, 128, 255]);
    assert!(faces(&host, ground, json!({})).await.is_empty());
    let strict = faces(
        &host,
        png_of(&photo),
        json!({"minDetectionConfidence": 0.9999}),
    )
    .await;
    assert!(strict.is_empty(), "{strict:?}");

    // Out of range and other kinds are refused, saying what.
    let e = common::one(
        &host,
        "ai.face-detector",
        json!({"image": png_of(&photo), "model": "blazeface", "minSuppressionThreshold": 2}),
    )
    .await
    .unwrap_err();
    assert!(e.contains("minSuppressionThreshold"), "{e}");
    let e = common::one(
        &host,
        "ai.face-detector",
        json!({"image": png_of(&photo), "model": "minilm"}),
    )
    .await
    .unwrap_err();
    assert!(
        e.contains("`minilm` serves `embedding`, not `face-detection`"),
        "{e}"
    );
}

/// `url` serving `content` from a real HTTP server on loopback.
async fn serve_file(content: Vec<u8>) -> String {
    let app = axum::Router::new().route(
        "/model.bin",
        axum::routing::get(move || {
            let content = content.clone();
            async move { content }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let at = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{at}/model.bin")
}

#[tokio::test]
async fn workglows_model_tasks_download_search_and_remove_a_model() {
    use sha2::Digest;
    let content: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    let url = serve_file(content.clone()).await;
    let data = tempfile::tempdir().unwrap();
    let folder = data.path().join("models/m");
    let m = ModelConfig {
        files: vec![weft::providers::ModelFile {
            url,
            sha256: hex::encode(sha2::Sha256::digest(&content)),
            name: "model.bin".into(),
            max_bytes: None,
        }],
        ..onnx(ModelKind::Embedding, folder.join("model.bin"))
    };
    let host = common::builder(None)
        .models_dir(data.path().join("models"))
        .model("m", m)
        .model("minilm", minilm())
        .model("isnet", isnet())
        .build()
        .await
        .unwrap();

    let out = common::one(&host, "ModelDownloadTask", json!({"model": "m"}))
        .await
        .unwrap();
    assert_eq!(out["model"], "m");
    assert_eq!(std::fs::read(folder.join("model.bin")).unwrap(), content);

    let ids = |out: Value| -> Vec<String> {
        out["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                assert_eq!(r["record"], r["id"], "a task's `model` takes the id");
                r["id"].as_str().unwrap().to_string()
            })
            .collect()
    };
    let search = |input: Value| common::one(&host, "ModelSearchTask", input);
    let all = search(json!({"provider": "onnx"})).await.unwrap();
    assert_eq!(ids(all), ["isnet", "m", "minilm"]);
    let some = search(json!({"provider": "onnx", "query": "MINI"})).await;
    assert_eq!(ids(some.unwrap()), ["minilm"]);
    let none = search(json!({"provider": "openai", "query": ""})).await;
    assert_eq!(ids(none.unwrap()), Vec::<String>::new());

    let out = common::one(&host, "ModelDownloadRemoveTask", json!({"model": "m"}))
        .await
        .unwrap();
    assert_eq!(out["model"], "m");
    assert_eq!(
        out["removed"],
        json!([folder.join("model.bin").display().to_string()])
    );
    assert!(!folder.exists(), "the emptied folder is removed");
    // Again: nothing left to remove, and a model without `files` is only
    // unloaded (MiniLM's files, put there by `weft models pull`, stay).
    let again = common::one(&host, "ai.model-remove", json!({"model": "m"})).await;
    assert_eq!(again.unwrap()["removed"], json!([]));
    let kept = common::one(&host, "ai.model-remove", json!({"model": "minilm"})).await;
    assert_eq!(kept.unwrap()["removed"], json!([]));
    assert!(fetched().join("models/minilm/model.onnx").is_file());
    let e = common::one(&host, "ai.model-remove", json!({"model": "nope"})).await;
    assert!(e.unwrap_err().contains("unknown model `nope`"));

    // A user finds only the models the user is granted.
    let ann: weft::grant::Grants = serde_json::from_value(json!({"models": ["minilm"]})).unwrap();
    let per_user = common::builder(None)
        .model("minilm", minilm())
        .model("isnet", isnet())
        .grants(weft::grant::UserGrants::new([("ann".to_string(), ann)]))
        .build()
        .await
        .unwrap();
    let graph = common::graph(json!({"tasks": [
        {"id": "t", "type": "ModelSearchTask", "defaults": {"provider": "onnx"}}
    ]}));
    let Ok(weft::Prepared::New(run)) = per_user
        .submit(
            &graph,
            "g.json",
            json!({}),
            weft::Submission {
                owner: Some("ann".into()),
                ..weft::Submission::default()
            },
        )
        .await
    else {
        panic!("ann's run was refused");
    };
    let result = per_user.execute(&run, &Default::default()).await.unwrap();
    assert_eq!(ids(result.outputs["t"].clone()), ["minilm"]);
}

fn tiny_gpt2() -> ModelConfig {
    fetched();
    onnx(
        ModelKind::Generation,
        PathBuf::from(ROOT).join("tests/data/tiny-gpt2/model.onnx"),
    )
}

fn flow(s: &str, sp: &str, t: &str, tp: &str) -> Value {
    json!({"sourceTaskId": s, "sourceTaskPortId": sp, "targetTaskId": t, "targetTaskPortId": tp})
}

#[tokio::test]
async fn minilm_through_a_wasm_task_matches_the_reference_embeddings() {
    let reference = test_data("minilm-reference.json");
    let host = common::builder(None)
        .model("minilm", minilm())
        .build()
        .await
        .unwrap();
    let graph = common::graph(json!({
        "tasks": [{"id": "embed", "type": "ai.text-embedding", "defaults": {"model": "minilm"}}]
    }));
    let (result, _) = common::run(&host, &graph, json!({"texts": reference["sentences"]})).await;
    let vectors = result.outputs["embed"]["vectors"]
        .as_array()
        .expect("vectors")
        .clone();
    assert_eq!(vectors.len(), 3);
    let as_f32 = |v: &Value| -> Vec<f32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    };
    for (got, want) in vectors
        .iter()
        .zip(reference["embeddings"].as_array().unwrap())
    {
        let (got, want) = (as_f32(got), as_f32(want));
        assert_eq!(got.len(), 384);
        let worst = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-2, "a component is off by {worst}");
    }
    let cos = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    let v: Vec<Vec<f32>> = vectors.iter().map(as_f32).collect();
    let s12 = cos(&v[0], &v[1]);
    assert!((s12 - 0.649).abs() <= 0.002, "cos(s1, s2) = {s12}");
    assert!(cos(&v[0], &v[2]).abs() < 0.05);

    // The similarity task ranks them: s2 is nearest to s1.
    let rank = common::graph(json!({
        "tasks": [{"id": "rank", "type": "ai.vector-similarity", "defaults": {"top_k": 2}}]
    }));
    let (result, _) = common::run(
        &host,
        &rank,
        json!({"query": vectors[0], "vectors": [vectors[2], vectors[1]]}),
    )
    .await;
    assert_eq!(result.outputs["rank"]["indices"], json!([1, 0]));
}

#[tokio::test]
async fn minilm_classifies_zero_shot_and_reranks_documents_by_meaning() {
    let host = common::builder(None)
        .model("minilm", minilm())
        .build()
        .await
        .unwrap();
    let labels = json!(["sports", "cooking", "finance"]);
    let classify = common::graph(
        json!({"tasks": [{"id": "c", "type": "TextClassificationTask",
        "defaults": {"model": "minilm", "candidateLabels": labels, "maxCategories": 2}}]}),
    );
    for (text, want) in [
        (
            "The striker scored twice in the last minutes of the match.",
            "sports",
        ),
        (
            "Whisk the eggs with the sugar, then fold in the flour and bake.",
            "cooking",
        ),
        (
            "The central bank raised interest rates and the stock market fell.",
            "finance",
        ),
    ] {
        let (result, _) = common::run(&host, &classify, json!({"text": text})).await;
        let categories = result.outputs["c"]["categories"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(categories.len(), 2, "maxCategories");
        assert_eq!(categories[0]["label"], want, "{text}: {categories:?}");
        let (best, second) = (
            categories[0]["score"].as_f64().unwrap(),
            categories[1]["score"].as_f64().unwrap(),
        );
        assert!(best > second && best < 1.0, "{categories:?}");
    }
    // Scores are shares of one: all three labels sum to 1.
    let all = common::graph(
        json!({"tasks": [{"id": "c", "type": "ai.text-classification",
        "defaults": {"model": "minilm", "candidateLabels": labels}}]}),
    );
    let (result, _) = common::run(&host, &all, json!({"text": "a football game"})).await;
    let total: f64 = result.outputs["c"]["categories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["score"].as_f64().unwrap())
        .sum();
    assert!((total - 1.0).abs() < 1e-4, "{total}");
    // Without labels there is nothing to choose from: said, not guessed.
    let (result, _) = common::run(&host, &all, json!({"text": "x", "candidateLabels": []})).await;
    assert!(common::error_of(&result, "c").contains("candidateLabels"));

    // Reranking: scores in the documents' order, indices best first.
    let rerank = common::graph(json!({"tasks": [{"id": "r", "type": "TextRerankerTask",
        "defaults": {"model": "minilm", "topK": 2}}]}));
    let documents = json!([
        "Paris is the capital and largest city of France.",
        "Photosynthesis turns light into chemical energy in plants.",
        "The Eiffel Tower stands in Paris, France.",
    ]);
    let (result, _) = common::run(
        &host,
        &rerank,
        json!({"query": "What is the capital of France?", "documents": documents}),
    )
    .await;
    let out = &result.outputs["r"];
    assert_eq!(out["scores"].as_array().unwrap().len(), 3);
    assert_eq!(out["indices"][0], 0, "{out}");
    assert_eq!(out["indices"].as_array().unwrap().len(), 2, "topK");
    assert!(
        !out["indices"].as_array().unwrap().contains(&json!(1)),
        "{out}"
    );
}

#[tokio::test]
async fn tiny_gpt2_generates_the_expected_greedy_tokens_through_the_import() {
    let expected = test_data("tiny-gpt2/expected.json");
    let host = common::builder(None)
        .model("tiny", tiny_gpt2())
        .build()
        .await
        .unwrap();
    let graph = common::graph(json!({
        "tasks": [
            {"id": "gen", "type": "ai.text-generation",
             "defaults": {"model": "tiny", "prompt": "once upon a time", "max_tokens": 20, "temperature": 0}},
            {"id": "count", "type": "ai.count-tokens",
             "defaults": {"model": "tiny", "text": "once upon a time"}}
        ]
    }));
    let (result, events) = common::run(&host, &graph, json!({})).await;
    assert_eq!(
        result.outputs["count"]["tokens"],
        expected["prompt"].as_array().unwrap().len()
    );
    let generated = &result.outputs["gen"];
    assert_eq!(generated["token_ids"], expected["expected"], "{generated}");
    assert_eq!(
        (
            generated["tokens"].clone(),
            generated["finish_reason"].clone()
        ),
        (json!(20), json!("length"))
    );
    // The text was streamed as progress events of the node while generated.
    let streamed: String = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Progress {
                node,
                message: Some(m),
                ..
            } if node == "gen" => Some(m.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(streamed, generated["text"].as_str().unwrap());
}

#[tokio::test]
async fn plugins_get_only_the_models_their_manifest_grants_and_a_flood_is_rate_limited() {
    let limited = ModelConfig {
        rate: Some(RateConfig {
            max: 3,
            per_ms: 60_000,
        }),
        max_wait_ms: Some(0),
        ..minilm()
    };
    let probe = |model: &str, calls: u32| {
        common::graph(json!({
            "tasks": [{"id": "p", "type": "probe.models", "defaults": {"model": model, "calls": calls}}]
        }))
    };
    // No grant: an error value naming the manifest, not a trap.
    let dir = PluginDir::new().add("probe", MISBEHAVE);
    let host = common::builder(Some(dir.path()))
        .model("minilm", minilm())
        .build()
        .await
        .unwrap();
    let (result, _) = common::run(&host, &probe("minilm", 1), json!({})).await;
    let out = &result.outputs["p"];
    assert_eq!(out["ok"], 0);
    let error = out["errors"][0].as_str().unwrap();
    assert!(
        error.contains("NotGranted")
            && error.contains("plugin `probe` is not granted model `minilm`"),
        "{error}"
    );

    // Granted: it works; an unknown model is an error value too.
    let dir = PluginDir::new()
        .add("probe", MISBEHAVE)
        .manifest("probe", "[grants]\nmodels = [\"minilm\", \"limited\"]\n");
    let host = common::builder(Some(dir.path()))
        .model("minilm", minilm())
        .model("limited", limited)
        .build()
        .await
        .unwrap();
    let (result, _) = common::run(&host, &probe("minilm", 2), json!({})).await;
    assert_eq!(result.outputs["p"]["ok"], 2, "{}", result.outputs["p"]);
    let (result, _) = common::run(&host, &probe("nope", 1), json!({})).await;
    assert!(
        result.outputs["p"]["errors"][0]
            .as_str()
            .unwrap()
            .contains("UnknownModel")
    );

    // Each user's runs call only the models the user is granted: refused at
    // submit when the graph names one, and checked again at each call.
    let ann: weft::grant::Grants = serde_json::from_value(json!({"models": ["minilm"]})).unwrap();
    let per_user = common::builder(Some(dir.path()))
        .model("minilm", minilm())
        .grants(weft::grant::UserGrants::new([("ann".to_string(), ann)]))
        .build()
        .await
        .unwrap();
    let as_user = |user: &str| weft::Submission {
        owner: Some(user.to_string()),
        ..weft::Submission::default()
    };
    let graph = probe("minilm", 1);
    match per_user
        .submit(&graph, "g.json", json!({}), as_user("bob"))
        .await
    {
        Err(e @ weft::HostError::NotGranted { .. }) => assert!(
            e.to_string()
                .contains("node `p`: model `minilm` is not granted to user `bob`"),
            "{e}"
        ),
        _ => panic!("bob's run was admitted"),
    }
    let Ok(weft::Prepared::New(run)) = per_user
        .submit(&graph, "g.json", json!({}), as_user("ann"))
        .await
    else {
        panic!("ann's run was refused");
    };
    let result = per_user.execute(&run, &Default::default()).await.unwrap();
    assert_eq!(result.outputs["p"]["ok"], 1, "{}", result.outputs["p"]);

    // A flood: 3 calls per minute are let through, the rest answered rate-limited.
    let (result, _) = common::run(&host, &probe("limited", 10), json!({})).await;
    let out = &result.outputs["p"];
    assert_eq!(out["ok"], 3, "{out}");
    let errors = out["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 7);
    assert!(
        errors
            .iter()
            .all(|e| e.as_str().unwrap().starts_with("ModelError::RateLimited(")),
        "{out}"
    );
}

// ---- HTTP providers -----------------------------------------------------

/// Run `graph` (no input): the first failed node's error (empty: none).
async fn first_error(host: &weft::Host, graph: &weft::graph::Graph) -> String {
    let (r, _) = common::run(host, graph, json!({})).await;
    r.failures
        .first()
        .map(|f| f.error.clone())
        .unwrap_or_default()
}

/// A host whose model `chat` is an OpenAI-compatible provider on loopback,
/// and that provider.
async fn chat_host() -> (Arc<fake_api::Fake>, weft::Host) {
    let (fake, base) = fake_provider().await;
    let host = common::builder(None)
        .model(
            "chat",
            http(
                ProviderKind::Openai,
                format!("{base}/v1"),
                ModelKind::Generation,
            ),
        )
        .build()
        .await
        .unwrap();
    (fake, host)
}

fn http(provider: ProviderKind, base: String, kind: ModelKind) -> ModelConfig {
    ModelConfig {
        provider,
        kind: Some(kind),
        model: "test-model".into(),
        base_url: Some(base),
        // Any variable that is set: its value is the key the fake sees.
        api_key_env: Some("HOME".into()),
        max_retries: Some(3),
        ..onnx(kind, PathBuf::new())
    }
}

fn models(entries: Vec<(&str, ModelConfig)>) -> Models {
    Models::new(
        entries
            .into_iter()
            .map(|(id, c)| (id.to_string(), c))
            .collect(),
        weft::limiter::QueueState {
            store: Arc::new(MemoryStore::new()),
            clock: weft::clock::system(),
        },
    )
}

/// Every model granted (the calls come from the test, not a plugin).
fn all() -> Vec<String> {
    vec!["*".to_string()]
}

#[tokio::test]
async fn openai_compatible_chat_streams_and_retries_429_and_5xx() {
    let (fake, base) = fake_provider().await;
    let m = models(vec![
        (
            "chat",
            http(
                ProviderKind::Openai,
                format!("{base}/v1"),
                ModelKind::Generation,
            ),
        ),
        (
            "vectors",
            http(
                ProviderKind::Openai,
                format!("{base}/v1"),
                ModelKind::Embedding,
            ),
        ),
    ]);
    fake.script(&[
        Reply::Status(429, Some(1)),
        Reply::Status(503, None),
        Reply::Ok,
    ]);
    let pieces = Mutex::new(Vec::new());
    let sink = |t: &str| pieces.lock().unwrap().push(t.to_string());
    let started = std::time::Instant::now();
    let g = m
        .generate(
            "test",
            &all(),
            "chat",
            &Prompt::Text("hi".into()),
            &GenerateOptions::default(),
            &sink,
        )
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );
    assert_eq!(
        (g.text.as_str(), g.tokens, g.finish_reason.as_str()),
        ("Hello world", 3, "end")
    );
    assert_eq!(*pieces.lock().unwrap(), vec!["Hel", "lo", " world"]);
    assert_eq!(fake.hits(), 3);
    let seen = fake.seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(seen.0, "/v1/chat/completions");
    let key = std::env::var("HOME").unwrap();
    assert_eq!(seen.1["authorization"], format!("Bearer {key}").as_str());
    assert_eq!(
        seen.2["messages"],
        json!([{"role": "user", "content": "hi"}])
    );
    assert_eq!(seen.2["stream"], true);

    // Embeddings come back in input order.
    let v = m
        .embed("test", &all(), "vectors", &["a".into(), "bbb".into()])
        .await
        .unwrap();
    assert_eq!(v, vec![vec![1.0, 0.0], vec![3.0, 1.0]]);
    // A generation model is not an embedding model.
    let e = m
        .embed("test", &all(), "chat", &["a".into()])
        .await
        .unwrap_err();
    assert!(matches!(e, ModelError::InvalidRequest(_)), "{e}");
}

#[tokio::test]
async fn provider_failures_become_clean_errors() {
    let (fake, base) = fake_provider().await;
    let quick = ModelConfig {
        max_retries: Some(1),
        timeout_ms: Some(300),
        max_wait_ms: Some(0),
        ..http(
            ProviderKind::Openai,
            format!("{base}/v1"),
            ModelKind::Generation,
        )
    };
    let m = models(vec![("chat", quick)]);
    let call = || async {
        m.generate(
            "test",
            &all(),
            "chat",
            &Prompt::Text("hi".into()),
            &GenerateOptions::default(),
            &|_| {},
        )
        .await
    };
    // A server error that persists: retried once, then unavailable, with the message.
    fake.script(&[Reply::Status(500, None), Reply::Status(500, None)]);
    let e = call().await.unwrap_err();
    assert!(
        matches!(&e, ModelError::Unavailable(m) if m.contains("HTTP 500") && m.contains("overloaded")),
        "{e}"
    );
    assert_eq!(fake.hits(), 2);
    // A client error is not retried.
    fake.script(&[Reply::Status(400, None)]);
    let e = call().await.unwrap_err();
    assert!(matches!(e, ModelError::InvalidRequest(_)), "{e}");
    assert_eq!(fake.hits(), 3);
    // Too slow: timed out.
    fake.script(&[Reply::Slow(2_000), Reply::Slow(2_000)]);
    let e = call().await.unwrap_err();
    assert!(e.to_string().contains("timed out"), "{e}");
    // A malformed stream.
    fake.script(&[Reply::Malformed]);
    let e = call().await.unwrap_err();
    assert!(e.to_string().contains("malformed response"), "{e}");
    // 429 with a long Retry-After: not waited for inside the call but answered
    // rate limited; the model's limiter pauses, so the next call is answered
    // without reaching the provider.
    fake.script(&[Reply::Status(429, Some(30))]);
    let before = fake.hits();
    let e = call().await.unwrap_err();
    assert_eq!(
        e,
        ModelError::RateLimited {
            retry_after_ms: 30_000
        }
    );
    assert_eq!(fake.hits(), before + 1);
    let e = call().await.unwrap_err();
    assert!(
        matches!(e, ModelError::RateLimited { retry_after_ms } if retry_after_ms > 20_000),
        "{e}"
    );
    assert_eq!(
        fake.hits(),
        before + 1,
        "paused: the provider was not called"
    );
}

#[tokio::test]
async fn anthropic_messages_stream_and_count_tokens() {
    let (fake, base) = fake_provider().await;
    let m = models(vec![(
        "claude",
        http(ProviderKind::Anthropic, base, ModelKind::Generation),
    )]);
    let prompt = Prompt::Chat(vec![
        Message {
            role: "system".into(),
            content: "Be brief.".into(),
        },
        Message {
            role: "user".into(),
            content: "Say hello in French".into(),
        },
    ]);
    let options = GenerateOptions {
        max_tokens: Some(10),
        temperature: Some(0.5),
        stop: vec!["\n".into()],
    };
    let g = m
        .generate("test", &all(), "claude", &prompt, &options, &|_| {})
        .await
        .unwrap();
    assert_eq!(
        (g.text.as_str(), g.tokens, g.finish_reason.as_str()),
        ("Bonjour", 2, "end")
    );
    let (path, headers, body) = fake.seen.lock().unwrap()[0].clone();
    assert_eq!(path, "/v1/messages");
    assert_eq!(
        headers["x-api-key"],
        std::env::var("HOME").unwrap().as_str()
    );
    assert_eq!(headers["anthropic-version"], "2023-06-01");
    assert_eq!(body["system"], "Be brief.");
    assert_eq!(
        body["messages"],
        json!([{"role": "user", "content": "Say hello in French"}])
    );
    assert_eq!(
        (body["max_tokens"].clone(), body["stop_sequences"].clone()),
        (json!(10), json!(["\n"]))
    );
    assert_eq!(
        m.count_tokens("test", &all(), "claude", "one two three")
            .await
            .unwrap(),
        3
    );
    let e = m
        .embed("test", &all(), "claude", &["x".into()])
        .await
        .unwrap_err();
    assert!(matches!(e, ModelError::InvalidRequest(_)), "{e}");
}

/// Workglow's `ImageToTextTask`: an image described by a vision model over
/// HTTP. An OpenAI-compatible provider is sent the prompt, then the image
/// as a `data:` URL part of the user message; Anthropic the image as a
/// base64 block before the text; the answer is the task's text. A file
/// that is not PNG or JPEG is refused by name before any request, and a
/// local model says it takes no images.
#[tokio::test]
async fn workglows_image_to_text_sends_the_image_to_a_vision_model() {
    use base64::Engine;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let (fake, base) = fake_provider().await;
    let openai = http(
        ProviderKind::Openai,
        format!("{base}/v1"),
        ModelKind::Generation,
    );
    let host = common::builder(None)
        .model("vision", openai)
        .model(
            "claude",
            http(ProviderKind::Anthropic, base, ModelKind::Generation),
        )
        .model("tiny", tiny_gpt2())
        .build()
        .await
        .unwrap();
    let image = image::RgbaImage::from_pixel(2, 2, image::Rgba([200, 30, 30, 255]));
    let mut png = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let uri = format!("data:image/png;base64,{}", b64(&png));
    let describe = |model: &str, image: &str| {
        common::graph(json!({"tasks": [{"id": "d", "type": "ImageToTextTask",
            "defaults": {"model": model, "image": image, "maxTokens": 20}}]}))
    };
    let asked = "Describe this image in one or two sentences.";

    let (r, _) = common::run(&host, &describe("vision", &uri), json!({})).await;
    assert_eq!(r.outputs["d"]["text"], "Hello world", "{:?}", r.failures);
    let (path, _, body) = fake.seen.lock().unwrap()[0].clone();
    assert_eq!(path, "/v1/chat/completions");
    let parts = json!([{"type": "text", "text": asked},
                      {"type": "image_url", "image_url": {"url": uri}}]);
    assert_eq!(
        body["messages"],
        json!([{"role": "user", "content": parts}])
    );
    assert_eq!(body["max_tokens"], 20);

    let (r, _) = common::run(&host, &describe("claude", &uri), json!({})).await;
    assert_eq!(r.outputs["d"]["text"], "Bonjour", "{:?}", r.failures);
    let (path, _, body) = fake.seen.lock().unwrap()[1].clone();
    assert_eq!(path, "/v1/messages");
    let source = json!({"type": "base64", "media_type": "image/png", "data": b64(&png)});
    assert_eq!(
        body["messages"][0]["content"],
        json!([{"type": "image", "source": source}, {"type": "text", "text": asked}])
    );

    let gif = format!("data:image/png;base64,{}", b64(b"GIF89a\x01\x00\x01\x00"));
    let error = first_error(&host, &describe("vision", &gif)).await;
    assert!(error.contains("not a PNG or JPEG file"), "{error}");
    assert_eq!(fake.hits(), 2, "nothing sent for a file that is no image");

    let error = first_error(&host, &describe("tiny", &uri)).await;
    assert!(error.contains("does not take images"), "{error}");
}

/// Workglow's `ImageGenerateTask` and `ImageEditTask` on an OpenAI
/// images API: a new image is asked as JSON (prompt, size from the aspect
/// ratio, base64 answer), an edit as a multipart form carrying the image
/// and the mask as PNG files; the answer is the task's image. An aspect
/// ratio it cannot make is refused by name, and a text model makes no
/// images.
#[tokio::test]
async fn workglows_image_generation_and_edit_go_to_an_images_api() {
    let (fake, base) = fake_provider().await;
    let painter = http(
        ProviderKind::Openai,
        format!("{base}/v1"),
        ModelKind::ImageGeneration,
    );
    let text = http(
        ProviderKind::Openai,
        format!("{base}/v1"),
        ModelKind::Generation,
    );
    let host = common::builder(None)
        .model("painter", painter)
        .model("chat", text)
        .build()
        .await
        .unwrap();
    let made = format!("data:image/png;base64,{}", fake_api::made_image());
    let one = |class: &str, defaults: Value| {
        common::graph(json!({"tasks": [{"id": "i", "type": class, "defaults": defaults}]}))
    };
    let (r, _) = common::run(
        &host,
        &one(
            "ImageGenerateTask",
            json!({"model": "painter", "prompt": "a green field",
            "aspectRatio": "16:9", "quality": "low", "seed": 7}),
        ),
        json!({}),
    )
    .await;
    assert_eq!(r.outputs["i"]["image"], json!(made), "{:?}", r.failures);
    let (path, _, body) = fake.seen.lock().unwrap()[0].clone();
    assert_eq!(path, "/v1/images/generations");
    assert_eq!(
        body,
        json!({"model": "test-model", "prompt": "a green field", "n": 1, "size": "1536x1024",
               "quality": "low", "response_format": "b64_json"})
    );

    let (r, _) = common::run(
        &host,
        &one(
            "ImageEditTask",
            json!({"model": "painter", "prompt": "make it blue",
            "image": made, "mask": made}),
        ),
        json!({}),
    )
    .await;
    assert_eq!(r.outputs["i"]["image"], json!(made), "{:?}", r.failures);
    let (path, headers, body) = fake.seen.lock().unwrap()[1].clone();
    assert_eq!(path, "/v1/images/edits");
    let form = body["raw"].as_str().unwrap_or_default();
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("multipart/form-data")
    );
    for part in [
        "name=\"prompt\"\r\n\r\nmake it blue",
        "name=\"size\"\r\n\r\n1024x1024",
        "name=\"image\"; filename=\"image0.png\"\r\nContent-Type: image/png",
        "name=\"mask\"; filename=\"mask.png\"\r\nContent-Type: image/png",
        "\u{FFFD}PNG",
    ] {
        assert!(form.contains(part), "the form has {part:?}: {form:.300}");
    }

    let wide = json!({"model": "painter", "prompt": "x", "aspectRatio": "2:1"});
    let error = first_error(&host, &one("ImageGenerateTask", wide)).await;
    assert!(error.contains("aspect ratio `2:1`"), "{error}");
    let text_model = json!({"model": "chat", "prompt": "x"});
    let error = first_error(&host, &one("ImageGenerateTask", text_model)).await;
    assert!(error.contains("image-generation"), "{error}");
    assert_eq!(fake.hits(), 2, "nothing sent for the refused requests");
}

#[tokio::test]
async fn a_wasm_task_generates_through_an_http_provider_and_streams_progress() {
    let (_fake, host) = chat_host().await;
    let graph = common::graph(json!({
        "tasks": [
            {"id": "ask", "type": "ai.text-question-answer", "defaults": {"model": "chat"}},
            {"id": "shout", "type": "text.template", "defaults": {"template": "{{answer}}!"}}
        ],
        "dataflows": [flow("ask", "answer", "shout", "answer")]
    }));
    let (result, events) = common::run(
        &host,
        &graph,
        json!({"context": "Weft runs wasm.", "question": "What does Weft run?"}),
    )
    .await;
    assert_eq!(result.outputs["shout"]["text"], "Hello world!");
    let streamed: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Progress {
                node,
                message: Some(m),
                ..
            } if node == "ask" => Some(m.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(streamed, vec!["Hel", "lo", " world"]);
}

#[tokio::test]
async fn structured_generation_validates_the_answer_and_asks_again_with_the_errors() {
    let (fake, host) = chat_host().await;
    let schema = json!({"type": "object", "required": ["name", "born"],
        "properties": {"name": {"type": "string"}, "born": {"type": "integer"}}});
    let graph = common::graph(
        json!({"tasks": [{"id": "s", "type": "StructuredGenerationTask",
        "defaults": {"model": "chat", "outputSchema": schema}}]}),
    );
    // Not JSON, then JSON of the wrong shape, then a conforming object in a
    // code fence.
    fake.script(&[
        Reply::Text("Sure thing!".into()),
        Reply::Text(r#"{"name": 1815}"#.into()),
        Reply::Text("```json\n{\"name\": \"Ada\", \"born\": 1815}\n```".into()),
    ]);
    let (result, _) = common::run(
        &host,
        &graph,
        json!({"prompt": "Who wrote the first program?"}),
    )
    .await;
    assert_eq!(
        result.outputs["s"]["object"],
        json!({"name": "Ada", "born": 1815}),
        "{:?}",
        result.failures
    );
    let seen = fake.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "two retries");
    let system = seen[0].2["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        system.contains("\"born\""),
        "the schema is in the prompt: {system}"
    );
    // And the OpenAI-compatible API holds the model to it natively.
    assert_eq!(
        seen[0].2["response_format"],
        json!({"type": "json_schema",
               "json_schema": {"name": "answer", "schema": schema, "strict": false}})
    );
    // Every attempt, the retries too.
    assert!(
        seen.iter()
            .all(|(_, _, b)| b["response_format"]["type"] == "json_schema")
    );
    let retry = seen[2].2["messages"][1]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        retry.starts_with("Who wrote the first program?")
            && retry.contains("did not conform")
            && retry.contains("/name")
            && retry.contains("\"born\" is a required property"),
        "{retry}"
    );
    drop(seen);

    // Out of retries: the node fails, naming the last errors.
    fake.script(&[Reply::Text("{}".into())]);
    let (result, _) = common::run(&host, &graph, json!({"prompt": "?", "maxRetries": 0})).await;
    let error = common::error_of(&result, "s");
    assert!(
        error.contains("after 1 attempt(s)") && error.contains("required property"),
        "{error}"
    );
    // A schema that is not one is refused before any call.
    let hits = fake.hits();
    let (result, _) = common::run(
        &host,
        &graph,
        json!({"prompt": "?", "outputSchema": {"type": "nope"}}),
    )
    .await;
    assert!(common::error_of(&result, "s").contains("not a valid JSON Schema"));
    assert_eq!(fake.hits(), hits);
}

/// `DocumentEnricherTask` summarises a parsed document's sections bottom up
/// through the generation model, as Workglow's: a section over the
/// threshold has its title summarised, then that with its paragraph; one
/// under it gets an empty enrichment; the document's summary is made from
/// its sections' summaries (or titles). No model, no calls. With a model
/// for entities, each node's text is asked and a node holds its children's
/// entities too.
#[tokio::test]
async fn the_document_enricher_summarises_sections_bottom_up() {
    let (fake, host) = chat_host().await;
    let task = |input: Value| common::one(&host, "DocumentEnricherTask", input);
    let text = "# Looms\nWeft threads run across the warp on a loom, row after row.\n# Dyes\nBlue.";
    let parse = common::graph(json!({"tasks": [{"id": "p", "type": "StructuralParserTask",
        "defaults": {"text": text, "title": "Notes", "doc_id": "notes"}}]}));
    let tree = common::run(&host, &parse, json!({})).await.0.outputs["p"]["documentTree"].clone();
    let replies = [
        "Looms, briefly.",
        "Weft crosses the warp on a loom, row by row.",
        "Notes.",
        "A document about looms and dyes.",
    ];
    fake.script(&replies.map(|r| Reply::Text(r.into())));
    let input = json!({"doc_id": "notes", "documentTree": tree, "summaryModel": "chat",
                       "summaryThreshold": 40});
    let out = task(input.clone()).await.unwrap();
    assert_eq!(out["summaryCount"], 2);
    assert_eq!(out["entityCount"], 0);
    assert_eq!(out["doc_id"], "notes");
    let enriched = &out["documentTree"];
    assert_eq!(enriched["enrichment"], json!({"summary": replies[3]}));
    let looms = &enriched["children"][0];
    assert_eq!(looms["enrichment"], json!({"summary": replies[1]}));
    assert_eq!(looms["children"][0].get("enrichment"), None);
    assert_eq!(enriched["children"][1]["enrichment"], json!({}));
    let asked: Vec<String> = fake
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, _, body)| body["messages"][1]["content"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        asked,
        [
            "Looms".to_string(),
            format!(
                "{} Weft threads run across the warp on a loom, row after row.",
                replies[0]
            ),
            "Notes".to_string(),
            format!("{} {} Dyes", replies[2], replies[1]),
        ]
    );

    let plain = task(json!({"documentTree": tree})).await.unwrap();
    assert_eq!(plain["documentTree"], tree);
    assert_eq!(plain["summaryCount"], 0);
    assert_eq!(fake.hits(), 4);

    // Entities: each node's own text asked, a node holding its children's.
    let parse = common::graph(json!({"tasks": [{"id": "p", "type": "StructuralParserTask",
        "defaults": {"text": "# Looms\nAda Lovelace wove in London.\n", "title": "Notes"}}]}));
    let tree = common::run(&host, &parse, json!({})).await.0.outputs["p"]["documentTree"].clone();
    fake.script(&[
        Reply::Text(
            r#"{"entities": [{"entity": "PER", "word": "Ada Lovelace", "score": 0.9},
            {"entity": "LOC", "word": "London", "score": 0.8}]}"#
                .into(),
        ),
        Reply::Text(r#"{"entities": []}"#.into()),
        Reply::Text(r#"{"entities": [{"entity": "MISC", "word": "Notes", "score": 0.5}]}"#.into()),
    ]);
    let out = task(json!({"documentTree": tree, "nerModel": "chat"}))
        .await
        .unwrap();
    let ada = json!({"type": "PER", "text": "Ada Lovelace", "score": 0.9});
    let london = json!({"type": "LOC", "text": "London", "score": 0.8});
    let notes = json!({"type": "MISC", "text": "Notes", "score": 0.5});
    let enriched = &out["documentTree"];
    let paragraph = &enriched["children"][0]["children"][0];
    assert_eq!(paragraph["enrichment"], json!({"entities": [ada, london]}));
    assert_eq!(
        enriched["children"][0]["enrichment"],
        json!({"entities": [ada, london]})
    );
    assert_eq!(
        enriched["enrichment"],
        json!({"entities": [ada, london, notes]})
    );
    assert_eq!(out["entityCount"], 7);
    assert_eq!(out["summaryCount"], 0);
    let asked: Vec<String> = fake.seen.lock().unwrap()[4..]
        .iter()
        .map(|(_, _, body)| body["messages"][1]["content"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(asked, ["Ada Lovelace wove in London.", "Looms", "Notes"]);
}

/// `TextNamedEntityRecognitionTask` on a generation model: an entity whose
/// words are not in the text is asked about again, with the reason; the
/// types in `blockList` are left out; answers that never check fail, naming
/// why.
#[tokio::test]
async fn named_entities_come_from_a_generation_model_and_are_checked_against_the_text() {
    let (fake, host) = chat_host().await;
    let text = "Ada Lovelace worked with Charles Babbage in London.";
    let graph = common::graph(json!({"tasks": [{"id": "n",
        "type": "TextNamedEntityRecognitionTask",
        "defaults": {"model": "chat", "text": text, "blockList": ["LOC"]}}]}));
    fake.script(&[
        Reply::Text(
            "```json\n{\"entities\": [{\"entity\": \"PER\", \"word\": \"Ada Lovelace\", \"score\": 0.98}, \
             {\"entity\": \"LOC\", \"word\": \"Paris\", \"score\": 0.9}]}\n```"
                .into(),
        ),
        Reply::Text(
            r#"{"entities": [{"entity": "PER", "word": "Ada Lovelace", "score": 0.98},
                {"entity": "PER", "word": "Charles Babbage", "score": 0.97},
                {"entity": "LOC", "word": "London", "score": 0.95}]}"#
                .into(),
        ),
    ]);
    let (result, _) = common::run(&host, &graph, json!({})).await;
    assert_eq!(
        result.outputs["n"]["entities"],
        json!([{"entity": "PER", "word": "Ada Lovelace", "score": 0.98},
               {"entity": "PER", "word": "Charles Babbage", "score": 0.97}]),
        "{:?}",
        result.failures
    );
    let seen = fake.seen.lock().unwrap().clone();
    let content = |n: usize, m: usize| {
        seen[n].2["messages"][m]["content"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(
        content(0, 0).contains("PER (a person)"),
        "{}",
        content(0, 0)
    );
    assert_eq!(content(0, 1), text);
    let retry = content(1, 1);
    assert!(
        retry.contains("/entities/1/word: `Paris` is not in the text"),
        "{retry}"
    );

    fake.script(&[
        Reply::Text("Ada Lovelace is a person.".into()),
        Reply::Text(r#"{"entities": [{"entity": "PER", "word": "Ada", "score": 7}]}"#.into()),
        Reply::Text("{}".into()),
    ]);
    let (result, _) = common::run(&host, &graph, json!({})).await;
    let error = common::error_of(&result, "n");
    assert!(
        error.contains("after 3 attempt(s)")
            && error.contains("\"entities\" is a required property"),
        "{error}"
    );
    let seen = fake.seen.lock().unwrap().clone();
    let second_retry = seen[4].2["messages"][1]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(second_retry.contains("/entities/0/score"), "{second_retry}");
}

/// `TextFillMaskTask` on a generation model: more than one word or scores
/// adding up past 1 are asked about again; the predictions come most likely
/// first, each with the text filled in here; `<mask>` is asked as
/// `[MASK]`; a text without exactly one mask is refused before any call.
#[tokio::test]
async fn fill_mask_comes_from_a_generation_model_and_is_checked() {
    let (fake, host) = chat_host().await;
    let fill = |text: &str| {
        common::one(
            &host,
            "TextFillMaskTask",
            json!({"model": "chat", "text": text}),
        )
    };
    fake.script(&[
        Reply::Text(r#"{"predictions": [{"token": "Paris", "score": 0.7}, {"token": "a city", "score": 0.5}]}"#.into()),
        Reply::Text(r#"{"predictions": [{"token": "Lyon", "score": 0.1}, {"token": "Paris", "score": 0.8}]}"#.into()),
    ]);
    let out = fill("The capital of France is <mask>.").await.unwrap();
    assert_eq!(
        out["predictions"],
        json!([{"entity": "Paris", "score": 0.8, "sequence": "The capital of France is Paris."},
               {"entity": "Lyon", "score": 0.1, "sequence": "The capital of France is Lyon."}])
    );
    let seen = fake.seen.lock().unwrap().clone();
    let content = |n: usize| {
        seen[n].2["messages"][1]["content"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(content(0), "The capital of France is [MASK].");
    let retry = content(1);
    assert!(
        retry.contains("/predictions/1/token: one word is required")
            && retry.contains("the scores add up to 1.2"),
        "{retry}"
    );
    for text in ["No mask here.", "[MASK] and <mask>"] {
        let e = fill(text).await.unwrap_err();
        assert!(e.contains("give exactly one mask"), "{text}: {e}");
    }
    assert_eq!(fake.hits(), 2);
}

#[tokio::test]
async fn tool_calling_returns_checked_calls_and_asks_again_when_one_is_wrong() {
    let (fake, host) = chat_host().await;
    let weather = json!({"name": "weather", "description": "Today's weather in a city",
        "inputSchema": {"type": "object", "required": ["city"],
            "properties": {"city": {"type": "string"}}}});
    let clock =
        json!({"name": "clock", "description": "The time now", "inputSchema": {"type": "object"}});
    let graph = common::graph(json!({"tasks": [{"id": "t", "type": "ToolCallingTask",
        "defaults": {"model": "chat", "tools": [weather, clock]}}]}));
    // A call to a tool that does not exist and one with a wrong input, then
    // a right one in a code fence.
    fake.script(&[
        Reply::Text(
            r#"{"text": "", "tool_calls": [{"name": "forecast", "input": {}}, {"name": "weather", "input": {"city": 75}}]}"#.into(),
        ),
        Reply::Text(
            "```json\n{\"text\": \"Checking.\", \"tool_calls\": [{\"name\": \"weather\", \"input\": {\"city\": \"Paris\"}}]}\n```".into(),
        ),
    ]);
    let (result, _) = common::run(
        &host,
        &graph,
        json!({"prompt": "Do I need an umbrella in Paris?", "systemPrompt": "Be brief.",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}]},
                         {"role": "assistant", "content": "Hi!"}]}),
    )
    .await;
    assert_eq!(
        result.outputs["t"],
        json!({"text": "Checking.", "toolCalls": [{"id": "call_0", "name": "weather", "input": {"city": "Paris"}}]}),
        "{:?}",
        result.failures
    );
    let seen = fake.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "asked again once");
    let first = &seen[0].2["messages"];
    let system = first[0]["content"].as_str().unwrap();
    assert!(
        system.starts_with("Be brief.")
            && system.contains("\"weather\"")
            && system.contains("\"city\""),
        "the tools and their schemas are in the system prompt: {system}"
    );
    assert_eq!(
        (&first[1], &first[2], &first[3]["content"]),
        (
            &json!({"role": "user", "content": "Hello"}),
            &json!({"role": "assistant", "content": "Hi!"}),
            &json!("Do I need an umbrella in Paris?")
        )
    );
    let retry = seen[1].2["messages"].as_array().unwrap().last().unwrap()["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        retry.contains("there is no tool `forecast`")
            && retry.contains("call 1 (`weather`) input /city"),
        "{retry}"
    );
    drop(seen);

    // `none`: no tools offered, the answer is the text.
    fake.script(&[Reply::Text("Take one.".into())]);
    let (result, _) =
        common::run(&host, &graph, json!({"prompt": "?", "toolChoice": "none"})).await;
    assert_eq!(
        result.outputs["t"],
        json!({"text": "Take one.", "toolCalls": []})
    );
    let last = fake.seen.lock().unwrap().last().unwrap().2.clone();
    assert!(!last.to_string().contains("weather"), "{last}");

    // A named tool must be called: three answers without a call fail the node.
    fake.script(&[
        Reply::Text(r#"{"text": "no"}"#.into()),
        Reply::Text(r#"{"text": "no"}"#.into()),
        Reply::Text(r#"{"text": "no"}"#.into()),
    ]);
    let (result, _) =
        common::run(&host, &graph, json!({"prompt": "?", "toolChoice": "clock"})).await;
    let error = common::error_of(&result, "t");
    assert!(
        error.contains("after 3 attempt(s)") && error.contains("no tool was called"),
        "{error}"
    );

    // A choice naming no tool is refused before any call.
    let hits = fake.hits();
    let (result, _) =
        common::run(&host, &graph, json!({"prompt": "?", "toolChoice": "radio"})).await;
    assert!(common::error_of(&result, "t").contains("`toolChoice` `radio`"));
    assert_eq!(fake.hits(), hits);
}

/// The example graph `name` (`examples/NAME.json`).
fn example(name: &str) -> weft::graph::Graph {
    weft::graph::Graph::from_file(&PathBuf::from(ROOT).join(format!("examples/{name}.json")))
        .unwrap()
}

const DOCS: &str = "The loom was invented to weave cloth.\n\
                    Bananas are rich in potassium.\n\n\
                    Weft threads run across the warp on a loom.\n\
                    The stock market closed higher on Friday.";

/// [`DOCS`] put in the knowledge base `docs` by `examples/ingest.json`,
/// as document `notes`.
async fn ingest_docs(host: &weft::Host) {
    let input = json!({"text": DOCS, "doc_id": "notes"});
    let (ingested, _) = common::run(host, &example("ingest"), input).await;
    assert!(ingested.failures.is_empty(), "{:?}", ingested.failures);
}

/// `examples/ingest.json` chunks a document by sentence, embeds each chunk
/// in a map and stores them in the knowledge base `docs`.
#[tokio::test]
async fn the_ingest_example_embeds_each_chunk_in_a_map_and_stores_them() {
    let host = common::builder(None)
        .model("minilm", minilm())
        .build()
        .await
        .unwrap();
    let (result, events) = common::run(
        &host,
        &example("ingest"),
        json!({"text": DOCS, "doc_id": "notes"}),
    )
    .await;
    assert!(result.failures.is_empty(), "{:?}", result.failures);
    assert_eq!(
        result.outputs["store"]["chunk_ids"],
        json!(["notes:0", "notes:1", "notes:2", "notes:3"])
    );
    assert!(
        events.iter().any(|e| matches!(&e.kind,
        EventKind::Progress { node, message: Some(m), .. } if node == "embed" && m == "map 4 / 4"))
    );
}

/// After `examples/ingest.json`, `examples/rag.json` retrieves the two
/// chunks nearest the question and has the model answer from them.
#[tokio::test]
async fn the_rag_example_retrieves_the_relevant_chunks_and_answers_from_them() {
    let (fake, base) = fake_provider().await;
    let host = common::builder(None)
        .model("minilm", minilm())
        .model(
            "chat",
            http(
                ProviderKind::Openai,
                format!("{base}/v1"),
                ModelKind::Generation,
            ),
        )
        .build()
        .await
        .unwrap();
    ingest_docs(&host).await;
    let question = json!({"question": "What do weft threads do on a loom?"});
    let (result, _) = common::run(&host, &example("rag"), question).await;
    assert_eq!(
        result.outputs["answer"]["answer"], "Hello world",
        "{:?}",
        result.failures
    );
    assert_eq!(
        result.outputs["find"]["chunks"],
        json!([
            "Weft threads run across the warp on a loom.",
            "The loom was invented to weave cloth."
        ])
    );
    // The model was asked with the retrieved context.
    let seen = fake.seen.lock().unwrap();
    let asked = seen.last().unwrap().2["messages"][1]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        asked.contains("[1] Weft threads run across the warp") && !asked.contains("Bananas"),
        "{asked}"
    );
}

#[tokio::test]
async fn the_fallback_example_sends_a_failed_model_call_to_another_model() {
    let (_fake, base) = fake_provider().await;
    // Nothing listens on the primary's port: every call fails.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_base = format!("http://{}/v1", dead.local_addr().unwrap());
    drop(dead);
    let host = common::builder(None)
        .model(
            "primary",
            http(ProviderKind::Openai, dead_base, ModelKind::Generation),
        )
        .model(
            "backup",
            http(
                ProviderKind::Openai,
                format!("{base}/v1"),
                ModelKind::Generation,
            ),
        )
        .build()
        .await
        .unwrap();
    let graph =
        weft::graph::Graph::from_file(&PathBuf::from(ROOT).join("examples/fallback.json")).unwrap();
    let (result, _) = common::run(&host, &graph, json!({"question": "Say hello"})).await;
    assert_eq!(
        result.status,
        weft::events::RunStatus::Succeeded,
        "{:?}",
        result.failures
    );
    assert_eq!(result.nodes["ask"], weft::events::NodeStatus::Failed);
    assert_eq!(result.outputs["ask"]["input"]["prompt"], "Say hello");
    assert_eq!(result.outputs["answer"]["text"], "Hello world");
}

/// `rag.context-builder` given a model counts tokens with that model's
/// tokenizer: a budget of exactly the first two chunks' tokens keeps those
/// two, and the count it gives is the model's count of its context.
#[tokio::test]
async fn the_context_builder_counts_tokens_with_the_model_named() {
    let host = common::builder(None)
        .model("minilm", minilm())
        .build()
        .await
        .unwrap();
    let chunks = json!([
        "Weft threads run across the warp.",
        "Looms interlace them tightly.",
        "Bananas are rich in potassium."
    ]);
    let two = "Weft threads run across the warp.\n\nLooms interlace them tightly.";
    let count = |text: &str| {
        common::graph(json!({"tasks": [{"id": "c", "type": "ai.count-tokens",
            "defaults": {"model": "minilm", "text": text}}]}))
    };
    let (counted, _) = common::run(&host, &count(two), json!({})).await;
    let budget = counted.outputs["c"]["tokens"].as_u64().expect("a count");
    // WordPiece splits words the 4-characters-a-token estimate does not.
    assert_ne!(budget, (two.encode_utf16().count() as u64).div_ceil(4));

    let graph = common::graph(json!({
        "tasks": [
            {"id": "cb", "type": "ContextBuilderTask",
             "defaults": {"chunks": chunks, "model": "minilm", "maxTokens": budget}},
            {"id": "c", "type": "ai.count-tokens", "defaults": {"model": "minilm"}}
        ],
        "dataflows": [flow("cb", "context", "c", "text")]
    }));
    let (result, _) = common::run(&host, &graph, json!({})).await;
    let built = &result.outputs["cb"];
    assert_eq!(built["context"], two, "{:?}", result.failures);
    assert_eq!(built["chunksUsed"], 2);
    assert_eq!(built["totalTokens"], result.outputs["c"]["tokens"]);
}

// ---- knowledge base -------------------------------------------------------

/// Ingest `text` as document `doc` into knowledge base `notes`: chunked by
/// sentence, embedded by MiniLM, upserted.
fn ingest(doc: &str, text: &str) -> (weft::graph::Graph, Value) {
    let graph = common::graph(json!({
        "tasks": [
            {"id": "chunk", "type": "TextChunkerTask",
             "defaults": {"strategy": "sentence", "chunkSize": 60, "chunkOverlap": 0}},
            {"id": "embed", "type": "ai.text-embedding", "defaults": {"model": "minilm"}},
            {"id": "store", "type": "ChunkVectorUpsertTask",
             "defaults": {"knowledgeBase": "notes", "doc_title": "Notes", "model": "minilm"}}
        ],
        "dataflows": [
            flow("chunk", "text", "embed", "texts"),
            flow("chunk", "chunks", "store", "chunks"),
            flow("embed", "vectors", "store", "vector")
        ]
    }));
    (graph, json!({"text": text, "doc_id": doc}))
}

/// Ask knowledge base `notes` for the `top_k` chunks nearest `question`
/// (only those of `filter`), and build a numbered context of them.
fn ask(question: &str, top_k: u32, filter: Value) -> weft::graph::Graph {
    common::graph(json!({
        "tasks": [
            {"id": "find", "type": "ChunkRetrievalTask",
             "defaults": {"knowledgeBase": "notes", "query": question, "model": "minilm",
                          "topK": top_k, "filter": filter}},
            {"id": "context", "type": "ContextBuilderTask", "defaults": {"format": "numbered"}}
        ],
        "dataflows": [
            flow("find", "chunks", "context", "chunks"),
            flow("find", "scores", "context", "scores")
        ]
    }))
}

/// A Markdown document parsed into sections (`StructuralParserTask`),
/// chunked within a budget of MiniLM tokens, each chunk led by its
/// section titles (`HierarchicalChunkerTask`), embedded and stored: no
/// chunk is over the budget by MiniLM's own count, and a question finds
/// the chunk of the right section, its titles in its metadata.
#[tokio::test]
async fn a_markdown_document_is_chunked_by_section_and_retrieved() {
    let host = common::builder(None)
        .model("minilm", minilm())
        .build()
        .await
        .unwrap();
    let looms = "Weft threads run across the warp on a loom. ".repeat(12);
    let text = format!(
        "# Weaving\n\n## Looms\n{looms}\n## Dyes\nIndigo gives a deep blue colour to cloth.\n\n\
         # Cooking\n\n## Bread\nBread rises when yeast ferments the dough."
    );
    let graph = common::graph(json!({
        "tasks": [
            {"id": "parse", "type": "StructuralParserTask", "defaults": {"title": "Notes"}},
            {"id": "chunk", "type": "HierarchicalChunkerTask",
             "defaults": {"maxTokens": 60, "overlap": 10, "reservedTokens": 0, "model": "minilm"}},
            {"id": "embed", "type": "ai.text-embedding", "defaults": {"model": "minilm"}},
            {"id": "store", "type": "ChunkVectorUpsertTask",
             "defaults": {"knowledgeBase": "manual", "model": "minilm"}}
        ],
        "dataflows": [
            flow("parse", "doc_id", "chunk", "doc_id"),
            flow("parse", "documentTree", "chunk", "documentTree"),
            flow("chunk", "text", "embed", "texts"),
            flow("chunk", "chunks", "store", "chunks"),
            flow("embed", "vectors", "store", "vector")
        ]
    }));
    let (result, _) = common::run(&host, &graph, json!({"text": text, "doc_id": "manual"})).await;
    let chunks = result.outputs["chunk"]["text"].as_array().cloned();
    let chunks = chunks.unwrap_or_else(|| panic!("{:?}", result.failures));
    // The looms paragraph is over the budget and is cut; the others fit.
    assert!(chunks.len() >= 5, "{chunks:?}");
    for chunk in &chunks {
        let count = common::graph(json!({"tasks": [{"id": "c", "type": "ai.count-tokens",
            "defaults": {"model": "minilm", "text": chunk}}]}));
        let (counted, _) = common::run(&host, &count, json!({})).await;
        let tokens = counted.outputs["c"]["tokens"].as_u64().unwrap();
        // The chunker counts prefix and text apart; a tokenizer may merge
        // a token across the two.
        assert!(tokens <= 61, "{tokens} tokens: {chunk}");
    }
    assert!(
        chunks[0]
            .as_str()
            .unwrap()
            .starts_with("Weaving > Looms\n\nWeft threads")
    );
    assert_eq!(result.outputs["store"]["count"], chunks.len());

    let find = common::graph(
        json!({"tasks": [{"id": "find", "type": "ChunkRetrievalTask",
        "defaults": {"knowledgeBase": "manual", "query": "How does dough rise?",
                     "model": "minilm", "topK": 1}}]}),
    );
    let (found, _) = common::run(&host, &find, json!({})).await;
    let best = &found.outputs["find"];
    assert_eq!(
        best["chunks"],
        json!(["Cooking > Bread\n\nBread rises when yeast ferments the dough."]),
        "{:?}",
        found.failures
    );
    assert_eq!(
        best["metadata"][0]["sectionTitles"],
        json!(["Cooking", "Bread"])
    );
}

/// `KbAddDocumentTask` keeps a parsed document, chunks and embeds it and
/// stores its chunks in one node, as Workglow's standard knowledge-base
/// strategy: a question finds the right section; a second document with no
/// id and no model gets a derived id and the knowledge base's model, and
/// adding it again replaces it; `KbReindexTask` redoes every document and
/// leaves as many chunks as before; with no model anywhere it is refused.
#[tokio::test]
async fn a_document_is_added_to_a_knowledge_base_in_one_task_and_reindexed() {
    let host = common::builder(None)
        .model("minilm", minilm())
        .build()
        .await
        .unwrap();
    let task = |task: &'static str, input: Value| common::one(&host, task, input);
    let parse =
        |text: &str, title: &str| json!({"text": text, "title": title, "format": "markdown"});
    let weaving = "# Weaving\n\n## Looms\nWeft threads run across the warp on a loom.\n\n\
                   # Cooking\n\n## Bread\nBread rises when yeast ferments the dough.";
    let parsed = task("StructuralParserTask", parse(weaving, "Notes"))
        .await
        .unwrap();
    let document = json!({"doc_id": "notes", "metadata": {"title": "Notes"},
                          "root": parsed["documentTree"]});
    let add = json!({"knowledgeBase": "kb", "document": document, "model": "minilm"});
    assert_eq!(
        task("KbAddDocumentTask", add).await,
        Ok(json!({"doc_id": "notes"}))
    );
    let search = json!({"knowledgeBase": "kb", "query": "How does dough rise?", "topK": 1});
    let found = task("KbSearchTask", search.clone()).await.unwrap();
    assert_eq!(
        found["chunks"],
        json!(["Cooking > Bread\n\nBread rises when yeast ferments the dough."])
    );
    assert_eq!(found["results"][0]["metadata"]["doc_title"], "Notes");

    let dyes = parse("Indigo gives a deep blue colour to cloth.", "Dyes");
    let tree = task("StructuralParserTask", dyes).await.unwrap()["documentTree"].clone();
    let untitled = json!({"metadata": {"title": "Dyes"}, "root": tree});
    let add = json!({"knowledgeBase": "kb", "document": untitled});
    let first = task("KbAddDocumentTask", add.clone()).await.unwrap();
    assert!(
        first["doc_id"].as_str().unwrap().starts_with("doc-"),
        "{first}"
    );
    assert_eq!(task("KbAddDocumentTask", add).await.unwrap(), first);
    let docs = task(
        "KbToDocumentsTask",
        json!({"knowledgeBase": "kb", "onlyStale": false}),
    );
    let mut ids = vec![first["doc_id"].clone(), json!("notes")];
    ids.sort_by_key(|v| v.to_string());
    assert_eq!(docs.await.unwrap()["doc_id"], json!(ids));

    let all = json!({"knowledgeBase": "kb", "query": "cloth", "model": "minilm", "topK": 100});
    let before = task("ChunkRetrievalTask", all.clone()).await.unwrap();
    assert_eq!(before["count"], 3, "{before}");
    let reindexed = task("KbReindexTask", json!({"knowledgeBase": "kb"})).await;
    assert_eq!(reindexed, Ok(json!({"count": 2})));
    let after = task("ChunkRetrievalTask", all).await.unwrap();
    assert_eq!(after["chunk_ids"], before["chunk_ids"]);
    assert_eq!(
        task("KbSearchTask", search).await.unwrap()["chunks"],
        found["chunks"]
    );

    let nothing = json!({"knowledgeBase": "empty", "document": document});
    let e = task("KbAddDocumentTask", nothing).await.unwrap_err();
    assert!(e.contains("`empty` has no embedding model recorded"), "{e}");
    let untitled = json!({"knowledgeBase": "kb", "document": {"metadata": {}, "root": tree}});
    let e = task("KbAddDocumentTask", untitled).await.unwrap_err();
    assert!(e.contains("document.metadata.title is required"), "{e}");
}

/// A knowledge base on redb and one on PostgreSQL, filled by the same
/// ingest runs, give the same chunks for a question, the relevant ones
/// first, by `ChunkRetrievalTask` and by `KbSearchTask` (the model recorded
/// at upsert); a document ingested again replaces its chunks (no copies,
/// none left over), `KbDeleteTask` removes one, and a metadata filter keeps
/// one document's chunks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knowledge_bases_on_redb_and_postgres_retrieve_the_same_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let redb: Arc<dyn weft::store::RunStore> =
        Arc::new(weft::store::RedbStore::open(&dir.path().join("kb.redb")).unwrap());
    let url = weft_tests::fresh_postgres().await;
    let pg = weft::store::PgStore::connect(&url, 4).await.unwrap();
    // tests/postgres.sh installs pgvector when it can: then PostgreSQL's
    // knowledge base is ranked by pgvector, redb's by the host.
    let pgvector = std::env::var_os("WEFT_TEST_PGVECTOR").is_some();
    assert_eq!(pg.pgvector(), pgvector);
    let pg: Arc<dyn weft::store::RunStore> = Arc::new(pg);
    let loom = "Weft threads run across the warp on a loom. The loom was invented to weave \
                cloth. Bananas are rich in potassium. The stock market closed higher on Friday.";
    let garden = "Tomatoes need a lot of sun. Weft is also a word for woven fabric.";
    // Five chunks (each sentence is over half of `chunkSize`).
    let old = "An old draft of the notes about looms and weaving. Its second sentence is \
               rather long as well, on purpose. A third sentence, just as long as the others. \
               The fourth sentence says nothing new, at length. The fifth one is left over \
               after the update.";
    let mut answers = Vec::new();
    for store in [redb, pg] {
        let host = common::builder(None)
            .store(store)
            .model("minilm", minilm())
            .build()
            .await
            .unwrap();
        for (doc, text) in [
            ("loom", old),
            ("scratch", garden),
            ("garden", garden),
            ("loom", loom),
        ] {
            let (graph, input) = ingest(doc, text);
            let (result, _) = common::run(&host, &graph, input).await;
            let stored = result.outputs.get("store");
            assert_eq!(
                stored.map(|s| &s["doc_id"]),
                Some(&json!(doc)),
                "{:?}",
                result.failures
            );
        }
        let delete = common::graph(json!({"tasks": [{"id": "d", "type": "KbDeleteTask",
            "defaults": {"knowledgeBase": "notes", "doc_id": "scratch"}}]}));
        let (deleted, _) = common::run(&host, &delete, json!({})).await;
        assert_eq!(
            deleted.outputs["d"]["doc_id"], "scratch",
            "{:?}",
            deleted.failures
        );
        let (all, _) = common::run(&host, &ask("anything", 100, json!({})), json!({})).await;
        // Six sentences, each a chunk: `loom`'s five-sentence draft was
        // replaced by its four, `scratch` deleted.
        assert_eq!(all.outputs["find"]["count"], 6, "{:?}", all.failures);

        let question = "What do weft threads do on a loom?";
        let (found, _) = common::run(
            &host,
            &ask(question, 2, json!({"doc_id": "loom"})),
            json!({}),
        )
        .await;
        let find = &found.outputs["find"];
        assert_eq!(
            find["chunks"],
            json!([
                "Weft threads run across the warp on a loom.",
                "The loom was invented to weave cloth."
            ]),
            "{:?}",
            found.failures
        );
        assert_eq!(find["metadata"][0]["doc_title"], "Notes");
        let context = found.outputs["context"]["context"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            context.starts_with("[1] Weft threads run across"),
            "{context}"
        );

        let search = common::graph(json!({"tasks": [{"id": "s", "type": "KbSearchTask",
            "defaults": {"knowledgeBase": "notes", "query": question, "topK": 2, "filter": {"doc_id": "loom"}}}]}));
        let (searched, _) = common::run(&host, &search, json!({})).await;
        let s = &searched.outputs["s"];
        assert_eq!(s["chunks"], find["chunks"], "{:?}", searched.failures);
        assert_eq!(s["results"][0]["doc_id"], "loom");
        assert_eq!(
            s["results"][0]["vector"].as_array().map(Vec::len),
            Some(384)
        );
        // Unfiltered: the nearest three of every document.
        let (top, _) = common::run(&host, &ask(question, 3, json!({})), json!({})).await;
        let top = &top.outputs["find"];
        assert_eq!(top["count"], 3);
        answers.push((find["chunk_ids"].clone(), find["scores"].clone()));
        answers.push((top["chunk_ids"].clone(), top["scores"].clone()));
    }
    assert_eq!(
        answers[1], answers[3],
        "the same top three on redb and PostgreSQL"
    );
    let (redb_ids, redb_scores) = &answers[0];
    let (pg_ids, pg_scores) = &answers[2];
    assert_eq!(redb_ids, pg_ids);
    assert_eq!(redb_scores, pg_scores);
}

/// The store ranks a knowledge base's vectors and the task reads a page of
/// the nearest: a filter that none of that page passes still finds the
/// right chunks (the task reads them all then), in order, and without a
/// filter the nearest come first. 300 chunks at angles 0, 1, 2, …
/// thousandths of a radian from the query; three far ones are `rare`.
#[tokio::test]
async fn a_filtered_search_past_the_stores_page_is_still_exact() {
    let host = common::builder(None).build().await.unwrap();
    let rare = [250, 270, 290];
    let mut chunks = Vec::new();
    let mut vectors = Vec::new();
    for i in 0..300 {
        let tag = if rare.contains(&i) { "rare" } else { "common" };
        chunks.push(json!({"chunkId": format!("c{i:03}"), "doc_id": "many",
                           "text": format!("chunk {i}"), "tag": tag}));
        let angle = i as f32 / 1000.0;
        vectors.push(json!([angle.cos(), angle.sin()]));
    }
    let upsert = common::graph(
        json!({"tasks": [{"id": "u", "type": "ChunkVectorUpsertTask",
        "defaults": {"knowledgeBase": "angles", "chunks": chunks, "vector": vectors}}]}),
    );
    let (stored, _) = common::run(&host, &upsert, json!({})).await;
    assert_eq!(stored.outputs["u"]["count"], 300, "{:?}", stored.failures);
    let find = |extra: Value| {
        let mut input = json!({"knowledgeBase": "angles", "query": [1.0, 0.0]});
        let input_map = input.as_object_mut().unwrap();
        input_map.extend(extra.as_object().unwrap().clone());
        common::graph(
            json!({"tasks": [{"id": "f", "type": "ChunkRetrievalTask", "defaults": input}]}),
        )
    };
    let (found, _) = common::run(
        &host,
        &find(json!({"topK": 3, "filter": {"tag": "rare"}})),
        json!({}),
    )
    .await;
    assert_eq!(
        found.outputs["f"]["chunk_ids"],
        json!(["c250", "c270", "c290"]),
        "{:?}",
        found.failures
    );
    let (nearest, _) = common::run(&host, &find(json!({"topK": 3})), json!({})).await;
    let f = &nearest.outputs["f"];
    assert_eq!(
        f["chunk_ids"],
        json!(["c000", "c001", "c002"]),
        "{:?}",
        nearest.failures
    );
    let scores: Vec<f64> = serde_json::from_value(f["scores"].clone()).unwrap();
    assert!(
        scores[0] > 0.999_999 && scores[0] > scores[1] && scores[1] > scores[2],
        "{scores:?}"
    );
    // A threshold ends the ranking: only chunks within 0.0015 rad.
    let within = (0.0015f64).cos();
    let (close, _) = common::run(
        &host,
        &find(json!({"topK": 10, "scoreThreshold": within})),
        json!({}),
    )
    .await;
    assert_eq!(
        close.outputs["f"]["chunk_ids"],
        json!(["c000", "c001"]),
        "{:?}",
        close.failures
    );
}

/// Hybrid retrieval finds by words what the vectors rank low: a part
/// number the embedding does not place near the question is the best
/// match by its words (BM25) alone, fetched though it is outside the
/// vectors' pool; the filter holds for chunks found by words; a weight of 1
/// is the similarity ranking; scores are reciprocal-rank fusions.
#[tokio::test]
async fn hybrid_retrieval_fuses_vectors_and_words() {
    let host = common::builder(None)
        .model("minilm", minilm())
        .build()
        .await
        .unwrap();
    let zoo = [
        "Zebras graze on the open savanna in large herds.",
        "A zebra's stripes are black and white.",
        "Zebras drink from rivers at dawn.",
        "Young zebras stay close to their mothers.",
        "Lions hunt zebras near the water holes.",
        "Zebras graze beside wildebeest during the migration.",
        "Each zebra has a unique pattern of stripes.",
        "Zebras sleep standing up.",
    ];
    for (doc, sentences) in [
        ("zoo", zoo.join(" ")),
        (
            "parts",
            "Part XK42: order XK42 bolts from the catalogue.".to_string(),
        ),
    ] {
        let graph = common::graph(json!({
            "tasks": [
                {"id": "chunk", "type": "TextChunkerTask",
                 "defaults": {"strategy": "sentence", "chunkSize": 10, "chunkOverlap": 0}},
                {"id": "embed", "type": "ai.text-embedding", "defaults": {"model": "minilm"}},
                {"id": "store", "type": "ChunkVectorUpsertTask",
                 "defaults": {"knowledgeBase": "mixed", "model": "minilm"}}
            ],
            "dataflows": [
                flow("chunk", "text", "embed", "texts"),
                flow("chunk", "chunks", "store", "chunks"),
                flow("embed", "vectors", "store", "vector")
            ]
        }));
        let (stored, _) =
            common::run(&host, &graph, json!({"text": sentences, "doc_id": doc})).await;
        assert_eq!(
            stored.outputs["store"]["doc_id"], doc,
            "{:?}",
            stored.failures
        );
    }
    let question = "Which zebras graze by XK42?";
    let find = |extra: Value| {
        let mut input = json!({"knowledgeBase": "mixed", "query": question, "model": "minilm"});
        input
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        common::graph(
            json!({"tasks": [{"id": "f", "type": "ChunkRetrievalTask", "defaults": input}]}),
        )
    };
    let part = "Part XK42: order XK42 bolts from the catalogue.";
    let (similar, _) = common::run(&host, &find(json!({"topK": 5})), json!({})).await;
    let similar = &similar.outputs["f"];
    assert!(
        !similar["chunks"].as_array().unwrap().contains(&json!(part)),
        "{similar}"
    );

    let (by_words, _) = common::run(
        &host,
        &find(json!({"topK": 1, "method": "hybrid", "vectorWeight": 0})),
        json!({}),
    )
    .await;
    let by_words = &by_words.outputs["f"];
    assert_eq!(by_words["chunks"], json!([part]), "{by_words}");
    assert_eq!(by_words["scoreType"], "rrf");
    assert_eq!(by_words["scores"][0].as_f64().unwrap(), 1.0 / 61.0);

    let (filtered, _) = common::run(
        &host,
        &find(
            json!({"topK": 3, "method": "hybrid", "vectorWeight": 0, "filter": {"doc_id": "zoo"}}),
        ),
        json!({}),
    )
    .await;
    let filtered = &filtered.outputs["f"]["chunks"];
    assert_eq!(filtered.as_array().unwrap().len(), 3, "{filtered}");
    assert!(
        !filtered.as_array().unwrap().contains(&json!(part)),
        "{filtered}"
    );
    // By words the zoo's best is a sentence with `zebras` and `graze`.
    assert!(
        filtered[0].as_str().unwrap().contains("graze"),
        "{filtered}"
    );

    let (vectors_only, _) = common::run(
        &host,
        &find(json!({"topK": 5, "method": "hybrid", "vectorWeight": 1})),
        json!({}),
    )
    .await;
    assert_eq!(vectors_only.outputs["f"]["chunks"], similar["chunks"]);
}

/// Retrieval says what is wrong: an unknown knowledge base, a text query
/// without a model, `hybrid` with a vector query, vectors of another length.
#[tokio::test]
async fn knowledge_base_misuse_is_refused_by_name() {
    let host = common::builder(None)
        .model("minilm", minilm())
        .build()
        .await
        .unwrap();
    let one = |task: &str, input: Value| {
        common::graph(json!({"tasks": [{"id": "t", "type": task, "defaults": input}]}))
    };
    let error = |result: &weft::runner::RunResult| common::error_of(result, "t").to_string();
    let (r, _) = common::run(
        &host,
        &one(
            "rag.chunk-retrieval",
            json!({"knowledgeBase": "none", "query": [1.0, 0.0]}),
        ),
        json!({}),
    )
    .await;
    assert!(
        error(&r).contains("knowledge base `none` does not exist"),
        "{}",
        error(&r)
    );
    let chunk = json!({"chunk_id": "d:0", "doc_id": "d", "text": "x"});
    let upsert = json!({"knowledgeBase": "kb", "chunks": [chunk], "vector": [1.0, 0.0]});
    let (r, _) = common::run(&host, &one("rag.chunk-vector-upsert", upsert), json!({})).await;
    assert_eq!(r.outputs["t"]["count"], 1, "{:?}", r.failures);
    let cases = [
        (
            json!({"knowledgeBase": "kb", "query": "text"}),
            "`model` is required",
        ),
        (
            json!({"knowledgeBase": "kb", "query": [1.0, 0.0], "method": "hybrid"}),
            "hybrid retrieval needs a text query",
        ),
        (
            json!({"knowledgeBase": "kb", "query": [1.0, 0.0, 0.0]}),
            "the query vector has 3 numbers",
        ),
        (
            json!({"knowledgeBase": "a/b", "query": [1.0]}),
            "without `/`",
        ),
    ];
    for (input, want) in cases {
        let (r, _) =
            common::run(&host, &one("rag.chunk-retrieval", input.clone()), json!({})).await;
        assert!(error(&r).contains(want), "{input}: {}", error(&r));
    }
    let wider = json!({"knowledgeBase": "kb", "chunks": [chunk], "vector": [1.0, 0.0, 0.0]});
    let (r, _) = common::run(&host, &one("rag.chunk-vector-upsert", wider), json!({})).await;
    assert!(
        error(&r).contains("holds vectors of 2 numbers; these have 3"),
        "{}",
        error(&r)
    );
    let search = json!({"knowledgeBase": "kb", "query": "text"});
    let (r, _) = common::run(&host, &one("rag.kb-search", search), json!({})).await;
    assert!(
        error(&r).contains("has no embedding model"),
        "{}",
        error(&r)
    );
    for (model, ok) in [("minilm", true), ("minilm", true), ("another", false)] {
        let upsert =
            json!({"knowledgeBase": "kb", "chunks": [chunk], "vector": [1.0, 0.0], "model": model});
        let (r, _) = common::run(&host, &one("rag.chunk-vector-upsert", upsert), json!({})).await;
        match ok {
            true => assert!(r.failures.is_empty(), "{:?}", r.failures),
            false => assert!(
                error(&r).contains("was embedded with model `minilm`, not `another`"),
                "{}",
                error(&r)
            ),
        }
    }
}

/// Start `graph` as a stored run on `host`; its id and its execution.
async fn start_stored(
    host: &Arc<weft::Host>,
    graph: &weft::graph::Graph,
) -> (
    String,
    tokio::task::JoinHandle<Result<weft::runner::RunResult, weft::HostError>>,
) {
    let run = host.prepare(graph, "chat.json", json!({})).await.unwrap();
    let id = run.run_id.clone();
    let host = host.clone();
    let stop = tokio_util::sync::CancellationToken::new();
    (
        id,
        tokio::spawn(async move { host.execute(&run, &stop).await }),
    )
}

/// Wait until run `id` of `host` has node `node` waiting.
async fn until_waiting(host: &weft::Host, id: &str, node: &str) {
    for _ in 0..3000 {
        let stored = host.store().load_run(id).await.unwrap();
        let waiting = |r: &&weft::store::NodeRecord| {
            r.node == node && r.status == weft::events::NodeStatus::Waiting
        };
        if stored.nodes.iter().any(|r| waiting(&r)) {
            return;
        }
        let running = stored.run.status == weft::events::RunStatus::Running;
        assert!(running, "the run ended: {:?}", stored.nodes);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{node} never waited");
}

#[tokio::test]
async fn workglows_ai_chat_asks_the_person_between_turns_and_keeps_the_conversation() {
    let (fake, host) = chat_host().await;
    let host = Arc::new(host);
    let graph = common::graph(json!({"tasks": [{"id": "chat", "type": "AiChatTask",
        "defaults": {"model": "chat", "prompt": "Hi", "systemPrompt": "Be brief."}}],
        "dataflows": []}));
    fake.script(&[
        Reply::Text("Hello! Your name?".into()),
        Reply::Text("Nice to meet you, Ann.".into()),
    ]);
    let (id, task) = start_stored(&host, &graph).await;

    // The model spoke; the person answers, then ends the chat.
    until_waiting(&host, &id, "chat[0]/reply").await;
    let asked = host.store().node_input(&id, "chat[0]/reply").await.unwrap();
    assert_eq!(asked, Some(json!({"message": "Hello! Your name?"})));
    let sent = host.signal(&id, "reply", json!({"content": "I am Ann"}), None);
    assert_eq!(sent.await.unwrap().name, "chat[0]/reply");
    until_waiting(&host, &id, "chat[1]/reply").await;
    let stored = host.store().load_run(&id).await.unwrap();
    let asked = stored.nodes.iter().find(|r| r.node == "chat[1]/reply");
    assert!(asked.is_some(), "the second turn's wait is in the run");
    let bad = host.signal(&id, "reply", json!({"action": "maybe"}), None);
    assert!(bad.await.is_err(), "an action the wait does not know");
    host.signal(&id, "reply", json!({"action": "decline"}), None)
        .await
        .unwrap();

    let result = task.await.unwrap().unwrap();
    assert_eq!(
        result.status,
        weft::events::RunStatus::Succeeded,
        "{:?}",
        result.failures
    );
    let said =
        |role: &str, text: &str| json!({"role": role, "content": [{"type": "text", "text": text}]});
    assert_eq!(
        result.outputs["chat"],
        json!({
            "messages": [
                said("system", "Be brief."),
                said("user", "Hi"),
                said("assistant", "Hello! Your name?"),
                said("user", "I am Ann"),
                said("assistant", "Nice to meet you, Ann."),
            ],
            "text": "Hello! Your name?Nice to meet you, Ann.",
            "iterations": 2,
            "go": false
        })
    );
    // The second turn sent the model the whole conversation.
    let seen = fake.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    let sent: Vec<(String, String)> = seen[1].2["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap().into(),
                m["content"].as_str().unwrap().into(),
            )
        })
        .collect();
    let expected = [
        ("system", "Be brief."),
        ("user", "Hi"),
        ("assistant", "Hello! Your name?"),
        ("user", "I am Ann"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(r, c)| (r.to_string(), c.to_string()))
        .collect();
    assert_eq!(sent, expected);
}

/// Run Workglow node `node` (a chat) as a stored run on `host` until its
/// first reply is asked for, decline it, and give the run's result.
async fn chat_once(host: &Arc<weft::Host>, node: Value) -> weft::runner::RunResult {
    let id = node["id"].as_str().unwrap().to_string();
    let graph = common::graph(json!({"tasks": [node], "dataflows": []}));
    let (run_id, task) = start_stored(host, &graph).await;
    until_waiting(host, &run_id, &format!("{id}[0]/reply")).await;
    host.signal(&run_id, "reply", json!({"action": "decline"}), None)
        .await
        .unwrap();
    task.await.unwrap().unwrap()
}

#[tokio::test]
async fn workglows_ai_chat_with_kb_grounds_each_turn_in_the_knowledge_base() {
    let (fake, base) = fake_provider().await;
    let openai = http(
        ProviderKind::Openai,
        format!("{base}/v1"),
        ModelKind::Generation,
    );
    let host = common::builder(None)
        .model("minilm", minilm())
        .model("chat", openai)
        .build()
        .await
        .unwrap();
    let host = Arc::new(host);
    ingest_docs(&host).await;

    fake.script(&[Reply::Text("Across the warp.".into())]);
    let result = chat_once(
        &host,
        json!({"id": "ask", "type": "AiChatWithKbTask",
        "defaults": {"model": "chat", "prompt": "What do weft threads do on a loom?",
                     "knowledgeBaseIds": ["docs"], "maxReferences": 2, "embeddingModel": "minilm"}}),
    )
    .await;
    assert_eq!(
        result.status,
        weft::events::RunStatus::Succeeded,
        "{:?}",
        result.failures
    );
    let out = &result.outputs["ask"];
    let snippets: Vec<&str> = out["references"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["snippet"].as_str().unwrap())
        .collect();
    assert_eq!(
        snippets,
        [
            "Weft threads run across the warp on a loom.",
            "The loom was invented to weave cloth."
        ]
    );
    assert_eq!(out["references"][0]["index"], 1);
    assert_eq!(out["references"][0]["kbId"], "docs");
    assert_eq!(out["text"], "Across the warp.");
    assert_eq!(out["iterations"], 1);
    // The turn's system prompt held the numbered context, nothing else.
    let seen = fake.seen.lock().unwrap().clone();
    let system = seen[0].2["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        system.starts_with("--- Context ---\n\n[1] [docs] (notes) Weft threads run across")
            && system.contains("[2] [docs] (notes) The loom was invented")
            && !system.contains("Bananas"),
        "{system}"
    );
    assert_eq!(
        seen[0].2["messages"][1]["content"],
        "What do weft threads do on a loom?"
    );

    // Nothing close enough: the reply given for no match, no model asked.
    let result = chat_once(
        &host,
        json!({"id": "ask", "type": "AiChatWithKbTask",
        "defaults": {"model": "chat", "prompt": "What do weft threads do on a loom?",
                     "knowledgeBaseIds": ["docs"], "minScore": 0.99, "embeddingModel": "minilm",
                     "noMatchReply": "I do not know."}}),
    )
    .await;
    assert_eq!(
        result.outputs["ask"]["text"], "I do not know.",
        "{:?}",
        result.failures
    );
    assert_eq!(result.outputs["ask"]["references"], json!([]));
    assert_eq!(fake.hits(), 1, "the model was not asked");
}
