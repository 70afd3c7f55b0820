//! The image tasks on real images made here (PNG and JPEG data URIs), each
//! result's pixels checked against the filter computed independently, and
//! hostile images refused with the host up.

use crate::common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{pixels, png};
use serde_json::{Value, json};
use weft::events::RunStatus;

/// A small image with varied pixels (some transparency).
fn sample() -> (String, image::RgbaImage) {
    let f = |x: u32, y: u32| {
        [
            (x * 60 + y * 7) as u8,
            (200 - x * 30) as u8,
            (y * 90 + 5) as u8,
            if (x + y).is_multiple_of(3) { 128 } else { 255 },
        ]
    };
    let uri = png(5, 3, f);
    (uri.clone(), pixels(&uri))
}

async fn run(host: &weft::Host, task: &str, input: Value) -> Result<image::RgbaImage, String> {
    let g = common::graph(json!({"tasks": [{"id": "t", "type": task, "defaults": input}]}));
    let (result, _) = common::run(host, &g, json!({})).await;
    match result.status {
        RunStatus::Succeeded => Ok(pixels(result.outputs["t"]["image"].as_str().unwrap())),
        _ => Err(common::error_of(&result, "t").to_string()),
    }
}

/// `base` with the fields of `extra` added (or replaced).
fn with(mut base: Value, extra: Value) -> Value {
    if let (Some(base), Value::Object(extra)) = (base.as_object_mut(), extra) {
        base.extend(extra);
    }
    base
}

/// Each colour channel through `f`, alpha kept.
fn per_channel(src: &image::RgbaImage, f: impl Fn(u8) -> u8) -> image::RgbaImage {
    image::RgbaImage::from_fn(src.width(), src.height(), |x, y| {
        let p = src.get_pixel(x, y).0;
        image::Rgba([f(p[0]), f(p[1]), f(p[2]), p[3]])
    })
}

#[tokio::test]
async fn colour_filters_give_the_pixels_workglows_algorithms_give() {
    let host = common::host(None).await;
    let (uri, src) = sample();
    let image = |extra: Value| with(json!({"image": uri}), extra);
    let got = run(&host, "image.invert", image(json!({}))).await.unwrap();
    assert_eq!(got, per_channel(&src, |c| 255 - c));
    let got = run(&host, "image.threshold", image(json!({"value": 100})))
        .await
        .unwrap();
    assert_eq!(got, per_channel(&src, |c| if c >= 100 { 255 } else { 0 }));
    let got = run(&host, "image.brightness", image(json!({"amount": 80})))
        .await
        .unwrap();
    assert_eq!(got, per_channel(&src, |c| c.saturating_add(80)));
    // 2.5 is stored as 2 (a Uint8ClampedArray rounds halves to even).
    let got = run(&host, "image.brightness", image(json!({"amount": -97.5})))
        .await
        .unwrap();
    let expected = per_channel(&src, |c| {
        let v = f64::from(c) - 97.5;
        if v <= 0.0 {
            0
        } else {
            v.round_ties_even() as u8
        }
    });
    assert_eq!(got, expected);
    let got = run(&host, "image.grayscale", image(json!({})))
        .await
        .unwrap();
    let expected = image::RgbaImage::from_fn(5, 3, |x, y| {
        let p = src.get_pixel(x, y).0;
        let g = ((u32::from(p[0]) * 77 + u32::from(p[1]) * 150 + u32::from(p[2]) * 29) >> 8) as u8;
        image::Rgba([g, g, g, p[3]])
    });
    assert_eq!(got, expected);
    let got = run(&host, "image.posterize", image(json!({"levels": 2})))
        .await
        .unwrap();
    assert_eq!(got, per_channel(&src, |c| if c >= 128 { 255 } else { 0 }));
    let got = run(&host, "image.transparency", image(json!({"amount": 0.5})))
        .await
        .unwrap();
    for (a, b) in got.pixels().zip(src.pixels()) {
        // round(0.5 × 255) = 128: alpha × 128 / 255, rounded.
        let expected = ((f64::from(b.0[3]) * 128.0 + 127.0) / 255.0).round_ties_even() as u8;
        assert_eq!((&a.0[..3], a.0[3]), (&b.0[..3], expected));
    }
    let got = run(
        &host,
        "image.tint",
        image(json!({"color": "#ff0000", "amount": 1})),
    )
    .await
    .unwrap();
    assert!(
        got.pixels()
            .zip(src.pixels())
            .all(|(a, b)| a.0 == [255, 0, 0, b.0[3]])
    );
}

#[tokio::test]
async fn geometry_filters_move_the_pixels_they_say() {
    let host = common::host(None).await;
    let (uri, src) = sample();
    let got = run(&host, "image.flip", json!({"image": uri}))
        .await
        .unwrap();
    assert_eq!(got, image::imageops::flip_horizontal(&src));
    let got = run(
        &host,
        "image.flip",
        json!({"image": uri, "direction": "vertical"}),
    )
    .await
    .unwrap();
    assert_eq!(got, image::imageops::flip_vertical(&src));
    for (angle, expected) in [
        (90, image::imageops::rotate90(&src)),
        (180, image::imageops::rotate180(&src)),
        (270, image::imageops::rotate270(&src)),
    ] {
        let got = run(&host, "image.rotate", json!({"image": uri, "angle": angle}))
            .await
            .unwrap();
        assert_eq!(got, expected, "rotate {angle}");
    }
    // A crop past the edge takes what there is.
    let got = run(
        &host,
        "image.crop",
        json!({"image": uri, "left": 3, "top": 1, "width": 10, "height": 1}),
    )
    .await
    .unwrap();
    assert_eq!(got, image::imageops::crop_imm(&src, 3, 1, 2, 1).to_image());
    let got = run(
        &host,
        "image.border",
        json!({"image": uri, "borderWidth": 2, "color": {"r": 1, "g": 2, "b": 3}}),
    )
    .await
    .unwrap();
    assert_eq!((got.width(), got.height()), (9, 7));
    assert_eq!(got.get_pixel(0, 0).0, [1, 2, 3, 255]);
    assert_eq!(got.get_pixel(2, 2), src.get_pixel(0, 0));
    // Nearest neighbour: each target pixel takes the source pixel it falls in.
    let got = run(
        &host,
        "image.resize",
        json!({"image": uri, "width": 10, "height": 3}),
    )
    .await
    .unwrap();
    assert!((0..10).all(|x| got.get_pixel(x, 1) == src.get_pixel(x / 2, 1)));
}

/// A box blur computed the plain way: the mean of the `2r + 1` pixels
/// around, edges repeated, rounded half up, rows then columns.
fn box_blur(src: &image::RgbaImage, r: i64) -> image::RgbaImage {
    let pass = |img: &image::RgbaImage, horizontal: bool| {
        image::RgbaImage::from_fn(img.width(), img.height(), |x, y| {
            let mut out = [0u8; 4];
            for (c, o) in out.iter_mut().enumerate() {
                let sum: i64 = (-r..=r)
                    .map(|k| {
                        let (sx, sy) = match horizontal {
                            true => (
                                (i64::from(x) + k).clamp(0, i64::from(img.width()) - 1),
                                i64::from(y),
                            ),
                            false => (
                                i64::from(x),
                                (i64::from(y) + k).clamp(0, i64::from(img.height()) - 1),
                            ),
                        };
                        i64::from(img.get_pixel(sx as u32, sy as u32).0[c])
                    })
                    .sum();
                *o = (sum as f64 / (2 * r + 1) as f64 + 0.5) as u8;
            }
            image::Rgba(out)
        })
    };
    pass(&pass(src, true), false)
}

#[tokio::test]
async fn blur_and_pixelate_average_as_workglow_does() {
    let host = common::host(None).await;
    // Wider than twice the radius, so the running sum's start matters not.
    let uri = png(12, 9, |x, y| {
        [(x * 20) as u8, (y * 25) as u8, ((x * y) % 256) as u8, 255]
    });
    let src = pixels(&uri);
    let got = run(&host, "image.blur", json!({"image": uri, "radius": 2}))
        .await
        .unwrap();
    assert_eq!(got, box_blur(&src, 2));
    let got = run(
        &host,
        "image.pixelate",
        json!({"image": uri, "blockSize": 4}),
    )
    .await
    .unwrap();
    // The block at (8..12, 8..9) is the mean of its 4 pixels.
    let block: Vec<u32> = (8..12)
        .map(|x| u32::from(src.get_pixel(x, 8).0[0]))
        .collect();
    let mean = (f64::from(block.iter().sum::<u32>()) / 4.0 + 0.5) as u8;
    assert!((8..12).all(|x| got.get_pixel(x, 8).0[0] == mean));
}

#[tokio::test]
async fn jpeg_is_read_and_hostile_images_are_refused() {
    let host = common::host(None).await;
    let img = image::RgbImage::from_fn(8, 8, |x, _| image::Rgb([(x * 30) as u8, 0, 0]));
    let mut jpeg = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut jpeg),
        image::ImageFormat::Jpeg,
    )
    .unwrap();
    let uri = format!("data:image/jpeg;base64,{}", STANDARD.encode(jpeg));
    let got = run(&host, "image.invert", json!({"image": uri}))
        .await
        .unwrap();
    assert_eq!((got.width(), got.height()), (8, 8));

    let e = run(
        &host,
        "image.invert",
        json!({"image": "https://example.com/x.png"}),
    )
    .await
    .unwrap_err();
    assert!(e.contains("data:image/png;base64"), "{e}");
    let e = run(
        &host,
        "image.invert",
        json!({"image": "data:image/png;base64,AAAA"}),
    )
    .await
    .unwrap_err();
    assert!(e.contains("cannot decode"), "{e}");
    // A PNG that claims 100,000 × 100,000 pixels in a few bytes.
    let mut bomb = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut bomb, 100_000, 100_000);
        enc.set_color(png::ColorType::Rgba);
        let mut w = enc.write_header().unwrap();
        w.write_chunk(png::chunk::IEND, &[]).ok();
    }
    let uri = format!("data:image/png;base64,{}", STANDARD.encode(&bomb));
    let e = run(&host, "image.invert", json!({"image": uri}))
        .await
        .unwrap_err();
    assert!(e.contains("image:"), "{e}");
    let (uri, _) = sample();
    let e = run(
        &host,
        "image.resize",
        json!({"image": uri, "width": 100_000, "height": 100_000}),
    )
    .await
    .unwrap_err();
    assert!(e.contains("50000000 pixels"), "{e}");
    let e = run(
        &host,
        "image.crop",
        json!({"image": uri, "left": 5, "width": 1, "height": 1}),
    )
    .await
    .unwrap_err();
    assert!(e.contains("outside the 5×3 image"), "{e}");
    // The host is still up.
    assert!(
        run(&host, "image.invert", json!({"image": uri}))
            .await
            .is_ok()
    );
}

/// Text laid over a background keeps the background where there is no
/// text and blends the text's color over it (Workglow's source-over); a
/// half-transparent color half covers; without a background a size is
/// needed; a flood of stacked accents, a huge canvas and an unknown anchor
/// are refused, with the host up.
#[tokio::test]
async fn text_is_laid_over_the_image_and_hostile_text_is_refused() {
    let host = common::host(None).await;
    let blue = png(120, 40, |_, _| [0, 0, 255, 255]);
    let white = json!({"text": "Hi", "color": {"r": 255, "g": 255, "b": 255}, "image": blue});
    let text = |extra: Value| with(white.clone(), extra);
    let got = run(&host, "image.text", text(json!({}))).await.unwrap();
    assert_eq!(got.dimensions(), (120, 40));
    let changed: Vec<(u32, u32)> = got
        .enumerate_pixels()
        .filter(|(_, _, p)| p.0 != [0, 0, 255, 255])
        .map(|(x, y, _)| (x, y))
        .collect();
    assert!(changed.len() > 50, "the text shows: {}", changed.len());
    // Centred across (±3 px); down, Workglow centres the line's box (1.25
    // em, 30 px) and hangs the text from its top: rows 5 to 35.
    let span = |f: fn(&(u32, u32)) -> u32| {
        (
            changed.iter().map(f).min().unwrap(),
            changed.iter().map(f).max().unwrap(),
        )
    };
    let (left, right) = span(|p| p.0);
    assert!(((left + right) / 2).abs_diff(60) <= 3, "{left}..{right}");
    let (top, bottom) = span(|p| p.1);
    assert!(top >= 3 && bottom <= 35, "{top}..{bottom}");
    // Fully covered pixels are the text's white, opaque; edges are blends.
    assert!(got.pixels().any(|p| p.0 == [255, 255, 255, 255]));
    assert!(
        got.pixels()
            .all(|p| p.0[3] == 255 && p.0[0] == p.0[1] && p.0[2] == 255)
    );

    let half = run(
        &host,
        "image.text",
        text(json!({"color": "rgba(255,255,255,0.5)"})),
    )
    .await
    .unwrap();
    let brightest = half.pixels().map(|p| p.0[0]).max().unwrap();
    assert!(
        (120..=135).contains(&brightest),
        "half white over blue: {brightest}"
    );

    let e = run(&host, "image.text", text(json!({"text": ""})))
        .await
        .unwrap_err();
    assert!(e.contains("text"), "{e}");
    let e = run(&host, "image.text", json!({"text": "Hi", "color": "#000"}))
        .await
        .unwrap_err();
    assert!(e.contains("width and height are required"), "{e}");
    let accents = format!("a{}", "\u{0301}".repeat(20_000));
    let e = run(
        &host,
        "image.text",
        json!({"text": accents, "color": "#000", "fontSize": 400, "width": 500, "height": 500}),
    )
    .await
    .unwrap_err();
    assert!(e.contains("too much to draw"), "{e}");
    let e = run(
        &host,
        "image.text",
        json!({"text": "Hi", "color": "#000", "width": 100_000, "height": 100_000}),
    )
    .await
    .unwrap_err();
    assert!(e.contains("50000000 pixels"), "{e}");
    let e = run(&host, "image.text", text(json!({"position": "center"})))
        .await
        .unwrap_err();
    assert!(e.contains("position"), "{e}");
    // A long text on a small image: laid out, drawn where it shows.
    let long = format!("{}\n", "long text ".repeat(30_000)).repeat(20);
    let got = run(
        &host,
        "image.text",
        json!({"text": long, "color": "#000", "position": "top-left", "width": 100, "height": 30}),
    )
    .await
    .unwrap();
    assert!(got.pixels().any(|p| p.0[3] > 0));
    // Still up.
    run(
        &host,
        "image.text",
        text(json!({"bold": true, "italic": true})),
    )
    .await
    .unwrap();
}
